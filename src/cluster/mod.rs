//! The cluster product: what arpanet builds on top of its Ansible-style
//! engine. The engine (inventory, playbooks, variables, executor, modules,
//! transport) knows nothing of Docker TLS, Consul or the `servers` and
//! `clients` groups; everything that does lives here:
//!
//! - `pki`: the CA and certificates for Docker's TLS API and Consul's RPC;
//! - `docker_api`: the check that keeps Docker's API off plain TCP;
//! - `address`: the check that each Consul node's `arpanet_ip` is an IP;
//! - `secrets`: the `cluster_secrets` task that the built-in playbooks call
//!   to make those certificates and Consul's gossip key on this machine;
//! - `status`, `details`, `kv`, `consul_exec`: the commands that look at or
//!   talk to the running cluster, through `consul_api` (Consul's HTTP API over an SSH
//!   channel).
//!
//! - `acl`: Consul's ACLs (default deny): the tokens arpanet keeps and
//!   sends, and the `consul_acl` task that makes policies and tokens;
//!
//! - `keyring`: the `gossip_rotate` task of `arpanet rotate` (a new gossip
//!   key through Consul's keyring, no restart);
//! - `ca_rotation`: `arpanet rotate --tls`, a new Consul CA rolled in three
//!   phases (the rotation's state beside the inventory, its task);
//!
//! - `lock`: the run lock that keeps two runs from changing the cluster at
//!   once (in Consul, or a file on the boot server before Consul runs).
//!
//! - `stack`, `services`: linking: the `stack` entries' `service:`,
//!   `upstreams:` and `publish_env:`, checked before a run and registered
//!   in each node's agent by the `consul_services` task;
//! - `deployed`: what is deployed, recorded in Consul KV after each change
//!   and read back before the next run (`history`, `rollback`);
//!
//! - `ui`: Consul's and cAdvisor's web UIs through a forwarded local port;
//!
//! - `builtin`: the built-in playbooks, task files and templates
//!   (`playbooks/`, `templates/`), handed to the engine's resolver by `run`.

pub(crate) mod acl;
pub(crate) mod address;
pub(crate) mod builtin;
pub(crate) mod ca_rotation;
pub(crate) mod catalog;
pub mod consul_api;
pub(crate) mod consul_exec;
pub(crate) mod consul_gate;
pub(crate) mod deployed;
pub(crate) mod details;
pub(crate) mod docker_api;
pub(crate) mod keyring;
pub(crate) mod kv;
pub(crate) mod lock;
pub(crate) mod logs;
pub mod pki;
pub mod secrets;
pub(crate) mod services;
pub(crate) mod settings;
pub(crate) mod stack;
pub mod status;
pub(crate) mod ui;
pub(crate) mod unchanged;

use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::session::{HostInfo, Session};
use crate::transport::{Connector, Transport};
use crate::vars::Vars;

/// The variable `name` as text (a string or a number), else `default`.
pub(crate) fn text(vars: &Vars, name: &str, default: &str) -> String {
    match vars.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => default.to_owned(),
    }
}

/// The port of the Consul agent's HTTP API on the node.
pub(crate) fn consul_port(vars: &Vars) -> Result<u16> {
    let port = text(vars, "consul_port", "8500");
    port.parse()
        .map_err(|_| Error::usage(format!("`consul_port` must be a port number, got `{port}`")))
}

/// Connect to the first host whose Consul agent answers its HTTP API:
/// servers first (see [`ordered_hosts`]), then the rest, so a server whose
/// Consul is down does not stop `kv`, `consul` or `services`. With
/// `verbose`, each attempt is named on stderr. Returns the host, its
/// connection and its agent's port. When no host is reachable, the last
/// connection error (exit 4); when some are but no agent answers, an error
/// listing each attempt.
pub(crate) async fn first_agent<'a>(
    connector: &dyn Connector,
    hosts: &'a [HostInfo],
    verbose: bool,
) -> Result<(&'a HostInfo, Arc<dyn Transport>, u16)> {
    let mut tried = Vec::new();
    let mut unreachable = None;
    let mut reached = false;
    for host in hosts {
        let port = consul_port(&host.vars)?;
        let why = match connector.connect(&host.target).await {
            Err(err) => {
                let why = without_host(&host.name, &err);
                unreachable = Some(err);
                why
            }
            Ok(conn) => {
                reached = true;
                match consul_api::answers(&host.name, conn.as_ref(), port).await {
                    Ok(()) => {
                        if verbose {
                            eprintln!("{}: consul agent answers on port {port}", host.name);
                        }
                        return Ok((host, conn, port));
                    }
                    Err(err) => {
                        conn.close().await;
                        without_host(&host.name, &err)
                    }
                }
            }
        };
        if verbose {
            eprintln!("{}: {why}; trying the next node", host.name);
        }
        tried.push(format!("{}: {why}", host.name));
    }
    match (hosts.first(), unreachable) {
        (None, _) => Err(Error::usage("no hosts in the inventory")),
        // Not one node reachable: that is the failure (exit 4).
        (Some(_), Some(err)) if !reached => Err(err),
        (Some(_), _) => Err(Error::Remote {
            host: "consul".into(),
            message: format!(
                "no agent answers on any node:\n  {}\nhint: `arpanet status` shows \
                 which agents and containers are down",
                tried.join("\n  ")
            ),
        }),
    }
}

/// An error's text without the `host: ` it starts with.
fn without_host(host: &str, err: &Error) -> String {
    let text = err.to_string();
    text.strip_prefix(&format!("{host}: "))
        .unwrap_or(&text)
        .to_owned()
}

/// Every host, Consul servers first.
pub(crate) fn ordered_hosts(session: &Session) -> Result<Vec<HostInfo>> {
    let mut hosts = session.hosts("all")?;
    let servers = session.inventory.select("servers").unwrap_or_default();
    hosts.sort_by_key(|h| !servers.contains(&h.name));
    Ok(hosts)
}

/// Rows as text columns two spaces apart, each as wide as its widest cell,
/// one line per row (the tables of `status` and `services`).
fn columns<const N: usize>(cells: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| cells.iter().map(|c| c[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
