//! The no-change rerun of `bootstrap`, in one question per node.
//!
//! Run again with nothing to change, `bootstrap` would go through some sixty
//! checks, each a round trip to each node, to find that every node is as
//! it left it. Instead, after a full `bootstrap` that succeeded on every
//! node, each node keeps a stamp (`{{ consul_data }}/bootstrap.stamp`): a
//! digest of this run's inputs and of the node's state as the run left it.
//! The next `bootstrap` computes the same digest and asks every node at
//! once; when each node's stamp matches, and Consul has a healthy leader
//! and no run holds the cluster's lock, nothing is checked task by task.
//!
//! The inputs are everything a run's tasks are made from: arpanet's version
//! and built-in playbooks and templates (and any template overridden on
//! disk), every host's variables (the inventory, group and host vars,
//! `~/.arpanetrc`, `-e`, the deployed record), the group memberships and
//! this checkout's secret files. The node's state is what the tasks look
//! at there: the Docker unit and whether Docker and the linking watcher
//! run, the files arpanet writes (with modes and owners), every
//! container (id, image, state, start time, restart count), the images,
//! and the node agent's registered services; and in the cluster, Consul's
//! ACL tokens and policies. A change to any of them on any node (a file
//! edited by hand, a container removed or restarted, an image pulled, an
//! inventory value, a rotation from another checkout) fails the match and
//! the full run follows, which leaves unchanged nodes out of its batches
//! as before. Off with `-e bootstrap_fast=false`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{consul_api, consul_port, ordered_hosts, text};
use crate::config::ConnectOptions;
use crate::error::{Error, Result};
use crate::escalation::{self, Escalated};
use crate::playbook::{Playbook, SrcKind};
use crate::report::{Event, HostResult, OutputFormat, Printer, Status};
use crate::session::{self, HostInfo, Session};
use crate::transport::{quote, Connector, Transport};

/// The stamp's file, under `consul_data`.
const STAMP: &str = "bootstrap.stamp";

/// How long the fast path may take to ask every node.
const SURVEY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The fast path's play, as the recap shows it.
const PLAY: &str = "every node as the last bootstrap left it";

/// How the fast path ended.
pub(crate) enum Outcome {
    /// Every node matched: the run's exit code (0), printed.
    Unchanged(i32),
    /// Run every task; with `-v`, why was said.
    Full,
}

/// Whether `bootstrap` (alone, as built in; the caller knows it runs on
/// the whole cluster, changing things) is checked and stamped.
pub(crate) fn eligible(names: &[String], playbooks: &[Playbook]) -> bool {
    names == ["bootstrap"]
        && playbooks.len() == 1
        && crate::playbook::resolves_to_builtin("bootstrap", super::builtin::BUILTINS)
}

/// The inputs of a `bootstrap` run, as one digest (see the module
/// documentation); `None` when the run turns the fast path off.
fn inputs(session: &Session, hosts: &[HostInfo], playbook: &Playbook) -> Result<Option<String>> {
    let first = &hosts[0].vars;
    if first.get("bootstrap_fast").and_then(crate::truth::as_bool) == Some(false) {
        return Ok(None);
    }
    let mut digest = Sha256::new();
    let mut put = |label: &str, bytes: &[u8]| {
        digest.update(label.as_bytes());
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(bytes);
    };
    put("version", env!("CARGO_PKG_VERSION").as_bytes());
    let builtins = super::builtin::BUILTINS;
    for (name, text) in builtins.playbooks.iter().chain(builtins.templates) {
        put(name, text.as_bytes());
    }
    put("defaults", builtins.defaults.as_bytes());
    for (name, _) in builtins.templates {
        if let Some(path) = playbook.resolve_src(name, SrcKind::Template, None) {
            let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            put(&path.display().to_string(), &bytes);
        }
    }
    for host in hosts {
        let vars = canonical(&Value::Object(host.vars.clone()));
        put(&host.name, vars.as_bytes());
        put(
            "groups",
            session.inventory.groups_of(&host.name).join(",").as_bytes(),
        );
    }
    for var in ["consul_tls_dir", "docker_tls_dir"] {
        let dir = text(first, var, "");
        if !dir.is_empty() && !dir.contains("{{") {
            for (path, bytes) in files_under(Path::new(&dir))? {
                put(&path, &bytes);
            }
        }
    }
    Ok(Some(hex::encode(digest.finalize())))
}

