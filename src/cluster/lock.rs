//! The cluster's run lock: one run that changes the cluster at a time.
//!
//! Two `run stack` at once raced (one failed on every node, the other's
//! settings won), so every run that changes the cluster holds this lock from
//! its first task that reaches a host to its end (see `executor::Guard`):
//!
//! - **In Consul**, once Consul runs: a session with a TTL
//!   (`arpanet_lock_ttl`, 15 s) renewed every third of it while the run
//!   lives, holding the key `<consul_kv_path>/lock` whose value says who
//!   holds it ([`Holder`]). The session has `Behavior=delete` and no lock
//!   delay, so a run killed with `kill -9` loses the lock by itself when its
//!   TTL runs out (Consul invalidates a session between one and two TTLs
//!   after its last renewal), and the key goes with it.
//! - **On the boot server**, before Consul exists (the first `bootstrap`),
//!   or when no agent with a leader answers: a directory
//!   (`arpanet_lock_dir`, `/var/lock/arpanet`) made with `mkdir`, which is
//!   atomic, holding the holder and an expiry time (the node's clock) that
//!   the run pushes forward every third of the TTL. A lock whose expiry
//!   passed is stale and may be taken over. A run that takes the Consul lock
//!   also honours a live lock file, so a first bootstrap still running when
//!   Consul comes up keeps the cluster to itself.
//!
//! A second run is refused before it reaches any host, naming the holder
//! and when it started. A `--check` run takes nothing (it changes nothing)
//! but warns when another run holds the lock. An inventory without a
//! `servers` group has no cluster, hence no lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{consul_api, consul_port, text};
use crate::error::{Error, Result};
use crate::executor::Guard;
use crate::probe;
use crate::report::{Event, Reporter};
use crate::session::{HostInfo, Session};
use crate::transport::{quote, Connector, Transport};

/// Seconds a lock outlives its run's last renewal, unless `arpanet_lock_ttl`
/// says otherwise (Consul takes no less than 10).
pub(crate) const DEFAULT_TTL: u64 = 15;
const DEFAULT_DIR: &str = "/var/lock/arpanet";

/// Who holds the lock: stored as its value, shown to a refused run and by
/// `arpanet lock status`. No secrets: `-e` values are masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    /// `user@machine` that started the run.
    pub owner: String,
    /// The machine the run runs on.
    pub host: String,
    pub pid: u32,
    /// The command line, `-e` values masked.
    pub command: String,
    /// When the run took the lock, RFC 3339 in UTC.
    pub started: String,
    /// This run's own id: only it refreshes or releases its lock file.
    #[serde(default)]
    pub id: String,
    /// The running kernel and pid namespace of the run (`BOOT_ID pid:[N]`):
    /// a later run that shares both can tell whether `pid` still lives.
    #[serde(default)]
    pub process_space: String,
}

impl Holder {
    /// This process.
    pub(crate) fn me() -> Holder {
        let uid = rustix::process::getuid().as_raw();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .or_else(|| user_name(uid))
            .unwrap_or_else(|| format!("uid {uid}"));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Holder {
            owner: format!("{user}@{host}"),
            host,
            pid: std::process::id(),
            command: masked_command_line(std::env::args()),
            started: now_rfc3339(),
            id: format!("{:016x}", rand::random::<u64>()),
            process_space: process_space(),
        }
    }

    /// Whether this holder's run is known to be gone: it ran in this
    /// process space and its pid no longer exists (a reused pid counts as
    /// alive, so the lock then waits for its TTL).
    fn is_gone_from(&self, me: &Holder) -> bool {
        !self.process_space.is_empty()
            && self.process_space == me.process_space
            && self.pid != me.pid
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// `alice@laptop (pid 4242, `arpanet run stack`) since 2026-...Z`
    pub(crate) fn describe(&self) -> String {
        format!(
            "`{}` (pid {}, `{}`) since {}",
            self.owner, self.pid, self.command, self.started
        )
    }
}

/// This kernel's boot id and this process's pid namespace, or nothing when
/// either is unknown. Machines (containers too) share both only when their
/// processes see the same pids.
fn process_space() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
    let ns = std::fs::read_link("/proc/self/ns/pid");
    match (boot, ns) {
        (Ok(boot), Ok(ns)) if !boot.trim().is_empty() => {
            format!("{} {}", boot.trim(), ns.display())
        }
        _ => String::new(),
    }
}

