//! Day-two commands over real sshd hosts: `details` (one `docker inspect`
//! per node, through a stand-in `docker` on the hosts' PATH that logs each
//! call), `kv` and `consul` with `-o json` (through the stand-in Consul),
//! the project file (`arpanet.toml`: inventory and user from it, a flag
//! over it, an unknown key located before any host), `status --watch`
//! without a terminal, and `restart` refusing a name before any host.
//! The lab version of `details` and `restart` (real Docker and Consul) is
//! in `health_lab.rs`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Cluster, FakeConsul};

/// A directory holding a stand-in `docker` for the test user: `ps` lists
/// two managed containers, `inspect` describes them with the answering
/// host's address (from `$SSH_CONNECTION`) as the image digest, `exec`
/// prints what it was asked to run; each call is appended to `calls.log`
/// as `ADDRESS ARGS`.
struct FakeDocker {
    dir: tempfile::TempDir,
}

impl FakeDocker {
    fn new() -> FakeDocker {
        let dir = tempfile::Builder::new()
            .prefix("arpanet-fake-docker-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("calls.log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
        let script = format!(
            r#"#!/bin/sh
addr=$(echo "$SSH_CONNECTION" | cut -d' ' -f3)
echo "$addr $*" >> {log}
case "$1" in
  ps) printf 'c0ffee01\nc0ffee02\n' ;;
  inspect) cat <<JSON
[{{"Name": "/consul", "Image": "sha256:$addr", "RestartCount": 3,
   "Config": {{"Image": "consul:1.8.7"}},
   "State": {{"Status": "running", "StartedAt": "2026-11-02T13:02:19.123456789Z"}}}},
 {{"Name": "/web", "Image": "sha256:web-$addr", "RestartCount": 0,
   "Config": {{"Image": "web:2"}},
   "State": {{"Status": "running", "StartedAt": "2026-11-02T14:00:00.5Z",
             "Health": {{"Status": "healthy"}}}}}}]
JSON
  ;;
  exec) shift; echo "ran: $*"; echo "a warning" >&2 ;;
  *) echo "fake docker: $*" >&2; exit 1 ;;
esac
"#,
            log = log.display()
        );
        let docker = dir.path().join("docker");
        std::fs::write(&docker, script).unwrap();
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeDocker { dir }
    }

    /// sshd_config lines putting it first on the PATH of every session.
    fn sshd_config(&self) -> String {
        format!(
            "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n",
            self.dir.path().display()
        )
    }

    /// The logged calls: (address, arguments).
    fn calls(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, rest)| (a.to_owned(), rest.to_owned()))
            .collect()
    }
}

fn servers_inventory(cluster: &Cluster, port: u16) -> PathBuf {
    cluster.inventory_with_groups(
        &[("servers", &[0, 1])],
        &[("consul_port", &port.to_string())],
    )
}

#[test]
fn details_asks_each_node_once_and_reports_each_managed_container() {
    let docker = FakeDocker::new();
    let cluster = Cluster::start_with_config(2, &docker.sshd_config());
    let inv = cluster.inventory(&[]);
    let inv = inv.to_str().unwrap();

    let out = cluster.run(&["details", "-i", inv, "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{out}");
    for (i, node) in nodes.iter().enumerate() {
        let address = &cluster.hosts[i].address;
        assert_eq!(node["node"], cluster.name(i), "{out}");
        let containers = node["containers"].as_array().unwrap();
        let names: Vec<&str> = containers
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["consul", "web"], "{out}");
        // Each node's own answer, not another's.
        assert_eq!(containers[0]["digest"], format!("sha256:{address}"));
        assert_eq!(containers[0]["restart_count"], 3);
        assert_eq!(
            containers[0]["started_at"],
            "2026-11-02T13:02:19.123456789Z"
        );
        assert!(containers[0].get("health").is_none(), "{out}");
        assert_eq!(containers[1]["health"], "healthy");
        assert_eq!(containers[1]["image"], "web:2");
    }
    // One `docker inspect` per node, of all its containers at once.
    let inspects: Vec<(String, String)> = docker
        .calls()
        .into_iter()
        .filter(|(_, args)| args.starts_with("inspect"))
        .collect();
    let mut by_node: Vec<&str> = inspects.iter().map(|(a, _)| a.as_str()).collect();
    by_node.sort();
    let mut expected: Vec<&str> = cluster.hosts.iter().map(|h| h.address.as_str()).collect();
    expected.sort();
    assert_eq!(by_node, expected, "{inspects:?}");
    assert!(
        inspects
            .iter()
            .all(|(_, args)| args == "inspect c0ffee01 c0ffee02"),
        "{inspects:?}"
    );

    // The table: a line per container, digests shortened, `-l` honoured
    // (given after the command's name, as anywhere).
    let out = cluster.run(&["details", "-i", inv, "-l", "node2"]);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let web: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        web,
        [
            "node2",
            "web",
            "running",
            "web:2",
            &format!("web-{}", cluster.hosts[1].address)[..12],
            "2026-11-02T14:00:00Z",
            "0",
            "healthy"
        ],
        "{out}"
    );

    // A node that does not answer: shown as such, exit 4.
    cluster.hosts[0].stop();
    let out = cluster.run(&["details", "-i", inv]);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("node1") && l.contains("unreachable")),
        "{out}"
    );
}

