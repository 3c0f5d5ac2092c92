//! `gossip_rotate`: a new Consul gossip key for the running cluster, through
//! the agents' keyring, with no agent restarted (`arpanet rotate`, the
//! `rotate` playbook):
//!
//! ```yaml
//! - name: a new gossip key, through the agents' keyring
//!   run_once: true
//!   gossip_rotate:
//!     dir: "{{ consul_tls_dir }}"
//!     port: "{{ consul_port }}"
//! ```
//!
//! Through one agent's HTTP API (`/v1/operator/keyring`, what `consul
//! keyring` calls; the key goes in the request body, never on a command
//! line): install a new key on every member, make it the primary, write it
//! to `DIR/gossip.key`, then remove every other key. Consul keeps each
//! agent's keyring in its data dir and reads it, not the configured key,
//! when it starts again; the playbook then updates each node's
//! `security.json` so the configuration agrees, without a restart.
//!
//! An interrupted rotation leaves a cluster that holds both keys (the new
//! one primary once `use` passed, the checkout's one still known): this
//! checkout is still accepted (its key is one the cluster holds), and the
//! next `rotate` finishes the job. Keys are never printed: error bodies are
//! masked.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::consul_api;
use super::pki;
use super::secrets::GOSSIP_KEY;
use crate::error::{Error, Result};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::yaml::Node;

pub(crate) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "gossip_rotate"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(GossipRotate(args_map(
            node,
            "a mapping with `dir` and `port`",
        )?)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateArgs {
    /// The checkout's Consul secrets directory (a template).
    pub dir: String,
    /// The agent's HTTP port (a template).
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GossipRotate(pub RotateArgs);

impl Module for GossipRotate {
    fn name(&self) -> &'static str {
        "gossip_rotate"
    }

    fn summary(&self) -> String {
        "consul keyring".into()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.0.dir, &self.0.port]
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

const PATH: &str = "/v1/operator/keyring";

async fn run(args: &RotateArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = PathBuf::from(ctx.render(&args.dir)?);
    let port_text = ctx.render(&args.port)?;
    let port: u16 = port_text
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("`port` must be a port number, got `{port_text}`")))?;
    let before = keys(ctx, port, &[]).await?;
    if ctx.check {
        return Ok(Outcome {
            changed: true,
            msg: Some(format!(
                "would install a new gossip key on the cluster's {} key(s) and remove the old",
                before.len()
            )),
            ..Outcome::ok()
        });
    }
    let new = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rand::random::<[u8; 32]>(),
    );
    let mut secrets: Vec<&str> = before.iter().map(String::as_str).collect();
    secrets.push(&new);
    let body = |key: &str| json!({ "Key": key }).to_string().into_bytes();
    call(
        ctx,
        port,
        "POST",
        Some(&body(&new)),
        &secrets,
        "install the new key",
    )
    .await?;
    call(
        ctx,
        port,
        "PUT",
        Some(&body(&new)),
        &secrets,
        "make the new key the primary",
    )
    .await?;
    // The cluster now encrypts with the new key: this checkout must know it
    // before the old one goes.
    pki::write_secret(&dir.join(GOSSIP_KEY), new.as_bytes())?;
    for old in before.iter().filter(|k| **k != new) {
        call(
            ctx,
            port,
            "DELETE",
            Some(&body(old)),
            &secrets,
            "remove an old key",
        )
        .await?;
    }
    let after = keys(ctx, port, &secrets).await?;
    if after != [new.clone()] {
        return Ok(Outcome::fail(format!(
            "the cluster holds {} gossip keys after the rotation, expected only the new one",
            after.len()
        )));
    }
    Ok(Outcome {
        changed: true,
        msg: Some(format!(
            "a new gossip key on every member, {} old one(s) removed; written to `{}`",
            before.len(),
            dir.join(GOSSIP_KEY).display()
        )),
        ..Outcome::ok()
    })
}

/// Every key the LAN keyring holds, as the agent lists them.
async fn keys(ctx: &Context<'_>, port: u16, secrets: &[&str]) -> Result<Vec<String>> {
    let body = call(ctx, port, "GET", None, secrets, "list the keyring").await?;
    let pools: Vec<Value> = serde_json::from_slice(&body).map_err(|e| Error::Remote {
        host: ctx.host.to_owned(),
        message: format!("consul's keyring list is not JSON: {e}"),
    })?;
    let mut keys: Vec<String> = pools
        .iter()
        .filter(|p| p.get("WAN").and_then(Value::as_bool) == Some(false))
        .filter_map(|p| p.get("Keys").and_then(Value::as_object))
        .flat_map(|k| k.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// One keyring request; an answer other than 200 is an error whose text
/// has every key in `secrets` masked.
async fn call(
    ctx: &Context<'_>,
    port: u16,
    method: &str,
    body: Option<&[u8]>,
    secrets: &[&str],
    what: &str,
) -> Result<Vec<u8>> {
    let token = super::acl::task_token(ctx, super::acl::MANAGEMENT)?;
    let response = consul_api::request(
        ctx.host,
        ctx.transport,
        port,
        method,
        PATH,
        body,
        token.as_deref(),
    )
    .await?;
    if response.status == 200 {
        return Ok(response.body);
    }
    let mut text = response.text();
    for secret in secrets {
        text = text.replace(secret, "***");
    }
    Err(Error::Remote {
        host: ctx.host.to_owned(),
        message: format!(
            "consul refused to {what} (HTTP {}): {}",
            response.status,
            text.trim()
        ),
    })
}
