//! Day-two rough edges: `render` with a run's magic variables, old command
//! names, options anywhere, the inventory found without `-i`, verbosity,
//! signs of life in a pipe, readable loop labels.

use crate::support::Cluster;

/// An inventory of three hosts (two servers) with addresses, no sshd needed.
fn servers_inventory(cluster: &Cluster) -> String {
    let path = cluster.write_file(
        "inventory.ini",
        "[servers]\nnode1 arpanet_ip=10.9.0.1\nnode2 arpanet_ip=10.9.0.2\n\n\
         [clients]\nnode3 arpanet_ip=10.9.0.3\n",
    );
    path.to_str().unwrap().to_owned()
}

#[test]
fn render_sees_hostvars_groups_and_the_consul_command_built_from_them() {
    let cluster = Cluster::start(0);
    let inv = servers_inventory(&cluster);
    let template = cluster.write_file(
        "t.j2",
        "{{ hostvars['node2'].arpanet_ip }} {{ groups['servers'] | join(',') }} \
         {{ group_names | join(',') }}\n{{ consul_server_command }}\n",
    );
    let out = cluster.run(&[
        "render",
        "-i",
        &inv,
        "--host",
        "node3",
        template.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("10.9.0.2 node1,node2 clients"), "{out}");
    let command = lines.next().unwrap_or_default();
    // The first server is the one others join, by its address.
    assert!(command.contains("-retry-join=10.9.0.1"), "{out}");
    assert!(command.contains("-advertise=10.9.0.3"), "{out}");
    // The docker bridge's address is the node's, read by a run.
    assert!(
        command.contains("-client='127.0.0.1 <docker0 address>'"),
        "{out}"
    );

    // A variable that is defined but does not render says why, rather than
    // suggesting another name.
    let inv = cluster.write_file("broken.ini", "node1 peer=\"{{ hostvars['nobody'].x }}\"\n");
    let template = cluster.write_file("peer.j2", "{{ peer }}\n");
    let out = cluster.run(&[
        "render",
        "-i",
        inv.to_str().unwrap(),
        "--host",
        "node1",
        template.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr
            .contains("hint: `peer` is defined, but its value did not render"),
        "{out}"
    );
    assert!(!out.stderr.contains("did you mean"), "{out}");
}

#[test]
fn old_command_names_and_consul_without_the_separator_say_what_to_type() {
    let cluster = Cluster::start(0);
    let out = cluster.run(&["setup", "-i", "hosts.ini"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains("`arpanet run -i hosts.ini setup`"),
        "{out}"
    );
    assert!(!out.stderr.contains("status"), "{out}");
    let out = cluster.run(&["start:consul", "boot"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("`arpanet run -i INV consul`"), "{out}");
    let out = cluster.run(&["consul", "members", "-i", "hosts.ini"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr
            .contains("`arpanet consul -i hosts.ini -- members`"),
        "{out}"
    );
}

#[test]
fn options_are_taken_after_a_subcommands_arguments() {
    let cluster = Cluster::start(0);
    let missing = cluster.dir().join("missing.ini");
    let missing = missing.to_str().unwrap();
    // Parsed: the run gets as far as reading the inventory it was given.
    let out = cluster.run(&["kv", "get", "some/key", "-i", missing, "-l", "node1"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains(missing), "{out}");
    assert!(!out.stderr.contains("unexpected argument"), "{out}");
}

#[test]
fn the_inventory_comes_from_the_environment_or_the_nearest_project_file() {
    let cluster = Cluster::start(0);
    servers_inventory(&cluster);
    let hosts = |out: &crate::support::Run| -> Vec<String> {
        assert_eq!(out.code, 0, "{out}");
        let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let mut names: Vec<String> = json["_meta"]["hostvars"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    };
    let out = cluster.run(&["inventory"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("ARPANET_INVENTORY"), "{out}");

    let other = cluster.write_file("env/other.ini", "solo\n");
    let out = cluster.run_with_env(
        &["inventory"],
        &[("ARPANET_INVENTORY", other.to_str().unwrap())],
    );
    assert_eq!(hosts(&out), ["solo"]);

    // `inventory:` is relative to the project file, found from a subfolder.
    cluster.write_file("arpanet.yml", "inventory: inventory.ini\n");
    let sub = cluster.dir().join("deploy/roles");
    std::fs::create_dir_all(&sub).unwrap();
    let out = crate::support::run_arpanet(&cluster.home, &sub, &["inventory"], &[]);
    assert_eq!(hosts(&out), ["node1", "node2", "node3"]);
}

#[test]
fn an_unreachable_node_is_named_once_in_status() {
    let cluster = Cluster::start(1);
    // A port nothing listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "{}\nnode2 ansible_host=127.0.0.1 ansible_port={port}\n",
        cluster.host_line(0)
    );
    let inv = cluster.write_file("inventory.ini", &text);
    let out = cluster.run(&["status", "-i", inv.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out}");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("node2: "), "{out}");
    assert!(!all.contains("node2: node2"), "{out}");
}

/// `SHA256:...` of a key file, as `ssh-keygen -lf` prints it.
fn fingerprint(path: &std::path::Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_owned()
}

/// `-v` shows each command sent, its secrets masked; `-vv` also what it
/// printed; `-vvv` also how the host was reached and how each command
/// ended. A container's env values are masked in the shown `docker run`
/// (docker is kept off the task's PATH, so the command fails at once on
/// any machine, and its failure is masked the same way); a `no_log` task's
/// command is not shown at all.
#[test]
fn verbosity_levels_show_commands_then_output_then_connections() {
    let cluster = Cluster::start(1);
    let inv = cluster.inventory(&[]);
    let pid = std::process::id();
    let marker = format!("marker-{pid}");
    let secret = format!("secret-{pid}");
    let hidden = format!("hidden-{pid}");
    let playbook = cluster.write_file(
        "site.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n\
             \x20   - command: echo {marker}\n\
             \x20   - command: echo {hidden}\n      no_log: true\n\
             \x20   - name: app\n      environment: {{PATH: /nowhere}}\n      ignore_errors: true\n\
             \x20     docker_container: {{name: app-{pid}, image: none-{pid}, env: {{DB_PASSWORD: \"{secret}\"}}}}\n"
        ),
    );
    let run = |v: &str| {
        let out = cluster.run(&[
            "run",
            "-i",
            inv.to_str().unwrap(),
            v,
            playbook.to_str().unwrap(),
        ]);
        assert_eq!(out.code, 0, "{out}");
        for text in [&out.stdout, &out.stderr] {
            assert!(!text.contains(&secret), "{v} shows an env value: {out}");
            assert!(!text.contains(&hidden), "{v} shows a no_log command: {out}");
        }
        out.stdout
    };
    let command = format!("<node1> $ echo {marker}");
    let printed = format!("\n  {marker}");
    let masked = "--env 'DB_PASSWORD=***'";
    // The `docker run` as sent, env value masked; the failure names it so.
    let sent = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("<node1> $ set -e; docker run -d --name "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let one = run("-v");
    assert!(one.contains(&command), "{one}");
    assert!(!one.contains(&printed), "{one}");
    assert!(!one.contains("connected:"), "{one}");
    assert!(!one.contains("<node1> ended: "), "{one}");
    let docker_run = sent(&one);
    assert_eq!(docker_run.len(), 1, "{one}");
    assert!(docker_run[0].contains(masked), "{one}");
    assert!(docker_run[0].contains(&format!("none-{pid}")), "{one}");
    assert!(
        one.contains(&format!(
            "  command: set -e; docker run -d --name app-{pid} "
        )),
        "{one}"
    );

    let two = run("-vv");
    assert!(two.contains(&command), "{two}");
    assert!(two.contains(&printed), "{two}");
    assert!(!two.contains("connected:"), "{two}");
    assert!(sent(&two)[0].contains(masked), "{two}");

    let three = run("-vvv");
    let host = &cluster.hosts[0];
    let connected = three
        .lines()
        .find(|l| l.starts_with("<node1> connected: "))
        .unwrap_or_else(|| panic!("{three}"));
    let host_key = fingerprint(&host.host_key_file);
    assert!(connected.contains(&host_key), "{connected}");
    assert!(
        connected.contains(&fingerprint(&cluster.key)),
        "{connected}"
    );
    assert!(
        connected.contains(&format!("{}:{}", host.address, host.port)),
        "{connected}"
    );
    // Each command sent is followed by how it ended: the echo by exit 0,
    // the `docker run` without docker by the shell's 127.
    let lines: Vec<&str> = three.lines().collect();
    let after = |start: &str| {
        let at = lines
            .iter()
            .position(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("{three}"));
        lines[at + 1..]
            .iter()
            .find(|l| l.starts_with("<node1> ended: "))
            .copied()
            .unwrap_or_else(|| panic!("{three}"))
    };
    assert!(
        after(&command).starts_with("<node1> ended: exit 0 after "),
        "{three}"
    );
    assert!(
        after("<node1> $ set -e; docker run").starts_with("<node1> ended: exit 127 after "),
        "{three}"
    );
}

#[test]
fn a_long_task_in_a_pipe_says_it_is_still_running() {
    let cluster = Cluster::start(2);
    let inv = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "slow.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n\
         \x20   - name: slow on node2\n      command: \"{{ 'true' if inventory_hostname == 'node1' else 'sleep 12' }}\"\n",
    );
    let out = cluster.run_playbook(&inv, &playbook);
    assert_eq!(out.code, 0, "{out}");
    let beats: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("still waiting: "))
        .collect();
    // node1 finished at once: only node2 is named, once, at 10 s.
    assert_eq!(
        beats,
        ["still waiting: slow on node2 on node2 (10s)"],
        "{out}"
    );
    assert!(!out.stdout.contains("still waiting"), "{out}");
}
