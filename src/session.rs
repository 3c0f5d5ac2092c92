//! What every command that reaches hosts loads first: the inventory, the
//! variable layers, each selected host's variables and connection target,
//! and the async runtime. All of it is checked before any host is touched.

use std::sync::Arc;

use crate::cli::ConnectArgs;
use crate::config::{self, ConnectDefaults};
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::ssh::SshConnector;
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

    /// The hosts matching `pattern` and `--limit`, with their variables.
    pub fn hosts(&self, pattern: &str) -> Result<Vec<HostInfo>> {
        let names = crate::plan::play_hosts(&self.inventory, pattern, self.limit.as_deref())?;
        names
            .into_iter()
            .map(|name| {
                let vars = vars::for_host(&self.inventory, &name, &self.layers, &Vars::new());
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