/// The name of user `uid` in `/etc/passwd`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// The command line with the value of every `-e KEY=VALUE` masked
/// (`KEY=***`); `@file` arguments are kept.
fn masked_command_line(args: impl IntoIterator<Item = String>) -> String {
    let mask = |vars: &str| -> String {
        if vars.starts_with('@') {
            return vars.to_owned();
        }
        match vars.split_once('=') {
            Some((key, _)) if !key.contains(char::is_whitespace) => format!("{key}=***"),
            _ => "***".to_owned(),
        }
    };
    let mut out: Vec<String> = Vec::new();
    let mut value_next = false;
    for (i, arg) in args.into_iter().enumerate() {
        let word = if i == 0 {
            std::path::Path::new(&arg)
                .file_name()
                .map_or(arg.clone(), |n| n.to_string_lossy().into_owned())
        } else if value_next {
            value_next = false;
            mask(&arg)
        } else if arg == "-e" || arg == "--extra-vars" {
            value_next = true;
            arg
        } else if let Some(vars) = arg.strip_prefix("--extra-vars=") {
            format!("--extra-vars={}", mask(vars))
        } else if let Some(vars) = arg.strip_prefix("-e").filter(|_| !arg.starts_with("--")) {
            format!("-e{}", mask(vars))
        } else {
            arg
        };
        out.push(if word.contains(char::is_whitespace) {
            quote(&word)
        } else {
            word
        });
    }
    out.join(" ")
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// What a run does about the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Take it, or be refused.
    Take,
    /// Take nothing; warn when someone holds it (`--check`).
    Peek,
}

impl Mode {
    /// What a run that changes the cluster does: take the lock, or only
    /// look at it under `--check`.
    pub(crate) fn changing(check: bool) -> Mode {
        match check {
            true => Mode::Peek,
            false => Mode::Take,
        }
    }
}

/// Where the lock lives for one cluster, from the inventory.
#[derive(Clone)]
struct Place {
    /// The Consul servers, the boot server first.
    servers: Vec<HostInfo>,
    boot: String,
    key_prefix: String,
    ttl: u64,
    dir: String,
}

impl Place {
    /// `None` when the inventory has no `servers` group (no cluster).
    fn of(session: &Session) -> Result<Option<Place>> {
        let names = session.inventory.group_hosts("servers");
        if names.is_empty() {
            return Ok(None);
        }
        let mut servers: Vec<HostInfo> = session
            .every_host()?
            .into_iter()
            .filter(|h| names.contains(&h.name))
            .collect();
        let Some(first) = servers.first() else {
            return Ok(None);
        };
        let vars = &first.vars;
        let boot = Some(text(vars, "consul_boot", ""))
            .filter(|b| names.contains(b))
            .unwrap_or_else(|| first.name.clone());
        let ttl_text = text(vars, "arpanet_lock_ttl", &DEFAULT_TTL.to_string());
        let ttl = ttl_text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|t| *t >= 10)
            .ok_or_else(|| {
                Error::usage(format!(
                    "`arpanet_lock_ttl` must be a whole number of seconds, at least 10 (Consul's \
                 minimum session TTL), got `{ttl_text}`"
                ))
            })?;
        let place = Place {
            boot: boot.clone(),
            key_prefix: text(vars, "consul_kv_path", "/arpanet"),
            ttl,
            dir: text(vars, "arpanet_lock_dir", DEFAULT_DIR),
            servers: Vec::new(),
        };
        consul_port(vars)?;
        servers.sort_by_key(|h| h.name != boot);
        Ok(Some(Place { servers, ..place }))
    }

    fn key_path(&self, extra: &str) -> String {
        consul_api::kv_path(&self.key_prefix, "lock", false, extra)
    }

    fn key_name(&self) -> String {
        format!("{}/lock", self.key_prefix.trim_matches('/'))
    }
}

