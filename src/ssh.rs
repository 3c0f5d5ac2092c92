//! The russh implementation of `Transport`: connect with a timeout and a cap
//! on unauthenticated connection starts, verify host keys against
//! known_hosts, authenticate by agent or key file, run commands on fresh
//! channels that are closed after use, and forward TCP channels. Host keys
//! are offered and checked as OpenSSH does (see `known_hosts`).
//!
//! It exists so that everything above it (executor, modules) sees one small
//! trait, while the parts of SSH that bite at scale live here:
//! - sshd's `MaxStartups` drops connections when too many are still
//!   unauthenticated, so a semaphore per server address (`host:port`) caps
//!   handshakes in flight there. The limit is per server, as MaxStartups
//!   is: 500 distinct hosts handshake in parallel, bounded only by how many
//!   hosts the executor works on at once (`--forks`);
//! - a session channel per command costs the host a fork of sshd's session
//!   process and a login shell, and a round trip or two: commands run
//!   through one long-lived shell per connection instead (`shell.rs`),
//!   unless `--session exec` says otherwise or they need a channel of
//!   their own (a terminal, a password fed on demand, large stdin);
//! - sshd's `MaxSessions` refuses channels beyond 10 per connection, so
//!   a command on its own channel waits for it to close, and a
//!   per-connection semaphore keeps concurrent ones below the limit (the
//!   shell's channel is one more);
//! - a refused host key must reach the operator as a host-key error with
//!   the fingerprint and what to do, not as russh's generic "disconnected";
//! - a command whose exec is abandoned (a task timeout, Ctrl-C) keeps
//!   running on the host unless it is killed: without a pty, closing the
//!   channel does not stop it (sshd only closes its pipes). The SSH
//!   `signal` request, which sshd delivers to the session's process group,
//!   is refused for root logins, so the kill also goes around sshd: a
//!   second channel kills the process group that the persistent shell, or
//!   a command on its own channel, reported when it started (`abandon.rs`). Only what calls `setsid` itself escapes; the
//!   tests check with a real sshd, logged in as root and not, that nothing
//!   is left. [`SshTransport`]'s `close` waits for these kills, so they
//!   happen before arpanet exits;
//! - a silent peer (a partition, a host that froze) would block a command
//!   forever: keepalives every [`KEEPALIVE`] end the connection after
//!   [`KEEPALIVE_MAX`] unanswered ones, so a lost host is reported
//!   unreachable after 12 s of silence: within 15 s, as the README says.

mod abandon;
pub mod config;
pub(crate) mod jump;
pub mod known_hosts;
mod quick_ack;
mod shell;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, Sig};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, Semaphore};

use crate::error::{Error, Result};
use crate::transport::{
    Capped, Connector, Gate, Gated, HostKeyChecking, Keepalive, Lines, Output, Pipe, Proxy,
    SessionMode, Sink, Stream, Target, Transport,
};
use abandon::{Abandon, Kills, Reported, Way};
use known_hosts::{KnownHosts, Offer, ServerKey, Status};

/// Handshakes in flight to one server address when the caller has no
/// opinion; below sshd's default `MaxStartups 10`.
pub const DEFAULT_MAX_STARTS: usize = 8;

/// Session channels open at once on one connection; below sshd's default
/// `MaxSessions 10` with room to spare, because sshd frees a closed
/// session's slot only after it has handled the packets that arrived with
/// our close (which may include the next open).
const MAX_SESSIONS: usize = 6;

/// Silence after which a keepalive is sent.
const KEEPALIVE: Duration = Duration::from_secs(3);

/// Keepalives left unanswered before the connection is declared lost: a
/// silent peer is dropped after `(KEEPALIVE_MAX + 1) × KEEPALIVE`, 12 s.
const KEEPALIVE_MAX: usize = 3;

/// A connection idle this long is pinged before a task reuses it; one used
/// more recently is taken as alive (a lost one then fails that task).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// How long a ping may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `close` waits for the kills of abandoned commands.
const KILL_WAIT: Duration = Duration::from_secs(3);

/// Environment variable holding the passphrase for encrypted key files.
pub const PASSPHRASE_ENV: &str = "ARPANET_SSH_PASSPHRASE";

/// Handshakes tried when sshd drops the connection before the key exchange.
const HANDSHAKE_ATTEMPTS: u32 = 3;

/// Opens SSH connections; at most `max_starts` handshakes (TCP connect to
/// end of authentication) at once to any one server address.
pub struct SshConnector {
    max_starts: usize,
    /// One semaphore per `address:port` with handshakes in flight; an entry
    /// is removed when its last handshake ends, so the map stays as small as
    /// the number of hosts being connected to.
    starts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    agent: Option<PathBuf>,
    passphrase: Option<String>,
    /// Handshakes tried when sshd drops the connection before the key
    /// exchange (see [`HANDSHAKE_ATTEMPTS`]).
    handshake_attempts: u32,
    /// The connections to jump hosts, one per chain of hops (see
    /// [`chain_key`]), shared by every host behind them.
    bastions: Mutex<HashMap<String, Arc<OnceCell<Bastion>>>>,
    /// The known_hosts files, read once for all the hosts.
    known_hosts: known_hosts::Cache,
    /// The client configurations made so far, shared by the connections
    /// that need the same one (usually all of them).
    configs: Mutex<Vec<(Settings, Arc<client::Config>)>>,
    /// Each key file as read (and decrypted) the first time a connection
    /// needed it, or why it could not be: an encrypted key's KDF costs
    /// about 0.15 s of CPU, once per run rather than once per host.
    keys: Mutex<HashMap<PathBuf, KeyFile>>,
}

/// A private key file as loaded, or the note saying why it was not.
type KeyFile = std::result::Result<Arc<russh::keys::PrivateKey>, String>;

/// A jump host's connection, or why it could not be made.
type Bastion = std::result::Result<Arc<SshTransport>, Failure>;

impl SshConnector {
    /// A connector allowing `max_starts` handshakes at once per server
    /// address (at least one), using the ssh-agent at `$SSH_AUTH_SOCK` and the passphrase in
    /// `$ARPANET_SSH_PASSPHRASE` when set.
    pub fn new(max_starts: usize) -> SshConnector {
        SshConnector {
            max_starts: max_starts.max(1),
            starts: Arc::default(),
            agent: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            passphrase: std::env::var(PASSPHRASE_ENV).ok(),
            handshake_attempts: HANDSHAKE_ATTEMPTS,
            bastions: Mutex::default(),
            known_hosts: known_hosts::Cache::default(),
            configs: Mutex::default(),
            keys: Mutex::default(),
        }
    }

    /// Try a dropped handshake `attempts` times in all (at least once), so a
    /// test of the start limits sees a drop instead of its retry.
    pub fn with_handshake_attempts(mut self, attempts: u32) -> SshConnector {
        self.handshake_attempts = attempts.max(1);
        self
    }

    /// Use the ssh-agent listening on `socket` (or none) instead of
    /// `$SSH_AUTH_SOCK`.
    pub fn with_agent(mut self, socket: Option<PathBuf>) -> SshConnector {
        self.agent = socket;
        self
    }

