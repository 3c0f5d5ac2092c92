//! `consul_services`: the `service:` and `publish_env:` declarations of the
//! `stack` entries, made true in the node's own Consul agent.
//!
//! ```yaml
//! - consul_services:
//!     stack: "{{ stack }}"
//!     address: "{{ arpanet_ip }}"
//!     port: "{{ consul_port }}"
//!     kv_path: "{{ consul_kv_path }}"
//!     node: "{{ inventory_hostname }}"
//!     nodes: "{{ groups['all'] }}"    # optional: the cluster's nodes
//! ```
//!
//! Each declared service is registered through the agent's HTTP API (a
//! channel forwarded over SSH, as `kv` and the gates use), with the node's
//! cluster address and the published host port, its check, and meta saying
//! it is the stack's (`arpanet=stack`) with a hash of the declaration. A
//! registration whose hash matches is left alone (`changed=0` on a rerun);
//! the stack's registrations no entry declares any more are deregistered,
//! with the env they published. Services registered otherwise (the
//! watcher's, an operator's) are never touched.
//!
//! `publish_env` keys are written to `KV_PATH/env/SERVICE/NODE/KEY`; keys no
//! longer named are deleted. Their values are compared, never shown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use super::consul_api;
use super::stack::{self, Entry, META_CONTAINER, META_ENV, META_OWNER, META_SPEC};
use crate::error::{Error, Result};
use crate::modules::docker_container::{Spec, SPEC_LABEL};
use crate::modules::templated::{OptText, Strings, Templated};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::playbook::values::json_strings;
use crate::transport::quote;
use crate::yaml::Node;

/// How many times (a second apart) the agent's API is asked before the
/// task fails.
const AGENT_TRIES: u32 = 30;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    pub stack: Templated<Value>,
    pub address: Templated<String>,
    pub port: Templated<OptText>,
    pub kv_path: Templated<String>,
    pub node: Templated<String>,
    /// Every node of the cluster: another node's upstreams record is kept
    /// only while that node is one of these (all are kept without it).
    pub nodes: Option<Templated<Strings>>,
    /// The image of the Connect proxies (Consul's own).
    pub proxy_image: Templated<String>,
    /// Where a container on the docker bridge reaches the agent.
    pub bridge_ip: Templated<String>,
    /// The node's file holding the linking token, mounted into each proxy
    /// (`-token-file`), never put in its environment; empty without ACLs.
    #[serde(default)]
    pub token_file: Option<Templated<OptText>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConsulServices(pub Args);

pub struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "consul_services"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(ConsulServices(args_map(
            node,
            "a mapping with `stack`, `address`, `port`, `kv_path`, `node`, `proxy_image`, `bridge_ip` and optionally `nodes` and `token_file`",
        )?)))
    }
}

impl Module for ConsulServices {
    fn name(&self) -> &'static str {
        "consul_services"
    }

    fn summary(&self) -> String {
        "the stack's services".into()
    }

    fn templates(&self) -> Vec<&str> {
        let a = &self.0;
        let mut out = Vec::new();
        for raw in [
            a.stack.raw(),
            a.address.raw(),
            a.port.raw(),
            a.kv_path.raw(),
            a.node.raw(),
            a.proxy_image.raw(),
            a.bridge_ip.raw(),
        ] {
            json_strings(raw, &mut out);
        }
        if let Some(nodes) = &a.nodes {
            json_strings(nodes.raw(), &mut out);
        }
        if let Some(file) = &a.token_file {
            json_strings(file.raw(), &mut out);
        }
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

/// One HTTP call to the node's agent; a non-2xx answer fails the task.
struct Agent<'a> {
    ctx: &'a Context<'a>,
    port: u16,
    /// The linking token (see `acl`): registrations made with it are
    /// synced with it, so no stronger token is kept on the node.
    token: Option<String>,
}

