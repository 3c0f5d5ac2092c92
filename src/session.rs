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
        let mut inventory = Inventory::load_all(&args.inventory)?;
        for dir in &args.playbook_dirs {
            inventory.load_playbook_vars_dirs(dir)?;
        }
        for (host, ip) in &args.resolved_ips {
            inventory.set_host_var(host, "arpanet_ip", ip.as_str().into());
        }
        let inventory = Arc::new(inventory);
        let scope = Arc::new(Scope::load_with(
            inventory.clone(),
            args.defaults,
            args.provided.clone(),
            config::rc_file().as_deref(),
            &args.extra_vars,
        )?);
        if let Some(limit) = &args.limit {
            inventory.select_limit(limit)?;
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

    /// Where and how to reach the hosts matching any of `patterns` (and
    /// `--limit`), each once, in order of first appearance, after checking
    /// their connection and escalation variables (see
    /// [`Session::targets_named`]).
    pub(crate) fn targets_of<'p>(
        &self,
        patterns: impl IntoIterator<Item = &'p str>,
    ) -> Result<Vec<Target>> {
        let mut names: Vec<String> = Vec::new();
        for pattern in patterns {
            for name in crate::plan::play_hosts(&self.inventory, pattern, self.limit.as_deref())? {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        self.targets_named(names)
    }

    /// Every inventory host outside `except` whose connection settings
    /// resolve: where a `delegate_to` may go (a bad one fails only the
    /// task that delegates to it).
    pub(crate) fn delegation_targets(&self, except: &[String]) -> Vec<Target> {
        let others = self.inventory.hosts.iter().map(|h| &h.name);
        others
            .filter(|name| !except.contains(name))
            .filter_map(|name| self.targets_named(vec![name.clone()]).ok())
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
                let vars = connection_vars(&engine, &name, resolved)?;
                let target = self.defaults.target(&name, &vars)?;
                Ok(HostInfo { name, vars, target })
            })
            .collect()
    }

    /// The targets of `names`, as [`Session::hosts_named`] resolves them,
    /// keeping nothing else: a run resolves every host's variables again
    /// per play, so each host's are dropped once its target is made. The
    /// first bad connection variable is the error, else the first bad
    /// escalation variable.
    fn targets_named(&self, names: Vec<String>) -> Result<Vec<Target>> {
        let mut engine = Engine::new();
        self.scope.share_groups(&mut engine);
        let mut bad_escalation = None;
        let mut targets = Vec::with_capacity(names.len());
        for name in names {
            let resolved = self.scope.host_sharing_groups(&engine, &name);
            let vars = connection_vars(&engine, &name, resolved)?;
            if bad_escalation.is_none() {
                bad_escalation = crate::escalation::check(&name, &vars).err();
            }
            targets.push(self.defaults.target(&name, &vars)?);
        }
        match bad_escalation {
            Some(error) => Err(error),
            None => Ok(targets),
        }
    }

    pub fn connector(&self) -> SshConnector {
        SshConnector::new(MAX_STARTS)
    }
}

/// One thread runs every connection: SSH is I/O-bound, and a second
/// worker cost more in wakeups and handoffs than it gave (10 hosts x 10
/// tasks: a quarter more CPU, and no faster at 500 hosts).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

/// `host`'s resolved variables, unless one that says where to connect and
/// as whom did not render: that must never silently fall back.
fn connection_vars(engine: &Engine, host: &str, resolved: crate::scope::Resolved) -> Result<Vars> {
    if let Some(key) = resolved
        .unrendered()
        .find(|key| CONNECTION_VARS.contains(key))
    {
        let why = resolved.why(engine, key).unwrap_or_default();
        return Err(Error::usage(format!(
            "host `{host}`: `{key}` does not render: {why}"
        )));
    }
    Ok(resolved.into_vars())
}

/// The variables that say where and how to connect.
const CONNECTION_VARS: &[&str] = &[
    "ansible_connection",
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
