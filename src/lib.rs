//! arpanet: push ordered task lists over SSH to many machines at once, and
//! build a Docker cluster with Consul from them.
//!
//! Three layers: `cli` and `command/` (the command line, one file per
//! command); the Ansible-style engine (`config`, `session`, `runner`,
//! `inventory`, `playbook`, `vars`, `scope`, `template`, `plan`, `executor`,
//! `interrupt`, `modules`, `probe`, `transport`, `ssh`, `report`); and the
//! product on top of it (`cluster/`: certificates, gossip key, `status`,
//! `kv`, `consul`; `lab`).

pub mod cli;
pub(crate) mod cluster;
pub(crate) mod command;
pub(crate) mod config;
pub mod error;
pub(crate) mod escalation;
pub(crate) mod executor;
pub(crate) mod interrupt;
pub(crate) mod inventory;
pub(crate) mod lab;
pub(crate) mod listing;
pub(crate) mod modules;
pub(crate) mod plan;
pub(crate) mod playbook;
pub(crate) mod prefix;
pub(crate) mod probe;
pub(crate) mod project;
pub(crate) mod report;
pub(crate) mod runner;
pub(crate) mod scope;
pub(crate) mod session;
pub mod ssh;
pub(crate) mod suggest;
pub(crate) mod template;
pub(crate) mod terminal;
pub mod transport;
pub(crate) mod truth;
pub(crate) mod tunnel;
pub(crate) mod vars;
pub(crate) mod yaml;

#[cfg(test)]
mod bad_input_snapshots;
#[cfg(test)]
mod fuzz;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Run a parsed command line; returns the process exit code. An error is
/// said on stderr, and with `--output json` also as an `error` event on
/// stdout, so a reader of the events learns why there are none.
pub fn run(cli: Cli) -> i32 {
    let json = cli
        .command
        .connect()
        .is_some_and(|c| c.output == cli::OutputFormat::Json);
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            if json {
                println!("{}", error_event(&err));
            }
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

/// An error as a JSON event: its message (with the hint), the exit code,
/// and for bad input in a file, the file and line.
fn error_event(err: &error::Error) -> serde_json::Value {
    let mut event = serde_json::json!({
        "event": "error",
        "message": err.to_string(),
        "exit_code": err.exit_code(),
    });
    if let error::Error::Input(input) = err {
        event["file"] = input.location.file.display().to_string().into();
        if input.location.line > 0 {
            event["line"] = input.location.line.into();
        }
    }
    event
}

/// A command line clap refused: its message, or ours where we know what the
/// user meant (old command names); returns the exit code.
pub fn parse_failed(err: clap::Error) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let advice = match err.kind() {
        clap::error::ErrorKind::InvalidSubcommand | clap::error::ErrorKind::UnknownArgument => {
            command::legacy::advice(&args)
        }
        _ => None,
    };
    if let Some((message, hint)) = advice {
        eprintln!("error: {message}\nhint: {hint}");
        return error::exit::BAD_INPUT;
    }
    let _ = err.print();
    // Help and version are not errors; bad options are bad input.
    if err.use_stderr() {
        error::exit::BAD_INPUT
    } else {
        0
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => command::run::run(args),
        Command::Exec(args) => command::exec::run(args),
        Command::Shell(args) => command::exec::shell(args),
        Command::Logs(args) => command::logs::run(args),
        Command::Inventory(args) => command::inventory::run(args),
        Command::Render(args) => command::render::run(args),
        Command::Status(args) => command::status::run(args),
        Command::Details(args) => command::status::details(args),
        Command::Restart(args) => command::restart::run(args),
        Command::Services(args) => command::status::services(args),
        Command::Kv(args) => command::kv::run(args),
        Command::Consul(args) => command::consul::run(args),
        Command::Ui(args) => command::ui::run(args),
        Command::Lock(args) => command::lock::run(args),
        Command::History(args) => command::history::run(args),
        Command::Rollback(args) => command::rollback::run(args),
        Command::Rotate(args) => command::rotate::run(args),
        Command::Lab(args) => command::lab::run(args.command),
    }
}
