//! Commands that look at the running cluster rather than change it:
//! `status` (one table over every node), `kv` (Consul's key/value store) and
//! `consul` (the consul CLI in a node's container). Consul's HTTP API is
//! reached through a channel forwarded over SSH, never over the network.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::cli::{ConsulArgs, KvArgs, KvOp, OutputFormat, StatusArgs};
use crate::consul;
use crate::error::{exit, Error, Result};
use crate::session::{self, HostInfo, Session};
use crate::transport::{quote, Connector, Transport};
use crate::vars::Vars;

/// One node's row of `arpanet status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub address: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub docker: Option<String>,
    /// `server`, `client`, or none when no agent answers.
    pub consul_role: Option<String>,
    /// `alive`, `failed`, ... as Consul sees this node.
    pub consul_status: Option<String>,
    pub leader: Option<String>,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub state: String,
    pub image: String,
}

fn text(vars: &Vars, name: &str, default: &str) -> String {
    match vars.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => default.to_owned(),
    }
}

fn consul_port(vars: &Vars) -> Result<u16> {
    let port = text(vars, "consul_port", "8500");
    port.parse()
        .map_err(|_| Error::usage(format!("`consul_port` must be a port number, got `{port}`")))
}

async fn node_status(connector: &dyn Connector, host: &HostInfo) -> NodeStatus {
    let mut status = NodeStatus {
        node: host.name.clone(),
        address: host.target.address.clone(),
        ..NodeStatus::default()
    };
    let conn = match connector.connect(&host.target).await {
        Ok(conn) => conn,
        Err(err) => {
            status.error = Some(err.to_string());
            return status;
        }
    };
    status.reachable = true;
    if let Ok(out) = conn
        .exec("docker version --format '{{.Server.Version}}'", None)
        .await
    {
        if out.success() {
            status.docker = Some(out.stdout.trim().to_owned());
        }
    }
    let ps = "docker ps -a --filter label=arpanet.managed=true --format '{{.Names}}\t{{.State}}\t{{.Image}}'";
    if let Ok(out) = conn.exec(ps, None).await {
        status.containers = out
            .stdout
            .lines()
            .filter_map(|l| {
                let mut parts = l.split('\t');
                Some(ContainerStatus {
                    name: parts.next()?.to_owned(),
                    state: parts.next()?.to_owned(),
                    image: parts.next()?.to_owned(),
                })
            })
            .collect();
        status.containers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if let Ok(port) = consul_port(&host.vars) {
        consul_status(&host.name, conn.as_ref(), port, &mut status).await;
    }
    conn.close().await;
    status
}

async fn consul_status(host: &str, conn: &dyn Transport, port: u16, status: &mut NodeStatus) {
    let Ok(agent) = consul::request(host, conn, port, "GET", "/v1/agent/self", None).await else {
        return;
    };
    let Ok(agent) = serde_json::from_slice::<Value>(&agent.body) else {
        return;
    };
    let server = agent.pointer("/Config/Server").and_then(Value::as_bool);
    status.consul_role = server.map(|s| if s { "server" } else { "client" }.to_owned());
    status.consul_status = agent
        .pointer("/Member/Status")
        .and_then(Value::as_u64)
        .map(|s| {
            match s {
                1 => "alive",
                2 => "leaving",
                3 => "left",
                4 => "failed",
                _ => "none",
            }
            .to_owned()
        });
    if let Ok(leader) = consul::request(host, conn, port, "GET", "/v1/status/leader", None).await {
        let leader: String = serde_json::from_slice(&leader.body).unwrap_or_default();
        status.leader = (!leader.is_empty()).then_some(leader);
    }
}

pub fn status(args: StatusArgs) -> Result<i32> {
    let session = Session::open(&args.connect)?;
    let hosts = session.hosts("all")?;
    let connector = session.connector();
    let runtime = session::runtime()?;
    let rows: Vec<NodeStatus> = runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(args.connect.forks.max(1)));
        let jobs = hosts.iter().map(|h| {
            let limit = limit.clone();
            let connector = &connector;
            async move {
                let _permit = limit.acquire().await;
                node_status(connector, h).await
            }
        });
        futures::future::join_all(jobs).await
    });
    match args.connect.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        OutputFormat::Human => print!("{}", table(&rows)),
    }
    Ok(if rows.iter().all(|r| r.reachable) {
        exit::OK
    } else {
        exit::HOST_UNREACHABLE
    })
}