impl Agent<'_> {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<std::result::Result<consul_api::Response, Outcome>> {
        let response = consul_api::request(
            self.ctx.host,
            self.ctx.transport,
            self.port,
            method,
            path,
            body,
            self.token.as_deref(),
        )
        .await?;
        if (200..300).contains(&response.status) || (method == "GET" && response.status == 404) {
            Ok(Ok(response))
        } else {
            Ok(Err(Outcome::fail(format!(
                "consul agent: {method} {}: HTTP {}: {}",
                path.split('?').next().unwrap_or(path),
                response.status,
                response.text().trim()
            ))))
        }
    }
}

/// Return the failed outcome of an agent call from the enclosing function.
macro_rules! agent {
    ($e:expr) => {
        match $e.await? {
            Ok(r) => r,
            Err(failed) => return Ok(failed),
        }
    };
}

async fn run(args: &Args, ctx: &Context<'_>) -> Result<Outcome> {
    let stack_value = args.stack.get("stack", ctx)?;
    let entries = match stack::parse(&stack_value) {
        Ok(e) => e,
        Err(p) => {
            return Ok(Outcome::fail(format!("{}: {}", p.path, p.message)));
        }
    };
    let address = args.address.get("address", ctx)?;
    let port_text = args
        .port
        .get("port", ctx)?
        .0
        .unwrap_or_else(|| "8500".into());
    let Ok(port) = port_text.trim().parse::<u16>() else {
        return Ok(Outcome::fail(format!(
            "`port` must be a port number, got `{port_text}`"
        )));
    };
    let kv_path = args.kv_path.get("kv_path", ctx)?;
    let node = args.node.get("node", ctx)?;
    let nodes = match &args.nodes {
        Some(nodes) => Some(nodes.get("nodes", ctx)?.0),
        None => None,
    };
    let token = super::acl::task_token(ctx, super::acl::LINKING)?;
    let agent = Agent { ctx, port, token };

    // The agent may have just been (re)started (upgrade): give its HTTP
    // API a while to answer.
    let mut tries = 0;
    let listed = loop {
        tries += 1;
        if ctx.check && tries > 1 {
            // A check run did not start the agent it would have started,
            // or it is starting: what it would register cannot be told, so
            // it is taken to change (the stack's check then keeps the node
            // in its batches, where the real run waits for the agent).
            return Ok(Outcome {
                changed: true,
                msg: Some(
                    "the consul agent does not answer (yet): its services to be registered".into(),
                ),
                ..Outcome::ok()
            });
        }
        match agent.call("GET", "/v1/agent/services", None).await {
            Ok(Ok(r)) if r.status == 200 => break r,
            Ok(Ok(r)) if tries >= AGENT_TRIES => {
                return Ok(Outcome::fail(format!(
                    "consul agent: GET /v1/agent/services: HTTP {}",
                    r.status
                )))
            }
            Ok(Err(failed)) if tries >= AGENT_TRIES => return Ok(failed),
            Err(err) if tries >= AGENT_TRIES => return Err(err),
            _ => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
    };
    let existing: BTreeMap<String, Value> =
        serde_json::from_slice(&listed.body).unwrap_or_default();
    let ours: BTreeMap<&String, &Value> = existing
        .iter()
        // Sidecars inherit their service's meta; they come and go with it.
        .filter(|(_, s)| s["Meta"][META_OWNER] == "stack" && s["Kind"] != "connect-proxy")
        .collect();

    let mut done: Vec<String> = Vec::new();
    let mut wanted_ids = Vec::new();
    for entry in &entries {
        for reg in entry.registrations(&address) {
            wanted_ids.push(reg.id.clone());
            let current = existing.get(&reg.id);
            if current.is_some_and(|s| s["Meta"][META_SPEC] == reg.spec.as_str()) {
                continue;
            }
            done.push(format!(
                "{} {}",
                if current.is_some() {
                    "updated"
                } else {
                    "registered"
                },
                reg.id
            ));
            if !ctx.check {
                let body = reg.body.to_string();
                agent!(agent.call("PUT", "/v1/agent/service/register", Some(body.as_bytes())));
            }
        }
    }
    for (id, service) in &ours {
        if wanted_ids.contains(id) {
            continue;
        }
        done.push(format!("deregistered {id}"));
        if ctx.check {
            continue;
        }
        agent!(agent.call("PUT", &format!("/v1/agent/service/deregister/{id}"), None));
        let published = service["Meta"][META_ENV].as_str().unwrap_or_default();
        let name = service["Service"].as_str().unwrap_or_default();
        let still_published = entries.iter().any(|e| {
            e.service.as_ref().is_some_and(|s| s.name == name) && !e.publish_env.is_empty()
        });
        if !published.is_empty() && !still_published {
            let prefix = env_prefix(&kv_path, name, &node);
            agent!(agent.call("DELETE", &consul_api::kv_path("", &prefix, true, ""), None));
        }
    }
    let links = Links {
        image: args.proxy_image.get("proxy_image", ctx)?,
        bridge_ip: args.bridge_ip.get("bridge_ip", ctx)?,
        port,
        token_file: match &args.token_file {
            Some(file) => file
                .get("token_file", ctx)?
                .0
                .filter(|f| !f.trim().is_empty()),
            None => None,
        },
    };
    let here = Here {
        kv_path: &kv_path,
        node: &node,
        nodes: nodes.as_deref(),
    };
    match intentions(&agent, &entries, &here).await? {
        Ok(mut changes) => done.append(&mut changes),
        Err(failed) => return Ok(failed),
    }
    match proxies(ctx, &links, &entries, &address).await? {
        Ok(mut changes) => done.append(&mut changes),
        Err(failed) => return Ok(failed),
    }
    for entry in &entries {
        let outcome = publish_env(&agent, entry, &kv_path, &node, &ours).await?;
        match outcome {
            Ok(mut changes) => done.append(&mut changes),
            Err(failed) => return Ok(failed),
        }
    }
    if done.is_empty() {
        return Ok(Outcome::ok());
    }
    Ok(Outcome {
        changed: true,
        msg: Some(done.join(", ")),
        ..Outcome::ok()
    })
}

fn env_prefix(kv_path: &str, service: &str, node: &str) -> String {
    format!("{}/env/{service}/{node}", kv_path.trim_matches('/'))
}

/// Make `KV_PATH/env/SERVICE/NODE/` hold exactly the entry's published
/// keys with their current values. Returns what changed (key names only).
async fn publish_env(
    agent: &Agent<'_>,
    entry: &Entry,
    kv_path: &str,
    node: &str,
    ours: &BTreeMap<&String, &Value>,
) -> Result<std::result::Result<Vec<String>, Outcome>> {
    let Some(service) = &entry.service else {
        return Ok(Ok(Vec::new()));
    };
    // Nothing published now, nor before: nothing to read.
    let was = ours.values().any(|s| {
        s["Meta"][META_CONTAINER] == entry.name.as_str() && s["Meta"][META_ENV].is_string()
    });
    if entry.publish_env.is_empty() && !was {
        return Ok(Ok(Vec::new()));
    }
    let prefix = env_prefix(kv_path, &service.name, node);
    let path = consul_api::kv_path("", &prefix, true, "");
    let current = match agent.call("GET", &path, None).await? {
        Ok(r) => r,
        Err(failed) => return Ok(Err(failed)),
    };
    let mut have: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if current.status == 200 {
        let items: Vec<Value> = serde_json::from_slice(&current.body).unwrap_or_default();
        for item in items {
            let key = item["Key"].as_str().unwrap_or_default();
            let Some(short) = key.strip_prefix(&format!("{prefix}/")) else {
                continue;
            };
            let value = item["Value"]
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .unwrap_or_default();
            have.insert(short.to_owned(), value);
        }
    }
    let mut changes = Vec::new();
    for key in &entry.publish_env {
        let value = entry.env.get(key).cloned().unwrap_or_default();
        if have.get(key).map(Vec::as_slice) == Some(value.as_bytes()) {
            continue;
        }
        changes.push(format!("published {}/{key}", service.name));
        if !agent.ctx.check {
            let path = consul_api::kv_path("", &format!("{prefix}/{key}"), false, "");
            if let Err(failed) = agent.call("PUT", &path, Some(value.as_bytes())).await? {
                return Ok(Err(failed));
            }
        }
    }
    for key in have.keys().filter(|k| !entry.publish_env.contains(k)) {
        changes.push(format!("unpublished {}/{key}", service.name));
        if !agent.ctx.check {
            let path = consul_api::kv_path("", &format!("{prefix}/{key}"), false, "");
            if let Err(failed) = agent.call("DELETE", &path, None).await? {
                return Ok(Err(failed));
            }
        }
    }
    Ok(Ok(changes))
}

/// What the Connect proxies need to know.
struct Links {
    image: String,
    bridge_ip: String,
    /// The agent's HTTP port.
    port: u16,
    /// The node's linking token file (see `Args::token_file`).
    token_file: Option<String>,
}

/// Where a proxy finds the linking token inside its container.
const PROXY_TOKEN: &str = "/arpanet/linking.token";

/// The label marking the linking proxies `consul_services` runs.
const ROLE_LABEL: &str = "arpanet.role";
const ROLE: &str = "linking";
/// The label holding the ID of the container an upstream proxy lives in:
/// a recreated container means a new proxy (the old one kept the old
/// network namespace).
const APP_LABEL: &str = "arpanet.app";

/// The proxy containers the entries want on this node: for each declared
/// service instance, its sidecar (`consul connect proxy -sidecar-for ID`,
/// on the host's network so other nodes reach its mTLS port); for each
/// entry with upstreams, a proxy inside the entry's container's network
/// namespace listening on `127.0.0.1:PORT` for each upstream, with the
/// entry's identity.
fn proxy_specs(
    links: &Links,
    entries: &[Entry],
    address: &str,
    app_ids: &BTreeMap<String, String>,
) -> Vec<Spec> {
    let spec = |name: String, network: String, mut command: Vec<String>, app: Option<&String>| {
        let mut volumes = Vec::new();
        if let Some(file) = &links.token_file {
            volumes.push(format!("{file}:{PROXY_TOKEN}:ro"));
            command.push(format!("-token-file={PROXY_TOKEN}"));
        }
        let mut labels = BTreeMap::from([(ROLE_LABEL.to_owned(), ROLE.to_owned())]);
        if let Some(app) = app {
            labels.insert(APP_LABEL.to_owned(), app.clone());
        }
        Spec {
            name,
            image: links.image.clone(),
            command,
            entrypoint: None,
            network_mode: Some(network),
            ports: Vec::new(),
            volumes,
            env: BTreeMap::new(),
            labels,
            privileged: false,
            cap_add: Vec::new(),
            restart: "unless-stopped".into(),
            healthcheck: None,
        }
    };
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for entry in entries {
        for reg in entry.registrations(address) {
            let mut command = words(&["connect", "proxy", "-sidecar-for", &reg.id]);
            command.push(format!("-http-addr=127.0.0.1:{}", links.port));
            out.push(spec(
                format!("{}-proxy", reg.id),
                "host".into(),
                command,
                None,
            ));
        }
        if entry.upstreams.is_empty() {
            continue;
        }
        let agent = if entry.host_network {
            "127.0.0.1"
        } else {
            links.bridge_ip.as_str()
        };
        let mut command = words(&["connect", "proxy", "-service", entry.identity()]);
        command.push(format!("-http-addr={agent}:{}", links.port));
        for u in &entry.upstreams {
            command.push(format!("-upstream={}:{}", u.service, u.port));
        }
        out.push(spec(
            format!("{}-upstreams", entry.name),
            format!("container:{}", entry.name),
            command,
            app_ids.get(&entry.name),
        ));
    }
    out
}

/// Make the node's linking proxies those the entries want: create,
/// recreate (a changed spec or container) or start them; remove the rest.
async fn proxies(
    ctx: &Context<'_>,
    links: &Links,
    entries: &[Entry],
    address: &str,
) -> Result<std::result::Result<Vec<String>, Outcome>> {
    let mut app_ids = BTreeMap::new();
    for entry in entries.iter().filter(|e| !e.upstreams.is_empty()) {
        let out = crate::probe::exec(
            ctx.transport,
            ctx.host,
            &format!(
                "docker container inspect --format '{{{{.Id}}}}' {} 2>/dev/null || true",
                quote(&entry.name)
            ),
            None,
        )
        .await?;
        app_ids.insert(entry.name.clone(), out.stdout.trim().to_owned());
    }
    let wanted = proxy_specs(links, entries, address, &app_ids);
    let listed = crate::probe::exec(
        ctx.transport,
        ctx.host,
        &format!(
            "docker ps -a --filter label={ROLE_LABEL}={ROLE} --format '{{{{.Names}}}} {{{{.State}}}} {{{{.Label \"{SPEC_LABEL}\"}}}}'"
        ),
        None,
    )
    .await?;
    if !listed.success() {
        return Ok(Err(Outcome::fail(format!(
            "cannot list the linking proxies: {}",
            listed.stderr.trim()
        ))));
    }
    let existing: BTreeMap<&str, (&str, &str)> = listed
        .stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, (w.next()?, w.next().unwrap_or(""))))
        })
        .collect();
    let mut changes = Vec::new();
    let mut script = Vec::new();
    for spec in &wanted {
        let q = quote(&spec.name);
        match existing.get(spec.name.as_str()) {
            Some((_, hash)) if *hash != spec.hash() => {
                changes.push(format!("recreated {}", spec.name));
                script.push(format!("docker rm -f {q} >/dev/null"));
                script.push(format!("{} >/dev/null", spec.run_command()));
            }
            Some((state, _)) if *state != "running" => {
                changes.push(format!("started {}", spec.name));
                script.push(format!("docker start {q} >/dev/null"));
            }
            Some(_) => {}
            None => {
                changes.push(format!("created {}", spec.name));
                script.push(format!("{} >/dev/null", spec.run_command()));
            }
        }
    }
    for name in existing.keys() {
        if !wanted.iter().any(|s| s.name == *name) {
            changes.push(format!("removed {name}"));
            script.push(format!("docker rm -f {} >/dev/null", quote(name)));
        }
    }
    if script.is_empty() || ctx.check {
        return Ok(Ok(changes));
    }
    let script = format!("set -e; {}", script.join("; "));
    let out = ctx.transport.exec(&script, None).await?;
    if !out.success() {
        return Ok(Err(Outcome::failed_command(&script, &out)));
    }
    Ok(Ok(changes))
}