    /// Decrypt encrypted key files with `passphrase` (or skip them) instead
    /// of `$ARPANET_SSH_PASSPHRASE`.
    pub fn with_passphrase(mut self, passphrase: Option<String>) -> SshConnector {
        self.passphrase = passphrase;
        self
    }

    /// Connect and authenticate to `target`, through its jump hosts or its
    /// `ProxyCommand` when it has them.
    pub async fn connect_ssh(&self, target: &Target) -> Result<SshTransport> {
        self.connect_attempt(target).await.map_err(|a| a.error)
    }

    /// Connect again to a host whose connection was lost: tried for up to
    /// `target.reconnect`, pausing 0.25 s, 0.5 s, 1 s, 2 s, then 2 s between
    /// attempts, while the failure is one a rebooting host or a restarting
    /// sshd gives (refused, timed out, dropped before the login). A refused
    /// host key (checked again as on the first connection), a refused login
    /// or a bastion that fails end it at once.
    pub async fn reconnect_ssh(&self, target: &Target) -> Result<SshTransport> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(250);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failed = match self.connect_attempt(target).await {
                Ok(transport) => return Ok(transport),
                Err(failed) => failed,
            };
            let left = target.reconnect.saturating_sub(started.elapsed());
            if !failed.transient || left.is_zero() {
                return Err(match failed.error {
                    Error::Unreachable {
                        host,
                        message,
                        hint,
                    } if failed.transient => Error::Unreachable {
                        host,
                        message: format!(
                            "connection lost, and not back after {attempts} attempts over {}: \
                             {message}",
                            seconds(started.elapsed())
                        ),
                        hint: Some(format!(
                            "{}; `arpanet_reconnect_timeout` ({}) sets how long a lost host \
                             is tried again",
                            hint.unwrap_or_default(),
                            seconds(target.reconnect)
                        )),
                    },
                    other => other,
                });
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    async fn connect_attempt(&self, target: &Target) -> std::result::Result<SshTransport, Attempt> {
        let via = match &target.proxy {
            Proxy::Jump(hops) if !hops.is_empty() => Some(
                self.bastion(hops)
                    .await
                    .map_err(|failure| failure.error(&target.name))?,
            ),
            _ => None,
        };
        self.handshake_attempt(target, via).await
    }

    /// The shared connection to the last of `chain`, reached through the
    /// ones before it: made by the first host that needs it, then handed to
    /// every other host behind it. A failure is kept too, so each host
    /// behind a bastion that is down reports it at once; a connection found
    /// closed is made again.
    fn bastion<'a>(
        &'a self,
        chain: &'a [Target],
    ) -> BoxFuture<'a, std::result::Result<Arc<SshTransport>, Failure>> {
        Box::pin(async move {
            let Some((hop, before)) = chain.split_last() else {
                return Err(Failure::internal("an empty jump host list"));
            };
            let key = chain_key(chain);
            let mut attempts = 0;
            loop {
                attempts += 1;
                let cell = {
                    let mut pool = self.bastions.lock().unwrap_or_else(|p| p.into_inner());
                    Arc::clone(pool.entry(key.clone()).or_default())
                };
                let made = cell
                    .get_or_init(|| async {
                        let via = match before {
                            [] => None,
                            before => Some(self.bastion(before).await?),
                        };
                        self.handshake(hop, via)
                            .await
                            .map(Arc::new)
                            .map_err(|e| Failure::new(hop, e))
                    })
                    .await
                    .clone();
                match made {
                    Ok(bastion) if bastion.handle.is_closed() && attempts < 3 => {
                        let mut pool = self.bastions.lock().unwrap_or_else(|p| p.into_inner());
                        if pool.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                            pool.remove(&key);
                        }
                    }
                    Ok(bastion) if bastion.handle.is_closed() => {
                        return Err(Failure {
                            bastion: hop.name.clone(),
                            message: "the connection keeps closing".into(),
                            hint: Some(LOST_HINT.into()),
                        })
                    }
                    made => return made,
                }
            }
        })
    }

    /// Open the byte stream to `target`'s SSH port, then log in over it.
    async fn handshake(
        &self,
        target: &Target,
        via: Option<Arc<SshTransport>>,
    ) -> Result<SshTransport> {
        self.handshake_attempt(target, via)
            .await
            .map_err(|a| a.error)
    }

    /// [`Self::handshake`], saying whether a failure may pass if tried again
    /// soon (see [`Attempt`]).
    async fn handshake_attempt(
        &self,
        target: &Target,
        via: Option<Arc<SshTransport>>,
    ) -> std::result::Result<SshTransport, Attempt> {
        let permit = self.start(target, via.as_deref()).await?;
        let known_hosts = match target.host_key_checking {
            HostKeyChecking::Off => Arc::default(),
            _ => self
                .known_hosts
                .read(&target.known_hosts, &target.extra_known_hosts)?,
        };
        let config = self.config(&known_hosts, target);
        let peer = endpoint(target);
        let route = match &via {
            Some(bastion) => format!(" via bastion `{}`", bastion.chain),
            None => String::new(),
        };
        // sshd drops a connection beyond its MaxStartups before the key
        // exchange; our own starts are capped below that, but other clients
        // (or a slow sshd still counting our last login) can fill it. Such a
        // drop is retried a few times; a refused host key never is.
        let mut attempt = 0;
        let offered = Arc::new(Mutex::new(None));
        let (mut handle, command) = loop {
            attempt += 1;
            let (stream, command) = open_stream(target, via.as_deref())
                .await
                .map_err(Attempt::transient)?;
            let rejection = Arc::new(Mutex::new(None));
            let handler = ClientHandler {
                target: target.clone(),
                known_hosts: Some(Arc::clone(&known_hosts)),
                rejection: Arc::clone(&rejection),
                offered: Arc::clone(&offered),
            };
            let handshake = client::connect_stream(Arc::clone(&config), stream, handler);
            match tokio::time::timeout(target.connect_timeout, handshake).await {
                Ok(Ok(handle)) => break (handle, command),
                Ok(Err(e)) => {
                    let stashed = rejection.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(refusal) = stashed {
                        return Err(refusal.into());
                    }
                    if let Some(command) = command {
                        return Err(command
                            .failed(target, format!("ssh handshake with {peer} failed: {e}"))
                            .await
                            .into());
                    }
                    if attempt < self.handshake_attempts {
                        tokio::time::sleep(Duration::from_millis(150 * attempt as u64)).await;
                        continue;
                    }
                    return Err(Attempt::transient(unreachable(
                        target,
                        format!(
                            "ssh handshake with {peer}{route} failed ({attempt} attempts): {e}"
                        ),
                        "the server closed the connection before the login: sshd may be \
                         refusing new connections (MaxStartups), or this port is not an ssh server",
                    )));
                }
                Err(_) => {
                    let message = format!(
                        "ssh handshake with {peer}{route} timed out after {}",
                        seconds(target.connect_timeout)
                    );
                    if let Some(command) = command {
                        return Err(command.failed(target, message).await.into());
                    }
                    return Err(Attempt::transient(unreachable(
                        target,
                        message,
                        "the port accepts connections but no ssh server answered in time: \
                         the host is overloaded or this is not an ssh port",
                    )));
                }
            }
        };
        let identity = match tokio::time::timeout(
            target.connect_timeout,
            self.authenticate(&mut handle, target),
        )
        .await
        {
            Ok(result) => result?,
            Err(_) => {
                return Err(Attempt::transient(unreachable(
                    target,
                    format!(
                        "authentication at {peer} timed out after {}",
                        seconds(target.connect_timeout)
                    ),
                    "the server stopped answering during the login",
                )))
            }
        };
        drop(permit);
        let host_key = offered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| "unknown".into());
        let checking = match target.host_key_checking {
            HostKeyChecking::Off => " (not checked)",
            _ => "",
        };
        let me = format!("{}@{peer}", target.user);
        let chain = match &via {
            Some(bastion) => format!("{} > {me}", bastion.chain),
            None => me.clone(),
        };
        let route = match &command {
            Some(command) => format!(" through ProxyCommand `{}`", command.command),
            None => route,
        };
        Ok(SshTransport {
            details: format!(
                "{me}{route}, host key {host_key}{checking}, logged in with {identity}"
            ),
            host: target.name.clone(),
            chain,
            handle: Arc::new(handle),
            sessions: Semaphore::new(MAX_SESSIONS),
            kills: Arc::default(),
            via,
            _command: command,
            last_used: Mutex::new(std::time::Instant::now()),
            ping_timeout: target.connect_timeout.min(PING_TIMEOUT),
            mode: target.session,
            shell: tokio::sync::Mutex::default(),
        })
    }

    /// Wait for a handshake slot at `target`'s address (as reached through
    /// `via`, when it is reached through a bastion).
    async fn start(&self, target: &Target, via: Option<&SshTransport>) -> Result<StartPermit> {
        let key = match via {
            Some(bastion) => format!("{} > {}", bastion.chain, endpoint(target)),
            None => endpoint(target),
        };
        let semaphore = {
            let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                starts
                    .entry(key.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.max_starts))),
            )
        };
        let permit = semaphore
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("connection semaphore closed".into()))?;
        Ok(StartPermit {
            permit: Some(permit),
            key,
            starts: Arc::clone(&self.starts),
        })
    }

    /// Try the agent's identities, then each existing key file, as
    /// `target.user`; returns which key was accepted.
    async fn authenticate(
        &self,
        handle: &mut Handle<ClientHandler>,
        target: &Target,
    ) -> Result<String> {
        let user = target.user.as_str();
        let mut notes: Vec<String> = Vec::new();
        let mut tried: Vec<String> = Vec::new();
        let mut offered: Vec<PublicKey> = Vec::new();

        if let Some(socket) = &self.agent {
            match agent_identities(socket).await {
                Ok((mut agent, mut identities)) => {
                    if target.identities_only {
                        let files = self.file_public_keys(&target.identity_files);
                        identities.retain(|k| files.iter().any(|f| f.key_data() == k.key_data()));
                    }
                    tried.push(format!(
                        "{} ssh-agent identit{} ({})",
                        identities.len(),
                        if identities.len() == 1 { "y" } else { "ies" },
                        socket.display()
                    ));
                    for key in identities {
                        let hash = rsa_hash(handle, &key).await;
                        match handle
                            .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
                            .await
                        {
                            Ok(AuthResult::Success) => {
                                return Ok(format!(
                                    "ssh-agent key {}",
                                    known_hosts::fingerprint(&key)
                                ))
                            }
                            Ok(AuthResult::Failure { .. }) => offered.push(key),
                            Err(e) => {
                                if handle.is_closed() {
                                    return Err(closed_during_auth(target, &tried));
                                }
                                notes.push(format!(
                                    "ssh-agent could not sign with {}: {e}",
                                    known_hosts::fingerprint(&key)
                                ));
                            }
                        }
                    }
                }
                Err(note) => notes.push(note),
            }
        }

        for path in &target.identity_files {
            if !path.is_file() {
                continue;
            }
            let key = match self.load_key(path) {
                Ok(key) => key,
                Err(note) => {
                    notes.push(note);
                    continue;
                }
            };
            tried.push(format!("`{}`", path.display()));
            if offered
                .iter()
                .any(|k| k.key_data() == key.public_key().key_data())
            {
                continue;
            }
            let public = key.public_key().clone();
            let hash = rsa_hash(handle, &public).await;
            let key = PrivateKeyWithHashAlg::new(key, hash);
            match handle.authenticate_publickey(user, key).await {
                Ok(AuthResult::Success) => {
                    return Ok(format!(
                        "`{}` ({})",
                        path.display(),
                        known_hosts::fingerprint(&public)
                    ))
                }
                Ok(AuthResult::Failure { .. }) => offered.push(public),
                Err(_) if handle.is_closed() => return Err(closed_during_auth(target, &tried)),
                Err(e) => notes.push(format!("`{}` was not accepted: {e}", path.display())),
            }
        }

        let mut hint = if tried.is_empty() {
            "no key to offer: start ssh-agent and ssh-add a key, or pass --private-key \
             (or set ansible_ssh_private_key_file)"
                .to_owned()
        } else {
            format!(
                "tried {}; check that the public key is in ~{user}/.ssh/authorized_keys \
                 on the host and that the account is not locked",
                tried.join(", ")
            )
        };
        if tried.is_empty() && !target.identity_files.is_empty() {
            let files: Vec<String> = target
                .identity_files
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect();
            let _ = write!(hint, "; looked for {}", files.join(", "));
        }
        for note in notes {
            let _ = write!(hint, "; {note}");
        }
        Err(unreachable(
            target,
            format!("permission denied (publickey) for user `{user}`"),
            hint,
        ))
    }

    /// The public halves of the key files (from `FILE.pub`, else the key
    /// itself), for `IdentitiesOnly`: only these agent keys are offered.
    fn file_public_keys(&self, files: &[PathBuf]) -> Vec<PublicKey> {
        files
            .iter()
            .filter_map(|path| {
                let mut public = path.clone().into_os_string();
                public.push(".pub");
                std::fs::read_to_string(public)
                    .ok()
                    .and_then(|text| PublicKey::from_openssh(text.trim()).ok())
                    .or_else(|| self.load_key(path).ok().map(|k| k.public_key().clone()))
            })
            .collect()
    }

    /// A private key file, decrypted with the passphrase if needed, read
    /// once for every connection; an error is a note for the final
    /// message. The lock is held while a key is read so that connections
    /// starting together decrypt it once.
    fn load_key(&self, path: &std::path::Path) -> KeyFile {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = keys.get(path) {
            return key.clone();
        }
        let key = self.read_key(path).map(Arc::new);
        keys.insert(path.to_owned(), key.clone());
        key
    }

    /// Read and, if needed, decrypt a key file (see [`Self::load_key`]).
    fn read_key(&self, path: &std::path::Path) -> Result<russh::keys::PrivateKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        match russh::keys::decode_secret_key(&text, None) {
            Ok(key) => Ok(key),
            Err(russh::keys::Error::KeyIsEncrypted) => match &self.passphrase {
                Some(passphrase) => russh::keys::decode_secret_key(&text, Some(passphrase))
                    .map_err(|e| {
                        format!(
                            "cannot decrypt `{}` with ${PASSPHRASE_ENV} (wrong passphrase?): {e}",
                            path.display()
                        )
                    }),
                None => Err(format!(
                    "skipped `{}`: it is encrypted; set ${PASSPHRASE_ENV} or add it to ssh-agent",
                    path.display()
                )),
            },
            Err(e) => Err(format!("cannot load `{}`: {e}", path.display())),
        }
    }
}

