//! One long-lived shell per host that runs the commands of every task, so
//! that a task costs one round trip and one fork on the host instead of a
//! new SSH session (sshd forks a session process and a login shell for
//! each, about 1.8 ms of host CPU and a round trip or two).
//!
//! The shell is a POSIX shell on a session channel of the host's one
//! connection, opened on first use: the login shell itself where that is
//! `dash` or busybox `ash`, else a `/bin/sh` it starts (see [`START`]).
//! Its first lines define how a command runs (see [`SETUP`]) and report
//! its process id (it leads the session's process group, see
//! `abandon.rs`); then, for each command, arpanet writes one line of
//! script to its stdin:
//!
//! ```sh
//! __arpanet_run 'COMMAND' </dev/null;
//! printf '%s:%s\n' MARK "$?"; printf '%s\n' MARK >&2
//! ```
//!
//! - The command runs in a process of its own, so `cd`, variables, traps,
//!   `exit` and `exec` stay inside it, by the same shell as `ssh host
//!   COMMAND` would use: where the login shell is `/bin/sh` itself, in a
//!   subshell of the persistent shell (one fork, no exec: a third of the
//!   cost on the host); otherwise by the login shell with `-c`. In a
//!   subshell, `$$` and `$PPID` are the persistent shell's and its parent's,
//!   so `kill $$` ends the persistent shell (the task fails saying so).
//! - Its stdin is `/dev/null`, or the given input written into the script
//!   itself (a `printf` of octal escapes piped into it, for input up to
//!   [`INLINE_MAX`]), never the shell's control stream.
//! - Its stdout and stderr go straight to the channel's, byte for byte.
//!   MARK, a fresh random 128-bit nonce for each command that appears only
//!   in the script, ends each stream; the exit status follows it on stdout.
//!   Memory stays bounded: only MARK's length is held back while looking
//!   for it.
//! - A command abandoned (a task timeout, Ctrl-C) takes the shell with it:
//!   a second channel kills the shell's process group, command included,
//!   with no help from sshd (which refuses SSH signals for root logins),
//!   and the next command opens a new shell. Nothing runs beside a command
//!   that finishes. The shell traps no signal: a TERM that sshd delivers
//!   to the group ends it too, and the second channel's KILL reaches a
//!   command that ignored the TERM.
//!
//! A command that ends the shell itself (`kill 0`; `kill $$` in a
//! subshell, `kill $PPID` otherwise) fails
//! with a message saying so, and the next command opens a new shell.
//! Commands that need a terminal, a password fed on demand, or stdin
//! streamed (more than [`INLINE_MAX`], or behind a gate) get a channel of
//! their own, as in `--session exec`.
//!
//! One difference with a channel per command: a background process the
//! command leaves holding its stdout (`daemon &` without a redirection)
//! does not hold up the task; what it prints later is dropped while the
//! shell is idle, or taken for the output of the command running then.

use futures::FutureExt as _;
use russh::ChannelMsg;

use super::abandon::{Abandon, Reported, Way};
use super::{signal_number, Received, SshTransport};
use crate::error::{Error, Result};
use crate::transport::{quote, Gate, Gated, Sink};

/// The most stdin written into a command's script (escaped, up to four
/// times as long); more is streamed on a channel of its own.
pub(super) const INLINE_MAX: usize = 256 << 10;

/// What starts the shell, run by the login shell. A shell that sets none
/// of these variables (`dash`, busybox `ash`, the BSDs' `sh`: the `ash`
/// family) reads the control stream itself, as a script sourced from its
/// stdin, which it parses as it comes; that saves a second start of the
/// same shell per connection (about 0.45 ms of the host's CPU; 2-4% of a
/// 10-host run's time). Any other is replaced by `/bin/sh`, which reads
/// the stream: `bash` reads a sourced pipe to its end before running any
/// of it, and the rest are left out untried. The sourced stream must be
/// a pipe that can be opened again (`-p`, then an open that cannot end
/// the shell): not where sshd gives the session a socket, nor where a
/// server made the pipe as root before it switched to the user (Dropbear).
const START: &str = "case ${BASH_VERSION-}${ZSH_VERSION-}${KSH_VERSION-}${YASH_VERSION-}\
                     ${POSH_VERSION-} in '') if [ -p /dev/stdin ] && \
                     { true </dev/stdin; } 2>/dev/null; then . /dev/stdin; exit; fi;; \
                     esac; exec /bin/sh";

