//! One lab of real nodes for a lab test: `arpanet lab up` on the local
//! Docker engine under a name, subnet and directory of this run's own
//! (`ARPANET_TEST_LAB_SLOT`), an operator home of its own, and ways to run
//! arpanet against it and to look into a node without arpanet
//! (`docker exec`). Dropping it takes the lab down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{
    heavy_lab_turn, lab_address, lab_name, lab_subnet, lab_turn, labs_built, LabTurn, Run,
};

/// The lab tests' turn: `None` (with a note saying how to run it) unless
/// `ARPANET_LAB_TESTS=1`; else this test's turn among the lab tests.
pub fn turn(test: &str) -> Option<LabTurn> {
    enabled(test).then(lab_turn)
}

/// [`turn`] for a heavy lab test (see [`heavy_lab_turn`]).
pub fn heavy_turn(test: &str) -> Option<LabTurn> {
    enabled(test).then(heavy_lab_turn)
}

fn enabled(test: &str) -> bool {
    if std::env::var("ARPANET_LAB_TESTS").is_ok_and(|v| v == "1") {
        return true;
    }
    eprintln!(
        "note: skipping {test}: set ARPANET_LAB_TESTS=1 (as `scripts/test` does) to run the \
         lab tests against the local Docker engine"
    );
    false
}

pub struct Lab {
    pub dir: PathBuf,
    home: tempfile::TempDir,
    pub name: String,
    pub subnet: String,
    pub nodes: usize,
    pub servers: usize,
}

impl Lab {
    /// A lab `base` (in this slot) on `10.OCTET.0.0/24` (or the slot's
    /// own), with `nodes` nodes, the first `servers` of them Consul
    /// servers; whatever an earlier run left under that name goes first.
    pub fn up(base: &str, octet: u8, nodes: usize, servers: usize) -> Lab {
        let lab = Lab::new(base, octet, nodes, servers);
        let _ = lab.lab(&["down"]);
        let (n, s) = (nodes.to_string(), servers.to_string());
        let up = lab.lab(&["up", "--nodes", &n, "--servers", &s]);
        assert_eq!(up.code, 0, "lab up failed:\n{up}");
        lab
    }

    /// The lab's names and places, without bringing it up.
    pub fn new(base: &str, octet: u8, nodes: usize, servers: usize) -> Lab {
        Lab {
            dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(lab_name(&format!("{base}-lab"))),
            home: tempfile::tempdir().unwrap(),
            name: lab_name(base),
            subnet: lab_subnet(octet),
            nodes,
            servers,
        }
    }

    /// The address `.host` on the lab's subnet.
    pub fn at(&self, host: u8) -> String {
        lab_address(&self.subnet, host)
    }

