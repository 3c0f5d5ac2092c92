//! Consul's ACLs: on by default (`consul_acl: true`), default deny. The
//! cluster's tokens are secrets like its gossip key: made once beside the
//! inventory by `cluster_secrets` (`acl: true`), adopted by a checkout
//! without them from the running cluster, refused with fingerprints when
//! they differ (see `secrets`). Three kinds of token, each a random UUID
//! used as its SecretID:
//!
//! - `acl-management.token`: the management token, arpanet's own. Consul's
//!   leader creates it from the servers' `acl.tokens.master` the first time
//!   it leads with ACLs on: the ACL system is bootstrapped once, with a
//!   token this machine already holds (no `/v1/acl/bootstrap` race between
//!   two checkouts, and a rerun converges). arpanet's own calls to
//!   Consul's HTTP API carry it in the `X-Consul-Token` header ([`token`]):
//!   `kv`, `status`, `services`, the deployed record, the lock, the gates,
//!   `rotate`, this task. It is kept on the servers only
//!   (`management.token`, 0600, for adopting and for `consul_cli` there).
//! - each agent's own token (`hosts/NODE/acl-agent.token`; on the node
//!   `agent.token`, 0600, and `acl.tokens.agent` in its `acl.json`, which
//!   is `hosts/NODE/acl.json` here): policy `arpanet-agent-NODE`, write on
//!   its own node (`node "NODE"`) and read on services, as Consul's docs
//!   give an agent. An agent that runs is handed its token through its API
//!   (`PUT /v1/agent/token/agent`, as `consul acl set-agent-token` does;
//!   `enable_token_persistence` keeps it over restarts), so a new token
//!   restarts no agent. Clusters made before this version share one
//!   agent token (`acl-agent.token`, policy `arpanet-agent`): the first
//!   run that has handed every agent its own token deletes it.
//! - `acl-linking.token`: the linking watcher's, the Connect proxies' and
//!   the `consul_services` task's (`linking.token` on every node, 0600,
//!   mounted as a file into each proxy, never in an environment): service
//!   and intention write, node and agent read, KV write under
//!   `KV_PATH/env/` and `KV_PATH/upstreams/` only (what linking publishes).
//!   Registrations made with it are synced with it, so Consul keeps no
//!   stronger token on a client node.
//!
//! `arpanet rotate --tokens` (`playbooks/rotate-tokens.yml`) replaces the
//! management token and every agent's: the new management token is
//! written here first (the old one kept as `acl-management.old.token`) and
//! made in Consul with the old one ([`Step::Rotate`]); the agents' new
//! tokens are made and handed out as above, their old ones retired; the
//! servers restart one at a time, since a leader makes the master token
//! it started with again when that token is missing; only then is the old
//! management token deleted ([`Step::Forget`]). The linking token is not
//! rotated (the stack's registrations and the Connect proxies hold it).
//!
//! The anonymous token gets node and service read, so DNS (`*.service.consul`)
//! and catalog reads keep working without a token; any other read or write
//! (KV outside `env/`, sessions, ACLs, operator) by a container without a
//! token is denied (403).
//!
//! The `consul_acl` task works in three steps (`step:`), at the end of
//! `playbooks/consul-agents.yml`, once a leader runs with ACLs on:
//!
//! ```yaml
//! - consul_acl:                  # run_once, on a server
//!     dir: "{{ consul_tls_dir }}"
//!     port: "{{ consul_port }}"
//!     kv_path: "{{ consul_kv_path }}"
//!     nodes: "{{ groups['servers'] + groups['clients'] }}"
//! - consul_acl:                  # on every node: its agent's own token
//!     step: hand
//!     dir: "{{ consul_tls_dir }}"
//!     port: "{{ consul_port }}"
//!     data: "{{ consul_data }}"
//! - consul_acl:                  # run_once: tokens no agent uses any more
//!     step: retire
//!     dir: "{{ consul_tls_dir }}"
//!     port: "{{ consul_port }}"
//!     nodes: "{{ groups['servers'] + groups['clients'] }}"
//! ```
//!
//! `make` creates each policy and token when missing and updates it when
//! its rules differ; `hand` gives a running agent its token when the one it
//! persisted is another; `retire` deletes the shared agent token of older
//! versions and agent tokens replaced by `arpanet rotate --tokens`, only
//! once `hand` has run on every node of `nodes` (a run cut short or limited
//! to some nodes retires nothing). A rerun changes nothing. On a cluster
//! whose agents do not enforce ACLs yet (a cluster made before ACLs, in the
//! middle of the roll that enables them) each step is skipped, and the end
//! of that roll runs them again. Tokens are never printed: answers are
//! masked.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::consul_api;
use crate::error::{Error, Result};
use crate::modules::templated::{Strings, Templated};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::transport::{quote, Transport};
use crate::vars::Vars;
use crate::yaml::Node;

