//! `container_gate`: a gate that sees a container fail, not just a moment
//! where it happened to run.
//!
//! ```yaml
//! - name: "gate: the containers stay up"
//!   container_gate:
//!     names: ["consul", "cadvisor"]
//!     settle: "{{ gate_settle_seconds }}"   # default 10
//!     timeout: 60                          # for health checks to pass
//! ```
//!
//! Reading `running` once passes a crash-looping container between two
//! crashes. So the gate samples every container once a second (`docker
//! inspect`: state, restart count, last exit code, start time, health) and
//! passes only when each has been running for `settle` seconds in one go,
//! with its Docker health check `healthy` where it has one. A container that
//! has been up that long already passes at the first sample, so a gate after
//! a task that changed nothing costs one `docker inspect`.
//!
//! It fails at once when a container is missing, not running, restarted
//! since the first sample or unhealthy, and when `timeout` passes first. Its
//! message is the whole picture: every container's state, restart count,
//! last exit code, uptime and health, and the last 20 log lines of each
//! container that failed, so the operator sees why without logging in.
//!
//! A module rather than `command` + `until`: `until` re-reads one state and
//! can only say "still false after N attempts"; the gate compares samples
//! over a window and reports what it saw. In check mode it does not wait.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::templated::{OptText, Strings, Templated};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, Result};
use crate::playbook::values::{json_strings, MAX_SECONDS};
use crate::transport::quote;
use crate::yaml::Node;

/// Seconds a container must stay up when `settle` is not given.
const DEFAULT_SETTLE: f64 = 10.0;
/// Seconds to wait for health checks when `timeout` is not given.
const DEFAULT_TIMEOUT: f64 = 60.0;
/// Log lines shown for a container that failed its gate.
const LOG_LINES: usize = 20;
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GateArgs {
    pub names: Templated<Strings>,
    pub settle: Option<Templated<OptText>>,
    pub timeout: Option<Templated<OptText>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContainerGate(pub GateArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "container_gate"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(ContainerGate(args_map(
            node,
            "a mapping with `names`",
        )?)))
    }
}