/// Consul refusing arpanet's ACL token: `kv` says the token was refused
/// and names the file it came from (the checkout's `acl-management.token`);
/// with no token at all, that the request carried none.
#[test]
fn kv_names_the_token_file_when_consul_refuses_its_token() {
    let consul = FakeConsul::start();
    *consul.tokens.lock().unwrap() = Some(vec!["the-cluster's".into()]);
    let cluster = Cluster::start(1);
    let inv = cluster.inventory_with_groups(
        &[("servers", &[0])],
        &[("consul_port", &consul.port.to_string())],
    );
    let file = inv
        .parent()
        .unwrap()
        .join("consul-tls/acl-management.token");
    let run = |args: &[&str]| {
        let mut all = vec!["kv", "-i", inv.to_str().unwrap()];
        all.extend_from_slice(args);
        cluster.run(&all)
    };

    let none = run(&["get", "app/x"]);
    assert_ne!(none.code, 0, "{none}");
    assert!(
        none.stderr.contains("carried no ACL token") && none.stderr.contains("Permission denied"),
        "{none}"
    );

    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "an-old-token\n").unwrap();
    for args in [
        &["get", "app/x"][..],
        &["set", "app/x", "1"],
        &["ls", "app"],
    ] {
        let refused = run(args);
        assert_ne!(refused.code, 0, "{refused}");
        assert!(
            refused.stderr.contains(&format!(
                "consul refused the ACL token from `{}` (HTTP 403: ACL not found)",
                file.display()
            )),
            "{args:?}: {refused}"
        );
        assert!(!refused.stderr.contains("an-old-token"), "{refused}");
    }

    // The cluster's token is answered.
    std::fs::write(&file, "the-cluster's\n").unwrap();
    let set = run(&["set", "app/x", "1"]);
    assert_eq!(set.code, 0, "{set}");
}

#[test]
fn kv_and_consul_print_json_with_options_after_the_arguments() {
    let consul = FakeConsul::start();
    let docker = FakeDocker::new();
    let cluster = Cluster::start_with_config(2, &docker.sshd_config());
    let inv = servers_inventory(&cluster, consul.port);
    let inv = inv.to_str().unwrap();
    let value = format!("v {}", std::process::id());

    let set = cluster.run(&["kv", "set", "app/x", &value, "-i", inv]);
    assert_eq!(set.code, 0, "{set}");
    let set = cluster.run(&["kv", "set", "app/y", "two", "-i", inv]);
    assert_eq!(set.code, 0, "{set}");
    let get = cluster.run(&["kv", "get", "app/x", "-i", inv, "-o", "json"]);
    assert_eq!(get.code, 0, "{get}");
    let json: serde_json::Value = serde_json::from_str(&get.stdout).unwrap();
    assert_eq!(json, serde_json::json!({"key": "app/x", "value": value}));

    let ls = cluster.run(&["kv", "ls", "app", "-o", "json", "-i", inv]);
    assert_eq!(ls.code, 0, "{ls}");
    let json: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"key": "app/x", "value": value},
            {"key": "app/y", "value": "two"},
        ])
    );
    // Plain `ls` still prints the keys, one a line.
    let ls = cluster.run(&["kv", "ls", "app", "-i", inv]);
    assert_eq!(ls.stdout, "app/x\napp/y\n", "{ls}");

    // `consul -o json`: the answering node, the exit code and both streams.
    let out = cluster.run(&["consul", "-i", inv, "-o", "json", "--", "members"]);
    assert_eq!(out.code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["node"], "node1", "{out}");
    assert_eq!(json["exit_code"], 0, "{out}");
    // The consul CLI in the `consul` container, through `consul_cli` (with
    // ACLs on, a wrapper that hands it the node's token file).
    let ran = json["stdout"].as_str().unwrap_or_default();
    assert!(
        ran.starts_with("ran: consul ") && ran.ends_with(" consul members\n"),
        "{out}"
    );
    assert_eq!(json["stderr"], "a warning\n", "{out}");
}

