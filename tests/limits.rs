//! Ctrl-C, task timeouts, lost connections and big outputs, end to end: the
//! built binary against real sshd hosts. Remote processes are found by a
//! marker unique to this test process (`sleep 100000.PID...`), so other
//! tests and other people's processes never count.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{eventually, Cluster, Run, TEST_USER};

/// A `sleep` argument no other process on the machine uses:
/// `100000.PID0N`, a different one per call.
fn marker() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!(
        "100000.{}0{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Pids of the processes whose command line contains `sleep MARKER` (the
/// sshd hosts run on this machine, so their commands are visible here).
fn remote(marker: &str) -> Vec<String> {
    // As the test user: arpanet runs as root, and `exec`'s own command
    // line holds the marker too.
    let out = Command::new("pgrep")
        .args(["-u", TEST_USER, "-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `arpanet` running in the background, its stderr lines arriving on a
/// channel as they are written.
struct Background {
    child: Child,
    stdout: thread::JoinHandle<String>,
    stderr_lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Background {
    fn start(cluster: &Cluster, args: &[&str]) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arpanet"))
            .args(args)
            .current_dir(cluster.dir())
            .env("HOME", &cluster.home)
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("ARPANET_SSH_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, stderr_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Background {
            child,
            stdout,
            stderr_lines,
            stderr: Vec::new(),
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for a stderr line containing `text`; panics after a minute.
    fn wait_stderr(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_millis(100)) {
                self.stderr.push(line);
                if self.stderr.last().is_some_and(|l| l.contains(text)) {
                    return;
                }
            }
        }
        panic!("no `{text}` on stderr:\n{}", self.stderr.join("\n"));
    }

    /// Wait for the process to end (killing it after `limit`).
    fn finish(mut self, limit: Duration) -> Run {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("arpanet still running after {limit:?}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.join().unwrap();
        // The reader thread ends with the pipe.
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push(line);
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.stderr.join("\n"),
        }
    }
}

#[test]
fn ctrl_c_stops_the_remote_command_and_prints_an_interrupted_recap() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    let mark = marker();
    let playbook = cluster.write_file(
        "slow.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - name: slow\n      shell: sleep {mark}; echo survived\n    - name: after\n      command: echo after\n"
        ),
    );
    let run = Background::start(
        &cluster,
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            playbook.to_str().unwrap(),
        ],
    );
    assert!(
        // The sleep on each host (and, with a channel per command, the
        // shell that started it).
        eventually(Duration::from_secs(60), || remote(&mark).len() >= 2),
        "the commands never started"
    );
    run.signal("INT");
    let run = run.finish(Duration::from_secs(60));
    assert_eq!(run.code, 130, "{run}");
    assert!(
        run.stdout.contains("PLAY RECAP (interrupted by Ctrl-C)"),
        "{run}"
    );
    for host in ["node1", "node2"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(host) && l.contains("failed=1")),
            "{run}"
        );
    }
    assert!(
        run.stdout
            .contains("interrupted by Ctrl-C; what the task ran"),
        "{run}"
    );
    assert!(!run.stdout.contains("TASK [after]"), "{run}");
    // Killed, not orphaned: the shell and the sleep it started.
    assert!(
        eventually(Duration::from_secs(5), || remote(&mark).is_empty()),
        "still running on the hosts: {:?}\n{run}",
        remote(&mark)
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let mark = marker();
    let mut run = Background::start(
        &cluster,
        &[
            "exec",
            "-i",
            inventory.to_str().unwrap(),
            "--",
            &format!("sleep {mark}"),
        ],
    );
    assert!(eventually(Duration::from_secs(60), || !remote(&mark).is_empty()));
    // Freeze the host's sshd so the first Ctrl-C cannot finish its kill.
    let sshd = sshd_processes(&cluster);
    for pid in &sshd {
        let _ = Command::new("kill").args(["-STOP", pid]).status();
    }
    run.signal("INT");
    run.wait_stderr("interrupted: stopping the running tasks");
    run.signal("INT");
    let run = run.finish(Duration::from_secs(60));
    for pid in &sshd {
        let _ = Command::new("kill").args(["-CONT", pid]).status();
    }
    assert_eq!(run.code, 130, "{run}");
    // Gone before the recap of the first Ctrl-C.
    assert!(!run.stdout.contains("PLAY RECAP"), "{run}");
}

/// The sshd processes serving connections on host 0 (sshd's children and
/// theirs), not the listener itself.
fn sshd_processes(cluster: &Cluster) -> Vec<String> {
    let pid = std::fs::read_to_string(cluster.hosts[0].dir().join("sshd.pid")).unwrap();
    let mut found = vec![pid.trim().to_owned()];
    let mut i = 0;
    while i < found.len() {
        let out = Command::new("pgrep")
            .args(["-P", &found[i]])
            .output()
            .unwrap();
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        i += 1;
    }
    found.remove(0);
    found
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sshd")
        })
        .collect()
}

