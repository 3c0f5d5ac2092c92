//! The deployed record: what the cluster runs, kept in the cluster itself
//! (Consul KV under `consul_kv_path`), so that any checkout sees it and a
//! plain run keeps it.
//!
//! After a built-in playbook changed the cluster (`bootstrap`, `consul`,
//! `stack`, `upgrade`, `rollback`; not `--check`, not a failed run), the
//! variables named by `deployed_vars` (the images, `stack`, the Consul
//! settings) are written to `deployed/current` and `deployed/history/NNNNNN`
//! with who, when, the command line (extra-var values masked) and what
//! changed since the previous record; `deployed_history_depth` records are
//! kept. A run whose values equal the record's writes nothing.
//!
//! Each value is kept twice: `values`, as it ran (rendered for the first
//! server), shown by `history` and diffed; `raw`, as the winning layer wrote
//! it (templates unrendered), which the next run reads back as the
//! engine's product-provided layer, just above the built-in defaults. So a
//! value from the defaults (or from a `-e` of an earlier run) stays as it
//! runs, while what the operator sets in `~/.arpanetrc`, the inventory or
//! `-e` still wins. `rollback` puts an earlier record's `raw` values above
//! the inventory, below its own `-e`.
//!
//! Env values of stack entries are stored (a rollback must reproduce them)
//! but never shown: `history` prints them as `KEY=***`. Until Consul's ACLs
//! are on, any container on a node can read them from KV.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{consul_api, consul_port, text};
use crate::config::ConnectOptions;
use crate::error::{Error, Result};
use crate::session::{self, HostInfo, Session};
use crate::template::Engine;
use crate::transport::{Connector, Transport};
use crate::vars::Vars;

/// What a shown secret looks like.
const HIDDEN: &str = "***";

/// One record of what is deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) number: u64,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub(crate) time: String,
    /// `user@machine` that ran it.
    pub(crate) who: String,
    /// The command line, extra-var values masked.
    pub(crate) command: String,
    pub(crate) playbooks: Vec<String>,
    /// The record a `rollback` returned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rollback_of: Option<u64>,
    /// What changed since the previous record (no secret values).
    pub(crate) changes: Vec<String>,
    /// Each recorded variable as it ran.
    pub(crate) values: Vars,
    /// Each recorded variable as the layer that won wrote it.
    pub(crate) raw: Vars,
}

impl Record {
    /// The record as it may be shown: env values masked.
    pub(crate) fn masked(&self) -> Record {
        let mut out = self.clone();
        for vars in [&mut out.values, &mut out.raw] {
            for value in vars.values_mut() {
                mask(value);
            }
        }
        out
    }
}

/// A KV value as `arpanet kv get` shows it: a deployment record (under
/// `deployed/`) with its env values masked, as `history` shows it; any
/// other value as it is.
pub(crate) fn kv_shown(key: &str, text: &str) -> String {
    let record = key
        .trim_start_matches('/')
        .starts_with("deployed/")
        .then(|| serde_json::from_str::<Record>(text).ok())
        .flatten();
    if let Some(record) = record {
        return serde_json::to_string(&record.masked()).unwrap_or_default();
    }
    // A record of another version of arpanet: every `env` in it masked.
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) if key.trim_start_matches('/').starts_with("deployed/") => {
            mask_all(&mut value);
            value.to_string()
        }
        _ => text.to_owned(),
    }
}

/// [`mask`] every list of services anywhere in `value`.
fn mask_all(value: &mut Value) {
    let services =
        matches!(value, Value::Array(items) if items.iter().any(|i| i.get("env").is_some()));
    match value {
        Value::Array(_) if services => mask(value),
        Value::Array(items) => items.iter_mut().for_each(mask_all),
        Value::Object(map) => map.values_mut().for_each(mask_all),
        _ => {}
    }
}

/// What the cluster says is deployed, read before a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deployed {
    /// Whether a Consul agent answered (no cluster yet: no record).
    pub(crate) cluster: bool,
    pub(crate) current: Option<Record>,
    /// Every kept record, oldest first, when asked for.
    pub(crate) history: Vec<Record>,
    /// Recorded variables this run takes from `~/.arpanetrc`, the
    /// inventory or `-e` instead, with what says so.
    pub(crate) overridden: Vec<String>,
    /// Off with `deployed_record: false`: nothing read, nothing written.
    enabled: bool,
}

