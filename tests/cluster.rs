//! The main job end to end: `bootstrap` on a 5-node lab (3 servers, 2
//! clients) of real Debian nodes with their own dockerd, real Consul and
//! cAdvisor images from the lab registry. Run with `ARPANET_LAB_TESTS=1`
//! (`scripts/test`, CI); the steps share one lab and run in order, because
//! each builds on the cluster the previous one left.
//!
//! What the nodes did is checked with `docker exec` into the node
//! containers, independently of arpanet's own SSH code.

use std::process::Command;
use std::time::Duration;

use crate::support::lab::{recap_changed, Lab};

/// How many nodes a `bootstrap` found as the last one left them (the
/// stamps matched, no task ran).
fn unchanged_nodes(run: &crate::support::Run) -> usize {
    run.stdout
        .matches("unchanged since the last bootstrap: no task needed")
        .count()
}

/// The 5-node lab (3 servers) of the main test.
fn up() -> Lab {
    Lab::up("arpanet-cluster", 79, 5, 3)
}

/// The default stack's cAdvisor entry, as `playbooks/vars/defaults.yml`
/// has it (flow style, for stack files).
const CADVISOR: &str = "{name: \"{{ cadvisor_name }}\", image: \"{{ cadvisor_image }}\", ports: [\"{{ cadvisor_bind }}:{{ cadvisor_port }}:8080\"], volumes: [\"/:/rootfs:ro\", \"/var/run:/var/run:ro\", \"/sys:/sys:ro\", \"/var/lib/docker/:/var/lib/docker:ro\"]}";

/// A declared service in every stack of this test: the lab's test-service
/// image serving its hostname on 8080, published on 18090, announced in
/// Consul as `hello` with an HTTP check.
const HELLO: &str = "{name: hello, image: \"{{ lab_testsvc_image }}\", command: [sh, -c, \"hostname >/www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait\"], ports: [\"18090:8080\"], service: {check: {http: /, interval: 2s, timeout: 1s}}}";

