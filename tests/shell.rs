//! The persistent shell (`--session persistent`, the default): commands of
//! every task run through one long-lived shell per host, framed so each
//! one's output and status come back exactly. Against real sshd. Where a
//! test checks the shell itself (one channel, a killed shell replaced), it
//! says what the other mode gives when the suite runs with
//! `ARPANET_SESSION=exec`.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use arpanet::error::Error;
use arpanet::ssh::SshConnector;
use arpanet::transport::{Connector, SessionMode, Target, Transport, OUTPUT_CAP};

use crate::support::sshd::session_mode;
use crate::support::{eventually, Cluster, SshdHost};

async fn connect(target: &Target) -> Arc<dyn Transport> {
    let connector = SshConnector::new(8).with_agent(None).with_passphrase(None);
    match connector.connect(target).await {
        Ok(t) => t,
        Err(e) => panic!("cannot connect to {}: {e}", target.name),
    }
}

/// A connection to the cluster's first host as `user`.
async fn connect_as(cluster: &Cluster, user: &str) -> Arc<dyn Transport> {
    connect(&Target {
        user: user.to_owned(),
        ..cluster.target(0)
    })
    .await
}

/// A cluster of one host plus a second host logging at DEBUG1 (so its
/// session channels can be counted), trusted in the cluster's known_hosts,
/// and the target for it.
fn logged_host() -> (Cluster, SshdHost, Target) {
    let cluster = Cluster::start(1);
    let host = SshdHost::start_logged(&cluster.authorized_keys);
    let mut known = fs::read_to_string(&cluster.known_hosts).unwrap();
    known.push_str(&format!("{}\n", host.known_hosts_line()));
    fs::write(&cluster.known_hosts, known).unwrap();
    let target = Target {
        address: host.address.clone(),
        port: host.port,
        ..cluster.target(0)
    };
    (cluster, host, target)
}

/// Session channels sshd opened so far (its DEBUG1 line for each).
fn session_channels(host: &SshdHost) -> usize {
    host.log()
        .lines()
        .filter(|l| l.contains("server_input_channel_open: ctype session"))
        .count()
}

