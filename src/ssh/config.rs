//! The part of `~/.ssh/config` operators rely on when they point arpanet at
//! hosts they already reach with `ssh`: `Host` blocks with `HostName`,
//! `Port`, `User` and `IdentityFile`. As in OpenSSH, the first value found
//! for a setting wins, `IdentityFile`s accumulate, and `Host` patterns take
//! `*`, `?` and `!negation`. `Match` blocks are skipped (never applied).

use std::path::{Path, PathBuf};

use super::known_hosts::glob;
use crate::error::{Error, Location, Result};

/// One `Host` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Block {
    patterns: Vec<String>,
    host_name: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity_files: Vec<String>,
}

impl Block {
    fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let mut matched = false;
        for pattern in &self.patterns {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix('!') {
                Some(negated) if glob(negated, &host) => return false,
                Some(_) => {}
                None => matched |= glob(&pattern, &host),
            }
        }
        matched
    }
}

/// What the config says about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub host_name: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

impl SshConfig {
    /// Read `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SshConfig::default()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        // Settings before the first `Host` apply to every host.
        let mut blocks = vec![Block {
            patterns: vec!["*".into()],
            ..Block::default()
        }];
        let mut skipping = false;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = split(line);
            let value = value.trim_matches('"');
            let bad = |message: String| {
                Error::input(Location::new(path, n + 1, 1).with_source(text), message)
            };
            match key.to_ascii_lowercase().as_str() {
                "host" => {
                    skipping = false;
                    blocks.push(Block {
                        patterns: value.split_whitespace().map(str::to_owned).collect(),
                        ..Block::default()
                    });
                }
                "match" => skipping = true,
                _ if skipping => {}
                "hostname" => {
                    let block = blocks.last_mut().expect("the global block");
                    block.host_name.get_or_insert_with(|| value.to_owned());
                }
                "port" => {
                    let port = value
                        .parse()
                        .map_err(|_| bad(format!("`Port {value}` is not a port number")))?;
                    blocks
                        .last_mut()
                        .expect("the global block")
                        .port
                        .get_or_insert(port);
                }
                "user" => {
                    let block = blocks.last_mut().expect("the global block");
                    block.user.get_or_insert_with(|| value.to_owned());
                }
                "identityfile" => blocks
                    .last_mut()
                    .expect("the global block")
                    .identity_files
                    .push(value.to_owned()),
                _ => {}
            }
        }
        Ok(SshConfig { blocks })
    }

    /// The settings for `host` (the name given to ssh), first value winning.
    pub fn host(&self, host: &str, home: Option<&Path>) -> HostConfig {
        let mut out = HostConfig::default();
        for block in self.blocks.iter().filter(|b| b.matches(host)) {
            if out.host_name.is_none() {
                out.host_name = block.host_name.as_ref().map(|h| h.replace("%h", host));
            }
            out.port = out.port.or(block.port);
            if out.user.is_none() {
                out.user.clone_from(&block.user);
            }
            for file in &block.identity_files {
                let file = file.replace("%h", host);
                let path = match (file.strip_prefix("~/"), home) {
                    (Some(rest), Some(home)) => home.join(rest),
                    _ => PathBuf::from(
                        file.replace("%d", &home.unwrap_or(Path::new("")).display().to_string()),
                    ),
                };
                out.identity_files.push(path);
            }
        }
        out
    }
}

/// `Key value`, `Key=value` or `Key = value`.
fn split(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (key, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# comment
User fallback
Host bastion
    HostName 203.0.113.5
Host node* !node9
    HostName %h.lab.example
    Port 2222
    IdentityFile ~/.ssh/lab_key
Match exec \"false\"
    Port 9999
Host *
    Port 22
    User=ops
    IdentityFile ~/.ssh/id_other
";

    fn config() -> SshConfig {
        SshConfig::parse(Path::new("/home/op/.ssh/config"), CONFIG).unwrap()
    }

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let c = config().host("node1", Some(Path::new("/home/op")));
        assert_eq!(c.host_name.as_deref(), Some("node1.lab.example"));
        assert_eq!(c.port, Some(2222));
        assert_eq!(c.user.as_deref(), Some("fallback"));
        assert_eq!(
            c.identity_files,
            [
                PathBuf::from("/home/op/.ssh/lab_key"),
                PathBuf::from("/home/op/.ssh/id_other")
            ]
        );
    }

    #[test]
    fn negated_patterns_and_match_blocks_do_not_apply() {
        let c = config().host("node9", Some(Path::new("/home/op")));
        assert_eq!(c.host_name, None);
        assert_eq!(c.port, Some(22));
        assert_eq!(
            config().host("bastion", None).host_name.as_deref(),
            Some("203.0.113.5")
        );
    }

    #[test]
    fn a_bad_port_is_located() {
        let err = SshConfig::parse(Path::new("cfg"), "Host x\n  Port ssh\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cfg:2:1: `Port ssh` is not a port number"),
            "{err}"
        );
    }
}