#[test]
fn a_task_timeout_fails_the_task_and_kills_its_command() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let (first, second) = (marker(), marker());
    let playbook = cluster.write_file(
        "timeouts.yml",
        &format!(
            r#"- hosts: all
  tasks:
    - name: own limit beats the option
      command: sleep 1.5
      timeout: 30
    - name: hangs
      shell: sleep {first}; echo survived
      timeout: 2
      ignore_errors: true
    - name: no limit at all
      command: sleep 1.5
      timeout: 0
"#
        ),
    );
    let run = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
        "--task-timeout",
        "1",
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("timed out after 2 s"), "{run}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("node1") && l.contains("failed=0") && l.contains("ignored=1")),
        "{run}"
    );
    assert!(
        eventually(Duration::from_secs(5), || remote(&first).is_empty()),
        "the timed-out command still runs\n{run}"
    );

    // `--task-timeout` alone, on an ad-hoc command that ignores SIGTERM
    // (its sleep inherits that): KILL follows, before arpanet exits.
    let run = cluster.run(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "--task-timeout",
        "2",
        "--",
        &format!("trap '' TERM; sleep {second}"),
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.contains("timed out after 2 s"), "{run}");
    assert!(
        eventually(Duration::from_secs(5), || remote(&second).is_empty()),
        "the timed-out command still runs\n{run}"
    );
}

/// Whether process `pid` still runs `sleep MARKER` (a pid reused since
/// runs something else).
fn sleeping(pid: &str, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.windows(2)
            .any(|w| w[0].ends_with(b"sleep") && w[1] == marker.as_bytes())
    })
}

#[test]
fn a_timed_out_command_of_a_root_login_is_killed_in_both_session_modes() {
    // sshd refuses SSH `signal` requests without post-auth privilege
    // separation, which root logins never have ("session signalling
    // requires privilege separation"): the kill must not depend on them.
    let mut cluster = Cluster::start(1);
    cluster.user = "root".into();
    let inventory = cluster.inventory(&[]);
    for mode in ["persistent", "exec"] {
        // A command that dies on TERM, then one that ignores it (KILL
        // must follow); the second task also needs a new shell.
        let commands = [("plain", ""), ("stubborn", "trap \"\" TERM; ")].map(|(name, trap)| {
            let pidfile = cluster.dir().join(format!("{name}-{mode}.pid"));
            (name, trap, pidfile, marker())
        });
        let tasks: String = commands
            .iter()
            .map(|(name, trap, pidfile, mark)| {
                format!(
                    "    - name: {name}\n      shell: sh -c '{trap}echo $$ > {}; exec sleep {mark}'\n      \
                     timeout: 2\n      ignore_errors: true\n",
                    pidfile.display()
                )
            })
            .collect();
        let playbook = cluster.write_file(
            &format!("root-{mode}.yml"),
            &format!("- hosts: all\n  tasks:\n{tasks}"),
        );
        let run = cluster.run(&[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            playbook.to_str().unwrap(),
            "--session",
            mode,
        ]);
        assert_eq!(run.code, 0, "{mode}: {run}");
        assert_eq!(
            run.stdout.matches("timed out after 2 s").count(),
            2,
            "{mode}: {run}"
        );
        assert!(run.stdout.contains("ignored=2"), "{mode}: {run}");
        let mut left = Vec::new();
        for (name, _, pidfile, mark) in &commands {
            let pid = std::fs::read_to_string(pidfile).unwrap_or_else(|e| {
                panic!("{mode}: no pid file for `{name}` ({e}): it never ran\n{run}")
            });
            let pid = pid.trim().to_owned();
            // It did run as root.
            let owner = std::fs::metadata(pidfile).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
            assert_eq!(owner.ok(), Some(0), "{mode} {name}");
            if !eventually(Duration::from_secs(5), || !sleeping(&pid, mark)) {
                // Leave nothing behind on this machine.
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                left.push(format!("`{name}` (pid {pid})"));
            }
        }
        assert!(
            left.is_empty(),
            "{mode}: timed out, still running on the host: {left:?}\n{run}"
        );
    }
}

/// A TCP proxy to `upstream` that forwards until `freeze` is set, then
/// drops everything in both directions while keeping the connections open,
/// as a network partition does.
fn partition_proxy(address: &str, upstream: (String, u16), freeze: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let freeze = Arc::clone(&freeze);
                thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if !freeze.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    // Keep the other side open: a partition sends no FIN.
                    std::mem::forget(to);
                });
            }
        }
    });
    port
}

