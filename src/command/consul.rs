//! `arpanet consul -- ARGS`: the consul CLI in a node's container (see
//! `cluster::consul_exec`).

use super::connect_options;
use crate::cli::ConsulArgs;
use crate::cluster::consul_exec;
use crate::error::Result;

pub(crate) fn run(args: ConsulArgs) -> Result<i32> {
    consul_exec::consul_cli(&connect_options(&args.connect)?, &args.args)
}
