//! `arpanet logs [SERVICE...]`: the managed containers' logs across nodes
//! (see `cluster::logs`).

use super::{connect_options, output_format};
use crate::cli::LogsArgs;
use crate::cluster::logs::{self, Query};
use crate::error::Result;

pub(crate) fn run(args: LogsArgs) -> Result<i32> {
    let query = Query::new(
        args.services,
        args.follow,
        args.tail,
        args.since,
        args.grep.as_deref(),
    )?;
    logs::logs(
        &connect_options(&args.connect)?,
        output_format(args.connect.output),
        &query,
        // Given here, not from the project file: only an explicit
        // `--forks` is refused with `-f` (see `cluster::logs`).
        args.connect.forks,
    )
}
