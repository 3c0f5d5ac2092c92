//! One node's part of `arpanet logs`: every chosen container's
//! `docker logs` in one remote shell on one SSH channel, each line tagged
//! with its container, and the tags read back here.
//!
//! Why one channel: a channel per container stopped at sshd's
//! `MaxSessions` (arpanet keeps at most 6 open per connection), so with
//! `-f` the seventh container of a node and later were never shown. One
//! channel per node shows any number, and leaves the connection's other
//! slots free.
//!
//! The script runs each `docker logs` in the background. Its stdout goes
//! through a tagger to the channel's stdout, its stderr through another
//! to the channel's stderr, so the two streams stay apart; the tagger
//! prefixes each line with the container's index (`3 LINE`), as soon as
//! the line is written (`awk` with `fflush`, or a `read` loop where there
//! is no `awk`). When a `docker logs` ends, `exit INDEX STATUS` goes to
//! stdout untagged. A TERM, INT or HUP (Ctrl-C here: see `ssh.rs`, which
//! signals the channel's process group) makes the shell signal its whole
//! process group, so no `docker logs` is left behind even when `sudo`
//! stands between sshd and the shell.
//!
//! Lines from different containers are written by different processes:
//! a line is one write up to the tagger's buffer (measured: 8 KiB for
//! mawk and dash's `printf`, 4 KiB for bash's), so a longer line may be
//! cut by another container's line; the cut-off part shows as a warning
//! without its container.

use crate::transport::Pipe;

/// What one line from the channel is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tagged<'a> {
    /// A log line of the container at this index.
    Line(usize, &'a str),
    /// The container at this index: its `docker logs` ended with this
    /// status.
    Exit(usize, u32),
    /// Anything else (the shell's own complaints, the rest of a cut line).
    Other(&'a str),
}

/// The remote script: `command(container)` is each container's
/// `docker logs` command line.
pub(super) fn script(containers: &[String], command: impl Fn(&str) -> String) -> String {
    let mut script = String::from(
        "trap 'trap - INT TERM HUP; kill 0' INT TERM HUP\n\
         if command -v awk >/dev/null 2>&1; then\n\
         \x20 tag() { awk -v t=\"$1\" '{ print t \" \" $0; fflush() }'; }\n\
         else\n\
         \x20 tag() { while IFS= read -r l || [ -n \"$l\" ]; do printf '%s %s\\n' \"$1\" \"$l\"; done; }\n\
         fi\n\
         exec 4>&1\n",
    );
    for (index, container) in containers.iter().enumerate() {
        // fd 3 is the stdout tagger's pipe, fd 4 the channel's stdout.
        script.push_str(&format!(
            "{{ {{ {} 2>&1 1>&3 3>&-; printf 'exit {index} %s\\n' \"$?\" >&4; }} \
             | tag {index} >&2 3>&-; }} 3>&1 | tag {index} &\n",
            command(container)
        ));
    }
    script.push_str("wait\n");
    script
}

/// Read one line the script sent on `pipe`.
pub(super) fn read(pipe: Pipe, line: &str, count: usize) -> Tagged<'_> {
    if pipe == Pipe::Stdout {
        if let Some(rest) = line.strip_prefix("exit ") {
            if let Some((index, status)) = rest.split_once(' ') {
                if let (Ok(index), Ok(status)) = (index.parse(), status.parse()) {
                    if index < count {
                        return Tagged::Exit(index, status);
                    }
                }
            }
        }
    }
    // The index as the script writes it: digits, no sign, no leading zero.
    let tagged = line.split_once(' ').and_then(|(index, text)| {
        let digits = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
        let canonical = index == "0" || !index.starts_with('0');
        match digits && canonical {
            true => index
                .parse::<usize>()
                .ok()
                .filter(|&i| i < count)
                .map(|i| (i, text)),
            false => None,
        }
    });
    match tagged {
        Some((index, text)) => Tagged::Line(index, text),
        None => Tagged::Other(line),
    }
}

#[cfg(test)]
mod tests {
    use super::{read, script, Tagged};
    use crate::transport::Pipe;

    #[test]
    fn lines_are_read_back_by_their_tags() {
        assert_eq!(read(Pipe::Stdout, "0 hello", 2), Tagged::Line(0, "hello"));
        assert_eq!(
            read(Pipe::Stderr, "1  two  spaces ", 2),
            Tagged::Line(1, " two  spaces ")
        );
        assert_eq!(read(Pipe::Stdout, "1 ", 2), Tagged::Line(1, ""));
        assert_eq!(read(Pipe::Stdout, "exit 1 0", 2), Tagged::Exit(1, 0));
        assert_eq!(read(Pipe::Stdout, "exit 0 143", 2), Tagged::Exit(0, 143));
        // A status line only on stdout; an index only below the count.
        assert_eq!(read(Pipe::Stderr, "exit 0 1", 2), Tagged::Other("exit 0 1"));
        assert_eq!(read(Pipe::Stdout, "2 hello", 2), Tagged::Other("2 hello"));
        for other in ["hello", "01 x", "-1 x", "+1 x", "1", "", " 1 x"] {
            assert_eq!(
                read(Pipe::Stdout, other, 20),
                Tagged::Other(other),
                "{other:?}"
            );
        }
    }

    /// The script run by this machine's `/bin/sh`, with a `docker` that
    /// prints its arguments on stdout and a line on stderr, then fails
    /// for the container called `bad`: with and without `awk`.
    #[test]
    fn the_script_tags_each_container_s_streams_and_statuses() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker");
        std::fs::write(
            &docker,
            "#!/bin/sh\nfor a in \"$@\"; do last=$a; done\n\
             echo \"out of $last\"; printf 'no newline from %s' \"$last\" >&2\n\
             [ \"$last\" != bad ]\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
        let containers = ["web".to_owned(), "bad".to_owned(), "it's".to_owned()];
        let text = script(&containers, |c| {
            format!("docker logs {}", crate::transport::quote(c))
        });
        // Without awk: a PATH of only the fake docker and the shell's
        // builtins (`printf` and `[` are builtins of dash and bash). Run by
        // dash and by bash, the usual login shells.
        let with_awk = format!("{}:/usr/bin:/bin", dir.path().display());
        let without = dir.path().display().to_string();
        let shells = ["/bin/sh", "/bin/bash"];
        for (shell, path) in shells.iter().flat_map(|s| [(s, &with_awk), (s, &without)]) {
            let out = std::process::Command::new(shell)
                .args(["-c", &text])
                .env("PATH", &path)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let mut stdout: Vec<_> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            let mut stderr: Vec<_> = String::from_utf8(out.stderr)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            stdout.sort();
            stderr.sort();
            assert_eq!(
                stdout,
                [
                    "0 out of web",
                    "1 out of bad",
                    "2 out of it's",
                    "exit 0 0",
                    "exit 1 1",
                    "exit 2 0"
                ],
                "{shell} with PATH={path}"
            );
            assert_eq!(
                stderr,
                [
                    "0 no newline from web",
                    "1 no newline from bad",
                    "2 no newline from it's"
                ],
                "{shell} with PATH={path}"
            );
        }
    }
}
