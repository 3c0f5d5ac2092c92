//! `arpanet status`: one table over every node, reachability, Docker, the
//! Consul agent as Consul sees it, and arpanet's containers. It looks and
//! changes nothing; each node is asked in parallel (up to `--forks`).

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{consul_api, consul_port};
use crate::config::ConnectOptions;
use crate::error::{exit, Error, Result};
use crate::escalation::{self, Become, Escalated};
use crate::probe;
use crate::report::OutputFormat;
use crate::session::{self, HostInfo, Session};
use crate::transport::{Connector, Transport};

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

async fn node_status(
    connector: &dyn Connector,
    host: &HostInfo,
    how: Option<Become>,
) -> NodeStatus {
    let mut status = NodeStatus {
        node: host.name.clone(),
        address: host.target.address.clone(),
        ..NodeStatus::default()
    };
    let conn = match connector.connect(&host.target).await {
        Ok(conn) => conn,
        Err(err) => {
            // The table prefixes the node; the error names it too.
            let text = err.to_string();
            let prefix = format!("{}: ", host.name);
            status.error = Some(text.strip_prefix(&prefix).unwrap_or(&text).to_owned());
            return status;
        }
    };
    status.reachable = true;
    let conn = Escalated::wrap(conn, how, &host.name);
    let version = "docker version --format '{{.Server.Version}}'";
    match probe::exec(conn.as_ref(), &host.name, version, None).await {
        Ok(out) if out.success() => status.docker = Some(out.stdout.trim().to_owned()),
        Err(err @ Error::Become { .. }) => {
            let text = err.to_string();
            let prefix = format!("{}: ", host.name);
            status.error = Some(text.strip_prefix(&prefix).unwrap_or(&text).to_owned());
            conn.close().await;
            return status;
        }
        _ => {}
    }
    let ps = "docker ps -a --filter label=arpanet.managed=true --format '{{.Names}}\t{{.State}}\t{{.Image}}'";
    if let Ok(out) = probe::exec(conn.as_ref(), &host.name, ps, None).await {
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
    let Ok(agent) = consul_api::request(host, conn, port, "GET", "/v1/agent/self", None).await
    else {
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
    if let Ok(leader) =
        consul_api::request(host, conn, port, "GET", "/v1/status/leader", None).await
    {
        let leader: String = serde_json::from_slice(&leader.body).unwrap_or_default();
        status.leader = (!leader.is_empty()).then_some(leader);
    }
}

/// Print the table (or JSON) for every host of the inventory; exits
/// non-zero when one could not be reached.
pub fn status(connect: &ConnectOptions, format: OutputFormat) -> Result<i32> {
    let session = Session::open(connect)?;
    let hosts = session.hosts("all")?;
    let escalations = hosts
        .iter()
        .map(|h| escalation::for_host(&connect.escalation, &h.vars))
        .collect::<Result<Vec<_>>>()?;
    let connector = session.connector();
    let runtime = session::runtime()?;
    let rows: Vec<NodeStatus> = runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(connect.forks.max(1)));
        let jobs = hosts.iter().zip(escalations).map(|(h, how)| {
            let limit = limit.clone();
            let connector = &connector;
            async move {
                let _permit = limit.acquire().await;
                node_status(connector, h, how).await
            }
        });
        futures::future::join_all(jobs).await
    });
    match format {
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
    let mut out = super::columns(&cells);
    for r in rows.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "{}: {}\n",
            r.node,
            r.error.as_deref().unwrap_or_default()
        ));
    }
    out
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
