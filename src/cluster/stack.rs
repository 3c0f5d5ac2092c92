//! The `stack` variable, typed: each entry a container, and what linking
//! adds to it: `service:` (announced in the node's Consul agent), and
//! `publish_env:` (named env keys written to Consul KV).
//!
//! The `docker_container` loop of `stack-services.yml` reads the container's
//! keys itself; this module reads the whole entry once per host before any
//! host is contacted (`run` calls [`check`]) so that a typo in `service`, a
//! check without a target or a port the container does not publish is a
//! clear error up front, and again in the `consul_services` task, which
//! turns the entries into agent registrations ([`Registration`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Keys a stack entry may have: the container's (read by
/// `stack-services.yml`) and linking's.
const ENTRY_KEYS: &[&str] = &[
    "name",
    "image",
    "command",
    "entrypoint",
    "network_mode",
    "ports",
    "volumes",
    "env",
    "privileged",
    "restart",
    "healthcheck",
    "service",
    "upstreams",
    "publish_env",
];
const SERVICE_KEYS: &[&str] = &["name", "port", "tags", "meta", "check"];
const CHECK_KEYS: &[&str] = &[
    "http",
    "tcp",
    "ttl",
    "interval",
    "timeout",
    "deregister_critical_after",
];
const UPSTREAM_KEYS: &[&str] = &["service", "port"];

/// Meta keys arpanet sets on the services it registers.
pub(crate) const META_OWNER: &str = "arpanet";
pub(crate) const META_CONTAINER: &str = "arpanet_container";
pub(crate) const META_SPEC: &str = "arpanet_spec";
pub(crate) const META_ENV: &str = "arpanet_env";

/// One `stack` entry, as far as linking cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub name: String,
    pub host_network: bool,
    /// `container port → (host address, host port)` of its `ports`.
    pub published: BTreeMap<u16, (String, Option<u16>)>,
    pub env: BTreeMap<String, String>,
    pub service: Option<Service>,
    pub upstreams: Vec<Upstream>,
    pub publish_env: Vec<String>,
}

/// `service:` of an entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Service {
    pub name: String,
    /// Container ports to announce; one service instance each.
    pub ports: Vec<u16>,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub check: Option<Check>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// An HTTP path, asked of the published port.
    Http(String),
    Tcp,
    /// The service itself reports within this time.
    Ttl(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Check {
    pub target: Target,
    pub interval: String,
    pub timeout: String,
    pub deregister_critical_after: Option<String>,
}

/// `upstreams:` item: `127.0.0.1:port` in the container reaches `service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Upstream {
    pub service: String,
    pub port: u16,
}

/// What is wrong with an entry: where in it, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
        hint: None,
    }
}

impl Problem {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

fn object<'a>(
    value: &'a Value,
    path: &str,
    keys: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, Problem> {
    let map = value
        .as_object()
        .ok_or_else(|| problem(path, format!("must be a mapping, got `{value}`")))?;
    for key in map.keys() {
        if !keys.contains(&key.as_str()) {
            let mut p = problem(
                format!("{path}.{key}"),
                format!("unknown key `{key}`; expected one of {}", list(keys)),
            );
            if let Some(near) = crate::suggest::closest(key, keys.iter().copied()) {
                p = p.hint(format!("did you mean `{near}`?"));
            }
            return Err(p);
        }
    }
    Ok(map)
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string or a number, as text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text(value: &Value, path: &str) -> Result<String, Problem> {
    scalar(value).ok_or_else(|| problem(path, format!("must be text, got `{value}`")))
}

fn port(value: &Value, path: &str) -> Result<u16, Problem> {
    scalar(value)
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| problem(path, format!("must be a port number, got `{value}`")))
}

fn texts(value: &Value, path: &str) -> Result<Vec<String>, Problem> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| text(v, &format!("{path}[{i}]")))
            .collect(),
        other => Err(problem(path, format!("must be a list, got `{other}`"))),
    }
}