#[test]
fn a_partition_mid_task_is_noticed_within_the_keepalive_bound() {
    // Two hosts, each behind its own proxy; only node1's is cut. node2's
    // command is as silent, and must outlive the keepalive bound.
    let cluster = Cluster::start(2);
    let mut known_hosts = std::fs::OpenOptions::new()
        .append(true)
        .open(&cluster.known_hosts)
        .unwrap();
    let mut inventory = String::new();
    let mut freezes = Vec::new();
    for (i, host) in cluster.hosts.iter().enumerate() {
        let freeze = Arc::new(AtomicBool::new(false));
        let port = partition_proxy(
            &host.address,
            (host.address.clone(), host.port),
            Arc::clone(&freeze),
        );
        freezes.push(freeze);
        writeln!(known_hosts, "[{}]:{port} {}", host.address, host.host_key).unwrap();
        inventory.push_str(&format!(
            "{} ansible_host={} ansible_port={port} ansible_user={}\n",
            cluster.name(i),
            host.address,
            cluster.user
        ));
    }
    let inventory = cluster.write_file("proxied.ini", &inventory);
    // Longer than the 12 s after which a silent peer is dropped.
    let mark = format!("16.{}", std::process::id());
    let started = std::time::Instant::now();
    let run = Background::start(
        &cluster,
        &[
            "exec",
            "-i",
            inventory.to_str().unwrap(),
            "-o",
            "json",
            "--",
            &format!("exec sleep {mark}"),
        ],
    );
    assert!(eventually(Duration::from_secs(60), || remote(&mark).len() == 2));
    freezes[0].store(true, Ordering::SeqCst);
    // The task started after `started`, so `elapsed` minus this is at most
    // how long the loss took to notice.
    let frozen_at = started.elapsed().as_secs_f64();
    let run = run.finish(Duration::from_secs(120));
    assert_eq!(run.code, 4, "{run}");
    let results: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "host")
        .collect();
    let result = |host: &str| {
        results
            .iter()
            .find(|e| e["host"] == host)
            .unwrap_or_else(|| panic!("no result for {host}\n{run}"))
    };
    let cut = result("node1");
    assert_eq!(cut["status"], "unreachable", "{run}");
    let message = cut["failure"]["message"].as_str().unwrap();
    assert!(message.starts_with("connection lost"), "{run}");
    // The README promises 15 s after the link goes silent (keepalives every
    // 3 s, dropped after 3 unanswered); 15 s × 3 keepalives took 61 s.
    let noticed = cut["elapsed"].as_f64().unwrap() - frozen_at;
    assert!(noticed <= 18.0, "noticed {noticed} s after the cut\n{run}");
    assert_eq!(result("node2")["status"], "changed", "{run}");
}

#[test]
fn big_outputs_keep_their_head_and_tail_with_a_marker() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "big.yml",
        r#"- hosts: all
  tasks:
    - name: print a lot
      shell: "echo FIRST; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo LAST"
      register: big
    - name: measure
      debug:
        msg: "kept {{ big.stdout | length }} ends {{ big.stdout_lines[-1] }}"
"#,
    );
    let run = cluster.run_playbook(&inventory, &playbook);
    assert_eq!(run.code, 0, "{run}");
    let printed = "FIRST\n".len() + 5_000_000 + "\nLAST\n".len();
    let kept = 1 << 20;
    let marker = format!(
        "[arpanet: {} bytes of output dropped here; 1 MiB kept of each stream, its first and last 512 KiB]",
        printed - kept
    );
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("kept "))
        .unwrap_or_else(|| {
            panic!(
                "no debug line\n{}",
                &run.stdout[..run.stdout.len().min(4000)]
            )
        });
    let mut words = line.split_whitespace().skip(1);
    let length: usize = words.next().unwrap().parse().unwrap();
    // The kept bytes, the marker and its line breaks, less the final newline
    // that `register` trims.
    assert_eq!(length, kept + marker.len() + 1, "{line}");
    assert_eq!(words.collect::<Vec<_>>(), ["ends", "LAST"], "{line}");

    // The same through `exec`, which streams it all, a long line in
    // bounded pieces...
    let command = "echo FIRST; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo LAST";
    let inv = inventory.to_str().unwrap();
    let run = cluster.run(&["exec", "-i", inv, "--", command]);
    assert_eq!(run.code, 0, "{}", &run.stderr);
    assert!(run.stdout.contains("\nnode1 | FIRST\n"), "head lost");
    assert!(run.stdout.contains("x\nnode1 | LAST\n"), "tail lost");
    let streamed: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("node1 | "))
        .collect();
    let xs: usize = streamed.iter().map(|l| l.matches('x').count()).sum();
    assert_eq!(xs, 5_000_000);
    let longest = run.stdout.lines().map(str::len).max().unwrap_or(0);
    let long = run
        .stdout
        .lines()
        .find(|l| l.len() == longest)
        .unwrap_or_default();
    assert!(
        longest <= "node1 | ".len() + (64 << 10),
        "a line of {longest} bytes: {}...",
        &long[..80.min(long.len())]
    );

    // ... or, with `--group`, prints what it kept until the host ended.
    let run = cluster.run(&["exec", "-i", inv, "--group", "--", command]);
    assert_eq!(run.code, 0, "{}", &run.stderr);
    assert!(
        run.stdout
            .contains("bytes of output dropped here; 1 MiB kept"),
        "no marker in the output"
    );
    assert!(run.stdout.contains("\nnode1 | FIRST\n"), "head lost");
    assert!(run.stdout.contains("x\nnode1 | LAST\n"), "tail lost");
    assert!(
        run.stdout.len() < 2 * kept,
        "{} bytes printed",
        run.stdout.len()
    );
}