/// The management token, beside the inventory (in `consul_tls_dir`).
pub(crate) const MANAGEMENT: &str = "acl-management.token";
/// The management token being replaced by `rotate --tokens`, kept until
/// every server runs with the new one and the old one is deleted.
pub(crate) const OLD_MANAGEMENT: &str = "acl-management.old.token";
/// An agent's own token, in its host's directory (`hosts/NODE/`).
pub(crate) const AGENT: &str = "acl-agent.token";
/// The linking watcher's and proxies' token.
pub(crate) const LINKING: &str = "acl-linking.token";

/// Each cluster-wide local token file and the file a node keeps it in (in
/// `node_dir`).
pub(crate) const ON_NODES: [(&str, &str); 2] =
    [(MANAGEMENT, "management.token"), (LINKING, "linking.token")];

/// The agent's own token on its node (in `node_dir`).
pub(crate) const NODE_AGENT: &str = "agent.token";

/// The agent's ACL configuration, on the node (in `node_dir`) and in its
/// host's directory here (`hosts/NODE/`).
pub(crate) const NODE_CONFIG: &str = "acl.json";

/// What older versions kept beside the inventory: the one agent token
/// every agent shared and the configurations holding it. Removed once
/// that token is retired.
const SHARED: [&str; 3] = ["acl-agent.token", "acl-server.json", "acl-client.json"];

/// The shared agent policy of older versions.
const SHARED_POLICY: &str = "arpanet-agent";

/// Where the token and configuration of `host`'s agent are kept here.
pub(crate) fn host_dir(dir: &Path, host: &str) -> std::path::PathBuf {
    dir.join(super::pki::HOSTS_DIR).join(host)
}

/// How a token is named in messages.
pub(crate) fn what(file: &str) -> &'static str {
    match file {
        MANAGEMENT => "ACL management token",
        AGENT => "ACL agent token",
        _ => "ACL linking token",
    }
}

/// The policy of `node`'s agent token: `arpanet-agent-NODE`, with any
/// character Consul does not allow in a policy name replaced by `-` and
/// then a digest of the name, so two nodes never share one.
pub(crate) fn agent_policy(node: &str) -> String {
    let clean: String = node
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '-',
            },
        )
        .collect();
    match clean == node {
        true => format!("{SHARED_POLICY}-{node}"),
        false => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(node.as_bytes());
            format!("{SHARED_POLICY}-{clean}-{}", hex::encode(&digest[..4]))
        }
    }
}

/// The rules of `node`'s agent policy: write on its own node, read on
/// services (what an agent's anti-entropy needs).
fn agent_rules(node: &str) -> String {
    let name = serde_json::to_string(node).unwrap_or_default();
    format!(
        "node {name} {{\n  policy = \"write\"\n}}\nservice_prefix \"\" {{\n  policy = \"read\"\n}}\n"
    )
}

/// The token in `dir/file`, when there is one.
pub(crate) fn read(dir: &Path, file: &str) -> Result<Option<String>> {
    match std::fs::read_to_string(dir.join(file)) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", dir.join(file), e)),
    }
}

/// The management token of the checkout whose (rendered) variables these
/// are: what arpanet's own calls to Consul carry. `None` when there is
/// none (a cluster without ACLs), and the calls go without one.
pub(crate) fn token(vars: &Vars) -> Result<Option<String>> {
    match vars.get("consul_tls_dir").and_then(Value::as_str) {
        Some(dir) if !dir.contains("{{") => token_in(dir),
        _ => Ok(None),
    }
}

/// The management token of the checkout whose secrets are in `dir`: its
/// file, else the one [`learn`] read from the cluster in this process.
pub(crate) fn token_in(dir: &str) -> Result<Option<String>> {
    if let Some(token) = read(Path::new(dir), MANAGEMENT)? {
        return Ok(Some(token));
    }
    let learned = LEARNED.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(learned
        .iter()
        .find(|(d, _)| d == dir)
        .map(|(_, t)| t.clone()))
}

/// Where the management token [`token_in`] finds for `dir` comes from, in
/// words for a message: its file here, or the copy read from a server by
/// [`learn`]; `None` when there is none.
pub(crate) fn token_origin(dir: &str) -> Option<String> {
    let file = Path::new(dir).join(MANAGEMENT);
    if file.is_file() {
        return Some(format!("`{}`", file.display()));
    }
    let learned = LEARNED.lock().unwrap_or_else(PoisonError::into_inner);
    learned.iter().any(|(d, _)| d == dir).then(|| {
        format!(
            "the servers' `management.token` (this checkout has no `{}`)",
            file.display()
        )
    })
}

/// [`token_origin`] of the checkout whose (rendered) variables these are.
pub(crate) fn token_origin_of(vars: &Vars) -> Option<String> {
    match vars.get("consul_tls_dir").and_then(Value::as_str) {
        Some(dir) if !dir.contains("{{") => token_origin(dir),
        _ => None,
    }
}