/// The shell's first lines: `__arpanet_run` runs its argument as the
/// login shell would, in a subshell when the login shell is the same
/// program as `/bin/sh` (`-ef`: the same file, through links), else with
/// `"$SHELL" -c`. `set --` drops the function's argument before the
/// command, so the command sees no positional parameters, as with `-c`.
/// The shell defines no variable a command could see.
const SETUP: &str = "if [ \"${SHELL:-/bin/sh}\" -ef /bin/sh ]; \
                     then __arpanet_run() { ( eval \"set --; $1\" ); }; \
                     else __arpanet_run() { \"${SHELL:-/bin/sh}\" -c \"$1\"; }; fi\n";

/// Whether `command` can run in the shell: no NUL byte (it could not be
/// quoted), stdin small enough to inline, and a gate only without a
/// password or stdin to feed once it opens.
pub(super) fn fits(command: &str, stdin: Option<&[u8]>, gate: Option<&Gate<'_>>) -> bool {
    !command.contains('\0')
        && stdin.is_none_or(|data| data.len() <= INLINE_MAX)
        && gate.is_none_or(|gate| gate.password.is_none() && stdin.is_none())
}

/// A host's long-lived shell.
pub(crate) struct Shell {
    /// The channel; dropping the guard kills the shell's process group.
    guard: Abandon,
}

impl Shell {
    /// Open a session channel on `transport`'s connection and start the
    /// shell in it.
    pub(super) async fn open(transport: &SshTransport) -> Result<Shell> {
        let what = "while starting the persistent shell";
        let channel = transport.open_session(what).await?;
        let (reported, report) = Reported::new();
        let mut guard = Abandon::new(
            channel,
            Way::Group(reported),
            &transport.kills,
            &transport.handle,
        );
        let Some((_, writer)) = guard.channel.as_mut() else {
            return Err(Error::Internal("shell channel missing".into()));
        };
        writer
            .exec(true, START)
            .await
            .map_err(|_| transport.lost(what))?;
        writer
            .data(format!("{SETUP}{report}\n").as_bytes())
            .await
            .map_err(|_| transport.lost(what))?;
        Ok(Shell { guard })
    }

    /// Whether the shell is still there to take a command: anything it
    /// printed while idle (a background process of an earlier command) is
    /// dropped; an end of the channel means it is gone.
    pub(super) fn usable(&mut self) -> bool {
        let Some((reader, _)) = self.guard.channel.as_mut() else {
            return false;
        };
        while let Some(msg) = reader.wait().now_or_never() {
            match msg {
                Some(ChannelMsg::Data { .. })
                | Some(ChannelMsg::ExtendedData { .. })
                | Some(ChannelMsg::Success)
                | Some(ChannelMsg::WindowAdjusted { .. }) => {}
                _ => return false,
            }
        }
        true
    }