/// A connection to one server.
#[derive(Clone)]
struct Node {
    name: String,
    conn: Arc<dyn Transport>,
    port: u16,
    /// The checkout's Consul ACL management token (see `acl`).
    token: Option<String>,
    /// The checkout's `consul_tls_dir`, read again before each request:
    /// `rotate --tokens` replaces the token while the lock is held.
    tls_dir: Option<String>,
}

impl Node {
    async fn consul(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<consul_api::Response> {
        consul_api::request(
            &self.name,
            self.conn.as_ref(),
            self.port,
            method,
            path,
            body,
            self.current_token().as_deref(),
        )
        .await
    }

    /// The management token as the checkout holds it now, else the one
    /// found when the lock was taken.
    fn current_token(&self) -> Option<String> {
        self.tls_dir
            .as_deref()
            .and_then(|dir| super::acl::token_in(dir).ok().flatten())
            .or_else(|| self.token.clone())
    }

    /// Whether this node's agent answers and the cluster has a leader.
    async fn has_leader(&self) -> bool {
        match self.consul("GET", "/v1/status/leader", None).await {
            Ok(r) if r.status == 200 => {
                serde_json::from_slice::<String>(&r.body).is_ok_and(|l| !l.is_empty())
            }
            _ => false,
        }
    }

    async fn script(&self, script: &str) -> Result<String> {
        let out = probe::exec(self.conn.as_ref(), &self.name, script, None).await?;
        if !out.success() {
            return Err(Error::Remote {
                host: self.name.clone(),
                message: format!(
                    "the lock file script failed ({}): {}",
                    out.status,
                    out.stderr.trim()
                ),
            });
        }
        Ok(out.stdout)
    }
}

/// The lock as found: in Consul through `node`, or the boot server's file.
#[derive(Clone)]
enum Found {
    Consul(Node),
    File(Node),
}

/// Connects to the servers, the boot server first, and finds the lock's
/// home: the first agent that answers with a leader, else the boot server's
/// lock file (with the boot server's connection, if it answered, kept for
/// it).
async fn find(place: &Place, connector: &dyn Connector) -> Result<(Found, Option<Node>)> {
    let mut boot: Option<Node> = None;
    let mut boot_error = None;
    for host in &place.servers {
        let conn = match connector.connect(&host.target).await {
            Ok(conn) => conn,
            Err(err) => {
                if host.name == place.boot {
                    boot_error = Some(err);
                }
                continue;
            }
        };
        // A failed read leaves the request without a token (Consul says 403).
        let _ = super::acl::learn(&host.vars, conn.as_ref(), &host.name).await;
        let node = Node {
            name: host.name.clone(),
            conn,
            port: consul_port(&host.vars)?,
            token: super::acl::token(&host.vars)?,
            tls_dir: host
                .vars
                .get("consul_tls_dir")
                .and_then(serde_json::Value::as_str)
                .filter(|d| !d.contains("{{"))
                .map(str::to_owned),
        };
        if node.has_leader().await {
            return Ok((Found::Consul(node), boot));
        }
        if host.name == place.boot {
            boot = Some(node);
        } else {
            node.conn.close().await;
        }
    }
    // No leader, and the boot server down: a host fault (exit 4, as the
    // run would report it), named, before anything changed.
    let hint = "bring it up; `--no-lock` runs a user playbook without the lock";
    match (boot, boot_error) {
        (Some(node), _) => Ok((Found::File(node), None)),
        (None, Some(Error::Unreachable { host, message, .. })) => Err(Error::Unreachable {
            host,
            message: format!(
                "cannot take the cluster lock: no consul agent with a leader answers on the \
                 servers, and the boot server (which keeps the lock before Consul runs) \
                 cannot be reached: {message}"
            ),
            hint: Some(hint.into()),
        }),
        (None, other) => Err(Error::Locked {
            message: format!(
                "cannot take the cluster lock: no consul agent with a leader answers on the \
                 servers, and the boot server `{}` (which keeps the lock before Consul runs) \
                 cannot be reached{}",
                place.boot,
                other.map(|e| format!(": {e}")).unwrap_or_default()
            ),
            hint: Some(hint.into()),
        }),
    }
}

/// `sh` that takes the lock file `dir` for `holder` (prints `taken`), or
/// prints `held` and the holder's JSON. A lock whose expiry (the node's
/// clock) has passed, or a half-made one older than a minute, is stale: it
/// is taken over under a second `mkdir` lock, so two runs never both break
/// it.
fn take_script(dir: &str, ttl: u64, holder: &Holder) -> String {
    let json = serde_json::to_string(holder).unwrap_or_default();
    format!(
        r#"LC_ALL=C; export LC_ALL
d={d}; now=$(date +%s)
mkdir -p "$(dirname "$d")" 2>/dev/null
take() {{
  mkdir "$d" 2>/dev/null || return 1
  printf '%s\n' {id} > "$d/id"; printf '%s\n' {json} > "$d/holder"
  echo $((now + {ttl})) > "$d/expires"
}}
stale() {{
  exp=$(cat "$d/expires" 2>/dev/null)
  if [ -n "$exp" ]; then [ "$exp" -lt "$now" ]; else [ -n "$(find "$d" -maxdepth 0 -mmin +1 2>/dev/null)" ]; fi
}}
if take; then echo taken; exit 0; fi
if [ -d "$d" ] && stale; then
  find "$d.break" -maxdepth 0 -mmin +1 -exec rmdir {{}} \; 2>/dev/null
  if mkdir "$d.break" 2>/dev/null; then
    if stale; then rm -rf "$d"; fi
    take; r=$?; rmdir "$d.break"
    if [ $r -eq 0 ]; then echo taken; exit 0; fi
  fi
fi
echo held; cat "$d/holder" 2>/dev/null"#,
        d = quote(dir),
        id = quote(&holder.id),
        json = quote(&json),
    )
}

/// `sh` that pushes the expiry of our lock file forward; prints `ok`, or
/// `lost` when the file is no longer ours.
fn refresh_script(dir: &str, ttl: u64, id: &str) -> String {
    format!(
        r#"d={d}
if [ "$(cat "$d/id" 2>/dev/null)" = {id} ]; then
  echo $(($(date +%s) + {ttl})) > "$d/expires.new" && mv -f "$d/expires.new" "$d/expires" && echo ok
else echo lost; fi"#,
        d = quote(dir),
        id = quote(id),
    )
}

/// `sh` that removes the lock file: ours only, or any with `id` `None`.
fn release_script(dir: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!(
            r#"d={d}; if [ "$(cat "$d/id" 2>/dev/null)" = {id} ]; then rm -rf "$d"; fi; true"#,
            d = quote(dir),
            id = quote(id),
        ),
        None => format!("rm -rf {}; true", quote(dir)),
    }
}

