//! `arpanet status`: one table over every node, reachability, Docker, the
//! Consul agent as Consul sees it, and arpanet's containers, then what is
//! wrong (`problems:`), with an exit code a script can act on: 0 all
//! healthy, 2 something unhealthy, 4 a node unreachable. It looks and
//! changes nothing; each node is asked in parallel (up to `--forks`).
//!
//! The Consul nodes are the `servers` and `clients` groups: each must run
//! Docker and an agent that answers and that the cluster sees `alive`. The
//! cluster's view (its leader, its members) comes from the first of them
//! whose agent answers, servers first.

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
    /// `alive`, `failed`, ... as the cluster sees this node (else as its
    /// own agent does).
    pub consul_status: Option<String>,
    /// Why the node's agent did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consul_error: Option<String>,
    pub leader: Option<String>,
    pub containers: Vec<ContainerStatus>,
    /// In `servers` or `clients`: runs Docker and a Consul agent.
    #[serde(skip)]
    pub consul_node: bool,
    /// The cluster's members as this node's agent sees them.
    #[serde(skip)]
    pub members: Option<Vec<Member>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub state: String,
    pub image: String,
    /// `healthy`, `unhealthy` or `starting`, for a container with a
    /// Docker health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

/// A member of the Consul cluster (serf LAN): its node name and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub status: String,
}

/// One thing that keeps the cluster from being healthy: on which node
/// (none: the cluster as a whole), what, and in what state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub node: Option<String>,
    pub what: String,
    pub state: String,
}

impl Problem {
    fn new(node: Option<&str>, what: impl Into<String>, state: impl Into<String>) -> Self {
        Problem {
            node: node.map(str::to_owned),
            what: what.into(),
            state: state.into(),
        }
    }
}

/// Consul's numeric member status as a word.
fn member_status(code: u64) -> &'static str {
    match code {
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "none",
    }
}

/// Health from `docker ps`'s status column (`Up 2 minutes (healthy)`).
fn health(status: &str) -> Option<String> {
    let inside = status.rsplit_once('(')?.1.strip_suffix(')')?;
    match inside {
        "healthy" | "unhealthy" => Some(inside.to_owned()),
        "health: starting" => Some("starting".to_owned()),
        _ => None,
    }
}

/// An error's text without the `NODE: ` it starts with (the table and the
/// problems name the node).
fn without_node(node: &str, err: &Error) -> String {
    let text = err.to_string();
    text.strip_prefix(&format!("{node}: "))
        .unwrap_or(&text)
        .to_owned()
}

async fn node_status(
    connector: &dyn Connector,
    host: &HostInfo,
    how: Option<Become>,
    consul_node: bool,
) -> NodeStatus {
    let mut status = NodeStatus {
        node: host.name.clone(),
        address: host.target.address.clone(),
        consul_node,
        ..NodeStatus::default()
    };
    let conn = match connector.connect(&host.target).await {
        Ok(conn) => conn,
        Err(err) => {
            status.error = Some(without_node(&host.name, &err));
            return status;
        }
    };
    status.reachable = true;
    let conn = Escalated::wrap(conn, how, &host.name);
    let version = "docker version --format '{{.Server.Version}}'";
    match probe::exec(conn.as_ref(), &host.name, version, None).await {
        Ok(out) if out.success() => status.docker = Some(out.stdout.trim().to_owned()),
        Err(err @ Error::Become { .. }) => {
            status.error = Some(without_node(&host.name, &err));
            conn.close().await;
            return status;
        }
        _ => {}
    }
    let ps = "docker ps -a --filter label=arpanet.managed=true --format '{{.Names}}\t{{.State}}\t{{.Image}}\t{{.Status}}'";
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
                    health: parts.next().and_then(health),
                })
            })
            .collect();
        status.containers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    // A failed read leaves the requests without a token (Consul says 403).
    let _ = super::acl::learn(&host.vars, conn.as_ref(), &host.name).await;
    let token = super::acl::token(&host.vars);
    match (consul_port(&host.vars), token) {
        (Ok(port), Ok(token)) => {
            let token = token.as_deref();
            let origin = super::acl::token_origin_of(&host.vars);
            let asked = (port, token, origin.as_deref());
            consul_status(&host.name, conn.as_ref(), asked, &mut status).await
        }
        (Err(err), _) | (_, Err(err)) => status.consul_error = Some(err.to_string()),
    }
    conn.close().await;
    status
}

