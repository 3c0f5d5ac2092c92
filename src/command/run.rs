//! `arpanet run PLAYBOOK...`: built-in playbook names or paths, run against
//! the inventory.

use super::{connect_options, output};
use crate::cli::RunArgs;
use crate::cluster;
use crate::config::Settings;
use crate::error::Result;
use crate::playbook;
use crate::runner;

pub(crate) fn run(args: RunArgs) -> Result<i32> {
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