/// `value` as JSON text with every object's keys sorted: the same
/// variables make the same text whichever layer set them first.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Every file under `dir` (none when it does not exist), by path, sorted.
fn files_under(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        let entries = match std::fs::read_dir(&at) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", &at, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io("read", &at, e))?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The script that prints a node's stamp and a digest of what the tasks
/// look at on it (see the module documentation).
fn probe_script(vars: &crate::vars::Vars) -> String {
    let data = text(vars, "consul_data", "/mnt/arpanet-consul");
    let watcher = text(vars, "registrator_name", "registrator");
    let q = |s: &str| quote(s);
    let paths = [
        "/etc/default/docker".to_owned(),
        "/etc/docker/arpanet".to_owned(),
        "/etc/systemd/system/docker.service.d".to_owned(),
        format!("{data}/arpanet"),
        format!("{data}/serf/local.keyring"),
        "/usr/local/lib/arpanet".to_owned(),
        format!("/etc/systemd/system/{watcher}.service"),
    ]
    .map(|p| q(&p))
    .join(" ");
    format!(
        "printf 'stamp %s\\n' \"$(cat {stamp} 2>/dev/null || echo none)\"\n\
         {{ systemctl cat docker.service; systemctl is-active docker {w}; systemctl is-enabled {w}\n\
         stat -c '%n %a %U %G' {data_q} {watcher_dir}\n\
         find {paths} -xdev -printf '%p %m %u %g %y\\n' 2>/dev/null | LC_ALL=C sort\n\
         find {paths} -xdev -type f -exec sha256sum {{}} + 2>/dev/null | LC_ALL=C sort\n\
         docker ps -aq --no-trunc | LC_ALL=C sort | xargs -r docker inspect -f \
         '{{{{.Id}}}} {{{{.Name}}}} {{{{.Image}}}} {{{{.State.Status}}}} {{{{.State.StartedAt}}}} {{{{.RestartCount}}}}'\n\
         docker images --no-trunc --format '{{{{.Repository}}}}:{{{{.Tag}}}} {{{{.ID}}}}' | LC_ALL=C sort\n\
         }} 2>&1 | sha256sum | cut -d' ' -f1",
        stamp = q(&format!("{data}/{STAMP}")),
        w = q(&watcher),
        data_q = q(&data),
        watcher_dir = q(&format!("{data}/watcher")),
    )
}

/// What one node said.
struct Node {
    name: String,
    conn: Arc<dyn Transport>,
    /// Its stamp as found (`none` without one).
    stamp: String,
    /// The digest of its state, from the probe.
    state: String,
    /// Its agent's services, as the agent said them.
    services: Vec<u8>,
}

impl Node {
    /// The node's stamp as it would be written now.
    fn now(&self, inputs: &str, cluster: &str) -> String {
        let mut digest = Sha256::new();
        for part in [
            inputs.as_bytes(),
            self.state.as_bytes(),
            &self.services,
            cluster.as_bytes(),
        ] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        hex::encode(digest.finalize())
    }
}

/// Connect to every host (as its `become` says), all at once.
async fn connect_all(
    connector: &dyn Connector,
    hosts: &[HostInfo],
    escalations: &[Option<escalation::Become>],
) -> Vec<std::result::Result<Arc<dyn Transport>, String>> {
    let jobs = hosts.iter().zip(escalations).map(|(host, how)| async move {
        let conn = connector
            .connect(&host.target)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Escalated::wrap(conn, how.clone(), &host.name))
    });
    futures::future::join_all(jobs).await
}

/// Run the probe on `host` and read its agent's services.
async fn look(
    conn: Arc<dyn Transport>,
    host: &HostInfo,
    token: Option<&str>,
) -> std::result::Result<Node, String> {
    let port = consul_port(&host.vars).map_err(|e| e.to_string())?;
    let script = probe_script(&host.vars);
    let (probed, services) = futures::join!(
        crate::probe::exec(conn.as_ref(), &host.name, &script, None),
        consul_api::request(
            &host.name,
            conn.as_ref(),
            port,
            "GET",
            "/v1/agent/services",
            None,
            token
        )
    );
    let probed = probed.map_err(|e| e.to_string())?;
    if !probed.success() {
        return Err(format!("the state probe failed: {}", probed.stderr.trim()));
    }
    let services = services.map_err(|e| e.to_string())?;
    if services.status != 200 {
        return Err(format!("its agent's services: HTTP {}", services.status));
    }
    let mut lines = probed.stdout.lines();
    let stamp = lines
        .next()
        .and_then(|l| l.strip_prefix("stamp "))
        .unwrap_or("none")
        .trim()
        .to_owned();
    let state = lines.next().unwrap_or_default().trim().to_owned();
    Ok(Node {
        name: host.name.clone(),
        conn,
        stamp,
        state,
        services: services.body,
    })
}

