//! `~/.ssh/config` as OpenSSH reads it, for the settings arpanet honours,
//! so operators can point arpanet at hosts they already reach with `ssh`
//! and get the same host name, port, user, keys and known_hosts files.
//!
//! Honoured: `Host`, `Match` (`all`, `host`, `originalhost`, `user`,
//! `localuser`, `canonical`, negated with `!`), `Include` (relative to
//! `~/.ssh`, globs, 16 levels deep), `HostName`, `Port`, `User`,
//! `IdentityFile`, `HostKeyAlias`, `UserKnownHostsFile`, `IdentitiesOnly`,
//! `ConnectTimeout`, `ServerAliveInterval`, `ServerAliveCountMax`,
//! `ProxyJump` and `ProxyCommand` (whichever comes first, `none` included,
//! as OpenSSH; a `ProxyJump` ssh would refuse is refused here).
//! As in OpenSSH the first value obtained for a setting wins,
//! `IdentityFile`s accumulate, keywords are case-insensitive, `Key=value`
//! and quoted arguments work, `~` and the `%` tokens are expanded where ssh
//! expands them, and an `Include` in a block that does not apply is read
//! but never matches.
//!
//! Anything else is reported, never silently dropped: each option arpanet
//! does not honour, and `Match exec` (which arpanet never runs) or `Match
//! final`, is named once per run ([`HostConfig::ignored`]); a `Match` with
//! such a criterion does not apply. The parity test against `ssh -G` is in
//! `tests/ssh_config.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::jump::{self, ProxySpec};
use super::known_hosts::glob;
use crate::error::{Error, InputKind, Location, Result, SshConfigProblem as P};

/// How deep `Include`s nest, as OpenSSH's `READCONF_MAX_DEPTH`.
const MAX_DEPTH: usize = 16;

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    file: PathBuf,
    line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One line of a config file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Host(Vec<String>),
    Match(Vec<Criterion>, Place),
    /// The files an `Include` line names, each parsed.
    Include(Vec<Vec<Item>>),
    Set(Setting, Place),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Setting {
    HostName(String),
    Port(u16),
    User(String),
    IdentityFile(String),
    HostKeyAlias(String),
    UserKnownHostsFile(Vec<String>),
    IdentitiesOnly(bool),
    ConnectTimeout(Duration),
    ServerAliveInterval(Duration),
    ServerAliveCountMax(u32),
    /// `ProxyJump` (`none` as [`ProxySpec::Direct`]).
    ProxyJump(ProxySpec),
    /// `ProxyCommand` (`none` as [`ProxySpec::Direct`]).
    ProxyCommand(ProxySpec),
    /// An option arpanet does not honour, as written.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Criterion {
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    All,
    Canonical,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    /// `exec`, `final` and the criteria of newer OpenSSH: never evaluated,
    /// so the block never applies.
    Unsupported(String),
}

/// A parsed `ssh_config` file with its includes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    items: Vec<Item>,
}

/// Who asks: the name given to ssh and what the command line (here the
/// inventory and `-u`) already fixed, which `Match` sees and which wins
/// over the file.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The host as given (`ansible_host`, else the inventory name).
    pub host: &'a str,
    /// The user fixed before the file is read, as `ssh -l`.
    pub user: Option<&'a str>,
    /// The port fixed before the file is read, as `ssh -p`.
    pub port: Option<u16>,
    /// The user running arpanet (`%u`, `Match localuser`).
    pub local_user: &'a str,
    /// `~` and `%d`.
    pub home: Option<&'a Path>,
}

/// What the config says about one host: `None` (or empty) where it says
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// `HostName`, `%h` expanded.
    pub host_name: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// `IdentityFile`s as written (what `ssh -G` prints).
    pub identity_files_as_written: Vec<String>,
    /// `IdentityFile`s with `~` and tokens expanded.
    pub identity_files: Vec<PathBuf>,
    pub host_key_alias: Option<String>,
    /// `UserKnownHostsFile`, expanded (`none` dropped): the first is the
    /// file new keys go to.
    pub user_known_hosts_files: Option<Vec<PathBuf>>,
    pub identities_only: Option<bool>,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: Option<u32>,
    /// `ProxyJump` or `ProxyCommand` (its tokens not expanded).
    pub(crate) proxy: Option<ProxySpec>,
    /// What applied to this host but arpanet does not honour: a key (the
    /// option or criterion, lowercased, to warn once per run) and the
    /// warning.
    pub ignored: Vec<(String, String)>,
}