/// A handshake slot at one address; the last one to go removes the
/// address's semaphore from the connector's map.
struct StartPermit {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    key: String,
    starts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Drop for StartPermit {
    fn drop(&mut self) {
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        // The permit holds a reference to the semaphore; once it is gone, one
        // held by the map alone means nobody else holds or awaits a slot.
        drop(self.permit.take());
        if starts
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            starts.remove(&self.key);
        }
    }
}

impl Default for SshConnector {
    fn default() -> Self {
        SshConnector::new(DEFAULT_MAX_STARTS)
    }
}

impl Connector for SshConnector {
    fn connect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Arc<dyn Transport>>> {
        Box::pin(async move {
            if target.local {
                return Ok(Arc::new(crate::transport::local::LocalShell) as Arc<dyn Transport>);
            }
            let transport = self.connect_ssh(target).await?;
            Ok(Arc::new(transport) as Arc<dyn Transport>)
        })
    }

    fn reconnect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Arc<dyn Transport>>> {
        Box::pin(async move {
            if target.local {
                return self.connect(target).await;
            }
            let transport = self.reconnect_ssh(target).await?;
            Ok(Arc::new(transport) as Arc<dyn Transport>)
        })
    }
}

/// The warning to print when host keys are not checked for `target`.
pub fn host_key_checking_off_warning(target: &Target) -> String {
    format!(
        "{}: host key checking is off: the connection to {} is not protected against \
         man-in-the-middle attacks",
        target.name,
        endpoint(target)
    )
}

