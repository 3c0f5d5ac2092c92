//! `arpanet exec -- COMMAND`: one ad-hoc shell command on every selected
//! host, run as a one-task playbook so it gets the same parallelism,
//! `become`, timeouts, Ctrl-C handling and recap as `run`. Its output is
//! streamed: each line as it arrives, prefixed with its host (`|` before
//! stdout, `!` before stderr, which is always shown), or held and printed
//! under each host's result with `--group`.
//!
//! `exec -t` and `shell NODE` are interactive instead: one host, a remote
//! terminal wired to this one (see `terminal`), the command's exit status
//! as arpanet's.

use std::path::Path;

use super::{connect_options, output};
use crate::cli::{ConnectArgs, ExecArgs, ShellArgs};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::escalation;
use crate::playbook::{Playbook, Step};
use crate::runner;
use crate::session::{self, Session};
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
    if args.tty {
        return interactive(&args.connect, "exec -t", &cmd);
    }
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
        forks: connect.forks,
        limit: connect.limit.clone(),
        task_timeout: super::task_timeout(args.task_timeout),
        live: true,
        // JSON keeps each host's whole stdout in its result too.
        show_output: args.connect.output == crate::cli::OutputFormat::Json,
        verbose: args.connect.verbose,
        ..Settings::default()
    };
    let output = runner::Output {
        group: args.group,
        ..output(&args.connect)
    };
    runner::run_playbooks(&connect, output, settings, &[playbook], &runner::unguarded)
        .map(|finished| finished.code)
}

/// `arpanet shell NODE`: the remote user's login shell on NODE.
pub(crate) fn shell(args: ShellArgs) -> Result<i32> {
    if let Some(limit) = &args.connect.limit {
        return Err(Error::usage(format!(
            "`shell` takes its node as an argument, not `--limit {limit}`"
        ))
        .with_hint(format!("`arpanet shell {}`", args.node)));
    }
    let connect = ConnectArgs {
        limit: Some(args.node.clone()),
        ..args.connect
    };
    interactive(&connect, "shell", r#"exec "${SHELL:-/bin/sh}" -l"#)
}

/// Run `command` on a terminal on the one host `connect` selects; its exit
/// status is arpanet's. More than one host is refused before any is
/// contacted.
fn interactive(connect: &ConnectArgs, what: &str, command: &str) -> Result<i32> {
    if connect.output == crate::cli::OutputFormat::Json {
        return Err(Error::usage(format!(
            "`{what}` shows the remote terminal as it is; `-o json` does not apply"
        ))
        .with_hint("use `arpanet exec -o json -- COMMAND` (without `-t`) for JSON lines"));
    }
    let options = connect_options(connect)?;
    let session = Session::open(&options)?;
    let hosts = session.hosts("all")?;
    let host = match hosts.as_slice() {
        [host] => host,
        hosts => {
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).take(5).collect();
            let more = match hosts.len() > 5 {
                true => ", ...",
                false => "",
            };
            return Err(Error::usage(format!(
                "`{what}` runs on exactly one host, and {} are selected: {}{more}",
                hosts.len(),
                names.join(", ")
            ))
            .with_hint("pick one with `--limit NODE` (`-l NODE`)"));
        }
    };
    escalation::check(&host.name, &host.vars)?;
    // On a terminal, sudo and su ask for a password themselves.
    let command = match escalation::for_host(&options.escalation, &host.vars)? {
        Some(how) => escalation::interactive(&how, command),
        None => command.to_owned(),
    };
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let conn = connector.connect_ssh(&host.target).await?;
        let status = crate::terminal::interactive(&conn, &command).await;
        crate::transport::Transport::close(&conn).await;
        Ok(i32::try_from(status?).unwrap_or(255))
    })
}
