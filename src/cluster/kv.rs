//! `arpanet kv`: Consul's key/value store under the inventory's
//! `consul_kv_path`, through one node's agent (servers first).

use super::{consul_api, first_agent, ordered_hosts, text};
use crate::config::ConnectOptions;
use crate::error::{exit, Error, Result};
use crate::report::OutputFormat;
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
/// With JSON: `get` prints `{"key", "value"}`, `ls` an array of those
/// (values included), `info` one object; `set` and `del` print nothing.
pub(crate) fn kv(
    connect: &ConnectOptions,
    op: &KvOp,
    verbose: bool,
    format: OutputFormat,
) -> Result<i32> {
    let json = format == OutputFormat::Json;
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
        // A failed read leaves the request without a token (Consul says 403).
        let _ = super::acl::learn(&host.vars, conn.as_ref(), &host.name).await;
        let token = super::acl::token(&host.vars)?;
        let origin = super::acl::token_origin_of(&host.vars);
        let call = |method: &'static str, path: String, body: Option<Vec<u8>>| {
            let conn = conn.clone();
            let name = host.name.clone();
            let token = token.clone();
            async move {
                let response = consul_api::request(
                    &name,
                    conn.as_ref(),
                    port,
                    method,
                    &path,
                    body.as_deref(),
                    token.as_deref(),
                )
                .await?;
                Ok::<_, Error>(response)
            }
        };
        let code = match op {
            KvOp::Get { key } => {
                let r = call("GET", consul_api::kv_path(&prefix, key, false, "raw"), None).await?;
                match r.status {
                    200 if json => {
                        let value = super::deployed::kv_shown(key, &r.text());
                        println!("{}", serde_json::json!({ "key": key, "value": value }));
                        exit::OK
                    }
                    200 => {
                        println!("{}", super::deployed::kv_shown(key, &r.text()));
                        exit::OK
                    }
                    404 => {
                        eprintln!("error: no key `{key}` under `{prefix}`");
                        exit::HOST_FAILED
                    }
                    _ => return Err(api_error(&host.name, &r, origin.as_deref())),
                }
            }
            KvOp::Set { key, value } => {
                let r = call(
                    "PUT",
                    consul_api::kv_path(&prefix, key, false, ""),
                    Some(value.clone().into_bytes()),
                )
                .await?;
                check(&host.name, &r, origin.as_deref())?
            }
            KvOp::Del { key, recurse } => {
                let r = call(
                    "DELETE",
                    consul_api::kv_path(&prefix, key, *recurse, ""),
                    None,
                )
                .await?;
                check(&host.name, &r, origin.as_deref())?
            }
            KvOp::Ls { prefix: under } if json => {
                let r = call("GET", consul_api::kv_path(&prefix, under, true, ""), None).await?;
                let entries = match r.status {
                    200 => entries(&prefix, &r.body).map_err(|message| Error::Remote {
                        host: host.name.clone(),
                        message,
                    })?,
                    404 => Vec::new(),
                    _ => return Err(api_error(&host.name, &r, origin.as_deref())),
                };
                println!("{}", serde_json::Value::Array(entries));
                exit::OK
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
                    _ => return Err(api_error(&host.name, &r, origin.as_deref())),
                }
            }
            KvOp::Info => {
                let leader = call("GET", "/v1/status/leader".into(), None).await?;
                let peers = call("GET", "/v1/status/peers".into(), None).await?;
                let leader = serde_json::from_slice::<String>(&leader.body).unwrap_or_default();
                let peers = serde_json::from_slice::<Vec<String>>(&peers.body).unwrap_or_default();
                if json {
                    let info = serde_json::json!({
                        "node": host.name,
                        "prefix": prefix,
                        "leader": leader,
                        "peers": peers,
                    });
                    println!("{info}");
                    conn.close().await;
                    return Ok(exit::OK);
                }
                println!("node:   {}", host.name);
                println!("prefix: {prefix}");
                println!("leader: {leader}");
                println!("peers:  {}", peers.join(", "));
                exit::OK
            }
        };
        conn.close().await;
        Ok(code)
    })
}

/// `?recurse`'s entries as `{"key", "value"}` objects, keys relative to
/// `prefix`, values as text (a folder's `null` kept).
fn entries(prefix: &str, body: &[u8]) -> std::result::Result<Vec<serde_json::Value>, String> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Key")]
        key: String,
        #[serde(rename = "Value")]
        value: Option<String>,
    }
    let all: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable KV listing: {e}"))?;
    let strip = format!("{}/", prefix.trim_matches('/'));
    all.into_iter()
        .map(|e| {
            let key = e.key.strip_prefix(&strip).unwrap_or(&e.key).to_owned();
            let value = match e.value {
                None => serde_json::Value::Null,
                Some(b64) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.as_bytes())
                        .map_err(|err| format!("unreadable value of `{}`: {err}", e.key))?;
                    super::deployed::kv_shown(&key, &String::from_utf8_lossy(&bytes)).into()
                }
            };
            Ok(serde_json::json!({ "key": key, "value": value }))
        })
        .collect()
}

/// `token`: where the request's ACL token came from (see
/// [`consul_api::answer_error`]).
fn check(host: &str, r: &consul_api::Response, token: Option<&str>) -> Result<i32> {
    if r.status == 200 {
        Ok(exit::OK)
    } else {
        Err(api_error(host, r, token))
    }
}

fn api_error(host: &str, r: &consul_api::Response, token: Option<&str>) -> Error {
    Error::Remote {
        host: host.to_owned(),
        message: consul_api::answer_error(r, token),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_recursive_listing_becomes_keys_and_values_under_the_prefix() {
        let body =
            br#"[{"Key":"arpanet/app/","Value":null},{"Key":"arpanet/app/x","Value":"aGVsbG8="}]"#;
        let found = super::entries("/arpanet", body).unwrap();
        assert_eq!(
            serde_json::Value::Array(found).to_string(),
            r#"[{"key":"app/","value":null},{"key":"app/x","value":"hello"}]"#
        );
        assert!(super::entries("/arpanet", b"nope").is_err());
    }
}