impl Deployed {
    /// The layer the next run reads: the current record's raw values.
    pub(crate) fn layer(&self) -> Vars {
        self.current
            .as_ref()
            .map(|r| r.raw.clone())
            .unwrap_or_default()
    }

    /// The record `rollback` goes back to: `number`, else the one before
    /// the current record.
    pub(crate) fn rollback_target(&self, number: Option<u64>) -> Result<&Record> {
        let current = self.current.as_ref().ok_or_else(|| {
            Error::usage("the cluster has no deployed record to roll back from")
                .with_hint("records are made by `bootstrap`, `consul`, `stack` and `upgrade`")
        })?;
        match number {
            Some(n) if n == current.number => {
                Err(Error::usage(format!("record #{n} is what is deployed now"))
                    .with_hint("`arpanet history` lists the records"))
            }
            Some(n) => self.history.iter().find(|r| r.number == n).ok_or_else(|| {
                Error::usage(format!("no record #{n} in the cluster's history"))
                    .with_hint("`arpanet history` lists the records kept")
            }),
            None => self
                .history
                .iter()
                .rev()
                .find(|r| r.number < current.number)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "record #{} is the oldest kept: nothing to roll back to",
                        current.number
                    ))
                }),
        }
    }
}

/// Where the records live and how many are kept, from one host's variables.
struct Place {
    prefix: String,
    port: u16,
    depth: u64,
    names: Vec<String>,
    enabled: bool,
    /// The checkout's Consul secrets directory: its ACL management token
    /// (see `acl`) goes with every request.
    tls_dir: Option<String>,
}

