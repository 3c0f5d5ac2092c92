//! Plain settings for a run (filled by `command/` from the command line)
//! turned into checked connection defaults, and each host's connection
//! `Target` derived from its variables, so bad values are caught before any
//! host is contacted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ssh::config::{local_user, Query, SshConfig};
use crate::ssh::jump::{self, JumpHost, ProxySpec, JUMP_VAR, SSH_ARG_VARS};
use crate::transport::{HostKeyChecking, Keepalive, Proxy, SessionMode, Target};
use crate::vars::Vars;

/// OpenSSH's default GlobalKnownHostsFile; the variable
/// `arpanet_global_known_hosts_file` replaces it (space-separated paths, or
/// `none`).
const GLOBAL_KNOWN_HOSTS: [&str; 2] = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// How a run behaves, independent of what it runs.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub forks: usize,
    pub limit: Option<String>,
    pub check: bool,
    pub diff: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    /// Show each host's stdout (ad-hoc commands, `-vv`).
    pub show_output: bool,
    /// Stream the output of `command` and `shell` tasks line by line as
    /// it arrives (`exec`), as [`crate::report::Event::Output`]s.
    pub live: bool,
    /// `-v` count: from 1 each command sent is shown, secrets masked (not
    /// for `no_log` tasks), from 3 how each connection was made and how
    /// each command ended too.
    pub verbose: u8,
    /// How long one attempt of a task may take, for tasks without their own
    /// `timeout:` (`--task-timeout`).
    pub task_timeout: Option<Duration>,
    /// `-b`, `--become-user`, `--become-method` and the run's become
    /// password.
    pub escalation: crate::escalation::Defaults,
    /// Skip every task before the first whose name matches this (exactly
    /// or as a glob), as `--start-at-task`.
    pub start_at_task: Option<String>,
    /// Ask on the terminal before each task (`--step`).
    pub step: bool,
}

/// Where the hosts are and how to reach them: the inventory, which hosts,
/// extra variables and connection defaults, as the user gave them.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Every `-i` source, in order (at least one).
    pub inventory: Vec<PathBuf>,
    pub limit: Option<String>,
    /// `KEY=VALUE` or `@file.yml`, in order.
    pub extra_vars: Vec<String>,
    /// Hosts in flight at once.
    pub forks: usize,
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    /// Seconds to wait for a TCP connection (and the login); `None`:
    /// `ConnectTimeout` from the ssh config, else [`DEFAULT_TIMEOUT`].
    pub timeout: Option<u64>,
    /// The product's default variables (YAML text), the lowest layer.
    pub defaults: &'static str,
    /// `-b`, `--become-user`, `--become-method`, and the become password
    /// (`-K` or `$ARPANET_BECOME_PASS`).
    pub escalation: crate::escalation::Defaults,
    /// The product's layer just over its defaults (see `Layers::provided`).
    pub provided: crate::vars::Vars,
    /// `--session` (or `$ARPANET_SESSION`); `arpanet_session` wins per host.
    pub session: SessionMode,
    /// The `arpanet_ip` of hosts whose inventory gives a host name there:
    /// the address it resolves to on this machine, set as the host's own
    /// variable (see `cluster::address::resolve`).
    pub resolved_ips: Vec<(String, String)>,
    /// The user playbooks' directories: their `group_vars/` and
    /// `host_vars/` apply over the inventory's, as in Ansible.
    pub playbook_dirs: Vec<PathBuf>,
}

/// The variable choosing how a host's commands run (see [`SessionMode`]).
pub(crate) const SESSION_VAR: &str = "arpanet_session";

/// How deep the ssh config's `ProxyJump`s of jump hosts may nest.
const MAX_HOPS: usize = 8;

/// Seconds `--timeout` defaults to.
pub const DEFAULT_TIMEOUT: u64 = 10;

/// Seconds a host whose connection was lost is tried again (with backoff)
/// before it counts as unreachable: a node's reboot or an sshd restart.
pub const DEFAULT_RECONNECT: u64 = 30;