    /// Run `command` as described in the module docs. An error leaves the
    /// shell unusable: the caller drops it.
    pub(super) async fn run(
        &mut self,
        transport: &SshTransport,
        command: &str,
        stdin: Option<&[u8]>,
        gate: Option<&Gate<'_>>,
        sink: Option<&Sink<'_>>,
    ) -> Result<Gated> {
        let Abandon {
            channel: Some((reader, writer)),
            way: Way::Group(reported),
            ..
        } = &mut self.guard
        else {
            return Err(Error::Internal("shell channel missing".into()));
        };
        let what = format!("while running `{command}`");
        let mark = format!("__arpanet_{:032x}__", rand::random::<u128>());
        writer
            .data(script(command, stdin, &mark).as_bytes())
            .await
            .map_err(|_| transport.lost(&what))?;
        let mut received = Received::new(gate, sink);
        let mut out = Framed::new(format!("{mark}:"));
        let mut err = Framed::new(format!("{mark}\n"));
        while !(out.ended() && err.ended()) {
            match reader.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    // The first command's output follows the shell's report
                    // of its process id.
                    let data = reported.stdout(&data);
                    out.push(&data, &mut |d| received.stdout(d))
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    // Without a password to give, a prompt gets the end of
                    // the command's input, which it already has.
                    err.push(&data, &mut |d| {
                        received.stderr(d);
                    })
                }
                Some(ChannelMsg::Failure) => {
                    return Err(Error::Remote {
                        host: transport.host.clone(),
                        message: format!(
                            "the server refused to start the persistent shell to run `{command}`"
                        ),
                    })
                }
                Some(
                    msg @ (ChannelMsg::ExitStatus { .. }
                    | ChannelMsg::ExitSignal { .. }
                    | ChannelMsg::Eof
                    | ChannelMsg::Close),
                ) => {
                    // A shell that never reported its process id never
                    // started: what it said on stderr tells why.
                    let said = reported
                        .pid
                        .is_none()
                        .then(|| received.finish().output.stderr);
                    return Err(ended(transport, command, reader, msg, said).await);
                }
                Some(_) => {}
                None => return Err(transport.lost(&what)),
            }
        }
        received.status = out.status();
        if received.status.is_none() {
            return Err(Error::Remote {
                host: transport.host.clone(),
                message: format!(
                    "the persistent shell sent an unreadable exit status for `{command}`"
                ),
            });
        }
        Ok(received.finish())
    }

    /// End the shell politely: its input ends, so it exits.
    pub(super) async fn close(mut self) {
        if let Some((_, writer)) = self.guard.channel.take() {
            let _ = writer.eof().await;
        }
    }
}

/// The error for a shell that ended while `command` ran: the command
/// killed it (or the host killed it), and how it ended. `said` is what it
/// said on stderr when it ended before it started (no POSIX login shell).
async fn ended(
    transport: &SshTransport,
    command: &str,
    reader: &mut russh::ChannelReadHalf,
    first: ChannelMsg,
    mut said: Option<String>,
) -> Error {
    if transport.handle.is_closed() {
        return transport.lost(&format!("while running `{command}`"));
    }
    let mut how = how_it_ended(&first);
    // The exit status or signal may follow the EOF; wait for it briefly.
    // A shell that never started may also have words on stderr still on
    // their way: sshd can send the exit status before the last of the
    // output, so those are read up to the channel's close.
    if (how.is_none() || said.is_some()) && !matches!(first, ChannelMsg::Close) {
        // A failed start is worth a longer wait for its words: on a busy
        // host they may be a while behind.
        let bound = std::time::Duration::from_millis(if said.is_some() { 2000 } else { 500 });
        let wait = async {
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Close => break,
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        if let Some(said) = said.as_mut() {
                            said.push_str(&String::from_utf8_lossy(&data));
                        }
                    }
                    msg => {
                        if let Some(ended) = how_it_ended(&msg) {
                            how = Some(ended);
                        }
                        if how.is_some() && said.is_none() {
                            break;
                        }
                    }
                }
            }
        };
        let _ = tokio::time::timeout(bound, wait).await;
    }
    let how = how.unwrap_or_default();
    if let Some(said) = said {
        let said = match said.trim() {
            "" => String::new(),
            text => format!(", saying: {text}"),
        };
        return Error::Remote {
            host: transport.host.clone(),
            message: format!(
                "the persistent shell did not start (to run `{command}`): the login shell \
                 ended{how}{said}; arpanet needs a POSIX login shell (sh, dash, bash, zsh, ksh)"
            ),
        };
    }
    Error::Remote {
        host: transport.host.clone(),
        message: format!(
            "the persistent shell ended while running `{command}`{how}: the command may have \
             killed it (`kill 0`; `kill $$` where the login shell is /bin/sh, as a command \
             then runs in a subshell of it; `kill $PPID` otherwise); the next command starts \
             a new one, and `arpanet_session: exec` gives each command a process and a \
             channel of its own"
        ),
    }
}

