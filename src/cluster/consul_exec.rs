//! `arpanet consul -- ARGS`: the consul CLI inside a node's Consul
//! container, for what `status` and `kv` do not cover (`members`,
//! `operator raft list-peers`, ...). Its output is consul's own text; with
//! `-o json` it comes wrapped in one object (the node that answered, the
//! exit code, stdout and stderr), since the consul CLI's text has no one
//! JSON shape (pass `-format=json` to the consul commands that have it).

use super::{first_agent, ordered_hosts, text};
use crate::config::ConnectOptions;
use crate::error::{exit, Result};
use crate::escalation::{self, Escalated};
use crate::probe;
use crate::report::OutputFormat;
use crate::session::{self, Session};
use crate::transport::quote;

/// Run `consul ARGS` in the Consul container of the first host whose agent
/// answers (servers first; each attempt named with `verbose`), passing its
/// output through (or wrapped in JSON).
pub(crate) fn consul_cli(
    connect: &ConnectOptions,
    args: &[String],
    verbose: bool,
    format: OutputFormat,
) -> Result<i32> {
    let session = Session::open(connect)?;
    let hosts = ordered_hosts(&session)?;
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let (host, conn, _) = first_agent(&connector, &hosts, verbose).await?;
        // `docker exec` needs the rights `become` gives.
        let how = escalation::for_host(&connect.escalation, &host.vars)?;
        let conn = Escalated::wrap(conn, how, &host.name);
        let name = text(&host.vars, "consul_name", "consul");
        // `consul_cli`: with the node's ACL token read from its file.
        let cli = format!("docker exec {} consul", quote(&name));
        let cli = text(&host.vars, "consul_cli", &cli);
        let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
        // Framed, so that only consul's own output is passed through.
        let command = format!("{cli} {}", words.join(" "));
        let out = probe::exec(conn.as_ref(), &host.name, &command, None).await?;
        match format {
            OutputFormat::Human => {
                print!("{}", out.stdout);
                eprint!("{}", out.stderr);
            }
            OutputFormat::Json => println!(
                "{}",
                serde_json::json!({
                    "node": host.name,
                    "exit_code": out.status,
                    "stdout": out.stdout,
                    "stderr": out.stderr,
                })
            ),
        }
        conn.close().await;
        Ok(if out.success() {
            exit::OK
        } else {
            exit::HOST_FAILED
        })
    })
}
