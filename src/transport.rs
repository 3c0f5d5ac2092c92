//! The remote host as the rest of arpanet sees it: run a command (with
//! optional stdin), open a forwarded TCP channel. Kept small so the executor
//! can be tested against an in-memory fake while `ssh.rs` is tested against
//! real sshd.
//!
//! What a command prints is kept through a [`Capped`] buffer: a command may
//! print gigabytes, and every byte kept is held in memory (and then in
//! `register`ed variables, failure messages, `-v` output) until the run
//! ends. Each stream keeps its first and last [`OUTPUT_CAP`]` / 2` bytes and
//! says how many it dropped in between.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Result;

pub(crate) mod local;

/// Bytes kept of each output stream of one command: its head and its tail,
/// half each.
pub const OUTPUT_CAP: usize = 1 << 20;

/// What a finished remote command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// At most [`OUTPUT_CAP`] bytes of what the command printed (plus a
    /// marker line saying how much was dropped), invalid UTF-8 replaced.
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

/// One output stream as it arrives, keeping its first and last `cap / 2`
/// bytes, so memory stays bounded whatever the command prints.
#[derive(Debug)]
pub(crate) struct Capped {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    half: usize,
    dropped: u64,
}

impl Default for Capped {
    fn default() -> Self {
        Capped::new(OUTPUT_CAP)
    }
}

impl Capped {
    pub(crate) fn new(cap: usize) -> Self {
        Capped {
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            half: cap / 2,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        let room = self.half.saturating_sub(self.head.len());
        if room > 0 {
            let n = room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        // Only the last `half` bytes of this chunk can stay in the tail.
        let skip = data.len().saturating_sub(self.half);
        self.dropped += skip as u64;
        self.tail.extend(&data[skip..]);
        let over = self.tail.len().saturating_sub(self.half);
        if over > 0 {
            self.tail.drain(..over);
            self.dropped += over as u64;
        }
    }

    /// The bytes kept, with a marker line in place of the dropped ones,
    /// as text (invalid UTF-8 replaced).
    pub(crate) fn into_text(self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[arpanet: {} bytes of output dropped here; {} kept of each stream, \
                 its first and last {}]\n",
                self.dropped,
                size(2 * self.half),
                size(self.half)
            ));
        }
        let (a, b) = self.tail.as_slices();
        text.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        text
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Which output stream of a command a line came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pipe {
    Stdout,
    Stderr,
}

/// Receives a command's output a line at a time, as it arrives (see
/// [`Transport::exec_streamed`]).
pub type Sink<'a> = dyn Fn(Pipe, &str) + Send + Sync + 'a;

/// The longest line handed to a [`Sink`]: a longer one (a command that
/// prints megabytes without a newline) is handed on in pieces of this
/// size, so memory stays bounded.
pub(crate) const LINE_CAP: usize = 64 << 10;

/// Splits one output stream into lines as its bytes arrive.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Hand each line completed by `data` (without its newline, invalid
    /// UTF-8 replaced) to `each`.
    pub(crate) fn push(&mut self, data: &[u8], each: &mut dyn FnMut(&str)) {
        for piece in data.split_inclusive(|&b| b == b'\n') {
            let (body, ended) = match piece.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (piece, false),
            };
            self.pending.extend_from_slice(body);
            while self.pending.len() > LINE_CAP {
                let rest = self.pending.split_off(LINE_CAP);
                each(&String::from_utf8_lossy(&self.pending));
                self.pending = rest;
            }
            if ended {
                let line = std::mem::take(&mut self.pending);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                each(&String::from_utf8_lossy(line));
            }
        }
    }

    /// Hand on a last line that had no newline.
    pub(crate) fn finish(&mut self, each: &mut dyn FnMut(&str)) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            each(&String::from_utf8_lossy(&line));
        }
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

    /// [`Transport::exec`] of a command that carries secrets (a container's
    /// env values), `shown` being the same command with them masked: what a
    /// connection that reports each command it sends (`-v`) reports.
    fn exec_masked<'a>(
        &'a self,
        command: &'a str,
        shown: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output>> {
        let _ = shown;
        self.exec(command, stdin)
    }

    /// Run `command` (which escalates privileges, see `escalation.rs`)
    /// behind `gate`: the password is written only when the command asks
    /// for it on stderr, and `stdin` only once the command has printed the
    /// gate's line, which is removed from its stdout with anything before
    /// it. Transports that cannot do this refuse.
    fn exec_gated<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        gate: &'a Gate<'a>,
    ) -> BoxFuture<'a, Result<Gated>> {
        let _ = (command, stdin, gate);
        Box::pin(async {
            Err(crate::error::Error::Internal(
                "this connection cannot escalate privileges (`become`)".into(),
            ))
        })
    }

    /// Run `command` as [`Transport::exec`] does (behind `gate` as
    /// [`Transport::exec_gated`] does, when given), handing each line of its
    /// output to `sink` as it arrives: behind a gate, only what follows the
    /// gate's line. What is returned is what `exec` returns, all of the
    /// output included. Transports that cannot stream hand the lines on
    /// when the command has ended.
    fn exec_streamed<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        gate: Option<&'a Gate<'a>>,
        sink: &'a Sink<'a>,
    ) -> BoxFuture<'a, Result<Gated>> {
        Box::pin(async move {
            let gated = match gate {
                Some(gate) => self.exec_gated(command, stdin, gate).await?,
                None => Gated {
                    output: self.exec(command, stdin).await?,
                    passed: true,
                    ..Gated::default()
                },
            };
            if gated.passed {
                let output = &gated.output;
                for (pipe, text) in [
                    (Pipe::Stdout, &output.stdout),
                    (Pipe::Stderr, &output.stderr),
                ] {
                    let mut lines = Lines::default();
                    let mut each = |line: &str| sink(pipe, line);
                    lines.push(text.as_bytes(), &mut each);
                    lines.finish(&mut each);
                }
            }
            Ok(gated)
        })
    }

    /// Open a channel to `host:port` as reached from the remote machine.
    fn forward<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Box<dyn Stream>>>;

    /// Close the connection politely.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// How the connection was made (user, address, host key, the key that
    /// logged in), for `-vvv`.
    fn details(&self) -> Option<String> {
        None
    }

    /// Whether the connection still works, asked before a task reuses it:
    /// a host that rebooted or whose sshd restarted since its last task is
    /// connected to again then (see [`Connector::reconnect`]).
    fn alive(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}

