//! `container_gate` over real SSH, against a stand-in `docker` first on the
//! session's PATH (the lab test runs it against real Docker): a container
//! that restarts during the settle window fails the run with its state,
//! restart count, last exit code and its last 20 log lines; one that has been
//! up longer than the window passes at once.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use crate::support::{Cluster, Run};

/// `docker inspect` answers from `first` at its first call, from `state`
/// after; `docker logs` prints 25 numbered lines.
const FAKE_DOCKER: &str = r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
  inspect)
    if [ -e "$dir/seen" ]; then cat "$dir/state"; else touch "$dir/seen"; cat "$dir/first"; fi ;;
  logs)
    i=1; while [ $i -le 25 ]; do echo "web says $i"; i=$((i+1)); done ;;
  *) exit 1 ;;
esac
"#;

fn gate(cluster: &Cluster, bin: &Path, first: &str, state: &str, settle: u32) -> Run {
    std::fs::write(bin.join("first"), first).unwrap();
    std::fs::write(bin.join("state"), state).unwrap();
    let _ = std::fs::remove_file(bin.join("seen"));
    let playbook = cluster.write_file(
        "gate.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - container_gate:\n        names: [web]\n        settle: {settle}\n"
        ),
    );
    let inventory = cluster.inventory(&[]);
    cluster.run_playbook(&inventory, &playbook)
}

#[test]
fn a_container_that_restarts_in_the_window_fails_its_gate_with_what_was_seen() {
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let docker = bin.path().join("docker");
    std::fs::write(&docker, FAKE_DOCKER).unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cluster = Cluster::start_with_config(
        1,
        &format!("SetEnv PATH={}:/usr/bin:/bin\n", bin.path().display()),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let started = |ago: u64| {
        let out = std::process::Command::new("date")
            .args([
                "-u",
                "-d",
                &format!("@{}", now - ago),
                "+%Y-%m-%dT%H:%M:%S.000000001Z",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };

    // Up 2 s and running at the first sample; restarted (exit code 3) at the
    // next: running again, but the restart count moved.
    let crashed = gate(
        &cluster,
        bin.path(),
        &format!("/web running 0 0 {} -\n", started(2)),
        &format!("/web running 1 3 {} -\n", started(0)),
        10,
    );
    assert_eq!(crashed.code, 2, "{crashed}");
    assert!(
        crashed.stdout.contains(
            "`web`: running, restart count 1 (was 0 when the gate began), last exit code 3"
        ),
        "{crashed}"
    );
    assert!(
        crashed.stdout.contains("last 20 log lines of `web`:"),
        "{crashed}"
    );
    assert!(crashed.stdout.contains("web says 25"), "{crashed}");
    assert!(crashed.stdout.contains("web says 6\n"), "{crashed}");
    assert!(
        !crashed.stdout.contains("web says 5\n"),
        "more than 20 lines:\n{crashed}"
    );

    // Up for an hour: no need to wait out the window.
    let up = format!("/web running 4 0 {} -\n", started(3600));
    let started_at = Instant::now();
    let steady = gate(&cluster, bin.path(), &up, &up, 30);
    assert_eq!(steady.code, 0, "{steady}");
    assert!(
        started_at.elapsed().as_secs() < 30,
        "it waited out the window"
    );
}
