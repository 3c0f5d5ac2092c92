//! Output arpanet parses from a host, framed by markers. A host's login
//! shell may print a banner or a MOTD on every session (a wrapper script
//! around `/bin/sh`, a noisy `ForceCommand`), and that text arrives on the
//! same stdout as the answer to a probe (`stat`, `docker inspect`, ...). So
//! every script whose stdout is read is wrapped: a line with a fresh random
//! marker before it, one after it, and only what lies between is read.
//! Nothing a host prints outside the frame, nor anything a file or a
//! container label holds, can pose as the answer: the marker is new each
//! time.

use crate::error::{Error, Result};
use crate::transport::{Output, Transport};

/// The markers of one framed script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    begin: String,
    end: String,
}

impl Frame {
    /// Markers with a fresh 64-bit nonce.
    pub(crate) fn new() -> Frame {
        Frame::with_nonce(rand::random())
    }

    fn with_nonce(nonce: u64) -> Frame {
        Frame {
            begin: format!("__ARPANET_{nonce:016x}_BEGIN__"),
            end: format!("__ARPANET_{nonce:016x}_END__"),
        }
    }

    /// `script` as a command that prints the begin marker, runs `script` in
    /// a subshell (its `exit` and `set -e` stay inside), prints a newline
    /// and the end marker, and exits with the script's status.
    pub(crate) fn wrap(&self, script: &str) -> String {
        format!(
            "echo {}; (\n{script}\n); s=$?; printf '\\n%s\\n' {}; exit $s",
            self.begin, self.end
        )
    }

    /// What the script printed, without anything around the frame; `None`
    /// when the frame is not complete (the script did not run to its end).
    pub(crate) fn payload<'a>(&self, stdout: &'a str) -> Option<&'a str> {
        let begin = format!("{}\n", self.begin);
        let start = stdout.find(&begin)? + begin.len();
        let end = format!("\n{}\n", self.end);
        let len = stdout[start..].rfind(&end)?;
        Some(&stdout[start..start + len])
    }
}

/// Run `script` on `host` through `transport` with its stdout framed: the
/// output's stdout is only what `script` printed. A script that succeeded
/// without a complete frame is an error (the login shell is no POSIX shell,
/// or it rewrote the output); a failed one keeps its raw stdout.
pub(crate) async fn exec(
    transport: &dyn Transport,
    host: &str,
    script: &str,
    stdin: Option<&[u8]>,
) -> Result<Output> {
    let frame = Frame::new();
    let mut out = transport.exec(&frame.wrap(script), stdin).await?;
    match frame.payload(&out.stdout) {
        Some(payload) => out.stdout = payload.to_owned(),
        None if out.success() => {
            return Err(Error::Remote {
                host: host.to_owned(),
                message: format!(
                    "the output of `{script}` lacks arpanet's markers, so it cannot be read \
                     (is the login shell of the SSH user a POSIX shell?)"
                ),
            })
        }
        None => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Frame;

    #[test]
    fn only_the_framed_part_is_read() {
        let frame = Frame::with_nonce(0xabc);
        let wrapped = frame.wrap("stat x");
        assert!(
            wrapped.starts_with("echo __ARPANET_0000000000000abc_BEGIN__; (\nstat x\n);"),
            "{wrapped}"
        );
        let stdout = "WELCOME BANNER\n__ARPANET_0000000000000abc_BEGIN__\n81a4 0 0 root root\n\
                      \n__ARPANET_0000000000000abc_END__\nbye\n";
        assert_eq!(frame.payload(stdout), Some("81a4 0 0 root root\n"));
    }

    #[test]
    fn payload_is_exact_even_without_a_final_newline_or_with_empty_output() {
        let frame = Frame::with_nonce(1);
        let b = "__ARPANET_0000000000000001_BEGIN__";
        let e = "__ARPANET_0000000000000001_END__";
        assert_eq!(
            frame.payload(&format!("{b}\nno newline\n{e}\n")),
            Some("no newline")
        );
        assert_eq!(frame.payload(&format!("{b}\n\n{e}\n")), Some(""));
    }

    #[test]
    fn an_incomplete_or_foreign_frame_is_not_read() {
        let frame = Frame::with_nonce(2);
        let other = Frame::with_nonce(3);
        let stdout =
            "__ARPANET_0000000000000003_BEGIN__\nmissing\n\n__ARPANET_0000000000000003_END__\n";
        assert_eq!(other.payload(stdout), Some("missing\n"));
        assert_eq!(frame.payload(stdout), None);
        assert_eq!(
            frame.payload("__ARPANET_0000000000000002_BEGIN__\nhalf"),
            None
        );
    }
}
