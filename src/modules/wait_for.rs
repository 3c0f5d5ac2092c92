//! `wait_for`: wait until a TCP port answers (or stops answering), or a file
//! appears, as seen from the host. Ports are probed by opening a forwarded
//! channel over the existing SSH connection, so the host needs no `nc` or
//! bash-only tricks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, InputKind, Result};
use crate::playbook::values::{text, Seconds, Text};
use crate::transport::quote;
use crate::yaml::Node;

/// `present`/`absent` (Ansible's words for `path:`) are accepted too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PortState {
    #[default]
    #[serde(alias = "present")]
    Started,
    #[serde(alias = "absent")]
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WaitForArgs {
    /// Default `127.0.0.1`, as seen from the remote host.
    pub host: String,
    /// A template so `{{ consul_port }}` works; must render to a port number.
    pub port: Option<String>,
    /// File to wait for, instead of a port.
    pub path: Option<String>,
    pub state: PortState,
    /// Seconds before the first check.
    pub delay: f64,
    /// Seconds before giving up (default 300).
    pub timeout: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WaitFor(pub WaitForArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitForMap {
    host: Option<Text>,
    port: Option<Text>,
    path: Option<Text>,
    state: Option<PortState>,
    delay: Option<Seconds>,
    timeout: Option<Seconds>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "wait_for"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: WaitForMap = args_map(node, "a mapping with `port` or `path`")?;
        if m.port.is_some() == m.path.is_some() {
            return Err(BadArgs::invalid("give exactly one of `port` and `path`"));
        }
        Ok(Arc::new(WaitFor(WaitForArgs {
            host: text(m.host).unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: text(m.port),
            path: text(m.path),
            state: m.state.unwrap_or_default(),
            delay: m.delay.map_or(0.0, |s| s.0),
            timeout: m.timeout.map_or(300.0, |s| s.0),
        })))
    }
}

impl Module for WaitFor {
    fn name(&self) -> &'static str {
        "wait_for"
    }

    fn summary(&self) -> String {
        match (&self.0.port, &self.0.path) {
            (Some(port), _) => format!("{}:{port}", self.0.host),
            (None, Some(path)) => path.clone(),
            (None, None) => String::new(),
        }
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = vec![self.0.host.as_str()];
        out.extend(self.0.port.as_deref());
        out.extend(self.0.path.as_deref());
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

const POLL: Duration = Duration::from_millis(250);

async fn run(args: &WaitForArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let host = ctx.render(&args.host)?;
    let port = match ctx.render_opt(args.port.as_ref())? {
        Some(p) => Some(p.trim().parse::<u16>().map_err(|_| {
            Error::input(
                ctx.location.clone(),
                InputKind::BadPort {
                    key: "port".into(),
                    value: p.clone(),
                },
            )
        })?),
        None => None,
    };
    let path = ctx.render_opt(args.path.as_ref())?;
    if port.is_none() && path.is_none() {
        return Err(Error::input(
            ctx.location.clone(),
            InputKind::NothingToWaitFor,
        ));
    }
    if ctx.check {
        return Ok(Outcome::skipped("wait_for does not wait in check mode"));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.delay.max(0.0))).await;
    let want_up = args.state == PortState::Started;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.max(0.0));
    loop {
        let up = match (port, &path) {
            (Some(port), _) => probe(ctx, &host, port).await?,
            (None, Some(path)) => ctx
                .exec(&format!("test -e {}", quote(path)), None)
                .await?
                .success(),
            (None, None) => unreachable!("checked above"),
        };
        if up == want_up {
            return Ok(Outcome::ok());
        }
        if Instant::now() >= deadline {
            let what = match (port, &path) {
                (Some(port), _) => format!("port {host}:{port}"),
                (None, Some(path)) => format!("`{path}`"),
                (None, None) => unreachable!(),
            };
            let state = if want_up {
                "to answer"
            } else {
                "to stop answering"
            };
            return Ok(Outcome::fail(format!(
                "timed out after {}s waiting for {what} {state}",
                args.timeout
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// True when a channel to `host:port` opens and stays open; the SSH
/// connection itself failing is passed up.
async fn probe(ctx: &Context<'_>, host: &str, port: u16) -> Result<bool> {
    match ctx.transport.forward(host, port).await {
        Ok(_stream) => Ok(true),
        Err(err @ Error::Unreachable { .. }) => Err(err),
        Err(_) => Ok(false),
    }
}