/// One authenticated SSH connection.
pub struct SshTransport {
    host: String,
    /// Who logged in where, with which key, and the host key seen.
    details: String,
    /// `user@address:port` of this connection, after those of the jump
    /// hosts it runs through (`a@b:22 > u@10.0.0.5:22`).
    chain: String,
    handle: Arc<Handle<ClientHandler>>,
    sessions: Semaphore,
    /// The kills of abandoned commands still under way (see [`Abandon`]).
    kills: Kills,
    /// The jump host this connection runs through, kept open with it.
    via: Option<Arc<SshTransport>>,
    /// The `ProxyCommand` carrying this connection, killed with it.
    _command: Option<ProxyProcess>,
    /// When a command or channel last ended (see [`Transport::alive`]).
    last_used: Mutex<std::time::Instant>,
    ping_timeout: Duration,
    /// Whether commands go through `shell`.
    mode: SessionMode,
    /// The host's long-lived shell, opened on first use (see `shell.rs`);
    /// locked while it runs a command.
    shell: tokio::sync::Mutex<Option<shell::Shell>>,
}

/// Why one connection attempt failed, and whether trying again soon may
/// succeed (the host or its sshd is not up yet) or not (a refused host key
/// or login, a failed bastion).
struct Attempt {
    error: Error,
    transient: bool,
}

impl Attempt {
    fn transient(error: Error) -> Attempt {
        Attempt {
            error,
            transient: true,
        }
    }
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Attempt {
        Attempt {
            error,
            transient: false,
        }
    }
}

impl SshTransport {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
    }

    fn lost(&self, what: &str) -> Error {
        let hint = match &self.via {
            Some(bastion) => format!(
                "the host went down, sshd was restarted, the network dropped, or the \
                 connection to bastion `{}` ended",
                bastion.chain
            ),
            None => LOST_HINT.into(),
        };
        Error::Unreachable {
            host: self.host.clone(),
            message: format!("connection lost {what}"),
            hint: Some(hint),
        }
    }

    fn channel_error(&self, what: &str, e: russh::Error) -> Error {
        if self.handle.is_closed() {
            return self.lost(what);
        }
        use russh::ChannelOpenFailure as Why;
        let message = match e {
            // A forward whose target port refused the connection: nothing
            // listens there; sshd itself is fine.
            russh::Error::ChannelOpenFailure(Why::ConnectFailed) => {
                format!("nothing answers {what} on the host (connection refused there)")
            }
            russh::Error::ChannelOpenFailure(Why::AdministrativelyProhibited) => format!(
                "the server refused a new channel {what} (sshd MaxSessions reached, \
                 or forwarding disabled)"
            ),
            russh::Error::ChannelOpenFailure(reason) => {
                format!("the server refused a new channel {what} ({reason:?})")
            }
            e => format!("cannot open a channel {what}: {e}"),
        };
        Error::Remote {
            host: self.host.clone(),
            message,
        }
    }

    /// Open a session channel, retrying for a moment when sshd refuses it:
    /// it may not have freed the slots of channels that just closed.
    async fn open_session(&self, what: &str) -> Result<russh::Channel<client::Msg>> {
        abandon::open_session(&self.handle)
            .await
            .map_err(|e| self.channel_error(what, e))
    }

    async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        gate: Option<&Gate<'_>>,
        sink: Option<&Sink<'_>>,
    ) -> Result<Gated> {
        if self.mode == SessionMode::Persistent && shell::fits(command, stdin, gate) {
            // A second command while the shell is busy (tasks on one host
            // run one at a time, so rarely) gets a channel of its own.
            if let Ok(mut slot) = self.shell.try_lock() {
                let mut shell = match slot.take() {
                    Some(mut shell) => match shell.usable() {
                        true => shell,
                        false => shell::Shell::open(self).await?,
                    },
                    None => shell::Shell::open(self).await?,
                };
                // A failure ends the shell (dropped here); a dropped future
                // kills it with its command (see `Abandon`).
                let gated = shell.run(self, command, stdin, gate, sink).await?;
                *slot = Some(shell);
                self.touch();
                return Ok(gated);
            }
        }
        self.run_channel(command, stdin, gate, sink).await
    }

    /// Run `command` on a session channel of its own.
    async fn run_channel(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        gate: Option<&Gate<'_>>,
        sink: Option<&Sink<'_>>,
    ) -> Result<Gated> {
        let what = format!("while running `{command}`");
        let _session = self
            .sessions
            .acquire()
            .await
            .map_err(|_| Error::Internal("session semaphore closed".into()))?;
        let channel = self.open_session(&what).await?;
        let (reported, wrapped) = Reported::wrap(command);
        let mut guard = Abandon::new(channel, Way::Group(reported), &self.kills, &self.handle);
        let mut received = Received::new(gate, sink);
        {
            let Abandon {
                channel: Some((reader, writer)),
                way: Way::Group(reported),
                ..
            } = &mut guard
            else {
                return Err(Error::Internal("channel writer missing".into()));
            };
            writer
                .exec(true, wrapped)
                .await
                .map_err(|_| self.lost(&what))?;
            let writer = &*writer;
            let feed = async {
                if let Some(data) = stdin {
                    writer.data(data).await?;
                }
                writer.eof().await
            };
            tokio::pin!(feed);
            let mut fed = false;
            let mut closed = false;
            loop {
                tokio::select! {
                    // A command that exits without reading its stdin makes
                    // the write fail or stall; like ssh, ignore that and keep
                    // reading. Behind a gate, stdin waits for its line.
                    _ = &mut feed, if !fed && received.passed() => fed = true,
                    msg = reader.wait() => match msg {
                        Some(ChannelMsg::Data { data }) => {
                            let printed = reported.stdout(&data);
                            if !printed.is_empty() {
                                received.stdout(&printed);
                            }
                        }
                        Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                            if !received.stderr(&data) {
                                continue;
                            }
                            // A fresh password prompt.
                            match gate.and_then(|g| g.password) {
                                Some(password) if !received.gated.answered => {
                                    received.gated.answered = true;
                                    let line = [password, b"\n"].concat();
                                    if writer.data(&line[..]).await.is_err() {
                                        fed = true;
                                    }
                                }
                                // No password, or a wrong one: end its
                                // input, so it gives up.
                                _ if !fed => {
                                    fed = true;
                                    let _ = writer.eof().await;
                                }
                                _ => {}
                            }
                        }
                        Some(ChannelMsg::ExitStatus { exit_status }) => {
                            received.status = Some(exit_status)
                        }
                        Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                            received.status =
                                Some(signal_number(&signal_name).map_or(255, |n| 128 + n))
                        }
                        Some(ChannelMsg::Failure) => {
                            return Err(Error::Remote {
                                host: self.host.clone(),
                                message: format!("the server refused to run `{command}`"),
                            })
                        }
                        Some(ChannelMsg::Close) => {
                            closed = true;
                            break;
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            let mut held = Vec::new();
            reported.finish(&mut held);
            if !held.is_empty() {
                received.stdout(&held);
            }
            if !closed {
                // The channel went away without the server closing it: the
                // connection is gone (russh drops channels when it ends).
                return Err(self.lost(&what));
            }
        }
        // russh already answered the server's close; a second close would
        // be a protocol error.
        guard.channel = None;
        self.touch();
        Ok(received.finish())
    }
}

/// What a command sends back, as it arrives: each stream capped (see
/// [`Capped`]), handed on line by line to a sink when there is one, and,
/// behind a gate, held until the gate's line shows.
struct Received<'a> {
    gate: Option<&'a Gate<'a>>,
    sink: Option<&'a Sink<'a>>,
    stdout: Capped,
    stderr: Capped,
    lines: [Lines; 2],
    /// Behind a gate, what arrives before its line.
    waiting: Option<GateWait>,
    gated: Gated,
    status: Option<u32>,
}