/// How a privilege-escalating command is fed (see [`Transport::exec_gated`]).
pub struct Gate<'a> {
    /// Text on stderr that asks for the password.
    pub prompt: &'a str,
    /// The line the command prints on stdout once it runs as the new user.
    pub passed: &'a str,
    /// Written, with a newline, at the first prompt; a prompt without a
    /// password, or a second one, gets end-of-file instead.
    pub password: Option<&'a [u8]>,
}

/// What a gated command did.
#[derive(Debug, Clone, Default)]
pub struct Gated {
    /// Its output; stdout without the gate's line when it passed, and
    /// stderr without what was printed before it (prompts, sudo's notes).
    pub output: Output,
    /// The gate's line was seen: the command ran as the new user.
    pub passed: bool,
    /// How many times the password was asked for.
    pub asked: u32,
    /// The password was written.
    pub answered: bool,
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
    /// How long to keep trying to connect again to a host whose connection
    /// was lost, before it counts as unreachable (`arpanet_reconnect_timeout`;
    /// zero: no second try).
    #[serde(skip)]
    pub reconnect: Duration,
    /// How the host's SSH port is reached.
    pub proxy: Proxy,
    /// How commands run: through one long-lived shell, or a channel each
    /// (`--session`, `arpanet_session`).
    pub session: SessionMode,
    /// `ansible_connection: local`: the host is this machine, and its
    /// commands run here through `sh -c` as the user running arpanet,
    /// without SSH.
    pub local: bool,
}