/// `asked`: the agent's port, the ACL token and where it came from (see
/// [`consul_api::answer_error`]).
async fn consul_status(
    host: &str,
    conn: &dyn Transport,
    (port, token, origin): (u16, Option<&str>, Option<&str>),
    status: &mut NodeStatus,
) {
    let get = |path: &'static str| async move {
        let r = consul_api::request(host, conn, port, "GET", path, None, token).await?;
        if r.status != 200 {
            return Err(Error::Remote {
                host: host.to_owned(),
                message: consul_api::answer_error(&r, origin),
            });
        }
        serde_json::from_slice::<Value>(&r.body).map_err(|e| Error::Remote {
            host: host.to_owned(),
            message: format!("consul sent unreadable JSON for `{path}`: {e}"),
        })
    };
    let agent = match get("/v1/agent/self").await {
        Ok(agent) => agent,
        Err(err) => {
            status.consul_error = Some(without_node(host, &err));
            return;
        }
    };
    let server = agent.pointer("/Config/Server").and_then(Value::as_bool);
    status.consul_role = server.map(|s| if s { "server" } else { "client" }.to_owned());
    status.consul_status = agent
        .pointer("/Member/Status")
        .and_then(Value::as_u64)
        .map(|s| member_status(s).to_owned());
    if let Ok(leader) = get("/v1/status/leader").await {
        status.leader = leader.as_str().filter(|l| !l.is_empty()).map(str::to_owned);
    }
    if let Ok(Value::Array(members)) = get("/v1/agent/members").await {
        status.members = Some(
            members
                .iter()
                .filter_map(|m| {
                    Some(Member {
                        name: m.get("Name")?.as_str()?.to_owned(),
                        status: member_status(m.get("Status")?.as_u64()?).to_owned(),
                    })
                })
                .collect(),
        );
    }
}

/// The node whose agent speaks for the cluster: the first Consul node
/// whose agent answered, in `order` (servers first). With `verbose`, each
/// one passed over is named on stderr.
fn spokesman<'a>(
    rows: &'a [NodeStatus],
    order: &[String],
    verbose: bool,
) -> Option<&'a NodeStatus> {
    for name in order {
        let Some(row) = rows.iter().find(|r| &r.node == name && r.consul_node) else {
            continue;
        };
        if row.consul_role.is_some() {
            if verbose {
                eprintln!(
                    "{}: consul agent answers; the leader and members as it sees them",
                    row.node
                );
            }
            return Some(row);
        }
        if verbose {
            let why = row
                .error
                .as_deref()
                .or(row.consul_error.as_deref())
                .unwrap_or("no answer");
            eprintln!("{}: {why}; trying the next node", row.node);
        }
    }
    None
}

/// What keeps the cluster from being healthy, node by node in table
/// order, then the cluster's own (no leader, no agent at all).
pub fn problems(rows: &[NodeStatus], spokesman: Option<&NodeStatus>) -> Vec<Problem> {
    let mut out = Vec::new();
    let members = spokesman.and_then(|s| s.members.as_ref().map(|m| (s.node.as_str(), m)));
    for r in rows {
        let node = Some(r.node.as_str());
        if !r.reachable {
            let why = r.error.as_deref().unwrap_or("no answer");
            out.push(Problem::new(node, "ssh", format!("unreachable: {why}")));
            continue;
        }
        if let Some(error) = &r.error {
            out.push(Problem::new(node, "become", error.clone()));
            continue;
        }
        if r.consul_node && r.docker.is_none() {
            out.push(Problem::new(node, "docker", "not answering"));
        }
        if r.consul_node {
            if r.consul_role.is_none() {
                let why = r.consul_error.as_deref().unwrap_or("no answer");
                out.push(Problem::new(
                    node,
                    "consul agent",
                    format!("not answering: {why}"),
                ));
            } else if let Some((seer, members)) = members {
                let seen = members.iter().find(|m| m.name == r.node);
                let state = match seen {
                    None => Some("not a member of the cluster".to_owned()),
                    Some(m) if m.status != "alive" => Some(m.status.clone()),
                    Some(_) => None,
                };
                if let Some(state) = state {
                    out.push(Problem::new(
                        node,
                        "consul agent",
                        format!("{state} (as `{seer}` sees it)"),
                    ));
                }
            }
        }
        for c in &r.containers {
            let what = format!("container `{}`", c.name);
            if c.state != "running" {
                out.push(Problem::new(node, what, c.state.clone()));
            } else if let Some(h) = c.health.as_deref().filter(|h| *h != "healthy") {
                out.push(Problem::new(node, what, format!("running, {h}")));
            }
        }
    }
    if rows.iter().any(|r| r.consul_node) {
        match spokesman {
            None => out.push(Problem::new(None, "consul", "no agent answers on any node")),
            Some(s) if s.leader.is_none() => out.push(Problem::new(
                None,
                "consul",
                format!("no leader (as `{}` sees it)", s.node),
            )),
            Some(_) => {}
        }
    }
    out
}