/// Tokens read from a server by [`learn`], by `consul_tls_dir`.
static LEARNED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// A checkout without the management token (a teammate's copy of the
/// inventory) reads the one `host` keeps (a server's
/// `{{ consul_data }}/arpanet/management.token`), for this process only,
/// so that its first run can read the deployed record and take the lock
/// before `cluster_secrets` adopts the file as it adopts the other
/// secrets. Nothing when this checkout has one or the node has none (or
/// may not be read by the SSH user).
pub(crate) async fn learn(vars: &Vars, conn: &dyn Transport, host: &str) -> Result<()> {
    let (Some(dir), Some(data)) = (
        vars.get("consul_tls_dir").and_then(Value::as_str),
        vars.get("consul_data").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    if dir.contains("{{") || data.contains("{{") || token_in(dir)?.is_some() {
        return Ok(());
    }
    let path = format!("{data}/arpanet/management.token");
    let script = format!("cat {} 2>/dev/null || true", quote(&path));
    let out = crate::probe::exec(conn, host, &script, None).await?;
    let token = out.stdout.trim();
    if !token.is_empty() {
        let mut learned = LEARNED.lock().unwrap_or_else(PoisonError::into_inner);
        learned.push((dir.to_owned(), token.to_owned()));
    }
    Ok(())
}

/// [`token`] for a task: its `consul_tls_dir` rendered (under `--check`,
/// the scratch copy `cluster_secrets` points it at).
pub(crate) fn task_token(ctx: &Context<'_>, file: &str) -> Result<Option<String>> {
    if !ctx.vars.contains_key("consul_tls_dir") {
        return Ok(None);
    }
    let dir = ctx.render("{{ consul_tls_dir }}")?;
    read(Path::new(&dir), file)
}

/// A new token: a random UUID (version 4), as Consul makes them.
pub(crate) fn new_token() -> String {
    let mut b = rand::random::<[u8; 16]>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The agent's ACL configuration (`acl.json` on the node): default deny,
/// its agent token, and on servers the management token as the master
/// token, which the leader creates when it first leads with ACLs on.
pub(crate) fn agent_config(datacenter: &str, agent: &str, master: Option<&str>) -> String {
    let mut tokens = json!({ "agent": agent });
    if let Some(master) = master {
        tokens["master"] = json!(master);
    }
    let config = json!({
        "primary_datacenter": datacenter,
        "acl": {
            "enabled": true,
            "default_policy": "deny",
            "down_policy": "extend-cache",
            "enable_token_persistence": true,
            "tokens": tokens,
        }
    });
    let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
    text.push('\n');
    text
}

pub(crate) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "consul_acl"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let args: AclArgs = args_map(node, "a mapping with `dir` and `port`")?;
        let needs: &[(&str, bool)] = match args.step {
            Step::Make => &[
                ("kv_path", args.kv_path.is_some()),
                ("nodes", args.nodes.is_some()),
            ],
            Step::Hand => &[("data", args.data.is_some())],
            Step::Retire | Step::Rotate => &[("nodes", args.nodes.is_some())],
            Step::Forget => &[],
        };
        if let Some((missing, _)) = needs.iter().find(|(_, given)| !given) {
            return Err(BadArgs::invalid(format!(
                "`step: {}` needs `{missing}`",
                args.step.name()
            )));
        }
        Ok(Arc::new(ConsulAcl(args)))
    }
}

/// What one `consul_acl` task does (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Step {
    /// The policies and tokens, in Consul (run once).
    #[default]
    Make,
    /// This node's agent uses its own token (on every node).
    Hand,
    /// Tokens no agent uses any more are deleted (run once).
    Retire,
    /// `rotate --tokens`: a new management token (made in Consul with the
    /// old one, which is kept here as `acl-management.old.token`) and a new
    /// token for every agent, here (run once).
    Rotate,
    /// `rotate --tokens`, once every server runs with the new management
    /// token as its master token: the old one is deleted (run once).
    Forget,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Make => "make",
            Step::Hand => "hand",
            Step::Retire => "retire",
            Step::Rotate => "rotate",
            Step::Forget => "forget",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AclArgs {
    #[serde(default)]
    pub step: Step,
    /// The checkout's Consul secrets directory (a template).
    pub dir: String,
    /// The agent's HTTP port (a template).
    pub port: String,
    /// `consul_kv_path`: the linking token writes under its `env/`.
    #[serde(default)]
    pub kv_path: Option<String>,
    /// The Consul nodes (inventory names), each with its own agent token.
    #[serde(default)]
    pub nodes: Option<Templated<Strings>>,
    /// `consul_data` on the node: where its agent persists its tokens.
    #[serde(default)]
    pub data: Option<String>,
    /// How long to wait for the leader to know the management token.
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConsulAcl(pub AclArgs);

impl Module for ConsulAcl {
    fn name(&self) -> &'static str {
        "consul_acl"
    }

    fn summary(&self) -> String {
        match self.0.step {
            Step::Make => "policies and tokens".into(),
            Step::Hand => "the agent's own token".into(),
            Step::Retire => "tokens no agent uses".into(),
            Step::Rotate => "new tokens".into(),
            Step::Forget => "the old management token".into(),
        }
    }

    fn templates(&self) -> Vec<&str> {
        let a = &self.0;
        let mut out = vec![a.dir.as_str(), &a.port];
        out.extend(a.kv_path.as_deref());
        out.extend(a.data.as_deref());
        out.extend(a.timeout.as_deref());
        if let Some(nodes) = &a.nodes {
            crate::playbook::values::json_strings(nodes.raw(), &mut out);
        }
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            match self.0.step {
                Step::Make => run(&self.0, ctx).await,
                Step::Hand => hand(&self.0, ctx).await,
                Step::Retire => retire(&self.0, ctx).await,
                Step::Rotate => rotate(&self.0, ctx).await,
                Step::Forget => forget(&self.0, ctx).await,
            }
        })
    }
}