/// `bytes` as a `printf` format (octal escapes for all of them).
fn octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn output_comes_back_exactly_binary_without_newline_and_with_mark_like_text() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster.target(0)).await;
    // Every byte value, NUL and invalid UTF-8 included, ending without a
    // newline; the same on stderr, reversed.
    let bytes: Vec<u8> = (0..=255u8).collect();
    let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
    let out = ssh
        .exec(
            &format!(
                "printf '{}'; printf '{}' >&2",
                octal(&bytes),
                octal(&reversed)
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, String::from_utf8_lossy(&bytes));
    assert_eq!(out.stderr, String::from_utf8_lossy(&reversed));
    assert_eq!(out.status, 0);

    // Text shaped like the shell's end marks (another nonce), on both
    // streams, with and without a newline, then an exit status.
    let fake = format!("__arpanet_{:032x}__", 0x1234u128);
    let out = ssh
        .exec(
            &format!(
                "printf '{fake}:0\\n{fake}'; printf '{fake}\\n' >&2; printf '%s' \"$*\"; exit 7"
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, format!("{fake}:0\n{fake}"));
    assert_eq!(out.stderr, format!("{fake}\n"));
    assert_eq!(out.status, 7);

    // Nothing at all, then a lone newline.
    let out = ssh.exec("true", None).await.unwrap();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    let out = ssh.exec("echo", None).await.unwrap();
    assert_eq!(out.stdout, "\n");

    // Binary stdin comes through exactly, and input a command leaves
    // unread never reaches the next command.
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let out = ssh
        .exec("od -An -v -tu1 | wc -w", Some(&data))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), data.len().to_string());
    let out = ssh.exec("cksum", Some(&data)).await.unwrap();
    let local = std::process::Command::new("cksum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&data)?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.stdout, String::from_utf8_lossy(&local.stdout));
    let out = ssh.exec("head -c 3", Some(b"abcdef")).await.unwrap();
    assert_eq!(out.stdout, "abc");
    let out = ssh.exec("cat; echo end", None).await.unwrap();
    assert_eq!(out.stdout, "end\n");
    ssh.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_reading_stdin_gets_eof_not_the_next_command() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster.target(0)).await;
    // Were its stdin the shell's control stream, `cat` would block (or
    // swallow the next command's script).
    let read = ssh.exec("cat; read -r line; echo \"read: $?\"", None);
    let out = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a command reading stdin must get end-of-file")
        .unwrap();
    assert_eq!(out.stdout, "read: 1\n");
    let out = ssh.exec("echo next", None).await.unwrap();
    assert_eq!(out.stdout, "next\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn cd_variables_and_traps_do_not_leak_into_the_next_command() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster.target(0)).await;
    let home = ssh.exec("pwd", None).await.unwrap().stdout;
    let out = ssh
        .exec(
            "cd /tmp && X=1 && export Y=2 && umask 077 && trap 'echo trapped' EXIT && pwd",
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "/tmp\ntrapped\n");
    let out = ssh.exec("pwd; echo \"[$X$Y]\"; umask", None).await.unwrap();
    assert_eq!(out.stdout, format!("{home}[]\n0022\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_exec_and_kill_inside_a_command_do_not_wedge_the_session() {
    let (_cluster, host, target) = logged_host();
    let ssh = connect(&target).await;
    let status = |cmd: &'static str| {
        let ssh = Arc::clone(&ssh);
        async move { ssh.exec(cmd, None).await.unwrap().status }
    };
    assert_eq!(status("exit 3").await, 3);
    assert_eq!(status("exec sh").await, 0);
    assert_eq!(status("echo x; exec sh -c 'exit 4'").await, 4);
    assert_eq!(status("sh -c 'kill $$'").await, 128 + 15);
    assert_eq!(
        ssh.exec("echo alive", None).await.unwrap().stdout,
        "alive\n"
    );
    if session_mode() == SessionMode::Exec {
        // The command is the session's shell: it ends itself.
        assert_eq!(status("kill $$").await, 128 + 15);
        assert_eq!(status("kill -9 $$").await, 128 + 9);
        ssh.close().await;
        return;
    }
    // All of that in the one shell.
    assert_eq!(session_channels(&host), 1, "{}", host.log());
    // The test user's login shell is /bin/sh, so a command runs in a
    // subshell of the persistent shell, and `$$` is that shell's: killing
    // it fails the command, saying so, and the next one gets a new shell.
    for (n, (command, signal)) in [("kill $$; sleep 1", 15), ("kill -9 $$; sleep 5", 9)]
        .into_iter()
        .enumerate()
    {
        match ssh.exec(command, None).await {
            Err(Error::Remote { message, .. }) => {
                assert!(
                    message.contains("the persistent shell ended while running"),
                    "{message}"
                );
                assert!(
                    message.contains(&format!("killed by signal {signal}")),
                    "{message}"
                );
            }
            other => panic!("expected the shell's end, got {other:?}"),
        }
        assert_eq!(
            ssh.exec("echo again", None).await.unwrap().stdout,
            "again\n"
        );
        assert_eq!(session_channels(&host), 2 + n, "{}", host.log());
    }
    ssh.close().await;
}

/// Where the login shell is `/bin/sh`, commands run in subshells of the
/// persistent shell (one fork each, the same `$$`); any other login shell
/// runs each command itself with `-c`, as `ssh host COMMAND` does (here a
/// wrapper that prints a banner around every command it runs).
#[tokio::test(flavor = "multi_thread")]
async fn a_command_runs_in_a_subshell_only_where_the_login_shell_is_bin_sh() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster.target(0)).await;
    let pid = |out: &str| out.trim().parse::<u32>().unwrap();
    let first = pid(&ssh.exec("echo $$", None).await.unwrap().stdout);
    let second = pid(&ssh.exec("echo $$", None).await.unwrap().stdout);
    let positional = ssh.exec("echo \"[$#$*]\"", None).await.unwrap().stdout;
    assert_eq!(positional, "[0]\n");
    match session_mode() {
        SessionMode::Persistent => assert_eq!(first, second),
        SessionMode::Exec => assert_ne!(first, second),
    }
    ssh.close().await;

    let ssh = connect_as(&cluster, crate::support::ensure_banner_user()).await;
    for _ in 0..2 {
        let out = ssh.exec("echo hello", None).await.unwrap().stdout;
        assert!(out.starts_with("WELCOME BANNER"), "{out}");
        assert!(out.contains("hello\n"), "{out}");
        assert!(out.contains("GOODBYE BANNER"), "{out}");
    }
    ssh.close().await;
}

