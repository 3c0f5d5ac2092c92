//! `arpanet details`: what runs where, container by container: on each
//! selected node, every container arpanet manages (its `arpanet.managed`
//! label: Consul's agent, the stack's entries), with its image and the
//! image's digest (the ID `docker inspect` gives, `sha256:...`), when it
//! started, how often Docker restarted it, and its health where it has a
//! check. `status` says whether the cluster is healthy; this says which
//! build of each service runs, since when, and whether it crash-loops.
//!
//! Each node is asked once: one `docker inspect` of all its managed
//! containers, not one per container, so a node with twenty services costs
//! one round trip. Nodes are asked in parallel (up to `--forks`); one that
//! cannot be reached is shown as such and makes the exit code 4.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::config::ConnectOptions;
use crate::error::{exit, Error, Result};
use crate::escalation::{self, Become, Escalated};
use crate::modules::docker_container::MANAGED_LABEL;
use crate::probe;
use crate::report::OutputFormat;
use crate::session::{self, HostInfo, Session};
use crate::transport::{quote, Connector};

/// One managed container as `docker inspect` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Container {
    pub name: String,
    /// `running`, `exited`, `restarting`, ...
    pub state: String,
    /// The image as the container was created with it (`consul:1.8.7`).
    pub image: String,
    /// The image's content digest (`sha256:...`, Docker's image ID).
    pub digest: String,
    /// When its process last started (RFC 3339, as Docker gives it).
    pub started_at: String,
    /// How often Docker restarted it (its restart policy at work).
    pub restart_count: u64,
    /// `healthy`, `unhealthy` or `starting`, for a container with a check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

/// One node's part: its containers, or why they could not be read.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeDetails {
    pub node: String,
    pub address: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub containers: Vec<Container>,
}

/// The script a node runs: the managed containers' IDs, then one `docker
/// inspect` of them all (`[]` when there are none).
fn inspect_script() -> String {
    format!(
        "ids=$(docker ps --all --quiet --filter {}) || exit $?\n\
         if [ -z \"$ids\" ]; then echo '[]'; else docker inspect $ids; fi",
        quote(&format!("label={MANAGED_LABEL}=true"))
    )
}

/// The containers in `docker inspect`'s JSON, sorted by name.
pub(crate) fn parse_inspect(json: &str) -> std::result::Result<Vec<Container>, String> {
    let all: Vec<Value> =
        serde_json::from_str(json).map_err(|e| format!("unreadable `docker inspect`: {e}"))?;
    let text = |v: &Value, path: &str| {
        v.pointer(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut out: Vec<Container> = all
        .iter()
        .map(|c| Container {
            name: text(c, "/Name").trim_start_matches('/').to_owned(),
            state: text(c, "/State/Status"),
            image: text(c, "/Config/Image"),
            digest: text(c, "/Image"),
            started_at: text(c, "/State/StartedAt"),
            restart_count: c.get("RestartCount").and_then(Value::as_u64).unwrap_or(0),
            health: c
                .pointer("/State/Health/Status")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn node_details(
    connector: &dyn Connector,
    host: &HostInfo,
    how: Option<Become>,
) -> NodeDetails {
    let mut details = NodeDetails {
        node: host.name.clone(),
        address: host.target.address.clone(),
        reachable: false,
        error: None,
        containers: Vec::new(),
    };
    let conn = match connector.connect(&host.target).await {
        Ok(conn) => conn,
        Err(err) => {
            details.error = Some(super::without_host(&host.name, &err));
            return details;
        }
    };
    details.reachable = true;
    let conn = Escalated::wrap(conn, how, &host.name);
    match probe::exec(conn.as_ref(), &host.name, &inspect_script(), None).await {
        Ok(out) if out.success() => match parse_inspect(&out.stdout) {
            Ok(containers) => details.containers = containers,
            Err(why) => details.error = Some(why),
        },
        Ok(out) => {
            details.error = Some(format!("cannot list its containers: {}", out.stderr.trim()))
        }
        Err(err) => details.error = Some(super::without_host(&host.name, &err)),
    }
    conn.close().await;
    details
}

/// Print every selected node's managed containers; exit 0, 4 when a node
/// is unreachable, 2 when one could not be read.
pub(crate) fn details(connect: &ConnectOptions, format: OutputFormat) -> Result<i32> {
    let session = Session::open(connect)?;
    let hosts = session.hosts("all")?;
    let escalations = hosts
        .iter()
        .map(|h| escalation::for_host(&connect.escalation, &h.vars))
        .collect::<Result<Vec<_>>>()?;
    let connector = session.connector();
    let rows: Vec<NodeDetails> = session::runtime()?.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(connect.forks.max(1)));
        let jobs = hosts.iter().zip(escalations).map(|(h, how)| {
            let (limit, connector) = (limit.clone(), &connector);
            async move {
                let _permit = limit.acquire().await;
                node_details(connector, h, how).await
            }
        });
        futures::future::join_all(jobs).await
    });
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "nodes": rows }))
                .map_err(|e| Error::Internal(format!("cannot write JSON: {e}")))?
        ),
        OutputFormat::Human => print!("{}", table(&rows)),
    }
    Ok(if rows.iter().any(|r| !r.reachable) {
        exit::HOST_UNREACHABLE
    } else if rows.iter().any(|r| r.error.is_some()) {
        exit::HOST_FAILED
    } else {
        exit::OK
    })
}