impl Module for ContainerGate {
    fn name(&self) -> &'static str {
        "container_gate"
    }

    fn summary(&self) -> String {
        match self.0.names.raw() {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        json_strings(self.0.names.raw(), &mut out);
        for arg in [&self.0.settle, &self.0.timeout].into_iter().flatten() {
            json_strings(arg.raw(), &mut out);
        }
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

/// A number of seconds argument, which templates may render to a number or
/// a string; absent or empty is `default`.
pub(crate) fn seconds(
    arg: &Option<Templated<OptText>>,
    name: &str,
    default: f64,
    ctx: &Context<'_>,
) -> Result<f64> {
    let Some(text) = arg
        .as_ref()
        .map(|a| a.get(name, ctx))
        .transpose()?
        .and_then(|t| t.0)
    else {
        return Ok(default);
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| (0.0..=MAX_SECONDS).contains(n))
        .ok_or_else(|| {
            Error::input(
                ctx.location.clone(),
                crate::error::InputKind::BadValue {
                    field: Some(name.to_owned()),
                    found: format!("`{text}`"),
                    expected: format!("a number of seconds from 0 to {MAX_SECONDS}"),
                },
            )
        })
}

async fn run(args: &GateArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let names = args.names.get("names", ctx)?.0;
    let settle = seconds(&args.settle, "settle", DEFAULT_SETTLE, ctx)?;
    let timeout = seconds(&args.timeout, "timeout", DEFAULT_TIMEOUT, ctx)?;
    if ctx.check {
        return Ok(Outcome::skipped("gates do not wait in check mode"));
    }
    if names.is_empty() {
        return Ok(Outcome::ok());
    }
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(timeout.max(settle + 5.0));
    let mut first: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let seen = match sample(ctx, &names).await {
            Ok(seen) => seen,
            Err(outcome) => return Ok(outcome),
        };
        for s in &seen {
            first
                .entry(s.name.clone())
                .or_insert(s.restarts.unwrap_or(0));
        }
        let verdict = judge(&seen, &first, settle);
        match verdict {
            Verdict::Pass => {
                let mut ok = Outcome::ok();
                ok.msg = Some(format!(
                    "{} up {settle}s or more, no restarts",
                    names.join(", ")
                ));
                return Ok(ok);
            }
            Verdict::Fail(bad) => return Ok(failure(ctx, seen, &first, &bad, settle, began).await),
            Verdict::Wait(waiting) if Instant::now() >= deadline => {
                return Ok(failure(ctx, seen, &first, &waiting, settle, began).await)
            }
            Verdict::Wait(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// One container as one sample saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    name: String,
    /// `None`: no such container.
    status: Option<String>,
    restarts: Option<u64>,
    exit_code: Option<i64>,
    /// Seconds since it started, by the node's clock.
    uptime: Option<f64>,
    /// `healthy`, `starting`, `unhealthy`, or none without a health check.
    health: Option<String>,
}

/// What one sample says.
#[derive(Debug, PartialEq)]
enum Verdict {
    Pass,
    /// Not yet: these have not been up long enough, or are still starting.
    Wait(Vec<String>),
    /// These failed: missing, not running, restarted, or unhealthy.
    Fail(Vec<String>),
}

fn judge(seen: &[Seen], first: &BTreeMap<String, u64>, settle: f64) -> Verdict {
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    for s in seen {
        let restarted = s.restarts.unwrap_or(0) != first.get(&s.name).copied().unwrap_or(0);
        if s.status.as_deref() != Some("running")
            || restarted
            || s.health.as_deref() == Some("unhealthy")
        {
            failed.push(s.name.clone());
        } else if s.uptime.unwrap_or(0.0) < settle
            || s.health.as_deref().is_some_and(|h| h != "healthy")
        {
            waiting.push(s.name.clone());
        }
    }
    match (failed.is_empty(), waiting.is_empty()) {
        (false, _) => Verdict::Fail(failed),
        (true, false) => Verdict::Wait(waiting),
        (true, true) => Verdict::Pass,
    }
}

/// The inspect format: one line per container.
const FORMAT: &str = "{{.Name}} {{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} {{.State.StartedAt}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}";

/// Sample every container, with the node's clock. A failure to run the
/// command at all is the task's failure.
async fn sample(ctx: &Context<'_>, names: &[String]) -> Result<Vec<Seen>, Outcome> {
    let quoted: Vec<String> = names.iter().map(|n| quote(n)).collect();
    let command = format!(
        "date +%s; docker inspect --format {} {} 2>/dev/null; true",
        quote(FORMAT),
        quoted.join(" ")
    );
    let out = ctx.framed_script(&command).await?;
    Ok(parse_sample(&out.stdout, names))
}

fn parse_sample(stdout: &str, names: &[String]) -> Vec<Seen> {
    let mut lines = stdout.lines();
    let now: Option<i64> = lines.next().and_then(|l| l.trim().parse().ok());
    let mut found: BTreeMap<String, Seen> = BTreeMap::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, status, restarts, exit, started, health] = words[..] else {
            continue;
        };
        let name = name.trim_start_matches('/').to_owned();
        let started =
            time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339)
                .ok();
        let uptime = match (now, started) {
            (Some(now), Some(started)) => Some((now as f64) - started.unix_timestamp() as f64),
            _ => None,
        };
        found.insert(
            name.clone(),
            Seen {
                name,
                status: Some(status.to_owned()),
                restarts: restarts.parse().ok(),
                exit_code: exit.parse().ok(),
                uptime,
                health: (health != "-").then(|| health.to_owned()),
            },
        );
    }
    names
        .iter()
        .map(|n| {
            found.remove(n).unwrap_or(Seen {
                name: n.clone(),
                status: None,
                restarts: None,
                exit_code: None,
                uptime: None,
                health: None,
            })
        })
        .collect()
}

/// One line per container: what the last sample saw.
fn picture(seen: &[Seen], first: &BTreeMap<String, u64>) -> String {
    let mut out = String::new();
    for s in seen {
        let Some(status) = &s.status else {
            let _ = write!(out, "\n  `{}`: no such container", s.name);
            continue;
        };
        let restarts = s.restarts.unwrap_or(0);
        let before = first.get(&s.name).copied().unwrap_or(restarts);
        let _ = write!(out, "\n  `{}`: {status}, restart count {restarts}", s.name);
        if before != restarts {
            let _ = write!(out, " (was {before} when the gate began)");
        }
        if let Some(code) = s.exit_code {
            let _ = write!(out, ", last exit code {code}");
        }
        if let (Some(up), "running") = (s.uptime, status.as_str()) {
            let _ = write!(out, ", up {}s", up.max(0.0));
        }
        if let Some(health) = &s.health {
            let _ = write!(out, ", health {health}");
        }
    }
    out
}

/// The exit code of `name`'s last exit in the last `secs` seconds, from
/// Docker's `die` events: once a restart policy has started it again,
/// `docker inspect` says 0.
async fn last_exit(ctx: &Context<'_>, name: &str, secs: u64) -> Option<i64> {
    let command = format!(
        "now=$(date +%s); docker events --since $((now - {secs})) --until $now --filter container={} --filter event=die --format '{{{{.Actor.Attributes.exitCode}}}}'",
        quote(name)
    );
    let out = ctx.framed_exec(&command).await.ok()?;
    out.stdout.lines().rev().find_map(|l| l.trim().parse().ok())
}

async fn failure(
    ctx: &Context<'_>,
    mut seen: Vec<Seen>,
    first: &BTreeMap<String, u64>,
    bad: &[String],
    settle: f64,
    began: Instant,
) -> Outcome {
    let secs = began.elapsed().as_secs() + 5;
    for s in seen
        .iter_mut()
        .filter(|s| bad.contains(&s.name) && s.status.is_some())
    {
        if let Some(code) = last_exit(ctx, &s.name, secs).await {
            s.exit_code = Some(code);
        }
    }
    let seen = &seen[..];
    let mut message = format!(
        "gate failed: {} did not stay running and healthy for {settle}s",
        bad.iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    message.push_str(&picture(seen, first));
    for name in bad {
        if seen.iter().any(|s| &s.name == name && s.status.is_none()) {
            continue;
        }
        let command = format!("docker logs --tail {LOG_LINES} {} 2>&1", quote(name));
        let logs = match ctx.framed_exec(&command).await {
            Ok(out) => out.stdout,
            Err(err) => format!("(cannot read the logs: {err})"),
        };
        let _ = write!(message, "\n  last {LOG_LINES} log lines of `{name}`:");
        let lines: Vec<&str> = logs.lines().collect();
        for line in &lines[lines.len().saturating_sub(LOG_LINES)..] {
            let _ = write!(message, "\n    {line}");
        }
    }
    let mut outcome = Outcome::fail(message);
    if let Some(failure) = outcome.failure.as_mut() {
        failure.hint = Some(
            "the hosts after this batch were not changed; fix the image or its settings and run again"
                .into(),
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_sample_is_read_with_the_nodes_clock() {
        let seen = parse_sample(
            "1700000010\n/consul running 0 0 2023-11-14T22:13:20.123456789Z -\n/web restarting 3 1 2023-11-14T22:13:25Z unhealthy\n",
            &names(&["consul", "web", "gone"]),
        );
        assert_eq!(seen[0].status.as_deref(), Some("running"));
        assert_eq!(seen[0].uptime, Some(10.0));
        assert_eq!(seen[0].health, None);
        assert_eq!(seen[1].restarts, Some(3));
        assert_eq!(seen[1].exit_code, Some(1));
        assert_eq!(seen[1].health.as_deref(), Some("unhealthy"));
        assert_eq!(seen[2].status, None, "a missing container");
    }

    fn running(name: &str, restarts: u64, uptime: f64, health: Option<&str>) -> Seen {
        Seen {
            name: name.into(),
            status: Some("running".into()),
            restarts: Some(restarts),
            exit_code: Some(0),
            uptime: Some(uptime),
            health: health.map(str::to_owned),
        }
    }

    #[test]
    fn only_a_container_up_for_the_whole_window_passes() {
        let first: BTreeMap<String, u64> = [("web".to_owned(), 0)].into();
        let judge1 = |s: Seen| judge(&[s], &first, 10.0);
        assert_eq!(judge1(running("web", 0, 10.0, None)), Verdict::Pass);
        assert_eq!(
            judge1(running("web", 0, 3.0, None)),
            Verdict::Wait(names(&["web"]))
        );
        // Running again, but it restarted since the gate began.
        assert_eq!(
            judge1(running("web", 1, 30.0, None)),
            Verdict::Fail(names(&["web"]))
        );
        assert_eq!(
            judge1(running("web", 0, 30.0, Some("starting"))),
            Verdict::Wait(names(&["web"]))
        );
        assert_eq!(
            judge1(running("web", 0, 30.0, Some("unhealthy"))),
            Verdict::Fail(names(&["web"]))
        );
        assert_eq!(
            judge1(running("web", 0, 30.0, Some("healthy"))),
            Verdict::Pass
        );
        let mut exited = running("web", 0, 30.0, None);
        exited.status = Some("restarting".into());
        assert_eq!(judge1(exited), Verdict::Fail(names(&["web"])));
    }

    #[test]
    fn the_picture_names_restarts_and_exit_codes() {
        let first: BTreeMap<String, u64> = [("web".to_owned(), 0)].into();
        let mut web = running("web", 2, 1.0, None);
        web.status = Some("restarting".into());
        web.exit_code = Some(3);
        let text = picture(&[web, running("gone", 0, 0.0, None)], &first);
        assert!(
            text.contains(
                "`web`: restarting, restart count 2 (was 0 when the gate began), last exit code 3"
            ),
            "{text}"
        );
    }
}