impl HostConfig {
    /// `ProxyJump` or `ProxyCommand` as `ssh -G` prints it (`proxyjump`
    /// with a numeric last hop in brackets, `proxycommand` as written);
    /// `None` when neither applies or it is `none`.
    pub fn proxy_as_ssh_g(&self) -> Option<(&'static str, String)> {
        match self.proxy.as_ref()? {
            ProxySpec::Direct => None,
            ProxySpec::Command(command) => Some(("proxycommand", command.clone())),
            ProxySpec::Jump(hops) => {
                let (last, before) = hops.split_last()?;
                let mut shown: Vec<String> = before.iter().map(ToString::to_string).collect();
                let numeric = last.host.contains(':')
                    || last.host.chars().all(|c| c.is_ascii_digit() || c == '.');
                let user = last
                    .user
                    .as_ref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default();
                let host = match numeric {
                    true => format!("[{}]", last.host),
                    false => last.host.clone(),
                };
                let port = last.port.map(|p| format!(":{p}")).unwrap_or_default();
                shown.push(format!("{user}{host}{port}"));
                Some(("proxyjump", shown.join(",")))
            }
        }
    }
}

impl SshConfig {
    /// Read `path` as the user's config; a missing file is an empty config.
    /// `home` anchors relative `Include`s (`~/.ssh/NAME`) and `~`.
    pub fn load(path: &Path, home: Option<&Path>) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text, home),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SshConfig::default()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    pub fn parse(path: &Path, text: &str, home: Option<&Path>) -> Result<Self> {
        Ok(SshConfig {
            items: parse_file(path, text, home, 0)?,
        })
    }

    /// The settings for `query.host`, first value winning, with tokens
    /// expanded as OpenSSH expands them.
    pub fn resolve(&self, query: &Query<'_>) -> Result<HostConfig> {
        let mut walk = Walk {
            query,
            out: HostConfig::default(),
            identity_places: Vec::new(),
            known_hosts_place: None,
            jump_none: false,
        };
        let mut active = true;
        walk.items(&self.items, &mut active, false);
        walk.finish()
    }

    /// [`SshConfig::resolve`] for a host name alone.
    pub fn host(&self, host: &str, home: Option<&Path>) -> Result<HostConfig> {
        self.resolve(&Query {
            host,
            user: None,
            port: None,
            local_user: &local_user(),
            home,
        })
    }
}

/// The user running arpanet: `$USER`, `$LOGNAME`, else the password file's
/// name for this uid. Looked up once per run (every host's SSH
/// configuration asks).
pub fn local_user() -> String {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .or_else(|| {
                let uid = rustix::process::getuid().as_raw().to_string();
                std::fs::read_to_string("/etc/passwd")
                    .ok()?
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() > 2 && f[2] == uid).then(|| f[0].to_owned())
                    })
            })
            .unwrap_or_else(|| "root".to_owned())
    })
    .clone()
}

/// Evaluation of the items for one query.
struct Walk<'q> {
    query: &'q Query<'q>,
    out: HostConfig,
    identity_places: Vec<Place>,
    known_hosts_place: Option<(Vec<String>, Place)>,
    /// A `ProxyJump none` was seen.
    jump_none: bool,
}