/// `sh` that prints the live lock file's holder (nothing when there is
/// none, or it is stale).
fn read_script(dir: &str) -> String {
    format!(
        r#"d={d}; exp=$(cat "$d/expires" 2>/dev/null)
if [ -n "$exp" ] && [ "$exp" -ge "$(date +%s)" ]; then cat "$d/holder" 2>/dev/null; fi; true"#,
        d = quote(dir),
    )
}

fn holder_of(text: &str) -> Option<Holder> {
    serde_json::from_str(text.trim()).ok()
}

/// Who holds the lock file, when it is live.
async fn file_holder(node: &Node, place: &Place) -> Result<Option<Holder>> {
    Ok(holder_of(&node.script(&read_script(&place.dir)).await?))
}

/// Who holds the Consul lock, with its session.
async fn consul_holder(node: &Node, place: &Place) -> Result<Option<(Holder, String)>> {
    let r = node.consul("GET", &place.key_path(""), None).await?;
    if r.status == 404 {
        return Ok(None);
    }
    if r.status != 200 {
        return Err(api_error(node, &r));
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "Session", default)]
        session: Option<String>,
        #[serde(rename = "Value", default)]
        value: Option<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(&r.body).unwrap_or_default();
    let Some(entry) = entries.into_iter().next() else {
        return Ok(None);
    };
    let Some(session) = entry.session else {
        // A key left without a session holds nothing.
        return Ok(None);
    };
    use base64::Engine as _;
    let value = entry
        .value
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .unwrap_or_default();
    let holder = holder_of(&String::from_utf8_lossy(&value)).unwrap_or_else(|| Holder {
        owner: "unknown".into(),
        host: "unknown".into(),
        pid: 0,
        command: "unknown".into(),
        started: "unknown".into(),
        id: String::new(),
        process_space: String::new(),
    });
    Ok(Some((holder, session)))
}

