//! The local lab: real Debian nodes (systemd, sshd, dockerd) as containers on
//! the local Docker engine, for trying arpanet and for its own tests.

use crate::cli::LabCommand;
use crate::error::Result;

pub fn run(command: LabCommand) -> Result<i32> {
    let _ = command;
    todo!("lab")
}
