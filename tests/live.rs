//! Live output against real sshd hosts: `exec` streams each line as it
//! arrives with its host's prefix (stderr marked `!`), `exec -t` and
//! `shell` run on a remote terminal driven by keys written to a local one,
//! and `logs` checks its input before any host is contacted and goes on
//! when a node is down. `logs -f` against real containers is in the lab
//! test at the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Cluster, Run};

#[test]
fn exec_shows_each_line_while_the_command_still_runs() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let work = crate::run::workdir(&cluster);
    let finished = work.join("finished");
    // The expected lines are computed remotely, so none of them is in the
    // command line (which the task banner shows). The command leaves a
    // file when it ends.
    let mut child = cluster.spawn(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "--",
        &format!(
            "for i in 1 2 3 4; do echo tick-$((i*10)); sleep 1; done; echo done-$((6*7)); touch {}",
            finished.display()
        ),
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut before = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("stdout ended before the first line")
            .unwrap();
        if line == "node1 | tick-10" {
            break;
        }
        before.push(line);
    }
    // The first line arrived while the command was still running.
    assert!(
        !finished.exists(),
        "the command had already ended when its first line arrived"
    );
    assert!(!before.iter().any(|l| l.contains("done-42")), "{before:?}");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    let output: Vec<&String> = rest.iter().filter(|l| l.starts_with("node1 |")).collect();
    assert_eq!(
        output,
        [
            "node1 | tick-20",
            "node1 | tick-30",
            "node1 | tick-40",
            "node1 | done-42"
        ],
        "{rest:?}"
    );
    // The output comes before the host's result, and is not repeated under it.
    let result = rest.iter().position(|l| l.starts_with("changed: [node1]"));
    let last = rest.iter().position(|l| l == "node1 | done-42");
    assert!(result > last, "{rest:?}");
    assert!(!rest.iter().any(|l| l.trim() == "tick-20"), "{rest:?}");
}

#[test]
fn exec_shows_stderr_of_a_successful_command_marked() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    let inv = inventory.to_str().unwrap();
    let command = "echo out-$((20+1)); echo warn-$((40+2)) >&2";
    let out = cluster.run(&["exec", "-i", inv, "--", command]);
    assert_eq!(out.code, 0, "{out}");
    for host in ["node1", "node2"] {
        assert!(
            out.stdout.contains(&format!("\n{host} | out-21\n")),
            "{out}"
        );
        assert!(
            out.stdout.contains(&format!("\n{host} ! warn-42\n")),
            "{out}"
        );
    }

    // Grouped: each host's lines together, right under its result.
    let out = cluster.run(&["exec", "-i", inv, "--group", "--", command]);
    assert_eq!(out.code, 0, "{out}");
    for host in ["node1", "node2"] {
        let lines: Vec<&str> = out.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("changed: [{host}]")))
            .unwrap_or_else(|| panic!("no result for {host}: {out}"));
        assert_eq!(
            lines[at + 1..at + 3],
            [format!("{host} | out-21"), format!("{host} ! warn-42")],
            "{out}"
        );
    }

    // JSON: one `output` object per line, naming its stream.
    let out = cluster.run(&[
        "exec", "-i", inv, "-l", "node2", "-o", "json", "--", command,
    ]);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "output")
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!({"event": "output", "host": "node2", "stream": "stdout", "line": "out-21"}),
            serde_json::json!({"event": "output", "host": "node2", "stream": "stderr", "line": "warn-42"}),
        ],
        "{out}"
    );
}

/// Run `arpanet ARGS` under `script`, so that its stdin and stdout are a
/// terminal; `keys` is written once `ready` has appeared in its output.
fn on_a_terminal(cluster: &Cluster, args: &[&str], ready: &str, keys: &str) -> Run {
    let mut line = String::from(env!("CARGO_BIN_EXE_arpanet"));
    for arg in args {
        line.push(' ');
        line.push_str(&format!("'{}'", arg.replace('\'', r"'\''")));
    }
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(cluster.dir())
        .env("HOME", &cluster.home)
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written = false;
    let status = loop {
        while let Ok(data) = rx.recv_timeout(Duration::from_millis(20)) {
            seen.extend(data);
        }
        if !written && String::from_utf8_lossy(&seen).contains(ready) {
            stdin.write_all(keys.as_bytes()).unwrap();
            stdin.flush().unwrap();
            written = true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "still running; it printed: {}",
                String::from_utf8_lossy(&seen)
            );
        }
    };
    while let Ok(data) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.extend(data);
    }
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&seen).into_owned(),
        stderr,
    }
}

