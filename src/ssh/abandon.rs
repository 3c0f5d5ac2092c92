//! Killing what an abandoned command (a task timeout, Ctrl-C) leaves
//! running on the host. Without a pty, closing the channel does not stop
//! it: sshd only closes its pipes, and a `sleep` never notices.
//!
//! The SSH `signal` request, TERM then KILL, is the first attempt: OpenSSH
//! (since 7.9) delivers it with `killpg` to the session's process group.
//! But sshd refuses it for a session without post-auth privilege
//! separation, which every root login is ("session signalling requires
//! privilege separation"), so each kind of channel has a second way that
//! needs no help from sshd:
//!
//! - the persistent shell (`shell.rs`), and a command on a channel of its
//!   own, report their process id on stdout when they start (a line taken
//!   out of the output again, see [`Reported`]); sshd made that process
//!   the leader of the session's process group, so a second channel kills
//!   that group, TERM then KILL half a second later, when the signals have
//!   not closed the channel within half a second;
//! - a terminal is hung up by sshd when its channel closes.
//!
//! The kill runs as a task recorded in the connection's kills, which
//! `SshTransport::close` waits for, so it happens before arpanet exits.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::{ChannelMsg, Sig};

use super::shell::Framed;
use super::ClientHandler;

/// The kills of abandoned commands still under way.
pub(super) type Kills = Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>;

/// A channel's two halves.
type Halves = (russh::ChannelReadHalf, russh::ChannelWriteHalf<client::Msg>);

/// How often a refused session channel is retried (sshd may not have freed
/// the slots of channels that just closed).
pub(super) const OPEN_RETRIES: u32 = 20;

/// How long a kill waits for the killing channel to finish.
const KILLER_WAIT: Duration = Duration::from_secs(3);