/// Every node looked at (see [`look`]) and the cluster's part of their
/// stamps, asked of the first host, all at once; `Err` says why the fast
/// path is not taken (the first reason found).
async fn survey(
    connector: &dyn Connector,
    hosts: &[HostInfo],
    escalations: &[Option<escalation::Become>],
    token: Option<&str>,
    gate: bool,
) -> std::result::Result<(Vec<Node>, String), String> {
    let conns = connect_all(connector, hosts, escalations).await;
    let mut open = Vec::new();
    let mut why = None;
    for (host, conn) in hosts.iter().zip(conns) {
        match conn {
            Ok(conn) => open.push((host, conn)),
            Err(e) => {
                why.get_or_insert(format!("{}: {e}", host.name));
            }
        }
    }
    let cluster = async {
        match open.first() {
            Some((host, conn)) if host.name == hosts[0].name => {
                cluster_state(conn.as_ref(), host, token, gate).await
            }
            _ => Err(format!("{} cannot be reached", hosts[0].name)),
        }
    };
    let looks = open
        .iter()
        .map(|(host, conn)| look(Arc::clone(conn), host, token));
    let (cluster, looked) = futures::join!(cluster, futures::future::join_all(looks));
    let mut nodes = Vec::new();
    for ((host, conn), node) in open.iter().zip(looked) {
        match node {
            Ok(node) => nodes.push(node),
            Err(e) => {
                why.get_or_insert(format!("{}: {e}", host.name));
                conn.close().await;
            }
        }
    }
    match (why, cluster) {
        (None, Ok(cluster)) => Ok((nodes, cluster)),
        (Some(why), _) | (None, Err(why)) => {
            for node in &nodes {
                node.conn.close().await;
            }
            Err(why)
        }
    }
}

/// The cluster's part of every stamp (its ACL tokens and policies); with
/// `gate`, only once Consul's autopilot calls the servers healthy and no
/// run holds the cluster's lock. `Err` says why the fast path is not taken.
/// (A stamp is written without the gate: right after a first bootstrap the
/// autopilot waits for the new servers to be stable.)
async fn cluster_state(
    conn: &dyn Transport,
    host: &HostInfo,
    token: Option<&str>,
    gate: bool,
) -> std::result::Result<String, String> {
    let port = consul_port(&host.vars).map_err(|e| e.to_string())?;
    let get = |path: String| async move {
        consul_api::request(&host.name, conn, port, "GET", &path, None, token)
            .await
            .map_err(|e| e.to_string())
    };
    let lock_key = consul_api::kv_path(
        &text(&host.vars, "consul_kv_path", "/arpanet"),
        "lock",
        false,
        "",
    );
    let (health, lock, tokens, policies) = futures::join!(
        get("/v1/operator/autopilot/health".into()),
        get(lock_key),
        get("/v1/acl/tokens".into()),
        get("/v1/acl/policies".into()),
    );
    let (tokens, policies) = (tokens?, policies?);
    let mut out = String::new();
    for (what, answer) in [("tokens", tokens), ("policies", policies)] {
        match answer.status {
            200 => out.push_str(&answer.text()),
            // ACLs off: nothing to compare.
            401 | 403 | 404 if token.is_none() => out.push_str(what),
            status => return Err(format!("Consul's ACL {what}: HTTP {status}")),
        }
    }
    if !gate {
        return Ok(out);
    }
    let health = health?;
    let healthy = serde_json::from_slice::<Value>(&health.body)
        .ok()
        .and_then(|v| v.get("Healthy").and_then(Value::as_bool))
        == Some(true);
    if health.status != 200 || !healthy {
        return Err("Consul's autopilot does not call the servers healthy".into());
    }
    // The lock's key is held while a session is on it (see `lock`).
    let lock = lock?;
    let held = lock.status == 200
        && serde_json::from_slice::<Value>(&lock.body)
            .ok()
            .and_then(|v| v.get(0).and_then(|e| e.get("Session")).cloned())
            .is_some_and(|s| !s.is_null());
    if held || !matches!(lock.status, 200 | 404) {
        return Err("a run holds the cluster's lock".into());
    }
    Ok(out)
}

