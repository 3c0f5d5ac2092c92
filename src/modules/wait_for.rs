//! `wait_for`: wait until something is ready, as seen from the host: a TCP
//! port answers (or stops answering), a file appears, an HTTP URL answers
//! with a status (`url`, `status_code`), or the node's Consul agent knows
//! a leader (`consul: leader`) or sees a member alive (`consul: member`,
//! `node`). Ports and URLs are reached through a channel forwarded over
//! the existing SSH connection, so the host needs no `nc`, `curl` or
//! bash-only tricks, and nothing has to listen beyond the host's loopback.
//!
//! ```yaml
//! - wait_for: {url: "http://127.0.0.1:8080/health", status_code: 200, timeout: 60}
//! - wait_for: {consul: leader, port: "{{ consul_port }}"}
//! - wait_for: {consul: member, node: node3, port: "{{ consul_port }}"}
//! ```

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

/// What `consul:` waits for, asked of the node's own agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConsulWait {
    /// The cluster has a leader (`/v1/status/leader`).
    Leader,
    /// `node` is an alive member: its `serfHealth` check passes.
    Member,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WaitForArgs {
    /// Default `127.0.0.1`, as seen from the remote host.
    pub host: String,
    /// A template so `{{ consul_port }}` works; must render to a port number.
    /// With `consul`, the agent's HTTP port (default 8500).
    pub port: Option<String>,
    /// File to wait for, instead of a port.
    pub path: Option<String>,
    /// `http://HOST[:PORT]/PATH` to GET, as seen from the host.
    pub url: Option<String>,
    /// The status `url` must answer with (default 200); a template.
    pub status_code: Option<String>,
    /// Ask the node's Consul agent instead.
    pub consul: Option<ConsulWait>,
    /// The member `consul: member` waits for.
    pub node: Option<String>,
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
    url: Option<Text>,
    status_code: Option<Text>,
    consul: Option<ConsulWait>,
    node: Option<Text>,
    state: Option<PortState>,
    delay: Option<Seconds>,
    timeout: Option<Seconds>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "wait_for"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: WaitForMap = args_map(node, "a mapping with `port`, `path`, `url` or `consul`")?;
        match m.consul {
            Some(_) if m.path.is_some() || m.url.is_some() || m.host.is_some() => {
                return Err(BadArgs::invalid(
                    "`consul` asks the node's own agent: give it `port` (its HTTP port) and, \
                     for `member`, `node`, but no `path`, `url` or `host`",
                ))
            }
            Some(ConsulWait::Member) if m.node.is_none() => {
                return Err(BadArgs::invalid(
                    "`consul: member` needs `node`: the member to wait for",
                ))
            }
            Some(ConsulWait::Leader) if m.node.is_some() => {
                return Err(BadArgs::invalid(
                    "`node` goes with `consul: member`, not `consul: leader`",
                ))
            }
            Some(_) => {}
            None => {
                let given = [m.port.is_some(), m.path.is_some(), m.url.is_some()];
                if given.iter().filter(|g| **g).count() != 1 {
                    return Err(BadArgs::invalid(
                        "give exactly one of `port`, `path`, `url` and `consul`",
                    ));
                }
                if m.node.is_some() {
                    return Err(BadArgs::invalid("`node` goes with `consul: member`"));
                }
            }
        }
        if m.status_code.is_some() && m.url.is_none() {
            return Err(BadArgs::invalid("`status_code` goes with `url`"));
        }
        if let Some(url) = m.url.as_ref().filter(|u| !u.0.contains("{{")) {
            http_url(&url.0).map_err(BadArgs::invalid)?;
        }
        Ok(Arc::new(WaitFor(WaitForArgs {
            host: text(m.host).unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: text(m.port),
            path: text(m.path),
            url: text(m.url),
            status_code: text(m.status_code),
            consul: m.consul,
            node: text(m.node),
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
        let a = &self.0;
        match (a.consul, &a.port, &a.path, &a.url) {
            (Some(ConsulWait::Leader), ..) => "consul leader".to_owned(),
            (Some(ConsulWait::Member), ..) => {
                format!("consul member {}", a.node.as_deref().unwrap_or_default())
            }
            (None, Some(port), ..) => format!("{}:{port}", a.host),
            (None, None, Some(path), _) => path.clone(),
            (None, None, None, Some(url)) => url.clone(),
            (None, None, None, None) => String::new(),
        }
    }

    fn templates(&self) -> Vec<&str> {
        let a = &self.0;
        let mut out = vec![a.host.as_str()];
        for t in [&a.port, &a.path, &a.url, &a.status_code, &a.node] {
            out.extend(t.as_deref());
        }
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

const POLL: Duration = Duration::from_millis(250);

/// What one wait is for, its templates rendered.
enum Awaited {
    Port(String, u16),
    Path(String),
    Url {
        url: String,
        host: String,
        url_port: u16,
        authority: String,
        target: String,
        status: u16,
    },
    Leader(u16),
    Member(u16, String),
}

impl Awaited {
    /// How a timeout names it.
    fn describe(&self) -> String {
        match self {
            Awaited::Port(host, port) => format!("port {host}:{port}"),
            Awaited::Path(path) => format!("`{path}`"),
            Awaited::Url { url, status, .. } => format!("`{url}` (status {status})"),
            Awaited::Leader(port) => format!("a Consul leader (the agent on port {port})"),
            Awaited::Member(port, node) => {
                format!("Consul member `{node}` alive (the agent on port {port})")
            }
        }
    }
}

/// `args` rendered for this host; a bad port, URL or status is an input
/// error at the task.
fn rendered(args: &WaitForArgs, ctx: &Context<'_>) -> Result<Awaited> {
    let bad = |key: &str, message: String| {
        Error::input(
            ctx.location.clone(),
            InputKind::Invalid {
                field: Some(key.to_owned()),
                message,
                hint: None,
            },
        )
    };
    let port = || -> Result<Option<u16>> {
        match ctx.render_opt(args.port.as_ref())? {
            Some(p) => p.trim().parse::<u16>().map(Some).map_err(|_| {
                Error::input(
                    ctx.location.clone(),
                    InputKind::BadPort {
                        key: "port".into(),
                        value: p.clone(),
                    },
                )
            }),
            None => Ok(None),
        }
    };
    if let Some(consul) = args.consul {
        let port = port()?.unwrap_or(8500);
        return Ok(match consul {
            ConsulWait::Leader => Awaited::Leader(port),
            ConsulWait::Member => {
                let node = ctx.render_opt(args.node.as_ref())?.unwrap_or_default();
                Awaited::Member(port, node.trim().to_owned())
            }
        });
    }
    if let Some(url) = ctx.render_opt(args.url.as_ref())? {
        let (host, url_port, authority, target) = http_url(&url).map_err(|m| bad("url", m))?;
        let status = match ctx.render_opt(args.status_code.as_ref())? {
            None => 200,
            Some(s) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|s| (100..600).contains(s))
                .ok_or_else(|| bad("status_code", format!("`{s}` is not an HTTP status")))?,
        };
        return Ok(Awaited::Url {
            url,
            host,
            url_port,
            authority,
            target,
            status,
        });
    }
    let host = ctx.render(&args.host)?;
    match (port()?, ctx.render_opt(args.path.as_ref())?) {
        (Some(port), _) => Ok(Awaited::Port(host, port)),
        (None, Some(path)) => Ok(Awaited::Path(path)),
        (None, None) => Err(Error::input(
            ctx.location.clone(),
            InputKind::NothingToWaitFor,
        )),
    }
}

async fn run(args: &WaitForArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let awaited = rendered(args, ctx)?;
    if ctx.check {
        return Ok(Outcome::skipped("wait_for does not wait in check mode"));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.delay.max(0.0))).await;
    let want_up = args.state == PortState::Started;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.max(0.0));
    loop {
        let up = match &awaited {
            Awaited::Port(host, port) => probe(ctx, host, *port).await?,
            Awaited::Path(path) => ctx
                .exec(&format!("test -e {}", quote(path)), None)
                .await?
                .success(),
            Awaited::Url {
                host,
                url_port,
                authority,
                target,
                status,
                ..
            } => get(ctx, host, *url_port, authority, target)
                .await?
                .is_some_and(|(got, _)| got == *status),
            Awaited::Leader(port) => get(
                ctx,
                "127.0.0.1",
                *port,
                &format!("127.0.0.1:{port}"),
                "/v1/status/leader",
            )
            .await?
            .is_some_and(|(status, body)| status == 200 && has_leader(&body)),
            Awaited::Member(port, node) => {
                let path = format!(
                    "/v1/health/node/{}",
                    crate::cluster::consul_api::percent_encoded(node, b"")
                );
                get(ctx, "127.0.0.1", *port, &format!("127.0.0.1:{port}"), &path)
                    .await?
                    .is_some_and(|(status, body)| status == 200 && alive(&body))
            }
        };
        if up == want_up {
            return Ok(Outcome::ok());
        }
        if Instant::now() >= deadline {
            let consul = matches!(awaited, Awaited::Leader(_) | Awaited::Member(..));
            let state = match (consul, want_up) {
                (true, true) => "",
                (true, false) => " to end",
                (false, true) => " to answer",
                (false, false) => " to stop answering",
            };
            return Ok(Outcome::fail(format!(
                "timed out after {}s waiting for {}{state}",
                args.timeout,
                awaited.describe()
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

/// `http://AUTHORITY/TARGET` split into the host to reach (`::1` for
/// `[::1]:81`), its port (80 when the URL names none), the authority (the
/// `Host` header) and the target (`/` when empty); anything else is refused
/// with why. Only plain HTTP: the request travels inside the SSH connection.
fn http_url(url: &str) -> std::result::Result<(String, u16, String, String), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "`url` must start with `http://` (got `{url}`): the request goes from the host, \
             through the SSH connection, to the address the URL names"
        ));
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let host_and_port = match authority.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .map(|(host, after)| (host, after.trim_start_matches(':'))),
        None => Some(authority.rsplit_once(':').unwrap_or((authority, ""))),
    };
    let (host, port_text) = match host_and_port {
        Some((host, port)) => (host, Some(port)),
        None => ("", None),
    };
    let port = match port_text {
        Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`url` `{url}` has a bad port `{p}`"))?,
        None => return Err(format!("`url` `{url}` has an unclosed `[`")),
    };
    if host.is_empty() {
        return Err(format!("`url` `{url}` names no host"));
    }
    Ok((host.to_owned(), port, authority.to_owned(), target))
}

/// The most of a response `get` reads: the status line and a body of a
/// few kilobytes is all a wait looks at.
const MOST: u64 = 64 * 1024;

/// `GET target` from `host:port` as seen from the host, through a forwarded
/// channel: the status and the body, or `None` when nothing answered in
/// time or the answer was not HTTP. The SSH connection failing is passed up.
async fn get(
    ctx: &Context<'_>,
    host: &str,
    port: u16,
    authority: &str,
    target: &str,
) -> Result<Option<(u16, Vec<u8>)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match ctx.transport.forward(host, port).await {
        Ok(stream) => stream,
        Err(err @ Error::Unreachable { .. }) => return Err(err),
        Err(_) => return Ok(None),
    };
    let exchange = async {
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: arpanet\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        (&mut stream).take(MOST).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(raw)) => raw,
        _ => return Ok(None),
    };
    Ok(status_and_body(&raw))
}

/// The status of an HTTP response and as much of its body as came.
fn status_and_body(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    if let Some(full) = crate::cluster::consul_api::parse(raw) {
        return Some((full.status, full.body));
    }
    let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&raw[..line_end]).ok()?;
    let status = line
        .strip_prefix("HTTP/")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, Vec::new()))
}