/// Open a session channel on `handle`, retrying for a moment when sshd
/// refuses it.
pub(super) async fn open_session(
    handle: &Handle<ClientHandler>,
) -> std::result::Result<russh::Channel<client::Msg>, russh::Error> {
    let mut attempt = 0;
    loop {
        match handle.channel_open_session().await {
            Err(russh::Error::ChannelOpenFailure(_)) if attempt < OPEN_RETRIES => {
                attempt += 1;
                let pause = Duration::from_millis(10 * u64::from(attempt.min(10)));
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// What kills the command on a channel, besides signals.
pub(super) enum Way {
    /// A second channel, killing the process group the wrapper reported.
    Group(Reported),
    /// sshd's hangup of the terminal.
    Terminal,
}

/// A channel whose command must not outlive it: dropped while the channel
/// is still open (its future was dropped), it kills the command as the
/// module docs say, then closes the channel itself as a last resort.
/// Closing alone is not enough: the command keeps running, and sshd keeps
/// the session (and its `MaxSessions` slot) until it exits. KILL is
/// repeated because sshd ignores a signal that arrives before the command
/// has set up its process group.
pub(super) struct Abandon {
    pub(super) channel: Option<Halves>,
    pub(super) way: Way,
    kills: Kills,
    handle: Arc<Handle<ClientHandler>>,
}

impl Abandon {
    pub(super) fn new(
        channel: russh::Channel<client::Msg>,
        way: Way,
        kills: &Kills,
        handle: &Arc<Handle<ClientHandler>>,
    ) -> Abandon {
        Abandon {
            channel: Some(channel.split()),
            way,
            kills: Arc::clone(kills),
            handle: Arc::clone(handle),
        }
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some((mut reader, writer)) = self.channel.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut way = std::mem::replace(&mut self.way, Way::Terminal);
        let handle = Arc::clone(&self.handle);
        let kill = runtime.spawn(async move {
            let mut killer = None;
            let mut closed = false;
            for attempt in 0..5 {
                let (signal, wait) = match attempt {
                    0 => (Sig::TERM, 500),
                    _ => (Sig::KILL, 250),
                };
                if writer.signal(signal).await.is_err() {
                    // The connection is gone.
                    return;
                }
                if let (Way::Group(reported), None, 1..) = (&way, &killer, attempt) {
                    if let Some(pid) = reported.pid {
                        killer = kill_group(&handle, pid).await;
                    }
                }
                let wait = Duration::from_millis(wait);
                if tokio::time::timeout(wait, until_closed(&mut reader, &mut way))
                    .await
                    .is_ok()
                {
                    closed = true;
                    break;
                }
            }
            if !closed {
                let _ = writer.close().await;
            }
            if let Some(mut killer) = killer {
                let _ =
                    tokio::time::timeout(KILLER_WAIT, until_closed(&mut killer, &mut way)).await;
            }
        });
        let mut kills = self.kills.lock().unwrap_or_else(|p| p.into_inner());
        kills.retain(|k| !k.is_finished());
        kills.push(kill);
    }
}

/// Read `reader` until its channel closes, taking the reported process id
/// from its stdout on the way.
async fn until_closed(reader: &mut russh::ChannelReadHalf, way: &mut Way) {
    while let Some(msg) = reader.wait().await {
        match msg {
            ChannelMsg::Close => return,
            ChannelMsg::Data { data } => {
                if let Way::Group(reported) = way {
                    reported.stdout(&data);
                }
            }
            _ => {}
        }
    }
}

/// Start killing the process group led by `pid` from a channel of its own
/// (as the login user, as sshd's `killpg` would): TERM, then KILL half a
/// second later. The group is read from `/proc` where there is one (a login
/// shell that is a wrapper script runs the command in a child of its own),
/// else taken to be `pid`'s.
async fn kill_group(handle: &Handle<ClientHandler>, pid: u32) -> Option<russh::ChannelReadHalf> {
    let script = format!(
        "g={pid}; if read -r s 2>/dev/null </proc/{pid}/stat; then s=${{s##*) }}; set -- $s; \
         g=$3; fi; kill -TERM -$g 2>/dev/null || exit 0; sleep 0.5 2>/dev/null || sleep 1; \
         kill -KILL -$g 2>/dev/null; exit 0"
    );
    let channel = open_session(handle).await.ok()?;
    let (reader, writer) = channel.split();
    writer.exec(false, script).await.ok()?;
    let _ = writer.eof().await;
    Some(reader)
}

/// The stdout of a command on a channel of its own, behind the line that
/// reports its process id: `MARK PID`, where MARK is a fresh random nonce
/// for each command. That line is taken out and everything else handed on
/// byte for byte; what comes before it (a login shell's banner) too. Only
/// what may be the line's beginning is held back while looking for it.
/// Stdout, not stderr: sshd sends what it read from stdout first, so a
/// first write there keeps a command's stdout, then stderr, in that order.
pub(super) struct Reported {
    line: Framed,
    /// The reported process id, once the line has shown.
    pub(super) pid: Option<u32>,
    /// The line has shown (or could not be read): the rest passes as is.
    passed: bool,
}

impl Reported {
    /// A fresh mark, and the line of shell that reports the shell's process
    /// id with it.
    pub(super) fn new() -> (Reported, String) {
        let mark = format!("__arpanet_{:032x}__", rand::random::<u128>());
        let report = format!("printf '%s %s\\n' {mark} \"$$\"");
        let reported = Reported {
            line: Framed::new(format!("{mark} ")),
            pid: None,
            passed: false,
        };
        (reported, report)
    }

    /// A fresh mark, and `command` behind the line that reports its
    /// process id with it.
    pub(super) fn wrap(command: &str) -> (Reported, String) {
        let (reported, report) = Reported::new();
        (reported, format!("{report}\n{command}"))
    }

    /// Take stdout's `data`: what the command printed in it (all of it,
    /// once the line has passed).
    pub(super) fn stdout<'d>(&mut self, data: &'d [u8]) -> Cow<'d, [u8]> {
        if self.passed {
            return Cow::Borrowed(data);
        }
        let mut out = Vec::new();
        self.line.push(data, &mut |d| out.extend_from_slice(d));
        if self.line.ended() {
            self.pid = self.line.status();
            self.passed = true;
            out.extend_from_slice(self.line.trailer());
        }
        Cow::Owned(out)
    }

    /// At the end of the channel: what was held back while looking for a
    /// line that never came.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.passed {
            self.passed = true;
            out.extend_from_slice(self.line.held());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reported;

    /// The mark `Reported::wrap` put in `wrapped`.
    fn mark_of(wrapped: &str) -> String {
        let mark = wrapped.split_whitespace().nth(3).unwrap();
        assert!(mark.starts_with("__arpanet_"), "{wrapped}");
        mark.to_owned()
    }

    #[test]
    fn the_reported_line_is_taken_out_in_any_chunks_and_the_rest_kept() {
        for size in 1..60 {
            let (mut reported, wrapped) = Reported::wrap("true");
            let mark = mark_of(&wrapped);
            let data = format!("banner {mark}\n{mark} 4242\nerr: {mark} x\n");
            let mut out = Vec::new();
            for chunk in data.as_bytes().chunks(size) {
                out.extend_from_slice(&reported.stdout(chunk));
            }
            reported.finish(&mut out);
            assert_eq!(reported.pid, Some(4242), "chunks of {size}");
            let expected = format!("banner {mark}\nerr: {mark} x\n");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "chunks of {size}"
            );
        }
        // No line at all: everything comes back, the held part at the end.
        let (mut reported, _) = Reported::wrap("true");
        let mut out = Vec::new();
        out.extend_from_slice(&reported.stdout(b"sh: 1: cannot fork __arp"));
        reported.finish(&mut out);
        assert_eq!(out, b"sh: 1: cannot fork __arp");
        assert_eq!(reported.pid, None);
    }

    #[test]
    fn the_wrapper_reports_the_process_group_leader_and_runs_the_command() {
        let (mut reported, wrapped) = Reported::wrap("echo err >&2; echo $$; exit 3");
        let out = std::process::Command::new("setsid")
            .args(["-w", "/bin/sh", "-c", &wrapped])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stderr, b"err\n");
        let mut printed = reported.stdout(&out.stdout).into_owned();
        reported.finish(&mut printed);
        // The shell sshd would start, here made a session leader by
        // `setsid` as sshd does: the id it reports is its own.
        let pid = reported.pid.expect("a reported process id");
        assert_eq!(printed, format!("{pid}\n").as_bytes());
    }
}