/// Where the login shell is `dash`, it is the persistent shell itself (it
/// reads the control stream as a sourced script, sparing a second start of
/// a shell); a `bash` login shell would read that stream to its end before
/// running any of it, so there the persistent shell is a `/bin/sh` it
/// started, and each command still runs by `bash`. What the host's
/// `/proc` says about the process that reads the stream tells which.
#[tokio::test(flavor = "multi_thread")]
async fn the_login_shell_reads_the_commands_itself_only_where_it_is_dash() {
    let cluster = Cluster::start(1);
    // The arguments of the process the command's shell belongs to (the
    // persistent shell): `$$` in dash's subshells, `$PPID` of bash's.
    let argv = |pid: &str| {
        format!("printf '%s,' \"${{BASH_VERSION:+bash}}\"; tr '\\0' ' ' < /proc/{pid}/cmdline")
    };
    let run = |ssh: Arc<dyn Transport>, command: String| async move {
        match tokio::time::timeout(Duration::from_secs(30), ssh.exec(&command, None)).await {
            Ok(out) => out.unwrap().stdout,
            Err(_) => panic!("`{command}` did not finish in 30 s"),
        }
    };

    // The test account's login shell is /bin/sh: dash here, as on
    // Debian; elsewhere (bash as /bin/sh) there is nothing to compare.
    let sh = fs::canonicalize("/bin/sh").unwrap_or_default();
    if !sh.ends_with("dash") {
        eprintln!("note: skipped, /bin/sh is {}, not dash", sh.display());
        return;
    }
    let ssh = connect(&cluster.target(0)).await;
    let dash = run(Arc::clone(&ssh), argv("$$")).await;
    ssh.close().await;
    let ssh = connect_as(&cluster, crate::support::ensure_bash_user()).await;
    let bash = run(Arc::clone(&ssh), argv("$PPID")).await;
    assert_eq!(run(Arc::clone(&ssh), "echo again".into()).await, "again\n");
    ssh.close().await;

    // Every command ran by the login shell's program.
    assert!(dash.starts_with(','), "{dash}");
    assert!(bash.starts_with("bash,"), "{bash}");
    if session_mode() == SessionMode::Persistent {
        // dash as sshd started it (`sh -c ...`); bash replaced by /bin/sh.
        assert!(dash.starts_with(",sh -c "), "{dash}");
        assert_eq!(bash, "bash,/bin/sh ", "{bash}");
    }
}

