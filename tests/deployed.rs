//! What is deployed lives in the cluster, on a lab of real nodes (one
//! Consul server, one client: both roles, the fewest nodes that have
//! them). Run with `ARPANET_LAB_TESTS=1`. The inventory is the lab's
//! without its image lines, so images come from `-e` and then from the
//! cluster's record: after `upgrade -e consul_image=X`, a plain
//! `bootstrap` and an upgrade of cAdvisor keep X; `history` lists the
//! records (here and in a second checkout without local state);
//! `rollback` returns cAdvisor to the previous record's image and keeps X;
//! X pushed again with other contents is fetched by `pull` on the node
//! that had the old one (changed there only).
//! The images running are read with `docker exec` into the nodes, not
//! from arpanet's output, and so is the order the first bootstrap started
//! the agents in: the server, then the client once there is a leader;
//! `wait_for: {consul: leader}` and `{consul: member}` ask a node's agent.

use std::path::Path;

use crate::support::lab::Lab;
use crate::support::{FakeConsul, Run};

/// `arpanet COMMAND -i INVENTORY ARGS...` with the given inventory.
fn run(lab: &Lab, inventory: &Path, command: &str, args: &[&str]) -> Run {
    let mut all = vec![command, "-i", inventory.to_str().unwrap()];
    all.extend_from_slice(args);
    lab.arpanet(&all)
}

/// The image each node's `consul` and `cadvisor` containers run.
fn images(lab: &Lab) -> Vec<(String, String)> {
    (1..=2)
        .map(|n| {
            let image = |name: &str| {
                lab.on_node(
                    n,
                    &format!("docker inspect --format '{{{{.Config.Image}}}}' {name}"),
                )
                .trim()
                .to_owned()
            };
            (image("consul"), image("cadvisor"))
        })
        .collect()
}

/// The value of `key=` in the lab inventory.
fn inventory_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no `{key}` in the lab inventory:\n{text}"))
        .trim()
        .to_owned()
}

