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
    /// The heartbeat (see [`BEAT`]).
    Beat,
    /// Anything else (the shell's own complaints, the rest of a cut line).
    Other(&'a str),
}

/// The script's head: the end on a signal, the tagger, fd 4. mawk reads
/// a pipe a buffer at a time unless `-W interactive` (which also writes
/// each string of a `print` apart: hence one string a line); gawk needs
/// `fflush`; any other awk, or none, gets the shell loop (slower: about
/// 20,000 lines a second, against mawk's millions).
const HEAD: &str = r#"trap 'trap - INT TERM HUP; kill 0' INT TERM HUP
case $(awk -W version 2>&1 </dev/null) in
mawk*) tag() { awk -W interactive -v t="$1" 'BEGIN { ORS = "" } { print t " " $0 "\n" }'; } ;;
"GNU Awk"*) tag() { awk -v t="$1" 'BEGIN { ORS = "" } { print t " " $0 "\n"; fflush() }'; } ;;
*) tag() { while IFS= read -r l || [ -n "$l" ]; do printf '%s %s\n' "$1" "$l"; done; } ;;
esac
exec 4>&1
"#;

/// The remote script: `command(container)` is each container's
/// `docker logs` command line.
pub(super) fn script(containers: &[String], command: impl Fn(&str) -> String) -> String {
    let mut script = String::from(HEAD);
    for (index, container) in containers.iter().enumerate() {
        // fd 3 is the stdout tagger's pipe, fd 4 the channel's stdout.
        script.push_str(&format!(
            "{{ {{ {} 2>&1 1>&3 3>&-; printf 'exit {index} %s\\n' \"$?\" >&4; }} \
             | tag {index} >&2 3>&-; }} 3>&1 | tag {index} & pids=\"$pids $!\"\n",
            command(container)
        ));
    }
    script.push_str(BEAT);
    script
}

/// The script's end: the heartbeat, then the wait for every container.
/// The heartbeat is an empty line a second on stdout; once the channel is
/// gone its write fails, and it signals the process group. This ends the
/// `docker logs` of quiet containers when sshd refused the signal (it
/// does for root: "session signalling requires privilege separation") or
/// the connection dropped. `sleep` holds no output, so a finished script
/// does not wait for it.
const BEAT: &str = r#"( trap '' PIPE; while sleep 1 </dev/null >/dev/null 2>&1 4>&- && printf '\n' >&4; do :; done; kill 0 ) 2>/dev/null &
beat=$!
wait $pids
kill $beat 2>/dev/null
"#;