impl Place {
    fn of(vars: &Vars) -> Result<Place> {
        let depth = text(vars, "deployed_history_depth", "20");
        let depth = depth
            .parse::<u64>()
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| {
                Error::usage(format!(
                    "`deployed_history_depth` must be a positive number, got `{depth}`"
                ))
            })?;
        let names = match vars.get("deployed_vars") {
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Place {
            prefix: text(vars, "consul_kv_path", "/arpanet"),
            port: consul_port(vars)?,
            tls_dir: vars
                .get("consul_tls_dir")
                .and_then(Value::as_str)
                .map(str::to_owned),
            depth,
            names,
            enabled: vars
                .get("deployed_record")
                .and_then(crate::truth::as_bool)
                .unwrap_or(true),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("deployed/{key}")
    }

    fn token(&self) -> Option<String> {
        let dir = self.tls_dir.as_deref()?;
        super::acl::token_in(dir).ok().flatten()
    }

    /// What to say of Consul's answer `r` to a request with [`Place::token`].
    fn answer_error(&self, r: &consul_api::Response) -> String {
        let origin = self.tls_dir.as_deref().and_then(super::acl::token_origin);
        consul_api::answer_error(r, origin.as_deref())
    }
}

/// The hosts to ask, servers first, whatever `--limit` says, and the
/// variables of the first (the first server), which place the records.
fn open(connect: &ConnectOptions) -> Result<(Session, Vec<HostInfo>)> {
    let all = ConnectOptions {
        limit: None,
        ..connect.clone()
    };
    let session = Session::open(&all)?;
    let hosts = super::ordered_hosts(&session)?;
    if hosts.is_empty() {
        return Err(Error::usage("no hosts in the inventory"));
    }
    Ok((session, hosts))
}

/// Whether Consul could form a cluster of the inventory's shape: some
/// `servers`, and `consul_expect` between 1 and their number (what the
/// built-in preflight checks).
fn shape_possible(session: &Session, vars: &Vars) -> bool {
    let servers = session.inventory.select("servers").map_or(0, |s| s.len());
    let expect = text(vars, "consul_expect", "1")
        .parse::<usize>()
        .unwrap_or(0);
    servers > 0 && (1..=servers).contains(&expect)
}

/// How one node answered a read.
enum Answer {
    /// SSH failed.
    Unreachable(String),
    /// No Consul agent listens on the node.
    NoAgent,
    /// The agent answered something else than the record or its absence.
    Failed(String),
    Found(Option<(Box<Record>, u64)>),
}

/// Read the current record (and with `history`, every kept record) through
/// the first node whose agent answers. No agent on any reachable node: no
/// cluster yet, no record. An agent that answers anything else (no leader)
/// is an error: falling back to the defaults would undo what was deployed.
pub(crate) fn read(connect: &ConnectOptions, history: bool) -> Result<Deployed> {
    read_unless(connect, history, |_, _| false)
}

/// [`read`] before a run of the built-in playbooks. An inventory whose
/// shape no cluster can have has no record to read: the playbooks'
/// preflight refuses it, before any host is contacted.
pub(crate) fn read_for_run(connect: &ConnectOptions) -> Result<Deployed> {
    read_unless(connect, false, |session, vars| {
        !shape_possible(session, vars)
    })
}

fn read_unless(
    connect: &ConnectOptions,
    history: bool,
    skip: impl Fn(&Session, &Vars) -> bool,
) -> Result<Deployed> {
    let (session, hosts) = open(connect)?;
    let place = Place::of(&hosts[0].vars)?;
    if !place.enabled {
        return Ok(Deployed::default());
    }
    if skip(&session, &hosts[0].vars) {
        return Ok(Deployed {
            enabled: true,
            ..Deployed::default()
        });
    }
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let mut seen = Vec::new();
        let mut reached = false;
        for host in &hosts {
            let conn = match connector.connect(&host.target).await {
                Ok(conn) => conn,
                Err(err) => {
                    seen.push((host.name.clone(), Answer::Unreachable(err.to_string())));
                    continue;
                }
            };
            reached = true;
            // A failed read leaves the request without a token (Consul says 403).
        let _ = super::acl::learn(&host.vars, conn.as_ref(), &host.name).await;
            let answer = read_current(&host.name, conn.as_ref(), &place).await;
            if let Answer::Found(found) = answer {
                let mut deployed = Deployed {
                    cluster: true,
                    enabled: true,
                    ..Deployed::default()
                };
                deployed.current = found.map(|(record, _)| *record);
                if let Some(record) = &deployed.current {
                    deployed.overridden = overridden(&session, &hosts[0].name, connect, record)?;
                }
                if history {
                    deployed.history = read_history(&host.name, conn.as_ref(), &place).await?;
                }
                conn.close().await;
                return Ok(deployed);
            }
            conn.close().await;
            seen.push((host.name.clone(), answer));
        }
        let failed: Vec<String> = seen
            .iter()
            .filter_map(|(name, a)| match a {
                Answer::Failed(why) | Answer::Unreachable(why) => Some(format!("{name}: {why}")),
                _ => None,
            })
            .collect();
        let any_failed = seen.iter().any(|(_, a)| matches!(a, Answer::Failed(_)));
        // No node reachable at all: the run cannot change any either, and
        // says so for each host (unreachable, exit 4).
        if !reached && !history {
            return Ok(Deployed {
                enabled: true,
                ..Deployed::default()
            });
        }
        if reached && !any_failed {
            // Every node reached has no agent: no cluster yet.
            return Ok(Deployed {
                enabled: true,
                ..Deployed::default()
            });
        }
        Err(Error::Remote {
            host: hosts[0].name.clone(),
            message: format!(
                "cannot read what is deployed from the cluster (`{}/deployed/current`):\n  {}\nhint: without it this run would fall back to the built-in defaults and undo earlier upgrades; check the cluster with `arpanet status` (a leader?), or run with `-e deployed_record=false` to use the inventory's values alone",
                place.prefix.trim_end_matches('/'),
                failed.join("\n  ")
            ),
        })
    })
}

/// The recorded variables that something above the defaults sets to
/// another value than the record's, each said in one line (values shown
/// but for `stack`-like lists, which may hold env values).
fn overridden(
    session: &Session,
    host: &str,
    connect: &ConnectOptions,
    record: &Record,
) -> Result<Vec<String>> {
    let defaults = crate::vars::parse_defaults(connect.defaults)?;
    let now = session.scope.host_raw(host);
    let mut out = Vec::new();
    for (name, recorded) in &record.raw {
        let Some(value) = now.get(name) else {
            continue;
        };
        if Some(value) == defaults.get(name) || value == recorded {
            continue;
        }
        out.push(match value {
            Value::Array(_) | Value::Object(_) => format!(
                "`{name}` from ~/.arpanetrc, the inventory or `-e` replaces the deployed one (record #{})",
                record.number
            ),
            _ => format!(
                "`{name}` from ~/.arpanetrc, the inventory or `-e` replaces the deployed {} with {} (record #{})",
                shown(Some(recorded)),
                shown(Some(value)),
                record.number
            ),
        });
    }
    Ok(out)
}