#[test]
fn what_is_deployed_is_kept_listed_and_rolled_back_from_the_cluster() {
    let Some(_turn) = crate::support::lab::turn("the deployed-record lab test") else {
        return;
    };
    let lab = Lab::up("arpanet-deployed", 75, 2, 1);

    // The lab's inventory without its image lines (and a short settle
    // window): images come from `-e` and the record only.
    let lab_inventory = std::fs::read_to_string(lab.dir.join("inventory.ini")).unwrap();
    let consul = inventory_value(&lab_inventory, "consul_image");
    let cadvisor = inventory_value(&lab_inventory, "cadvisor_image");
    let stripped: String = lab_inventory
        .lines()
        .filter(|l| !l.starts_with("consul_image=") && !l.starts_with("cadvisor_image="))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "gate_settle_seconds=3\n";
    let inventory = lab.dir.join("deployed.ini");
    std::fs::write(&inventory, &stripped).unwrap();

    let first = run(
        &lab,
        &inventory,
        "run",
        &[
            "bootstrap",
            "-e",
            &format!("consul_image={consul}"),
            "-e",
            &format!("cadvisor_image={cadvisor}"),
        ],
    );
    assert_eq!(first.code, 0, "{first}");
    let both = |c: &str, a: &str| vec![(c.to_owned(), a.to_owned()); 2];
    assert_eq!(images(&lab), both(&consul, &cadvisor));
    // The server's agent started first; the client's only once the server
    // had stayed up its settle window (3 s) and there was a leader.
    let started = |n: usize| -> f64 {
        let at = lab.on_node(
            n,
            "date -d \"$(docker inspect --format '{{.State.StartedAt}}' consul)\" +%s.%N",
        );
        at.trim().parse().unwrap_or_else(|e| panic!("{e}: `{at}`"))
    };
    let (server, client) = (started(1), started(2));
    assert!(
        client - server >= 3.0,
        "the client's agent started {:.1} s after the server's:\n{first}",
        client - server
    );

    // `wait_for` asks the node's own agent (the client's here): a leader,
    // and node1 an alive member; a member that does not exist is waited
    // for until the timeout, which names it.
    let wait = |name: &str, wanted: &str, timeout: u32| {
        let playbook = lab.file(
            name,
            &format!(
                "- hosts: node2\n  tasks:\n    - wait_for: {{{wanted}, port: \"{{{{ consul_port }}}}\", \
                 timeout: {timeout}}}\n"
            ),
        );
        run(&lab, &inventory, "run", &["--no-lock", &playbook])
    };
    for wanted in ["consul: leader", "consul: member, node: node1"] {
        let waited = wait("wait.yml", wanted, 30);
        assert_eq!(waited.code, 0, "{wanted}: {waited}");
    }
    let nobody = wait("nobody.yml", "consul: member, node: nobody", 2);
    assert_eq!(nobody.code, 2, "{nobody}");
    assert!(
        nobody
            .stdout
            .contains("timed out after 2s waiting for Consul member `nobody` alive"),
        "{nobody}"
    );

    // X and Y: the lab's images under new tags, pushed from node1.
    let tag = format!("{:x}", std::process::id());
    let x = format!("{consul}-x{tag}");
    let y = format!("{cadvisor}-y{tag}");
    lab.on_node(
        1,
        &format!("docker tag {consul} {x} && docker push -q {x} >/dev/null && docker tag {cadvisor} {y} && docker push -q {y} >/dev/null"),
    );

    let upgrade_x = run(
        &lab,
        &inventory,
        "run",
        &["upgrade", "-e", &format!("consul_image={x}")],
    );
    assert_eq!(upgrade_x.code, 0, "{upgrade_x}");
    assert_eq!(images(&lab), both(&x, &cadvisor));

    // A plain bootstrap keeps X: nothing in the inventory or `-e` says
    // otherwise, and the record does.
    let plain = run(&lab, &inventory, "run", &["bootstrap"]);
    assert_eq!(plain.code, 0, "{plain}");
    assert_eq!(images(&lab), both(&x, &cadvisor), "{plain}");

    let upgrade_y = run(
        &lab,
        &inventory,
        "run",
        &["upgrade", "-e", &format!("cadvisor_image={y}")],
    );
    assert_eq!(upgrade_y.code, 0, "{upgrade_y}");
    assert_eq!(images(&lab), both(&x, &y), "{upgrade_y}");

    // `history` lists both upgrades with what changed, values masked in the
    // command line.
    let history = run(&lab, &inventory, "history", &[]);
    assert_eq!(history.code, 0, "{history}");
    let consul_change = format!("consul_image: `{consul}` → `{x}`");
    let cadvisor_change = format!("image: `{cadvisor}` → `{y}`");
    let row = |needle: &str| {
        history
            .stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{history}"))
            .to_owned()
    };
    assert!(row(&consul_change).contains("upgrade"), "{history}");
    assert!(
        row(&cadvisor_change).trim_start().starts_with("*3"),
        "{history}"
    );
    assert!(
        !history.stdout.contains(&format!("consul_image={x}")),
        "{history}"
    );
    let json = |run: &Run| -> serde_json::Value {
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"))
    };
    let listed = run(&lab, &inventory, "history", &["-o", "json"]);
    let records = json(&listed);
    let numbers: Vec<u64> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3], "{listed}");
    assert_eq!(records[2]["values"]["consul_image"], x.as_str());
    assert_eq!(records[2]["values"]["stack"][0]["image"], y.as_str());

    // `rollback` is destructive: refused without a terminal or `--yes`.
    let refused = run(&lab, &inventory, "rollback", &[]);
    assert_eq!(refused.code, 5, "{refused}");
    assert_eq!(images(&lab), both(&x, &y));
    let rollback = run(&lab, &inventory, "rollback", &["--yes"]);
    assert_eq!(rollback.code, 0, "{rollback}");
    assert_eq!(images(&lab), both(&x, &cadvisor), "{rollback}");
    let one = run(&lab, &inventory, "history", &["4", "-o", "json"]);
    let fourth = json(&one);
    assert_eq!(fourth["rollback_of"], 2, "{one}");
    assert_eq!(fourth["values"]["consul_image"], x.as_str());

    // A second checkout (the inventory alone, no local state) sees the
    // same history.
    let other = tempfile::tempdir().unwrap();
    let copy = other.path().join("hosts.ini");
    std::fs::write(&copy, &stripped).unwrap();
    let seen = run(&lab, &copy, "history", &["-o", "json"]);
    assert_eq!(seen.code, 0, "{seen}");
    let mine = run(&lab, &inventory, "history", &["-o", "json"]);
    assert_eq!(json(&seen), json(&mine));
    assert_eq!(json(&seen).as_array().unwrap().len(), 4);

    // X pushed again, changed (a label committed onto it on node1): `pull`
    // fetches it where the node has the old X, as `docker pull` would.
    let id = |n: usize| {
        lab.on_node(
            n,
            &format!("docker image inspect --format '{{{{.Id}}}}' {x}"),
        )
        .trim()
        .to_owned()
    };
    let old = id(2);
    let moved = lab
        .on_node(
            1,
            &format!(
                "docker rm -f moved >/dev/null 2>&1; docker create --name moved {x} >/dev/null \
                 && docker commit -c 'LABEL arpanet.test.moved={tag}' moved {x} >/dev/null \
                 && docker rm moved >/dev/null && docker push -q {x} >/dev/null \
                 && docker image inspect --format '{{{{.Id}}}}' {x}"
            ),
        )
        .trim()
        .to_owned();
    assert_ne!(moved, old);
    let pulled = run(&lab, &inventory, "run", &["pull"]);
    assert_eq!(pulled.code, 0, "{pulled}");
    assert_eq!(id(2), moved, "node2 still has the old {x}:\n{pulled}");
    // Changed where the image ID moved, not where it was already.
    assert_eq!(crate::run::changed(&pulled, "node2"), 1, "{pulled}");
    assert_eq!(crate::run::changed(&pulled, "node1"), 0, "{pulled}");
    let again = run(&lab, &inventory, "run", &["pull"]);
    assert_eq!(again.code, 0, "{again}");
    for host in ["node1", "node2"] {
        assert_eq!(crate::run::changed(&again, host), 0, "{host}: {again}");
    }
}