#[test]
fn exec_t_runs_on_a_remote_terminal_fed_by_the_local_one() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let number = std::process::id() % 1000 + 1;
    let out = on_a_terminal(
        &cluster,
        &[
            "exec",
            "-t",
            "-i",
            inventory.to_str().unwrap(),
            "--",
            "tty; stty size; read x; echo got-$((x*2)); exit 7",
        ],
        "/dev/pts/",
        &format!("{number}\n"),
    );
    // `tty` names a terminal only when sshd allocated one; the command's
    // exit status is arpanet's.
    assert_eq!(out.code, 7, "{out}");
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    assert!(!out.stdout.contains("not a tty"), "{out}");
    assert!(out.stdout.contains(&format!("got-{}", number * 2)), "{out}");
}

#[test]
fn shell_logs_in_to_one_node() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    let out = on_a_terminal(
        &cluster,
        &["shell", "-i", inventory.to_str().unwrap(), "node2"],
        // A login shell's prompt (sh's `$ `) once it reads commands.
        "$ ",
        "echo at-$(( $(echo $SSH_CONNECTION | cut -d' ' -f3 | tr -d .) % 1000 ))-end; exit 5\n",
    );
    assert_eq!(out.code, 5, "{out}");
    // Computed remotely from the address sshd answered on: node2's.
    let address = cluster.hosts[1].address.replace('.', "");
    let expected = format!("at-{}-end", address.parse::<u64>().unwrap() % 1000);
    assert!(out.stdout.contains(&expected), "{expected}: {out}");
}