/// Connection defaults from the command line.
#[derive(Debug)]
pub struct ConnectDefaults {
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    /// `--timeout`, when given: it wins over `ConnectTimeout`.
    pub timeout: Option<Duration>,
    pub home: Option<PathBuf>,
    /// `~/.ssh/config`, consulted below the inventory's own variables.
    pub ssh_config: SshConfig,
    /// How commands run unless `arpanet_session` says otherwise.
    pub session: SessionMode,
    /// What the ssh config said that arpanet does not honour, for the hosts
    /// resolved so far: one warning per option (see [`Self::ssh_warnings`]).
    ignored: Mutex<BTreeMap<String, String>>,
}

impl ConnectDefaults {
    pub fn from_options(args: &ConnectOptions) -> Result<Self> {
        if args.forks == 0 {
            return Err(Error::usage("`--forks` must be at least 1"));
        }
        if args.timeout == Some(0) {
            return Err(Error::usage("`--timeout` must be at least 1 second"));
        }
        let home = home_dir();
        let ssh_config = user_ssh_config(home.as_deref())?;
        Ok(ConnectDefaults {
            user: args.user.clone(),
            private_key: args.private_key.clone(),
            known_hosts: args.known_hosts.clone(),
            host_key_checking: args.host_key_checking,
            timeout: args.timeout.map(Duration::from_secs),
            home,
            ssh_config,
            session: args.session,
            ignored: Mutex::default(),
        })
    }

    /// One warning per option (or `Match` criterion) of the ssh config that
    /// applied to some host resolved so far but that arpanet does not
    /// honour.
    pub fn ssh_warnings(&self) -> Vec<String> {
        let ignored = self.ignored.lock().unwrap_or_else(|p| p.into_inner());
        ignored.values().cloned().collect()
    }

