//! What every command that reaches hosts loads first: the inventory, the
//! variable layers, each selected host's variables and connection target,
//! and the async runtime. All of it is checked before any host is touched.

use std::sync::Arc;

use crate::config::{self, ConnectDefaults, ConnectOptions};
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::scope::Scope;
use crate::ssh::jump;
use crate::ssh::SshConnector;
use crate::template::Engine;
use crate::transport::Target;
use crate::vars::Vars;

/// At most this many SSH handshakes at once to one host, below sshd's
/// MaxStartups (10); distinct hosts connect in parallel up to `--forks`.
pub const MAX_STARTS: usize = 8;

pub struct Session {
    pub inventory: Arc<Inventory>,
    /// Every host's variables; commands ask it, never merge layers.
    pub(crate) scope: Arc<Scope>,
    pub defaults: ConnectDefaults,
    pub limit: Option<String>,
}

/// One selected host, ready to connect to.
#[derive(Clone)]
pub struct HostInfo {
    pub name: String,
    pub vars: Vars,
    pub target: Target,
}

impl Session {
    pub fn open(args: &ConnectOptions) -> Result<Self> {
        let defaults = ConnectDefaults::from_options(args)?;
        let inventory = Arc::new(Inventory::load_all(&args.inventory)?);
        let scope = Arc::new(Scope::load_with(
            inventory.clone(),
            args.defaults,
            args.provided.clone(),
            config::rc_file().as_deref(),
            &args.extra_vars,
        )?);
        if let Some(limit) = &args.limit {
            inventory.select(limit)?;
        }
        Ok(Session {
            inventory,
            scope,
            defaults,
            limit: args.limit.clone(),
        })
    }

    /// The hosts matching `pattern` and `--limit`, with their variables
    /// (templated values rendered where they can be without a play).
    pub fn hosts(&self, pattern: &str) -> Result<Vec<HostInfo>> {
        self.hosts_named(crate::plan::play_hosts(
            &self.inventory,
            pattern,
            self.limit.as_deref(),
        )?)
    }

    /// The hosts matching any of `patterns` (and `--limit`), each once, in
    /// order of first appearance.
    pub fn hosts_of<'p>(
        &self,
        patterns: impl IntoIterator<Item = &'p str>,
    ) -> Result<Vec<HostInfo>> {
        let mut names: Vec<String> = Vec::new();
        for pattern in patterns {
            for name in crate::plan::play_hosts(&self.inventory, pattern, self.limit.as_deref())? {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        self.hosts_named(names)
    }

    /// Every inventory host outside `except` whose connection settings
    /// resolve: where a `delegate_to` may go (a bad one fails only the
    /// task that delegates to it).
    pub(crate) fn delegation_hosts(&self, except: &[String]) -> Vec<HostInfo> {
        let others = self.inventory.hosts.iter().map(|h| &h.name);
        others
            .filter(|name| !except.contains(name))
            .filter_map(|name| self.hosts_named(vec![name.clone()]).ok())
            .flatten()
            .collect()
    }

    /// Every host of the inventory, whatever `--limit` says (the cluster's
    /// lock is the whole cluster's).
    pub(crate) fn every_host(&self) -> Result<Vec<HostInfo>> {
        self.hosts_named(crate::plan::play_hosts(&self.inventory, "all", None)?)
    }

    fn hosts_named(&self, names: Vec<String>) -> Result<Vec<HostInfo>> {
        let engine = Engine::new();
        names
            .into_iter()
            .map(|name| {
                let resolved = self.scope.host(&engine, &name);
                // Where to connect and as whom must never silently fall back.
                if let Some((key, why)) = resolved
                    .unrendered()
                    .find(|(key, _)| CONNECTION_VARS.contains(key))
                {
                    return Err(Error::usage(format!(
                        "host `{name}`: `{key}` does not render: {why}"
                    )));
                }
                let vars = resolved.vars;
                let target = self.defaults.target(&name, &vars)?;
                Ok(HostInfo { name, vars, target })
            })
            .collect()
    }

    pub fn connector(&self) -> SshConnector {
        SshConnector::new(MAX_STARTS)
    }
}

/// A small multi-threaded runtime: SSH is I/O-bound, two workers suffice.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

/// The variables that say where and how to connect.
const CONNECTION_VARS: &[&str] = &[
    "ansible_host",
    "host",
    "ansible_port",
    "port",
    "ansible_user",
    "user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "arpanet_known_hosts_file",
    "arpanet_global_known_hosts_file",
    jump::JUMP_VAR,
    jump::SSH_ARG_VARS[0],
    jump::SSH_ARG_VARS[1],
    jump::SSH_ARG_VARS[2],
    "arpanet_reconnect_timeout",
    config::SESSION_VAR,
];
