//! Consul's ACLs: on by default (`consul_acl: true`), default deny. The
//! cluster's tokens are secrets like its gossip key: made once beside the
//! inventory by `cluster_secrets` (`acl: true`), adopted by a checkout
//! without them from the running cluster, refused with fingerprints when
//! they differ (see `secrets`). Three tokens, each a random UUID used as
//! its SecretID:
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
//! - `acl-agent.token`: every agent's own token (`acl.tokens.agent` in its
//!   `acl.json`): node write, service read, as Consul's docs give agents.
//! - `acl-linking.token`: the linking watcher's, the Connect proxies' and
//!   the `consul_services` task's (`linking.token` on every node, 0600,
//!   mounted as a file into each proxy, never in an environment): service
//!   and intention write, node and agent read, KV write under
//!   `KV_PATH/env/` and `KV_PATH/upstreams/` only (what linking publishes).
//!   Registrations made with it are synced with it, so Consul keeps no
//!   stronger token on a client node.
//!
//! The anonymous token gets node and service read, so DNS (`*.service.consul`)
//! and catalog reads keep working without a token; any other read or write
//! (KV outside `env/`, sessions, ACLs, operator) by a container without a
//! token is denied (403).
//!
//! The `consul_acl` task makes the policies and the agent and linking
//! tokens in Consul, once a leader runs with ACLs on:
//!
//! ```yaml
//! - consul_acl:
//!     dir: "{{ consul_tls_dir }}"
//!     port: "{{ consul_port }}"
//!     kv_path: "{{ consul_kv_path }}"
//! ```
//!
//! Each is created when missing and updated when its rules differ; a rerun
//! changes nothing. On a cluster whose agents do not enforce ACLs yet (a
//! cluster made before ACLs, in the middle of the roll that enables them)
//! it is skipped, and the end of that roll runs it again. Tokens are never
//! printed: answers are masked.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::consul_api;
use crate::error::{Error, Result};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::transport::{quote, Transport};
use crate::vars::Vars;
use crate::yaml::Node;

/// The management token, beside the inventory (in `consul_tls_dir`).
pub(crate) const MANAGEMENT: &str = "acl-management.token";
/// The agents' token.
pub(crate) const AGENT: &str = "acl-agent.token";
/// The linking watcher's and proxies' token.
pub(crate) const LINKING: &str = "acl-linking.token";

/// Each local token file and the file a node keeps it in (in `node_dir`;
/// the agent token is inside `acl.json`, the agent's configuration).
pub(crate) const ON_NODES: [(&str, &str); 3] = [
    (MANAGEMENT, "management.token"),
    (AGENT, NODE_CONFIG),
    (LINKING, "linking.token"),
];

/// The agent's ACL configuration on the node (in `node_dir`).
pub(crate) const NODE_CONFIG: &str = "acl.json";

/// The agent configuration files made beside the inventory, by role: the
/// servers' holds the management token as `acl.tokens.master`.
pub(crate) const SERVER_CONFIG: &str = "acl-server.json";
pub(crate) const CLIENT_CONFIG: &str = "acl-client.json";

/// How a token is named in messages.
pub(crate) fn what(file: &str) -> &'static str {
    match file {
        MANAGEMENT => "ACL management token",
        AGENT => "ACL agent token",
        _ => "ACL linking token",
    }
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

/// The agent token in an `acl.json`.
pub(crate) fn agent_token_in(config: &str) -> Option<String> {
    let v: Value = serde_json::from_str(config).ok()?;
    v["acl"]["tokens"]["agent"].as_str().map(str::to_owned)
}

