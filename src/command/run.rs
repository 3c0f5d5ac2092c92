//! `arpanet run PLAYBOOK...`: built-in playbook names or paths, run against
//! the inventory.

use super::{connect_options, output};
use crate::cli::RunArgs;
use crate::cluster;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::playbook;
use crate::runner;

pub(crate) fn run(args: RunArgs) -> Result<i32> {
    if let Some(what) = destructive(&args)? {
        if !args.check && !args.yes {
            confirm(&what)?;
        }
    }
    let playbooks = args
        .playbooks
        .iter()
        .map(|p| playbook::resolve(p, crate::cluster::builtin::BUILTINS))
        .collect::<Result<Vec<_>>>()?;
    let settings = Settings {
        forks: args.connect.forks,
        limit: args.connect.limit.clone(),
        task_timeout: super::task_timeout(args.task_timeout),
        check: args.check,
        diff: args.diff,
        tags: args.tags,
        skip_tags: args.skip_tags,
        // `-v` shows what each command printed, as Ansible's does.
        show_output: args.connect.verbose > 0,
        verbose: args.connect.verbose,
        ..Settings::default()
    };
    let result = runner::run_playbooks(
        &connect_options(&args.connect)?,
        output(&args.connect),
        settings,
        &playbooks,
    );
    // What `cluster_secrets` made in scratch copies under `--check`.
    cluster::secrets::discard_scratch();
    result
}

/// What a run would destroy beyond recovery, if anything: `stop` with
/// `purge` set by `-e` deletes Consul's data (the whole KV store).
fn destructive(args: &RunArgs) -> Result<Option<String>> {
    if !args.playbooks.iter().any(|p| p == "stop") {
        return Ok(None);
    }
    let mut purge = false;
    for arg in &args.connect.extra_vars {
        if let Some(value) = crate::vars::parse_extra(arg)?.get("purge") {
            purge = crate::truth::as_bool(value).unwrap_or(false);
        }
    }
    Ok(purge.then(|| {
        "`stop -e purge=true` deletes Consul's data, the whole KV store, on every selected node"
            .to_owned()
    }))
}

/// Ask on a terminal; refuse without one (`--yes` skips the question).
fn confirm(what: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let refused =
        |message: String| Error::usage(message).with_hint("run again with `--yes` to go ahead");
    if !std::io::stdin().is_terminal() {
        return Err(refused(format!(
            "{what}; not going ahead without a terminal to confirm on"
        )));
    }
    eprint!("{what}. Type `yes` to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Internal(format!("cannot read the answer: {e}")))?;
    if answer.trim() != "yes" {
        return Err(refused(format!("{what}; not confirmed, nothing was done")));
    }
    Ok(())
}
