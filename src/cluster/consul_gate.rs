//! `consul_gate`: the cluster-level gate of the built-in playbooks, asked
//! of Consul's autopilot rather than of gossip.
//!
//! ```yaml
//! - name: "gate: every server healthy, a leader, one failure tolerated"
//!   consul_gate:
//!     port: "{{ consul_port }}"
//!     servers: "{{ groups['servers'] }}"
//!     failure_tolerance: "{{ gate_failure_tolerance }}"
//!     node: "{{ inventory_hostname }}"   # optional: its checks must pass
//!     settle: 3                           # optional: seconds the verdict must hold
//!     timeout: 60
//! ```
//!
//! Gossip (`consul members`) and the raft configuration call a dead server
//! alive for 6-8 s; autopilot (`/v1/operator/autopilot/health`) marks it
//! unhealthy and lowers the failure tolerance within about 2 s. So before a
//! server is taken down, and after any agent changed, the gate asks the
//! node's agent (through a channel forwarded over SSH, as `kv` does) until
//! every server of `servers` is listed and `Healthy`, one of them leads,
//! `FailureTolerance` is at least `failure_tolerance`, and, with `node`,
//! every Consul check of that node passes (`/v1/health/node/NODE`: its
//! agent's serf health and any service checks on it).
//!
//! Autopilot refreshes its view of the servers about every 2 s, so a server
//! that died a moment ago can still read `Healthy`. With `settle`, the gate
//! opens only once its verdict has held that long in one go: the gate
//! before a server goes down uses it so that a server killed just after
//! the previous one's gate is seen before another server is taken down.
//!
//! When `timeout` passes first it fails with what it saw last: the servers
//! missing or unhealthy (serf status, last contact), the leader or its
//! absence, the failure tolerance, and the checks that do not pass with
//! their output. In check mode it does not wait.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::consul_api;
use crate::error::{Error, Result};
use crate::modules::templated::{OptText, Strings, Templated};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::playbook::values::json_strings;
use crate::yaml::Node;

const DEFAULT_TIMEOUT: f64 = 60.0;
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GateArgs {
    pub port: Templated<OptText>,
    pub servers: Templated<Strings>,
    pub failure_tolerance: Option<Templated<OptText>>,
    pub node: Option<Templated<String>>,
    pub settle: Option<Templated<OptText>>,
    pub timeout: Option<Templated<OptText>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConsulGate(pub GateArgs);

pub struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "consul_gate"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(ConsulGate(args_map(
            node,
            "a mapping with `port` and `servers`",
        )?)))
    }
}

