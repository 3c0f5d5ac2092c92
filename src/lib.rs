//! arpanet: push ordered task lists over SSH to many machines at once, and
//! build a Docker cluster with Consul from them.

pub mod cli;
pub mod error;
pub mod inventory;
pub mod lab;
pub mod playbook;
pub mod ssh;
pub mod template;
pub mod transport;
pub mod vars;

use crate::cli::{Cli, Command};
use crate::error::Error;

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Lab(args) => lab::run(args.command),
        _ => Err(Error::Internal("not implemented yet".into())),
    }
}