/// Read one line the script sent on `pipe`.
pub(super) fn read(pipe: Pipe, line: &str, count: usize) -> Tagged<'_> {
    if pipe == Pipe::Stdout && line.is_empty() {
        return Tagged::Beat;
    }
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
        assert_eq!(read(Pipe::Stdout, "", 2), Tagged::Beat);
        assert_eq!(read(Pipe::Stderr, "", 2), Tagged::Other(""));
        assert_eq!(read(Pipe::Stdout, "exit 1 0", 2), Tagged::Exit(1, 0));
        assert_eq!(read(Pipe::Stdout, "exit 0 143", 2), Tagged::Exit(0, 143));
        // A status line only on stdout; an index only below the count.
        assert_eq!(read(Pipe::Stderr, "exit 0 1", 2), Tagged::Other("exit 0 1"));
        assert_eq!(read(Pipe::Stdout, "2 hello", 2), Tagged::Other("2 hello"));
        for other in ["hello", "01 x", "-1 x", "+1 x", "1", " 1 x"] {
            assert_eq!(
                read(Pipe::Stdout, other, 20),
                Tagged::Other(other),
                "{other:?}"
            );
        }
    }

    /// A `docker` that prints a line on stdout and one without a newline
    /// on stderr, writes its pid to `PIDS`, then fails for the container
    /// `bad`, and for the others waits (up to 10 s) to be told to end by
    /// a file `GO`; with a `sleep`, so that a PATH of this directory alone
    /// has no awk.
    fn fake_docker() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker");
        std::fs::write(
            &docker,
            "#!/bin/sh\nfor a in \"$@\"; do last=$a; done\necho $$ >>\"$PIDS\"\n\
             echo \"out of $last\"; printf 'no newline from %s' \"$last\" >&2\n\
             [ \"$last\" != bad ] || exit 3\n\
             i=0; while [ ! -e \"$GO\" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
             [ -e \"$GO\" ]\n",
        )
        .unwrap();
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/bin/sleep", dir.path().join("sleep")).unwrap();
        dir
    }

    /// The script for `containers`, started by `shell` with `path` in its
    /// own process group (its `kill 0` must not reach the tests), the
    /// fake docker's files in `dir`.
    fn start(
        shell: &str,
        path: &str,
        dir: &std::path::Path,
        containers: &[&str],
    ) -> std::process::Child {
        use std::os::unix::process::CommandExt as _;
        let containers: Vec<String> = containers.iter().map(|c| c.to_string()).collect();
        let text = script(&containers, |c| {
            format!("docker logs {}", crate::transport::quote(c))
        });
        let _ = std::fs::remove_file(dir.join("go"));
        let _ = std::fs::remove_file(dir.join("pids"));
        std::process::Command::new(shell)
            .args(["-c", &text])
            .env("PATH", path)
            .env("GO", dir.join("go"))
            .env("PIDS", dir.join("pids"))
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The shells (dash and bash, the usual login shells) and PATHs (with
    /// this machine's awk, mawk, and without any) to try the script with.
    fn shells_and_paths(dir: &std::path::Path) -> Vec<(&'static str, String)> {
        let with_awk = format!("{}:/usr/bin:/bin", dir.display());
        let without = dir.display().to_string();
        ["/bin/sh", "/bin/bash"]
            .into_iter()
            .flat_map(|s| [(s, with_awk.clone()), (s, without.clone())])
            .collect()
    }

    /// Each line must arrive while its `docker logs` still runs.
    #[test]
    fn the_script_tags_each_container_s_lines_as_they_come_and_its_status() {
        use std::io::BufRead as _;
        let dir = fake_docker();
        for (shell, path) in shells_and_paths(dir.path()) {
            let mut child = start(shell, &path, dir.path(), &["web", "bad", "it's"]);
            let (tx, rx) = std::sync::mpsc::channel();
            for (pipe, reader) in [
                (
                    "out",
                    Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                ),
                ("err", Box::new(child.stderr.take().unwrap())),
            ] {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in std::io::BufReader::new(reader).lines() {
                        let _ = tx.send(format!("{pipe}: {}", line.unwrap()));
                    }
                });
            }
            drop(tx);
            let mut seen = Vec::new();
            // Before the end is allowed: the line of each, and bad's end.
            let early = [
                "out: 0 out of web",
                "out: 1 out of bad",
                "out: 2 out of it's",
                "out: exit 1 3",
                "err: 1 no newline from bad",
            ];
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
            while !early.iter().all(|l| seen.iter().any(|s| s == l)) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => seen.push(line),
                    Err(_) => panic!("{shell} with PATH={path}: only {seen:?} in time"),
                }
            }
            std::fs::write(dir.path().join("go"), "").unwrap();
            seen.extend(rx.iter());
            assert!(child.wait().unwrap().success(), "{shell} with PATH={path}");
            // The heartbeat's empty lines aside.
            seen.retain(|l| l != "out: ");
            seen.sort();
            assert_eq!(
                seen,
                [
                    "err: 0 no newline from web",
                    "err: 1 no newline from bad",
                    "err: 2 no newline from it's",
                    "out: 0 out of web",
                    "out: 1 out of bad",
                    "out: 2 out of it's",
                    "out: exit 0 0",
                    "out: exit 1 3",
                    "out: exit 2 0",
                ],
                "{shell} with PATH={path}"
            );
        }
    }

    /// No signal comes (as when sshd refuses it), and the containers say
    /// nothing more: once nobody reads the script's output, the heartbeat
    /// ends it and its `docker logs` within seconds, not after their 10.
    #[test]
    fn the_heartbeat_ends_quiet_docker_logs_once_nobody_reads() {
        use std::io::Read as _;
        let dir = fake_docker();
        for (shell, path) in shells_and_paths(dir.path()) {
            let mut child = start(shell, &path, dir.path(), &["web", "db"]);
            let mut stdout = child.stdout.take().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !(String::from_utf8_lossy(&got).contains("0 out of web")
                && String::from_utf8_lossy(&got).contains("1 out of db"))
            {
                let n = stdout.read(&mut buf).unwrap();
                assert!(n > 0, "{shell} with PATH={path}: ended early");
                got.extend_from_slice(&buf[..n]);
            }
            drop(stdout);
            let closed = std::time::Instant::now();
            let pids = std::fs::read_to_string(dir.path().join("pids")).unwrap();
            let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
            while pids.split_whitespace().any(alive) || child.try_wait().unwrap().is_none() {
                assert!(
                    closed.elapsed() < std::time::Duration::from_secs(4),
                    "{shell} with PATH={path}: still running"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            assert!(!dir.path().join("go").exists());
        }
    }
}