/// Everything `status` prints as JSON: the rows and the problems.
#[derive(Serialize)]
struct Report<'a> {
    nodes: &'a [NodeStatus],
    problems: &'a [Problem],
}

/// How `status` repeats itself (`--watch`).
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub interval: std::time::Duration,
}

/// Print the table (or JSON) for every host of the inventory, then the
/// problems. Exit 0 when there are none, 4 when a node is unreachable,
/// else 2. With `watch`, again every interval until Ctrl-C (exit 130):
/// redrawn in place on a terminal, else a new block each time (one JSON
/// document a line with `-o json`).
pub fn status(
    connect: &ConnectOptions,
    format: OutputFormat,
    verbose: bool,
    watch: Option<Watch>,
) -> Result<i32> {
    use std::io::{IsTerminal, Write};
    let session = Session::open(connect)?;
    let hosts = session.hosts("all")?;
    let consul_nodes = session
        .inventory
        .select("servers:clients")
        .unwrap_or_default();
    let order: Vec<String> = super::ordered_hosts(&session)?
        .into_iter()
        .map(|h| h.name)
        .collect();
    let escalations = hosts
        .iter()
        .map(|h| escalation::for_host(&connect.escalation, &h.vars))
        .collect::<Result<Vec<_>>>()?;
    let connector = session.connector();
    let runtime = session::runtime()?;
    let look = || async {
        let limit = Arc::new(tokio::sync::Semaphore::new(connect.forks.max(1)));
        let jobs = hosts.iter().zip(&escalations).map(|(h, how)| {
            let limit = limit.clone();
            let connector = &connector;
            let consul_node = consul_nodes.contains(&h.name);
            async move {
                let _permit = limit.acquire().await;
                node_status(connector, h, how.clone(), consul_node).await
            }
        });
        let rows = futures::future::join_all(jobs).await;
        report(rows, &order, verbose, format, watch.is_some())
    };
    let Some(watch) = watch else {
        let (text, code) = runtime.block_on(look());
        print!("{text}");
        return Ok(code);
    };
    let terminal = std::io::stdout().is_terminal() && format == OutputFormat::Human;
    runtime.block_on(async {
        // One listener for the whole watch, so a Ctrl-C while asking is
        // seen as well as one while waiting.
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            let (text, _) = tokio::select! {
                looked = look() => looked,
                _ = &mut interrupted => return Ok(exit::INTERRUPTED),
            };
            let mut out = std::io::stdout().lock();
            let when = crate::cluster::lock::now_rfc3339();
            let seconds = watch.interval.as_secs_f64();
            let _ = match (terminal, format) {
                // Home, clear the screen, then the new picture.
                (true, _) => write!(
                    out,
                    "\x1b[H\x1b[2J\x1b[3Jevery {seconds}s: arpanet status  ({when}; Ctrl-C to stop)\n\n{text}"
                ),
                (false, OutputFormat::Human) => write!(out, "--- {when}\n{text}\n"),
                (false, OutputFormat::Json) => write!(out, "{text}"),
            };
            let _ = out.flush();
            drop(out);
            tokio::select! {
                _ = tokio::time::sleep(watch.interval) => {}
                _ = &mut interrupted => return Ok(exit::INTERRUPTED),
            }
        }
    })
}

/// The text `status` prints for `rows` and its exit code. `line`: JSON on
/// one line (a stream of documents under `--watch`).
fn report(
    rows: Vec<NodeStatus>,
    order: &[String],
    verbose: bool,
    format: OutputFormat,
    line: bool,
) -> (String, i32) {
    let seer = spokesman(&rows, order, verbose).cloned();
    let problems = problems(&rows, seer.as_ref());
    // Each agent's status as the cluster sees it.
    let mut rows = rows;
    let members = seer.and_then(|s| s.members).unwrap_or_default();
    for row in rows.iter_mut().filter(|r| r.consul_role.is_some()) {
        if let Some(m) = members.iter().find(|m| m.name == row.node) {
            row.consul_status = Some(m.status.clone());
        }
    }
    let text = match format {
        OutputFormat::Json => {
            let report = Report {
                nodes: &rows,
                problems: &problems,
            };
            let json = match line {
                true => serde_json::to_string(&report),
                false => serde_json::to_string_pretty(&report),
            };
            format!("{}\n", json.unwrap_or_default())
        }
        OutputFormat::Human => format!("{}{}", table(&rows), problem_lines(&problems)),
    };
    let code = if rows.iter().any(|r| !r.reachable) {
        exit::HOST_UNREACHABLE
    } else if problems.is_empty() {
        exit::OK
    } else {
        exit::HOST_FAILED
    };
    (text, code)
}