impl<'a> Received<'a> {
    fn new(gate: Option<&'a Gate<'a>>, sink: Option<&'a Sink<'a>>) -> Received<'a> {
        Received {
            gate,
            sink,
            stdout: Capped::default(),
            stderr: Capped::default(),
            lines: Default::default(),
            waiting: gate.map(|_| GateWait::default()),
            gated: Gated::default(),
            status: None,
        }
    }

    /// No gate, or its line has shown.
    fn passed(&self) -> bool {
        self.waiting.is_none()
    }

    fn stream(&mut self, pipe: Pipe, data: &[u8]) {
        if let Some(sink) = self.sink {
            self.lines[pipe as usize].push(data, &mut |line| sink(pipe, line));
        }
    }

    fn stdout(&mut self, data: &[u8]) {
        match (&mut self.waiting, self.gate) {
            (Some(wait), Some(gate)) => {
                wait.out.extend_from_slice(data);
                if let Some(rest) = wait.passed(gate.passed) {
                    self.waiting = None;
                    self.gated.passed = true;
                    self.stdout.push(&rest);
                    self.stream(Pipe::Stdout, &rest);
                }
            }
            _ => {
                self.stdout.push(data);
                self.stream(Pipe::Stdout, data);
            }
        }
    }

    /// Take stderr's `data`; true when it holds a new password prompt of
    /// the gate.
    fn stderr(&mut self, data: &[u8]) -> bool {
        match (&mut self.waiting, self.gate) {
            (Some(wait), Some(gate)) => {
                wait.err.extend_from_slice(data);
                let asked = wait.prompts(gate.prompt);
                let new = asked > self.gated.asked;
                self.gated.asked = asked;
                new
            }
            _ => {
                self.stderr.push(data);
                self.stream(Pipe::Stderr, data);
                false
            }
        }
    }

    fn finish(mut self) -> Gated {
        if let Some(sink) = self.sink {
            for (pipe, lines) in [Pipe::Stdout, Pipe::Stderr]
                .into_iter()
                .zip(&mut self.lines)
            {
                lines.finish(&mut |line| sink(pipe, line));
            }
        }
        if let Some(wait) = self.waiting.take() {
            // It never got through the gate: keep everything it said.
            self.stdout.push(&wait.out);
            self.stderr.push(&wait.err);
        }
        self.gated.output = Output {
            stdout: self.stdout.into_text(),
            stderr: self.stderr.into_text(),
            status: self.status.unwrap_or(255),
        };
        self.gated
    }
}

/// What the local terminal sends to an interactive command (see
/// [`SshTransport::exec_pty`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PtyInput {
    /// Keystrokes (or piped input), written to the remote terminal.
    Data(Vec<u8>),
    /// The local window now has this many columns and rows.
    Resize(u32, u32),
    /// The local input ended.
    Eof,
}

impl SshTransport {
    /// Run `command` on a remote pseudo-terminal of type `term` and `size`
    /// (columns, rows), as `ssh -t` does: what `input` sends is written to
    /// it (or resizes it), what it prints goes to `output` as it arrives.
    /// Returns the command's exit status (128 + signal when killed).
    pub(crate) async fn exec_pty(
        &self,
        command: &str,
        term: &str,
        size: (u32, u32),
        input: &mut tokio::sync::mpsc::Receiver<PtyInput>,
        output: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<u32> {
        let what = format!("while running `{command}` on a terminal");
        let _session = self
            .sessions
            .acquire()
            .await
            .map_err(|_| Error::Internal("session semaphore closed".into()))?;
        let channel = self.open_session(&what).await?;
        let mut guard = Abandon::new(channel, Way::Terminal, &self.kills, &self.handle);
        let Some((reader, writer)) = guard.channel.as_mut() else {
            return Err(Error::Internal("channel writer missing".into()));
        };
        writer
            .request_pty(true, term, size.0, size.1, 0, 0, &[])
            .await
            .map_err(|_| self.lost(&what))?;
        writer
            .exec(true, command)
            .await
            .map_err(|_| self.lost(&what))?;
        let mut status = None;
        let mut typing = true;
        let mut replies = 0;
        loop {
            tokio::select! {
                key = input.recv(), if typing => match key {
                    Some(PtyInput::Data(data)) => {
                        // A command that has exited reads nothing more.
                        let _ = writer.data(&data[..]).await;
                    }
                    Some(PtyInput::Resize(cols, rows)) => {
                        let _ = writer.window_change(cols, rows, 0, 0).await;
                    }
                    Some(PtyInput::Eof) | None => {
                        typing = false;
                        let _ = writer.eof().await;
                    }
                },
                msg = reader.wait() => match msg {
                    Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                        output(&data)
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                        status = Some(signal_number(&signal_name).map_or(255, |n| 128 + n))
                    }
                    // The pty request is answered first, then the exec.
                    Some(ChannelMsg::Success) => replies += 1,
                    Some(ChannelMsg::Failure) => {
                        let refused = match replies {
                            0 => "a terminal (pty)",
                            _ => "the command",
                        };
                        return Err(Error::Remote {
                            host: self.host.clone(),
                            message: format!("the server refused {refused} for `{command}`"),
                        });
                    }
                    Some(ChannelMsg::Close) => break,
                    Some(_) => {}
                    None => return Err(self.lost(&what)),
                },
            }
        }
        guard.channel = None;
        Ok(status.unwrap_or(255))
    }
}