async fn read_current(host: &str, conn: &dyn Transport, place: &Place) -> Answer {
    let path = consul_api::kv_path(&place.prefix, &place.key("current"), false, "");
    match consul_api::request(
        host,
        conn,
        place.port,
        "GET",
        &path,
        None,
        place.token().as_deref(),
    )
    .await
    {
        Err(err) if consul_api::no_agent(&err) => Answer::NoAgent,
        Err(err) => Answer::Failed(err.to_string()),
        Ok(r) if r.status == 404 => Answer::Found(None),
        Ok(r) if r.status == 200 => match entries(&r.body) {
            Ok(mut found) if !found.is_empty() => {
                let (record, index) = found.remove(0);
                Answer::Found(Some((Box::new(record), index)))
            }
            Ok(_) => Answer::Found(None),
            Err(why) => Answer::Failed(why),
        },
        Ok(r) => Answer::Failed(place.answer_error(&r)),
    }
}

async fn read_history(host: &str, conn: &dyn Transport, place: &Place) -> Result<Vec<Record>> {
    let path = consul_api::kv_path(&place.prefix, &place.key("history"), true, "");
    let r = consul_api::request(
        host,
        conn,
        place.port,
        "GET",
        &path,
        None,
        place.token().as_deref(),
    )
    .await?;
    let mut records: Vec<Record> = match r.status {
        404 => Vec::new(),
        200 => entries(&r.body)
            .map_err(|message| Error::Remote {
                host: host.to_owned(),
                message,
            })?
            .into_iter()
            .map(|(record, _)| record)
            .collect(),
        _ => {
            return Err(Error::Remote {
                host: host.to_owned(),
                message: place.answer_error(&r),
            })
        }
    };
    records.sort_by_key(|r| r.number);
    Ok(records)
}

/// The records in a KV read's JSON answer, with their ModifyIndex.
fn entries(body: &[u8]) -> std::result::Result<Vec<(Record, u64)>, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        key: String,
        value: Option<String>,
        modify_index: u64,
    }
    let list: Vec<Entry> = serde_json::from_slice(body)
        .map_err(|e| format!("consul sent an unreadable KV answer: {e}"))?;
    list.into_iter()
        .filter(|e| e.value.is_some())
        .map(|e| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(e.value.unwrap_or_default())
                .map_err(|err| format!("`{}`: not base64: {err}", e.key))?;
            let record = serde_json::from_slice(&raw)
                .map_err(|err| format!("`{}` is not a deployed record: {err}", e.key))?;
            Ok((record, e.modify_index))
        })
        .collect()
}

/// What a run asks to be recorded, besides the values.
pub(crate) struct RunInfo {
    pub(crate) playbooks: Vec<String>,
    pub(crate) command: String,
    pub(crate) rollback_of: Option<u64>,
}

/// After a successful run: record what is now deployed, if it differs
/// from the cluster's current record (read again now: a cluster that did
/// not answer before the run, as on a first `bootstrap` or one restarted
/// after `stop`, may hold one). Returns the new record.
pub(crate) fn record(
    connect: &ConnectOptions,
    before: &Deployed,
    run: RunInfo,
) -> Result<Option<Record>> {
    if !before.enabled {
        return Ok(None);
    }
    let (session, hosts) = open(connect)?;
    let first = &hosts[0];
    let place = Place::of(&first.vars)?;
    let (values, raw) = deployed_values(&session, &first.name, &place.names);
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let (host, conn, _) = super::first_agent(&connector, &hosts, false).await?;
        let result = async {
            let (previous, index) = match read_current(&host.name, conn.as_ref(), &place).await {
                Answer::Found(Some((record, index))) => (Some(*record), index),
                Answer::Found(None) => (None, 0),
                Answer::Unreachable(why) | Answer::Failed(why) => {
                    return Err(Error::Remote {
                        host: host.name.clone(),
                        message: format!("cannot record what is deployed: {why}"),
                    })
                }
                Answer::NoAgent => {
                    return Err(Error::Remote {
                        host: host.name.clone(),
                        message: "cannot record what is deployed: no Consul agent answers".into(),
                    })
                }
            };
            // The record this run ran over was read before it took the
            // cluster's lock: a run that recorded in between ran after it,
            // and this run's values (that record's, where the inventory is
            // silent) would undo it without a word.
            if let Some((read, latest)) = recorded_meanwhile(before, previous.as_ref()) {
                return Err(Error::Remote {
                    host: host.name.clone(),
                    message: format!(
                        "another run recorded #{latest} while this one ran over #{read} \
                         (0: none); this run's record was not written: check \
                         `arpanet history`, then run again to deploy over #{latest}"
                    ),
                });
            }
            if previous.as_ref().is_some_and(|p| p.values == values) {
                return Ok(None);
            }
            let record = Record {
                number: previous.as_ref().map_or(1, |p| p.number + 1),
                time: now(),
                who: who(),
                command: run.command,
                playbooks: run.playbooks,
                rollback_of: run.rollback_of,
                changes: changes(previous.as_ref().map(|p| &p.values), &values),
                values,
                raw,
            };
            write(&host.name, conn.as_ref(), &place, &record, index).await?;
            Ok(Some(record))
        }
        .await;
        conn.close().await;
        result
    })
}