/// The description of the intentions arpanet makes: the ones it may remove.
const INTENTION_DESCRIPTION: &str = "arpanet: the stack's declared upstreams";

/// Where a node keeps the upstreams its stack declares (JSON pairs), so
/// that any node's run knows what the whole cluster declares, `--limit`
/// runs and stacks that differ per host included.
fn upstreams_key(kv_path: &str, node: &str) -> String {
    format!("{}/upstreams/{node}", kv_path.trim_matches('/'))
}

/// Connect's intentions: everything denied (`* → *`), and each declared
/// upstream allowed from the entry's identity to the service. Intentions
/// are cluster-wide: each node records what its stack declares under
/// `KV_PATH/upstreams/NODE` and adds the intentions missing; an allowing
/// intention arpanet made that no node declares any more is removed, so
/// a dropped upstream is refused again. The record of a node no longer
/// in the cluster's `nodes` is deleted, so what it declared goes too.
async fn intentions(
    agent: &Agent<'_>,
    entries: &[Entry],
    here: &Here<'_>,
) -> Result<std::result::Result<Vec<String>, Outcome>> {
    let mine: BTreeSet<(String, String)> = entries
        .iter()
        .flat_map(|e| {
            e.upstreams
                .iter()
                .map(|u| (e.identity().to_owned(), u.service.clone()))
        })
        .collect();
    let mut changes = Vec::new();
    let declared = match declared_upstreams(agent, here, &mine, &mut changes).await? {
        Ok(declared) => declared,
        Err(failed) => return Ok(Err(failed)),
    };
    let mut wanted: Vec<(String, String, &str)> = vec![("*".into(), "*".into(), "deny")];
    wanted.extend(mine.iter().map(|(s, d)| (s.clone(), d.clone(), "allow")));
    let listed = match agent.call("GET", "/v1/connect/intentions", None).await? {
        Ok(r) => r,
        Err(failed) => return Ok(Err(failed)),
    };
    let have: Vec<Value> = serde_json::from_slice(&listed.body).unwrap_or_default();
    for (source, destination, action) in wanted {
        let present = have.iter().any(|i| {
            i["SourceName"] == source.as_str() && i["DestinationName"] == destination.as_str()
        });
        if present {
            continue;
        }
        changes.push(format!("intention {source} → {destination} {action}"));
        if agent.ctx.check {
            continue;
        }
        let body = serde_json::json!({
            "SourceName": source,
            "DestinationName": destination,
            "Action": action,
            "Description": INTENTION_DESCRIPTION,
        })
        .to_string();
        let made = consul_api::request(
            agent.ctx.host,
            agent.ctx.transport,
            agent.port,
            "POST",
            "/v1/connect/intentions",
            Some(body.as_bytes()),
            agent.token.as_deref(),
        )
        .await?;
        // Another node may have made the same one a moment ago.
        if made.status != 200 && !made.text().contains("duplicate") {
            return Ok(Err(Outcome::fail(format!(
                "consul: cannot create the intention {source} → {destination}: HTTP {}: {}",
                made.status,
                made.text().trim()
            ))));
        }
    }
    for stale in have.iter().filter(|i| {
        let pair = (
            i["SourceName"].as_str().unwrap_or_default().to_owned(),
            i["DestinationName"].as_str().unwrap_or_default().to_owned(),
        );
        i["Description"] == INTENTION_DESCRIPTION
            && i["Action"] == "allow"
            && !declared.contains(&pair)
    }) {
        let (source, destination) = (&stale["SourceName"], &stale["DestinationName"]);
        let (source, destination) = (
            source.as_str().unwrap_or_default(),
            destination.as_str().unwrap_or_default(),
        );
        changes.push(format!("intention {source} → {destination} removed"));
        if agent.ctx.check {
            continue;
        }
        let id = stale["ID"].as_str().unwrap_or_default();
        let path = format!("/v1/connect/intentions/{id}");
        if let Err(failed) = agent.call("DELETE", &path, None).await? {
            return Ok(Err(failed));
        }
    }
    Ok(Ok(changes))
}