    /// The operator's home directory (`~/.ssh`, `~/.arpanet`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The inventory `lab up` wrote.
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.ini")
    }

    /// Write `text` to `name` in the lab directory; its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// `arpanet lab COMMAND --dir DIR --name NAME ARGS...`
    pub fn lab(&self, args: &[&str]) -> Run {
        let (command, rest) = args.split_first().unwrap();
        let dir = self.dir.to_str().unwrap();
        let mut all = vec!["lab", command, "--dir", dir, "--name", self.name.as_str()];
        all.extend_from_slice(rest);
        let run = self.arpanet(&all);
        if *command == "up" && run.code == 0 {
            labs_built();
        }
        run
    }

    /// `arpanet COMMAND -i INVENTORY ARGS...` with the lab's inventory.
    pub fn run(&self, command: &str, args: &[&str]) -> Run {
        let inventory = self.inventory();
        let mut all = vec![command, "-i", inventory.to_str().unwrap()];
        all.extend_from_slice(args);
        self.arpanet(&all)
    }

    /// `arpanet ARGS...` as the lab's operator, to completion.
    pub fn arpanet(&self, args: &[&str]) -> Run {
        finish(self.spawn(args))
    }

    /// `arpanet ARGS...` as the lab's operator, started with its output
    /// piped and no stdin.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run arpanet")
    }

    /// `arpanet ARGS...` as the lab's operator, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arpanet"));
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("ARPANET_LAB_SUBNET", &self.subnet)
            // Retry files of failing runs go beside the lab, not into the
            // checkout the tests run in.
            .env("ARPANET_RETRY_FILES_SAVE_PATH", &self.dir)
            .env_remove("ARPANET_LAB_NAME")
            .env_remove("ARPANET_INVENTORY")
            .env_remove("SSH_AUTH_SOCK");
        command
    }

    /// The container of lab node `n` (1-based).
    pub fn node(&self, n: usize) -> String {
        format!("{}-node{n}", self.name)
    }

    /// `sh -c COMMAND` inside lab node `n`, bypassing arpanet: whether it
    /// succeeded, and its stdout.
    pub fn try_on_node(&self, n: usize, command: &str) -> (bool, String) {
        let output = Command::new("docker")
            .args(["exec", &self.node(n), "sh", "-c", command])
            .stdin(Stdio::null())
            .output()
            .expect("docker exec");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// `sh -c COMMAND` inside lab node `n`, which must succeed; its stdout.
    pub fn on_node(&self, n: usize, command: &str) -> String {
        let output = Command::new("docker")
            .args(["exec", &self.node(n), "sh", "-c", command])
            .stdin(Stdio::null())
            .output()
            .expect("docker exec");
        assert!(
            output.status.success(),
            "`{command}` on node{n} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The cluster is whole: every node an alive member, the servers as
    /// servers, a leader, and the stack running on every node. Agents
    /// that just restarted get a minute and a half to rejoin.
    pub fn assert_healthy(&self) {
        let mut last = String::new();
        for _ in 0..90 {
            match self.health() {
                Ok(()) => return,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        panic!("the cluster is not healthy: {last}");
    }

    fn health(&self) -> Result<(), String> {
        let members = self.run("consul", &["--", "members"]);
        let text = &members.stdout;
        if members.code != 0
            || text.matches(" alive ").count() != self.nodes
            || text.matches(" server ").count() != self.servers
        {
            return Err(format!("members:\n{members}"));
        }
        let status = self.run("status", &["--output", "json"]);
        if status.code != 0 {
            return Err(format!("status:\n{status}"));
        }
        let report: serde_json::Value =
            serde_json::from_str(&status.stdout).map_err(|e| e.to_string())?;
        for row in report["nodes"].as_array().into_iter().flatten() {
            if !row["leader"].as_str().is_some_and(|l| l.ends_with(":8300")) {
                return Err(format!("no leader: {row}"));
            }
            let containers: Vec<(&str, &str)> = row["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or(""),
                        c["state"].as_str().unwrap_or(""),
                    )
                })
                .collect();
            // Consul and cAdvisor everywhere, and whatever else the stack
            // declares, all running.
            let names: Vec<&str> = containers.iter().map(|c| c.0).collect();
            if !names.contains(&"cadvisor")
                || !names.contains(&"consul")
                || containers.iter().any(|c| c.1 != "running")
            {
                return Err(format!("containers: {row}"));
            }
        }
        Ok(())
    }
}

impl Lab {
    /// `ADDRESS:PORT` of every instance of `service` whose checks pass, as
    /// the catalog of node1's agent says (read with the management token).
    pub fn passing(&self, service: &str) -> Vec<String> {
        let token = std::fs::read_to_string(self.dir.join("consul-tls/acl-management.token"))
            .unwrap_or_default();
        let (_, out) = self.try_on_node(
            1,
            &format!(
                "curl -sf -H 'X-Consul-Token: {}' \
                 'http://127.0.0.1:8500/v1/health/service/{service}?passing'",
                token.trim()
            ),
        );
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let mut found: Vec<String> = rows
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{}:{}",
                    r["Service"]["Address"].as_str().unwrap_or(""),
                    r["Service"]["Port"]
                )
            })
            .collect();
        found.sort();
        found
    }

    /// Wait up to `limit` for `service`'s passing instances to be `want`;
    /// what was last seen otherwise.
    pub fn await_passing(
        &self,
        service: &str,
        want: &[String],
        limit: Duration,
    ) -> Result<(), Vec<String>> {
        let until = std::time::Instant::now() + limit;
        loop {
            let seen = self.passing(service);
            if seen == want {
                return Ok(());
            }
            if std::time::Instant::now() > until {
                return Err(seen);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.lab(&["down"]);
    }
}

/// A started arpanet, waited for.
pub fn finish(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `changed=` count of each host in a run's recap.
pub fn recap_changed(run: &Run) -> Vec<usize> {
    let start = run
        .stdout
        .find("PLAY RECAP")
        .unwrap_or_else(|| panic!("no recap\n{run}"));
    run.stdout[start..]
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("changed="))
        })
        .map(|n| n.parse().unwrap())
        .collect()
}