/// The agents `hand` found or made using their own token in this process
/// (one run): the secrets directory, the node and that token. `retire`
/// needs every node's current token here.
static HANDED: Mutex<Vec<(std::path::PathBuf, String, String)>> = Mutex::new(Vec::new());

fn handed(dir: &Path, host: &str, token: &str) {
    let mut all = HANDED.lock().unwrap_or_else(PoisonError::into_inner);
    all.push((dir.to_path_buf(), host.to_owned(), token.to_owned()));
}

/// The anonymous token's fixed AccessorID.
const ANONYMOUS: &str = "00000000-0000-0000-0000-000000000002";

/// The policies arpanet makes: name, what it is for, rules.
fn policies(kv_path: &str) -> Vec<(&'static str, &'static str, String)> {
    let prefix = kv_path.trim_matches('/');
    let key = |folder: &str| match prefix {
        "" => format!("{folder}/"),
        _ => format!("{prefix}/{folder}/"),
    };
    let (env, upstreams) = (key("env"), key("upstreams"));
    vec![
        (
            "arpanet-linking",
            "arpanet: the linking watcher and the Connect proxies",
            format!(
                "service_prefix \"\" {{\n  policy = \"write\"\n  intentions = \"write\"\n}}\n\
                 node_prefix \"\" {{\n  policy = \"read\"\n}}\n\
                 agent_prefix \"\" {{\n  policy = \"read\"\n}}\n\
                 key_prefix \"{env}\" {{\n  policy = \"write\"\n}}\n\
                 key_prefix \"{upstreams}\" {{\n  policy = \"write\"\n}}\n"
            ),
        ),
        (
            "arpanet-anonymous",
            "arpanet: what a request without a token may read (DNS, catalog)",
            "node_prefix \"\" {\n  policy = \"read\"\n}\nservice_prefix \"\" {\n  policy = \"read\"\n}\n"
                .to_owned(),
        ),
    ]
}

/// One call to the agent with the management token; error texts have
/// every token masked.
struct Api<'a> {
    ctx: &'a Context<'a>,
    port: u16,
    management: &'a str,
    secrets: Vec<String>,
}

