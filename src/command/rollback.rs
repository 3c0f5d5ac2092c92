//! `arpanet rollback [N]`: return the cluster to an earlier deployed record
//! (default: the one before the current) through the `upgrade` playbook,
//! so it rolls as an upgrade does. The record's values go above the
//! inventory (below this command's own `-e`); the rollback makes a new
//! record, as `git revert` does, so history stays linear.

use super::connect_options;
use crate::cli::RollbackArgs;
use crate::cluster::{self, deployed};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::playbook;

pub(crate) fn run(args: RollbackArgs) -> Result<i32> {
    if args.connect.limit.is_some() {
        return Err(
            Error::usage("`rollback` returns the whole cluster to a record: `--limit` is refused")
                .with_hint("to try an earlier image on some nodes, `arpanet run upgrade --limit P -e IMAGE_VAR=...`"),
        );
    }
    let mut connect = connect_options(&args.connect)?;
    // The agents are recreated advertising each node's `arpanet_ip`.
    connect.resolved_ips = cluster::address::resolve(&connect, true)?;
    let before = deployed::read(&connect, true)?;
    let target = before.rollback_target(args.number)?.clone();
    let current = before.current.as_ref().map_or(0, |r| r.number);
    if !args.check && !args.yes {
        super::confirm(&format!(
            "`rollback` recreates containers on every node to return from record #{current} to #{} ({})",
            target.number,
            target.time
        ))?;
    }
    connect.provided = before.layer();
    let values = serde_json::to_string(&target.raw).map_err(|e| Error::Internal(e.to_string()))?;
    connect.extra_vars.insert(0, values);
    let upgrade = playbook::resolve("upgrade", cluster::builtin::BUILTINS)?;
    let settings = Settings {
        forks: connect.forks,
        limit: args.connect.limit.clone(),
        task_timeout: super::task_timeout(args.task_timeout),
        check: args.check,
        diff: args.diff,
        tags: Vec::new(),
        skip_tags: Vec::new(),
        show_output: args.connect.verbose > 1,
        verbose: args.connect.verbose,
        ..Settings::default()
    };
    let result = super::run_changing(&connect, &args.connect, settings, upgrade);
    let code = result?.code;
    if code == 0 && !args.check {
        let run = deployed::RunInfo {
            playbooks: vec!["rollback".into()],
            command: deployed::command_line(std::env::args()),
            rollback_of: Some(target.number),
        };
        super::history::announce(deployed::record(&connect, &before, run)?.as_ref());
    }
    Ok(code)
}