/// The record read before the run and the one the cluster holds now, when
/// they differ: another run recorded while this one ran. (0: none; before
/// a cluster answered there was nothing to read, so nothing to differ.)
fn recorded_meanwhile(before: &Deployed, now: Option<&Record>) -> Option<(u64, u64)> {
    let read = before.current.as_ref().map_or(0, |r| r.number);
    let latest = now.map_or(0, |r| r.number);
    (before.cluster && read != latest).then_some((read, latest))
}

/// The recorded variables for `host`: rendered as a play sees them, and
/// raw as their layer wrote them.
fn deployed_values(session: &Session, host: &str, names: &[String]) -> (Vars, Vars) {
    let mut engine = Engine::new();
    let origin = crate::error::Location::new("<deployed_vars>", 0, 0);
    let resolved = session.scope.play(
        &mut engine,
        &Vars::new(),
        &crate::scope::RoleLayers::default(),
        &origin,
    );
    let rendered = resolved
        .get(host)
        .map(crate::scope::Resolved::vars)
        .unwrap_or_default();
    let layered = session.scope.host_raw(host);
    let mut values = Vars::new();
    let mut raw = Vars::new();
    for name in names {
        if let Some(v) = layered.get(name) {
            raw.insert(name.clone(), v.clone());
            let shown = rendered.get(name).unwrap_or(v);
            values.insert(name.clone(), shown.clone());
        }
    }
    (values, raw)
}

async fn write(
    host: &str,
    conn: &dyn Transport,
    place: &Place,
    record: &Record,
    index: u64,
) -> Result<()> {
    let body = serde_json::to_vec(record).map_err(|e| Error::Internal(e.to_string()))?;
    let call = |method: &'static str, path: String, body: Option<Vec<u8>>| async move {
        let r = consul_api::request(
            host,
            conn,
            place.port,
            method,
            &path,
            body.as_deref(),
            place.token().as_deref(),
        )
        .await?;
        if r.status != 200 {
            return Err(Error::Remote {
                host: host.to_owned(),
                message: format!("recording what is deployed: {}", place.answer_error(&r)),
            });
        }
        Ok(r)
    };
    // Check-and-set: only over the record just read.
    let current = consul_api::kv_path(&place.prefix, &place.key("current"), false, "");
    let r = call("PUT", format!("{current}?cas={index}"), Some(body.clone())).await?;
    if r.text().trim() != "true" {
        return Err(Error::Remote {
            host: host.to_owned(),
            message: "the deployed record changed in the cluster during this run (another run?); this run's record was not written".into(),
        });
    }
    let key = place.key(&format!("history/{:06}", record.number));
    call(
        "PUT",
        consul_api::kv_path(&place.prefix, &key, false, ""),
        Some(body),
    )
    .await?;
    // Keep the newest `depth` records.
    let listing = consul_api::kv_path(&place.prefix, &place.key("history"), false, "keys");
    let keys: Vec<String> =
        serde_json::from_slice(&call("GET", listing, None).await?.body).unwrap_or_default();
    for old in prune(&keys, record.number, place.depth) {
        let path = format!("/v1/kv/{}", old.trim_start_matches('/'));
        call("DELETE", path, None).await?;
    }
    Ok(())
}

/// The history keys to delete so that `depth` records up to `newest` stay.
fn prune(keys: &[String], newest: u64, depth: u64) -> Vec<String> {
    keys.iter()
        .filter(|k| {
            k.rsplit('/')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n + depth <= newest)
        })
        .cloned()
        .collect()
}