/// This node, and what it knows of the cluster, for the records every
/// node keeps in KV.
struct Here<'a> {
    kv_path: &'a str,
    node: &'a str,
    nodes: Option<&'a [String]>,
}

/// Record `mine` as this node's declared upstreams (a change when it
/// differs from the record; written unless `--check`) and return what every node of the cluster declares, `mine` included. The
/// records of nodes no longer in the cluster are deleted (said in
/// `changes`).
async fn declared_upstreams(
    agent: &Agent<'_>,
    here: &Here<'_>,
    mine: &BTreeSet<(String, String)>,
    changes: &mut Vec<String>,
) -> Result<std::result::Result<BTreeSet<(String, String)>, Outcome>> {
    let key = upstreams_key(here.kv_path, here.node);
    let folder = key.rsplit_once('/').map_or("", |(folder, _)| folder);
    let listed = agent
        .call("GET", &consul_api::kv_path("", folder, true, ""), None)
        .await?;
    let listed = match listed {
        Ok(r) => r,
        Err(failed) => return Ok(Err(failed)),
    };
    let mut declared = mine.clone();
    let mut recorded = None;
    let items: Vec<Value> = serde_json::from_slice(&listed.body).unwrap_or_default();
    for item in &items {
        let item_key = item["Key"].as_str().unwrap_or_default();
        let value = item["Value"]
            .as_str()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .unwrap_or_default();
        let pairs: BTreeSet<(String, String)> = serde_json::from_slice(&value).unwrap_or_default();
        if item_key == key {
            recorded = Some(pairs);
            continue;
        }
        let owner = item_key.rsplit('/').next().unwrap_or_default();
        if here
            .nodes
            .is_some_and(|nodes| !nodes.iter().any(|n| n == owner))
        {
            changes.push(format!(
                "upstreams of {owner} forgotten (not in the inventory)"
            ));
            if !agent.ctx.check {
                let path = consul_api::kv_path("", item_key, false, "");
                if let Err(failed) = agent.call("DELETE", &path, None).await? {
                    return Ok(Err(failed));
                }
            }
            continue;
        }
        declared.extend(pairs);
    }
    // Said as a change, so that a check run sees a record to write (the
    // stack play leaves out the nodes whose check saw nothing to change).
    if recorded.as_ref() != Some(mine) {
        changes.push(format!("upstreams of {} recorded", here.node));
    }
    if recorded.as_ref() != Some(mine) && !agent.ctx.check {
        let body = serde_json::to_vec(mine).map_err(|e| Error::Internal(e.to_string()))?;
        let path = consul_api::kv_path("", &key, false, "");
        if let Err(failed) = agent.call("PUT", &path, Some(&body)).await? {
            return Ok(Err(failed));
        }
    }
    Ok(Ok(declared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_service_gets_a_sidecar_and_each_upstream_list_a_proxy_in_its_container() {
        let stack = json!([
            {"name": "web", "image": "w", "ports": ["8081:8080"], "service": {}},
            {"name": "app", "image": "a", "upstreams": [{"service": "web", "port": 9191}]},
        ]);
        let entries = stack::parse(&stack).unwrap();
        let links = Links {
            image: "reg/consul:1".into(),
            bridge_ip: "172.17.0.1".into(),
            port: 8500,
            token_file: None,
        };
        let ids = BTreeMap::from([("app".to_owned(), "abc123".to_owned())]);
        let specs = proxy_specs(&links, &entries, "10.0.0.5", &ids);
        let shown: Vec<(String, Option<String>, String)> = specs
            .iter()
            .map(|s| (s.name.clone(), s.network_mode.clone(), s.command.join(" ")))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "web-proxy".to_owned(),
                    Some("host".to_owned()),
                    "connect proxy -sidecar-for web -http-addr=127.0.0.1:8500".to_owned()
                ),
                (
                    "app-upstreams".to_owned(),
                    Some("container:app".to_owned()),
                    "connect proxy -service app -http-addr=172.17.0.1:8500 -upstream=web:9191"
                        .to_owned()
                ),
            ]
        );
        // A recreated app container is a new upstream proxy.
        let other = BTreeMap::from([("app".to_owned(), "def456".to_owned())]);
        let again = proxy_specs(&links, &entries, "10.0.0.5", &other);
        assert_ne!(specs[1].hash(), again[1].hash());
        assert_eq!(specs[0].hash(), again[0].hash());
        // With ACLs, each proxy reads the linking token from the node's
        // file, mounted read-only: never in its environment or command.
        let with_token = Links {
            token_file: Some("/mnt/c/arpanet/linking.token".into()),
            ..links
        };
        for spec in proxy_specs(&with_token, &entries, "10.0.0.5", &ids) {
            assert_eq!(
                spec.volumes,
                ["/mnt/c/arpanet/linking.token:/arpanet/linking.token:ro"]
            );
            assert!(spec.env.is_empty());
            assert_eq!(
                spec.command.last().map(String::as_str),
                Some("-token-file=/arpanet/linking.token")
            );
        }
    }
}
