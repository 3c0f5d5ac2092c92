//! `arpanet rotate`: a new Consul gossip key for the running cluster (the
//! built-in `rotate` playbook: Consul's keyring install, use, remove
//! through one agent, then each node's copy; no agent restarts). It changes
//! what every node trusts, so it asks first (`--yes` without a terminal)
//! and holds the cluster lock as every changing run does. The CA and node
//! certificates are not rotated (see the README).

use super::connect_options;
use crate::cli::RotateArgs;
use crate::cluster::{self, deployed};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::playbook;

pub(crate) fn run(args: RotateArgs) -> Result<i32> {
    if args.connect.limit.is_some() {
        return Err(Error::usage(
            "`rotate` gives the whole cluster a new gossip key: `--limit` is refused",
        )
        .with_hint("every member must hold the new key, or it is cut off from the others"));
    }
    if !args.check && !args.yes {
        super::confirm(
            "`rotate` replaces the cluster's gossip key on every node; other checkouts must then \
             copy the new `gossip.key` from this one",
        )?;
    }
    let mut connect = connect_options(&args.connect)?;
    // The agents' tasks run as deployed: the record's images and settings.
    let before = deployed::read_for_run(&connect)?;
    connect.provided = before.layer();
    let rotate = playbook::resolve("rotate", cluster::builtin::BUILTINS)?;
    let settings = Settings {
        forks: connect.forks,
        task_timeout: super::task_timeout(args.task_timeout),
        check: args.check,
        show_output: args.connect.verbose > 1,
        verbose: args.connect.verbose,
        ..Settings::default()
    };
    let result = super::run_changing(&connect, &args.connect, settings, rotate);
    Ok(result?.code)
}