/// ` (exit N)` or ` (killed by signal N)` from a channel's last words.
fn how_it_ended(msg: &ChannelMsg) -> Option<String> {
    match msg {
        ChannelMsg::ExitStatus { exit_status } => Some(format!(" (exit {exit_status})")),
        ChannelMsg::ExitSignal { signal_name, .. } => Some(match signal_number(signal_name) {
            Some(n) => format!(" (killed by signal {n})"),
            None => " (killed by a signal)".into(),
        }),
        _ => None,
    }
}

/// The line of script that runs `command` in the shell (see the module
/// docs).
fn script(command: &str, stdin: Option<&[u8]>, mark: &str) -> String {
    let (input, redirect) = match stdin {
        Some(data) => (format!("printf '{}' | ", escape(data)), ""),
        None => (String::new(), " </dev/null"),
    };
    format!(
        "{input}__arpanet_run {}{redirect}; \
         printf '%s:%s\\n' {mark} \"$?\"; printf '%s\\n' {mark} >&2\n",
        quote(command)
    )
}

/// `data` as a `printf` format that prints it exactly: printable ASCII and
/// newlines as they are, `%` doubled, everything else (quotes, backslashes,
/// control and non-ASCII bytes, NUL, a leading `-`) as a three-digit octal
/// escape.
fn escape(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() + data.len() / 4);
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'%' => out.push_str("%%"),
            // A leading `-` would be taken for an option.
            b'-' if i == 0 => out.push_str("\\055"),
            b'\'' | b'\\' => out.push_str(&format!("\\{b:03o}")),
            b'\n' | b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}

/// One output stream of a command in the shell, up to its end mark:
/// everything before the mark is handed on as it arrives except an end
/// that may be the mark's beginning (shorter than the mark).
pub(super) struct Framed {
    mark: Vec<u8>,
    held: Vec<u8>,
    /// What followed the mark, once it has shown.
    after: Option<Vec<u8>>,
}

impl Framed {
    pub(super) fn new(mark: String) -> Framed {
        Framed {
            mark: mark.into_bytes(),
            held: Vec::new(),
            after: None,
        }
    }

    pub(super) fn push(&mut self, data: &[u8], each: &mut dyn FnMut(&[u8])) {
        if let Some(after) = &mut self.after {
            after.extend_from_slice(data);
            return;
        }
        self.held.extend_from_slice(data);
        if let Some(at) = memchr::memmem::find(&self.held, &self.mark) {
            each(&self.held[..at]);
            self.after = Some(self.held[at + self.mark.len()..].to_vec());
            self.held = Vec::new();
            return;
        }
        // Hold back only what may be the mark's beginning, so a line is
        // handed on (to a live sink) as soon as it arrives.
        let longest = self.held.len().min(self.mark.len() - 1);
        let keep = (1..=longest)
            .rev()
            .find(|&k| self.held.ends_with(&self.mark[..k]))
            .unwrap_or(0);
        let done = self.held.len() - keep;
        if done > 0 {
            each(&self.held[..done]);
            self.held.drain(..done);
        }
    }

    /// The mark has shown, and (on stdout, whose mark ends in `:`) the
    /// status line after it.
    pub(super) fn ended(&self) -> bool {
        match &self.after {
            None => false,
            Some(after) => self.mark.ends_with(b"\n") || after.contains(&b'\n'),
        }
    }

    /// The exit status written after the mark.
    pub(super) fn status(&self) -> Option<u32> {
        let after = self.after.as_ref()?;
        let line = after.split(|&b| b == b'\n').next()?;
        std::str::from_utf8(line).ok()?.trim().parse().ok()
    }