/// A record as arpanet writes it, with one stack entry holding `secret`.
fn record(number: u64, cadvisor: &str, secret: &str) -> String {
    serde_json::json!({
        "number": number,
        "time": format!("2026-12-0{number}T10:00:00Z"),
        "who": "ops@laptop",
        "command": "arpanet run -i hosts upgrade -e 'cadvisor_image=***'",
        "playbooks": ["upgrade"],
        "changes": [format!("cadvisor_image: `old` → `{cadvisor}`")],
        "values": {
            "consul_image": format!("reg/consul:{number}"),
            "cadvisor_image": cadvisor,
            "stack": [{"name": "app", "image": cadvisor, "env": {"DB_PASSWORD": secret}}]
        },
        "raw": {
            "consul_image": format!("reg/consul:{number}"),
            "cadvisor_image": cadvisor,
            "stack": [{"name": "app", "image": "{{ cadvisor_image }}", "env": {"DB_PASSWORD": secret}}]
        }
    })
    .to_string()
}

#[test]
fn history_over_ssh_shows_the_clusters_records_with_env_values_masked() {
    let consul = FakeConsul::start();
    let cluster = crate::support::Cluster::start(1);
    let port = consul.port.to_string();
    let inventory = cluster.inventory_with_groups(&[("servers", &[0])], &[("consul_port", &port)]);
    let inv = inventory.to_str().unwrap();
    let secret = format!("s3cret-{:x}", std::process::id());
    // Written through arpanet's own `kv` (the SSH-forwarded API).
    for n in 1..=2u64 {
        let value = record(n, &format!("reg/cadvisor:{n}"), &secret);
        let key = format!("deployed/history/{n:06}");
        assert_eq!(cluster.run(&["kv", "-i", inv, "set", &key, &value]).code, 0);
    }
    let current = record(2, "reg/cadvisor:2", &secret);
    let set = cluster.run(&["kv", "-i", inv, "set", "deployed/current", &current]);
    assert_eq!(set.code, 0, "{set}");

    let list = cluster.run(&["history", "-i", inv]);
    assert_eq!(list.code, 0, "{list}");
    let rows: Vec<&str> = list.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(rows[0].trim_start().starts_with("1 "), "{list}");
    assert!(rows[1].trim_start().starts_with("*2 "), "{list}");
    assert!(rows[1].contains("`old` → `reg/cadvisor:2`"), "{list}");

    for args in [vec!["2"], vec!["2", "-o", "json"], vec!["-o", "json"]] {
        let mut all = vec!["history", "-i", inv];
        all.extend(args.iter().copied());
        let out = cluster.run(&all);
        assert_eq!(out.code, 0, "{out}");
        assert!(!out.stdout.contains(&secret), "{out}");
        assert!(!out.stderr.contains(&secret), "{out}");
        assert!(out.stdout.contains("DB_PASSWORD"), "{out}");
        assert!(out.stdout.contains("***"), "{out}");
    }
    // `kv get` of a record masks it too; another key reads as stored.
    for args in [
        vec!["get", "deployed/current"],
        vec!["get", "deployed/history/000001", "-o", "json"],
    ] {
        let mut all = vec!["kv", "-i", inv];
        all.extend(args.iter().copied());
        let out = cluster.run(&all);
        assert_eq!(out.code, 0, "{out}");
        assert!(!out.stdout.contains(&secret), "{out}");
        assert!(
            out.stdout.contains("DB_PASSWORD") && out.stdout.contains("***"),
            "{out}"
        );
    }
    let set = cluster.run(&["kv", "-i", inv, "set", "env/app/DB_PASSWORD", &secret]);
    assert_eq!(set.code, 0, "{set}");
    let plain = cluster.run(&["kv", "-i", inv, "get", "env/app/DB_PASSWORD"]);
    assert_eq!(plain.stdout.trim(), secret, "{plain}");

    let missing = cluster.run(&["history", "-i", inv, "9"]);
    assert_eq!(missing.code, 5, "{missing}");
    assert!(missing.stderr.contains("no record #9"), "{missing}");

    // `rollback` asks first: refused without a terminal, nothing run.
    let refused = cluster.run(&["rollback", "-i", inv]);
    assert_eq!(refused.code, 5, "{refused}");
    assert!(refused.stderr.contains("from record #2 to #1"), "{refused}");
    assert!(refused.stderr.contains("--yes"), "{refused}");
    assert!(!refused.stdout.contains("TASK"), "{refused}");
    let same = cluster.run(&["rollback", "-i", inv, "2", "--yes"]);
    assert_eq!(same.code, 5, "{same}");
    assert!(
        same.stderr.contains("record #2 is what is deployed now"),
        "{same}"
    );

    // A run reads the record over the defaults: `pull` (failing here: the
    // test user may not use Docker) pulls the recorded image, not the
    // default; `-e` wins and says what it replaces.
    let plain = cluster.run(&["run", "-i", inv, "pull"]);
    assert!(
        plain.stdout.contains("docker pull --quiet reg/consul:2"),
        "{plain}"
    );
    assert!(!plain.stdout.contains("hashicorp/consul"), "{plain}");
    assert!(!plain.stderr.contains("note:"), "{plain}");
    let off = cluster.run(&["run", "-i", inv, "pull", "-e", "deployed_record=false"]);
    assert!(
        off.stdout.contains("docker pull --quiet hashicorp/consul"),
        "{off}"
    );
    let given = cluster.run(&["run", "-i", inv, "pull", "-e", "consul_image=reg/consul:9"]);
    assert!(
        given.stdout.contains("docker pull --quiet reg/consul:9"),
        "{given}"
    );
    assert!(
        given.stderr.contains(
            "note: `consul_image` from ~/.arpanetrc, the inventory or `-e` replaces the deployed `reg/consul:2` with `reg/consul:9` (record #2)"
        ),
        "{given}"
    );
    // Said before the run and again after its recap.
    assert_eq!(
        given
            .stderr
            .matches("replaces the deployed `reg/consul:2`")
            .count(),
        2,
        "{given}"
    );

    // No agent listening at all: no cluster, said so.
    let inventory = cluster.inventory(&[("consul_port", "1")]);
    let none = cluster.run(&["history", "-i", inventory.to_str().unwrap()]);
    assert_eq!(none.code, 5, "{none}");
    assert!(none.stderr.contains("no Consul agent answered"), "{none}");
    // A stopped cluster keeps its records: the hint does not say otherwise.
    assert!(
        none.stderr
            .contains("starts a stopped cluster again, records and all"),
        "{none}"
    );
}

#[test]
fn a_cluster_that_cannot_read_its_record_stops_the_run_before_any_task() {
    let consul = FakeConsul::start();
    *consul.fail.lock().unwrap() = Some("No cluster leader".into());
    let cluster = crate::support::Cluster::start(1);
    let port = consul.port.to_string();
    let inventory = cluster.inventory_with_groups(&[("servers", &[0])], &[("consul_port", &port)]);
    let inv = inventory.to_str().unwrap();
    let refused = cluster.run(&["run", "-i", inv, "pull"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.stderr.contains("cannot read what is deployed"),
        "{refused}"
    );
    assert!(
        refused.stderr.contains("500: No cluster leader"),
        "{refused}"
    );
    assert!(
        refused.stderr.contains("deployed_record=false"),
        "{refused}"
    );
    assert!(!refused.stdout.contains("TASK"), "{refused}");
    // With the record switched off, the run goes ahead on the inventory's
    // values (and fails later, there being no Docker on this host).
    let ahead = cluster.run(&["run", "-i", inv, "pull", "-e", "deployed_record=false"]);
    assert!(ahead.stdout.contains("TASK"), "{ahead}");
}