fn api_error(node: &Node, r: &consul_api::Response) -> Error {
    let token = node.tls_dir.as_deref().and_then(super::acl::token_origin);
    Error::Remote {
        host: node.name.clone(),
        message: consul_api::answer_error(r, token.as_deref()),
    }
}

fn took_over_message(holder: &Holder) -> String {
    format!(
        "took over the cluster lock of {}: that run is no longer running on this machine",
        holder.describe()
    )
}

fn refused(holder: &Holder, place: &Place, found: &Found) -> Error {
    let where_ = match found {
        Found::Consul(_) => format!("consul key `{}`", place.key_name()),
        Found::File(node) => format!("lock file `{}` on `{}`", place.dir, node.name),
    };
    Error::Locked {
        message: format!(
            "the cluster is locked by {} ({where_}); nothing was changed",
            holder.describe()
        ),
        hint: Some(format!(
            "wait for that run to end: a run that was killed frees the lock within {} s \
             (twice its TTL of {} s); `arpanet lock status` shows the holder, \
             `arpanet lock release` frees it by force",
            2 * place.ttl,
            place.ttl
        )),
    }
}

/// A lock this run holds, and the task that keeps it alive.
struct Held {
    found: Found,
    session: Option<String>,
    renew: tokio::task::JoinHandle<()>,
}

/// The run's side of the lock (an `executor::Guard`).
pub(crate) struct RunLock {
    place: Place,
    mode: Mode,
    me: Holder,
    /// `-v`: say where the lock was taken.
    verbose: bool,
    /// The run's own connector: jump hosts are shared with its tasks.
    connector: Arc<dyn Connector>,
    held: Mutex<Option<Held>>,
}

/// The guard of a run in `mode`, or `None` when the inventory has no
/// cluster (no `servers` group); `verbose` says where it was taken.
pub(crate) fn for_run(
    session: &Session,
    connector: Arc<dyn Connector>,
    mode: Mode,
    verbose: bool,
) -> Result<Option<Arc<dyn Guard>>> {
    let Some(place) = Place::of(session)? else {
        return Ok(None);
    };
    Ok(Some(Arc::new(RunLock {
        place,
        mode,
        me: Holder::me(),
        verbose,
        connector,
        held: Mutex::new(None),
    })))
}

impl Guard for RunLock {
    fn take<'a>(&'a self, reporter: &'a Reporter) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (found, boot) = match find(&self.place, self.connector.as_ref()).await {
                Ok(found) => found,
                // A check run only looks, where it can.
                Err(_) if self.mode == Mode::Peek => return Ok(()),
                Err(err) => return Err(err),
            };
            let result = match self.mode {
                Mode::Peek => {
                    self.peek(&found, boot.as_ref(), reporter).await;
                    close(&found).await;
                    Ok(())
                }
                Mode::Take => self.acquire(found, boot.as_ref(), reporter).await,
            };
            if let Some(boot) = boot {
                boot.conn.close().await;
            }
            result
        })
    }

    fn release(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(held) = held else {
                return;
            };
            held.renew.abort();
            match &held.found {
                Found::Consul(node) => {
                    if let Some(session) = &held.session {
                        let path = format!("/v1/session/destroy/{session}");
                        let destroyed =
                            |r: Result<consul_api::Response>| r.is_ok_and(|r| r.status == 200);
                        // The agent the lock was taken through may be the
                        // one the run restarted; any other destroys it too.
                        if !destroyed(node.consul("PUT", &path, None).await) {
                            if let Ok((found, boot)) =
                                find(&self.place, self.connector.as_ref()).await
                            {
                                if let Found::Consul(other) = &found {
                                    let _ = other.consul("PUT", &path, None).await;
                                }
                                close(&found).await;
                                if let Some(boot) = boot {
                                    boot.conn.close().await;
                                }
                            }
                        }
                    }
                }
                Found::File(node) => {
                    let _ = node
                        .script(&release_script(&self.place.dir, Some(&self.me.id)))
                        .await;
                }
            }
            close(&held.found).await;
        })
    }
}

