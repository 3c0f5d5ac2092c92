//! Plain settings for a run (filled by `command/` from the command line)
//! turned into checked connection defaults, and each host's connection
//! `Target` derived from its variables, so bad values are caught before any
//! host is contacted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ssh::config::SshConfig;
use crate::transport::{HostKeyChecking, Target};
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
    /// Show each host's stdout (ad-hoc commands, `-v`).
    pub show_output: bool,
}

/// Where the hosts are and how to reach them: the inventory, which hosts,
/// extra variables and connection defaults, as the user gave them.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub inventory: PathBuf,
    pub limit: Option<String>,
    /// `KEY=VALUE` or `@file.yml`, in order.
    pub extra_vars: Vec<String>,
    /// Hosts in flight at once.
    pub forks: usize,
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    /// Seconds to wait for a TCP connection.
    pub timeout: u64,
}

/// Connection defaults from the command line.
#[derive(Debug, Clone)]
pub struct ConnectDefaults {
    pub user: Option<String>,
    pub private_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    pub timeout: Duration,
    pub home: Option<PathBuf>,
    /// `~/.ssh/config`, consulted below the inventory's own variables.
    pub ssh_config: SshConfig,
}

impl ConnectDefaults {
    pub fn from_options(args: &ConnectOptions) -> Result<Self> {
        if args.forks == 0 {
            return Err(Error::usage("`--forks` must be at least 1"));
        }
        if args.timeout == 0 {
            return Err(Error::usage("`--timeout` must be at least 1 second"));
        }
        let home = home_dir();
        let ssh_config = user_ssh_config(home.as_deref())?;
        Ok(ConnectDefaults {
            user: args.user.clone(),
            private_key: args.private_key.clone(),
            known_hosts: args.known_hosts.clone(),
            host_key_checking: args.host_key_checking,
            timeout: Duration::from_secs(args.timeout),
            home,
            ssh_config,
        })
    }

    /// Where `host` is reached and as whom, from its variables: the
    /// `ansible_*` names first, then the short ones.
    pub fn target(&self, host: &str, vars: &Vars) -> Result<Target> {
        let text = |names: &[&str]| var_text(vars, names);
        let name = text(&["ansible_host", "host"]).unwrap_or_else(|| host.to_owned());
        let ssh = self.ssh_config.host(&name, self.home.as_deref());
        let address = ssh.host_name.unwrap_or(name);
        let port = match text(&["ansible_port", "port"]) {
            None => ssh.port.unwrap_or(22),
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                Error::usage(format!(
                    "host `{host}`: `ansible_port` must be a port number, got `{p}`"
                ))
            })?,
        };
        let user = text(&["ansible_user", "user"])
            .or_else(|| self.user.clone())
            .or(ssh.user)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".to_owned());
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
            (None, None) => {
                extra_known_hosts.push(self.expand("~/.ssh/known_hosts2"));
                self.expand("~/.ssh/known_hosts")
            }
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
        Ok(Target {
            name: host.to_owned(),
            address,
            port,
            user,
            identity_files,
            known_hosts,
            extra_known_hosts,
            host_key_checking: self.host_key_checking,
            connect_timeout: self.timeout,
        })
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
        Some(home) => SshConfig::load(&home.join(".ssh").join("config")),
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
    Ok(ssh_config
        .host(&name, home.as_deref())
        .host_name
        .unwrap_or(name))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ConnectDefaults {
        ConnectDefaults {
            user: Some("deploy".into()),
            private_key: None,
            known_hosts: None,
            host_key_checking: HostKeyChecking::Strict,
            timeout: Duration::from_secs(5),
            home: Some(PathBuf::from("/home/op")),
            ssh_config: SshConfig::parse(
                std::path::Path::new("config"),
                "Host web*\n  HostName %h.example\n  Port 2200\n  User webop\n  IdentityFile ~/.ssh/web\n",
            )
            .unwrap(),
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
