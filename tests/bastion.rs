//! Jump hosts against real sshd: a bastion sshd that logs each login and
//! each forwarded channel, and target sshds reached through it. Each test
//! proves the path from the bastion's own record (the channel it opened to
//! the target, or the socket it holds), never from what arpanet says.

use std::fs;
use std::sync::Arc;

use arpanet::error::Error;
use arpanet::ssh::SshConnector;
use arpanet::transport::{Connector, Proxy, Target};

use crate::support::lab::{recap_changed, Lab};
use crate::support::{Cluster, SshdHost, TEST_USER};

/// `n` target hosts and a logged bastion that accepts the cluster's key and
/// whose host key is in the cluster's known_hosts.
fn behind_bastion(n: usize) -> (Cluster, SshdHost) {
    let cluster = Cluster::start(n);
    let bastion = SshdHost::start_logged(&cluster.authorized_keys);
    trust(&cluster, &bastion);
    (cluster, bastion)
}

fn trust(cluster: &Cluster, host: &SshdHost) {
    let mut known = fs::read_to_string(&cluster.known_hosts).unwrap();
    known.push_str(&format!("{}\n", host.known_hosts_line()));
    fs::write(&cluster.known_hosts, known).unwrap();
}

/// `user@address:port` of `host`, as a jump spec and as arpanet names it.
fn spec(host: &SshdHost) -> String {
    format!("{TEST_USER}@{}:{}", host.address, host.port)
}

/// Logins the bastion accepted so far.
fn logins(bastion: &SshdHost) -> usize {
    bastion.log().matches("Accepted publickey for").count()
}

/// Channels the bastion opened to `host` so far.
fn channels_to(bastion: &SshdHost, host: &SshdHost) -> usize {
    let to = format!("target {} port {}", host.address, host.port);
    bastion
        .log()
        .lines()
        .filter(|l| l.contains("server_request_direct_tcpip") && l.contains(&to))
        .count()
}

fn exec(cluster: &Cluster, inventory: &std::path::Path, command: &str) -> crate::support::Run {
    cluster.run(&["exec", "-i", inventory.to_str().unwrap(), "--", command])
}

#[test]
fn hosts_behind_a_bastion_share_one_connection_to_it() {
    let (cluster, bastion) = behind_bastion(5);
    let inventory = cluster.inventory(&[("arpanet_jump", &spec(&bastion))]);
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    assert_eq!(run.code, 0, "{run}\n{}", bastion.log());
    assert_eq!(run.stdout.matches("reached-42").count(), 5, "{run}");
    assert_eq!(logins(&bastion), 1, "{}", bastion.log());
    for host in &cluster.hosts {
        assert_eq!(channels_to(&bastion, host), 1, "{}", bastion.log());
    }
}

/// What the run said under `unreachable: [HOST]` (the message and hint
/// lines below it).
fn unreachable_said(run: &crate::support::Run, host: &str) -> String {
    let head = format!("unreachable: [{host}]");
    let mut lines = run.stdout.lines().skip_while(|l| !l.starts_with(&head));
    assert!(
        lines.next().is_some(),
        "`{host}` is not unreachable:\n{run}"
    );
    lines
        .take_while(|l| l.starts_with("  "))
        .map(|l| format!("{}\n", l.trim()))
        .collect()
}

#[test]
fn the_bastion_comes_from_the_ssh_config_or_ansible_ssh_arguments_inventory_first() {
    let (cluster, bastion) = behind_bastion(4);
    let h = &cluster.hosts;
    // The ssh config names the bastion by an alias and sends node1 and
    // node4 through it; node4's inventory says `ProxyJump=none`, which wins.
    fs::write(
        cluster.home.join(".ssh/config"),
        format!(
            "Host jumpbox\n  HostName {}\n  Port {}\n  User {TEST_USER}\n\
             Host {} {}\n  ProxyJump jumpbox\n",
            bastion.address, bastion.port, h[0].address, h[3].address
        ),
    )
    .unwrap();
    let b = spec(&bastion);
    let inventory = cluster.write_file(
        "inventory.ini",
        &format!(
            "{}\n{} ansible_ssh_common_args='-o StrictHostKeyChecking=yes -o ProxyJump={b}'\n\
             {} ansible_ssh_extra_args='-J {b}'\n\
             {} ansible_ssh_common_args='-o ProxyJump=none'\n",
            cluster.host_line(0),
            cluster.host_line(1),
            cluster.host_line(2),
            cluster.host_line(3)
        ),
    );
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    assert_eq!(run.code, 0, "{run}\n{}", bastion.log());
    assert_eq!(run.stdout.matches("reached-42").count(), 4, "{run}");
    // Three hosts through one bastion connection (the alias and the
    // address resolve to the same `user@address:port`), node4 directly.
    assert_eq!(logins(&bastion), 1, "{}", bastion.log());
    let through: Vec<usize> = h.iter().map(|t| channels_to(&bastion, t)).collect();
    assert_eq!(through, [1, 1, 1, 0], "{}", bastion.log());
}