/// One line per container (a node without any, or unreadable, gets one
/// line saying so); digests shortened to Docker's 12 characters.
fn table(rows: &[NodeDetails]) -> String {
    let mut cells: Vec<[String; 8]> = vec![[
        "NODE",
        "CONTAINER",
        "STATE",
        "IMAGE",
        "DIGEST",
        "STARTED",
        "RESTARTS",
        "HEALTH",
    ]
    .map(str::to_owned)];
    let dash = || "-".to_owned();
    for r in rows {
        if let Some(error) = &r.error {
            let state = if r.reachable { "error" } else { "unreachable" };
            // Its first line: a hint below it would break the table.
            let why = error.lines().next().unwrap_or_default().to_owned();
            cells.push([
                r.node.clone(),
                dash(),
                state.to_owned(),
                why,
                dash(),
                dash(),
                dash(),
                dash(),
            ]);
            continue;
        }
        if r.containers.is_empty() {
            cells.push([
                r.node.clone(),
                dash(),
                "none".to_owned(),
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
            ]);
        }
        for c in &r.containers {
            let digest = c.digest.strip_prefix("sha256:").unwrap_or(&c.digest);
            cells.push([
                r.node.clone(),
                c.name.clone(),
                c.state.clone(),
                c.image.clone(),
                digest.chars().take(12).collect(),
                started(&c.started_at),
                c.restart_count.to_string(),
                c.health.clone().unwrap_or_else(dash),
            ]);
        }
    }
    super::columns(&cells)
}

/// Docker's start time to the second (`2026-11-02T13:02:19Z`); Docker's
/// zero time (never started) as `-`.
fn started(at: &str) -> String {
    if at.is_empty() || at.starts_with("0001-") {
        return "-".to_owned();
    }
    match at.split_once('.') {
        Some((seconds, rest)) if rest.ends_with('Z') => format!("{seconds}Z"),
        _ => at.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"[
      {"Name": "/consul", "Image": "sha256:0123456789abcdef0123", "RestartCount": 2,
       "Config": {"Image": "10.77.0.2:5000/consul:1.8.7"},
       "State": {"Status": "running", "StartedAt": "2026-11-02T13:02:19.477123Z"}},
      {"Name": "/cadvisor", "Image": "sha256:fedcba9876543210fedc", "RestartCount": 0,
       "Config": {"Image": "cadvisor:0.38.7"},
       "State": {"Status": "exited", "StartedAt": "0001-01-01T00:00:00Z",
                 "Health": {"Status": "unhealthy"}}}
    ]"#;

    #[test]
    fn inspect_json_becomes_containers_sorted_by_name() {
        let found = parse_inspect(INSPECT).unwrap();
        assert_eq!(
            found,
            [
                Container {
                    name: "cadvisor".into(),
                    state: "exited".into(),
                    image: "cadvisor:0.38.7".into(),
                    digest: "sha256:fedcba9876543210fedc".into(),
                    started_at: "0001-01-01T00:00:00Z".into(),
                    restart_count: 0,
                    health: Some("unhealthy".into()),
                },
                Container {
                    name: "consul".into(),
                    state: "running".into(),
                    image: "10.77.0.2:5000/consul:1.8.7".into(),
                    digest: "sha256:0123456789abcdef0123".into(),
                    started_at: "2026-11-02T13:02:19.477123Z".into(),
                    restart_count: 2,
                    health: None,
                },
            ]
        );
        assert!(parse_inspect("not json")
            .unwrap_err()
            .contains("unreadable `docker inspect`"));
    }

    #[test]
    fn the_table_has_a_line_per_container_and_says_why_a_node_has_none() {
        let rows = vec![
            NodeDetails {
                node: "node1".into(),
                address: "10.0.0.1".into(),
                reachable: true,
                error: None,
                containers: parse_inspect(INSPECT).unwrap(),
            },
            NodeDetails {
                node: "node2".into(),
                address: "10.0.0.2".into(),
                reachable: false,
                error: Some("connection refused\nhint: is sshd running?".into()),
                containers: vec![],
            },
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("NODE   CONTAINER  STATE"), "{text}");
        let consul: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            consul,
            [
                "node1",
                "consul",
                "running",
                "10.77.0.2:5000/consul:1.8.7",
                "0123456789ab",
                "2026-11-02T13:02:19Z",
                "2",
                "-"
            ]
        );
        assert!(lines[1].contains(" - ") && lines[1].ends_with("unhealthy"));
        assert!(
            lines[3].contains("unreachable  connection refused"),
            "{text}"
        );
    }
}
