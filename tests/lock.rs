//! The cluster's run lock before Consul runs: a lock directory on the boot
//! server, over real sshd (the lab test in `lock_lab.rs` covers the Consul
//! lock). A second run is refused naming the holder; a killed run's lock is
//! taken over by the next run on the same machine, another machine's once
//! its expiry passed; Ctrl-C and the end of a run release it; `lock status`
//! and `lock release` see and free it.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::{Cluster, Run};

const TTL: u64 = 10;

struct Fixture {
    cluster: Cluster,
    inventory: String,
    slow: String,
    quick: String,
}

impl Fixture {
    fn new() -> Fixture {
        let cluster = Cluster::start(2);
        let inventory = cluster
            .inventory_with_groups(
                &[("servers", &[0]), ("clients", &[1])],
                &[("arpanet_lock_ttl", &TTL.to_string())],
            )
            .display()
            .to_string();
        let slow = cluster
            .write_file(
                "slow.yml",
                "- hosts: all\n  tasks:\n    - command: sleep 60\n",
            )
            .display()
            .to_string();
        let quick = cluster
            .write_file(
                "quick.yml",
                "- hosts: all\n  tasks:\n    - command: 'true'\n",
            )
            .display()
            .to_string();
        Fixture {
            cluster,
            inventory,
            slow,
            quick,
        }
    }

    /// `arpanet ARGS... -i INVENTORY`
    fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["-i", self.inventory.as_str()]);
        self.cluster.run(&all)
    }

    /// Start the slow run and wait until `lock status` shows it holding;
    /// the caller waits for it.
    #[allow(clippy::zombie_processes)]
    fn hold(&self) -> Child {
        let mut child = self
            .cluster
            .spawn(&["run", "-i", &self.inventory, &self.slow]);
        let pid = format!("pid {}", child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.run(&["lock", "status"]);
            if status.stdout.contains(&pid) {
                return child;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the slow run never held the lock\n{status}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn interrupt(child: &Child) {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
}

#[test]
fn a_second_run_is_refused_naming_the_holder_until_its_lock_is_freed_or_stale() {
    let f = Fixture::new();

    // Held: a second run is refused before it changes anything, naming the
    // holder's pid, command and start; `--check` goes ahead with a warning.
    let mut first = f.hold();
    let pid = format!("pid {}", first.id());
    let refused = f.run(&["run", &f.quick]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("the cluster is locked by"),
        "{refused}"
    );
    assert!(refused.stderr.contains(&pid), "{refused}");
    assert!(refused.stderr.contains("slow.yml"), "{refused}");
    assert!(refused.stderr.contains(" since 20"), "{refused}");
    assert!(refused.stderr.contains("lock file"), "{refused}");
    assert!(
        !refused.stdout.contains("TASK ["),
        "a refused run started a task:\n{refused}"
    );
    // No host failed: nothing to retry.
    let retry = std::path::Path::new(&f.quick).with_extension("retry");
    assert!(!retry.exists(), "a refused run wrote {}", retry.display());
    let check = f.run(&["run", "--check", &f.quick]);
    assert_eq!(check.code, 0, "{check}");
    assert!(
        check.stdout.contains("the cluster is locked by") && check.stdout.contains(&pid),
        "{check}"
    );
    let status = f.run(&["lock", "status"]);
    assert_eq!(status.code, 0, "{status}");
    assert!(
        status.stdout.contains("locked by") && status.stdout.contains(&pid),
        "{status}"
    );

    // kill -9: nothing releases it, but a run on the same machine sees that
    // its holder is gone and takes it over at once.
    first.kill().unwrap();
    first.wait().unwrap();
    let next = f.run(&["run", &f.quick]);
    assert_eq!(next.code, 0, "{next}");
    assert!(
        next.stdout.contains("took over the cluster lock of") && next.stdout.contains(&pid),
        "{next}"
    );
    // The run that got it released it at its end.
    let status = f.run(&["lock", "status"]);
    assert!(status.stdout.contains("not locked"), "{status}");

    // A holder on another machine (one whose pids this machine cannot see)
    // that stopped renewing: waited out until its expiry, then taken.
    let dir = f.cluster.lock_dir();
    let holder = r#"{"owner":"bob@elsewhere","host":"elsewhere","pid":77,"command":"arpanet run stack","started":"2026-01-01T00:00:00Z","id":"b0b","process_space":"other"}"#;
    f.cluster.ssh(
        0,
        &format!(
            "mkdir {d} && echo b0b > {d}/id && echo '{holder}' > {d}/holder && \
             echo $(( $(date +%s) + 4 )) > {d}/expires",
            d = dir.display()
        ),
    );
    let written = Instant::now();
    let refused = f.run(&["run", &f.quick]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("`bob@elsewhere` (pid 77"),
        "{refused}"
    );
    let freed = loop {
        let again = f.run(&["run", &f.quick]);
        if again.code == 0 {
            break written.elapsed();
        }
        assert_eq!(again.code, 1, "{again}");
        assert!(
            written.elapsed() < Duration::from_secs(TTL),
            "a stale lock was not taken over\n{again}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        freed >= Duration::from_secs(3),
        "taken before it expired: {freed:?}"
    );

    // Ctrl-C releases it.
    let second = f.hold();
    interrupt(&second);
    let out = second.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let status = f.run(&["lock", "status"]);
    assert!(status.stdout.contains("not locked"), "{status}");

    // `lock release` asks first; `--yes` frees it under a live run.
    let mut third = f.hold();
    let asked = f.run(&["lock", "release"]);
    assert_eq!(asked.code, 5, "{asked}");
    assert!(asked.stderr.contains("--yes"), "{asked}");
    let released = f.run(&["lock", "release", "--yes"]);
    assert_eq!(released.code, 0, "{released}");
    assert!(
        released.stdout.contains("released the lock held by")
            && released.stdout.contains(&format!("pid {}", third.id())),
        "{released}"
    );
    let after = f.run(&["run", &f.quick]);
    assert_eq!(after.code, 0, "{after}");
    third.kill().unwrap();
    third.wait().unwrap();
}

#[test]
fn no_lock_is_for_user_playbooks_only_and_listings_need_none() {
    let f = Fixture::new();
    let held = f.hold();
    // Listings contact no host, so a held lock does not stop them.
    for flag in ["--list-hosts", "--list-tasks", "--syntax-check"] {
        let listed = f.run(&["run", flag, &f.quick]);
        assert_eq!(listed.code, 0, "{listed}");
        assert!(!listed.stderr.contains("locked"), "{listed}");
    }
    let mine = f.run(&["run", "--no-lock", &f.quick]);
    assert_eq!(mine.code, 0, "{mine}");
    let builtin = f.run(&["run", "--no-lock", "stack"]);
    assert_eq!(builtin.code, 5, "{builtin}");
    assert!(
        builtin.stderr.contains("`--no-lock` is for user playbooks"),
        "{builtin}"
    );
    interrupt(&held);
    let _ = held.wait_with_output();
}