/// How a connection runs commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionMode {
    /// One shell per host, opened on first use, runs every command that
    /// needs no terminal and no streamed input (see `ssh/shell.rs`).
    #[default]
    Persistent,
    /// A new SSH session channel for every command, as `ssh host command`.
    Exec,
}

impl SessionMode {
    pub const NAMES: &'static [&'static str] = &["persistent", "exec"];

    pub fn parse(text: &str) -> Option<SessionMode> {
        match text.trim() {
            "persistent" => Some(SessionMode::Persistent),
            "exec" => Some(SessionMode::Exec),
            _ => None,
        }
    }
}

/// The way to a host's SSH port: `ProxyJump` and `ProxyCommand` resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proxy {
    /// A TCP connection from this machine.
    #[default]
    Direct,
    /// A TCP channel (`direct-tcpip`) opened by the last of these jump
    /// hosts, each reached through the ones before it. A hop's `name` is
    /// `user@address:port`, and its own `proxy` is `Direct`.
    Jump(Vec<Target>),
    /// A local command (tokens expanded) whose stdin and stdout carry the
    /// SSH connection, run with `sh -c`.
    Command(String),
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

    /// Connect again to a host whose connection was lost: retried with
    /// backoff for up to `target.reconnect` while the failures say the host
    /// may be coming back (refused, timed out, dropped before the login);
    /// a refused host key or login fails at once.
    fn reconnect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Arc<dyn Transport>>> {
        self.connect(target)
    }
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
    use super::{quote, Capped, Lines, LINE_CAP};

    #[test]
    fn lines_are_split_across_chunks_and_a_last_partial_line_is_kept() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        for chunk in ["a", "b\nc", "d\r\n\nlast"] {
            lines.push(chunk.as_bytes(), &mut |l| seen.push(l.to_owned()));
        }
        assert_eq!(seen, ["ab", "cd", ""]);
        lines.finish(&mut |l| seen.push(l.to_owned()));
        assert_eq!(seen, ["ab", "cd", "", "last"]);
        lines.finish(&mut |l| seen.push(l.to_owned()));
        assert_eq!(seen.len(), 4);

        // A line without end is handed on in bounded pieces.
        let mut long = Lines::default();
        let mut sizes = Vec::new();
        long.push(&vec![b'x'; LINE_CAP * 2 + 5], &mut |l| sizes.push(l.len()));
        long.finish(&mut |l| sizes.push(l.len()));
        assert_eq!(sizes, [LINE_CAP, LINE_CAP, 5]);
        // Even when the line's end comes in a later chunk.
        let mut sizes = Vec::new();
        long.push(&vec![b'x'; LINE_CAP - 1], &mut |l| sizes.push(l.len()));
        long.push(&[&vec![b'x'; LINE_CAP][..], b"\n"].concat(), &mut |l| {
            sizes.push(l.len())
        });
        assert_eq!(sizes, [LINE_CAP, LINE_CAP - 1]);
    }

    #[test]
    fn capped_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut small = Capped::new(8);
        small.push(b"abc");
        assert_eq!(small.into_text(), "abc");

        let mut exact = Capped::new(8);
        exact.push(b"abcd");
        exact.push(b"efgh");
        assert_eq!(exact.into_text(), "abcdefgh");

        // Arriving in pieces of every size gives the same result.
        let data: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let expected = format!(
            "{}\n[arpanet: 984 bytes of output dropped here; 16 bytes kept of each stream, \
             its first and last 8 bytes]\n{}",
            String::from_utf8_lossy(&data[..8]),
            String::from_utf8_lossy(&data[992..])
        );
        for chunk in [1, 3, 7, 8, 9, 100, 1000] {
            let mut capped = Capped::new(16);
            for piece in data.chunks(chunk) {
                capped.push(piece);
            }
            assert_eq!(capped.into_text(), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn quoting_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("/etc/default/docker"), "/etc/default/docker");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
