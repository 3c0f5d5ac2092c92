//! arpanet: push ordered task lists over SSH to many machines at once, and
//! build a Docker cluster with Consul from them.
//!
//! Three layers: `cli` and `command/` (the command line, one file per
//! command); the Ansible-style engine (`config`, `session`, `runner`,
//! `inventory`, `playbook`, `vars`, `scope`, `template`, `plan`, `executor`,
//! `modules`, `transport`, `ssh`, `report`); and the product on top of it
//! (`cluster/`: certificates, gossip key, `status`, `kv`, `consul`; `lab`).

pub mod cli;
pub mod cluster;
mod command;
pub mod config;
pub mod error;
pub mod executor;
pub mod inventory;
pub mod lab;
pub mod modules;
pub mod plan;
pub mod playbook;
pub mod report;
pub(crate) mod runner;
mod scope;
pub mod session;
pub mod ssh;
pub mod suggest;
pub mod template;
pub mod transport;
pub mod truth;
pub mod vars;
pub(crate) mod yaml;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            let message = err.to_string();
            eprintln!("error: {message}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !message.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                source = cause.source();
            }
            err.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => command::run::run(args),
        Command::Exec(args) => command::exec::run(args),
        Command::Inventory(args) => command::inventory::run(args),
        Command::Render(args) => command::render::run(args),
        Command::Status(args) => command::status::run(args),
        Command::Kv(args) => command::kv::run(args),
        Command::Consul(args) => command::consul::run(args),
        Command::Lab(args) => command::lab::run(args.command),
    }
}
