//! What every command that reaches hosts loads first: the inventory, the
//! variable layers, each selected host's variables and connection target,
//! and the async runtime. All of it is checked before any host is touched.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::ConnectArgs;
use crate::config::{self, ConnectDefaults};
use sha2::{Digest, Sha256};

use crate::error::{Error, Location, Result};
use crate::inventory::Inventory;
use crate::ssh::SshConnector;
use crate::template::Engine;
use crate::tls;
use crate::transport::Target;
use crate::vars::{self, Layers, Vars};

/// At most this many SSH handshakes at once, below sshd's MaxStartups (10).
pub const MAX_STARTS: usize = 8;

pub struct Session {
    pub inventory: Arc<Inventory>,
    pub layers: Arc<Layers>,
    pub defaults: ConnectDefaults,
    pub limit: Option<String>,
}

/// One selected host, ready to connect to.
pub struct HostInfo {
    pub name: String,
    pub vars: Vars,
    pub target: Target,
}

impl Session {
    pub fn open(args: &ConnectArgs) -> Result<Self> {
        let defaults = ConnectDefaults::from_args(args)?;
        let inventory = Arc::new(Inventory::load(&args.inventory)?);
        let layers = Arc::new(Layers::load(
            config::rc_file().as_deref(),
            &args.extra_vars,
        )?);
        if let Some(limit) = &args.limit {
            inventory.select(limit)?;
        }
        Ok(Session {
            inventory,
            layers,
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

    fn hosts_named(&self, names: Vec<String>) -> Result<Vec<HostInfo>> {
        let engine = Engine::new();
        names
            .into_iter()
            .map(|name| {
                let raw = vars::for_host(&self.inventory, &name, &self.layers, &Vars::new());
                let mut vars = raw.clone();
                let unrendered = engine.resolve_vars(
                    &raw,
                    raw.keys(),
                    &mut vars,
                    &Location::new("<variables>", 0, 0),
                );
                // Where to connect and as whom must never silently fall back.
                if let Some((key, why)) = unrendered
                    .iter()
                    .find(|(key, _)| CONNECTION_VARS.contains(&key.as_str()))
                {
                    return Err(Error::usage(format!(
                        "host `{name}`: `{key}` does not render: {why}"
                    )));
                }
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
];

/// `vars` with their templated values rendered (those that can be now).
pub fn resolved(engine: &Engine, vars: &Vars) -> Vars {
    let mut out = vars.clone();
    engine.resolve_vars(
        vars,
        vars.keys(),
        &mut out,
        &Location::new("<variables>", 0, 0),
    );
    out
}

impl Session {
    /// When any of `hosts` has `docker_tcp` on, make sure the CA and the
    /// certificates for Docker's TLS API exist in `docker_tls_dir` (made
    /// once, then reused); each host's certificate names its SSH address
    /// and its `arpanet_ip`.
    pub fn prepare_docker_tls(&self, hosts: &[HostInfo]) -> Result<Option<(PathBuf, tls::Report)>> {
        let mut dir = None;
        let mut certs = Vec::new();
        for host in hosts {
            let vars = &host.vars;
            let on = crate::truth::is_on(vars.get("docker_tcp"));
            if !on {
                continue;
            }
            let text = |name: &str| {
                vars.get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            };
            dir = dir.or_else(|| text("docker_tls_dir"));
            let mut addresses = vec![host.target.address.clone()];
            addresses.extend(text("arpanet_ip").filter(|ip| *ip != host.target.address));
            certs.push(tls::ServerCert {
                name: host.name.clone(),
                addresses,
            });
        }
        let Some(dir) = dir.map(PathBuf::from) else {
            return Ok(None);
        };
        let report = tls::ensure(&dir, &certs)?;
        Ok(Some((dir, report)))
    }
}

/// The file holding the Consul gossip encryption key, in `consul_tls_dir`.
const GOSSIP_KEY: &str = "gossip.key";

impl Session {
    /// Consul's traffic between nodes is encrypted: gossip with a shared
    /// key, RPC with TLS and verified certificates on both sides. Makes the
    /// key and the certificates once in `consul_tls_dir` (beside the
    /// inventory), and makes the key visible as `consul_gossip_key`.
    /// Nothing to do for an inventory without a `servers` group.
    pub fn prepare_consul_security(
        &mut self,
        hosts: &[HostInfo],
    ) -> Result<Option<(PathBuf, tls::Report)>> {
        let servers = self.inventory.select("servers").unwrap_or_default();
        let clients = self.inventory.select("clients").unwrap_or_default();
        let agents: Vec<&HostInfo> = hosts
            .iter()
            .filter(|h| servers.contains(&h.name) || clients.contains(&h.name))
            .collect();
        let text = |vars: &Vars, name: &str| {
            vars.get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let Some(dir) = agents
            .first()
            .and_then(|h| text(&h.vars, "consul_tls_dir"))
            .map(PathBuf::from)
        else {
            return Ok(None);
        };
        let mut certs = Vec::new();
        for host in &agents {
            let mut addresses = vec![
                "127.0.0.1".to_owned(),
                "localhost".to_owned(),
                host.target.address.clone(),
            ];
            addresses
                .extend(text(&host.vars, "arpanet_ip").filter(|ip| *ip != host.target.address));
            if servers.contains(&host.name) {
                let datacenter =
                    text(&host.vars, "consul_datacenter").unwrap_or_else(|| "dc1".to_owned());
                addresses.push(format!("server.{datacenter}.consul"));
            }
            certs.push(tls::ServerCert {
                name: host.name.clone(),
                addresses,
            });
        }
        let mut report = tls::ensure(&dir, &certs)?;
        let key_file = dir.join(GOSSIP_KEY);
        let key = match std::fs::read_to_string(&key_file) {
            Ok(key) => key.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    rand::random::<[u8; 32]>(),
                );
                tls::write_secret(&key_file, key.as_bytes())?;
                report.created.push(key_file.clone());
                key
            }
            Err(e) => return Err(Error::io("read", &key_file, e)),
        };
        // Per host, what its agent was started with: its certificate, the CA
        // and the key. A change restarts that agent, and only that one.
        let ca = std::fs::read(dir.join(tls::CA_CERT))
            .map_err(|e| Error::io("read", dir.join(tls::CA_CERT), e))?;
        let mut fingerprints = Vars::new();
        for cert in &certs {
            let path = dir
                .join(tls::HOSTS_DIR)
                .join(&cert.name)
                .join(tls::SERVER_CERT);
            let own = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let digest = Sha256::new()
                .chain_update(&ca)
                .chain_update(&own)
                .chain_update(key.as_bytes())
                .finalize();
            fingerprints.insert(cert.name.clone(), hex::encode(&digest[..8]).into());
        }
        let defaults = &mut Arc::make_mut(&mut self.layers).defaults;
        defaults.insert("consul_gossip_key".into(), key.into());
        defaults.insert("consul_security_fingerprints".into(), fingerprints.into());
        Ok(Some((dir, report)))
    }
}