    /// What followed the line after the mark, once it has ended.
    pub(super) fn trailer(&self) -> &[u8] {
        let after = self.after.as_deref().unwrap_or_default();
        match memchr::memchr(b'\n', after) {
            Some(at) => &after[at + 1..],
            None => &[],
        }
    }

    /// What is held back as the mark's possible beginning.
    pub(super) fn held(&self) -> &[u8] {
        &self.held
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::net::Shutdown;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::{escape, Framed, START};

    /// What the process reading the control stream reports about itself
    /// (its arguments) when `program` runs [`START`] with a pipe or a
    /// socket for stdin, and what it said on stderr.
    fn reader(program: &[&str], socket: bool) -> (String, String) {
        let line = b"tr '\\0' ' ' < /proc/$$/cmdline; echo\n";
        let mut command = Command::new(program[0]);
        command
            .args(&program[1..])
            .args(["-c", START])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = if socket {
            let (theirs, mut ours) = UnixStream::pair().unwrap();
            let child = command.stdin(OwnedFd::from(theirs)).spawn().unwrap();
            ours.write_all(line).unwrap();
            ours.shutdown(Shutdown::Write).unwrap();
            child
        } else {
            let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
            child.stdin.take().unwrap().write_all(line).unwrap();
            child
        };
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{program:?}: {out:?}");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(&out.stdout), text(&out.stderr))
    }

    /// `dash` sources a pipe it can open and starts nothing else; `bash`
    /// (which would read the pipe to its end first), a socket, and a pipe
    /// made by root for a shell that runs as another user (as Dropbear
    /// does) get `/bin/sh` instead, and the command still runs.
    #[test]
    fn the_start_sources_only_a_pipe_it_can_open_and_only_in_dash() {
        if !Path::new("/bin/dash").exists() {
            eprintln!("note: skipped, no /bin/dash");
            return;
        }
        let (own, said) = reader(&["/bin/dash"], false);
        assert!(own.starts_with("/bin/dash -c case "), "{own}");
        assert_eq!(said, "");
        assert_eq!(reader(&["/bin/bash"], false).0, "/bin/sh \n");
        assert_eq!(
            reader(&["/bin/dash"], true),
            ("/bin/sh \n".into(), String::new())
        );
        if rustix::process::geteuid().is_root() && Path::new("/usr/bin/setpriv").exists() {
            let nobody = [
                "/usr/bin/setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/bin/dash",
            ];
            assert_eq!(reader(&nobody, false), ("/bin/sh \n".into(), String::new()));
        }
    }

    #[test]
    fn the_mark_is_found_across_chunks_and_nothing_before_it_is_lost() {
        let data = b"abc__m__d\x00e__mark__x__mark__:7\nrest";
        for size in 1..data.len() {
            let mut framed = Framed::new("__mark__:".into());
            let mut got = Vec::new();
            for chunk in data.chunks(size) {
                framed.push(chunk, &mut |d| got.extend_from_slice(d));
            }
            assert_eq!(got, b"abc__m__d\x00e__mark__x", "chunks of {size}");
            assert!(framed.ended());
            assert_eq!(framed.status(), Some(7));
        }
        // Held back: only what may begin the mark.
        let mut framed = Framed::new("0123456789".into());
        let mut got = 0;
        framed.push(&[b'x'; 1000], &mut |d| got += d.len());
        assert_eq!(got, 1000);
        framed.push(b"x012", &mut |d| got += d.len());
        assert_eq!(got, 1001);
        assert!(!framed.ended());
    }

    #[test]
    fn stdin_escapes_into_a_printf_format_byte_for_byte() {
        let all: Vec<u8> = (b'-'..=255).chain(0..b'-').collect();
        let format = escape(&all);
        assert!(format.is_ascii());
        assert!(!format.contains('\''));
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf '{format}'"))
            .output()
            .unwrap();
        assert_eq!(out.stdout, all);
    }
}
