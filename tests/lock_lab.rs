//! The cluster lock in Consul and reconnection to a restarted node, on a
//! 3-node lab (3 Consul servers: the fewest that make a cluster) with real
//! Consul. Run with `ARPANET_LAB_TESTS=1`; one lab for every step.
//!
//! - the first `bootstrap` (lock file on the boot server, before Consul)
//!   ends with the lock released;
//! - a run holding the Consul lock refuses a second one, naming its pid;
//!   `lock status` shows it; after `kill -9` the next run here takes it
//!   over; another machine's abandoned session goes within two TTLs (of
//!   the last Consul leader election: a new leader restarts the timers);
//!   `lock release --yes` frees a held lock;
//! - a node container restarted between two tasks: the run reconnects to it
//!   and finishes.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::lab::{finish, Lab};

/// The lock's TTL in the lab (the default): a killed run's lock goes within
/// twice that.
const TTL: u64 = 15;

/// `arpanet ARGS... -i INVENTORY`, started.
fn start(lab: &Lab, args: &[&str]) -> Child {
    let inventory = lab.inventory();
    let mut all = args.to_vec();
    all.extend(["-i", inventory.to_str().unwrap()]);
    lab.spawn(&all)
}

/// Start `playbook` and wait until `lock status` names its pid.
#[allow(clippy::zombie_processes)]
fn hold(lab: &Lab, playbook: &str) -> Child {
    let mut child = start(lab, &["run", playbook]);
    let pid = format!("pid {}", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = lab.run("lock", &["status"]);
        if status.stdout.contains(&pid) {
            assert!(status.stdout.contains("consul key"), "{status}");
            return child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run never held the lock\n{status}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `sh -c COMMAND` in node `n`, bypassing arpanet; whether it succeeded.
fn on_node(lab: &Lab, n: usize, command: &str) -> bool {
    lab.try_on_node(n, command).0
}

/// The Raft term node1's Consul server is in (a new one each election),
/// if it answers.
fn raft_term(lab: &Lab) -> Option<String> {
    let (ok, out) = lab.try_on_node(
        1,
        "t=\"X-Consul-Token: $(cat /mnt/arpanet-consul/arpanet/management.token)\"; \
         curl -sf -H \"$t\" http://127.0.0.1:8500/v1/agent/self | grep -o '\"term\":\"[0-9]*\"'",
    );
    ok.then(|| out.trim().to_owned())
}

/// When node `n`'s container last started.
fn started_at(lab: &Lab, n: usize) -> String {
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{.State.StartedAt}}", &lab.node(n)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_consul_lock_refuses_a_second_run_and_a_restarted_node_is_reconnected() {
    let Some(_turn) = crate::support::lab::turn("the lock lab test") else {
        return;
    };
    let lab = Lab::up("arpanet-lock", 80, 3, 3);

    // The first bootstrap locks with a file on the boot server (no Consul
    // yet) and frees it at its end.
    let bootstrap = lab.run("run", &["bootstrap", "-v"]);
    assert_eq!(bootstrap.code, 0, "{bootstrap}");
    assert!(
        bootstrap
            .stdout
            .contains("<node1> took the cluster lock (lock file"),
        "{bootstrap}"
    );
    let status = lab.run("lock", &["status"]);
    assert_eq!(status.code, 0, "{status}");
    assert!(
        status
            .stdout
            .contains("not locked (consul key `arpanet/lock`)"),
        "{status}"
    );

    let slow = lab.file(
        "slow.yml",
        "- hosts: all\n  tasks:\n    - command: sleep 120\n",
    );
    let quick = lab.file(
        "quick.yml",
        "- hosts: all\n  tasks:\n    - command: 'true'\n",
    );

    // Held in Consul: a second run is refused naming the holder.
    let mut first = hold(&lab, &slow);
    let refused = lab.run("run", &[&quick]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("the cluster is locked by")
            && refused.stderr.contains(&format!("pid {}", first.id()))
            && refused.stderr.contains("consul key `arpanet/lock`"),
        "{refused}"
    );
    // So is a `bootstrap` that would change nothing (its stamps match the
    // nodes): it does not answer "unchanged" while another run may be
    // changing the cluster.
    let boot = lab.run("run", &["bootstrap"]);
    assert_eq!(boot.code, 1, "{boot}");
    assert!(boot.stderr.contains("the cluster is locked by"), "{boot}");

    // kill -9: a run on the same machine sees the holder is gone and takes
    // its lock over at once.
    let pid = format!("pid {}", first.id());
    first.kill().unwrap();
    first.wait().unwrap();
    let next = lab.run("run", &[&quick]);
    assert_eq!(next.code, 0, "{next}");
    assert!(
        next.stdout.contains("took over the cluster lock of") && next.stdout.contains(&pid),
        "{next}"
    );

    // A holder on another machine that stopped renewing its session (made
    // here with curl on node1): Consul drops the session, and the key with
    // it, between one and two TTLs after; then the next run gets the lock.
    let holder = r#"{"owner":"bob@elsewhere","host":"elsewhere","pid":77,"command":"arpanet run stack","started":"2026-01-01T00:00:00Z"}"#;
    let api = "http://127.0.0.1:8500/v1";
    assert!(on_node(&lab,
        1,
        &format!(
            "t=\"X-Consul-Token: $(cat /mnt/arpanet-consul/arpanet/management.token)\"; \
             id=$(curl -sf -H \"$t\" -X PUT -d '{{\"Name\":\"bob\",\"TTL\":\"{TTL}s\",\"Behavior\":\"delete\",\
             \"LockDelay\":\"0s\",\"Checks\":[]}}' {api}/session/create | sed 's/.*\"ID\":\"\\([^\"]*\\)\".*/\\1/') \
             && curl -sf -H \"$t\" -X PUT -d '{holder}' \"{api}/kv/arpanet/lock?acquire=$id\" | grep -q true"
        )
    ));
    let made = Instant::now();
    let mut term = raft_term(&lab);
    eprintln!("Raft term when the session was made: {term:?}");
    let refused = lab.run("run", &[&quick]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("`bob@elsewhere` (pid 77"),
        "{refused}"
    );
    // Consul's leader keeps the TTL timers, and a new leader starts them
    // afresh: after an election (a new Raft term; on a loaded machine
    // they happen), the two TTLs count from when it was seen.
    let mut since = made;
    let freed = loop {
        let again = lab.run("run", &[&quick]);
        if again.code == 0 {
            break made.elapsed();
        }
        assert_eq!(again.code, 1, "{again}");
        let now = raft_term(&lab);
        if now != term {
            eprintln!("Raft term {term:?} -> {now:?}: the session's TTL starts again");
            term = now;
            since = Instant::now();
        }
        assert!(
            since.elapsed() < Duration::from_secs(2 * TTL + 10),
            "the lock outlived twice its TTL (Raft term {term:?} throughout)\n{again}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("an abandoned session's lock went after {freed:?} (TTL {TTL} s)");
    assert!(freed >= Duration::from_secs(TTL - 1), "{freed:?}");

    // `lock release --yes` frees a lock a live run holds.
    let mut second = hold(&lab, &slow);
    let released = lab.run("lock", &["release", "--yes"]);
    assert_eq!(released.code, 0, "{released}");
    assert!(
        released.stdout.contains(&format!("pid {}", second.id())),
        "{released}"
    );
    let after = lab.run("run", &[&quick]);
    assert_eq!(after.code, 0, "{after}");
    second.kill().unwrap();
    second.wait().unwrap();

    // A node container restarted while node1 runs a long task: node3 is
    // reconnected before the next task and the run finishes.
    let marker = "/root/arpanet-second-task";
    assert!(on_node(&lab, 1, &format!("rm -f {marker}")));
    let play = lab.file(
        "restart.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - command: echo one\n\
             \x20   - name: node1 works while the others wait\n\
             \x20     when: inventory_hostname == 'node1'\n\
             \x20     shell: touch {marker} && sleep 25\n\
             \x20   - name: after the restart\n\
             \x20     command: echo three-{{{{ inventory_hostname }}}}\n"
        ),
    );
    let before = started_at(&lab, 3);
    let running = start(&lab, &["run", &play, "-v"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !on_node(&lab, 1, &format!("test -e {marker}")) {
        assert!(Instant::now() < deadline, "the second task never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let restarted = Command::new("docker")
        .args(["restart", "-t", "2", &lab.node(3)])
        .output()
        .unwrap();
    assert!(restarted.status.success(), "{restarted:?}");
    let run = finish(running);
    assert_ne!(started_at(&lab, 3), before, "node3 did not restart");
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("<node3> the connection was lost since the last task; reconnected"),
        "{run}"
    );
    assert!(run.stdout.contains("three-node3"), "{run}");
}