/// `/v1/status/leader`'s answer names a leader (`"10.0.0.1:8300"`, not `""`).
fn has_leader(body: &[u8]) -> bool {
    serde_json::from_slice::<String>(body).is_ok_and(|leader| !leader.is_empty())
}

/// `/v1/health/node/NODE`'s checks include a passing `serfHealth`: the
/// member is alive in the gossip pool.
fn alive(body: &[u8]) -> bool {
    serde_json::from_slice::<Vec<serde_json::Value>>(body).is_ok_and(|checks| {
        checks
            .iter()
            .any(|c| c["CheckID"] == "serfHealth" && c["Status"] == "passing")
    })
}

#[cfg(test)]
mod tests {
    use super::{alive, has_leader, http_url, status_and_body};

    #[test]
    fn http_urls_split_into_authority_port_and_target() {
        let ok = |url: &str| http_url(url).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:8080/health"),
            (
                "127.0.0.1".into(),
                8080,
                "127.0.0.1:8080".into(),
                "/health".into()
            )
        );
        assert_eq!(
            ok("http://web"),
            ("web".into(), 80, "web".into(), "/".into())
        );
        assert_eq!(
            ok("http://web?x=1"),
            ("web".into(), 80, "web".into(), "/?x=1".into())
        );
        assert_eq!(
            ok("http://[::1]:81/a?b"),
            ("::1".into(), 81, "[::1]:81".into(), "/a?b".into())
        );
        for bad in [
            "https://web/",
            "web:80",
            "http://:80/",
            "http://web:0/",
            "http://web:x/",
            "http://[::1/",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_read_for_their_status_leader_and_members() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n\"10.0.0.1:8300\"\r\n";
        let (status, body) = status_and_body(full).unwrap();
        assert_eq!(status, 200);
        assert!(has_leader(&body[..15]));
        assert!(!has_leader(b"\"\""));
        // Cut short (a big body past what is read): the status still counts.
        let cut = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 99999\r\n\r\nxx";
        assert_eq!(status_and_body(cut).unwrap().0, 503);
        assert_eq!(status_and_body(b"SSH-2.0-OpenSSH\r\n"), None);
        let checks =
            br#"[{"CheckID":"serfHealth","Status":"passing"},{"CheckID":"x","Status":"critical"}]"#;
        assert!(alive(checks));
        assert!(!alive(br#"[{"CheckID":"serfHealth","Status":"critical"}]"#));
        assert!(!alive(b"[]"));
    }
}