/// What checking or writing the stamps needs: the whole inventory's
/// hosts (servers first), the run's inputs, the management token and how
/// each host escalates.
struct Run {
    session: Session,
    hosts: Vec<HostInfo>,
    inputs: String,
    token: Option<String>,
    escalations: Vec<Option<escalation::Become>>,
}

impl Run {
    /// `None` without a cluster to stamp (no `servers`) or with the stamps
    /// turned off.
    fn of(connect: &ConnectOptions, playbook: &Playbook) -> Result<Option<Run>> {
        let session = Session::open(&ConnectOptions {
            limit: None,
            ..connect.clone()
        })?;
        let hosts = ordered_hosts(&session)?;
        if hosts.is_empty() || session.inventory.group_hosts("servers").is_empty() {
            return Ok(None);
        }
        let Some(inputs) = inputs(&session, &hosts, playbook)? else {
            return Ok(None);
        };
        let token = super::acl::token(&hosts[0].vars)?;
        let escalations = hosts
            .iter()
            .map(|h| escalation::for_host(&connect.escalation, &h.vars))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Run {
            session,
            hosts,
            inputs,
            token,
            escalations,
        }))
    }
}

/// Ask every node for its stamp (see the module documentation): with all
/// of them matching, print the fast path's play and recap and return its
/// exit code; else say why (with `-v`) and let the full run go.
pub(crate) fn check(
    connect: &ConnectOptions,
    playbook: &Playbook,
    format: OutputFormat,
    verbose: bool,
) -> Result<Outcome> {
    let clock = Instant::now();
    let Some(Run {
        session,
        hosts,
        inputs,
        token,
        escalations,
    }) = Run::of(connect, playbook)?
    else {
        return Ok(Outcome::Full);
    };
    let connector = session.connector();
    let looked = session::runtime()?.block_on(async {
        // Bounded: a node that is slow to answer (or down) gets the full
        // run, which reports it, without waiting twice.
        let survey = survey(&connector, &hosts, &escalations, token.as_deref(), true);
        let (nodes, cluster) = tokio::time::timeout(SURVEY_TIMEOUT, survey)
            .await
            .map_err(|_| format!("not every node answered within {SURVEY_TIMEOUT:?}"))??;
        let differs = nodes
            .iter()
            .find(|n| n.stamp != n.now(&inputs, &cluster))
            .map(|n| format!("{}: not as the last bootstrap left it", n.name));
        for node in &nodes {
            node.conn.close().await;
        }
        match differs {
            Some(why) => Err(why),
            None => Ok(nodes.into_iter().map(|n| n.name).collect::<Vec<_>>()),
        }
    });
    let names = match looked {
        Ok(names) => names,
        Err(why) => {
            if verbose {
                eprintln!("note: running every task of bootstrap: {why}");
            }
            return Ok(Outcome::Full);
        }
    };
    let printer = Printer::start(format, 0, false);
    let reporter = printer.reporter();
    reporter.send(Event::PlayStart {
        play: PLAY.into(),
        hosts: names.clone(),
    });
    reporter.send(Event::TaskStart {
        task: "this node's stamp against its state and the run's inputs".into(),
        hosts: names.len(),
        names: names.clone(),
    });
    let elapsed = crate::report::round(clock.elapsed());
    for name in &names {
        reporter.send(Event::Host(HostResult {
            host: name.clone(),
            task: "this node's stamp against its state and the run's inputs".into(),
            status: Status::Ok,
            elapsed,
            ignored: false,
            rescued: false,
            message: Some("unchanged since the last bootstrap: no task needed".into()),
            failure: None,
            diff: None,
        }));
    }
    let finished = printer.finish(false);
    Ok(Outcome::Unchanged(finished.code))
}

/// After a full `bootstrap` that succeeded on every node: write each
/// node's stamp. A node that cannot be stamped only means the next run
/// checks it task by task (a note says so); it never fails the run.
pub(crate) fn stamp(connect: &ConnectOptions, playbook: &Playbook) {
    if let Err(e) = write_stamps(connect, playbook) {
        eprintln!("note: no node stamped for the next bootstrap: {e}");
    }
}

