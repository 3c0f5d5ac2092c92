//! `arpanet kv`: Consul's key/value store under the inventory's
//! `consul_kv_path`, through one node's agent (servers first).

use super::{consul_api, first_agent, ordered_hosts, text};
use crate::config::ConnectOptions;
use crate::error::{exit, Error, Result};
use crate::session::{self, Session};

/// One `kv` operation; keys are relative to `consul_kv_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KvOp {
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
    },
    /// A key, or a whole tree with `recurse` (or `KEY?recurse`).
    Del {
        key: String,
        recurse: bool,
    },
    /// The keys under a prefix.
    Ls {
        prefix: String,
    },
    /// The leader, the raft peers and the prefix in use.
    Info,
}

/// Run `op` through the first host whose agent answers (servers first;
/// each attempt named with `verbose`); exits non-zero for a missing key.
pub(crate) fn kv(connect: &ConnectOptions, op: &KvOp, verbose: bool) -> Result<i32> {
    if let KvOp::Del { key, .. } = op {
        if key
            .trim_end_matches("?recurse")
            .trim_matches('/')
            .is_empty()
        {
            return Err(
                Error::usage("refusing to delete the whole KV prefix: name a key")
                    .with_hint("`arpanet kv del --recurse app` deletes the tree `app/`"),
            );
        }
    }
    let session = Session::open(connect)?;
    let hosts = ordered_hosts(&session)?;
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let (host, conn, port) = first_agent(&connector, &hosts, verbose).await?;
        let prefix = text(&host.vars, "consul_kv_path", "/arpanet");
        let call = |method: &'static str, path: String, body: Option<Vec<u8>>| {
            let conn = conn.clone();
            let name = host.name.clone();
            async move {
                let response =
                    consul_api::request(&name, conn.as_ref(), port, method, &path, body.as_deref())
                        .await?;
                Ok::<_, Error>(response)
            }
        };
        let code = match op {
            KvOp::Get { key } => {
                let r = call("GET", consul_api::kv_path(&prefix, key, false, "raw"), None).await?;
                match r.status {
                    200 => {
                        println!("{}", r.text());
                        exit::OK
                    }
                    404 => {
                        eprintln!("error: no key `{key}` under `{prefix}`");
                        exit::HOST_FAILED
                    }
                    _ => return Err(api_error(&host.name, &r)),
                }
            }
            KvOp::Set { key, value } => {
                let r = call(
                    "PUT",
                    consul_api::kv_path(&prefix, key, false, ""),
                    Some(value.clone().into_bytes()),
                )
                .await?;
                check(&host.name, &r)?
            }
            KvOp::Del { key, recurse } => {
                let r = call(
                    "DELETE",
                    consul_api::kv_path(&prefix, key, *recurse, ""),
                    None,
                )
                .await?;
                check(&host.name, &r)?
            }
            KvOp::Ls { prefix: under } => {
                let r = call(
                    "GET",
                    consul_api::kv_path(&prefix, under, false, "keys"),
                    None,
                )
                .await?;
                match r.status {
                    200 => {
                        let keys: Vec<String> = serde_json::from_slice(&r.body).unwrap_or_default();
                        let strip = format!("{}/", prefix.trim_matches('/'));
                        for key in keys {
                            println!("{}", key.strip_prefix(&strip).unwrap_or(&key));
                        }
                        exit::OK
                    }
                    404 => exit::OK,
                    _ => return Err(api_error(&host.name, &r)),
                }
            }
            KvOp::Info => {
                let leader = call("GET", "/v1/status/leader".into(), None).await?;
                let peers = call("GET", "/v1/status/peers".into(), None).await?;
                println!("node:   {}", host.name);
                println!("prefix: {prefix}");
                println!(
                    "leader: {}",
                    serde_json::from_slice::<String>(&leader.body).unwrap_or_default()
                );
                println!(
                    "peers:  {}",
                    serde_json::from_slice::<Vec<String>>(&peers.body)
                        .unwrap_or_default()
                        .join(", ")
                );
                exit::OK
            }
        };
        conn.close().await;
        Ok(code)
    })
}

fn check(host: &str, r: &consul_api::Response) -> Result<i32> {
    if r.status == 200 {
        Ok(exit::OK)
    } else {
        Err(api_error(host, r))
    }
}

fn api_error(host: &str, r: &consul_api::Response) -> Error {
    Error::Remote {
        host: host.to_owned(),
        message: format!("consul answered {}: {}", r.status, r.text().trim()),
    }
}
