//! `arpanet lab` against the real local Docker engine.
//!
//! These tests build images and boot real nodes, so they run only when
//! `ARPANET_LAB_TESTS=1` (set by `scripts/test` and CI); then a lab that
//! cannot start is a failure, never a skip. Without it they return at once
//! with a note, so a quick `cargo test` stays quick.
//!
//! All checks share one lab, named `arpanet-test` on its own subnet so it
//! never touches a developer's `arpanet-lab`; it is taken down at the end,
//! also when a check fails, and leftovers of an earlier run are tolerated.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

static NAME: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_name("arpanet-test"));
static SUBNET: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_subnet(78));

/// The lab address `.host`.
fn at(host: u8) -> String {
    crate::support::lab_address(&SUBNET, host)
}
const IMAGES: [&str; 4] = [
    "arpanet-lab/node:bookworm",
    "arpanet-lab/registry:2.8.2",
    "arpanet-lab/consul:1.8.7",
    "arpanet-lab/cadvisor:0.38.7",
];

fn lab_tests_enabled(test: &str) -> bool {
    if std::env::var("ARPANET_LAB_TESTS").is_ok_and(|v| v == "1") {
        return true;
    }
    eprintln!(
        "note: skipping {test}: set ARPANET_LAB_TESTS=1 (as `scripts/test` does) to run the \
         lab tests against the local Docker engine"
    );
    false
}

/// The test lab; dropping it takes it down, whatever happened before.
struct TestLab {
    dir: PathBuf,
}

