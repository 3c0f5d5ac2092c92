//! `status` health and Consul failover on a 3-node lab with real Consul
//! (3 servers: the fewest that keep a leader with one down). Run with
//! `ARPANET_LAB_TESTS=1`; each phase prints how long it took.
//!
//! - after `bootstrap`, `status` exits 0 with no `problems:`;
//! - `docker stop consul` on node3: `status` exits 2 and names node3's
//!   agent and its `consul` container under `problems:`;
//! - restored, `status` is 0 again;
//! - the first server's (node1's) Consul stopped: `kv get` answers through
//!   the next server, naming node1's attempt under `-v`;
//! - restored again, `status` is 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Run;

static NAME: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_name("arpanet-health"));
static SUBNET: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_subnet(72));

struct Lab {
    dir: PathBuf,
    home: tempfile::TempDir,
}

impl Lab {
    fn lab(&self, args: &[&str]) -> Run {
        let (command, rest) = args.split_first().unwrap();
        let dir = self.dir.to_str().unwrap();
        let mut all = vec!["lab", command, "--dir", dir, "--name", NAME.as_str()];
        all.extend_from_slice(rest);
        self.arpanet(&all)
    }

    /// `arpanet ARGS... -i INVENTORY`.
    fn run(&self, args: &[&str]) -> Run {
        let inventory = self.dir.join("inventory.ini");
        let mut all = args.to_vec();
        all.extend(["-i", inventory.to_str().unwrap()]);
        self.arpanet(&all)
    }

    fn arpanet(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_arpanet"))
            .args(args)
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("ARPANET_LAB_SUBNET", &*SUBNET)
            .env_remove("ARPANET_LAB_NAME")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .expect("run arpanet");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `docker ACTION consul` inside node `n`, bypassing arpanet.
    fn consul_container(&self, n: usize, action: &str) {
        let out = Command::new("docker")
            .args(["exec", &format!("{}-node{n}", *NAME)])
            .args(["docker", action, "consul"])
            .output()
            .expect("docker exec");
        assert!(
            out.status.success(),
            "docker {action} consul on node{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run `args` until `done` holds for its result (up to `limit`);
    /// returns the last result.
    fn until(&self, args: &[&str], limit: Duration, done: impl Fn(&Run) -> bool) -> Run {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.run(args);
            if done(&out) || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.lab(&["down"]);
    }
}

/// The lines after `problems:` in `status`'s output.
fn problems(out: &Run) -> Vec<String> {
    out.stdout
        .lines()
        .skip_while(|l| *l != "problems:")
        .skip(1)
        .map(|l| l.trim().to_owned())
        .collect()
}

fn phase(name: &str, since: &mut Instant) {
    eprintln!("phase {name}: {:.1}s", since.elapsed().as_secs_f64());
    *since = Instant::now();
}

#[test]
fn status_reports_a_stopped_agent_and_kv_fails_over_to_the_next_server() {
    if std::env::var("ARPANET_LAB_TESTS").ok().as_deref() != Some("1") {
        eprintln!("note: skipping the health lab test: set ARPANET_LAB_TESTS=1");
        return;
    }
    let _turn = crate::support::lab_lock();
    let mut clock = Instant::now();
    let lab = Lab {
        dir: Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(crate::support::lab_name("arpanet-health-lab")),
        home: tempfile::tempdir().unwrap(),
    };
    let _ = lab.lab(&["down"]);
    let up = lab.lab(&["up", "--nodes", "3", "--servers", "3"]);
    assert_eq!(up.code, 0, "lab up failed:\n{up}");
    phase("lab up", &mut clock);
    let bootstrap = lab.run(&["run", "bootstrap"]);
    assert_eq!(bootstrap.code, 0, "{bootstrap}");
    phase("bootstrap", &mut clock);

    let healthy = |out: &Run| out.code == 0;
    let status = lab.until(&["status"], Duration::from_secs(60), healthy);
    assert_eq!(status.code, 0, "{status}");
    assert!(!status.stdout.contains("problems:"), "{status}");
    eprintln!("{}", status.stdout);
    let value = format!("v-{}", std::process::id());
    let set = lab.run(&["kv", "set", "health/x", &value]);
    assert_eq!(set.code, 0, "{set}");
    phase("healthy status", &mut clock);

    // One agent down: named, with its container; exit 2 (unhealthy).
    lab.consul_container(3, "stop");
    let status = lab.run(&["status"]);
    eprintln!("{status}");
    assert_eq!(status.code, 2, "{status}");
    let found = problems(&status);
    assert!(
        found
            .iter()
            .any(|l| l.starts_with("node3: consul agent: not answering")),
        "{status}"
    );
    assert!(
        found.contains(&"node3: container `consul`: exited".to_owned()),
        "{status}"
    );
    assert!(!found.iter().any(|l| l.starts_with("node1")), "{status}");
    lab.consul_container(3, "start");
    let status = lab.until(&["status"], Duration::from_secs(90), healthy);
    assert_eq!(status.code, 0, "{status}");
    phase("one agent down, then back", &mut clock);

    // The first server's Consul down: `kv get` answers through another
    // server (once the other two have a leader).
    lab.consul_container(1, "stop");
    let get = lab.until(
        &["kv", "-v", "get", "health/x"],
        Duration::from_secs(60),
        |r| r.code == 0,
    );
    eprintln!("{get}");
    assert_eq!((get.code, get.stdout.trim()), (0, value.as_str()), "{get}");
    assert!(
        get.stderr
            .lines()
            .any(|l| l.starts_with("node1: ") && l.ends_with("trying the next node")),
        "{get}"
    );
    assert!(!get.stderr.contains("MaxSessions"), "{get}");
    phase("kv with the first server's consul down", &mut clock);
    lab.consul_container(1, "start");
    let status = lab.until(&["status"], Duration::from_secs(90), healthy);
    assert_eq!(status.code, 0, "{status}");
    phase("restored", &mut clock);
}