/// `problems:` and one indented line per problem (`node2: consul agent:
/// not answering: ...`), or nothing.
pub fn problem_lines(problems: &[Problem]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nproblems:\n");
    for p in problems {
        let node = p.node.as_deref().unwrap_or("cluster");
        out.push_str(&format!("  {node}: {}: {}\n", p.what, p.state));
    }
    out
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
                .map(|c| match &c.health {
                    Some(h) => format!("{}={} ({h}) [{}]", c.name, c.state, c.image),
                    None => format!("{}={} [{}]", c.name, c.state, c.image),
                })
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
    super::columns(&cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, state: &str, health: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: state.into(),
            image: "c:1".into(),
            health: health.map(str::to_owned),
        }
    }

    fn healthy(node: &str, role: &str) -> NodeStatus {
        NodeStatus {
            node: node.into(),
            address: "10.0.0.1".into(),
            reachable: true,
            docker: Some("20.10.24".into()),
            consul_role: Some(role.into()),
            consul_status: Some("alive".into()),
            leader: Some("10.0.0.1:8300".into()),
            containers: vec![container("consul", "running", None)],
            consul_node: true,
            ..NodeStatus::default()
        }
    }

    fn member(name: &str, status: &str) -> Member {
        Member {
            name: name.into(),
            status: status.into(),
        }
    }

    #[test]
    fn the_status_table_pads_columns() {
        let rows = vec![
            healthy("node1", "server"),
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
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn a_healthy_cluster_has_no_problems() {
        let mut one = healthy("node1", "server");
        one.members = Some(vec![member("node1", "alive"), member("node2", "alive")]);
        let rows = vec![one.clone(), healthy("node2", "client")];
        assert_eq!(problems(&rows, Some(&one)), []);
        assert_eq!(problem_lines(&[]), "");
    }

    #[test]
    fn problems_say_what_is_wrong_and_where() {
        let mut seer = healthy("node1", "server");
        seer.members = Some(vec![
            member("node1", "alive"),
            member("node2", "failed"),
            member("node3", "alive"),
        ]);
        seer.containers
            .push(container("web", "running", Some("unhealthy")));
        seer.containers
            .push(container("db", "running", Some("healthy")));
        let mut down = healthy("node2", "client");
        down.consul_role = None;
        down.consul_error = Some("nothing answers to 127.0.0.1:8500".into());
        down.containers = vec![container("consul", "exited", None)];
        let mut gone = healthy("node3", "client");
        gone.members = None;
        let gone = NodeStatus {
            reachable: false,
            error: Some("connection refused".into()),
            ..gone
        };
        // Not a Consul node: no agent or Docker expected.
        let plain = NodeStatus {
            node: "registry".into(),
            reachable: true,
            ..NodeStatus::default()
        };
        let rows = vec![seer.clone(), down, gone, plain];
        let found = problems(&rows, Some(&seer));
        let text = problem_lines(&found);
        assert_eq!(
            text,
            "\nproblems:\n  node1: container `web`: running, unhealthy\n  node2: consul agent: not answering: nothing answers to 127.0.0.1:8500\n  node2: container `consul`: exited\n  node3: ssh: unreachable: connection refused\n"
        );
        // A member the cluster sees failed while its agent answers.
        let mut flaky = healthy("node2", "client");
        flaky.consul_status = Some("alive".into());
        let found = problems(&[seer.clone(), flaky], Some(&seer));
        assert_eq!(
            found[1..],
            [Problem::new(
                Some("node2"),
                "consul agent",
                "failed (as `node1` sees it)"
            )]
        );
        // No leader; no agent at all.
        let mut leaderless = seer.clone();
        leaderless.leader = None;
        let found = problems(std::slice::from_ref(&leaderless), Some(&leaderless));
        assert_eq!(
            found[1..],
            [Problem::new(
                None,
                "consul",
                "no leader (as `node1` sees it)"
            )]
        );
        let mut silent = healthy("node1", "server");
        silent.consul_role = None;
        let found = problems(std::slice::from_ref(&silent), None);
        assert_eq!(
            found.last(),
            Some(&Problem::new(
                None,
                "consul",
                "no agent answers on any node"
            ))
        );
    }

    #[test]
    fn health_comes_from_dockers_status_column() {
        assert_eq!(health("Up 2 minutes (healthy)").as_deref(), Some("healthy"));
        assert_eq!(health("Up 5 s (unhealthy)").as_deref(), Some("unhealthy"));
        assert_eq!(
            health("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(health("Up 3 hours"), None);
        assert_eq!(health("Exited (1) 2 minutes ago"), None);
    }
}