#[test]
fn exec_t_and_shell_refuse_more_than_one_host_before_contacting_any() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    let inv = inventory.to_str().unwrap();
    for host in &cluster.hosts {
        host.stop();
    }
    let out = cluster.run(&["exec", "-t", "-i", inv, "--", "true"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr
            .contains("`exec -t` runs on exactly one host, and 2 are selected: node1, node2"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: pick one with `--limit NODE`"),
        "{out}"
    );
    let out = cluster.run(&["shell", "-i", inv, "node*"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains("`shell` runs on exactly one host"),
        "{out}"
    );
    let out = cluster.run(&[
        "exec", "-t", "-l", "node1", "-o", "json", "-i", inv, "--", "true",
    ]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("`-o json` does not apply"), "{out}");
    // One host, down: now it is contacted.
    let out = cluster.run(&["exec", "-t", "-i", inv, "-l", "node1", "--", "true"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stderr.contains("connection refused"), "{out}");
}

#[test]
fn logs_checks_its_input_before_contacting_any_host() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    let inv = inventory.to_str().unwrap();
    for host in &cluster.hosts {
        host.stop();
    }
    let out = cluster.run(&["logs", "-i", inv, "consull"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr
            .contains("no managed container is called `consull`"),
        "{out}"
    );
    assert!(out.stderr.contains("did you mean `consul`?"), "{out}");
    // Options after the services, as anywhere.
    let out = cluster.run(&["logs", "consul", "-i", inv, "--since", "yesterday"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains("`--since yesterday` is not a time"),
        "{out}"
    );
    let out = cluster.run(&["logs", "consul", "-f", "--grep", "a(b", "-i", inv]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains("is not a valid regular expression"),
        "{out}"
    );
    // Following never ends, so it cannot take the nodes a few at a time.
    let out = cluster.run(&["logs", "-f", "--forks", "1", "-i", inv]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains(
            "`logs -f` follows every selected node at once, and `--forks 1` is fewer \
             than the 2 selected"
        ),
        "{out}"
    );
    assert!(
        out.stderr.contains("choose the nodes with `--limit`"),
        "{out}"
    );
}

#[test]
fn logs_reports_a_node_that_is_down_and_goes_on_with_the_others() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    cluster.hosts[1].stop();
    // These hosts have no docker: node1 is reached and says so, node2 is
    // reported unreachable; neither stops the other.
    // Also one node at a time.
    for forks in ["20", "1"] {
        let out = cluster.run(&["logs", "-i", inventory.to_str().unwrap(), "--forks", forks]);
        assert_eq!(out.code, 4, "{out}");
        assert!(out.stderr.contains("node2: connection refused"), "{out}");
        assert!(
            out.stderr.contains("node1: cannot list its containers"),
            "{out}"
        );
    }
}

/// `logs -f` on a lab of two nodes, each running a managed container that
/// prints a line a second: lines written after it started come from both
/// nodes, and Ctrl-C ends it with 130. Then eight more containers on one
/// node: `logs` and `logs -f` show every one of them.
#[test]
fn logs_follow_shows_new_lines_from_two_nodes_until_ctrl_c() {
    if std::env::var("ARPANET_LAB_TESTS").ok().as_deref() != Some("1") {
        eprintln!("note: skipping the logs lab test: set ARPANET_LAB_TESTS=1");
        return;
    }
    let _turn = crate::support::lab_turn();
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    let name = crate::support::lab_name("arpanet-logs");
    let subnet = crate::support::lab_subnet(73);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(crate::support::lab_name("arpanet-logs-lab"));
    let home = tempfile::tempdir().unwrap();
    let arpanet = |args: &[&str]| -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arpanet"));
        command
            .args(args)
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .env("ARPANET_LAB_SUBNET", &subnet)
            .env_remove("ARPANET_LAB_NAME")
            .env_remove("SSH_AUTH_SOCK");
        command
    };
    let run = |args: &[&str]| -> Run {
        let output = arpanet(args).output().expect("run arpanet");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    };
    let lab = |command: &str, rest: &[&str]| {
        let mut args = vec![
            "lab",
            command,
            "--dir",
            dir.to_str().unwrap(),
            "--name",
            &name,
        ];
        args.extend_from_slice(rest);
        run(&args)
    };
    struct Down<F: Fn()>(F);
    impl<F: Fn()> Drop for Down<F> {
        fn drop(&mut self) {
            if std::env::var("ARPANET_TEST_KEEP_LAB").is_err() {
                (self.0)();
            }
        }
    }
    let _ = lab("down", &[]);
    let _down = Down(|| {
        let _ = lab("down", &[]);
    });
    let up = lab("up", &["--nodes", "2", "--servers", "1"]);
    assert_eq!(up.code, 0, "lab up failed:\n{up}");
    phase("lab up");

    let inventory = dir.join("inventory.ini");
    let inv = inventory.to_str().unwrap();
    // A managed container printing a numbered line a second, declared in
    // `stack` so `logs` knows its name.
    let ticker = r#"stack:
  - name: ticker
    image: "{{ lab_testsvc_image }}"
    command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 1; done & wait"]
"#;
    std::fs::create_dir_all(dir.join("group_vars")).unwrap();
    std::fs::write(dir.join("group_vars/all.yml"), ticker).unwrap();
    let playbook = dir.join("ticker.yml");
    std::fs::write(
        &playbook,
        r#"- hosts: all
  tasks:
    - docker_container:
        name: ticker
        image: "{{ lab_testsvc_image }}"
        command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 1; done & wait"]
"#,
    )
    .unwrap();
    // `setup` lets the nodes' docker pull from the lab's registry.
    let deployed = run(&["run", "-i", inv, "setup", playbook.to_str().unwrap()]);
    assert_eq!(deployed.code, 0, "{deployed}");
    phase("setup, and the ticker deployed on both nodes");

    // `-n 0`: only lines written from now on.
    let (mut child, rx) = Following::start(arpanet(&[
        "logs", "ticker", "-f", "-n", "0", "-i", inv, "-o", "json",
    ]));
    let mut seen: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 2 || seen.values().any(|ticks| ticks.len() < 3) {
        assert!(Instant::now() < deadline, "lines seen: {seen:?}");
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["service"], "ticker", "{line}");
        assert_eq!(event["stream"], "stdout", "{line}");
        let tick: u64 = event["line"]
            .as_str()
            .and_then(|l| l.strip_prefix("tick-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a tick: {line}"));
        seen.entry(event["host"].as_str().unwrap().to_owned())
            .or_default()
            .push(tick);
    }
    phase("three new lines from each node");
    // Each node's lines arrive one by one as written: consecutive numbers.
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["node1", "node2"]);
    for ticks in seen.values() {
        assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    }

    let (code, stderr) = child.interrupt();
    assert_eq!(code, Some(130), "{stderr}");
    phase("ended by SIGINT");
    // The remote `docker logs` were stopped with it.
    let none_left = |n: u32| {
        let left = || {
            let out = Command::new("docker")
                .args(["exec", &format!("{name}-node{n}"), "sh", "-c"])
                .arg("pgrep -fc '[d]ocker logs' || true")
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let since = Instant::now();
        while left() != "0" && since.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(left(), "0", "`docker logs` still runs on node{n}");
    };
    none_left(1);
    none_left(2);

    // Eight more managed containers on node1, more than the SSH channels
    // arpanet opens at once on one connection (6): each writes a line
    // with a value made now to stdout, another to stderr, then waits.
    let token = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            ^ u128::from(std::process::id())
    );
    let eight = dir.join("eight.yml");
    std::fs::write(
        &eight,
        format!(
            r#"- hosts: node1
  tasks:
    - docker_container:
        name: "said{{{{ item }}}}"
        image: "{{{{ lab_testsvc_image }}}}"
        command: ["sh", "-c", "echo said-{{{{ item }}}}-{token}; echo warned-{{{{ item }}}}-{token} >&2; trap 'exit 0' TERM; while :; do sleep 1; done & wait"]
      loop: [1, 2, 3, 4, 5, 6, 7, 8]
"#
        ),
    )
    .unwrap();
    let deployed = run(&["run", "-i", inv, eight.to_str().unwrap()]);
    assert_eq!(deployed.code, 0, "{deployed}");
    phase("eight more containers on node1");
    let expected: Vec<(String, &str, String)> = (1..=8)
        .flat_map(|i| {
            [
                (format!("said{i}"), "stdout", format!("said-{i}-{token}")),
                (format!("said{i}"), "stderr", format!("warned-{i}-{token}")),
            ]
        })
        .collect();

    // Without `-f`, one node at a time (`--forks 1`): every line of the
    // eight, in the right stream, and node1's lines all before node2's.
    let out = run(&["logs", "-i", inv, "-o", "json", "--forks", "1"]);
    assert_eq!(out.code, 0, "{out}");
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (service, stream, line) in &expected {
        let found = events.iter().any(|e| {
            e["host"] == "node1"
                && e["service"] == *service
                && e["stream"] == *stream
                && e["line"] == *line
        });
        assert!(found, "{service} {stream} {line} not shown: {out}");
    }
    let hosts: Vec<&str> = events.iter().map(|e| e["host"].as_str().unwrap()).collect();
    let first2 = hosts
        .iter()
        .position(|h| *h == "node2")
        .expect("no line of node2");
    assert!(hosts[first2..].iter().all(|h| *h == "node2"), "{hosts:?}");
    // As people read it: node and container, then the line.
    let human = run(&["logs", "-i", inv, "-l", "node1"]);
    assert_eq!(human.code, 0, "{human}");
    for (service, _, line) in &expected {
        let shown = human.stdout.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>()
                == ["node1", service.as_str(), "|", line.as_str()]
        });
        assert!(shown, "{service}: {line} not shown: {human}");
    }
    phase("`logs` shows all eight");

    // With `-f`: the same lines, then Ctrl-C leaves no `docker logs`.
    let (mut child, rx) = Following::start(arpanet(&[
        "logs", "-f", "-l", "node1", "-i", inv, "-o", "json",
    ]));
    let mut missing = expected.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !missing.is_empty() {
        assert!(Instant::now() < deadline, "never shown: {missing:?}");
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        missing.retain(|(service, stream, text)| {
            !(e["service"] == *service && e["stream"] == *stream && e["line"] == *text)
        });
    }
    // Still following, after the backlog of each.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "`logs -f` ended by itself"
    );
    phase("`logs -f` shows all eight, and still runs");
    let (code, stderr) = child.interrupt();
    assert_eq!(code, Some(130), "{stderr}");
    none_left(1);
    phase("ended by SIGINT, nothing left on node1");
}

/// A `logs -f` under test, killed if the test fails before it ends.
struct Following(std::process::Child);

impl Following {
    /// Start `command`; its stdout's lines arrive on the receiver.
    fn start(mut command: Command) -> (Following, std::sync::mpsc::Receiver<String>) {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        (Following(child), rx)
    }

    /// Ctrl-C (SIGINT); its exit code once it ended (within 15 s), and
    /// what it said on stderr.
    fn interrupt(&mut self) -> (Option<i32>, String) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let stopped = Instant::now();
        let status = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(15),
                "still running after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        let _ = self.0.stderr.take().unwrap().read_to_string(&mut stderr);
        (status.code(), stderr)
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