async fn close(found: &Found) {
    match found {
        Found::Consul(node) | Found::File(node) => node.conn.close().await,
    }
}

impl RunLock {
    async fn peek(&self, found: &Found, boot: Option<&Node>, reporter: &Reporter) {
        let holder = match found {
            Found::Consul(node) => consul_holder(node, &self.place)
                .await
                .ok()
                .flatten()
                .map(|(h, _)| h),
            Found::File(node) => file_holder(node, &self.place).await.ok().flatten(),
        };
        let holder = match (holder, boot) {
            (Some(h), _) => Some(h),
            (None, Some(boot)) => file_holder(boot, &self.place).await.ok().flatten(),
            (None, None) => None,
        };
        if let Some(holder) = holder {
            reporter.warn(format!(
                "the cluster is locked by {}: this check run takes no lock, and what it \
                 reports may change under it",
                holder.describe()
            ));
        }
    }

    async fn acquire(&self, found: Found, boot: Option<&Node>, reporter: &Reporter) -> Result<()> {
        let place = &self.place;
        let session = match &found {
            Found::Consul(node) => match self.acquire_consul(node, boot).await {
                Ok((session, gone)) => {
                    if let Some(gone) = gone {
                        reporter.warn(took_over_message(&gone));
                    }
                    Some(session)
                }
                Err(err) => {
                    close(&found).await;
                    return Err(err);
                }
            },
            Found::File(node) => match self.acquire_file(node, reporter).await {
                Ok(()) => None,
                Err(err) => {
                    close(&found).await;
                    return Err(err);
                }
            },
        };
        let (name, where_) = match &found {
            Found::Consul(node) => (
                node.name.clone(),
                format!("consul key `{}`", place.key_name()),
            ),
            Found::File(node) => (node.name.clone(), format!("lock file `{}`", place.dir)),
        };
        if self.verbose {
            reporter.send(Event::Detail {
                host: name,
                text: format!("took the cluster lock ({where_}, TTL {} s)", place.ttl),
            });
        }
        let renew = tokio::spawn(renew(
            found.clone(),
            session.clone(),
            place.clone(),
            self.me.id.clone(),
            reporter.clone(),
            Arc::clone(&self.connector),
        ));
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(Held {
            found,
            session,
            renew,
        });
        Ok(())
    }

    /// The boot server's lock file; a holder whose run is gone from this
    /// machine is taken over at once, any other is waited out.
    async fn acquire_file(&self, node: &Node, reporter: &Reporter) -> Result<()> {
        let place = &self.place;
        let mut took_over = false;
        loop {
            let out = node
                .script(&take_script(&place.dir, place.ttl, &self.me))
                .await?;
            let mut lines = out.lines();
            if lines.next() == Some("taken") {
                return Ok(());
            }
            let Some(holder) = holder_of(&lines.collect::<Vec<_>>().join("\n")) else {
                return Err(Error::Locked {
                    message: format!(
                        "the lock file `{}` on `{}` is held but unreadable",
                        place.dir, node.name
                    ),
                    hint: Some("`arpanet lock release` removes it".into()),
                });
            };
            if took_over || !holder.is_gone_from(&self.me) {
                return Err(refused(&holder, place, &Found::File(node.clone())));
            }
            node.script(&release_script(&place.dir, Some(&holder.id)))
                .await?;
            reporter.warn(took_over_message(&holder));
            took_over = true;
        }
    }

