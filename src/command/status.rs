//! `arpanet status`: one table over the cluster (see `cluster::status`);
//! `arpanet services`: its services (see `cluster::catalog`).

use super::{connect_options, output_format};
use crate::cli::StatusArgs;
use crate::cluster;
use crate::error::Result;

pub(crate) fn run(args: StatusArgs) -> Result<i32> {
    cluster::status::status(
        &connect_options(&args.connect)?,
        output_format(args.connect.output),
        args.connect.verbose > 0,
    )
}

pub(crate) fn services(args: StatusArgs) -> Result<i32> {
    cluster::catalog::services(
        &connect_options(&args.connect)?,
        output_format(args.connect.output),
        args.connect.verbose > 0,
    )
}