    /// Where `host` is reached and as whom, from its variables (the
    /// `ansible_*` names first, then the short ones), the command line, then
    /// `~/.ssh/config`. The inventory and `-u` play the part of `ssh -l` and
    /// `-p`: they win over the file, and its `Match user` sees them. The way
    /// there comes from `arpanet_jump`, else the `ssh` arguments Ansible
    /// passes (`ansible_ssh_args`, `ansible_ssh_common_args`,
    /// `ansible_ssh_extra_args`, in the order Ansible puts them on ssh's
    /// command line, where the first setting wins), else the ssh config's
    /// `ProxyJump` or `ProxyCommand`.
    pub fn target(&self, host: &str, vars: &Vars) -> Result<Target> {
        let text = |names: &[&str]| var_text(vars, names);
        let name = text(&["ansible_host", "host"]).unwrap_or_else(|| host.to_owned());
        let port = match text(&["ansible_port", "port"]) {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                Error::usage(format!(
                    "host `{host}`: `ansible_port` must be a port number, got `{p}`"
                ))
            })?),
        };
        let user = text(&["ansible_user", "user"]).or_else(|| self.user.clone());
        let (mut target, from_config) = self.reach(host, &name, port, user, vars)?;
        if is_local(host, vars)? {
            target.local = true;
            return Ok(target);
        }
        let spec = match self.proxy_from_vars(host, vars)? {
            Some(spec) => Some(spec),
            None => from_config,
        };
        target.proxy = match spec {
            None | Some(ProxySpec::Direct) => Proxy::Direct,
            Some(ProxySpec::Jump(hops)) => Proxy::Jump(self.hops(host, &hops, vars, 0)?),
            Some(ProxySpec::Command(raw)) => Proxy::Command(
                jump::expand_command(&raw, &target.address, target.port, &target.user, &name)
                    .map_err(|why| Error::usage(format!("host `{host}`: {why}")))?,
            ),
        };
        Ok(target)
    }

    /// `arpanet_jump` (a string or a list of hops), else the first proxy
    /// setting among the `ssh` argument variables.
    fn proxy_from_vars(&self, host: &str, vars: &Vars) -> Result<Option<ProxySpec>> {
        let bad = |var: &str, why: String| {
            Error::usage(format!("host `{host}`: `{var}`: {why}"))
                .with_hint(crate::error::JUMP_HINT)
        };
        let jump = match vars.get(JUMP_VAR) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(items)) => {
                let mut hops = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => hops.push(s.clone()),
                        other => {
                            return Err(bad(JUMP_VAR, format!("`{other}` is not a jump host")))
                        }
                    }
                }
                Some(hops.join(","))
            }
            Some(other) => {
                return Err(bad(
                    JUMP_VAR,
                    format!("expected a string or a list, got `{other}`"),
                ))
            }
        };
        if let Some(jump) = jump {
            return jump::parse_jump(&jump)
                .map(Some)
                .map_err(|why| bad(JUMP_VAR, why));
        }
        for var in SSH_ARG_VARS {
            if let Some(args) = var_text(vars, &[var]) {
                if let Some(spec) = jump::from_ssh_args(&args).map_err(|why| bad(var, why))? {
                    return Ok(Some(spec));
                }
            }
        }
        Ok(None)
    }

    /// The jump hosts of `host`, each resolved as a host of its own through
    /// `~/.ssh/config` (its user, port, keys, known_hosts, `HostKeyAlias`),
    /// the first one's own `ProxyJump` put before it, as ssh does.
    fn hops(
        &self,
        host: &str,
        hops: &[JumpHost],
        vars: &Vars,
        depth: usize,
    ) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        for (i, hop) in hops.iter().enumerate() {
            let (mut target, own) =
                self.reach(host, &hop.host, hop.port, hop.user.clone(), vars)?;
            target.name = format!("{}@{}", target.user, crate::ssh::endpoint(&target));
            match own {
                Some(ProxySpec::Jump(before)) if i == 0 => {
                    if depth >= MAX_HOPS {
                        return Err(Error::usage(format!(
                            "host `{host}`: the `ProxyJump`s of its jump hosts nest more than \
                             {MAX_HOPS} deep"
                        ))
                        .with_hint(
                            "a jump host names itself (or an earlier one) in ~/.ssh/config",
                        ));
                    }
                    out = self.hops(host, &before, vars, depth + 1)?;
                }
                Some(ProxySpec::Command(_)) if i == 0 => {
                    return Err(Error::usage(format!(
                        "host `{host}`: jump host `{hop}` has a `ProxyCommand` in ~/.ssh/config, \
                         which arpanet does not run for jump hosts"
                    ))
                    .with_hint(
                        "use `ProxyJump` for the jump host, or `ProxyCommand` for the host itself",
                    ));
                }
                _ => {}
            }
            out.push(target);
        }
        Ok(out)
    }

    /// The target for `name` (`label` in messages), as `ssh` would reach it
    /// directly, and the ssh config's proxy setting for it.
    fn reach(
        &self,
        label: &str,
        name: &str,
        port: Option<u16>,
        user: Option<String>,
        vars: &Vars,
    ) -> Result<(Target, Option<ProxySpec>)> {
        let text = |names: &[&str]| var_text(vars, names);
        let local_user = local_user();
        let ssh = self.ssh_config.resolve(&Query {
            host: name,
            user: user.as_deref(),
            port,
            local_user: &local_user,
            home: self.home.as_deref(),
        })?;
        {
            let mut ignored = self.ignored.lock().unwrap_or_else(|p| p.into_inner());
            for (key, warning) in &ssh.ignored {
                ignored
                    .entry(key.clone())
                    .or_insert_with(|| warning.clone());
            }
        }
        let address = ssh.host_name.unwrap_or_else(|| name.to_owned());
        let port = port.or(ssh.port).unwrap_or(22);
        let user = user.or(ssh.user).unwrap_or(local_user);
        let mut identity_files = Vec::new();
        if let Some(key) = &self.private_key {
            identity_files.push(key.clone());
        }
        if let Some(key) = text(&["ansible_ssh_private_key_file", "ansible_private_key_file"]) {
            identity_files.push(self.expand(&key));
        }
        identity_files.extend(ssh.identity_files);
        if identity_files.is_empty() {
            if let Some(home) = &self.home {
                for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                    identity_files.push(home.join(".ssh").join(name));
                }
            }
        }
        // As OpenSSH's UserKnownHostsFile (`~/.ssh/known_hosts` and
        // `~/.ssh/known_hosts2` unless set) and GlobalKnownHostsFile.
        let mut extra_known_hosts = Vec::new();
        let known_hosts = match (&self.known_hosts, text(&["arpanet_known_hosts_file"])) {
            (Some(file), _) => file.clone(),
            (None, Some(file)) => self.expand(&file),
            (None, None) => match ssh.user_known_hosts_files {
                Some(files) => {
                    let mut files = files.into_iter();
                    // `UserKnownHostsFile none`: nothing read, nothing kept.
                    let first = files.next().unwrap_or_else(|| PathBuf::from("/dev/null"));
                    extra_known_hosts.extend(files);
                    first
                }
                None => {
                    extra_known_hosts.push(self.expand("~/.ssh/known_hosts2"));
                    self.expand("~/.ssh/known_hosts")
                }
            },
        };
        match text(&["arpanet_global_known_hosts_file"]) {
            Some(files) => extra_known_hosts.extend(
                files
                    .split_whitespace()
                    .filter(|f| *f != "none")
                    .map(|f| self.expand(f)),
            ),
            None => extra_known_hosts.extend(GLOBAL_KNOWN_HOSTS.iter().map(PathBuf::from)),
        }
        // `ConnectTimeout 0` and `ServerAliveInterval 0` mean "no limit" to
        // ssh; arpanet keeps its own bounds then.
        let connect_timeout = self
            .timeout
            .or(ssh.connect_timeout.filter(|t| !t.is_zero()))
            .unwrap_or(Duration::from_secs(DEFAULT_TIMEOUT));
        let target = Target {
            name: label.to_owned(),
            address,
            port,
            user,
            identity_files,
            known_hosts,
            extra_known_hosts,
            host_key_checking: self.host_key_checking,
            host_key_alias: ssh.host_key_alias,
            identities_only: ssh.identities_only.unwrap_or(false),
            connect_timeout,
            keepalive: Keepalive {
                interval: ssh.server_alive_interval.filter(|t| !t.is_zero()),
                max: ssh.server_alive_count_max.map(|n| n.max(1) as usize),
            },
            reconnect: match text(&["arpanet_reconnect_timeout"]) {
                None => Duration::from_secs(DEFAULT_RECONNECT),
                Some(t) => t
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "host `{label}`: `arpanet_reconnect_timeout` must be a number of \
                             seconds, got `{t}`"
                        ))
                    })?,
            },
            proxy: Proxy::Direct,
            session: match text(&[SESSION_VAR]) {
                None => self.session,
                Some(t) => SessionMode::parse(&t).ok_or_else(|| {
                    Error::usage(format!(
                        "host `{label}`: `{SESSION_VAR}` must be one of {}, got `{t}`",
                        SessionMode::NAMES
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .with_hint(
                        "`persistent` runs commands through one shell per host, `exec` opens \
                         a channel for each",
                    )
                })?,
            },
            local: false,
        };
        Ok((target, ssh.proxy))
    }

    fn expand(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), &self.home) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => Path::new(path).to_path_buf(),
        }
    }
}