/// What a gated command printed before its gate's line.
#[derive(Default)]
struct GateWait {
    out: Vec<u8>,
    err: Vec<u8>,
}

impl GateWait {
    /// Once `line` has arrived on stdout: what followed it.
    fn passed(&self, line: &str) -> Option<Vec<u8>> {
        let line = format!("{line}\n");
        let at = find(&self.out, line.as_bytes())?;
        Some(self.out[at + line.len()..].to_vec())
    }

    /// How many times `prompt` has arrived on stderr.
    fn prompts(&self, prompt: &str) -> u32 {
        let mut count = 0;
        let mut rest = &self.err[..];
        while let Some(at) = find(rest, prompt.as_bytes()) {
            count += 1;
            rest = &rest[at + prompt.len()..];
        }
        count
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Transport for SshTransport {
    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move { Ok(self.run(command, stdin, None, None).await?.output) })
    }

    fn exec_gated<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        gate: &'a Gate<'a>,
    ) -> BoxFuture<'a, Result<Gated>> {
        Box::pin(self.run(command, stdin, Some(gate), None))
    }

    fn exec_streamed<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        gate: Option<&'a Gate<'a>>,
        sink: &'a Sink<'a>,
    ) -> BoxFuture<'a, Result<Gated>> {
        Box::pin(self.run(command, stdin, gate, Some(sink)))
    }

    fn forward<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let channel = self
                .handle
                .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
                .await
                .map_err(|e| self.channel_error(&format!("to {host}:{port}"), e))?;
            self.touch();
            Ok(Box::new(channel.into_stream()) as Box<dyn Stream>)
        })
    }

    fn details(&self) -> Option<String> {
        Some(self.details.clone())
    }

    fn alive(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if self.handle.is_closed() {
                return false;
            }
            let idle = self
                .last_used
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed();
            if idle < IDLE_BEFORE_PING {
                return true;
            }
            // A peer that restarted answers the ping with a reset; one that
            // is gone does not answer at all.
            let answered = tokio::time::timeout(self.ping_timeout, self.handle.send_ping())
                .await
                .is_ok_and(|r| r.is_ok());
            self.touch();
            answered && !self.handle.is_closed()
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(shell) = self.shell.try_lock().ok().and_then(|mut s| s.take()) {
                shell.close().await;
            }
            let kills = std::mem::take(&mut *self.kills.lock().unwrap_or_else(|p| p.into_inner()));
            let _ = tokio::time::timeout(KILL_WAIT, futures::future::join_all(kills)).await;
            let _ = self
                .handle
                .disconnect(Disconnect::ByApplication, "bye", "en")
                .await;
        })
    }
}

/// The key exchanges offered: russh's own order, with P-256 put before
/// curve25519 (after any post-quantum hybrid). OpenSSH computes P-256 with
/// OpenSSL but curve25519 in portable C: about 3 ms more server CPU per
/// connection, measured on OpenSSH 9.2, a tenth of a 10-host run's
/// connecting.
fn kex_order() -> Vec<russh::kex::Name> {
    let mut order = client::Config::default().preferred.kex.into_owned();
    order.retain(|name| *name != russh::kex::ECDH_SHA2_NISTP256);
    let at = order
        .iter()
        .position(|name| *name == russh::kex::CURVE25519)
        .unwrap_or(0);
    order.insert(at, russh::kex::ECDH_SHA2_NISTP256);
    order
}

/// What a connection's client configuration depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    /// The host key algorithms to ask for, ordered for the host (see
    /// [`KnownHosts::offer`]) so that the server proves a key that is
    /// recorded for it, as `ssh` asks; `None` without host key checking.
    offer: Option<Offer>,
    keepalive: Keepalive,
}

impl SshConnector {
    /// The client configuration for a connection to `target`: one made for
    /// an earlier host with the same settings (a russh configuration is a
    /// few kilobytes, kept as long as the connection).
    fn config(&self, known_hosts: &KnownHosts, target: &Target) -> Arc<client::Config> {
        let settings = Settings {
            offer: (target.host_key_checking != HostKeyChecking::Off)
                .then(|| known_hosts.offer(host_key_name(target), target.port)),
            keepalive: target.keepalive,
        };
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, config)) = configs.iter().find(|(made, _)| *made == settings) {
            return Arc::clone(config);
        }
        let config = Arc::new(client_config(&settings));
        configs.push((settings, Arc::clone(&config)));
        config
    }
}

fn client_config(settings: &Settings) -> client::Config {
    let mut config = client::Config {
        keepalive_interval: Some(settings.keepalive.interval.unwrap_or(KEEPALIVE)),
        keepalive_max: settings.keepalive.max.unwrap_or(KEEPALIVE_MAX),
        nodelay: true,
        ..client::Config::default()
    };
    config.preferred.kex = kex_order().into();
    if let Some(offer) = &settings.offer {
        config.preferred.key = offer.keys.clone().into();
        config.preferred.host_key_certificates = offer.certificates.clone().into();
    }
    config
}

/// Checks the server's host key and keeps the reason of a refusal, which
/// russh itself only reports as a disconnect.
struct ClientHandler {
    target: Target,
    /// The known_hosts files as read before the handshake, dropped once the
    /// server's key is checked: the handler lives as long as the
    /// connection, and the connector reads the files again when one changed.
    known_hosts: Option<Arc<KnownHosts>>,
    rejection: Arc<Mutex<Option<Error>>>,
    /// The server's key as offered (`TYPE SHA256:...`), for `-vvv`.
    offered: Arc<Mutex<Option<String>>>,
}

