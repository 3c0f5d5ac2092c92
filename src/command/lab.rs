//! `arpanet lab up|down|status`: the local lab (see `lab.rs`).

use crate::cli::{LabCommand as LabArg, LabTarget as LabTargetArg};
use crate::error::Result;
use crate::lab::{self, LabCommand, LabTarget};

fn target(lab: LabTargetArg) -> LabTarget {
    LabTarget {
        dir: lab.dir,
        name: lab.name,
    }
}

pub(crate) fn run(command: LabArg) -> Result<i32> {
    lab::run(match command {
        LabArg::Up {
            lab,
            nodes,
            servers,
            subnet,
            bastion,
        } => LabCommand::Up {
            lab: target(lab),
            nodes,
            servers,
            subnet,
            bastion,
        },
        LabArg::Down { lab, purge } => LabCommand::Down {
            lab: target(lab),
            purge,
        },
        LabArg::Status { lab } => LabCommand::Status { lab: target(lab) },
    })
}