#[test]
fn the_project_file_gives_defaults_that_flags_override() {
    let cluster = Cluster::start(2);
    // An inventory without users: the project file gives it.
    let mut text = String::new();
    for (i, host) in cluster.hosts.iter().enumerate() {
        text.push_str(&format!(
            "{} ansible_host={} ansible_port={}\n",
            cluster.name(i),
            host.address,
            host.port
        ));
    }
    cluster.write_file("inv/hosts.ini", &text);
    let deep = cluster.dir().join("work/deeper");
    std::fs::create_dir_all(&deep).unwrap();
    let project = cluster.write_file(
        "arpanet.toml",
        &format!(
            "inventory = \"inv/hosts.ini\"\nforks = 1\nuser = \"{}\"\n",
            cluster.user
        ),
    );
    let run = |cwd: &Path, args: &[&str]| {
        crate::support::run_arpanet(&cluster.home, cwd, args, &[("ARPANET_INVENTORY", "")])
    };
    let out = run(&deep, &["exec", "--", "echo", "hi"]);
    assert_eq!(out.code, 0, "{out}");
    for node in ["node1", "node2"] {
        assert!(out.stdout.contains(&format!("{node} | hi\n")), "{out}");
    }
    // `-u` wins over the file's user: that user has no key here.
    let out = run(&deep, &["exec", "-u", "nobody-at-all", "--", "echo", "hi"]);
    assert_eq!(out.code, 4, "{out}");

    // An unknown key: bad input at its line, before any host.
    std::fs::write(
        &project,
        "inventory = \"inv/hosts.ini\"\nforks = 1\nforcks = 2\n",
    )
    .unwrap();
    let out = run(&deep, &["exec", "--", "echo", "hi"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("arpanet.toml:3:1"), "{out}");
    assert!(out.stderr.contains("forcks"), "{out}");
    assert!(!out.stdout.contains("| hi"), "{out}");
}

#[test]
fn status_watch_prints_a_block_each_interval_until_ctrl_c() {
    let consul = FakeConsul::start();
    *consul.members.lock().unwrap() = vec![("node1".into(), 1)];
    let cluster = Cluster::start(1);
    let inv = cluster.inventory_with_groups(
        &[("servers", &[0])],
        &[("consul_port", &consul.port.to_string())],
    );
    let mut child = cluster.spawn(&[
        "status",
        "--watch",
        "--interval",
        "0.5",
        "-i",
        inv.to_str().unwrap(),
    ]);
    let stdout = child.stdout.take().unwrap();
    let started = Instant::now();
    let mut blocks = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("--- ") {
            blocks.push(started.elapsed());
        }
        // Each block is the whole table.
        if line.starts_with("node1 ") && blocks.len() >= 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no blocks");
    }
    assert!(blocks.len() >= 3, "{blocks:?}");
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let waited = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(waited.elapsed() < Duration::from_secs(5));
}

#[test]
fn restart_refuses_an_unknown_service_before_any_host() {
    let cluster = Cluster::start(1);
    let inv = cluster.inventory_with_groups(&[("servers", &[0])], &[]);
    // The only host is stopped: a host contacted would say unreachable.
    cluster.hosts[0].stop();
    let out = cluster.run(&["restart", "cadvisr", "-i", inv.to_str().unwrap()]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr
            .contains("no managed container is called `cadvisr`"),
        "{out}"
    );
    assert!(out.stderr.contains("`cadvisor`"), "{out}");
}