impl Walk<'_> {
    /// `never`: inside an `Include` read from a block that did not apply,
    /// where no `Host` or `Match` matches.
    fn items(&mut self, items: &[Item], active: &mut bool, never: bool) {
        for item in items {
            match item {
                Item::Host(patterns) => *active = !never && host_matches(patterns, self.query.host),
                Item::Match(criteria, place) => *active = !never && self.matches(criteria, place),
                Item::Include(files) => {
                    let outer = *active;
                    for file in files {
                        self.items(file, active, never || !outer);
                        *active = outer;
                    }
                }
                Item::Set(setting, place) if *active => self.set(setting, place),
                Item::Set(..) => {}
            }
        }
    }

    fn set(&mut self, setting: &Setting, place: &Place) {
        let out = &mut self.out;
        match setting {
            Setting::HostName(v) => {
                if out.host_name.is_none() {
                    out.host_name = Some(v.replace("%%", "\0").replace("%h", self.query.host))
                        .map(|h| h.replace('\0', "%"));
                }
            }
            Setting::Port(v) => _ = out.port.get_or_insert(*v),
            Setting::User(v) => _ = out.user.get_or_insert_with(|| v.clone()),
            Setting::IdentityFile(v) => {
                out.identity_files_as_written.push(v.clone());
                self.identity_places.push(place.clone());
            }
            Setting::HostKeyAlias(v) => _ = out.host_key_alias.get_or_insert_with(|| v.clone()),
            Setting::UserKnownHostsFile(v) => {
                self.known_hosts_place
                    .get_or_insert_with(|| (v.clone(), place.clone()));
            }
            Setting::IdentitiesOnly(v) => _ = out.identities_only.get_or_insert(*v),
            Setting::ConnectTimeout(v) => _ = out.connect_timeout.get_or_insert(*v),
            Setting::ServerAliveInterval(v) => _ = out.server_alive_interval.get_or_insert(*v),
            Setting::ServerAliveCountMax(v) => _ = out.server_alive_count_max.get_or_insert(*v),
            // One setting, the first one wins, except that `ProxyJump
            // none` only stops later `ProxyJump`s (as OpenSSH 9.2's `ssh -G`
            // shows).
            Setting::ProxyJump(ProxySpec::Direct) => self.jump_none = true,
            Setting::ProxyJump(v) if !self.jump_none => {
                _ = out.proxy.get_or_insert_with(|| v.clone())
            }
            Setting::ProxyJump(_) => {}
            Setting::ProxyCommand(v) => _ = out.proxy.get_or_insert_with(|| v.clone()),
            Setting::Unsupported(name) => out.ignored.push((
                name.to_ascii_lowercase(),
                format!(
                    "`{place}`: arpanet does not honour the ssh option `{name}`; it is ignored"
                ),
            )),
        }
    }

    /// A `Match` line, seen with the settings obtained so far (as OpenSSH's
    /// `match_cfg_line`).
    fn matches(&mut self, criteria: &[Criterion], place: &Place) -> bool {
        let q = self.query;
        let host = self
            .out
            .host_name
            .clone()
            .unwrap_or_else(|| q.host.to_owned());
        let user = q
            .user
            .or(self.out.user.as_deref())
            .unwrap_or(q.local_user)
            .to_owned();
        let mut result = true;
        for c in criteria {
            let hit = match &c.test {
                Test::All => true,
                Test::Canonical => false,
                Test::Host(list) => list_matches(&host, list, true),
                Test::OriginalHost(list) => list_matches(q.host, list, true),
                Test::User(list) => list_matches(&user, list, false),
                Test::LocalUser(list) => list_matches(q.local_user, list, false),
                Test::Unsupported(name) => {
                    let why = if name == "exec" {
                        "arpanet never runs commands from the ssh config"
                    } else {
                        "arpanet does not evaluate it"
                    };
                    self.out.ignored.push((
                        format!("match {name}"),
                        format!(
                            "`{place}`: `Match {name}` is not supported ({why}); \
                             the block does not apply"
                        ),
                    ));
                    return false;
                }
            };
            result &= hit != c.negated;
        }
        result
    }

    fn finish(mut self) -> Result<HostConfig> {
        let q = self.query;
        let host = self
            .out
            .host_name
            .clone()
            .unwrap_or_else(|| q.host.to_owned())
            .to_ascii_lowercase();
        let port = q.port.or(self.out.port).unwrap_or(22).to_string();
        let user = q
            .user
            .or(self.out.user.as_deref())
            .unwrap_or(q.local_user)
            .to_owned();
        let alias = self.out.host_key_alias.as_deref().unwrap_or(q.host);
        let tokens = Tokens {
            host: &host,
            original: q.host,
            port: &port,
            user: &user,
            local_user: q.local_user,
            home: q.home,
            alias,
        };
        let written = std::mem::take(&mut self.out.identity_files_as_written);
        for (file, place) in written.iter().zip(&self.identity_places) {
            self.out
                .identity_files
                .push(tokens.path(file, place, "IdentityFile")?);
        }
        self.out.identity_files_as_written = written;
        if let Some((files, place)) = &self.known_hosts_place {
            let mut paths = Vec::new();
            for file in files.iter().filter(|f| *f != "none") {
                paths.push(tokens.path(file, place, "UserKnownHostsFile")?);
            }
            self.out.user_known_hosts_files = Some(paths);
        }
        if self.jump_none && self.out.proxy.is_none() {
            self.out.proxy = Some(ProxySpec::Direct);
        }
        Ok(self.out)
    }
}

