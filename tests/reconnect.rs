//! A host whose connection drops between two tasks (its sshd killed with
//! every session it served, as when a node reboots) is connected to again
//! before its next task, over real sshd: the run finishes when the host comes
//! back within `arpanet_reconnect_timeout`, and the host is unreachable when
//! it stays away or comes back with another host key.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::{keygen, Cluster, Run};

/// Node2 marks the start of its second task in `dir` and sleeps 1 s, while
/// node1 (which skips it) sits idle: the test cuts node1 then.
fn playbook(cluster: &Cluster, dir: &Path) -> PathBuf {
    cluster.write_file(
        "play.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - command: echo one\n\
             \x20   - name: node2 works while node1 waits\n\
             \x20     when: inventory_hostname == 'node2'\n\
             \x20     shell: touch {dir}/second && sleep 1\n\
             \x20   - name: after the cut\n\
             \x20     command: echo three-{{{{ inventory_hostname }}}}\n",
            dir = dir.display()
        ),
    )
}

fn start(cluster: &Cluster, vars: &[(&str, &str)], args: &[&str]) -> (Child, tempfile::TempDir) {
    let marks = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        marks.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let inventory = cluster.inventory(vars);
    let play = playbook(cluster, marks.path());
    let mut all = vec![
        "run",
        "-i",
        inventory.to_str().unwrap(),
        play.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let child = cluster.spawn(&all);
    let second = marks.path().join("second");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !second.exists() {
        assert!(Instant::now() < deadline, "the second task never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, marks)
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn recap(run: &Run, host: &str) -> String {
    let start = run.stdout.find("PLAY RECAP").expect("a recap");
    run.stdout[start..]
        .lines()
        .find(|l| l.starts_with(host))
        .unwrap_or_else(|| panic!("no recap line for {host}\n{run}"))
        .to_owned()
}

#[test]
fn a_host_whose_sshd_restarts_between_tasks_is_reconnected_and_the_run_finishes() {
    let cluster = Cluster::start(2);
    let (child, _marks) = start(&cluster, &[], &["-v"]);
    // Down for 3 s (connections refused; the last task starts after 1 s),
    // then back on the same address.
    cluster.hosts[0].stop();
    std::thread::sleep(Duration::from_secs(3));
    cluster.hosts[0].restart();
    let run = finish(child);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("three-node1"), "{run}");
    let node1: Vec<String> = recap(&run, "node1")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(
        node1.contains(&"unreachable=0".to_owned()) && node1.contains(&"failed=0".to_owned()),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("<node1> the connection was lost since the last task; reconnected"),
        "{run}"
    );
    assert!(
        !run.stdout.contains("<node2> the connection was lost"),
        "{run}"
    );
}

#[test]
fn a_host_that_stays_away_or_comes_back_with_another_key_is_unreachable() {
    let cluster = Cluster::start(2);

    // Away for longer than the reconnect window: unreachable after it.
    let (child, _marks) = start(&cluster, &[("arpanet_reconnect_timeout", "2")], &["-v"]);
    cluster.hosts[0].stop();
    let run = finish(child);
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stdout.contains("not back after"), "{run}");
    assert!(run.stdout.contains("three-node2"), "{run}");
    assert!(!run.stdout.contains("three-node1"), "{run}");
    cluster.hosts[0].restart();

    // Back at once but with a new host key: refused at once, not retried.
    let (child, _marks) = start(&cluster, &[], &[]);
    let key = &cluster.hosts[0].host_key_file;
    cluster.hosts[0].stop();
    std::fs::remove_file(key).unwrap();
    std::fs::remove_file(key.with_extension("pub")).unwrap();
    keygen(key, "");
    cluster.hosts[0].restart();
    let began = Instant::now();
    let run = finish(child);
    assert_eq!(run.code, 4, "{run}");
    assert!(
        run.stdout.to_lowercase().contains("host key"),
        "not refused for its host key:\n{run}"
    );
    assert!(!run.stdout.contains("three-node1"), "{run}");
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "a refused host key was retried for the whole window"
    );
}