/// `[ip:][host:]container[/proto]` → container port, host address, host port.
pub(crate) fn parse_publish(spec: &str) -> Option<(u16, String, Option<u16>)> {
    let spec = spec.trim();
    let (spec, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    if proto != "tcp" {
        return None;
    }
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let container = parts.first()?.parse().ok()?;
    let host_port = match parts.get(1) {
        Some(p) if !p.is_empty() => Some(p.parse().ok()?),
        _ => None,
    };
    let address = parts.get(2).map(|a| a.to_string()).unwrap_or_default();
    Some((container, address, host_port))
}

fn is_loopback(address: &str) -> bool {
    address.starts_with("127.") || address == "localhost" || address == "::1"
}

/// Every service name a stack declares, for checking upstreams.
pub(crate) fn declared_names(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e.service.as_ref())
        .flat_map(Service::names)
        .collect()
}

impl Service {
    /// The service name of each announced port: `NAME`, or `NAME-PORT`
    /// when there are several (registrator's convention).
    pub(crate) fn names(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| self.name_for(*p))
            .collect::<Vec<_>>()
    }

    fn name_for(&self, port: u16) -> String {
        if self.ports.len() > 1 {
            format!("{}-{port}", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// Read the rendered `stack` variable.
pub(crate) fn parse(stack: &Value) -> Result<Vec<Entry>, Problem> {
    let items = match stack {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(problem("stack", format!("must be a list, got `{other}`"))),
    };
    let entries = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_entry(item, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    for e in &entries {
        if e.name == "docker" {
            return Err(problem(
                "stack entry `docker`",
                "`docker` names the Docker daemon (`arpanet restart docker`); give the entry \
                 another name",
            ));
        }
        if !seen.insert(e.name.as_str()) {
            return Err(problem(
                format!("stack entry `{}`", e.name),
                "two entries have this name; each is one container",
            ));
        }
    }
    Ok(entries)
}

fn parse_entry(item: &Value, index: usize) -> Result<Entry, Problem> {
    let at = format!("stack[{index}]");
    let map = object(item, &at, ENTRY_KEYS)?;
    let name = match map.get("name") {
        Some(v) => text(v, &format!("{at}.name"))?,
        None => return Err(problem(at, "has no `name`")),
    };
    let at = format!("stack entry `{name}`");
    let host_network = map
        .get("network_mode")
        .and_then(scalar)
        .is_some_and(|m| m == "host");
    let mut published = BTreeMap::new();
    for spec in texts(
        map.get("ports").unwrap_or(&Value::Null),
        &format!("{at}: ports"),
    )? {
        if let Some((container, address, host)) = parse_publish(&spec) {
            published.insert(container, (address, host));
        }
    }
    let env = match map.get("env") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(env)) => env
            .iter()
            .map(|(k, v)| (k.clone(), scalar(v).unwrap_or_else(|| v.to_string())))
            .collect(),
        Some(other) => {
            return Err(problem(
                format!("{at}: env"),
                format!("must be a mapping, got `{other}`"),
            ))
        }
    };
    let mut entry = Entry {
        name: name.clone(),
        host_network,
        published,
        env,
        service: None,
        upstreams: Vec::new(),
        publish_env: Vec::new(),
    };
    if let Some(service) = map.get("service").filter(|v| !v.is_null()) {
        entry.service = Some(parse_service(service, &entry, &at)?);
    }
    if let Some(upstreams) = map.get("upstreams").filter(|v| !v.is_null()) {
        entry.upstreams = parse_upstreams(upstreams, &at)?;
    }
    if let Some(keys) = map.get("publish_env") {
        entry.publish_env = texts(keys, &format!("{at}: publish_env"))?;
        for key in &entry.publish_env {
            if !entry.env.contains_key(key) {
                return Err(problem(
                    format!("{at}: publish_env"),
                    format!("`{key}` is not in the entry's `env`"),
                )
                .hint("publish_env names keys of `env` to write to Consul KV"));
            }
        }
        if entry.service.is_none() && !entry.publish_env.is_empty() {
            return Err(problem(
                format!("{at}: publish_env"),
                "needs a `service:` (the keys go under env/SERVICE/NODE/)",
            ));
        }
    }
    Ok(entry)
}

fn parse_service(value: &Value, entry: &Entry, at: &str) -> Result<Service, Problem> {
    let path = format!("{at}: service");
    let map = object(value, &path, SERVICE_KEYS)?;
    let name = match map.get("name") {
        Some(v) => text(v, &format!("{path}.name"))?,
        None => entry.name.clone(),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(problem(
            format!("{path}.name"),
            format!("`{name}` cannot be a DNS name: use letters, digits and `-`"),
        ));
    }
    let ports = match map.get("port") {
        None | Some(Value::Null) => {
            if entry.host_network {
                return Err(problem(
                    format!("{path}.port"),
                    "is needed with `network_mode: host` (nothing is published)",
                ));
            }
            match entry.published.keys().copied().collect::<Vec<_>>()[..] {
                [one] => vec![one],
                [] => {
                    return Err(problem(path, "the container publishes no port to announce")
                        .hint("publish one in `ports`, e.g. `ports: [\"8081:8080\"]`"))
                }
                _ => {
                    return Err(problem(
                        format!("{path}.port"),
                        "the container publishes several ports: say which to announce",
                    ))
                }
            }
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| port(v, &format!("{path}.port[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(v) => vec![port(v, &format!("{path}.port"))?],
    };
    for p in &ports {
        if entry.host_network {
            continue;
        }
        match entry.published.get(p) {
            None => {
                let published: Vec<String> =
                    entry.published.keys().map(|p| p.to_string()).collect();
                return Err(problem(
                    format!("{path}.port"),
                    format!(
                        "the container does not publish port {p} (it publishes {})",
                        if published.is_empty() {
                            "none".to_owned()
                        } else {
                            published.join(", ")
                        }
                    ),
                )
                .hint(format!("add `\"HOSTPORT:{p}\"` to the entry's `ports`")));
            }
            Some((_, None)) => {
                return Err(problem(
                    format!("{path}.port"),
                    format!("port {p} is published on a random host port"),
                )
                .hint(format!("give it a fixed one: `\"HOSTPORT:{p}\"`")));
            }
            Some((address, _)) if is_loopback(address) => {
                return Err(problem(
                    format!("{path}.port"),
                    format!(
                        "port {p} is published on `{address}` only: no other node can reach it"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let tags = texts(
        map.get("tags").unwrap_or(&Value::Null),
        &format!("{path}.tags"),
    )?;
    let meta = match map.get("meta") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), text(v, &format!("{path}.meta.{k}"))?)))
            .collect::<Result<_, Problem>>()?,
        Some(other) => {
            return Err(problem(
                format!("{path}.meta"),
                format!("must be a mapping, got `{other}`"),
            ))
        }
    };
    for key in meta.keys() {
        let ok = !key.is_empty()
            && key.len() <= 128
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !key.starts_with("arpanet")
            && !key.starts_with("consul-");
        if !ok {
            return Err(problem(
                format!("{path}.meta.{key}"),
                "Consul meta keys are letters, digits, `-` and `_`, and not `arpanet*` or `consul-*`",
            ));
        }
    }
    let check = match map.get("check") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_check(v, &format!("{path}.check"))?),
    };
    Ok(Service {
        name,
        ports,
        tags,
        meta,
        check,
    })
}

fn duration(
    value: Option<&Value>,
    path: &str,
    default: Option<&str>,
) -> Result<Option<String>, Problem> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(default.map(str::to_owned));
    };
    let raw = text(value, path)?;
    // A bare number is seconds; else Go's duration form (`10s`, `1m30s`).
    if raw.parse::<u64>().is_ok() {
        return Ok(Some(format!("{raw}s")));
    }
    let valid = !raw.is_empty()
        && raw.chars().next().is_some_and(|c| c.is_ascii_digit())
        && raw
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
            .len()
            < raw.len()
        && raw
            .split(|c: char| c.is_ascii_digit() || c == '.')
            .filter(|u| !u.is_empty())
            .all(|u| ["ns", "us", "ms", "s", "m", "h"].contains(&u));
    if !valid {
        return Err(problem(path, format!("`{raw}` is not a duration"))
            .hint("write it as `10s`, `1m` or `1m30s`"));
    }
    Ok(Some(raw))
}

fn parse_check(value: &Value, path: &str) -> Result<Check, Problem> {
    let map = object(value, path, CHECK_KEYS)?;
    let given = |k: &str| {
        map.get(k)
            .filter(|v| !v.is_null() && **v != Value::Bool(false))
    };
    let mut targets = Vec::new();
    if let Some(http) = given("http") {
        let p = text(http, &format!("{path}.http"))?;
        if !p.starts_with('/') {
            return Err(problem(
                format!("{path}.http"),
                format!("`{p}` is not a path: the check asks the published port for it"),
            )
            .hint("write the path only, e.g. `http: /health`"));
        }
        targets.push(Target::Http(p));
    }
    if let Some(tcp) = given("tcp") {
        if *tcp != Value::Bool(true) {
            return Err(problem(
                format!("{path}.tcp"),
                "is `true` (the published port is tried)",
            ));
        }
        targets.push(Target::Tcp);
    }
    if given("ttl").is_some() {
        let ttl = duration(map.get("ttl"), &format!("{path}.ttl"), None)?.unwrap_or_default();
        targets.push(Target::Ttl(ttl));
    }
    let target = match targets.len() {
        1 => targets.remove(0),
        0 => {
            return Err(
                problem(path, "has no target: give one of `http`, `tcp` or `ttl`")
                    .hint("e.g. `check: { http: /health, interval: 5s }`"),
            )
        }
        _ => {
            return Err(problem(path, "give only one of `http`, `tcp` and `ttl`"));
        }
    };
    Ok(Check {
        target,
        interval: duration(
            map.get("interval"),
            &format!("{path}.interval"),
            Some("10s"),
        )?
        .unwrap_or_default(),
        timeout: duration(map.get("timeout"), &format!("{path}.timeout"), Some("5s"))?
            .unwrap_or_default(),
        deregister_critical_after: duration(
            map.get("deregister_critical_after"),
            &format!("{path}.deregister_critical_after"),
            None,
        )?,
    })
}

fn parse_upstreams(value: &Value, at: &str) -> Result<Vec<Upstream>, Problem> {
    let path = format!("{at}: upstreams");
    let Value::Array(items) = value else {
        return Err(problem(path, format!("must be a list, got `{value}`")));
    };
    let mut out: Vec<Upstream> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let map = object(item, &here, UPSTREAM_KEYS)?;
        let service = match map.get("service") {
            Some(v) => text(v, &format!("{here}.service"))?,
            None => return Err(problem(here, "has no `service`")),
        };
        let port = match map.get("port") {
            Some(v) => port(v, &format!("{here}.port"))?,
            None => return Err(problem(here, "has no `port` (the local port to listen on)")),
        };
        if out.iter().any(|u| u.port == port) {
            return Err(problem(
                format!("{here}.port"),
                format!("port {port} is used by another upstream"),
            ));
        }
        out.push(Upstream { service, port });
    }
    Ok(out)
}

/// `p` as an error at its place in `file`, the vars file that sets
/// `stack`: the deepest part of its path found there (an unknown key's own
/// line). `None` when the file no longer reads or has no `stack`.
fn locate(file: &std::path::Path, p: &Problem) -> Option<crate::error::Error> {
    let text = std::fs::read_to_string(file).ok()?;
    let root = crate::yaml::parse(&text).ok()??;
    let (_, stack) = root
        .entries()?
        .iter()
        .find(|(k, _)| k.text() == Some("stack"))?;
    let mut at = stack;
    let mut rest = p.path.strip_prefix("stack")?;
    // The entry: `[INDEX]`, or ` entry `NAME``.
    if let Some(after) = rest.strip_prefix(" entry `") {
        let (name, after) = after.split_once('`')?;
        at = stack.items()?.iter().find(|item| {
            item.entries().is_some_and(|e| {
                e.iter()
                    .any(|(k, v)| k.text() == Some("name") && v.text() == Some(name))
            })
        })?;
        rest = after;
    }
    let rest = rest.trim_start_matches(':').trim_start();
    let mut pos = at.pos;
    for step in rest.split(['.', '[']).filter(|s| !s.is_empty()) {
        let next = match step.strip_suffix(']').map(str::parse::<usize>) {
            Some(Ok(i)) => at
                .items()
                .and_then(|items| items.get(i))
                .map(|n| (n.pos, n)),
            _ => at
                .entries()
                .and_then(|e| e.iter().find(|(k, _)| k.text() == Some(step)))
                .map(|(k, v)| (k.pos, v)),
        };
        let Some((found, node)) = next else { break };
        pos = found;
        at = node;
    }
    let kind = crate::error::InputKind::Invalid {
        field: None,
        message: format!("bad `stack`: {}: {}", p.path, p.message),
        hint: p.hint.clone(),
    };
    Some(crate::yaml::input_error(file, &text, pos, kind))
}

/// Read every host's `stack` before anything connects: the first bad
/// entry is an error (exit 5); upstreams that name a service no entry
/// declares are returned as warnings (it may be registered otherwise).
pub(crate) fn check(session: &crate::session::Session) -> crate::error::Result<Vec<String>> {
    let mut declared = std::collections::BTreeSet::new();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for host in session.hosts("all")? {
        let Some(value) = host.vars.get("stack") else {
            continue;
        };
        let entries = parse(value).map_err(|p| {
            if let Some(err) = session
                .scope
                .var_file(&host.name, "stack")
                .and_then(|file| locate(&file, &p))
            {
                return err;
            }
            let err = crate::error::Error::usage(format!(
                "bad `stack` (host `{}`): {}: {}",
                host.name, p.path, p.message
            ));
            match p.hint {
                Some(hint) => err.with_hint(hint),
                None => err,
            }
        })?;
        declared.extend(declared_names(&entries));
        for e in &entries {
            for u in &e.upstreams {
                wanted.push((e.name.clone(), u.service.clone()));
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    let mut warnings = retired(session)?;
    warnings.extend(
        wanted
            .into_iter()
            .filter(|(_, service)| !declared.contains(service))
            .map(|(entry, service)| {
                format!(
                    "stack entry `{entry}`: upstream `{service}` is declared by no stack entry; \
                 it is reached only if something else registers it"
                )
            }),
    );
    Ok(warnings)
}

/// The 2014 tool's linking containers, and what does their job now.
const RETIRED: &[(&str, &str)] = &[
    (
        "registrator_image",
        "the linking watcher that does registrator's job is a shell script run \
         by systemd and needs no image (`registrator_name` names its unit)",
    ),
    (
        "ambassadord_image",
        "ambassadord's job is Consul DNS (`NAME.service.consul`) and a stack \
         entry's `upstreams:`",
    ),
    (
        "ambassadord_name",
        "ambassadord's job is Consul DNS (`NAME.service.consul`) and a stack \
         entry's `upstreams:`",
    ),
    (
        "fleetstreet_image",
        "fleetstreet's job is a stack entry's `publish_env:` (or the \
         `arpanet.publish_env` label on a container)",
    ),
    (
        "fleetstreet_name",
        "fleetstreet's job is a stack entry's `publish_env:` (or the \
         `arpanet.publish_env` label on a container)",
    ),
];

/// A warning for each 2014 linking variable set for some host.
fn retired(session: &crate::session::Session) -> crate::error::Result<Vec<String>> {
    let hosts = session.hosts("all")?;
    Ok(RETIRED
        .iter()
        .filter(|(name, _)| hosts.iter().any(|h| h.vars.contains_key(*name)))
        .map(|(name, instead)| {
            format!(
                "`{}` (`{name}`) is ignored: {instead}",
                name.to_ascii_uppercase()
            )
        })
        .collect())
}

/// One service instance to register in the node's agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Registration {
    pub id: String,
    /// The agent API's JSON for it (`/v1/agent/service/register`).
    pub body: Value,
    /// The hash recorded in its meta: unchanged means nothing to do.
    pub spec: String,
}

impl Entry {
    /// The Connect identity of the entry's container: its service's name,
    /// else the entry's.
    pub(crate) fn identity(&self) -> &str {
        self.service
            .as_ref()
            .map_or(self.name.as_str(), |s| s.name.as_str())
    }

    /// The agent registrations of this entry's `service`, on a node whose
    /// cluster address is `address`.
    pub(crate) fn registrations(&self, address: &str) -> Vec<Registration> {
        let Some(service) = &self.service else {
            return Vec::new();
        };
        service
            .ports
            .iter()
            .map(|container_port| {
                let host_port = if self.host_network {
                    *container_port
                } else {
                    self.published
                        .get(container_port)
                        .and_then(|(_, p)| *p)
                        .unwrap_or(*container_port)
                };
                let id = if service.ports.len() > 1 {
                    format!("{}-{container_port}", self.name)
                } else {
                    self.name.clone()
                };
                let mut meta: BTreeMap<String, String> = service.meta.clone();
                meta.insert(META_OWNER.into(), "stack".into());
                meta.insert(META_CONTAINER.into(), self.name.clone());
                if !self.publish_env.is_empty() {
                    meta.insert(META_ENV.into(), self.publish_env.join(","));
                }
                let mut body = json!({
                    "ID": id,
                    "Name": service.name_for(*container_port),
                    "Tags": service.tags,
                    "Address": address,
                    "Port": host_port,
                    "Meta": meta,
                });
                if let Some(check) = &service.check {
                    let mut c = json!({
                        "Name": format!("{} {}", id, match &check.target {
                            Target::Http(_) => "http",
                            Target::Tcp => "tcp",
                            Target::Ttl(_) => "ttl",
                        }),
                    });
                    match &check.target {
                        Target::Http(path) => {
                            c["HTTP"] = json!(format!("http://{address}:{host_port}{path}"));
                            c["Interval"] = json!(check.interval);
                            c["Timeout"] = json!(check.timeout);
                        }
                        Target::Tcp => {
                            c["TCP"] = json!(format!("{address}:{host_port}"));
                            c["Interval"] = json!(check.interval);
                            c["Timeout"] = json!(check.timeout);
                        }
                        Target::Ttl(ttl) => c["TTL"] = json!(ttl),
                    }
                    if let Some(after) = &check.deregister_critical_after {
                        c["DeregisterCriticalServiceAfter"] = json!(after);
                    }
                    body["Check"] = c;
                }
                // Consul Connect: a sidecar registration whose proxy (run
                // by `consul_services`) takes mTLS connections on a port the
                // agent picks and hands them to the published port.
                body["Connect"] = json!({
                    "SidecarService": {
                        "Address": address,
                        "Proxy": {
                            "LocalServiceAddress": address,
                            "LocalServicePort": host_port,
                        },
                    },
                });
                if !self.upstreams.is_empty() {
                    body["Meta"][META_UPSTREAMS] = json!(self
                        .upstreams
                        .iter()
                        .map(|u| format!("{}:{}", u.service, u.port))
                        .collect::<Vec<_>>()
                        .join(","));
                }
                let spec = hex::encode(&Sha256::digest(body.to_string().as_bytes())[..8]);
                body["Meta"][META_SPEC] = json!(spec);
                Registration { id, body, spec }
            })
            .collect()
    }
}

/// Meta key listing a service's declared upstreams (`db:5432,...`).
pub(crate) const META_UPSTREAMS: &str = "arpanet_upstreams";

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: Value) -> Result<Entry, Problem> {
        parse(&json!([v])).map(|mut e| e.remove(0))
    }

    fn web() -> Value {
        json!({
            "name": "web",
            "image": "x/web:1",
            "ports": ["8081:8080"],
            "env": {"COLOR": "blue", "SECRET": "s3cret"},
            "service": {"tags": ["a"], "check": {"http": "/health", "interval": "5s"}},
            "publish_env": ["COLOR"],
        })
    }

    #[test]
    fn a_service_registers_the_published_port_on_the_node_address() {
        let e = entry(web()).unwrap();
        let regs = e.registrations("10.0.0.5");
        assert_eq!(regs.len(), 1);
        let body = &regs[0].body;
        assert_eq!(body["ID"], "web");
        assert_eq!(body["Name"], "web");
        assert_eq!(body["Port"], 8081);
        assert_eq!(body["Address"], "10.0.0.5");
        assert_eq!(body["Check"]["HTTP"], "http://10.0.0.5:8081/health");
        assert_eq!(body["Check"]["Interval"], "5s");
        assert_eq!(body["Meta"]["arpanet"], "stack");
        assert_eq!(body["Meta"]["arpanet_env"], "COLOR");
        // Env values never go into a registration.
        assert!(!body.to_string().contains("s3cret"));
        assert!(!body.to_string().contains("blue"));
    }

    #[test]
    fn the_spec_hash_follows_the_declaration() {
        let a = entry(web()).unwrap().registrations("10.0.0.5")[0]
            .spec
            .clone();
        let mut changed = web();
        changed["service"]["tags"] = json!(["b"]);
        let b = entry(changed).unwrap().registrations("10.0.0.5")[0]
            .spec
            .clone();
        assert_ne!(a, b);
        assert_eq!(a, entry(web()).unwrap().registrations("10.0.0.5")[0].spec);
    }

    #[test]
    fn several_ports_are_several_services_named_after_their_port() {
        let mut v = web();
        v["ports"] = json!(["8081:8080", "10.0.0.5:9091:9090"]);
        v["service"] = json!({"name": "api", "port": [8080, 9090]});
        let regs = entry(v).unwrap().registrations("10.0.0.5");
        let names: Vec<_> = regs.iter().map(|r| r.body["Name"].clone()).collect();
        assert_eq!(names, [json!("api-8080"), json!("api-9090")]);
        assert_eq!(regs[1].body["Port"], 9091);
    }

    #[test]
    fn an_entry_may_not_be_called_docker() {
        let mut v = web();
        v["name"] = json!("docker");
        let problem = parse(&json!([v])).unwrap_err();
        assert_eq!(problem.path, "stack entry `docker`");
        assert!(
            problem.message.contains("the Docker daemon"),
            "{}",
            problem.message
        );
        assert!(parse(&json!([web()])).is_ok());
    }

    fn problem_of(v: Value) -> Problem {
        entry(v).unwrap_err()
    }

    #[test]
    fn bad_declarations_say_where_and_what() {
        let mut v = web();
        v["service"]["check"]["intervall"] = json!("5s");
        let p = problem_of(v);
        assert_eq!(p.path, "stack entry `web`: service.check.intervall");
        assert_eq!(p.hint.as_deref(), Some("did you mean `interval`?"));

        let mut v = web();
        v["service"]["check"] = json!({"interval": "5s"});
        assert!(problem_of(v).message.contains("has no target"));

        let mut v = web();
        v["service"]["port"] = json!(9999);
        let p = problem_of(v);
        assert!(
            p.message
                .contains("does not publish port 9999 (it publishes 8080)"),
            "{p:?}"
        );

        let mut v = web();
        v["ports"] = json!(["127.0.0.1:8081:8080"]);
        assert!(problem_of(v).message.contains("no other node can reach it"));

        let mut v = web();
        v["ports"] = json!(["8080"]);
        assert!(problem_of(v).message.contains("random host port"));

        let mut v = web();
        v["upstreams"] = json!([{"service": "db", "port": 5432, "proto": "tcp"}]);
        assert_eq!(problem_of(v).path, "stack entry `web`: upstreams[0].proto");

        let mut v = web();
        v["publish_env"] = json!(["NOPE"]);
        assert!(problem_of(v)
            .message
            .contains("`NOPE` is not in the entry's `env`"));

        let mut v = web();
        v["servcie"] = json!({});
        let p = problem_of(v);
        assert_eq!(p.hint.as_deref(), Some("did you mean `service`?"));

        let mut v = web();
        v["service"]["check"]["interval"] = json!("often");
        assert!(problem_of(v).message.contains("not a duration"));
    }

    #[test]
    fn published_ports_parse_every_docker_form() {
        assert_eq!(parse_publish("8080"), Some((8080, String::new(), None)));
        assert_eq!(parse_publish("81:80"), Some((80, String::new(), Some(81))));
        assert_eq!(
            parse_publish("127.0.0.1:8080:8080"),
            Some((8080, "127.0.0.1".into(), Some(8080)))
        );
        assert_eq!(
            parse_publish("1.2.3.4::80"),
            Some((80, "1.2.3.4".into(), None))
        );
        assert_eq!(parse_publish("53:53/udp"), None);
    }

    #[test]
    fn the_default_stack_has_no_problem() {
        let e = entry(json!({"name": "cadvisor", "image": "c", "ports": ["127.0.0.1:8080:8080"], "volumes": ["/:/rootfs:ro"]})).unwrap();
        assert!(e.service.is_none());
        assert!(e.registrations("10.0.0.1").is_empty());
    }
}
