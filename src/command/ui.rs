//! `arpanet ui consul|cadvisor`: a web UI through a local port forwarded
//! over SSH (see `cluster::ui`).

use super::{connect_options, output_format};
use crate::cli::UiArgs;
use crate::cluster::ui::{self, Request, Ui};
use crate::error::Result;

pub(crate) fn run(args: UiArgs) -> Result<i32> {
    let request = Request {
        ui: Ui::parse(&args.ui)?,
        port: args.port,
        open: args.open,
        format: output_format(args.connect.output),
        verbose: args.connect.verbose > 0,
    };
    ui::ui(&connect_options(&args.connect)?, &request)
}