/// A login shell that cannot run the persistent shell's start (as csh
/// or fish cannot parse it): the command fails saying the shell did not
/// start and what the login shell said, not that the command killed it.
/// With a channel per command the login shell refuses the command itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_shell_that_cannot_start_the_shell_says_so() {
    let cluster = Cluster::start(1);
    let ssh = connect_as(&cluster, crate::support::ensure_refusing_user()).await;
    let result = ssh.exec("echo hello", None).await;
    ssh.close().await;
    match session_mode() {
        SessionMode::Persistent => {
            let Err(Error::Remote { message, .. }) = result else {
                panic!("expected the shell not to start, got {result:?}");
            };
            assert!(message.contains("did not start"), "{message}");
            assert!(message.contains("(exit 3)"), "{message}");
            assert!(
                message.contains("refusing-sh: this shell takes no commands"),
                "{message}"
            );
        }
        SessionMode::Exec => {
            let out = result.unwrap();
            assert_eq!(out.status, 3);
            assert!(out.stderr.starts_with("refusing-sh:"), "{out:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_command_is_killed_and_the_next_one_runs() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster.target(0)).await;
    let marker = format!("{}", 4000 + rand_suffix());
    let command = format!("sleep {marker}; echo never");
    let never = ssh.exec(&command, None);
    assert!(tokio::time::timeout(Duration::from_millis(500), never)
        .await
        .is_err());
    let out = ssh.exec("echo next", None).await.unwrap();
    assert_eq!(out.stdout, "next\n");
    // The abandoned command is gone from the host.
    let mut left = true;
    for _ in 0..50 {
        left = cluster.hosts[0]
            .session_commands()
            .iter()
            .any(|c| c.contains(&format!("sleep {marker}")));
        if !left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!left, "{:?}", cluster.hosts[0].session_commands());
    ssh.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_left_running_on_the_host_between_commands() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster.target(0)).await;
    for i in 0..20 {
        let stdin = format!("in {i}\n");
        let out = ssh
            .exec(&format!("echo {i}; cat >&2"), Some(stdin.as_bytes()))
            .await
            .unwrap();
        assert_eq!((out.stdout, out.stderr), (format!("{i}\n"), stdin));
        let out = ssh.exec("echo quiet >&2; exit 7", None).await.unwrap();
        assert_eq!((out.stderr.as_str(), out.status), ("quiet\n", 7));
    }
    // Idle: the persistent shell alone (each command's watcher went with
    // it); with a channel per command, nothing.
    let expected = match session_mode() {
        SessionMode::Persistent => 1,
        SessionMode::Exec => 0,
    };
    let mut left = Vec::new();
    for _ in 0..40 {
        left = cluster.hosts[0]
            .session_commands()
            .into_iter()
            .filter(|c| !c.starts_with("sshd"))
            .collect::<Vec<_>>();
        if left.len() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left.len(), expected, "{left:?}");
    ssh.close().await;
}

fn rand_suffix() -> u32 {
    std::process::id() % 1000
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_megabytes_of_output_are_counted_and_capped() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster.target(0)).await;
    let total: u64 = 100_000_000 + 3;
    let out = ssh
        .exec(
            "head -c 100000000 /dev/zero | tr '\\0' x; printf end; echo err >&2",
            None,
        )
        .await
        .unwrap();
    let dropped = total - OUTPUT_CAP as u64;
    let marker = format!("\n[arpanet: {dropped} bytes of output dropped here;");
    let (head, tail) = out.stdout.split_once(&marker).expect(&out.stdout[..200]);
    assert_eq!(head, "x".repeat(OUTPUT_CAP / 2));
    let tail = tail.split_once("]\n").unwrap().1;
    assert_eq!(tail.len(), OUTPUT_CAP / 2);
    assert!(tail.ends_with("xxend"));
    assert_eq!(out.stderr, "err\n");
    assert_eq!(ssh.exec("echo next", None).await.unwrap().stdout, "next\n");
}

#[test]
fn five_hundred_tasks_on_one_host_use_one_session_channel() {
    let (cluster, host, _) = logged_host();
    let inventory = cluster.write_file(
        "logged.ini",
        &format!(
            "logged ansible_host={} ansible_port={} ansible_user={}\n",
            host.address, host.port, cluster.user
        ),
    );
    let mut playbook = String::from("- hosts: all\n  gather_facts: false\n  tasks:\n");
    for i in 0..500 {
        playbook.push_str(&format!("    - command: echo {i}\n"));
    }
    playbook.push_str(
        "    - shell: echo \"$((1 + 1))\"\n      register: last\n    - assert:\n        that: last.stdout == '2'\n",
    );
    let playbook = cluster.write_file("many.yml", &playbook);
    let run = cluster.run_playbook(&inventory, &playbook);
    assert_eq!(run.code, 0, "{}", run);
    let channels = session_channels(&host);
    match session_mode() {
        SessionMode::Persistent => assert_eq!(channels, 1, "{}", host.log()),
        SessionMode::Exec => assert!(channels >= 501, "{channels}"),
    }
}