impl ClientHandler {
    fn verify(&self, known_hosts: &KnownHosts, server_key: &PublicKeyOrCertificate) -> Result<()> {
        let target = &self.target;
        if target.host_key_checking == HostKeyChecking::Off {
            return Ok(());
        }
        let (offered, key) = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                (ServerKey::Key(key), Cow::Borrowed(key))
            }
            PublicKeyOrCertificate::Certificate(cert) => (
                ServerKey::Certificate(cert),
                Cow::Owned(PublicKey::new(cert.public_key().clone(), "")),
            ),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = host_key_name(target);
        let check = known_hosts.check(name, target.port, offered, now);
        let path = &target.known_hosts;
        let peer = endpoint(target);
        let kind = key.algorithm();
        let fingerprint = known_hosts::fingerprint(&key);
        let certificate = if matches!(offered, ServerKey::Certificate(_)) {
            " (host certificate)"
        } else {
            ""
        };
        let notes: String = check.notes.iter().map(|note| format!("; {note}")).collect();
        match check.status {
            Status::Known => Ok(()),
            Status::New if target.host_key_checking == HostKeyChecking::AcceptNew => {
                known_hosts::append(path, name, target.port, &key)
            }
            Status::New => Err(unreachable(
                target,
                format!(
                    "unknown host key for {peer}: {} {fingerprint}{certificate}",
                    kind.as_str()
                ),
                format!(
                    "if this is the right host, add this line to `{}`:\n  {}\n\
                     or run `ssh-keyscan -p {} {} >> {}` (then check the fingerprint), \
                     or use --host-key-checking accept-new{notes}",
                    path.display(),
                    known_hosts::entry_line(name, target.port, &key),
                    target.port,
                    target.address,
                    path.display()
                ),
            )),
            Status::Changed {
                file,
                line,
                recorded,
            } => Err(unreachable(
                target,
                format!(
                    "host key for {peer} changed: it now offers {} {fingerprint}{certificate}, \
                     `{}:{line}` holds a different {} key",
                    kind.as_str(),
                    file.display(),
                    recorded.as_str()
                ),
                format!(
                    "someone may be intercepting the connection (man-in-the-middle), or the \
                     host was reinstalled; if you trust the new key, remove the old entry with \
                     `ssh-keygen -R '{}' -f {}` (or delete line {line}) and connect again{notes}",
                    known_hosts::host_pattern(&name.to_ascii_lowercase(), target.port),
                    file.display()
                ),
            )),
            Status::Revoked { file, line } => Err(unreachable(
                target,
                format!(
                    "host key {} {fingerprint}{certificate} of {peer} is revoked at `{}:{line}`",
                    kind.as_str(),
                    file.display()
                ),
                "a revoked key must not be trusted: the host may be compromised",
            )),
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let described = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                format!("{} {}", key.algorithm(), known_hosts::fingerprint(key))
            }
            PublicKeyOrCertificate::Certificate(cert) => {
                let key = PublicKey::new(cert.public_key().clone(), "");
                format!(
                    "{} certificate {}",
                    key.algorithm(),
                    known_hosts::fingerprint(&key)
                )
            }
        };
        *self.offered.lock().unwrap_or_else(|p| p.into_inner()) = Some(described);
        // russh asks once, at the first key exchange; a second question
        // finds nothing to check against and is refused.
        let Some(known_hosts) = self.known_hosts.take() else {
            return Ok(false);
        };
        match self.verify(&known_hosts, server_key) {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.rejection.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Ok(false)
            }
        }
    }
}

const LOST_HINT: &str = "the host went down, sshd was restarted, or the network dropped";

/// The pool key of a chain of jump hosts: their `user@address:port`s.
fn chain_key(chain: &[Target]) -> String {
    let names: Vec<&str> = chain.iter().map(|hop| hop.name.as_str()).collect();
    names.join(" > ")
}

/// Why a jump host could not be reached, kept to tell every host behind it.
#[derive(Debug, Clone)]
struct Failure {
    /// The jump host, `user@address:port`.
    bastion: String,
    message: String,
    hint: Option<String>,
}

impl Failure {
    fn new(hop: &Target, error: Error) -> Failure {
        let (message, hint) = match error {
            Error::Unreachable { message, hint, .. } => (message, hint),
            other => (other.to_string(), None),
        };
        Failure {
            bastion: hop.name.clone(),
            message,
            hint,
        }
    }

    fn internal(message: &str) -> Failure {
        Failure {
            bastion: String::new(),
            message: message.into(),
            hint: None,
        }
    }

    /// The error of `host`, which is behind this jump host.
    fn error(&self, host: &str) -> Error {
        Error::Unreachable {
            host: host.to_owned(),
            message: format!("via bastion `{}`: {}", self.bastion, self.message),
            hint: self
                .hint
                .as_ref()
                .map(|hint| format!("about the bastion: {hint}")),
        }
    }
}

/// The byte stream to `target`'s SSH port: a TCP connection, a channel
/// opened by the bastion `via`, or a `ProxyCommand`'s stdin and stdout
/// (with the process, which must live as long as the connection).
async fn open_stream(
    target: &Target,
    via: Option<&SshTransport>,
) -> Result<(Box<dyn Stream>, Option<ProxyProcess>)> {
    if let Some(bastion) = via {
        let stream = bastion_channel(target, bastion).await?;
        return Ok((stream, None));
    }
    match &target.proxy {
        Proxy::Command(command) => {
            let (stream, process) = ProxyProcess::spawn(target, command)?;
            Ok((stream, Some(process)))
        }
        _ => Ok((
            Box::new(quick_ack::QuickAck::new(tcp_connect(target).await?)),
            None,
        )),
    }
}

/// A `direct-tcpip` channel from `bastion` to `target`'s SSH port, within
/// `target.connect_timeout`.
async fn bastion_channel(target: &Target, bastion: &SshTransport) -> Result<Box<dyn Stream>> {
    let peer = endpoint(target);
    let name = &bastion.chain;
    let open = bastion.handle.channel_open_direct_tcpip(
        target.address.as_str(),
        u32::from(target.port),
        "127.0.0.1",
        0,
    );
    let refused = |why: &str, hint: &str| {
        unreachable(
            target,
            format!("the bastion `{name}` cannot reach {peer}: {why}"),
            hint,
        )
    };
    match tokio::time::timeout(target.connect_timeout, open).await {
        Ok(Ok(channel)) => Ok(Box::new(channel.into_stream())),
        Ok(Err(russh::Error::ChannelOpenFailure(reason))) => Err(match reason {
            russh::ChannelOpenFailure::ConnectFailed => refused(
                "its connection failed",
                "the host is down, its sshd is not listening on that address and port, or a \
                 firewall stops the bastion; the address is the one the bastion sees \
                 (`ansible_host`)",
            ),
            russh::ChannelOpenFailure::AdministrativelyProhibited => refused(
                "forwarding is prohibited there",
                "the bastion's sshd refuses TCP forwarding for this user \
                 (`AllowTcpForwarding`, `PermitOpen`, `DisableForwarding`)",
            ),
            other => refused(&format!("{other:?}"), "check the bastion's sshd log"),
        }),
        Ok(Err(_)) if bastion.handle.is_closed() => Err(unreachable(
            target,
            format!("the connection to bastion `{name}` was lost"),
            LOST_HINT,
        )),
        Ok(Err(e)) => Err(refused(&e.to_string(), "check the bastion's sshd log")),
        Err(_) => Err(refused(
            &format!("no answer after {}", seconds(target.connect_timeout)),
            "the bastion's connection to the host hangs: a firewall drops packets, or the \
             host is down",
        )),
    }
}