    /// A session, then the key; refused (session destroyed) when another
    /// run holds the key or a live lock file. A holder whose run is gone
    /// from this machine is taken over at once (and returned).
    async fn acquire_consul(
        &self,
        node: &Node,
        boot: Option<&Node>,
    ) -> Result<(String, Option<Holder>)> {
        let place = &self.place;
        let body = serde_json::json!({
            "Name": format!("arpanet run lock ({})", self.me.owner),
            "TTL": format!("{}s", place.ttl),
            "Behavior": "delete",
            "LockDelay": "0s",
            // TTL only: by default a session also ends when the agent it was
            // made through fails, and an upgrade recreates that agent.
            "Checks": [],
        })
        .to_string();
        let r = node
            .consul("PUT", "/v1/session/create", Some(body.as_bytes()))
            .await?;
        if r.status != 200 {
            return Err(api_error(node, &r));
        }
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: String,
        }
        let session = serde_json::from_slice::<Created>(&r.body)
            .map_err(|_| api_error(node, &r))?
            .id;
        let destroy = || async {
            let path = format!("/v1/session/destroy/{session}");
            let _ = node.consul("PUT", &path, None).await;
        };
        // A first bootstrap that still holds the boot server's file.
        if let Some(boot) = boot {
            if let Ok(Some(holder)) = file_holder(boot, place).await {
                if holder.is_gone_from(&self.me) {
                    boot.script(&release_script(&place.dir, Some(&holder.id)))
                        .await?;
                } else {
                    destroy().await;
                    return Err(refused(&holder, place, &Found::File(boot.clone())));
                }
            }
        }
        let value = serde_json::to_vec(&self.me).unwrap_or_default();
        let acquire = place.key_path(&format!("acquire={session}"));
        let r = match node.consul("PUT", &acquire, Some(&value)).await {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                destroy().await;
                return Err(api_error(node, &r));
            }
            Err(err) => {
                destroy().await;
                return Err(err);
            }
        };
        if r.text().trim() != "true" {
            let holder = consul_holder(node, place).await.ok().flatten();
            if let Some((gone, theirs)) = holder.as_ref().filter(|(h, _)| h.is_gone_from(&self.me))
            {
                // Its session would outlive it by up to two TTLs.
                let path = format!("/v1/session/destroy/{theirs}");
                let retaken = match node.consul("PUT", &path, None).await {
                    Ok(r) if r.status == 200 => node
                        .consul("PUT", &acquire, Some(&value))
                        .await
                        .is_ok_and(|r| r.status == 200 && r.text().trim() == "true"),
                    _ => false,
                };
                if retaken {
                    return Ok((session, Some(gone.clone())));
                }
            }
            destroy().await;
            return Err(match holder {
                Some((h, _)) => refused(&h, place, &Found::Consul(node.clone())),
                None => Error::Locked {
                    message: format!(
                        "the cluster lock `{}` was just taken or freed by another run",
                        place.key_name()
                    ),
                    hint: Some("run again".into()),
                },
            });
        }
        Ok((session, None))
    }
}

/// Keep the lock alive every third of its TTL until the run ends (the task
/// is aborted). A renewal that fails is tried again on the next tick,
/// through another server when the first no longer answers; a lock found
/// gone is reported once.
async fn renew(
    found: Found,
    session: Option<String>,
    place: Place,
    id: String,
    reporter: Reporter,
    connector: Arc<dyn Connector>,
) {
    let every = Duration::from_secs(place.ttl.max(3) / 3);
    let mut node = match &found {
        Found::Consul(node) | Found::File(node) => node.clone(),
    };
    loop {
        tokio::time::sleep(every).await;
        let lost = match (&found, &session) {
            (Found::Consul(_), Some(session)) => {
                let path = format!("/v1/session/renew/{session}");
                match node.consul("PUT", &path, None).await {
                    Ok(r) if r.status == 200 => false,
                    Ok(r) if r.status == 404 => true,
                    _ => {
                        // This agent is down (an upgrade restarts it):
                        // any other server's agent renews as well.
                        if let Ok((other, boot)) = find(&place, connector.as_ref()).await {
                            if let Some(boot) = boot {
                                boot.conn.close().await;
                            }
                            match other {
                                Found::Consul(other) => {
                                    node.conn.close().await;
                                    node = other;
                                }
                                Found::File(other) => other.conn.close().await,
                            }
                        }
                        false
                    }
                }
            }
            _ => node
                .script(&refresh_script(&place.dir, place.ttl, &id))
                .await
                .is_ok_and(|out| out.trim() == "lost"),
        };
        if lost {
            reporter.warn(format!(
                "the cluster lock was lost (released by force, or not renewed within its TTL of \
                 {} s): another run may start",
                place.ttl
            ));
            return;
        }
    }
}