#[test]
fn several_hops_each_open_a_channel_to_the_next() {
    let cluster = Cluster::start(1);
    let outer = SshdHost::start_logged(&cluster.authorized_keys);
    let inner = SshdHost::start_logged(&cluster.authorized_keys);
    trust(&cluster, &outer);
    trust(&cluster, &inner);
    let inventory = cluster.write_file(
        "inventory.yml",
        &format!(
            "all:\n  hosts:\n    node1:\n      ansible_host: {}\n      ansible_port: {}\n\
             \x20     ansible_user: {TEST_USER}\n      arpanet_jump: ['{}', '{}']\n",
            cluster.hosts[0].address,
            cluster.hosts[0].port,
            spec(&outer),
            spec(&inner)
        ),
    );
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    assert_eq!(run.code, 0, "{run}\n{}\n{}", outer.log(), inner.log());
    assert!(run.stdout.contains("reached-42"), "{run}");
    assert_eq!(channels_to(&outer, &inner), 1, "{}", outer.log());
    assert_eq!(channels_to(&inner, &cluster.hosts[0]), 1, "{}", inner.log());
    assert_eq!(channels_to(&outer, &cluster.hosts[0]), 0, "{}", outer.log());
    assert_eq!((logins(&outer), logins(&inner)), (1, 1));
}

#[test]
fn a_bastion_refused_or_down_fails_each_host_behind_it_by_name_and_the_others_finish() {
    let cluster = Cluster::start(3);
    let bastion = SshdHost::start_logged(&cluster.authorized_keys);
    let b = spec(&bastion);
    let inventory = cluster.write_file(
        "inventory.ini",
        &format!(
            "{}\n\n[behind]\n{}\n{}\n\n[behind:vars]\narpanet_jump={b}\n",
            cluster.host_line(0),
            cluster.host_line(1),
            cluster.host_line(2)
        ),
    );
    let via = format!("via bastion `{b}`");
    let check = |run: &crate::support::Run, why: &str| {
        assert_eq!(run.code, 4, "{run}");
        assert!(
            run.stdout.contains("reached-42"),
            "node1 must finish: {run}"
        );
        for node in ["node2", "node3"] {
            let said = unreachable_said(run, node);
            assert!(
                said.starts_with(&format!("{via}: {why}")),
                "{node}: {said}\n{run}"
            );
        }
    };
    // Unknown: its key is in no known_hosts file.
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    let endpoint = format!("{}:{}", bastion.address, bastion.port);
    check(&run, &format!("unknown host key for {endpoint}"));
    // Changed: known_hosts holds another key for it.
    let other = crate::support::keygen(&cluster.dir().join("other_key"), "");
    let mut known = fs::read_to_string(&cluster.known_hosts).unwrap();
    known.push_str(&format!("[{}]:{} {other}\n", bastion.address, bastion.port));
    fs::write(&cluster.known_hosts, &known).unwrap();
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    check(&run, &format!("host key for {endpoint} changed"));
    assert_eq!(logins(&bastion), 0, "{}", bastion.log());
    // Down.
    fs::write(
        &cluster.known_hosts,
        known.replace(&other, &bastion.host_key),
    )
    .unwrap();
    bastion.stop();
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    check(&run, &format!("connection refused at {endpoint}"));
}