/// The values of the `%` tokens for one host.
struct Tokens<'a> {
    /// The final host name, lowercased (`%h`).
    host: &'a str,
    original: &'a str,
    port: &'a str,
    user: &'a str,
    local_user: &'a str,
    home: Option<&'a Path>,
    alias: &'a str,
}

impl Tokens<'_> {
    /// `~` then the tokens, as OpenSSH expands `IdentityFile` and
    /// `UserKnownHostsFile`.
    fn path(&self, raw: &str, place: &Place, option: &str) -> Result<PathBuf> {
        let home = self.home.map(|h| h.display().to_string());
        let raw = match (raw.strip_prefix('~'), &home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                format!("{home}{rest}")
            }
            _ => raw.to_owned(),
        };
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let token = chars.next();
            let value = match token {
                Some('%') => "%".to_owned(),
                Some('h') => self.host.to_owned(),
                Some('n') => self.original.to_owned(),
                Some('p') => self.port.to_owned(),
                Some('r') => self.user.to_owned(),
                Some('u') => self.local_user.to_owned(),
                Some('k') => self.alias.to_owned(),
                Some('d') => home.clone().unwrap_or_default(),
                Some('i') => rustix::process::getuid().as_raw().to_string(),
                Some('l') => local_host_name(),
                Some('L') => local_host_name()
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                Some('j') => String::new(),
                Some('C') => hex::encode(
                    Sha1::new()
                        .chain_update(local_host_name())
                        .chain_update(self.host)
                        .chain_update(self.port)
                        .chain_update(self.user)
                        .finalize(),
                ),
                other => {
                    let shown = other.map_or("%".to_owned(), |c| format!("%{c}"));
                    return Err(Error::usage(format!(
                        "{place}: `{shown}` in `{option}` is not a token ssh expands"
                    ))
                    .with_hint(
                        "the tokens are %%, %C, %d, %h, %i, %j, %k, %L, %l, %n, %p, %r, %u",
                    ));
                }
            };
            out.push_str(&value);
        }
        Ok(PathBuf::from(out))
    }
}

fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// A `Host` line: some pattern matches `host` (case-sensitively, as
/// OpenSSH) and no negated one does.
fn host_matches(patterns: &[String], host: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(negated) if glob(negated, host) => return false,
            Some(_) => {}
            None => matched |= glob(pattern, host),
        }
    }
    matched
}