/// What `arpanet lock status` found.
#[derive(Debug, Serialize)]
pub(crate) struct LockStatus {
    pub locked: bool,
    /// `consul` or `file`.
    pub store: &'static str,
    /// The consul key, or `host:dir` of the lock file.
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// Who holds the lock, if anyone; `None` without a cluster.
pub(crate) fn status(session: &Session) -> Result<Option<LockStatus>> {
    let Some(place) = Place::of(session)? else {
        return Ok(None);
    };
    let connector = session.connector();
    crate::session::runtime()?.block_on(async {
        let (found, boot) = find(&place, &connector).await?;
        let status = look(&place, &found, boot.as_ref()).await;
        close(&found).await;
        if let Some(boot) = boot {
            boot.conn.close().await;
        }
        status.map(Some)
    })
}

async fn look(place: &Place, found: &Found, boot: Option<&Node>) -> Result<LockStatus> {
    let file_status = |node: &Node, holder: Option<Holder>| LockStatus {
        locked: holder.is_some(),
        store: "file",
        location: format!("{}:{}", node.name, place.dir),
        holder,
    };
    match found {
        Found::Consul(node) => {
            if let Some((holder, _)) = consul_holder(node, place).await? {
                return Ok(LockStatus {
                    locked: true,
                    store: "consul",
                    location: place.key_name(),
                    holder: Some(holder),
                });
            }
            if let Some(boot) = boot {
                if let Some(holder) = file_holder(boot, place).await? {
                    return Ok(file_status(boot, Some(holder)));
                }
            }
            Ok(LockStatus {
                locked: false,
                store: "consul",
                location: place.key_name(),
                holder: None,
            })
        }
        Found::File(node) => Ok(file_status(node, file_holder(node, place).await?)),
    }
}

/// Free the lock whoever holds it: destroy the holder's Consul session
/// (which deletes the key) and remove the boot server's lock file. Returns
/// what was held.
pub(crate) fn release(session: &Session) -> Result<Option<LockStatus>> {
    let Some(place) = Place::of(session)? else {
        return Ok(None);
    };
    let connector = session.connector();
    crate::session::runtime()?.block_on(async {
        let (found, boot) = find(&place, &connector).await?;
        let status = look(&place, &found, boot.as_ref()).await;
        if let Found::Consul(node) = &found {
            if let Ok(Some((_, session))) = consul_holder(node, &place).await {
                let path = format!("/v1/session/destroy/{session}");
                let r = node.consul("PUT", &path, None).await?;
                if r.status != 200 {
                    return Err(api_error(node, &r));
                }
            }
            let r = node.consul("DELETE", &place.key_path(""), None).await?;
            if r.status != 200 {
                return Err(api_error(node, &r));
            }
        }
        let file_node = match (&found, &boot) {
            (Found::File(node), _) | (_, Some(node)) => Some(node),
            _ => None,
        };
        if let Some(node) = file_node {
            node.script(&release_script(&place.dir, None)).await?;
        }
        close(&found).await;
        if let Some(boot) = boot {
            boot.conn.close().await;
        }
        status.map(Some)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn the_command_line_keeps_names_and_masks_extra_var_values() {
        assert_eq!(
            masked_command_line(args(
                "/usr/local/bin/arpanet run stack -e db_password=hunter2 --extra-vars=token=abc \
                 -etier=x -e @vars.yml -i hosts"
            )),
            "arpanet run stack -e db_password=*** --extra-vars=token=*** -etier=*** -e @vars.yml -i hosts"
        );
        assert_eq!(
            masked_command_line(args("arpanet run -e {\"a\":1} x.yml")),
            "arpanet run -e *** x.yml"
        );
    }

    #[test]
    fn a_holder_reads_back_from_its_json_and_describes_itself() {
        let me = Holder::me();
        assert_eq!(me.pid, std::process::id());
        assert!(me.owner.contains('@'));
        assert!(me.started.ends_with('Z'), "{}", me.started);
        let back = holder_of(&serde_json::to_string(&me).unwrap()).unwrap();
        assert_eq!(back, me);
        assert!(me.describe().contains(&format!("pid {}", me.pid)));
    }
}