/// When the node's Docker last started, in microseconds of the machine's
/// monotonic clock (which the lab's nodes share).
fn docker_restarted_at(lab: &Lab, n: usize) -> u64 {
    let shown = lab.on_node(
        n,
        "systemctl show docker --property=ActiveEnterTimestampMonotonic",
    );
    shown
        .trim()
        .strip_prefix("ActiveEnterTimestampMonotonic=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("node{n}: {shown}"))
}

/// The node (its number) whose Consul server leads, as `kv info` says.
fn leader_node(lab: &Lab) -> usize {
    let info = lab.run("kv", &["info"]);
    let leader_ip = info
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("leader: "))
        .unwrap_or_else(|| panic!("no leader\n{info}"))
        .trim()
        .to_owned();
    let last: usize = leader_ip
        .split(':')
        .next()
        .and_then(|ip| ip.rsplit('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("leader at `{leader_ip}`"));
    last - 10
}

fn started_at(lab: &Lab, n: usize) -> String {
    lab.on_node(
        n,
        "docker inspect --format '{{.Name}} {{.State.StartedAt}}' consul cadvisor",
    )
}

#[test]
fn bootstrap_builds_a_consul_cluster_and_keeps_it() {
    let Some(_turn) = crate::support::lab::heavy_turn("the cluster test") else {
        return;
    };
    let lab = up();

    // 0. a first `bootstrap --check` (the README's quickstart) on fresh nodes
    //    and no secrets yet: it says what it would do, exits 0, and writes
    //    no key material beside the inventory.
    let secrets = [lab.dir.join("consul-tls"), lab.dir.join("docker-tls")];
    for dir in &secrets {
        let _ = std::fs::remove_dir_all(dir);
    }
    let preview = lab.run("run", &["bootstrap", "--check"]);
    assert_eq!(preview.code, 0, "{preview}");
    assert!(preview.stdout.contains("would write"), "{preview}");
    assert!(recap_changed(&preview).iter().all(|&n| n > 0), "{preview}");
    for dir in &secrets {
        assert!(!dir.exists(), "--check made `{}`", dir.display());
    }

    // The stack: the default cAdvisor entry and a declared service,
    // `hello` (busybox httpd answering its hostname, published on 18090,
    // checked over HTTP), so every step below also keeps a linked service.
    std::fs::create_dir_all(lab.dir.join("group_vars")).unwrap();
    lab.file(
        "group_vars/all.yml",
        &format!("stack:\n  - {CADVISOR}\n  - {HELLO}\n"),
    );
    let hellos: Vec<String> = (11..=15).map(|h| format!("{}:18090", lab.at(h))).collect();
    let all_hellos_pass = |when: &str| {
        if let Err(seen) = lab.await_passing("hello", &hellos, Duration::from_secs(30)) {
            panic!("{when}: passing `hello` instances {seen:?}, want {hellos:?}");
        }
    };

    // 1. bootstrap: 5 alive members, 3 servers, a leader, the stack
    //    everywhere, `hello` one service with 5 healthy instances.
    let first = lab.run("run", &["bootstrap"]);
    assert_eq!(first.code, 0, "{first}");
    lab.assert_healthy();
    all_hellos_pass("after bootstrap");

    // 1a. the servers run with Consul's production raft timing
    //     (raft_multiplier 1: an election timeout of 1s, not 5s).
    assert!(lab
        .on_node(
            1,
            "curl -sf -H \"X-Consul-Token: $(cat /mnt/arpanet-consul/arpanet/management.token)\" \
             http://127.0.0.1:8500/v1/agent/self"
        )
        .contains("\"ConsulRaftElectionTimeout\":\"1s\""));

    // 1b. nothing of Consul's talks in clear on the network: gossip is
    //     encrypted, and a plain RPC connection to a server is refused.
    assert!(lab
        .on_node(
            4,
            "docker exec -e CONSUL_HTTP_TOKEN_FILE=/consul/data/arpanet/linking.token consul consul info"
        )
        .contains("encrypted = true"));
    let mut rpc = std::net::TcpStream::connect(format!("{}:8300", lab.at(11))).unwrap();
    rpc.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    std::io::Write::write_all(&mut rpc, &[1]).unwrap();
    let mut answer = [0u8; 16];
    assert_eq!(
        std::io::Read::read(&mut rpc, &mut answer).unwrap_or(0),
        0,
        "plain RPC was answered"
    );
    let mut refused = String::new();
    for _ in 0..10 {
        refused = lab.on_node(
            1,
            "docker logs consul 2>&1 | grep -c 'Non-TLS connection attempted' || true",
        );
        if refused.trim() != "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_ne!(
        refused.trim(),
        "0",
        "the server did not log the refused plain RPC"
    );

    // 2. containers find services through Consul DNS.
    let image = format!("{}:5000/arpanet/consul:1.8.7", lab.at(2));
    let lookup = lab.on_node(
        4,
        &format!("docker run --rm --entrypoint busybox {image} nslookup consul.service.consul"),
    );
    for server in [lab.at(11), lab.at(12), lab.at(13)] {
        assert!(lookup.contains(&format!("Address: {server}")), "{lookup}");
    }
    // Consul answers at most 3 A records over UDP, in random order: rounds
    // of 20 lookups must between them name every `hello` instance, and
    // never anything else (a round more when a loaded node's check missed
    // its 1 s timeout, which rightly drops that instance for a moment).
    let want: std::collections::BTreeSet<String> = (11..=15).map(|h| lab.at(h)).collect();
    let mut answered = std::collections::BTreeSet::new();
    for _round in 0..3 {
        let lookups = lab.on_node(
            4,
            &format!(
                "docker run --rm --entrypoint sh {image} -c 'for i in $(seq 20); do busybox nslookup hello.service.consul; done'"
            ),
        );
        answered.extend(
            lookups
                .lines()
                .filter_map(|line| line.strip_prefix("Address: "))
                .filter(|address| !address.contains(':'))
                .map(str::to_owned),
        );
        assert!(answered.is_subset(&want), "{answered:?} {lookups}");
        if answered == want {
            break;
        }
    }
    assert_eq!(answered, want);

    // 3. a second bootstrap changes nothing and restarts nothing: every
    //    node matches the stamp the first one left, so no task runs. With
    //    the stamps off (`bootstrap_fast=false`) every task runs, and
    //    changes nothing either.
    let before: Vec<String> = (1..=5).map(|n| started_at(&lab, n)).collect();
    let second = lab.run("run", &["bootstrap", "-v"]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(recap_changed(&second), [0, 0, 0, 0, 0], "{second}");
    assert_eq!(unchanged_nodes(&second), 5, "{second}");
    let full = lab.run("run", &["bootstrap", "-e", "bootstrap_fast=false"]);
    assert_eq!(full.code, 0, "{full}");
    assert_eq!(recap_changed(&full), [0, 0, 0, 0, 0], "{full}");
    assert_eq!(unchanged_nodes(&full), 0, "{full}");
    let after: Vec<String> = (1..=5).map(|n| started_at(&lab, n)).collect();
    assert_eq!(before, after);
    all_hellos_pass("after a bootstrap that changed nothing");

    // 3a. drift by hand: node3's cAdvisor removed, node2's linking watcher
    //     script made unreadable to others. Their stamps no longer match,
    //     so every task runs: both are put back, no other node changes.
    //     Then the stamps match again.
    lab.on_node(3, "docker rm -f cadvisor");
    lab.on_node(2, "chmod 0700 /usr/local/lib/arpanet/watcher.sh");
    let repaired = lab.run("run", &["bootstrap", "-v"]);
    assert_eq!(repaired.code, 0, "{repaired}");
    assert_eq!(unchanged_nodes(&repaired), 0, "{repaired}");
    assert!(
        repaired
            .stderr
            .contains("not as the last bootstrap left it"),
        "{repaired}"
    );
    let changed = recap_changed(&repaired);
    assert!(
        changed[0] == 0 && changed[1] > 0 && changed[2] > 0 && changed[3..] == [0, 0],
        "{repaired}"
    );
    assert_eq!(
        lab.on_node(2, "stat -c %a /usr/local/lib/arpanet/watcher.sh")
            .trim(),
        "755"
    );
    assert_eq!(
        lab.on_node(
            3,
            "docker ps -q --filter name=^cadvisor$ --filter status=running"
        )
        .lines()
        .count(),
        1
    );
    // The stamps were taken as the run ended; the watcher restarted on
    // node2 may still have been resyncing, so one full run more is allowed.
    let mut settled = lab.run("run", &["bootstrap"]);
    if unchanged_nodes(&settled) == 0 {
        settled = lab.run("run", &["bootstrap"]);
    }
    assert_eq!(settled.code, 0, "{settled}");
    assert_eq!(unchanged_nodes(&settled), 5, "{settled}");

    // 4. one Docker option changed for every node: previewed, then applied
    //    with a restart of Docker on each, in the roll: the clients first,
    //    then the servers one at a time through the gates, the leader last.
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let option = "docker_opts_extra=--max-concurrent-downloads=5";
    std::fs::write(
        lab.inventory(),
        format!("{inventory}\n[servers:vars]\n{option}\n[clients:vars]\n{option}\n"),
    )
    .unwrap();
    let original = lab.on_node(4, "cat /etc/default/docker");
    let preview = lab.run("run", &["setup", "--check", "--diff"]);
    assert_eq!(preview.code, 0, "{preview}");
    assert!(
        preview.stdout.contains("+DOCKER_OPTS=")
            && preview.stdout.contains("--max-concurrent-downloads=5"),
        "{preview}"
    );
    assert_eq!(
        lab.on_node(4, "cat /etc/default/docker"),
        original,
        "check mode changed the file"
    );
    // ... and says Docker would restart on every node, in the roll.
    let said = preview
        .stdout
        .split("TASK [docker would restart here]")
        .nth(1)
        .and_then(|rest| rest.split("TASK [").next())
        .unwrap_or_default();
    for n in 1..=5 {
        assert!(
            said.contains(&format!("changed: [node{n}]")),
            "node{n}:\n{preview}"
        );
    }
    assert!(said.contains("in the roll"), "{preview}");
    let leader = leader_node(&lab);
    let docker_before: Vec<u64> = (1..=5).map(|n| docker_restarted_at(&lab, n)).collect();
    let apply = lab.run("run", &["setup", "-e", "gate_settle_seconds=3"]);
    assert_eq!(apply.code, 0, "{apply}");
    assert_eq!(recap_changed(&apply), [2, 2, 2, 2, 2], "{apply}");
    let docker_after: Vec<u64> = (1..=5).map(|n| docker_restarted_at(&lab, n)).collect();
    for n in 0..5 {
        assert_ne!(docker_before[n], docker_after[n], "node{}'s docker", n + 1);
    }
    // Each server's Docker came back only after the previous one had, and
    // the gates held it a few seconds more (autopilot's settle alone is 3).
    let mut servers: Vec<(u64, usize)> = (0..3).map(|n| (docker_after[n], n + 1)).collect();
    servers.sort_unstable();
    for pair in servers.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= 3_000_000,
            "node{} and node{} restarted docker {} ms apart\n{apply}",
            pair[0].1,
            pair[1].1,
            (pair[1].0 - pair[0].0) / 1000
        );
    }
    assert_eq!(servers[2].1, leader, "the leader was not last\n{apply}");
    assert!(
        docker_after[3].max(docker_after[4]) < servers[0].0,
        "a server restarted before the clients\n{apply}"
    );
    assert!(lab
        .on_node(1, "cat /etc/default/docker")
        .contains("--max-concurrent-downloads=5"));
    lab.assert_healthy();

    // A restart left pending by a run cut short (its mark on the node) is
    // done by the next run, on that node only.
    let mark = "/mnt/arpanet-consul/docker-restart.pending";
    lab.on_node(5, &format!("touch {mark}"));
    let resumed = lab.run("run", &["setup", "-e", "gate_settle_seconds=3"]);
    assert_eq!(resumed.code, 0, "{resumed}");
    let after: Vec<u64> = (1..=5).map(|n| docker_restarted_at(&lab, n)).collect();
    assert_eq!(docker_after[..4], after[..4], "{resumed}");
    assert_ne!(docker_after[4], after[4], "no restart\n{resumed}");
    assert_eq!(
        lab.on_node(5, &format!("ls {mark} 2>/dev/null || true")),
        ""
    );

    // 4b. Docker's TCP API: TLS with client certificates, never plain
    //     (on a client: no server holds the CA's copies).
    let tls = lab.run(
        "run",
        &["setup", "--limit", "node4", "-e", "docker_tcp=true"],
    );
    assert_eq!(tls.code, 0, "{tls}");
    let certs = lab.dir.join("docker-tls");
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .args([
                "-H",
                &format!("tcp://{}:2375", lab.at(14)),
                "version",
                "--format",
                "{{.Server.Version}}",
            ])
            .output()
            .unwrap()
    };
    let cert = |name: &str| certs.join(name).display().to_string();
    let (ca, client_cert, client_key) = (cert("ca.pem"), cert("cert.pem"), cert("key.pem"));
    // Docker's API over TLS, the server checked against the CA, with a
    // client certificate.
    let with_client = |cert: &str, key: &str| {
        docker(&[
            "--tlsverify",
            "--tlscacert",
            &ca,
            "--tlscert",
            cert,
            "--tlskey",
            key,
        ])
    };
    let with_certs = with_client(&client_cert, &client_key);
    assert!(
        with_certs.status.success(),
        "{}",
        String::from_utf8_lossy(&with_certs.stderr)
    );
    assert!(!docker(&[]).status.success(), "plain TCP answered");
    assert!(
        !docker(&["--tlsverify", "--tlscacert", &ca])
            .status
            .success(),
        "TLS without a client certificate answered"
    );
    let again = lab.run(
        "run",
        &["setup", "--limit", "node4", "-e", "docker_tcp=true"],
    );
    assert_eq!(recap_changed(&again), [0], "{again}");
    // A second checkout, without the CA, adopts the one node4 holds (and
    // node4's certificate) rather than making its own: node4's Docker is
    // not restarted.
    let node4_docker = docker_restarted_at(&lab, 4);
    let second = lab.dir.join("second-checkout");
    // An earlier run's checkout held another cluster's keys.
    let _ = std::fs::remove_dir_all(&second);
    std::fs::create_dir_all(second.join("group_vars")).unwrap();
    let second_inventory = second.join("inventory.ini");
    std::fs::copy(lab.inventory(), &second_inventory).unwrap();
    std::fs::copy(
        lab.dir.join("group_vars/all.yml"),
        second.join("group_vars/all.yml"),
    )
    .unwrap();
    let adopted = lab.arpanet(&[
        "run",
        "-i",
        second_inventory.to_str().unwrap(),
        "setup",
        "--limit",
        "node4",
        "-e",
        "docker_tcp=true",
    ]);
    assert_eq!(adopted.code, 0, "{adopted}");
    assert_eq!(
        std::fs::read(second.join("docker-tls/ca.pem")).unwrap(),
        std::fs::read(&ca).unwrap(),
        "the second checkout made a CA of its own\n{adopted}"
    );
    assert_eq!(docker_restarted_at(&lab, 4), node4_docker, "{adopted}");
    // `rotate --docker-tls`: a new CA, node4's certificate and the client's
    // from it, node4's Docker restarted once in the roll and no other
    // node's; the old client certificate is refused, the new one answered,
    // and the old CA forgotten once every node has the new one.
    std::fs::create_dir_all(lab.dir.join("host_vars")).unwrap();
    lab.file("host_vars/node4.yml", "docker_tcp: true\n");
    let old_certs = lab.dir.join("docker-tls-before");
    std::fs::create_dir_all(&old_certs).unwrap();
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(certs.join(file), old_certs.join(file)).unwrap();
    }
    let old_cert = |name: &str| old_certs.join(name).display().to_string();
    let restarted: Vec<u64> = (1..=5).map(|n| docker_restarted_at(&lab, n)).collect();
    let rotated = lab.run(
        "rotate",
        &["--docker-tls", "--yes", "-e", "gate_settle_seconds=3"],
    );
    assert_eq!(rotated.code, 0, "{rotated}");
    assert!(
        rotated.stderr.contains("every node has the new Docker CA"),
        "{rotated}"
    );
    assert_ne!(
        std::fs::read(&ca).unwrap(),
        std::fs::read(old_certs.join("ca.pem")).unwrap()
    );
    assert!(!certs.join("ca.old.pem").exists(), "{rotated}");
    let now: Vec<u64> = (1..=5).map(|n| docker_restarted_at(&lab, n)).collect();
    for n in 0..5 {
        assert_eq!(now[n] != restarted[n], n == 3, "node{}\n{rotated}", n + 1);
    }
    let new_ok = with_client(&client_cert, &client_key);
    assert!(
        new_ok.status.success(),
        "{}",
        String::from_utf8_lossy(&new_ok.stderr)
    );
    let old_refused = with_client(&old_cert("cert.pem"), &old_cert("key.pem"));
    assert!(
        !old_refused.status.success(),
        "the old client certificate answered"
    );
    std::fs::remove_file(lab.dir.join("host_vars/node4.yml")).unwrap();
    // Off again: the API closed, its copies on the node removed.
    let off = lab.run("run", &["setup", "--limit", "node4"]);
    assert_eq!(recap_changed(&off), [3], "{off}");
    assert_eq!(
        lab.on_node(4, "ls -d /etc/docker/arpanet 2>/dev/null || true"),
        ""
    );
    assert!(!with_client(&client_cert, &client_key).status.success());
    lab.assert_healthy();

    // 5. KV round trip; stop; bootstrap again with the KV data intact.
    assert_eq!(
        lab.run("kv", &["set", "app/db/url", "postgres://db"]).code,
        0
    );
    assert_eq!(lab.run("kv", &["set", "app/db/pool", "5"]).code, 0);
    assert_eq!(lab.run("kv", &["set", "keep/me", "yes"]).code, 0);
    assert_eq!(
        lab.run("kv", &["get", "app/db/url"]).stdout,
        "postgres://db\n"
    );
    assert_eq!(
        lab.run("kv", &["ls", "app/db"]).stdout,
        "app/db/pool\napp/db/url\n"
    );
    assert_eq!(lab.run("kv", &["del", "--recurse", "app"]).code, 0);
    let gone = lab.run("kv", &["get", "app/db/url"]);
    assert_eq!(gone.code, 2, "{gone}");
    // A service is data: an extra `stack` entry is created on every node,
    // left alone on a second run, and recreated when its spec changes.
    let cadvisor = CADVISOR;
    let stack_file = |entries: &[String]| {
        let path = lab.dir.join("extra-stack.yml");
        let list: String = [HELLO.to_owned()]
            .iter()
            .chain(entries)
            .map(|e| format!("  - {e}\n"))
            .collect();
        std::fs::write(&path, format!("stack:\n{list}")).unwrap();
        format!("@{}", path.display())
    };
    let web = |name: &str, image: &str, port: u16| {
        format!("{{name: {name}, image: \"{image}\", entrypoint: busybox, command: \"httpd -f -p {port}\", network_mode: host}}")
    };
    let extra = |port: u16| stack_file(&[cadvisor.to_owned(), web("web", &image, port)]);
    let added = lab.run("run", &["stack", "-e", &extra(18080)]);
    assert_eq!(added.code, 0, "{added}");
    assert_eq!(added.stdout.matches("web: created").count(), 5, "{added}");
    assert_eq!(recap_changed(&added), [1, 1, 1, 1, 1], "{added}");
    let same = lab.run("run", &["stack", "-e", &extra(18080)]);
    assert_eq!(recap_changed(&same), [0, 0, 0, 0, 0], "{same}");
    let moved = lab.run("run", &["stack", "-e", &extra(18081)]);
    assert_eq!(moved.stdout.matches("web: recreated").count(), 5, "{moved}");
    assert!(lab
        .on_node(3, "docker inspect --format '{{.Args}}' web")
        .contains("18081"));

    // 5a. a stack entry whose env holds a secret, on an image that cannot
    //     start: `-v` shows the `docker run` sent and the failure names it,
    //     both with `KEY=***`; the value appears nowhere in human or JSON
    //     output (nor in this test's messages).
    let secret = format!(
        "s3cret-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let missing = format!("{}:5000/arpanet/no-such-image:1", lab.at(2));
    let leaky = stack_file(&[
        cadvisor.to_owned(),
        web("web", &image, 18081),
        format!("{{name: vault, image: \"{missing}\", env: {{DB_PASSWORD: \"{secret}\"}}}}"),
    ]);
    let masked = "--env 'DB_PASSWORD=***'";
    for format in ["human", "json"] {
        let failed = lab.run("run", &["stack", "-v", "--output", format, "-e", &leaky]);
        let shown = failed.to_string().replace(&secret, "<THE SECRET>");
        assert_eq!(failed.code, 2, "{shown}");
        assert!(
            !failed.stdout.contains(&secret) && !failed.stderr.contains(&secret),
            "{shown}"
        );
        assert!(failed.stdout.contains("DB_PASSWORD=***"), "{shown}");
        let sent = failed
            .stdout
            .lines()
            .filter(|l| l.contains("$ set -e; docker run -d --name vault "))
            .collect::<Vec<_>>();
        assert!(!sent.is_empty(), "-v shows no `docker run`: {shown}");
        assert!(sent.iter().all(|l| l.contains(masked)), "{shown}");
    }

    // 5b. `--check --diff` shows a dropped service's removal and an image
    //     change old → new, and changes nothing; a renamed service's old
    //     container is removed.
    let next = format!("{image}-next");
    let preview = lab.run(
        "run",
        &[
            "stack",
            "--check",
            "--diff",
            "-e",
            &stack_file(&[web("web", &next, 18081)]),
        ],
    );
    assert_eq!(preview.code, 0, "{preview}");
    assert!(preview.stdout.contains("- container cadvisor"), "{preview}");
    assert!(
        preview
            .stdout
            .contains(&format!("web: image: {image} → {next}")),
        "{preview}"
    );
    assert_eq!(
        lab.on_node(2, "docker ps -q --filter name=^cadvisor$")
            .lines()
            .count(),
        1
    );
    let renamed = lab.run(
        "run",
        &[
            "stack",
            "-e",
            &stack_file(&[cadvisor.to_owned(), web("web2", &image, 18082)]),
        ],
    );
    assert_eq!(renamed.code, 0, "{renamed}");
    for n in 1..=5 {
        let names = lab.on_node(
            n,
            "docker ps -a --format '{{.Names}}' | sort | tr '\\n' ' '",
        );
        // `hello-proxy`: the Connect sidecar of the declared service.
        assert_eq!(names, "cadvisor consul hello hello-proxy web2 ", "node{n}");
    }

    // `stop` (with the default stack, which has no `web2`) removes every
    // container arpanet manages.
    let stop = lab.run("run", &["stop"]);
    assert_eq!(stop.code, 0, "{stop}");
    for n in 1..=5 {
        assert_eq!(
            lab.on_node(n, "docker ps -aq --filter label=arpanet.managed=true"),
            "",
            "node{n}"
        );
    }
    let again = lab.run("run", &["bootstrap"]);
    assert_eq!(again.code, 0, "{again}");
    lab.assert_healthy();
    let mut kept = lab.run("kv", &["get", "keep/me"]);
    for _ in 0..30 {
        if kept.code == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        kept = lab.run("kv", &["get", "keep/me"]);
    }
    assert_eq!(kept.stdout, "yes\n", "{kept}");

    // 5c. a rolling upgrade: a broken one (a service image that exits 3 s
    //     after it starts, under a restart policy) stops after its first
    //     batch, exit 2, saying what its gate saw; every other host stays on
    //     the old images. A good one
    //     upgrades every node, the consul leader last, and the cluster stays
    //     whole.
    let old = format!("{}:5000/arpanet/consul:1.8.7", lab.at(2));
    let old = old.as_str();
    let new = format!("{}:5000/arpanet/consul:1.8.7-r2", lab.at(2));
    let new = new.as_str();
    let crash = format!("{}:5000/arpanet/crash:1", lab.at(2));
    lab.on_node(
        1,
        &format!(
            "docker tag {old} {new} && docker push -q {new} \
             && docker create --name crash-base {old} >/dev/null \
             && docker commit --change 'ENTRYPOINT [\"sh\", \"-c\", \"echo about to fail; sleep 3; exit 3\"]' crash-base {crash} >/dev/null \
             && docker rm crash-base >/dev/null && docker push -q {crash}"
        ),
    );
    let image_of = |n: usize| {
        lab.on_node(n, "docker inspect --format '{{.Config.Image}}' consul")
            .trim()
            .to_owned()
    };
    let crashing = lab.dir.join("crashing-stack.yml");
    std::fs::write(
        &crashing,
        format!("stack:\n  - {HELLO}\n  - {{name: crash, image: \"{crash}\"}}\n"),
    )
    .unwrap();
    let new_image = format!("consul_image={new}");
    let broken = lab.run(
        "run",
        &[
            "upgrade",
            "-e",
            &new_image,
            "-e",
            &format!("@{}", crashing.display()),
        ],
    );
    assert_eq!(broken.code, 2, "{broken}");
    assert!(broken.stdout.contains("failed: [node4]"), "{broken}");
    let seen = |name: &str| {
        broken
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("`{name}`: ")))
            .unwrap_or_else(|| panic!("no state of `{name}`:\n{broken}"))
            .to_owned()
    };
    let crash_seen = seen("crash");
    let restarts: u32 = crash_seen
        .split(", restart count ")
        .nth(1)
        .and_then(|rest| rest.split([' ', ',']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{crash_seen}"));
    assert!(restarts >= 1, "{crash_seen}");
    // Not yet asserted: the exit code (3) when the gate samples the
    // container running again after its restart (inspect then says 0, and
    // the `die` event lookup did not find it on the lab's Docker 20.10).
    assert!(crash_seen.contains("last exit code "), "{crash_seen}");
    assert!(
        seen("consul").contains("running, restart count 0"),
        "{broken}"
    );
    for logged in ["last 20 log lines of `crash`:", "about to fail"] {
        assert!(broken.stdout.contains(logged), "no `{logged}`:\n{broken}");
    }
    assert_eq!(image_of(4), new, "the first batch was upgraded");
    for n in [1, 2, 3, 5] {
        assert_eq!(
            image_of(n),
            old,
            "node{n} was touched after the failed batch"
        );
        assert_eq!(lab.on_node(n, "docker ps -aq --filter name=crash"), "");
    }
    lab.on_node(4, "docker rm -f crash >/dev/null");
    // --check previews it to the end and changes nothing (its read of
    // each agent failed the run in check mode).
    let preview = lab.run("run", &["upgrade", "--check", "-e", &new_image]);
    assert_eq!(preview.code, 0, "{preview}");
    assert!(preview.stdout.contains("changed: [node1]"), "{preview}");
    for n in [1, 2, 3, 5] {
        assert_eq!(image_of(n), old, "node{n} changed under --check");
    }
    let leader = format!("node{}", leader_node(&lab));
    let good = lab.run("run", &["upgrade", "-e", &new_image]);
    assert_eq!(good.code, 0, "{good}");
    for n in 1..=5 {
        assert_eq!(image_of(n), new, "node{n}");
    }
    let last_change = good
        .stdout
        .lines()
        .rfind(|l| l.starts_with("changed: ["))
        .unwrap();
    assert!(
        last_change.starts_with(&format!("changed: [{leader}]")),
        "leader {leader} was not last:\n{good}"
    );
    lab.assert_healthy();
    all_hellos_pass("after the upgrade");

    // 6. a node down: reported unreachable, the others complete, exit 4.
    let stopped = Command::new("docker")
        .args(["stop", &lab.node(5)])
        .output()
        .unwrap();
    assert!(stopped.status.success());
    let partial = lab.run("run", &["bootstrap", "-e", &new_image]);
    assert_eq!(partial.code, 4, "{partial}");
    assert!(partial.stdout.contains("unreachable: [node5]"), "{partial}");
    let recap = &partial.stdout[partial.stdout.find("PLAY RECAP").unwrap()..];
    assert!(
        recap
            .lines()
            .any(|l| l.starts_with("node5") && l.contains("unreachable=1")),
        "{partial}"
    );
    assert!(
        recap.lines().filter(|l| l.contains("failed=0")).count() == 5,
        "{partial}"
    );

    // 7. a Docker unit that does not read /etc/default/docker (as Docker
    //    CE's): setup adds a drop-in that makes it, and dockerd runs with
    //    the options; a second run changes nothing.
    let back = lab.lab(&["up", "--nodes", "5", "--servers", "3"]);
    assert_eq!(back.code, 0, "{back}");
    lab.on_node(
        5,
        "sed '/EnvironmentFile/d; s/ \\$DOCKER_OPTS//' /lib/systemd/system/docker.service > /etc/systemd/system/docker.service \
         && systemctl daemon-reload && systemctl restart docker",
    );
    let dockerd_args = || lab.on_node(5, "tr '\\0' ' ' < /proc/$(pidof dockerd)/cmdline");
    assert!(
        !dockerd_args().contains("service.consul"),
        "the unit still reads the options"
    );
    let dropin = lab.run("run", &["setup", "--limit", "node5"]);
    assert_eq!(dropin.code, 0, "{dropin}");
    assert!(lab
        .on_node(5, "cat /etc/systemd/system/docker.service.d/arpanet.conf")
        .contains("$DOCKER_OPTS"));
    assert!(
        dockerd_args().contains("--dns-search service.consul"),
        "{}",
        dockerd_args()
    );
    let settled = lab.run("run", &["setup", "--limit", "node5"]);
    assert_eq!(recap_changed(&settled), [0], "{settled}");
}