/// The human table: one line per node, columns padded to fit.
pub fn table(rows: &[NodeStatus]) -> String {
    let dash = || "-".to_owned();
    let mut cells: Vec<[String; 7]> = vec![[
        "NODE",
        "ADDRESS",
        "REACHABLE",
        "DOCKER",
        "CONSUL",
        "LEADER",
        "CONTAINERS",
    ]
    .map(str::to_owned)];
    for r in rows {
        let consul = match (&r.consul_role, &r.consul_status) {
            (Some(role), Some(st)) => format!("{role} ({st})"),
            (Some(role), None) => role.clone(),
            _ => dash(),
        };
        let containers = if r.containers.is_empty() {
            dash()
        } else {
            r.containers
                .iter()
                .map(|c| format!("{}={} [{}]", c.name, c.state, c.image))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reachable = if r.reachable {
            "yes".to_owned()
        } else {
            "no".to_owned()
        };
        cells.push([
            r.node.clone(),
            r.address.clone(),
            reachable,
            r.docker.clone().unwrap_or_else(dash),
            consul,
            r.leader.clone().unwrap_or_else(dash),
            containers,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| cells.iter().map(|c| c[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for r in rows.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "{}: {}\n",
            r.node,
            r.error.as_deref().unwrap_or_default()
        ));
    }
    out
}

/// Connect to the first reachable host: servers first, then the rest.
async fn first_reachable<'a>(
    connector: &dyn Connector,
    hosts: &'a [HostInfo],
) -> Result<(&'a HostInfo, Arc<dyn Transport>)> {
    let mut last = None;
    for host in hosts {
        match connector.connect(&host.target).await {
            Ok(conn) => return Ok((host, conn)),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| Error::usage("no hosts in the inventory")))
}

fn ordered_hosts(session: &Session) -> Result<Vec<HostInfo>> {
    let mut hosts = session.hosts("all")?;
    let servers = session.inventory.select("servers").unwrap_or_default();
    hosts.sort_by_key(|h| !servers.contains(&h.name));
    Ok(hosts)
}

pub fn kv(args: KvArgs) -> Result<i32> {
    if let KvOp::Del { key, .. } = &args.op {
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
    let session = Session::open(&args.connect)?;
    let hosts = ordered_hosts(&session)?;
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let (host, conn) = first_reachable(&connector, &hosts).await?;
        let port = consul_port(&host.vars)?;
        let prefix = text(&host.vars, "consul_kv_path", "/arpanet");
        let call = |method: &'static str, path: String, body: Option<Vec<u8>>| {
            let conn = conn.clone();
            let name = host.name.clone();
            async move {
                let response =
                    consul::request(&name, conn.as_ref(), port, method, &path, body.as_deref())
                        .await?;
                Ok::<_, Error>(response)
            }
        };
        let code = match &args.op {
            KvOp::Get { key } => {
                let r = call("GET", consul::kv_path(&prefix, key, false, "raw"), None).await?;
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
                    consul::kv_path(&prefix, key, false, ""),
                    Some(value.clone().into_bytes()),
                )
                .await?;
                check(&host.name, &r)?
            }
            KvOp::Del { key, recurse } => {
                let r = call("DELETE", consul::kv_path(&prefix, key, *recurse, ""), None).await?;
                check(&host.name, &r)?
            }
            KvOp::Ls { prefix: under } => {
                let r = call("GET", consul::kv_path(&prefix, under, false, "keys"), None).await?;
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

fn check(host: &str, r: &consul::Response) -> Result<i32> {
    if r.status == 200 {
        Ok(exit::OK)
    } else {
        Err(api_error(host, r))
    }
}

fn api_error(host: &str, r: &consul::Response) -> Error {
    Error::Remote {
        host: host.to_owned(),
        message: format!("consul answered {}: {}", r.status, r.text().trim()),
    }
}

pub fn consul_cli(args: ConsulArgs) -> Result<i32> {
    let session = Session::open(&args.connect)?;
    let hosts = ordered_hosts(&session)?;
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let (host, conn) = first_reachable(&connector, &hosts).await?;
        let name = text(&host.vars, "consul_name", "consul");
        let words: Vec<String> = args.args.iter().map(|a| quote(a)).collect();
        let out = conn
            .exec(
                &format!("docker exec {} consul {}", quote(&name), words.join(" ")),
                None,
            )
            .await?;
        print!("{}", out.stdout);
        eprint!("{}", out.stderr);
        conn.close().await;
        Ok(if out.success() {
            exit::OK
        } else {
            exit::HOST_FAILED
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table_pads_columns_and_lists_errors() {
        let rows = vec![
            NodeStatus {
                node: "node1".into(),
                address: "10.0.0.1".into(),
                reachable: true,
                docker: Some("20.10.24".into()),
                consul_role: Some("server".into()),
                consul_status: Some("alive".into()),
                leader: Some("10.0.0.1:8300".into()),
                containers: vec![ContainerStatus {
                    name: "consul".into(),
                    state: "running".into(),
                    image: "c:1".into(),
                }],
                ..NodeStatus::default()
            },
            NodeStatus {
                node: "node2".into(),
                address: "10.0.0.2".into(),
                error: Some("connection refused".into()),
                ..NodeStatus::default()
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NODE   ADDRESS   REACHABLE  DOCKER    CONSUL          LEADER         CONTAINERS"
        );
        assert_eq!(lines[1], "node1  10.0.0.1  yes        20.10.24  server (alive)  10.0.0.1:8300  consul=running [c:1]");
        assert_eq!(
            lines[2],
            "node2  10.0.0.2  no         -         -               -              -"
        );
        assert_eq!(lines[3], "node2: connection refused");
    }
}
