//! `arpanet exec -- COMMAND`: one ad-hoc shell command on every selected
//! host, run as a one-task playbook so it gets the same parallelism,
//! output and recap as `run`.

use std::path::Path;

use super::{connect_options, output};
use crate::cli::ExecArgs;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::playbook::{Playbook, Step};
use crate::runner;
use crate::transport;

pub(crate) fn run(args: ExecArgs) -> Result<i32> {
    let cmd = match args.command.as_slice() {
        [line] => line.clone(),
        words => words
            .iter()
            .map(|w| transport::quote(w))
            .collect::<Vec<_>>()
            .join(" "),
    };
    // The command is taken literally: in `{{.Names}}` the braces are
    // docker's, not ours. JSON strings are valid YAML scalars.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let text = format!(
        "- name: ad-hoc\n  hosts: all\n  tasks:\n    - shell: {}\n",
        quoted(&format!("{{% raw %}}{cmd}{{% endraw %}}")),
    );
    let cwd = std::env::current_dir().map_err(|e| Error::io("read", ".", e))?;
    let mut playbook = Playbook::parse(Path::new("<command line>"), &cwd, &text)?;
    if let Some(Step::Task(task)) = playbook.plays[0].tasks.first_mut() {
        task.name = format!("exec: {cmd}");
    }
    let connect = connect_options(&args.connect)?;
    let settings = Settings {
        forks: args.connect.forks,
        limit: connect.limit.clone(),
        task_timeout: super::task_timeout(args.task_timeout),
        show_output: true,
        verbose: args.connect.verbose,
        ..Settings::default()
    };
    runner::run_playbooks(
        &connect,
        output(&args.connect),
        settings,
        &[playbook],
        &runner::unguarded,
    )
    .map(|finished| finished.code)
}
