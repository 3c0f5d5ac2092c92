//! `arpanet kv get|set|del|ls|info`: Consul's key/value store (see
//! `cluster::kv`).

use super::{connect_options, output_format};
use crate::cli::{KvArgs, KvOp as KvArg};
use crate::cluster::kv::{self, KvOp};
use crate::error::Result;

pub(crate) fn run(args: KvArgs) -> Result<i32> {
    let op = match args.op {
        KvArg::Get { key } => KvOp::Get { key },
        KvArg::Set { key, value } => KvOp::Set { key, value },
        KvArg::Del { key, recurse } => KvOp::Del { key, recurse },
        KvArg::Ls { prefix } => KvOp::Ls { prefix },
        KvArg::Info => KvOp::Info,
    };
    kv::kv(
        &connect_options(&args.connect)?,
        &op,
        args.connect.verbose > 0,
        output_format(args.connect.output),
    )
}
