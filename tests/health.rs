//! A health-aware `status` and Consul failover, over real sshd hosts whose
//! forwarded channel reaches a stand-in Consul API (`FakeConsul`): the
//! first server's `consul_port` has nothing listening (its Consul is down),
//! the second's answers. `kv`, `consul` and `status` move on to the
//! second; `status` names the first's agent under `problems:` and exits
//! non-zero. The lab version (real Consul, `docker stop`) is in
//! `health_lab.rs`.

use crate::support::{Cluster, FakeConsul};

/// A port on 127.0.0.1 that nothing listens on: bound, noted, let go.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Both hosts in `servers`, each with its own `consul_port`.
fn inventory(cluster: &Cluster, ports: [u16; 2]) -> String {
    let mut text = String::from("[servers]\n");
    for (i, port) in ports.iter().enumerate() {
        text.push_str(&format!("{} consul_port={port}\n", cluster.host_line(i)));
    }
    let path = cluster.write_file(&format!("inv-{}-{}.ini", ports[0], ports[1]), &text);
    path.to_str().unwrap().to_owned()
}

#[test]
fn kv_and_consul_move_on_to_the_next_server_whose_agent_answers() {
    let consul = FakeConsul::start();
    let cluster = Cluster::start(2);
    let down = closed_port();
    let inv = inventory(&cluster, [down, consul.port]);
    let value = format!("v-{}", std::process::id());

    let set = cluster.run(&["kv", "-i", &inv, "-v", "set", "failover/x", &value]);
    assert_eq!(set.code, 0, "{set}");
    // Each attempt named: node1's agent does not answer, node2's does.
    let lines: Vec<&str> = set.stderr.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("node1: ") && l.ends_with("trying the next node"))
        .unwrap_or_else(|| panic!("node1's attempt not named:\n{set}"));
    let second = lines
        .iter()
        .position(|l| l.starts_with("node2: consul agent answers"))
        .unwrap_or_else(|| panic!("node2's attempt not named:\n{set}"));
    assert!(first < second, "{set}");
    assert!(lines[first].contains(&down.to_string()), "{set}");
    assert!(!set.stderr.contains("MaxSessions"), "{set}");

    let get = cluster.run(&["kv", "-i", &inv, "get", "failover/x"]);
    assert_eq!((get.code, get.stdout.trim()), (0, value.as_str()), "{get}");
    // Without -v the attempts are not shown.
    assert!(!get.stderr.contains("trying the next node"), "{get}");

    // No agent anywhere: each node's reason, and not sshd's MaxSessions.
    let none = inventory(&cluster, [down, down]);
    let get = cluster.run(&["kv", "-i", &none, "get", "failover/x"]);
    assert_eq!(get.code, 2, "{get}");
    assert!(get.stderr.contains("no agent answers on any node"), "{get}");
    for node in ["node1", "node2"] {
        assert!(
            get.stderr
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{node}: "))
                    && l.contains("nothing answers")),
            "{get}"
        );
    }
    assert!(!get.stderr.contains("MaxSessions"), "{get}");

    // `consul` goes to node2 too (whose `docker exec` fails here: the test
    // user has no Docker), with or without `--`.
    for args in [&["members"][..], &["--", "members"]] {
        let mut all = vec!["consul", "-i", &inv, "-v"];
        all.extend_from_slice(args);
        let out = cluster.run(&all);
        assert!(
            out.stderr.contains("node2: consul agent answers"),
            "{args:?}: {out}"
        );
        assert!(!out.stderr.contains("not an option"), "{out}");
    }
    // An arpanet option among consul's arguments, without `--`: refused,
    // saying both forms.
    let mixed = cluster.run(&["consul", "members", "-i", &inv]);
    assert_eq!(mixed.code, 5, "{mixed}");
    assert!(
        mixed
            .stderr
            .contains(&format!("`arpanet consul -i {inv} -- members`")),
        "{mixed}"
    );
}

#[test]
fn status_names_an_agent_that_does_not_answer_and_exits_non_zero() {
    let consul = FakeConsul::start();
    *consul.members.lock().unwrap() = vec![("node1".into(), 4), ("node2".into(), 1)];
    let cluster = Cluster::start(2);
    let down = closed_port();
    let inv = inventory(&cluster, [down, consul.port]);

    let out = cluster.run(&["status", "-i", &inv, "-v"]);
    assert_eq!(out.code, 2, "{out}");
    let problems: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| *l != "problems:")
        .collect();
    assert!(
        problems
            .iter()
            .any(|l| l.starts_with("  node1: consul agent: not answering: ")
                && l.contains("nothing answers")),
        "{out}"
    );
    // node2's agent answers and the cluster sees it alive, with a leader.
    assert!(
        !problems.iter().any(|l| l.contains("node2: consul agent")),
        "{out}"
    );
    assert!(!problems.iter().any(|l| l.contains("leader")), "{out}");
    // The cluster's view came from node2, after node1 was tried.
    assert!(out.stderr.contains("node1: "), "{out}");
    assert!(out.stderr.contains("node2: consul agent answers"), "{out}");

    let json = cluster.run(&["status", "-i", &inv, "-o", "json"]);
    assert_eq!(json.code, 2, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["nodes"].as_array().unwrap().len(), 2, "{json}");
    let agent = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node"] == "node1" && p["what"] == "consul agent")
        .unwrap_or_else(|| panic!("no problem for node1's agent: {json}"));
    assert!(agent["state"]
        .as_str()
        .unwrap()
        .starts_with("not answering"));

    // A node down: exit 4, named under problems.
    let text = format!(
        "[servers]\n{} consul_port={}\nnode3 ansible_host=127.0.0.1 ansible_port={}\n",
        cluster.host_line(1),
        consul.port,
        closed_port()
    );
    let inv = cluster.write_file("down.ini", &text);
    let out = cluster.run(&["status", "-i", inv.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stdout.contains("\n  node3: ssh: unreachable: "),
        "{out}"
    );
}