#[test]
fn a_host_the_bastion_cannot_reach_is_told_apart_from_a_bastion_that_is_down() {
    let (cluster, bastion) = behind_bastion(1);
    // A port nothing listens on, on an address of its own.
    let closed = std::net::TcpListener::bind((cluster.hosts[0].address.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inventory = cluster.write_file(
        "inventory.ini",
        &format!(
            "{}\nghost ansible_host={} ansible_port={closed} ansible_user={TEST_USER}\n\n\
             [all:vars]\narpanet_jump={}\n",
            cluster.host_line(0),
            cluster.hosts[0].address,
            spec(&bastion)
        ),
    );
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stdout.contains("reached-42"), "{run}");
    let expected = format!(
        "the bastion `{}` cannot reach {}:{closed}: its connection failed\n",
        spec(&bastion),
        cluster.hosts[0].address
    );
    assert!(
        unreachable_said(&run, "ghost").starts_with(&expected),
        "expected `{expected}`:\n{run}"
    );
    assert_eq!(logins(&bastion), 1, "{}", bastion.log());
}

#[test]
fn a_proxy_command_carries_the_connection_and_its_complaints() {
    let (cluster, bastion) = behind_bastion(2);
    // The system ssh client as the ProxyCommand, its own channel through
    // the bastion (`-W`).
    let command = format!(
        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
         -i {} -p {} -W %h:%p {TEST_USER}@{}",
        cluster.known_hosts.display(),
        cluster.key.display(),
        bastion.port,
        bastion.address
    );
    let mut inventory = String::from("all:\n  hosts:\n");
    for (i, proxy) in [
        command.as_str(),
        "sh -c ''echo no route to %h >&2; exit 3''",
    ]
    .iter()
    .enumerate()
    {
        let host = &cluster.hosts[i];
        inventory.push_str(&format!(
            "    node{}:\n      ansible_host: {}\n      ansible_port: {}\n\
             \x20     ansible_ssh_common_args: '-o ProxyCommand=\"{proxy}\"'\n",
            i + 1,
            host.address,
            host.port
        ));
    }
    inventory.push_str(&format!("  vars:\n    ansible_user: {TEST_USER}\n"));
    let inventory = cluster.write_file("inventory.yml", &inventory);
    let run = exec(&cluster, &inventory, "echo reached-$((40+2))");
    assert_eq!(run.code, 4, "{run}");
    assert_eq!(run.stdout.matches("reached-42").count(), 1, "{run}");
    assert_eq!(
        channels_to(&bastion, &cluster.hosts[0]),
        1,
        "{}",
        bastion.log()
    );
    let said = unreachable_said(&run, "node2");
    let expected = format!("it said: no route to {}", cluster.hosts[1].address);
    assert!(said.contains(&expected), "expected `{expected}`:\n{run}");
}

/// A one-shot HTTP server on 127.0.0.1 standing in for a node's Consul
/// agent: answers each request with `body`, and records the request lines.
fn fake_consul(body: String) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            // Drain the headers: a probe from `wait_for` sends none.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            if !line.is_empty() {
                record.lock().unwrap().push(line.trim().to_owned());
            }
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn kv_and_wait_for_reach_the_node_s_ports_through_the_bastion() {
    let (cluster, bastion) = behind_bastion(1);
    let value = format!("value-{}", std::process::id());
    let (port, seen) = fake_consul(value.clone());
    let inventory = cluster.write_file(
        "inventory.ini",
        &format!(
            "[servers]\n{}\n\n[all:vars]\narpanet_jump={}\nconsul_port={port}\n",
            cluster.host_line(0),
            spec(&bastion)
        ),
    );
    let inv = inventory.to_str().unwrap();
    let run = cluster.run(&["kv", "-i", inv, "get", "app/db"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout.trim(), value, "{run}");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("/v1/kv/arpanet/app/db")),
        "{:?}",
        seen.lock().unwrap()
    );
    let playbook = cluster.write_file(
        "wait.yml",
        "- hosts: all\n  tasks:\n    - wait_for: {port: '{{ consul_port }}', timeout: 10}\n",
    );
    // The run takes no cluster lock, which would open its own connection.
    let run = cluster.run(&["run", "--no-lock", "-i", inv, playbook.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        logins(&bastion),
        2,
        "one bastion login per run: {}",
        bastion.log()
    );
    assert_eq!(
        channels_to(&bastion, &cluster.hosts[0]),
        2,
        "{}",
        bastion.log()
    );
}

