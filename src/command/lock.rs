//! `arpanet lock status|release`: the cluster's run lock (see
//! `cluster::lock`). Releasing is destructive (a run may be changing the
//! cluster right now), so it asks first, and needs `--yes` without a
//! terminal.

use super::{confirm, connect_options};
use crate::cli::{LockArgs, LockOp, OutputFormat};
use crate::cluster::lock::{self, LockStatus};
use crate::error::{exit, Error, Result};
use crate::session::Session;

pub(crate) fn run(args: LockArgs) -> Result<i32> {
    let json = args.connect.output == OutputFormat::Json;
    let session = Session::open(&connect_options(&args.connect)?)?;
    let no_cluster =
        || Error::usage("the inventory has no `servers` group: there is no cluster, hence no lock");
    match args.op {
        LockOp::Status => {
            let status = lock::status(&session)?.ok_or_else(no_cluster)?;
            print(&status, json);
            Ok(exit::OK)
        }
        LockOp::Release { yes } => {
            if !yes {
                confirm(
                    "`lock release` frees the cluster's lock whoever holds it: a run still \
                     changing the cluster would then race the next one",
                )?;
            }
            let status = lock::release(&session)?.ok_or_else(no_cluster)?;
            if json {
                print(&status, true);
            } else if let Some(holder) = &status.holder {
                println!("released the lock held by {}", holder.describe());
            } else {
                println!("the cluster was not locked");
            }
            Ok(exit::OK)
        }
    }
}

fn print(status: &LockStatus, json: bool) {
    if json {
        println!("{}", serde_json::to_string(status).unwrap_or_default());
        return;
    }
    let place = match status.store {
        "consul" => format!("consul key `{}`", status.location),
        _ => format!("lock file `{}`", status.location),
    };
    match &status.holder {
        Some(holder) => println!("locked by {} ({place})", holder.describe()),
        None => println!("not locked ({place})"),
    }
}