/// A comma-separated `Match` pattern list (OpenSSH's `match_pattern_list`):
/// a negated hit refuses, else some plain pattern must hit.
fn list_matches(text: &str, list: &str, fold_case: bool) -> bool {
    let text = if fold_case {
        text.to_ascii_lowercase()
    } else {
        text.to_owned()
    };
    let mut matched = false;
    for pattern in list.split(',') {
        let pattern = if fold_case {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        match pattern.strip_prefix('!') {
            Some(negated) if glob(negated, &text) => return false,
            Some(_) => {}
            None => matched |= glob(&pattern, &text),
        }
    }
    matched
}

fn parse_file(path: &Path, text: &str, home: Option<&Path>, depth: usize) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let bad = |problem: P| {
            let location = Location::new(path, n + 1, 1).with_source(text);
            Error::input(location, InputKind::SshConfig(problem))
        };
        let Some((key, rest)) = split_keyword(raw) else {
            continue;
        };
        if rest.is_empty() {
            return Err(bad(P::NoArgument { key: key.into() }));
        }
        let place = Place {
            file: path.to_path_buf(),
            line: n + 1,
        };
        // ssh takes a command as the rest of the line, quotes and all.
        if key.eq_ignore_ascii_case("proxycommand") {
            items.push(Item::Set(Setting::ProxyCommand(jump::command(rest)), place));
            continue;
        }
        let args = split_args(rest).ok_or_else(|| bad(P::UnbalancedQuotes { key: key.into() }))?;
        let one = || match args.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(bad(P::NoArgument { key: key.into() })),
            _ => Err(bad(P::OneArgument { key: key.into() })),
        };
        let time = || {
            let v = one()?;
            seconds(&v).map(Duration::from_secs).ok_or_else(|| {
                bad(P::NotATime {
                    key: key.into(),
                    value: v,
                })
            })
        };
        let setting = match key.to_ascii_lowercase().as_str() {
            "host" => {
                items.push(Item::Host(args));
                continue;
            }
            "match" => {
                items.push(Item::Match(parse_match(&args).map_err(bad)?, place));
                continue;
            }
            "include" => {
                if depth + 1 > MAX_DEPTH {
                    return Err(bad(P::IncludeTooDeep { max: MAX_DEPTH }));
                }
                let mut files = Vec::new();
                for pattern in &args {
                    for file in include_paths(pattern, home) {
                        let inner = std::fs::read_to_string(&file)
                            .map_err(|e| Error::io("read", &file, e))?;
                        files.push(parse_file(&file, &inner, home, depth + 1)?);
                    }
                }
                items.push(Item::Include(files));
                continue;
            }
            "hostname" => Setting::HostName(one()?),
            "port" => {
                let v = one()?;
                Setting::Port(
                    v.parse()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad(P::NotAPort { value: v }))?,
                )
            }
            "user" => Setting::User(one()?),
            "identityfile" => Setting::IdentityFile(one()?),
            "hostkeyalias" => Setting::HostKeyAlias(one()?),
            "userknownhostsfile" => Setting::UserKnownHostsFile(args.clone()),
            "identitiesonly" => {
                let v = one()?;
                Setting::IdentitiesOnly(match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    _ => {
                        return Err(bad(P::NotYesNo {
                            key: key.into(),
                            value: v,
                        }))
                    }
                })
            }
            "proxyjump" => {
                let v = one()?;
                Setting::ProxyJump(jump::parse_jump(&v).map_err(|why| {
                    bad(P::BadJump {
                        value: v.clone(),
                        why,
                    })
                })?)
            }
            "connecttimeout" => Setting::ConnectTimeout(time()?),
            "serveraliveinterval" => Setting::ServerAliveInterval(time()?),
            "serveralivecountmax" => {
                let v = one()?;
                Setting::ServerAliveCountMax(v.parse().map_err(|_| {
                    bad(P::NotACount {
                        key: key.into(),
                        value: v,
                    })
                })?)
            }
            _ => Setting::Unsupported(key.to_owned()),
        };
        items.push(Item::Set(setting, place));
    }
    Ok(items)
}