#[tokio::test]
async fn the_target_sees_its_connection_come_from_the_bastion() {
    let (cluster, bastion) = behind_bastion(2);
    let hop = Target {
        name: spec(&bastion),
        address: bastion.address.clone(),
        port: bastion.port,
        ..cluster.target(0)
    };
    let connector = SshConnector::new(8).with_agent(None).with_passphrase(None);
    let mut conns = Vec::new();
    for i in 0..2 {
        let target = Target {
            proxy: Proxy::Jump(vec![hop.clone()]),
            ..cluster.target(i)
        };
        conns.push(connector.connect(&target).await.unwrap());
    }
    for conn in &conns {
        let out = conn.exec("echo $SSH_CONNECTION", None).await.unwrap();
        // `CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT`: the client end is
        // a socket the bastion's sshd holds, not one of ours.
        let fields: Vec<&str> = out.stdout.split_whitespace().collect();
        let (ip, port) = (fields[0], fields[1].parse().unwrap());
        assert!(bastion.holds_socket(ip, port), "{out:?}\n{}", bastion.log());
        assert!(!cluster.hosts[0].holds_socket(ip, port));
    }
    assert_eq!(logins(&bastion), 1, "{}", bastion.log());
    // A host behind a bastion that refuses the login names the bastion.
    let stranger = Target {
        name: "stranger".into(),
        proxy: Proxy::Jump(vec![Target {
            user: "nobody-here".into(),
            name: format!("nobody-here@{}:{}", bastion.address, bastion.port),
            ..hop.clone()
        }]),
        ..cluster.target(0)
    };
    match connector.connect(&stranger).await {
        Err(Error::Unreachable { host, message, .. }) => {
            assert_eq!(host, "stranger");
            assert!(
                message.starts_with(&format!(
                    "via bastion `nobody-here@{}:{}`: permission denied",
                    bastion.address, bastion.port
                )),
                "{message}"
            );
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected as an unknown user"),
    }
}

/// A package built on the node into a flat apt repository, installed with
/// `apt` (`update_cache`), and a unit for it started by `systemd` with a
/// daemon reload. `probe_state=absent` removes the package again.
const APT_AND_SYSTEMD: &str = r#"- hosts: clients
  vars:
    probe_state: present
  tasks:
    - name: a local apt repository with one package, the only source
      shell: |
        set -e
        rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
        work=$(mktemp -d)
        mkdir -p "$work/DEBIAN" "$work/usr/local/bin" /srv/arpanet-repo
        printf 'Package: arpanet-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: lab <lab@example.invalid>\nDescription: the lab test package\n' >"$work/DEBIAN/control"
        printf '#!/bin/sh\nexec sleep infinity\n' >"$work/usr/local/bin/arpanet-probe"
        chmod 755 "$work/usr/local/bin/arpanet-probe"
        cd /srv/arpanet-repo
        dpkg-deb --root-owner-group --build "$work" arpanet-probe_1.0_all.deb >/dev/null
        { dpkg-deb -f arpanet-probe_1.0_all.deb
          echo "Filename: ./arpanet-probe_1.0_all.deb"
          echo "Size: $(stat -c %s arpanet-probe_1.0_all.deb)"
          echo "SHA256: $(sha256sum arpanet-probe_1.0_all.deb | cut -d' ' -f1)"; } >Packages
        { echo "Origin: arpanet-lab"; echo "Label: arpanet-lab"
          echo "Date: $(date -Ru)"; echo "SHA256:"
          echo " $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages"; } >Release
        echo 'deb [trusted=yes] file:/srv/arpanet-repo ./' >/etc/apt/sources.list.d/arpanet-probe.list
      args:
        creates: /srv/arpanet-repo/Release

    - apt:
        name: arpanet-probe
        state: "{{ probe_state }}"
        update_cache: true

    - name: the probe's unit
      copy:
        dest: /etc/systemd/system/arpanet-probe.service
        content: |
          [Service]
          ExecStart=/usr/local/bin/arpanet-probe
          [Install]
          WantedBy=multi-user.target
      when: probe_state == 'present'

    - systemd:
        name: arpanet-probe
        state: started
        enabled: true
        daemon_reload: true
      when: probe_state == 'present'
"#;

/// The system ssh client to `root@host` with the lab's key and strict
/// host keys; whether it ran `true`.
fn lab_ssh(dir: &std::path::Path, host: &str) -> std::process::Output {
    std::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .arg("-i")
        .arg(dir.join("id_ed25519"))
        .arg(format!("root@{host}"))
        .arg("true")
        .output()
        .expect("run ssh")
}

/// A real fleet's shape: `lab up --bastion` makes the nodes' sshd answer
/// only the bastion, and root cannot log in to the nodes at all. The
/// cluster is built, upgraded and used through the bastion, with strict
/// host keys, as `admin`, an unprivileged sudoer (NOPASSWD) with
/// `ansible_become` in the inventory; `deploy` (sudo with a password)
/// becomes root too. A later `lab up` without `--bastion` opens the nodes
/// again. Runs with `ARPANET_LAB_TESTS=1` only.
#[test]
fn a_lab_behind_a_bastion_is_bootstrapped_and_upgraded_through_it_as_a_sudoer() {
    let Some(_turn) = crate::support::lab::turn("the bastion lab test") else {
        return;
    };
    let lab = Lab::new("arpanet-bastion", 76, 2, 1);
    let _ = lab.lab(&["down"]);
    let up = |bastion: bool| {
        let mut args = vec!["up", "--nodes", "2", "--servers", "1"];
        if bastion {
            args.push("--bastion");
        }
        let run = lab.lab(&args);
        assert_eq!(run.code, 0, "{run}");
    };
    up(true);
    let (node1, bastion) = (lab.at(11), lab.at(10));
    let inventory = fs::read_to_string(lab.inventory()).unwrap();
    assert!(
        inventory.contains(&format!("\narpanet_jump=root@{bastion}\n")),
        "{inventory}"
    );
    // The bastion answers ssh from here, node1 does not.
    assert!(lab_ssh(&lab.dir, &bastion).status.success());
    let direct = lab_ssh(&lab.dir, &node1);
    assert!(!direct.status.success(), "node1 answered ssh directly");

    // Root may not log in to the nodes; `admin` becomes root with sudo.
    for n in 1..=2 {
        lab.on_node(n, "rm -f /root/.ssh/authorized_keys");
    }
    let as_admin = inventory.replace(
        "\nansible_user=root\n",
        "\nansible_user=admin\nansible_become=true\n",
    );
    assert_ne!(
        as_admin, inventory,
        "the lab's inventory sets ansible_user=root"
    );
    fs::write(lab.inventory(), &as_admin).unwrap();

    let strict = |command: &str, args: &[&str]| {
        let all = [&["--host-key-checking", "strict"][..], args].concat();
        lab.run(command, &all)
    };
    let run = strict("run", &["bootstrap"]);
    assert_eq!(run.code, 0, "{run}");
    lab.assert_healthy();
    // What become wrote is root's, as it would be written by root.
    assert_eq!(
        lab.on_node(2, "stat -c %U:%a /etc/default/docker").trim(),
        "root:644"
    );
    let key = format!("bastion-{}", std::process::id());
    let set = strict("kv", &["set", &key, "yes"]);
    assert_eq!(set.code, 0, "{set}");
    let get = strict("kv", &["get", &key]);
    assert_eq!((get.code, get.stdout.trim()), (0, "yes"), "{get}");
    let status = strict("status", &[]);
    assert_eq!(status.code, 0, "{status}");
    let again = strict("run", &["bootstrap"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(recap_changed(&again).iter().all(|&n| n == 0), "{again}");
    // The other built-in playbooks too: a rolling upgrade (through its
    // health gates), `info`, and `stop`, which removes every container.
    let upgrade = strict("run", &["upgrade"]);
    assert_eq!(upgrade.code, 0, "{upgrade}");
    // `info` prints each node's name, as the node says it, and address.
    let info = strict("run", &["info"]);
    assert_eq!(info.code, 0, "{info}");
    for n in 1..=2 {
        let shown = format!(
            "{} {}",
            lab.on_node(n, "hostname").trim(),
            lab.at(10 + n as u8)
        );
        assert!(info.stdout.contains(&shown), "no `{shown}`\n{info}");
    }
    lab.assert_healthy();

    // apt and systemd on a real node, as the sudoer: a package from a
    // local repository (the nodes have no other sources here), and a unit
    // started with a daemon reload; a second run changes nothing, and
    // `state: absent` removes the package.
    let packages = lab.file("packages.yml", APT_AND_SYSTEMD);
    let first = strict("run", &[&packages]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(recap_changed(&first), [4], "{first}");
    assert_eq!(
        lab.on_node(2, "dpkg-query -W -f='${Status} ${Version}' arpanet-probe"),
        "install ok installed 1.0"
    );
    assert_eq!(
        lab.on_node(2, "systemctl is-active arpanet-probe").trim(),
        "active"
    );
    let second = strict("run", &[&packages]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(recap_changed(&second), [0], "{second}");
    let absent = strict("run", &[&packages, "-e", "probe_state=absent"]);
    assert_eq!(absent.code, 0, "{absent}");
    let (installed, _) = lab.try_on_node(
        2,
        "dpkg-query -W -f='${Status}' arpanet-probe | grep -q '^install ok'",
    );
    assert!(!installed, "{absent}");

    let stop = strict("run", &["stop"]);
    assert_eq!(stop.code, 0, "{stop}");
    for n in 1..=2 {
        let left = lab.on_node(n, "docker ps -aq --filter label=arpanet.managed=true");
        assert_eq!(left, "", "node{n}");
    }

    // `deploy` needs its password: without it the run says how to give it.
    let password = fs::read_to_string(lab.dir.join("become-password")).unwrap();
    let as_deploy = [
        "-e",
        "ansible_user=deploy",
        "--",
        "docker",
        "info",
        "-f",
        "{{.ID}}",
    ];
    let refused = lab.run("exec", &as_deploy);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.stdout.contains("ARPANET_BECOME_PASS"), "{refused}");
    let inventory = lab.inventory();
    let output = lab
        .command(&[&["exec", "-i", inventory.to_str().unwrap()][..], &as_deploy].concat())
        .env("ARPANET_BECOME_PASS", password.trim())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(!stdout.contains(password.trim()));

    // Without --bastion the bastion goes and node1 answers directly again
    // (`lab up` gives root its key back).
    up(false);
    assert!(lab_ssh(&lab.dir, &node1).status.success());
    assert!(!fs::read_to_string(lab.inventory())
        .unwrap()
        .contains("arpanet_jump"));
}

#[test]
fn a_bad_jump_value_is_bad_input_where_it_is_written() {
    let cluster = Cluster::start(1);
    let line = format!("{} arpanet_jump=admin@b1,,b2", cluster.host_line(0));
    let inventory = cluster.write_file("inventory.ini", &format!("{line}\n"));
    let run = exec(&cluster, &inventory, "true");
    assert_eq!(run.code, 5, "{run}");
    // Host-line values are located at their `key=value` word.
    let column = line.find("arpanet_jump").unwrap() + 1;
    let expected = format!(
        "error: {}:1:{column}: `arpanet_jump`: an empty hop",
        inventory.display()
    );
    assert!(
        run.stderr.starts_with(&expected),
        "expected `{expected}`:\n{run}"
    );
    assert!(run.stderr.contains("hint: write jump hosts as"), "{run}");
    // In a group_vars file too, for the ssh arguments Ansible passes.
    let inventory = cluster.write_file(
        "inventory.ini",
        &format!("[web]\n{}\n", cluster.host_line(0)),
    );
    let vars = cluster.write_file(
        "group_vars/web.yml",
        "ansible_user: x\nansible_ssh_common_args: '-o ProxyJump=b:ssh'\n",
    );
    let run = exec(&cluster, &inventory, "true");
    assert_eq!(run.code, 5, "{run}");
    let expected = format!("error: {}:2:", vars.display());
    assert!(
        run.stderr.starts_with(&expected),
        "expected `{expected}`:\n{run}"
    );
    assert!(
        run.stderr.contains("`ansible_ssh_common_args`: `-o ProxyJump=b:ssh`: `ssh` in `b:ssh` is not a port number"),
        "{run}"
    );
}