/// A running `ProxyCommand`: killed when dropped; what it printed on
/// stderr is kept (the first [`PROXY_STDERR_CAP`] bytes) for the message
/// when the connection fails.
struct ProxyProcess {
    command: String,
    child: tokio::process::Child,
    stderr: Arc<Mutex<Vec<u8>>>,
}

const PROXY_STDERR_CAP: usize = 4096;

impl ProxyProcess {
    fn spawn(target: &Target, command: &str) -> Result<(Box<dyn Stream>, ProxyProcess)> {
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                unreachable(
                    target,
                    format!("cannot run ProxyCommand `{command}`: {e}"),
                    "arpanet runs it with /bin/sh -c",
                )
            })?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Internal("ProxyCommand pipes missing".into()));
        };
        let said = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&said);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
                let room = PROXY_STDERR_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        });
        let process = ProxyProcess {
            command: command.to_owned(),
            child,
            stderr: said,
        };
        Ok((Box::new(tokio::io::join(stdout, stdin)), process))
    }

    /// The error for a connection over this command that failed with
    /// `message`, with what the command said on its way out.
    async fn failed(mut self, target: &Target, message: String) -> Error {
        let exited = tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await;
        let status = match exited {
            Ok(Ok(status)) => format!(" (it exited with {status})"),
            _ => String::new(),
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let said = {
            let said = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
            String::from_utf8_lossy(&said).trim().to_owned()
        };
        let said = match said.is_empty() {
            true => String::new(),
            false => format!("; it said: {said}"),
        };
        unreachable(
            target,
            format!(
                "{message} over ProxyCommand `{}`{status}{said}",
                self.command
            ),
            "run the command by hand to see whether it reaches the host's ssh port",
        )
    }
}

/// Resolve and connect, within `target.connect_timeout`.
async fn tcp_connect(target: &Target) -> Result<TcpStream> {
    let timeout = target.connect_timeout;
    let attempt = async {
        let addrs: Vec<SocketAddr> =
            match tokio::net::lookup_host((target.address.as_str(), target.port)).await {
                Ok(addrs) => addrs.collect(),
                Err(e) => {
                    return Err(unreachable(
                        target,
                        format!("cannot resolve `{}`: {e}", target.address),
                        "check the host name, or set ansible_host to its address",
                    ))
                }
            };
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = Some((*addr, e)),
            }
        }
        Err(match last {
            Some((addr, e)) => connect_error(target, addr, &e),
            None => unreachable(
                target,
                format!("`{}` resolves to no address", target.address),
                "check the host name, or set ansible_host to its address",
            ),
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(unreachable(
            target,
            format!("connection to {} timed out", endpoint(target)),
            format!(
                "timed out after {}: host down or a firewall drops packets",
                seconds(timeout)
            ),
        )),
    }
}

fn connect_error(target: &Target, addr: SocketAddr, e: &std::io::Error) -> Error {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => unreachable(
            target,
            format!("connection refused at {addr}"),
            "is sshd running on the host? is the port right?",
        ),
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => unreachable(
            target,
            format!("no route to {addr}: {e}"),
            "the host is down or its network is unreachable from here",
        ),
        _ => unreachable(
            target,
            format!("cannot connect to {addr}: {e}"),
            "is the host up and the address right?",
        ),
    }
}

/// Connect to the agent and list the plain public keys it holds.
async fn agent_identities(
    socket: &std::path::Path,
) -> Result<(AgentClient<tokio::net::UnixStream>, Vec<PublicKey>), String> {
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| format!("cannot reach ssh-agent at `{}`: {e}", socket.display()))?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| format!("ssh-agent at `{}` did not list keys: {e}", socket.display()))?;
    let keys = identities
        .into_iter()
        .filter_map(|id| match id {
            russh::keys::agent::AgentIdentity::PublicKey { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    Ok((agent, keys))
}

/// The hash to sign with: for RSA the server's best (`rsa-sha2-512`, ...),
/// nothing for other key types.
async fn rsa_hash(handle: &Handle<ClientHandler>, key: &PublicKey) -> Option<russh::keys::HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

fn closed_during_auth(target: &Target, tried: &[String]) -> Error {
    unreachable(
        target,
        format!(
            "the server closed the connection during authentication as `{}`",
            target.user
        ),
        format!(
            "too many keys offered (sshd MaxAuthTries)? tried {}",
            if tried.is_empty() {
                "nothing".to_owned()
            } else {
                tried.join(", ")
            }
        ),
    )
}

/// POSIX signal numbers for the names SSH sends.
fn signal_number(sig: &Sig) -> Option<u32> {
    Some(match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => return None,
    })
}

/// The name the host's keys are recorded under: ssh's `HostKeyAlias`, else
/// the address.
fn host_key_name(target: &Target) -> &str {
    target.host_key_alias.as_deref().unwrap_or(&target.address)
}

/// `address:port`, with brackets around IPv6 addresses.
pub(crate) fn endpoint(target: &Target) -> String {
    if target.address.contains(':') {
        format!("[{}]:{}", target.address, target.port)
    } else {
        format!("{}:{}", target.address, target.port)
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn unreachable(target: &Target, message: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::Unreachable {
        host: target.name.clone(),
        message: message.into(),
        hint: Some(hint.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::kex::{CURVE25519, ECDH_SHA2_NISTP256, MLKEM768X25519_SHA256};

    #[test]
    fn p256_is_offered_after_the_hybrid_and_before_curve25519_once() {
        let order = kex_order();
        let at = |name| order.iter().position(|n| *n == name).unwrap();
        assert!(at(MLKEM768X25519_SHA256) < at(ECDH_SHA2_NISTP256));
        assert_eq!(at(ECDH_SHA2_NISTP256) + 1, at(CURVE25519));
        assert_eq!(
            order.iter().filter(|n| **n == ECDH_SHA2_NISTP256).count(),
            1
        );
    }

    /// An encrypted key file is read and decrypted by the first connection
    /// that needs it; the others get the same key, even once the file has
    /// changed (its KDF is deliberately slow: 0.15 s of CPU per decryption).
    #[test]
    fn a_key_file_is_read_and_decrypted_once() {
        use russh::keys::ssh_key::{private::Ed25519Keypair, Cipher, Kdf};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        let kdf = Kdf::Bcrypt {
            salt: vec![5; 16],
            rounds: 16,
        };
        let key = russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]))
            .encrypt_with(Cipher::Aes256Ctr, kdf, 11, "hunter2")
            .unwrap();
        let text = key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap();
        std::fs::write(&path, text.as_bytes()).unwrap();

        let locked = SshConnector::new(1).with_passphrase(None);
        let note = locked.load_key(&path).unwrap_err();
        assert!(note.contains("it is encrypted"), "{note}");

        let connector = SshConnector::new(1).with_passphrase(Some("hunter2".into()));
        let first = connector.load_key(&path).unwrap();
        assert_eq!(first.public_key(), key.public_key());
        std::fs::write(&path, "not a key any more").unwrap();
        let again = connector.load_key(&path).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // A connector of its own reads the file as it is now.
        let fresh = SshConnector::new(1).with_passphrase(Some("hunter2".into()));
        assert!(fresh.load_key(&path).is_err());
    }
}