/// What changed from `old` to `new`, one line each, env values never shown.
pub(crate) fn changes(old: Option<&Vars>, new: &Vars) -> Vec<String> {
    let Some(old) = old else {
        return vec!["first record".to_owned()];
    };
    let mut out = Vec::new();
    let names = new
        .keys()
        .chain(old.keys().filter(|k| !new.contains_key(*k)));
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            continue;
        }
        let (a, b) = (old.get(name), new.get(name));
        if a == b {
            continue;
        }
        match (a, b) {
            (Some(Value::Array(a)), Some(Value::Array(b))) if is_services(a) && is_services(b) => {
                out.extend(service_changes(name, a, b));
            }
            _ => out.push(format!("{name}: {} → {}", shown(a), shown(b))),
        }
    }
    out
}

fn is_services(list: &[Value]) -> bool {
    list.iter().all(|v| v.get("name").is_some())
}

/// Per service of a `stack`-like list: added, removed, or each field that
/// changed (env by key name only).
fn service_changes(list: &str, old: &[Value], new: &[Value]) -> Vec<String> {
    let name = |v: &Value| match v.get("name") {
        Some(Value::String(s)) => s.clone(),
        other => other.map(Value::to_string).unwrap_or_default(),
    };
    let find = |in_: &[Value], n: &str| in_.iter().find(|v| name(v) == n).cloned();
    let mut out = Vec::new();
    for b in new {
        let n = name(b);
        let Some(a) = find(old, &n) else {
            out.push(format!("{list}: `{n}` added"));
            continue;
        };
        let fields = b
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .chain(a.as_object().into_iter().flat_map(|o| o.keys()));
        let mut done = std::collections::BTreeSet::new();
        for field in fields {
            if !done.insert(field.clone()) || a.get(field) == b.get(field) {
                continue;
            }
            if field == "env" {
                out.push(format!(
                    "{list}: `{n}` env changed ({})",
                    env_diff(a.get(field), b.get(field))
                ));
            } else {
                out.push(format!(
                    "{list}: `{n}` {field}: {} → {}",
                    shown(a.get(field)),
                    shown(b.get(field))
                ));
            }
        }
    }
    for a in old {
        let n = name(a);
        if find(new, &n).is_none() {
            out.push(format!("{list}: `{n}` removed"));
        }
    }
    out
}