impl TestLab {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("arpanet-test-lab");
        let lab = TestLab { dir };
        // Leftovers of an earlier, interrupted run must not get in the way.
        let _ = lab.arpanet(&["down"]);
        lab
    }

    fn arpanet(&self, args: &[&str]) -> Output {
        let (command, rest) = args.split_first().expect("a lab command");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arpanet"));
        cmd.arg("lab")
            .arg(command)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--name")
            .arg(&*NAME)
            .args(rest)
            .env("ARPANET_LAB_SUBNET", &*SUBNET)
            .env_remove("ARPANET_LAB_NAME");
        cmd.output().expect("run arpanet")
    }

    /// `arpanet lab ARGS`, which must succeed; its stderr.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.arpanet(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "`arpanet lab {}` failed ({}):\nstdout:\n{}\nstderr:\n{stderr}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
        );
        stderr
    }

    fn inventory(&self) -> String {
        std::fs::read_to_string(self.dir.join("inventory.ini")).expect("inventory.ini")
    }

    /// `name ansible_host` of every node in the inventory.
    fn hosts(&self) -> Vec<(String, String)> {
        self.inventory()
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let name = words.next()?;
                let host = words.find_map(|w| w.strip_prefix("ansible_host="))?;
                Some((name.to_owned(), host.to_owned()))
            })
            .collect()
    }

    fn var(&self, name: &str) -> String {
        let prefix = format!("{name}=");
        self.inventory()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no `{name}` in the inventory:\n{}", self.inventory()))
    }

    /// OpenSSH to `host` as root with the lab's key, host keys checked
    /// strictly against `known_hosts`.
    fn ssh(&self, host: &str, known_hosts: &Path, command: &str) -> Output {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"])
            .arg("-i")
            .arg(self.dir.join("id_ed25519"))
            .arg(format!("root@{host}"))
            .arg(command)
            .output()
            .expect("run ssh")
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let output = self.arpanet(&["down"]);
        if !output.status.success() {
            eprintln!(
                "warning: taking the test lab down failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        output.status.success(),
        "`docker {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Every image's id and every lab container's start time.
fn snapshot() -> Vec<String> {
    let mut seen: Vec<String> = IMAGES
        .iter()
        .map(|image| docker(&["image", "inspect", "--format", "{{.Id}}", image]))
        .collect();
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=arpanet.lab={}", *NAME),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert!(!ids.is_empty(), "the lab has no containers");
    let mut args = vec!["inspect", "--format", "{{.Name}} {{.State.StartedAt}}"];
    args.extend(&ids);
    seen.extend(docker(&args).lines().map(str::to_owned));
    seen.sort();
    seen
}

#[test]
fn lab_up_serves_ssh_and_the_registry_is_idempotent_and_down_leaves_nothing() {
    if !lab_tests_enabled(
        "lab_up_serves_ssh_and_the_registry_is_idempotent_and_down_leaves_nothing",
    ) {
        return;
    }
    let _turn = crate::support::lab_turn();
    let lab = TestLab::new();

    // lab up with 5 nodes, 3 of them servers.
    let started = Instant::now();
    lab.ok(&["up", "--nodes", "5", "--servers", "3"]);
    eprintln!("first lab up took {:.1}s", started.elapsed().as_secs_f64());
    let hosts = lab.hosts();
    assert_eq!(
        hosts.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["node1", "node2", "node3", "node4", "node5"]
    );
    assert_eq!(lab.var("ansible_user"), "root");
    assert_eq!(lab.var("consul_expect"), "3");

    every_node_answers_ssh_with_strict_host_keys(&lab, &hosts);
    a_node_pulls_consul_from_the_lab_registry(&lab, &hosts[0].1);
    second_up_rebuilds_no_image_and_restarts_no_node(&lab);
    status_lists_every_node_running(&lab);
    a_stopped_node_is_restarted_and_keeps_its_host_key(&lab, &hosts[4]);
    a_larger_lab_adds_a_node_and_keeps_the_others(&lab);
    down_leaves_no_container_network_or_volume(&lab);
}

fn every_node_answers_ssh_with_strict_host_keys(lab: &TestLab, hosts: &[(String, String)]) {
    let known_hosts = lab.dir.join("known_hosts");
    for (name, host) in hosts {
        let output = lab.ssh(
            host,
            &known_hosts,
            "docker info --format '{{.ServerVersion}}'",
        );
        assert!(
            output.status.success(),
            "{name} ({host}): `docker info` over ssh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!String::from_utf8_lossy(&output.stdout).trim().is_empty());
    }
    // Strict checking is real: an unknown host key is refused.
    let empty = lab.dir.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let refused = lab.ssh(&hosts[0].1, &empty, "true");
    assert!(
        !refused.status.success(),
        "ssh accepted an unknown host key"
    );
    std::fs::remove_file(&empty).unwrap();

    // The same through arpanet itself, with its default strict checking.
    let output = Command::new(env!("CARGO_BIN_EXE_arpanet"))
        .arg("exec")
        .arg("-i")
        .arg(lab.dir.join("inventory.ini"))
        .args([
            "--host-key-checking",
            "strict",
            "--",
            "docker",
            "info",
            "--format",
            "{{.ServerVersion}}",
        ])
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("run arpanet exec");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "arpanet exec failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (name, _) in hosts {
        assert!(
            stdout.contains(&format!("changed: [{name}]")),
            "{name} missing:\n{stdout}"
        );
    }
}

fn a_node_pulls_consul_from_the_lab_registry(lab: &TestLab, host: &str) {
    let registry = lab.var("lab_registry");
    let image = lab.var("consul_image");
    assert!(image.starts_with(&format!("{registry}/")), "{image}");
    // What the setup playbook will do: let the node's dockerd use the lab
    // registry over plain HTTP.
    let script = format!(
        "set -e; echo 'DOCKER_OPTS=\"--insecure-registry {registry}\"' >/etc/default/docker; \
         systemctl restart docker; \
         docker pull -q {image}; docker run --rm {image} version"
    );
    let output = lab.ssh(host, &lab.dir.join("known_hosts"), &script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("Consul v1.8.7"),
        "pulling and running {image} on {host} failed:\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn second_up_rebuilds_no_image_and_restarts_no_node(lab: &TestLab) {
    let before = snapshot();
    let started = Instant::now();
    let stderr = lab.ok(&["up", "--nodes", "5", "--servers", "3"]);
    eprintln!("warm lab up took {:.1}s", started.elapsed().as_secs_f64());
    assert!(!stderr.contains("building image"), "{stderr}");
    assert!(stderr.contains("nothing changed"), "{stderr}");
    assert_eq!(
        snapshot(),
        before,
        "an image was rebuilt or a node restarted"
    );
}

fn a_larger_lab_adds_a_node_and_keeps_the_others(lab: &TestLab) {
    let before = snapshot();
    lab.ok(&["up", "--nodes", "6", "--servers", "3"]);
    let hosts = lab.hosts();
    assert_eq!(hosts.len(), 6, "{}", lab.inventory());
    let (name, host) = &hosts[5];
    assert_eq!(name, "node6");
    assert!(lab.inventory().contains("[clients]"), "{}", lab.inventory());
    let output = lab.ssh(host, &lab.dir.join("known_hosts"), "true");
    assert!(
        output.status.success(),
        "node6 does not answer ssh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = snapshot();
    for node in before {
        assert!(
            after.contains(&node),
            "a node of the smaller lab changed: {node}"
        );
    }
}

fn status_lists_every_node_running(lab: &TestLab) {
    let output = lab.arpanet(&["status"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let summary: Vec<String> = rows.iter().map(|r| r[..4].join(" ")).collect();
    assert_eq!(
        summary,
        [
            format!("registry {} registry yes", at(2)),
            format!("node1 {} server yes", at(11)),
            format!("node2 {} server yes", at(12)),
            format!("node3 {} server yes", at(13)),
            format!("node4 {} client yes", at(14)),
            format!("node5 {} client yes", at(15)),
        ],
        "{stdout}"
    );
}

/// What a killed and restarted Docker engine leaves behind: a stopped node.
fn a_stopped_node_is_restarted_and_keeps_its_host_key(lab: &TestLab, node: &(String, String)) {
    let known_hosts = lab.dir.join("known_hosts");
    let before = std::fs::read_to_string(&known_hosts).unwrap();
    docker(&["stop", &format!("{}-{}", *NAME, node.0)]);
    let stderr = lab.ok(&["up", "--nodes", "5", "--servers", "3"]);
    assert!(
        stderr.contains(&format!("restarted {}", node.0)),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), before);
    let output = lab.ssh(&node.1, &known_hosts, "systemctl is-system-running");
    assert!(
        output.status.success(),
        "{}: {}",
        node.0,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn down_leaves_no_container_network_or_volume(lab: &TestLab) {
    lab.ok(&["down"]);
    let label = format!("label=arpanet.lab={}", *NAME);
    assert_eq!(docker(&["ps", "-aq", "--filter", &label]), "");
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &label]), "");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]), "");
    let named = format!("name={}", *NAME);
    assert_eq!(docker(&["ps", "-aq", "--filter", &named]), "");
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &named]), "");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &named]), "");
    assert!(!lab.dir.join("inventory.ini").exists());
    // The images stay cached for the next run.
    for image in IMAGES {
        docker(&["image", "inspect", "--format", "{{.Id}}", image]);
    }
}

#[test]
fn lab_up_without_a_docker_engine_fails_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_arpanet"))
        .args(["lab", "up", "--name", "arpanet-no-engine", "--dir"])
        .arg(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: lab: "), "{stderr}");
    assert!(stderr.contains("\nhint: "), "{stderr}");
    assert!(!dir.path().join("inventory.ini").exists());
}