/// The first of `names` that `vars` holds as a non-empty string or a number.
fn var_text(vars: &Vars, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match vars.get(*n) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// `~/.ssh/config`, or an empty one without a home.
fn user_ssh_config(home: Option<&Path>) -> Result<SshConfig> {
    match home {
        Some(home) => SshConfig::load(&home.join(".ssh").join("config"), Some(home)),
        None => Ok(SshConfig::default()),
    }
}

/// The address `host` is reached at over SSH, found as
/// [`ConnectDefaults::target`] finds it (`ansible_host`, else the name, then
/// `~/.ssh/config`'s `HostName`), for tasks that run on this machine yet
/// must name the host as the network sees it.
pub(crate) fn ssh_address(host: &str, vars: &Vars) -> Result<String> {
    let home = home_dir();
    let ssh_config = user_ssh_config(home.as_deref())?;
    let name = var_text(vars, &["ansible_host", "host"]).unwrap_or_else(|| host.to_owned());
    let user = var_text(vars, &["ansible_user", "user"]);
    let ssh = ssh_config.resolve(&Query {
        host: &name,
        user: user.as_deref(),
        port: None,
        local_user: &local_user(),
        home: home.as_deref(),
    })?;
    Ok(ssh.host_name.unwrap_or(name))
}

pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `~/.arpanetrc`, where the 2014 tool kept its settings.
pub fn rc_file() -> Option<PathBuf> {
    home_dir().map(|h| h.join(".arpanetrc"))
}

/// Whether `ansible_connection` says the host is this machine (`local`);
/// `ssh` (and Ansible's `smart` and `paramiko`, both SSH) or unset is SSH,
/// anything else (`docker`, `winrm`, ...) is refused.
fn is_local(host: &str, vars: &Vars) -> Result<bool> {
    match var_text(vars, &["ansible_connection"])
        .as_deref()
        .map(str::trim)
    {
        None | Some("ssh" | "smart" | "paramiko" | "ansible.builtin.ssh") => Ok(false),
        Some("local" | "ansible.builtin.local") => Ok(true),
        Some(other) => Err(Error::usage(format!(
            "host `{host}`: `ansible_connection` is `{other}`: arpanet connects with `ssh` or runs \
             on this machine with `local`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ConnectDefaults {
        ConnectDefaults {
            user: Some("deploy".into()),
            private_key: None,
            known_hosts: None,
            host_key_checking: HostKeyChecking::Strict,
            timeout: Some(Duration::from_secs(5)),
            home: Some(PathBuf::from("/home/op")),
            ssh_config: SshConfig::parse(
                std::path::Path::new("config"),
                "Host web*\n  HostName %h.example\n  Port 2200\n  User webop\n  IdentityFile ~/.ssh/web\n",
                Some(Path::new("/home/op")),
            )
            .unwrap(),
            session: SessionMode::Persistent,
            ignored: Mutex::default(),
        }
    }

    fn vars(pairs: &[(&str, Value)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn target_prefers_ansible_names_and_falls_back_to_defaults() {
        let t = defaults().target("node1", &Vars::new()).unwrap();
        assert_eq!(
            (t.address.as_str(), t.port, t.user.as_str()),
            ("node1", 22, "deploy")
        );
        assert_eq!(t.known_hosts, PathBuf::from("/home/op/.ssh/known_hosts"));
        assert_eq!(
            t.extra_known_hosts,
            [
                "/home/op/.ssh/known_hosts2",
                "/etc/ssh/ssh_known_hosts",
                "/etc/ssh/ssh_known_hosts2"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            t.identity_files[0],
            PathBuf::from("/home/op/.ssh/id_ed25519")
        );

        let v = vars(&[
            ("ansible_host", "10.0.0.1".into()),
            ("host", "ignored".into()),
            ("port", 2222.into()),
            ("ansible_user", "root".into()),
            ("ansible_ssh_private_key_file", "~/keys/lab".into()),
            ("arpanet_known_hosts_file", "/lab/known_hosts".into()),
            (
                "arpanet_global_known_hosts_file",
                "/lab/global ~/global2".into(),
            ),
        ]);
        let t = defaults().target("node1", &v).unwrap();
        assert_eq!(
            (t.address.as_str(), t.port, t.user.as_str()),
            ("10.0.0.1", 2222, "root")
        );
        assert_eq!(t.identity_files, [PathBuf::from("/home/op/keys/lab")]);
        assert_eq!(t.known_hosts, PathBuf::from("/lab/known_hosts"));
        assert_eq!(
            t.extra_known_hosts,
            ["/lab/global", "/home/op/global2"].map(PathBuf::from)
        );
        let none = vars(&[("arpanet_global_known_hosts_file", "none".into())]);
        let t = defaults().target("node1", &none).unwrap();
        assert_eq!(
            t.extra_known_hosts,
            ["/home/op/.ssh/known_hosts2"].map(PathBuf::from)
        );
    }

    #[test]
    fn ssh_config_fills_what_the_inventory_leaves_out() {
        let mut d = defaults();
        d.user = None;
        let t = d.target("web1", &Vars::new()).unwrap();
        assert_eq!(
            (t.address.as_str(), t.port, t.user.as_str()),
            ("web1.example", 2200, "webop")
        );
        assert_eq!(t.identity_files, [PathBuf::from("/home/op/.ssh/web")]);
        let t = d
            .target(
                "web1",
                &vars(&[("ansible_port", 22.into()), ("ansible_user", "root".into())]),
            )
            .unwrap();
        assert_eq!((t.port, t.user.as_str()), (22, "root"));
    }

    #[test]
    fn ssh_config_connection_settings_reach_the_target() {
        let config = "Host db\n  HostKeyAlias db-alias\n  UserKnownHostsFile ~/kh/%h-%r /etc/kh2\n\
                      \x20 IdentitiesOnly yes\n  ConnectTimeout 7\n  ServerAliveInterval 4\n\
                      \x20 ServerAliveCountMax 2\nMatch user root\n  Port 2222\n  ForwardAgent yes\n";
        let mut d = defaults();
        d.ssh_config =
            SshConfig::parse(Path::new("config"), config, Some(Path::new("/home/op"))).unwrap();
        d.timeout = None;
        let t = d
            .target("db", &vars(&[("ansible_user", "root".into())]))
            .unwrap();
        assert_eq!(t.host_key_alias.as_deref(), Some("db-alias"));
        assert_eq!(t.known_hosts, PathBuf::from("/home/op/kh/db-root"));
        assert_eq!(t.extra_known_hosts[0], PathBuf::from("/etc/kh2"));
        assert!(t.identities_only);
        assert_eq!(t.connect_timeout, Duration::from_secs(7));
        assert_eq!(
            t.keepalive,
            Keepalive {
                interval: Some(Duration::from_secs(4)),
                max: Some(2)
            }
        );
        // `Match user` sees the inventory's user (as `ssh -l`).
        assert_eq!(t.port, 2222);
        assert_eq!(d.ssh_warnings().len(), 1, "{:?}", d.ssh_warnings());
        assert!(d.ssh_warnings()[0].contains("`ForwardAgent`"));
        let t = d.target("db", &Vars::new()).unwrap();
        assert_eq!(t.port, 22);
        // `--timeout` wins over `ConnectTimeout`; unset, 10 s.
        d.timeout = Some(Duration::from_secs(3));
        assert_eq!(
            d.target("db", &Vars::new()).unwrap().connect_timeout,
            Duration::from_secs(3)
        );
        d.timeout = None;
        let t = d.target("web1", &Vars::new()).unwrap();
        assert_eq!(t.connect_timeout, Duration::from_secs(DEFAULT_TIMEOUT));
        assert_eq!(t.keepalive, Keepalive::default());
        assert_eq!((t.host_key_alias, t.identities_only), (None, false));
    }

    fn proxied(config: &str) -> ConnectDefaults {
        let mut d = defaults();
        d.ssh_config =
            SshConfig::parse(Path::new("config"), config, Some(Path::new("/home/op"))).unwrap();
        d
    }

    /// `user@address:port` of each hop, or the command.
    fn route(t: &Target) -> Vec<String> {
        match &t.proxy {
            Proxy::Direct => Vec::new(),
            Proxy::Jump(hops) => hops.iter().map(|h| h.name.clone()).collect(),
            Proxy::Command(c) => vec![format!("command: {c}")],
        }
    }

    #[test]
    fn jump_hosts_come_from_the_variable_then_ssh_arguments_then_the_ssh_config() {
        let d = proxied(
            "Host bastion\n  HostName 203.0.113.5\n  User jumper\n  Port 2201\n  \
             IdentityFile ~/.ssh/bastion\n  HostKeyAlias bastion-key\n\
             Host inner\n  ProxyJump outer:2202\n\
             Host db*\n  ProxyJump bastion\n\
             Host pc\n  ProxyCommand ssh -W %h:%p %r@bastion # %n\n  ProxyJump ignored\n\
             Host off\n  ProxyCommand none\n  ProxyJump elsewhere\n\
             Host nojump\n  ProxyJump none\n  ProxyCommand nc %h %p\n  ProxyJump b\n",
        );
        let target = |host: &str, pairs: &[(&str, Value)]| d.target(host, &vars(pairs)).unwrap();
        // The ssh config's ProxyJump; the hop resolved as a host of its own,
        // `-u`/ansible_user not applied to it (as ssh -l).
        let t = target("db1", &[]);
        assert_eq!(route(&t), ["jumper@203.0.113.5:2201"]);
        let Proxy::Jump(hops) = &t.proxy else {
            panic!("{t:?}")
        };
        assert_eq!(
            hops[0].identity_files,
            [PathBuf::from("/home/op/.ssh/bastion")]
        );
        assert_eq!(hops[0].host_key_alias.as_deref(), Some("bastion-key"));
        assert_eq!(hops[0].known_hosts, t.known_hosts);
        assert_eq!(hops[0].proxy, Proxy::Direct);
        // ansible_ssh_common_args wins over the ssh config, extra args come
        // after common args (the first on ssh's command line wins).
        let t = target(
            "db1",
            &[
                (
                    "ansible_ssh_common_args",
                    "-o StrictHostKeyChecking=no -o ProxyJump=op@b2:2222".into(),
                ),
                ("ansible_ssh_extra_args", "-J other".into()),
            ],
        );
        assert_eq!(route(&t), ["op@b2:2222"]);
        let t = target("db1", &[("ansible_ssh_extra_args", "-J other".into())]);
        assert_eq!(
            route(&t),
            ["deploy@other:22".replace("deploy", &local_user())]
        );
        // arpanet_jump wins over both, as a string or a list; `none` goes
        // direct.
        let t = target(
            "db1",
            &[
                ("arpanet_jump", serde_json::json!(["a@h1", "bastion"])),
                ("ansible_ssh_common_args", "-J other".into()),
            ],
        );
        assert_eq!(route(&t), ["a@h1:22", "jumper@203.0.113.5:2201"]);
        let t = target("db1", &[("arpanet_jump", "none".into())]);
        assert_eq!(t.proxy, Proxy::Direct);
        // A first hop's own ProxyJump goes before it.
        let t = target("x", &[("arpanet_jump", "u@inner,v@last".into())]);
        let me = local_user();
        assert_eq!(
            route(&t),
            [
                format!("{me}@outer:2202"),
                "u@inner:22".into(),
                "v@last:22".into()
            ]
        );
        // ProxyCommand with its tokens; the first of ProxyJump and
        // ProxyCommand wins, `none` included, except that `ProxyJump none`
        // stops only later ProxyJumps (as `ssh -G` shows).
        let t = target("pc", &[("ansible_port", 2222.into())]);
        assert_eq!(route(&t), ["command: ssh -W pc:2222 deploy@bastion # pc"]);
        assert_eq!(target("off", &[]).proxy, Proxy::Direct);
        assert_eq!(route(&target("nojump", &[])), ["command: nc nojump 22"]);
    }

    #[test]
    fn bad_jump_values_are_bad_input_naming_host_and_variable() {
        let d = defaults();
        for (var, value, says) in [
            (
                "arpanet_jump",
                Value::from("a,,b"),
                "host `n1`: `arpanet_jump`: an empty hop",
            ),
            (
                "arpanet_jump",
                serde_json::json!({"a": 1}),
                "expected a string or a list",
            ),
            (
                "arpanet_jump",
                serde_json::json!(["b", 3]),
                "`3` is not a jump host",
            ),
            (
                "ansible_ssh_common_args",
                Value::from("-o ProxyJump=b:ssh"),
                "host `n1`: `ansible_ssh_common_args`: `-o ProxyJump=b:ssh`: `ssh` in `b:ssh`",
            ),
            (
                "ansible_ssh_extra_args",
                Value::from("-o ProxyCommand='nc %z'"),
                "host `n1`: `%z` is not a token",
            ),
        ] {
            let err = d.target("n1", &vars(&[(var, value)])).unwrap_err();
            assert_eq!(err.exit_code(), 5, "{err}");
            assert!(err.to_string().contains(says), "{var}: {err}");
        }
        let err = SshConfig::parse(Path::new("cfg"), "Host x\n  ProxyJump a@:22\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "cfg:2:1: `ProxyJump a@:22` is not a jump host list: `a@:22` names no host"
            ),
            "{err}"
        );
        let looping = proxied("Host loop\n  ProxyJump loop\n");
        let err = looping
            .target("x", &vars(&[("arpanet_jump", "loop".into())]))
            .unwrap_err();
        assert!(err.to_string().contains("nest more than 8 deep"), "{err}");
    }

    #[test]
    fn a_bad_port_is_bad_input() {
        let err = defaults()
            .target("node1", &vars(&[("ansible_port", "ssh".into())]))
            .unwrap_err();
        assert_eq!(err.exit_code(), 5);
        assert!(
            err.to_string()
                .contains("`ansible_port` must be a port number, got `ssh`"),
            "{err}"
        );
    }
}
