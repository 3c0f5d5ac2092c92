//! The remote host as the rest of arpanet sees it: run a command (with
//! optional stdin), open a forwarded TCP channel. Kept small so the executor
//! can be tested against an in-memory fake while `ssh.rs` is tested against
//! real sshd.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Result;

/// What a finished remote command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// Exit status; a command killed by a signal reports 128 + signal number
    /// when known, else 255.
    pub status: u32,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A byte stream to a TCP port as seen from the remote host.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One authenticated connection to one host, shared by every task of a run.
pub trait Transport: Send + Sync {
    /// Run `command` through the remote user's shell, feeding it `stdin`
    /// (then EOF) when given.
    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output>>;

    /// Open a channel to `host:port` as reached from the remote machine.
    fn forward<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Box<dyn Stream>>>;

    /// Close the connection politely.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// How strictly a host's key is checked against known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    /// Unknown or changed keys make the host unreachable.
    #[default]
    Strict,
    /// Unknown keys are recorded; changed keys are refused.
    AcceptNew,
    /// Any key is accepted (a warning is printed).
    Off,
}

/// Everything needed to reach one host, resolved from its variables.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// The inventory name, used in messages.
    pub name: String,
    /// The address to connect to (`ansible_host`, else the name).
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Key files to try after the agent, in order.
    pub identity_files: Vec<PathBuf>,
    /// The user's known_hosts file: read first, and where `accept-new`
    /// records new keys.
    pub known_hosts: PathBuf,
    /// known_hosts files read after `known_hosts` and never written, as
    /// OpenSSH reads `~/.ssh/known_hosts2` and the global
    /// `/etc/ssh/ssh_known_hosts` and `/etc/ssh/ssh_known_hosts2`.
    pub extra_known_hosts: Vec<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    /// The name looked up in (and written to) known_hosts instead of
    /// `address`, as ssh's `HostKeyAlias`.
    pub host_key_alias: Option<String>,
    /// Offer only the agent's keys that are among `identity_files`, as
    /// ssh's `IdentitiesOnly`.
    pub identities_only: bool,
    #[serde(skip)]
    pub connect_timeout: Duration,
    /// Keepalives asked for by the ssh config; the transport's own default
    /// where `None`.
    #[serde(skip)]
    pub keepalive: Keepalive,
}

/// ssh's `ServerAliveInterval` and `ServerAliveCountMax`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Option<Duration>,
    /// Unanswered keepalives before the connection counts as lost.
    pub max: Option<usize>,
}

/// Opens transports; the SSH implementation throttles connection starts.
pub trait Connector: Send + Sync {
    fn connect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Arc<dyn Transport>>>;
}

/// Quote `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("/etc/default/docker"), "/etc/default/docker");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