/// A finished run leaves nothing of its own on the host: the connection
/// closes when arpanet exits (the run leaves it to the exit, see
/// `leave_to_exit`), and with it the shell that ran the tasks (the `$$`
/// and `$PPID` a task prints: the persistent shell and the process sshd
/// forked for its session; with `--session exec`, the last command's).
#[test]
fn a_finished_run_leaves_no_shell_or_session_on_the_host() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "pid.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n    \
         - shell: echo \"shell pid $$ parent $PPID\"\n      register: shell\n    - debug:\n        \
         msg: \"{{ shell.stdout }}\"\n",
    );
    let run = cluster.run_playbook(&inventory, &playbook);
    assert_eq!(run.code, 0, "{run}");
    // The debug task's line (the task header shows the unexpanded `$$`).
    let pids: Vec<u32> = run
        .stdout
        .lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("shell pid ")?;
            let (shell, parent) = rest.split_once(" parent ")?;
            Some(vec![shell.parse().ok()?, parent.parse().ok()?])
        })
        .unwrap_or_else(|| panic!("no shell pid in the output\n{run}"));
    // Ended, even if not yet reaped (a zombie).
    let running = |pid: &u32| {
        fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
            status
                .lines()
                .any(|l| l.starts_with("State:") && !l.contains("zombie"))
        })
    };
    assert!(
        eventually(Duration::from_secs(10), || !pids.iter().any(running)),
        "still running on the host after the run (the shell, its parent): {:?}\n{run}",
        pids.iter().filter(|p| running(p)).collect::<Vec<_>>()
    );
}

#[test]
fn a_task_that_never_ends_times_out_and_the_next_task_on_the_host_runs() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let marker = 7000 + rand_suffix();
    let playbook = cluster.write_file(
        "hang.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: sleep {marker}\n      \
             timeout: 1\n      ignore_errors: true\n    - command: echo after\n      \
             register: after\n    - assert:\n        that: after.stdout == 'after'\n"
        ),
    );
    let run = cluster.run_playbook(&inventory, &playbook);
    assert_eq!(run.code, 0, "{}", run);
    assert!(run.stdout.contains("timed out after 1 s"), "{}", run);
    assert!(!cluster.hosts[0]
        .session_commands()
        .iter()
        .any(|c| c.contains(&format!("sleep {marker}"))));
}

#[test]
fn session_exec_and_the_variable_turn_the_shell_off() {
    let (cluster, host, _) = logged_host();
    let line = format!(
        "logged ansible_host={} ansible_port={} ansible_user={}",
        host.address, host.port, cluster.user
    );
    let playbook = cluster.write_file(
        "three.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n    - command: 'true'\n    - command: 'true'\n",
    );
    let run_with = |inventory_line: &str, args: &[&str]| {
        let before = session_channels(&host);
        let inventory = cluster.write_file("one.ini", &format!("{inventory_line}\n"));
        let mut all = vec![
            "run",
            "-i",
            inventory.to_str().unwrap(),
            playbook.to_str().unwrap(),
        ];
        all.extend(args);
        let run = cluster.run(&all);
        assert_eq!(run.code, 0, "{}", run);
        session_channels(&host) - before
    };
    assert_eq!(run_with(&line, &["--session", "exec"]), 3);
    assert_eq!(run_with(&format!("{line} arpanet_session=exec"), &[]), 3);
    assert_eq!(
        run_with(
            &format!("{line} arpanet_session=persistent"),
            &["--session", "exec"]
        ),
        1
    );
    let inventory = cluster.write_file("bad.ini", &format!("{line} arpanet_session=pty\n"));
    let run = cluster.run_playbook(&inventory, &playbook);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("`arpanet_session` must be one of `persistent`, `exec`, got `pty`"),
        "{}",
        run
    );
}