impl Api<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Result<(u16, Value, String)> {
        let body = body.map(|b| b.to_string().into_bytes());
        let r = consul_api::request(
            self.ctx.host,
            self.ctx.transport,
            self.port,
            method,
            path,
            body.as_deref(),
            Some(token.unwrap_or(self.management)),
        )
        .await?;
        let text = self.mask(r.text());
        let value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Ok((r.status, value, text))
    }

    /// `call`, failing unless Consul answers 200.
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, value, text) = self.call(method, path, body, None).await?;
        if status == 200 {
            return Ok(value);
        }
        Err(Error::Remote {
            host: self.ctx.host.to_owned(),
            message: format!(
                "consul ACLs: {method} {path}: HTTP {status}: {}",
                text.trim()
            ),
        })
    }

    fn mask(&self, mut text: String) -> String {
        for s in &self.secrets {
            text = text.replace(s.as_str(), "***");
        }
        text
    }

    /// Wait until Consul knows the management token (the leader makes it
    /// when it first leads with ACLs on). `Err(outcome)`: the task ends
    /// with it (skipped when ACLs are not enforced yet, failed on timeout).
    async fn ready(&self, dir: &Path, timeout: u64) -> std::result::Result<(), Outcome> {
        let started = Instant::now();
        loop {
            let (status, text) = match self.call("GET", "/v1/acl/token/self", None, None).await {
                Ok((status, _, text)) => (status, text),
                Err(err) => (0, self.mask(err.to_string())),
            };
            if status == 200 {
                return Ok(());
            }
            if text.contains("ACL support disabled") {
                return Err(Outcome::skipped(
                    "this agent does not enforce ACLs yet (the roll enables them)",
                ));
            }
            if started.elapsed() > Duration::from_secs(timeout) {
                return Err(failure(
                    format!(
                        "consul does not accept the {} in `{}` within {timeout}s (last answer: {})",
                        what(MANAGEMENT),
                        dir.display(),
                        match status {
                            0 => text.trim().to_owned(),
                            _ => format!("HTTP {status}: {}", text.trim()),
                        }
                    ),
                    "the servers create it from their `acl.json` when a leader first runs with \
                     ACLs; if another checkout made the cluster, copy its `acl-management.token`",
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The AccessorID of the token whose secret is `secret`, and whether
    /// it has exactly the policy `policy`; `None` when Consul does not
    /// know it.
    async fn lookup(&self, secret: &str, policy: &str) -> Result<Option<(String, bool)>> {
        let (status, found, _) = self
            .call("GET", "/v1/acl/token/self", None, Some(secret))
            .await?;
        let exact = found["Policies"]
            .as_array()
            .is_some_and(|ps| ps.len() == 1 && ps[0]["Name"] == policy);
        Ok(found["AccessorID"]
            .as_str()
            .filter(|_| status == 200)
            .map(|a| (a.to_owned(), exact)))
    }
}

/// A task's outcome under `--check`: it would change `what`.
fn would(what: &str) -> Outcome {
    Outcome {
        changed: true,
        msg: Some(format!("would {what}")),
        ..Outcome::ok()
    }
}

impl<'a> Api<'a> {
    /// An API client once Consul accepts `management` (see [`Api::ready`]),
    /// or the task's outcome.
    async fn open(
        ctx: &'a Context<'a>,
        port: u16,
        management: &'a str,
        secrets: Vec<String>,
        (dir, timeout): (&Path, u64),
    ) -> std::result::Result<Api<'a>, Outcome> {
        let api = Api {
            ctx,
            port,
            management,
            secrets,
        };
        api.ready(dir, timeout).await.map(|()| api)
    }
}

/// A failed task with a hint.
fn failure(message: String, hint: &str) -> Outcome {
    Outcome {
        failure: Some(crate::report::Failure {
            message,
            hint: Some(hint.to_owned()),
            ..Default::default()
        }),
        ..Outcome::ok()
    }
}

/// The rendered port and timeout of a task.
fn port_and_timeout(args: &AclArgs, ctx: &Context<'_>) -> Result<(u16, u64)> {
    let port_text = ctx.render(&args.port)?;
    let port: u16 = port_text
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("`port` must be a port number, got `{port_text}`")))?;
    let timeout = match &args.timeout {
        Some(t) => ctx.render(t)?.trim().parse().unwrap_or(60),
        None => 60,
    };
    Ok((port, timeout))
}

/// The cluster-wide token in `dir/file`, or the task's failure.
fn required(dir: &Path, file: &str) -> Result<std::result::Result<String, Outcome>> {
    Ok(read(dir, file)?.ok_or_else(|| {
        failure(
            format!("no {} in `{}`", what(file), dir.display()),
            "the `cluster_secrets` task with `acl: true` makes it (playbooks/secrets.yml)",
        )
    }))
}

/// The nodes of `nodes` and their own agent tokens here (nodes without
/// one are left out: `cluster_secrets` did not run for them).
fn node_tokens(args: &AclArgs, ctx: &Context<'_>, dir: &Path) -> Result<Vec<(String, String)>> {
    let nodes = match &args.nodes {
        Some(nodes) => nodes.get("nodes", ctx)?.0,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for node in nodes {
        if out.iter().any(|(n, _)| *n == node) {
            continue;
        }
        if let Some(token) = read(&host_dir(dir, &node), AGENT)? {
            out.push((node, token));
        }
    }
    Ok(out)
}

/// Create `secret` as a token with the one policy `policy`, or give the
/// existing token that policy alone; whether anything changed.
async fn ensure_token(
    api: &Api<'_>,
    secret: &str,
    policy: &str,
    description: &str,
) -> Result<bool> {
    let found = api.lookup(secret, policy).await?;
    let body = json!({
        "SecretID": secret,
        "Description": description,
        "Policies": [{ "Name": policy }],
    });
    match found {
        Some((_, true)) => Ok(false),
        Some((accessor, false)) => {
            let mut body = body;
            body["AccessorID"] = json!(accessor);
            api.ok("PUT", &format!("/v1/acl/token/{accessor}"), Some(body))
                .await?;
            Ok(true)
        }
        None => {
            api.ok("PUT", "/v1/acl/token", Some(body)).await?;
            Ok(true)
        }
    }
}

/// Create or update the policy `name`; what changed, if anything.
async fn ensure_policy(
    api: &Api<'_>,
    listed: &Value,
    name: &str,
    description: &str,
    rules: &str,
) -> Result<Option<String>> {
    let found = listed
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["Name"] == name);
    let body = json!({ "Name": name, "Description": description, "Rules": rules });
    match found.and_then(|p| p["ID"].as_str()) {
        None => {
            api.ok("PUT", "/v1/acl/policy", Some(body)).await?;
            Ok(Some(format!("policy `{name}` created")))
        }
        Some(id) => {
            let path = format!("/v1/acl/policy/{id}");
            let current = api.ok("GET", &path, None).await?;
            if current["Rules"].as_str() == Some(rules) {
                return Ok(None);
            }
            api.ok("PUT", &path, Some(body)).await?;
            Ok(Some(format!("policy `{name}` updated")))
        }
    }
}

async fn run(args: &AclArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = std::path::PathBuf::from(ctx.render(&args.dir)?);
    let (port, timeout) = port_and_timeout(args, ctx)?;
    let kv_path = ctx.render(args.kv_path.as_deref().unwrap_or_default())?;
    let management = match required(&dir, MANAGEMENT)? {
        Ok(t) => t,
        Err(outcome) => return Ok(outcome),
    };
    let linking = match required(&dir, LINKING)? {
        Ok(t) => t,
        Err(outcome) => return Ok(outcome),
    };
    let agents = node_tokens(args, ctx, &dir)?;
    if ctx.check {
        // The agents a check run would start or change did not start.
        return Ok(Outcome::skipped(
            "--check: policies and tokens are made once the agents run with ACLs",
        ));
    }
    let mut secrets = vec![management.clone(), linking.clone()];
    secrets.extend(agents.iter().map(|(_, t)| t.clone()));
    let api = match Api::open(ctx, port, &management, secrets, (&dir, timeout)).await {
        Ok(api) => api,
        Err(outcome) => return Ok(outcome),
    };
    let mut changed = Vec::new();
    let listed = api.ok("GET", "/v1/acl/policies", None).await?;
    for (name, description, rules) in policies(&kv_path) {
        changed.extend(ensure_policy(&api, &listed, name, description, &rules).await?);
    }
    for (node, token) in &agents {
        let policy = agent_policy(node);
        let description = format!("arpanet: the Consul agent of `{node}`");
        let rules = agent_rules(node);
        changed.extend(ensure_policy(&api, &listed, &policy, &description, &rules).await?);
        if ensure_token(&api, token, &policy, &description).await? {
            changed.push(format!("token for `{policy}`"));
        }
    }
    let description = "arpanet: the linking watcher and the Connect proxies";
    if ensure_token(&api, &linking, "arpanet-linking", description).await? {
        changed.push("token for `arpanet-linking`".to_owned());
    }
    let path = format!("/v1/acl/token/{ANONYMOUS}");
    let anonymous = api.ok("GET", &path, None).await?;
    let has = anonymous["Policies"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["Name"] == "arpanet-anonymous"));
    if !has {
        let mut wanted: Vec<Value> = anonymous["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|p| json!({ "ID": p["ID"] }))
            .collect();
        wanted.push(json!({ "Name": "arpanet-anonymous" }));
        let body = json!({
            "Description": anonymous["Description"],
            "Policies": wanted,
        });
        api.ok("PUT", &path, Some(body)).await?;
        changed.push("the anonymous token reads nodes and services".to_owned());
    }
    Ok(Outcome {
        changed: !changed.is_empty(),
        msg: (!changed.is_empty()).then(|| changed.join("; ")),
        ..Outcome::ok()
    })
}

/// The agent token a node's agent has persisted (`acl-tokens.json` in
/// its data directory, written when its token is set through the API).
async fn persisted_agent_token(ctx: &Context<'_>, data: &str) -> Result<Option<String>> {
    let path = format!("{}/acl-tokens.json", data.trim_end_matches('/'));
    let script = format!("cat {} 2>/dev/null || true", quote(&path));
    let out = crate::probe::exec(ctx.transport, ctx.host, &script, None).await?;
    let value: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    Ok(value["agent"].as_str().map(str::to_owned))
}

/// `step: hand`: this node's running agent uses its own token.
async fn hand(args: &AclArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = std::path::PathBuf::from(ctx.render(&args.dir)?);
    let (port, timeout) = port_and_timeout(args, ctx)?;
    let data = ctx.render(args.data.as_deref().unwrap_or_default())?;
    let here = host_dir(&dir, ctx.host);
    let Some(own) = read(&here, AGENT)? else {
        return Ok(failure(
            format!("no {} in `{}`", what(AGENT), here.display()),
            "the `cluster_secrets` task with `acl: true` makes it (playbooks/secrets.yml)",
        ));
    };
    let management = match required(&dir, MANAGEMENT)? {
        Ok(t) => t,
        Err(outcome) => return Ok(outcome),
    };
    if persisted_agent_token(ctx, &data).await?.as_deref() == Some(own.as_str()) {
        handed(&dir, ctx.host, &own);
        return Ok(Outcome::ok());
    }
    if ctx.check {
        return Ok(would("hand the agent its own token"));
    }
    let secrets = vec![management.clone(), own.clone()];
    let api = match Api::open(ctx, port, &management, secrets, (&dir, timeout)).await {
        Ok(api) => api,
        Err(outcome) => return Ok(outcome),
    };
    // In the body, never in a URL or on a command line.
    api.ok(
        "PUT",
        "/v1/agent/token/agent",
        Some(json!({ "Token": own })),
    )
    .await?;
    handed(&dir, ctx.host, &own);
    Ok(Outcome {
        changed: true,
        msg: Some("the agent uses its own token".into()),
        ..Outcome::ok()
    })
}

/// `step: retire`: once every agent of `nodes` uses its own token, the
/// shared agent token of older versions and agent tokens replaced since
/// are deleted (with the shared policy, and its files here).
async fn retire(args: &AclArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = std::path::PathBuf::from(ctx.render(&args.dir)?);
    let (port, timeout) = port_and_timeout(args, ctx)?;
    let nodes = match &args.nodes {
        Some(nodes) => nodes.get("nodes", ctx)?.0,
        None => Vec::new(),
    };
    // Every node's agent must use its current token, as `hand` found in
    // this run.
    let agents = node_tokens(args, ctx, &dir)?;
    let mut waiting = Vec::new();
    {
        let all = HANDED.lock().unwrap_or_else(PoisonError::into_inner);
        for node in &nodes {
            let current = agents.iter().find(|(n, _)| n == node).map(|(_, t)| t);
            let uses = current.is_some_and(|token| {
                all.iter()
                    .any(|(d, n, t)| *d == dir && n == node && t == token)
            });
            if !uses {
                waiting.push(format!("`{node}`"));
            }
        }
    }
    if !waiting.is_empty() {
        return Ok(Outcome::skipped(format!(
            "old agent tokens kept: not handed a token of its own in this run: {}",
            waiting.join(", ")
        )));
    }
    let management = match required(&dir, MANAGEMENT)? {
        Ok(t) => t,
        Err(outcome) => return Ok(outcome),
    };
    let mut secrets = vec![management.clone()];
    secrets.extend(agents.iter().map(|(_, t)| t.clone()));
    let api = Api {
        ctx,
        port,
        management: &management,
        secrets,
    };
    if !ctx.check {
        if let Err(outcome) = api.ready(&dir, timeout).await {
            return Ok(outcome);
        }
    }
    // Each node's current token, by policy.
    let mut current = Vec::new();
    for (node, token) in &agents {
        let policy = agent_policy(node);
        if let Some((accessor, _)) = api.lookup(token, &policy).await? {
            current.push((policy, accessor));
        }
    }
    let tokens = api.ok("GET", "/v1/acl/tokens", None).await?;
    let mut retired = Vec::new();
    for token in tokens.as_array().into_iter().flatten() {
        let Some(accessor) = token["AccessorID"].as_str() else {
            continue;
        };
        let names: Vec<&str> = token["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["Name"].as_str())
            .collect();
        let old = names.iter().any(|name| {
            *name == SHARED_POLICY
                || current
                    .iter()
                    .any(|(policy, keep)| policy == name && keep != accessor)
        });
        if old {
            retired.push((accessor.to_owned(), names.join(",")));
        }
    }
    let shared_policy = api
        .ok("GET", "/v1/acl/policies", None)
        .await?
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["Name"] == SHARED_POLICY)
        .and_then(|p| p["ID"].as_str().map(str::to_owned));
    let shared_files: Vec<&str> = SHARED
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    let mut changed = Vec::new();
    for (accessor, policies) in &retired {
        if !ctx.check {
            api.ok("DELETE", &format!("/v1/acl/token/{accessor}"), None)
                .await?;
        }
        changed.push(format!("old token of `{policies}` deleted"));
    }
    if let Some(id) = shared_policy {
        if !ctx.check {
            api.ok("DELETE", &format!("/v1/acl/policy/{id}"), None)
                .await?;
        }
        changed.push(format!("policy `{SHARED_POLICY}` deleted"));
    }
    for file in shared_files {
        if !ctx.check {
            std::fs::remove_file(dir.join(file))
                .map_err(|e| Error::io("remove", dir.join(file), e))?;
        }
        changed.push(format!("`{file}` removed"));
    }
    Ok(Outcome {
        changed: !changed.is_empty(),
        msg: (!changed.is_empty()).then(|| changed.join("; ")),
        ..Outcome::ok()
    })
}

/// The management policy Consul makes when its ACL system is bootstrapped.
const GLOBAL_MANAGEMENT: &str = "global-management";

/// `step: rotate`: new tokens (see [`Step::Rotate`]). The new management
/// token is written here before anything else changes, the old one kept
/// beside it: a rotation cut short resumes with the same new token.
async fn rotate(args: &AclArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = std::path::PathBuf::from(ctx.render(&args.dir)?);
    let (port, timeout) = port_and_timeout(args, ctx)?;
    let nodes = match &args.nodes {
        Some(nodes) => nodes.get("nodes", ctx)?.0,
        None => Vec::new(),
    };
    let current = match required(&dir, MANAGEMENT)? {
        Ok(t) => t,
        Err(outcome) => return Ok(outcome),
    };
    if ctx.check {
        return Ok(would(&format!(
            "make a new management token and {} new agent tokens",
            nodes.len()
        )));
    }
    let (old, new) = match read(&dir, OLD_MANAGEMENT)? {
        // Cut short before: the new one is already the current one.
        Some(old) => (old, current),
        None => {
            let new = new_token();
            super::pki::write_secret(&dir.join(OLD_MANAGEMENT), format!("{current}\n").as_bytes())?;
            super::pki::write_secret(&dir.join(MANAGEMENT), format!("{new}\n").as_bytes())?;
            (current, new)
        }
    };
    let secrets = vec![old.clone(), new.clone()];
    let api = match Api::open(ctx, port, &old, secrets, (&dir, timeout)).await {
        Ok(api) => api,
        Err(outcome) => return Ok(outcome),
    };
    ensure_token(
        &api,
        &new,
        GLOBAL_MANAGEMENT,
        "arpanet: the management token",
    )
    .await?;
    for node in &nodes {
        let here = host_dir(&dir, node);
        super::pki::create_private_dir(&here)?;
        super::pki::write_secret(&here.join(AGENT), format!("{}\n", new_token()).as_bytes())?;
    }
    Ok(Outcome {
        changed: true,
        msg: Some(format!(
            "a new management token (the old one kept in `{}` until every server runs with \
             the new one) and {} new agent tokens",
            dir.join(OLD_MANAGEMENT).display(),
            nodes.len()
        )),
        ..Outcome::ok()
    })
}

/// `step: forget`: the management token `rotate` replaced is deleted in
/// Consul, then here. Only once every server has been restarted with the
/// new one as its master token: a leader still holding the old one in its
/// configuration would make it again when it next takes over.
async fn forget(args: &AclArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = std::path::PathBuf::from(ctx.render(&args.dir)?);
    let (port, timeout) = port_and_timeout(args, ctx)?;
    let Some(old) = read(&dir, OLD_MANAGEMENT)? else {
        return Ok(Outcome::ok());
    };
    let management = match required(&dir, MANAGEMENT)? {
        Ok(t) => t,
        Err(outcome) => return Ok(outcome),
    };
    if ctx.check {
        return Ok(would("delete the old management token"));
    }
    let secrets = vec![old.clone(), management.clone()];
    let api = match Api::open(ctx, port, &management, secrets, (&dir, timeout)).await {
        Ok(api) => api,
        Err(outcome) => return Ok(outcome),
    };
    if old != management {
        if let Some((accessor, _)) = api.lookup(&old, GLOBAL_MANAGEMENT).await? {
            api.ok("DELETE", &format!("/v1/acl/token/{accessor}"), None)
                .await?;
        }
    }
    let path = dir.join(OLD_MANAGEMENT);
    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
    Ok(Outcome {
        changed: true,
        msg: Some("the old management token deleted".into()),
        ..Outcome::ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_its_own_origin() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().to_str().unwrap();
        assert_eq!(token_origin(name), None);
        std::fs::write(dir.path().join(MANAGEMENT), "t\n").unwrap();
        assert_eq!(
            token_origin(name),
            Some(format!("`{}`", dir.path().join(MANAGEMENT).display()))
        );
    }

    #[test]
    fn tokens_are_uuids_and_the_config_holds_them() {
        let t = new_token();
        assert_eq!(t.len(), 36);
        assert_eq!(&t[14..15], "4");
        assert_ne!(t, new_token());
        let config = agent_config("dc1", "a-1", Some("m-2"));
        let v: Value = serde_json::from_str(&config).unwrap();
        assert_eq!(v["acl"]["default_policy"], "deny");
        assert_eq!(v["acl"]["tokens"]["master"], "m-2");
        assert_eq!(v["primary_datacenter"], "dc1");
        assert_eq!(v["acl"]["tokens"]["agent"], "a-1");
        let client: Value = serde_json::from_str(&agent_config("dc1", "a-1", None)).unwrap();
        assert!(client["acl"]["tokens"].get("master").is_none());
    }

    #[test]
    fn the_linking_policy_writes_only_under_env_and_upstreams() {
        let rules = &policies("/arpanet/")[0].2;
        assert!(rules.contains("key_prefix \"arpanet/env/\""), "{rules}");
        assert!(
            rules.contains("key_prefix \"arpanet/upstreams/\""),
            "{rules}"
        );
        assert_eq!(rules.matches("key_prefix").count(), 2);
        assert!(policies("")[0].2.contains("key_prefix \"env/\""));
        assert!(!policies("/arpanet")[1].2.contains("key"));
    }
}