pub(crate) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "consul_acl"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(ConsulAcl(args_map(
            node,
            "a mapping with `dir`, `port` and `kv_path`",
        )?)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AclArgs {
    /// The checkout's Consul secrets directory (a template).
    pub dir: String,
    /// The agent's HTTP port (a template).
    pub port: String,
    /// `consul_kv_path`: the linking token writes under its `env/`.
    pub kv_path: String,
    /// How long to wait for the leader to know the management token.
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsulAcl(pub AclArgs);

impl Module for ConsulAcl {
    fn name(&self) -> &'static str {
        "consul_acl"
    }

    fn summary(&self) -> String {
        "policies and tokens".into()
    }

    fn templates(&self) -> Vec<&str> {
        let a = &self.0;
        let mut out = vec![a.dir.as_str(), &a.port, &a.kv_path];
        out.extend(a.timeout.as_deref());
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
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
            "arpanet-agent",
            "arpanet: each Consul agent's own token",
            "node_prefix \"\" {\n  policy = \"write\"\n}\nservice_prefix \"\" {\n  policy = \"read\"\n}\n"
                .to_owned(),
        ),
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

async fn run(args: &AclArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = std::path::PathBuf::from(ctx.render(&args.dir)?);
    let port_text = ctx.render(&args.port)?;
    let port: u16 = port_text
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("`port` must be a port number, got `{port_text}`")))?;
    let kv_path = ctx.render(&args.kv_path)?;
    let timeout = match &args.timeout {
        Some(t) => ctx.render(t)?.trim().parse().unwrap_or(60),
        None => 60,
    };
    let mut tokens = Vec::new();
    for file in [MANAGEMENT, AGENT, LINKING] {
        match read(&dir, file)? {
            Some(t) => tokens.push(t),
            None => {
                return Ok(failure(
                    format!("no {} in `{}`", what(file), dir.display()),
                    "the `cluster_secrets` task with `acl: true` makes it (playbooks/secrets.yml)",
                ))
            }
        }
    }
    if ctx.check {
        // The agents a check run would start or change did not start.
        return Ok(Outcome::skipped(
            "--check: policies and tokens are made once the agents run with ACLs",
        ));
    }
    let api = Api {
        ctx,
        port,
        management: &tokens[0],
        secrets: tokens.clone(),
    };
    // Until the leader has made the management token (it does when it
    // first leads with ACLs on), Consul does not know it.
    let started = Instant::now();
    loop {
        let (status, text) = match api.call("GET", "/v1/acl/token/self", None, None).await {
            Ok((status, _, text)) => (status, text),
            Err(err) => (0, err.to_string()),
        };
        if status == 200 {
            break;
        }
        if text.contains("ACL support disabled") {
            return Ok(Outcome::skipped(
                "this agent does not enforce ACLs yet (the roll enables them)",
            ));
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            return Ok(failure(
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
    let mut changed = Vec::new();
    let listed = api.ok("GET", "/v1/acl/policies", None).await?;
    for (name, description, rules) in policies(&kv_path) {
        let found = listed
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["Name"] == name);
        let body = json!({ "Name": name, "Description": description, "Rules": rules });
        match found.and_then(|p| p["ID"].as_str()) {
            None => {
                api.ok("PUT", "/v1/acl/policy", Some(body)).await?;
                changed.push(format!("policy `{name}` created"));
            }
            Some(id) => {
                let path = format!("/v1/acl/policy/{id}");
                let current = api.ok("GET", &path, None).await?;
                if current["Rules"].as_str() != Some(rules.as_str()) {
                    api.ok("PUT", &path, Some(body)).await?;
                    changed.push(format!("policy `{name}` updated"));
                }
            }
        }
    }
    for (secret, policy, description) in [
        (&tokens[1], "arpanet-agent", "arpanet: the Consul agents"),
        (
            &tokens[2],
            "arpanet-linking",
            "arpanet: the linking watcher and the Connect proxies",
        ),
    ] {
        let (status, found, _) = api
            .call("GET", "/v1/acl/token/self", None, Some(secret))
            .await?;
        let has = |t: &Value| {
            t["Policies"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["Name"] == policy))
        };
        if status == 200 && has(&found) {
            continue;
        }
        let body = json!({
            "SecretID": secret,
            "Description": description,
            "Policies": [{ "Name": policy }],
        });
        match found["AccessorID"].as_str().filter(|_| status == 200) {
            Some(accessor) => {
                let path = format!("/v1/acl/token/{accessor}");
                api.ok("PUT", &path, Some(body)).await?;
                changed.push(format!("token for `{policy}` updated"));
            }
            None => {
                api.ok("PUT", "/v1/acl/token", Some(body)).await?;
                changed.push(format!("token for `{policy}` created"));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(agent_token_in(&config).as_deref(), Some("a-1"));
        let client: Value = serde_json::from_str(&agent_config("dc1", "a-1", None)).unwrap();
        assert!(client["acl"]["tokens"].get("master").is_none());
    }

    #[test]
    fn the_linking_policy_writes_only_under_env_and_upstreams() {
        let rules = &policies("/arpanet/")[1].2;
        assert!(rules.contains("key_prefix \"arpanet/env/\""), "{rules}");
        assert!(
            rules.contains("key_prefix \"arpanet/upstreams/\""),
            "{rules}"
        );
        assert_eq!(rules.matches("key_prefix").count(), 2);
        assert!(policies("")[1].2.contains("key_prefix \"env/\""));
        assert!(!policies("/arpanet")[2].2.contains("key"));
    }
}