/// Env keys added, removed and with new values: names only.
fn env_diff(old: Option<&Value>, new: Option<&Value>) -> String {
    let map = |v: Option<&Value>| -> Vec<(String, Value)> {
        match v {
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Value::from(v)),
                    None => (s.to_owned(), Value::Null),
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let (a, b) = (map(old), map(new));
    let get =
        |m: &[(String, Value)], k: &str| m.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut parts = Vec::new();
    for (k, v) in &b {
        match get(&a, k) {
            None => parts.push(format!("+{k}")),
            Some(old) if &old != v => parts.push(format!("~{k}")),
            _ => {}
        }
    }
    for (k, _) in &a {
        if get(&b, k).is_none() {
            parts.push(format!("-{k}"));
        }
    }
    if parts.is_empty() {
        "values hidden".to_owned()
    } else {
        parts.join(" ")
    }
}

/// A value in one line: strings bare in backticks, the rest as JSON.
fn shown(value: Option<&Value>) -> String {
    match value {
        None => "(unset)".to_owned(),
        Some(Value::String(s)) => format!("`{s}`"),
        Some(v) => format!("`{v}`"),
    }
}

/// Hide the env values of every service in `value` (a `stack`-like list).
fn mask(value: &mut Value) {
    let Value::Array(items) = value else {
        return;
    };
    for item in items {
        let Some(env) = item.get_mut("env") else {
            continue;
        };
        match env {
            Value::Object(map) => map.values_mut().for_each(|v| *v = HIDDEN.into()),
            Value::Array(list) => {
                for entry in list {
                    if let Some(s) = entry.as_str() {
                        let key = s.split_once('=').map_or(s, |(k, _)| k);
                        *entry = format!("{key}={HIDDEN}").into();
                    }
                }
            }
            other => *other = HIDDEN.into(),
        }
    }
}

/// The command line as recorded: each extra var's value masked
/// (`-e db_password=***`), a vars file named as given.
pub(crate) fn command_line(args: impl IntoIterator<Item = String>) -> String {
    let mut out = Vec::new();
    let mut next_is_extra = false;
    for arg in args {
        if next_is_extra {
            out.push(mask_extra(&arg));
            next_is_extra = false;
        } else if arg == "-e" || arg == "--extra-vars" {
            out.push(arg);
            next_is_extra = true;
        } else if let Some(v) = arg.strip_prefix("--extra-vars=") {
            out.push(format!("--extra-vars={}", mask_extra(v)));
        } else if let Some(v) = arg.strip_prefix("-e").filter(|v| !v.is_empty()) {
            out.push(format!("-e{}", mask_extra(v)));
        } else {
            out.push(arg);
        }
    }
    let name = |a: &String| {
        std::path::Path::new(a)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| a.clone())
    };
    if let Some(first) = out.first_mut() {
        *first = name(first);
    }
    out.iter()
        .map(|a| crate::transport::quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask_extra(arg: &str) -> String {
    if arg.starts_with('@') {
        return arg.to_owned();
    }
    match crate::vars::parse_extra(arg) {
        Ok(vars) => {
            // Old upper-case names come with a lower-case alias: show one.
            let aliases: Vec<String> = vars
                .keys()
                .filter(|k| k.bytes().any(|b| b.is_ascii_uppercase()))
                .map(|k| k.to_ascii_lowercase())
                .collect();
            vars.keys()
                .filter(|k| !aliases.contains(k))
                .map(|k| format!("{k}={HIDDEN}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
        Err(_) => HIDDEN.to_owned(),
    }
}

/// Now, UTC, to the second.
fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `user@machine` of this run.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{}", rustix::process::getuid().as_raw()));
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{user}@{machine}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn changes_name_each_value_and_stack_field_without_env_values() {
        let old = obj(json!({
            "consul_image": "reg/consul:1.8",
            "stack": [
                {"name": "cadvisor", "image": "reg/cadvisor:a", "env": {"DB_PASSWORD": "old-secret"}},
                {"name": "gone", "image": "x"}
            ]
        }));
        let new = obj(json!({
            "consul_image": "reg/consul:1.9",
            "consul_args": "-log-level=debug",
            "stack": [
                {"name": "cadvisor", "image": "reg/cadvisor:b", "env": {"DB_PASSWORD": "new-secret", "TOKEN": "t0k"}},
                {"name": "app", "image": "reg/app:1"}
            ]
        }));
        let got = changes(Some(&old), &new);
        assert_eq!(
            got,
            vec![
                "consul_image: `reg/consul:1.8` → `reg/consul:1.9`",
                "consul_args: (unset) → `-log-level=debug`",
                "stack: `cadvisor` image: `reg/cadvisor:a` → `reg/cadvisor:b`",
                "stack: `cadvisor` env changed (~DB_PASSWORD +TOKEN)",
                "stack: `app` added",
                "stack: `gone` removed",
            ]
        );
        let all = got.join("\n");
        for secret in ["old-secret", "new-secret", "t0k"] {
            assert!(!all.contains(secret), "{all}");
        }
        assert!(changes(Some(&new), &new).is_empty());
        assert_eq!(changes(None, &new), vec!["first record"]);
    }

    #[test]
    fn a_masked_record_shows_env_keys_and_no_values() {
        let values = obj(json!({
            "stack": [
                {"name": "a", "env": {"DB_PASSWORD": "s3cret"}},
                {"name": "b", "env": ["TOKEN=t0k3n", "PLAIN"]},
                {"name": "c", "env": "{{ app_env }}"}
            ],
            "consul_image": "img"
        }));
        let record = Record {
            number: 1,
            time: now(),
            who: who(),
            command: "arpanet run stack".into(),
            playbooks: vec!["stack".into()],
            rollback_of: None,
            changes: vec![],
            values: values.clone(),
            raw: values,
        };
        let shown = serde_json::to_string(&record.masked()).unwrap();
        for secret in ["s3cret", "t0k3n", "app_env"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // `kv get` of a record shows it so; other keys as they are.
        let stored = serde_json::to_string(&record).unwrap();
        assert_eq!(kv_shown("deployed/current", &stored), shown);
        assert_eq!(kv_shown("/deployed/history/000001", &stored), shown);
        assert_eq!(kv_shown("env/web/DB_PASSWORD", "s3cret"), "s3cret");
        let other = r#"{"v": 9, "values": {"stack": [{"name": "a", "env": {"K": "s3cret"}}]}}"#;
        let foreign = kv_shown("deployed/current", other);
        assert!(
            !foreign.contains("s3cret") && foreign.contains(r#""K":"***""#),
            "{foreign}"
        );
        assert!(shown.contains(r#""DB_PASSWORD":"***""#), "{shown}");
        assert!(
            shown.contains("TOKEN=***") && shown.contains("PLAIN=***"),
            "{shown}"
        );
        assert!(shown.contains(r#""consul_image":"img""#), "{shown}");
    }

    #[test]
    fn the_command_line_keeps_names_and_masks_extra_var_values() {
        let args = [
            "/usr/local/bin/arpanet",
            "run",
            "-i",
            "hosts",
            "upgrade",
            "-e",
            "consul_image=reg/consul:2 db_password=hunter2",
            "--extra-vars={\"token\": \"abc\"}",
            "-eAPI_KEY=k3y",
            "-e",
            "@vars.yml",
        ]
        .map(String::from);
        let line = command_line(args);
        for secret in ["hunter2", "abc", "k3y", "reg/consul:2"] {
            assert!(!line.contains(secret), "{line}");
        }
        assert!(
            line.starts_with("arpanet run -i hosts upgrade -e "),
            "{line}"
        );
        assert!(
            line.contains("consul_image=***") && line.contains("db_password=***"),
            "{line}"
        );
        assert!(
            line.contains("token=***") && line.contains("API_KEY=***"),
            "{line}"
        );
        assert!(line.ends_with("-e @vars.yml"), "{line}");
    }

    #[test]
    fn pruning_keeps_the_newest_depth_records() {
        let keys: Vec<String> = (1..=5)
            .map(|n| format!("arpanet/deployed/history/{n:06}"))
            .collect();
        assert_eq!(
            prune(&keys, 5, 3),
            vec![
                "arpanet/deployed/history/000001",
                "arpanet/deployed/history/000002"
            ]
        );
        assert!(prune(&keys, 5, 20).is_empty());
    }

    fn record(number: u64) -> Record {
        Record {
            number,
            time: String::new(),
            who: String::new(),
            command: String::new(),
            playbooks: vec![],
            rollback_of: None,
            changes: vec![],
            values: Vars::new(),
            raw: obj(json!({"consul_image": format!("img:{number}")})),
        }
    }

    #[test]
    fn rollback_goes_to_the_record_before_the_current_one_or_the_one_named() {
        let deployed = Deployed {
            cluster: true,
            overridden: vec![],
            current: Some(record(7)),
            history: vec![record(4), record(6), record(7)],
            enabled: true,
        };
        assert_eq!(deployed.rollback_target(None).unwrap().number, 6);
        assert_eq!(deployed.rollback_target(Some(4)).unwrap().number, 4);
        assert!(deployed.rollback_target(Some(7)).is_err());
        let err = deployed.rollback_target(Some(5)).unwrap_err().to_string();
        assert!(err.contains("no record #5"), "{err}");
        assert_eq!(deployed.layer()["consul_image"], json!("img:7"));
        let first = Deployed {
            current: Some(record(1)),
            history: vec![record(1)],
            ..deployed
        };
        assert!(first.rollback_target(None).is_err());
        assert!(Deployed::default().rollback_target(None).is_err());
    }

    #[test]
    fn a_record_made_by_another_run_during_this_one_is_noticed() {
        let read = |current: Option<Record>, cluster: bool| Deployed {
            cluster,
            current,
            enabled: true,
            ..Deployed::default()
        };
        let seven = record(7);
        let eight = record(8);
        assert_eq!(
            recorded_meanwhile(&read(Some(seven.clone()), true), Some(&seven)),
            None
        );
        assert_eq!(
            recorded_meanwhile(&read(Some(seven.clone()), true), Some(&eight)),
            Some((7, 8))
        );
        // A first record written by another run.
        assert_eq!(
            recorded_meanwhile(&read(None, true), Some(&seven)),
            Some((0, 7))
        );
        // Nothing answered before this run (a first bootstrap, a cluster
        // restarted after `stop`): whatever is there now is not a race.
        assert_eq!(recorded_meanwhile(&read(None, false), Some(&seven)), None);
        assert_eq!(recorded_meanwhile(&read(None, true), None), None);
    }
}