impl Module for ConsulGate {
    fn name(&self) -> &'static str {
        "consul_gate"
    }

    fn summary(&self) -> String {
        "autopilot health".into()
    }

    fn templates(&self) -> Vec<&str> {
        let a = &self.0;
        let mut out = Vec::new();
        json_strings(a.port.raw(), &mut out);
        json_strings(a.servers.raw(), &mut out);
        for raw in [
            a.failure_tolerance.as_ref().map(Templated::raw),
            a.node.as_ref().map(Templated::raw),
            a.settle.as_ref().map(Templated::raw),
            a.timeout.as_ref().map(Templated::raw),
        ]
        .into_iter()
        .flatten()
        {
            json_strings(raw, &mut out);
        }
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

fn number<T: std::str::FromStr>(text: &str, name: &str, ctx: &Context<'_>) -> Result<T> {
    text.trim().parse().map_err(|_| {
        Error::input(
            ctx.location.clone(),
            crate::error::InputKind::BadValue {
                field: Some(name.to_owned()),
                found: format!("`{text}`"),
                expected: "a number".into(),
            },
        )
    })
}

fn text(t: OptText) -> String {
    t.0.unwrap_or_default()
}

async fn run(args: &GateArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let port: u16 = number(&text(args.port.get("port", ctx)?), "port", ctx)?;
    let servers = args.servers.get("servers", ctx)?.0;
    let tolerance: i64 = match &args.failure_tolerance {
        Some(t) => number(
            &text(t.get("failure_tolerance", ctx)?),
            "failure_tolerance",
            ctx,
        )?,
        None => 0,
    };
    let node = match &args.node {
        Some(n) => Some(n.get("node", ctx)?),
        None => None,
    };
    let timeout =
        crate::modules::container_gate::seconds(&args.timeout, "timeout", DEFAULT_TIMEOUT, ctx)?;
    let settle = crate::modules::container_gate::seconds(&args.settle, "settle", 0.0, ctx)?;
    let mut held = Held::new(Duration::from_secs_f64(settle));
    if ctx.check {
        return Ok(Outcome::skipped("gates do not wait in check mode"));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    loop {
        let problems = match look(ctx, port, &servers, tolerance, node.as_deref()).await {
            Ok(problems) => problems,
            Err(err @ Error::Unreachable { .. }) => return Err(err),
            Err(err) => vec![format!("the agent does not answer: {err}")],
        };
        if held.opens(problems.is_empty(), Instant::now()) {
            let mut ok = Outcome::ok();
            ok.msg = Some(format!(
                "{} servers healthy, a leader, failure tolerance {tolerance} or more",
                servers.len()
            ));
            return Ok(ok);
        }
        if !problems.is_empty() && Instant::now() >= deadline {
            let mut message = format!("gate failed: the cluster was not healthy within {timeout}s");
            for p in &problems {
                let _ = write!(message, "\n  {p}");
            }
            let mut outcome = Outcome::fail(message);
            let missing = problems
                .iter()
                .any(|p| p.starts_with("servers missing from autopilot"));
            if let Some(f) = outcome.failure.as_mut() {
                let mut hint = "no further server was taken down; see `arpanet status` and the \
                                logs of the servers named above"
                    .to_owned();
                if missing {
                    // A server whose agent was stopped by hand: this gate
                    // comes before the run reaches the agents.
                    hint.push_str(
                        "; a server missing from autopilot whose agent is stopped starts \
                         again with `arpanet run consul` (it starts the agents first)",
                    );
                }
                f.hint = Some(hint);
            }
            return Ok(outcome);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a good verdict has held for `settle` in one go.
struct Held {
    settle: Duration,
    since: Option<Instant>,
}

impl Held {
    fn new(settle: Duration) -> Held {
        Held {
            settle,
            since: None,
        }
    }

    /// Record one verdict seen at `now`; true once good ones have held for
    /// `settle` (at once when `settle` is zero). A bad one starts it over.
    fn opens(&mut self, good: bool, now: Instant) -> bool {
        if !good {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        now.duration_since(since) >= self.settle
    }
}

/// What keeps the gate closed now; empty when it opens.
async fn look(
    ctx: &Context<'_>,
    port: u16,
    servers: &[String],
    tolerance: i64,
    node: Option<&str>,
) -> Result<Vec<String>> {
    let token = super::acl::task_token(ctx, super::acl::MANAGEMENT)?;
    let token = token.as_deref();
    let get = |path: String| async move {
        consul_api::request(ctx.host, ctx.transport, port, "GET", &path, None, token).await
    };
    // 429 is autopilot's "answered, and unhealthy"; its body is the same.
    let health = get("/v1/operator/autopilot/health".into()).await?;
    let mut problems = match (health.status, serde_json::from_slice::<Value>(&health.body)) {
        (200 | 429, Ok(body)) => judge_autopilot(&body, servers, tolerance),
        (status, _) => vec![format!(
            "autopilot health: consul answered {status}: {}",
            health.text().trim()
        )],
    };
    if let Some(node) = node {
        let checks = get(format!("/v1/health/node/{node}")).await?;
        match (checks.status, serde_json::from_slice::<Value>(&checks.body)) {
            (200, Ok(body)) => problems.extend(judge_checks(&body, node)),
            (status, _) => problems.push(format!(
                "checks of `{node}`: consul answered {status}: {}",
                checks.text().trim()
            )),
        }
    }
    Ok(problems)
}

fn judge_autopilot(body: &Value, servers: &[String], tolerance: i64) -> Vec<String> {
    let listed: Vec<&Value> = body["Servers"].as_array().into_iter().flatten().collect();
    let name = |s: &Value| s["Name"].as_str().unwrap_or("").to_owned();
    let mut problems = Vec::new();
    let missing: Vec<String> = servers
        .iter()
        .filter(|want| !listed.iter().any(|s| &name(s) == *want))
        .map(|s| format!("`{s}`"))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "servers missing from autopilot: {}",
            missing.join(", ")
        ));
    }
    for s in &listed {
        if s["Healthy"].as_bool() != Some(true) {
            problems.push(format!(
                "server `{}` ({}) is not healthy: serf {}, last contact {}",
                name(s),
                s["Address"].as_str().unwrap_or("?"),
                s["SerfStatus"].as_str().unwrap_or("?"),
                s["LastContact"].as_str().unwrap_or("?"),
            ));
        }
    }
    if !listed.iter().any(|s| s["Leader"].as_bool() == Some(true)) {
        problems.push("no server leads".into());
    }
    let have = body["FailureTolerance"].as_i64().unwrap_or(0);
    if have < tolerance {
        problems.push(format!(
            "failure tolerance {have}, {tolerance} needed before a server may go down"
        ));
    }
    problems
}

fn judge_checks(body: &Value, node: &str) -> Vec<String> {
    let checks: Vec<&Value> = body.as_array().into_iter().flatten().collect();
    if checks.is_empty() {
        return vec![format!(
            "node `{node}` has no checks: it is not in the catalog"
        )];
    }
    checks
        .into_iter()
        .filter(|c| c["Status"].as_str() != Some("passing"))
        .map(|c| {
            let output = c["Output"].as_str().unwrap_or("").trim();
            let output: String = output.chars().take(200).collect();
            format!(
                "check `{}` of `{node}` is {}: {output}",
                c["Name"].as_str().unwrap_or("?"),
                c["Status"].as_str().unwrap_or("?"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<String> {
        ["node1", "node2", "node3"].map(String::from).to_vec()
    }

    fn server(name: &str, healthy: bool, leader: bool) -> Value {
        serde_json::json!({
            "Name": name, "Address": "10.0.0.1:8300", "SerfStatus": if healthy { "alive" } else { "failed" },
            "LastContact": "12s", "Healthy": healthy, "Leader": leader, "Voter": true
        })
    }

    #[test]
    fn the_verdict_must_hold_for_the_settle_window_in_one_go() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(Held::new(Duration::ZERO).opens(true, t0));
        let mut held = Held::new(Duration::from_secs(3));
        assert!(!held.opens(true, at(0)));
        assert!(!held.opens(true, at(2500)));
        // A server seen dead inside the window starts it over.
        assert!(!held.opens(false, at(2600)));
        assert!(!held.opens(true, at(3100)));
        assert!(!held.opens(true, at(6000)));
        assert!(held.opens(true, at(6100)));
    }

    #[test]
    fn a_healthy_cluster_opens_the_gate() {
        let body = serde_json::json!({
            "Healthy": true, "FailureTolerance": 1,
            "Servers": [server("node1", true, false), server("node2", true, true), server("node3", true, false)]
        });
        assert_eq!(judge_autopilot(&body, &servers(), 1), Vec::<String>::new());
    }

    #[test]
    fn a_dead_follower_keeps_it_closed_and_is_named() {
        let body = serde_json::json!({
            "Healthy": false, "FailureTolerance": 0,
            "Servers": [server("node1", true, true), server("node2", false, false)]
        });
        let problems = judge_autopilot(&body, &servers(), 1);
        assert_eq!(
            problems,
            [
                "servers missing from autopilot: `node3`",
                "server `node2` (10.0.0.1:8300) is not healthy: serf failed, last contact 12s",
                "failure tolerance 0, 1 needed before a server may go down",
            ]
        );
    }

    #[test]
    fn no_leader_and_failing_checks_are_named() {
        let body =
            serde_json::json!({"FailureTolerance": 1, "Servers": [server("node1", true, false)]});
        assert!(
            judge_autopilot(&body, &["node1".into()], 0).contains(&"no server leads".to_owned())
        );
        let checks = serde_json::json!([
            {"Name": "Serf Health Status", "Status": "passing", "Output": "ok"},
            {"Name": "web", "Status": "critical", "Output": "connection refused"}
        ]);
        assert_eq!(
            judge_checks(&checks, "node4"),
            ["check `web` of `node4` is critical: connection refused"]
        );
        assert_eq!(
            judge_checks(&serde_json::json!([]), "node4"),
            ["node `node4` has no checks: it is not in the catalog"]
        );
    }
}