fn parse_match(args: &[String]) -> std::result::Result<Vec<Criterion>, P> {
    let mut criteria = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (negated, name) = match arg.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, arg.as_str()),
        };
        let lower = name.to_ascii_lowercase();
        let mut value = || {
            args.next().cloned().ok_or_else(|| P::MatchNeedsPattern {
                criterion: name.into(),
            })
        };
        let test = match lower.as_str() {
            "all" => Test::All,
            "canonical" => Test::Canonical,
            "final" => Test::Unsupported(lower),
            "host" => Test::Host(value()?),
            "originalhost" => Test::OriginalHost(value()?),
            "user" => Test::User(value()?),
            "localuser" => Test::LocalUser(value()?),
            "exec" | "tagged" | "localnetwork" | "version" | "sessiontype" | "command" => {
                value()?;
                Test::Unsupported(lower)
            }
            _ => {
                return Err(P::UnknownMatch {
                    criterion: name.into(),
                })
            }
        };
        criteria.push(Criterion { negated, test });
    }
    if criteria.is_empty() {
        return Err(P::MatchEmpty);
    }
    Ok(criteria)
}

/// The files an `Include` pattern names, sorted: relative to `~/.ssh`,
/// `~` expanded, `*`/`?` in any component; none when nothing matches.
fn include_paths(pattern: &str, home: Option<&Path>) -> Vec<PathBuf> {
    let path = match (pattern.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if Path::new(pattern).is_absolute() => PathBuf::from(pattern),
        _ => match home {
            Some(home) => home.join(".ssh").join(pattern),
            None => return Vec::new(),
        },
    };
    let mut found = vec![PathBuf::from("/")];
    for part in path.components().skip(1) {
        let part = part.as_os_str().to_string_lossy();
        let wild = part.contains(['*', '?']);
        let mut next = Vec::new();
        for dir in &found {
            if !wild {
                next.push(dir.join(&*part));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| (!n.starts_with('.') || part.starts_with('.')) && glob(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

/// `30`, `30s`, `5m`, `1h30m`, ... in seconds (OpenSSH's `convtime`).
fn seconds(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    if !number.is_empty() {
        total = total.checked_add(number.parse().ok()?)?;
    } else if text.is_empty() || text.ends_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    (total <= i32::MAX as u64).then_some(total)
}

/// The keyword and the rest of a line (`Key value`, `Key=value`, `Key =
/// value`); `None` for blank lines and comments.
fn split_keyword(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    Some((key, rest))
}

/// Arguments as OpenSSH's `argv_split`: blanks separate, `"` and `'` quote,
/// a backslash escapes a quote, a backslash or (unquoted) a blank, and an
/// unquoted `#` starting an argument ends the line. `None` on an
/// unbalanced quote.
fn split_args(text: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Some(args),
            _ => {}
        }
        let mut arg = String::new();
        let mut quote = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', q) => match chars.peek() {
                    Some(&n) if n == '"' || n == '\'' || n == '\\' || (q.is_none() && n == ' ') => {
                        arg.push(n);
                        chars.next();
                    }
                    _ => arg.push('\\'),
                },
                (c, None) if c.is_whitespace() => break,
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => arg.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        args.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/op";

    fn resolve(config: &str, host: &str, user: Option<&str>) -> HostConfig {
        SshConfig::parse(
            Path::new("/home/op/.ssh/config"),
            config,
            Some(Path::new(HOME)),
        )
        .unwrap()
        .resolve(&Query {
            host,
            user,
            port: None,
            local_user: "op",
            home: Some(Path::new(HOME)),
        })
        .unwrap()
    }

    const CONFIG: &str = "\
# comment
User fallback
Host bastion
    HostName 203.0.113.5
Host node* !node9
    HostName %h.lab.example
    Port 2222
    IdentityFile ~/.ssh/lab_%h_%p_%r_%u_%%
Match host *.lab.example user deploy
    IdentitiesOnly yes
Host *
    Port 22
    User=ops
    IdentityFile \"~/.ssh/id other\"
";

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let c = resolve(CONFIG, "node1", None);
        assert_eq!(c.host_name.as_deref(), Some("node1.lab.example"));
        assert_eq!(c.port, Some(2222));
        assert_eq!(c.user.as_deref(), Some("fallback"));
        assert_eq!(
            c.identity_files,
            [
                PathBuf::from("/home/op/.ssh/lab_node1.lab.example_2222_fallback_op_%"),
                PathBuf::from("/home/op/.ssh/id other")
            ]
        );
        assert_eq!(c.identities_only, None);
        let deploy = resolve(CONFIG, "node1", Some("deploy"));
        assert_eq!(deploy.identities_only, Some(true));
        assert!(deploy.identity_files[0].ends_with("lab_node1.lab.example_2222_deploy_op_%"));
    }

    #[test]
    fn negated_patterns_exclude_a_host() {
        let c = resolve(CONFIG, "node9", None);
        assert_eq!(c.host_name, None);
        assert_eq!(c.port, Some(22));
        let c = resolve(CONFIG, "bastion", None);
        assert_eq!(c.host_name.as_deref(), Some("203.0.113.5"));
    }

    #[test]
    fn match_exec_is_never_run_and_is_reported() {
        let marker = tempfile::tempdir().unwrap();
        let file = marker.path().join("ran");
        let config = format!(
            "Match exec \"touch {}\"\n  User fromexec\nMatch final\n  Port 7\nHost *\nForwardAgent yes\n",
            file.display()
        );
        let c = resolve(&config, "x", None);
        assert!(!file.exists(), "Match exec ran a command");
        assert_eq!((c.user, c.port), (None, None));
        let keys: Vec<&str> = c.ignored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["match exec", "match final", "forwardagent"]);
        assert!(c.ignored[2].1.contains("`ForwardAgent`"), "{:?}", c.ignored);
        assert!(
            c.ignored[0].1.starts_with("`/home/op/.ssh/config:1`"),
            "{:?}",
            c.ignored
        );
    }

    #[test]
    fn unhonoured_options_in_blocks_that_do_not_apply_are_not_reported() {
        let c = resolve("Host other\n  ProxyJump b\nHost *\n  Port 2\n", "x", None);
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
    }

    #[test]
    fn arguments_split_as_openssh() {
        assert_eq!(
            split_args("a \"b c\" d'e f'g # x").unwrap(),
            ["a", "b c", "de fg"]
        );
        assert_eq!(split_args("a\\ b \\\"q\\\"").unwrap(), ["a b", "\"q\""]);
        assert_eq!(split_args("\"open"), None);
        assert_eq!(split_keyword("  Port=22"), Some(("Port", "22")));
        assert_eq!(split_keyword("Port = 22"), Some(("Port", "22")));
        assert_eq!(split_keyword("# Port 22"), None);
        assert_eq!(seconds("1m30s"), Some(90));
        assert_eq!(seconds("10"), Some(10));
        assert_eq!(seconds("m"), None);
        assert_eq!(seconds("5x"), None);
    }

    #[test]
    fn bad_values_are_located() {
        for (text, says) in [
            (
                "Host x\n  Port ssh\n",
                "cfg:2:1: `Port ssh` is not a port number",
            ),
            (
                "IdentitiesOnly maybe\n",
                "cfg:1:1: `IdentitiesOnly maybe`: expected",
            ),
            (
                "ConnectTimeout soon\n",
                "cfg:1:1: `ConnectTimeout soon` is not a time",
            ),
            (
                "Match hostname x\n",
                "cfg:1:1: unknown `Match` criterion `hostname`",
            ),
            ("Match host\n", "cfg:1:1: `Match host` needs a pattern"),
            ("User \"a\n", "cfg:1:1: unbalanced quotes"),
            ("HostName a b\n", "cfg:1:1: `HostName` takes one argument"),
        ] {
            let err = SshConfig::parse(Path::new("cfg"), text, None)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn includes_nest_at_most_sixteen_deep() {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = tmp.path().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("loop"), "Include loop\n").unwrap();
        let err = SshConfig::load(&ssh.join("loop"), Some(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested more than 16 levels"), "{err}");
    }

    #[test]
    fn an_unknown_token_is_an_error_naming_the_option() {
        let config = SshConfig::parse(Path::new("cfg"), "IdentityFile ~/%z\n", None).unwrap();
        let err = config.host("x", None).unwrap_err().to_string();
        assert!(err.contains("cfg:1: `%z` in `IdentityFile`"), "{err}");
    }
}