fn write_stamps(connect: &ConnectOptions, playbook: &Playbook) -> Result<()> {
    let Some(run) = Run::of(connect, playbook)? else {
        return Ok(());
    };
    let (hosts, inputs) = (&run.hosts, &run.inputs);
    let connector = run.session.connector();
    session::runtime()?.block_on(async {
        let (nodes, cluster) =
            match survey(&connector, hosts, &run.escalations, run.token.as_deref(), false).await {
                Ok(found) => found,
                Err(why) => {
                    eprintln!("note: no node stamped for the next bootstrap: {why}");
                    return;
                }
            };
        let jobs = nodes.iter().map(|node| {
            let stamp = node.now(inputs, &cluster);
            let vars = hosts.iter().find(|h| h.name == node.name).map(|h| &h.vars);
            async move {
                let data = vars.map_or_else(
                    || "/mnt/arpanet-consul".to_owned(),
                    |v| text(v, "consul_data", "/mnt/arpanet-consul"),
                );
                let path = quote(&format!("{data}/{STAMP}"));
                let write = format!(
                    "umask 077 && printf '%s\\n' {stamp} > {path}.new && mv {path}.new {path}"
                );
                let out = crate::probe::exec(node.conn.as_ref(), &node.name, &write, None).await;
                node.conn.close().await;
                match out {
                    Ok(out) if out.success() => Ok(()),
                    Ok(out) => Err(out.stderr.trim().to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        });
        for (node, done) in nodes.iter().zip(futures::future::join_all(jobs).await) {
            if let Err(why) = done {
                eprintln!(
                    "note: {} not stamped for the next bootstrap (it will be checked task by task): {why}",
                    node.name
                );
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{HostKeyChecking, SessionMode};

    /// The inputs digest of a run over `dir`'s inventory with `extra`.
    fn digest(dir: &Path, extra: &[&str]) -> Option<String> {
        let connect = ConnectOptions {
            inventory: vec![dir.join("hosts")],
            limit: None,
            extra_vars: extra.iter().map(|e| e.to_string()).collect(),
            forks: 5,
            user: None,
            private_key: None,
            known_hosts: None,
            host_key_checking: HostKeyChecking::Strict,
            timeout: None,
            defaults: super::super::builtin::BUILTINS.defaults,
            escalation: Default::default(),
            provided: Default::default(),
            session: SessionMode::Persistent,
            resolved_ips: Vec::new(),
            playbook_dirs: Vec::new(),
        };
        let session = Session::open(&connect).unwrap();
        let hosts = ordered_hosts(&session).unwrap();
        let playbook =
            crate::playbook::resolve("bootstrap", super::super::builtin::BUILTINS).unwrap();
        inputs(&session, &hosts, &playbook).unwrap()
    }

    #[test]
    fn the_inputs_digest_follows_variables_groups_and_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("consul-tls");
        std::fs::create_dir_all(tls.join("hosts/a")).unwrap();
        std::fs::write(tls.join("hosts/a/cert.pem"), "one").unwrap();
        let inventory = |clients: &str| {
            std::fs::write(
                dir.path().join("hosts"),
                format!(
                    "[servers]\na ansible_host=127.0.0.1\n[clients]\n{clients}\n[all:vars]\nconsul_tls_dir={}\n",
                    tls.display()
                ),
            )
            .unwrap();
        };
        inventory("b ansible_host=127.0.0.2");
        let base = digest(dir.path(), &[]).expect("a digest");
        assert_eq!(digest(dir.path(), &[]).as_deref(), Some(base.as_str()));
        // A variable, from `-e` here.
        let opts = digest(dir.path(), &["docker_opts_extra=--debug"]).unwrap();
        assert_ne!(opts, base);
        // A secret file's bytes.
        std::fs::write(tls.join("hosts/a/cert.pem"), "two").unwrap();
        let cert = digest(dir.path(), &[]).unwrap();
        assert_ne!(cert, base);
        // A host moved to another group.
        inventory("\n[servers]\nb ansible_host=127.0.0.2");
        assert_ne!(digest(dir.path(), &[]).unwrap(), cert);
        // Off by a variable.
        assert_eq!(digest(dir.path(), &["bootstrap_fast=false"]), None);
    }
}
