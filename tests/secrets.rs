//! Cluster key material is made only by the `cluster_secrets` task: never by
//! `exec`, `inventory`, `render` or a playbook that does not ask for it,
//! even on an inventory with `servers` and `docker_tcp` on (issue 7: every
//! `run` and `exec` used to write a Consul CA and gossip key beside it).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::support::{Cluster, Run};

/// Every file under `dir` (but the test's own `home`), with its bytes and
/// modification time.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                if path != dir.join("home") {
                    todo.push(path.clone());
                }
                files.insert(path, (Vec::new(), meta.modified().unwrap()));
            } else if meta.is_file() {
                let bytes = fs::read(&path).unwrap();
                files.insert(path, (bytes, meta.modified().unwrap()));
            }
        }
    }
    files
}

fn names(files: &BTreeMap<PathBuf, (Vec<u8>, SystemTime)>, dir: &Path) -> Vec<String> {
    files
        .keys()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// Two servers and a client, with `docker_tcp` on.
fn cluster_inventory(cluster: &Cluster) -> PathBuf {
    cluster.inventory_with_groups(
        &[("servers", &[0, 1]), ("clients", &[2])],
        &[("docker_tcp", "true")],
    )
}

fn recap_changed(run: &Run, host: &str) -> usize {
    let start = run.stdout.find("PLAY RECAP").expect("a recap");
    let line = run.stdout[start..]
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no recap line for {host}\n{run}"));
    let field = line
        .split_whitespace()
        .find(|w| w.starts_with("changed="))
        .unwrap();
    field["changed=".len()..].parse().unwrap()
}

#[test]
fn exec_inventory_render_and_user_playbooks_write_no_key_material() {
    let cluster = Cluster::start(3);
    let inventory = cluster_inventory(&cluster);
    let inv = inventory.to_str().unwrap();
    let template = cluster.write_file("t.j2", "{{ inventory_hostname }}\n");
    let playbook = cluster.write_file(
        "mine.yml",
        "- hosts: servers\n  tasks:\n    - command: echo {{ docker_tcp }} {{ consul_tls_dir }}\n",
    );
    let before = listing(cluster.dir());

    let exec = cluster.run(&["exec", "-i", inv, "--", "uptime"]);
    assert_eq!(exec.code, 0, "{exec}");
    let listed = cluster.run(&["inventory", "-i", inv]);
    assert_eq!(listed.code, 0, "{listed}");
    let host = cluster.run(&["inventory", "-i", inv, "--host", "node1"]);
    assert_eq!(host.code, 0, "{host}");
    let render = cluster.run(&["render", "-i", inv, "--host", "node1", t(&template)]);
    assert_eq!(render.code, 0, "{render}");
    let builtin = cluster.run(&["render", "-i", inv, "--host", "node1", "docker.default.j2"]);
    assert_eq!(builtin.code, 0, "{builtin}");
    let mine = cluster.run(&["run", "-i", inv, t(&playbook), "-vv"]);
    assert_eq!(mine.code, 0, "{mine}");
    assert!(mine.stdout.contains("/consul-tls"), "{mine}");

    let after = listing(cluster.dir());
    assert_eq!(
        names(&after, cluster.dir()),
        names(&before, cluster.dir()),
        "files appeared beside the inventory"
    );
    assert!(after == before, "a file beside the inventory changed");
    for run in [&exec, &listed, &host, &render, &builtin, &mine] {
        assert!(!run.stderr.contains("wrote"), "{run}");
    }
}

fn t(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn the_secrets_task_writes_once_then_reports_ok_and_check_mode_writes_nothing() {
    let cluster = Cluster::start(3);
    let inventory = cluster_inventory(&cluster);
    let inv = t(&inventory);
    let playbook = cluster.write_file(
        "secrets.yml",
        concat!(
            "- hosts: servers:clients\n",
            "  tasks:\n",
            "    - name: consul secrets\n",
            "      cluster_secrets:\n",
            "        kind: consul\n",
            "        dir: \"{{ consul_tls_dir }}\"\n",
            "    - name: docker secrets\n",
            "      when: docker_tcp | bool\n",
            "      cluster_secrets: {kind: docker_tls, dir: \"{{ docker_tls_dir }}\"}\n",
            "    - name: the facts are set\n",
            "      assert:\n",
            "        that:\n",
            "          - (consul_gossip_key | length) == 44\n",
            "          - (consul_security_fingerprint | length) == 16\n",
            "    - name: the CA reaches the host\n",
            "      copy:\n",
            "        src: \"{{ consul_tls_dir }}/ca.pem\"\n",
            "        dest: \"{{ work }}/{{ inventory_hostname }}-ca.pem\"\n",
        ),
    );
    // A directory the test user may write to, for the copies.
    let work = cluster.dir().join("work");
    fs::create_dir_all(&work).unwrap();
    let chown = std::process::Command::new("chown")
        .arg(format!("{}:", crate::support::TEST_USER))
        .arg(&work)
        .status()
        .unwrap();
    assert!(chown.success());
    let work_var = format!("work={}", work.display());
    let work_var = work_var.as_str();
    // A private temp dir, to see that `--check` leaves no scratch copy.
    let tmp = tempfile::tempdir().unwrap();
    let tmp_env = [("TMPDIR", tmp.path().to_str().unwrap())];
    let consul = cluster.dir().join("consul-tls");
    let docker = cluster.dir().join("docker-tls");

    // --check on a fresh inventory: says what it would write, writes nothing
    // beside the inventory, and the tasks that use the files still say what
    // they would change (from a scratch copy it removes when done).
    let before = listing(cluster.dir());
    let check = cluster.run_with_env(
        &["run", "-i", inv, t(&playbook), "--check", "-e", work_var],
        &tmp_env,
    );
    assert_eq!(check.code, 0, "{check}");
    assert!(check.stdout.contains("would write"), "{check}");
    for host in ["node1", "node2", "node3"] {
        assert_eq!(recap_changed(&check, host), 3, "{check}");
    }
    assert!(listing(cluster.dir()) == before, "--check wrote files");
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "--check left {left:?} behind");

    // The first run makes everything, for every host of the play.
    let first = cluster.run(&["run", "-i", inv, t(&playbook), "-e", work_var]);
    assert_eq!(first.code, 0, "{first}");
    for host in ["node1", "node2", "node3"] {
        assert_eq!(recap_changed(&first, host), 3, "{first}");
        for dir in [&consul, &docker] {
            let own = dir.join("hosts").join(host);
            assert!(own.join("server-cert.pem").is_file(), "{}", own.display());
            assert!(own.join("server-key.pem").is_file(), "{}", own.display());
        }
    }
    for file in ["ca.pem", "ca-key.pem", "gossip.key"] {
        assert!(consul.join(file).is_file(), "{file}");
    }
    for file in ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"] {
        assert!(docker.join(file).is_file(), "{file}");
    }
    // Key material is never printed.
    let key = fs::read_to_string(consul.join("gossip.key")).unwrap();
    let ca_key = fs::read_to_string(consul.join("ca-key.pem")).unwrap();
    for secret in [key.trim(), ca_key.lines().nth(1).unwrap()] {
        assert!(
            !first.stdout.contains(secret) && !first.stderr.contains(secret),
            "{first}"
        );
    }

    // The second run writes nothing: `ok`, same bytes, same times.
    let made = listing(cluster.dir());
    let second = cluster.run(&["run", "-i", inv, t(&playbook), "-e", work_var]);
    assert_eq!(second.code, 0, "{second}");
    for host in ["node1", "node2", "node3"] {
        assert_eq!(recap_changed(&second, host), 0, "{second}");
    }
    assert!(
        listing(cluster.dir()) == made,
        "the second run changed files"
    );

    // --check on made secrets: nothing to do, the facts are there.
    let check = cluster.run(&["run", "-i", inv, t(&playbook), "--check", "-e", work_var]);
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(recap_changed(&check, "node1"), 0, "{check}");
    assert!(listing(cluster.dir()) == made, "--check changed files");

    // The built-in bootstrap makes them too, before touching a host with
    // them; a shape it refuses makes nothing.
    fs::remove_dir_all(&consul).unwrap();
    fs::remove_dir_all(&docker).unwrap();
    let odd = cluster.run(&["run", "-i", inv, "bootstrap", "-e", "consul_expect=5"]);
    assert_ne!(odd.code, 0, "{odd}");
    assert!(!consul.exists() && !docker.exists(), "{odd}");
}

/// A playbook making both kinds of secrets for three hosts (local tasks: no
/// host is contacted) and printing each host's security fingerprint, with
/// its inventory, in a fresh tempdir.
fn local_secrets_project() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::create_dir_all(dir.join("home")).unwrap();
    let inventory = dir.join("inventory.ini");
    fs::write(
        &inventory,
        "[servers]\nn1 ansible_host=127.0.0.1\nn2 ansible_host=127.0.0.2\n\
         [clients]\nn3 ansible_host=127.0.0.3\n[all:vars]\ndocker_tcp=true\n",
    )
    .unwrap();
    let playbook = dir.join("secrets.yml");
    fs::write(
        &playbook,
        concat!(
            "- hosts: all\n",
            "  tasks:\n",
            "    - cluster_secrets: {kind: consul, dir: \"{{ consul_tls_dir }}\"}\n",
            "    - cluster_secrets: {kind: docker_tls, dir: \"{{ docker_tls_dir }}\"}\n",
            "    - debug: {msg: \"print={{ inventory_hostname }}={{ consul_security_fingerprint }}\"}\n",
        ),
    )
    .unwrap();
    (tmp, inventory, playbook)
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The public key of a certificate and of a private key, which must match.
fn assert_pair(dir: &Path, cert: &str, key: &str) {
    let of_cert = openssl(dir, &["x509", "-in", cert, "-noout", "-pubkey"]);
    let of_key = openssl(dir, &["pkey", "-in", key, "-pubout"]);
    assert_eq!(of_cert, of_key, "{cert} and {key} in {}", dir.display());
}

/// Issue 8: two first runs at once used the same temp name and left a CA
/// key that did not match the CA. Twenty at once must end with one
/// consistent set that every run agrees on.
#[test]
fn twenty_concurrent_first_runs_leave_one_consistent_set() {
    let (tmp, inventory, playbook) = local_secrets_project();
    let dir = tmp.path();
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    crate::support::run_arpanet(
                        &dir.join("home"),
                        dir,
                        &["run", "-i", t(&inventory), t(&playbook)],
                        &[],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        assert_eq!(run.code, 0, "{run}");
    }
    for (kind, client) in [("consul-tls", false), ("docker-tls", true)] {
        let tls = dir.join(kind);
        assert_pair(&tls, "ca.pem", "ca-key.pem");
        let mut certs = vec![];
        for host in ["n1", "n2", "n3"] {
            let own = format!("hosts/{host}");
            assert_pair(
                &tls,
                &format!("{own}/server-cert.pem"),
                &format!("{own}/server-key.pem"),
            );
            certs.push(format!("{own}/server-cert.pem"));
        }
        if client {
            assert_pair(&tls, "cert.pem", "key.pem");
            certs.push("cert.pem".into());
        }
        for cert in &certs {
            let said = openssl(&tls, &["verify", "-CAfile", "ca.pem", cert]);
            assert_eq!(said.trim(), format!("{cert}: OK"), "{kind}");
        }
    }
    // Every run saw the set that stayed: the same fingerprint per host.
    for host in ["n1", "n2", "n3"] {
        let prints: std::collections::BTreeSet<String> = runs
            .iter()
            .map(|run| {
                let tag = format!("print={host}=");
                let at = run.stdout.find(&tag).unwrap_or_else(|| panic!("{run}"));
                run.stdout[at + tag.len()..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .collect()
            })
            .collect();
        assert_eq!(prints.len(), 1, "{host}: {prints:?}");
    }
    let leftovers: Vec<_> = listing(dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A secrets directory anyone may write is refused before anything is
/// read from it or written to it, with the fix in the hint.
#[test]
fn a_world_writable_secrets_directory_is_refused_with_a_hint() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, inventory, playbook) = local_secrets_project();
    let dir = tmp.path();
    let consul = dir.join("consul-tls");
    fs::create_dir(&consul).unwrap();
    fs::set_permissions(&consul, fs::Permissions::from_mode(0o777)).unwrap();
    let before = listing(dir);
    for extra in [&[][..], &["--check"][..]] {
        let mut args = vec!["run", "-i", t(&inventory), t(&playbook)];
        args.extend(extra);
        // No retry file either: the listing must show that nothing at all
        // was written.
        let env = [("ARPANET_RETRY_FILES_ENABLED", "false")];
        let run = crate::support::run_arpanet(&dir.join("home"), dir, &args, &env);
        assert_ne!(run.code, 0, "{run}");
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.contains(&format!("`{}` is writable by everyone", consul.display())),
            "{run}"
        );
        assert!(
            all.contains(&format!("chmod 700 {}", consul.display())),
            "{run}"
        );
        assert!(
            listing(dir) == before,
            "{extra:?}: files were written\n{run}"
        );
    }
}

/// `AB:CD:...`: the short SHA-256 the refusal shows (8 bytes).
fn short_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The DER of a PEM certificate.
fn der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap()
}

/// Put checkout `from`'s Consul files on node `name` as the agent's tasks
/// do (`{{ consul_data }}/arpanet/`, and the agent's keyring with `keys`).
/// Every test host is this machine: each node has its own `consul_data`.
fn deploy(nodes: &Path, name: &str, from: &Path, keys: &[&str]) {
    let dest = nodes.join(name).join("arpanet");
    fs::create_dir_all(&dest).unwrap();
    let tls = from.join("consul-tls");
    let copy = |src: PathBuf, to: &str| fs::copy(src, dest.join(to)).unwrap();
    copy(tls.join("ca.pem"), "ca.pem");
    copy(
        tls.join("hosts").join(name).join("server-cert.pem"),
        "cert.pem",
    );
    copy(
        tls.join("hosts").join(name).join("server-key.pem"),
        "key.pem",
    );
    let key = fs::read_to_string(tls.join("gossip.key")).unwrap();
    fs::write(
        dest.join("security.json"),
        format!("{{\"encrypt\": \"{}\"}}\n", key.trim()),
    )
    .unwrap();
    // ACLs: the agent's configuration and its own token, the server's
    // management token and the linking token.
    copy(tls.join("hosts").join(name).join("acl.json"), "acl.json");
    copy(
        tls.join("hosts").join(name).join("acl-agent.token"),
        "agent.token",
    );
    copy(tls.join("acl-management.token"), "management.token");
    copy(tls.join("acl-linking.token"), "linking.token");
    let serf = nodes.join(name).join("serf");
    fs::create_dir_all(&serf).unwrap();
    fs::write(
        serf.join("local.keyring"),
        serde_json::to_string(keys).unwrap(),
    )
    .unwrap();
    open_nodes(nodes);
}

/// The test user (the SSH user) may read and write the nodes' files, as
/// root may on a node.
fn open_nodes(nodes: &Path) {
    Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(nodes)
        .status()
        .unwrap();
}

/// Issue 9: copying the inventory to another checkout used to mint new
/// keys and re-key the cluster. Over sshd (each node's copies in its own
/// `consul_data`): checkout B, with only the inventory, adopts what node1
/// holds (the CA certificate, the gossip key, each node's own pair) and
/// gets the agents' fingerprints checkout A had; a node with no copies
/// needs the CA key, and the error says where it is; checkout C, whose
/// gossip key differs, is refused on every host before any host changed,
/// with both fingerprints and no key material shown.
#[test]
fn a_second_checkout_adopts_the_cluster_keys_and_a_different_one_is_refused() {
    let cluster = Cluster::start(3);
    let root = cluster.dir();
    let nodes = root.join("nodes");
    let mut inventory = String::from("[servers]\n");
    for i in 0..3 {
        if i == 2 {
            inventory.push_str("\n[clients]\n");
        }
        let data = nodes.join(cluster.name(i));
        inventory.push_str(&format!(
            "{} consul_data={}\n",
            cluster.host_line(i),
            data.display()
        ));
    }
    inventory.push_str(&format!(
        "\n[all:vars]\narpanet_lock_dir={}\n",
        cluster.lock_dir().display()
    ));
    let playbook = cluster.write_file(
        "keys.yml",
        "- hosts: servers:clients\n  max_fail_percentage: 0\n  tasks:\n\
         \x20   - name: consul certificates and gossip key\n\
         \x20     cluster_secrets:\n\
         \x20       kind: consul\n\
         \x20       dir: \"{{ consul_tls_dir }}\"\n\
         \x20       node_dir: \"{{ consul_data }}/arpanet\"\n\
         \x20       keyring: \"{{ consul_data }}/serf/local.keyring\"\n\
         \x20       ask: \"{{ groups['servers'] }}\"\n\
         \x20       acl: true\n\
         \x20   - name: agent fingerprint\n\
         \x20     debug:\n\
         \x20       msg: \"fp {{ inventory_hostname }} {{ consul_security_fingerprint }}\"\n\
         - hosts: all\n  tasks:\n\
         \x20   - name: the first change on a node\n\
         \x20     file:\n\
         \x20       path: \"{{ consul_data }}/touched\"\n\
         \x20       state: touch\n",
    );
    let checkout = |name: &str| {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        let inv = dir.join("inventory.ini");
        fs::write(&inv, &inventory).unwrap();
        (dir, inv)
    };
    let run = |inv: &Path| cluster.run(&["run", "-i", t(inv), t(&playbook)]);
    let prints = |run: &Run| -> Vec<String> {
        let mut p: Vec<String> = run
            .stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("fp ").map(str::to_owned))
            .collect();
        p.sort();
        p
    };
    for i in 0..3 {
        fs::create_dir_all(nodes.join(cluster.name(i))).unwrap();
    }
    open_nodes(&nodes);

    // A: no node holds copies, so the keys are made here.
    let (a, a_inv) = checkout("a");
    let first = run(&a_inv);
    assert_eq!(first.code, 0, "{first}");
    let a_tls = a.join("consul-tls");
    assert!(a_tls.join("ca-key.pem").is_file(), "{first}");
    let a_management = fs::read_to_string(a_tls.join("acl-management.token")).unwrap();
    let a_management = a_management.trim();
    assert_eq!(a_management.len(), 36, "a UUID: {a_management}");
    let a_prints = prints(&first);
    assert_eq!(a_prints.len(), 3, "{first}");
    // The agents of node1 and node2 run with A's keys; node3 is new.
    let key = fs::read_to_string(a_tls.join("gossip.key")).unwrap();
    let key = key.trim();
    deploy(&nodes, "node1", &a, &[key]);
    deploy(&nodes, "node2", &a, &[key]);
    for i in 0..3 {
        let _ = fs::remove_file(nodes.join(cluster.name(i)).join("touched"));
    }

    // B: only the inventory. node1 and node2 adopt; node3 needs the CA key.
    let (b, b_inv) = checkout("b");
    let adopted = run(&b_inv);
    assert_eq!(adopted.code, 2, "{adopted}");
    let b_tls = b.join("consul-tls");
    for file in [
        "ca.pem",
        "gossip.key",
        "hosts/node1/server-cert.pem",
        "hosts/node1/server-key.pem",
        "hosts/node2/server-cert.pem",
        "hosts/node2/server-key.pem",
        "acl-management.token",
        "acl-linking.token",
        "hosts/node1/acl-agent.token",
        "hosts/node1/acl.json",
        "hosts/node2/acl-agent.token",
        "hosts/node2/acl.json",
    ] {
        assert_eq!(
            fs::read(b_tls.join(file)).unwrap(),
            fs::read(a_tls.join(file)).unwrap(),
            "{file}\n{adopted}"
        );
    }
    assert!(!b_tls.join("ca-key.pem").exists());
    assert!(!b_tls.join("hosts/node3/server-cert.pem").exists());
    assert!(
        adopted
            .stdout
            .contains("`node3` needs a certificate from the cluster's CA")
            && adopted
                .stdout
                .contains(&format!("`{}`", b_tls.join("ca-key.pem").display()))
            && adopted
                .stdout
                .contains("copy `ca-key.pem` from that checkout's `consul-tls/`"),
        "{adopted}"
    );
    // With the CA key copied from A, node3 gets its certificate.
    fs::copy(a_tls.join("ca-key.pem"), b_tls.join("ca-key.pem")).unwrap();
    let again = run(&b_inv);
    assert_eq!(again.code, 0, "{again}");
    assert!(b_tls.join("hosts/node3/server-cert.pem").is_file());
    let ours = prints(&again);
    assert_eq!(
        ours[..2],
        a_prints[..2],
        "node1 and node2 run as A made them\n{again}"
    );
    assert_ne!(ours[2], a_prints[2], "node3's certificate is new");
    // The touch, and maybe the client pair: the first host to find the CA
    // key makes it, whichever that is.
    assert!(
        (1..=2).contains(&recap_changed(&again, "node1")),
        "only the touch (and maybe the client pair)\n{again}"
    );

    // C: A's files, but a gossip key of its own: refused on every host
    // before any change, both fingerprints named, no key shown.
    let (c, c_inv) = checkout("c");
    let c_tls = c.join("consul-tls");
    fs::create_dir_all(c_tls.join("hosts")).unwrap();
    fs::set_permissions(&c_tls, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for file in ["ca.pem", "ca-key.pem"] {
        fs::copy(a_tls.join(file), c_tls.join(file)).unwrap();
    }
    let other = "c2VjcmV0LWtleS1vZi1jaGVja291dC1jLTMyYnl0ZXM=";
    fs::write(c_tls.join("gossip.key"), format!("{other}\n")).unwrap();
    for i in 0..3 {
        let _ = fs::remove_file(nodes.join(cluster.name(i)).join("touched"));
    }
    let before = listing(&c);
    let refused = run(&c_inv);
    assert_eq!(refused.code, 2, "{refused}");
    let out = format!("{}{}", refused.stdout, refused.stderr);
    assert_eq!(
        out.matches("refused: this checkout's keys are not the running cluster's")
            .count(),
        3,
        "{refused}"
    );
    assert!(
        out.contains(&format!(
            "the gossip key `{}` is SHA-256 {}, `node1` uses {}",
            c_tls.join("gossip.key").display(),
            short_sha256(other.as_bytes()),
            short_sha256(key.as_bytes())
        )),
        "{refused}"
    );
    assert!(
        out.contains("hint: copy `") && out.contains("`arpanet rotate`"),
        "{refused}"
    );
    assert!(
        !out.contains(key) && !out.contains(other),
        "key material shown\n{refused}"
    );
    for i in 0..3 {
        assert!(
            !nodes.join(cluster.name(i)).join("touched").exists(),
            "{refused}"
        );
        assert_eq!(recap_changed(&refused, &cluster.name(i)), 0, "{refused}");
    }
    assert!(
        listing(&c) == before,
        "the refused checkout's files changed"
    );

    // A CA of its own is refused the same way, by its certificate's
    // fingerprint.
    fs::write(c_tls.join("gossip.key"), format!("{key}\n")).unwrap();
    let (d, d_inv) = checkout("d");
    let make = cluster.write_file(
        "make.yml",
        "- hosts: node1\n  tasks:\n    - cluster_secrets: {kind: consul, dir: \"{{ consul_tls_dir }}\"}\n",
    );
    let made = cluster.run(&["run", "-i", t(&d_inv), t(&make)]);
    assert_eq!(made.code, 0, "{made}");
    for file in ["ca.pem", "ca-key.pem"] {
        fs::copy(d.join("consul-tls").join(file), c_tls.join(file)).unwrap();
    }
    let refused = run(&c_inv);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.stdout.contains(&format!(
            "the consul CA `{}` is SHA-256 {}, `node1` uses {}",
            c_tls.join("ca.pem").display(),
            short_sha256(&der(&fs::read(c_tls.join("ca.pem")).unwrap())),
            short_sha256(&der(&fs::read(a_tls.join("ca.pem")).unwrap()))
        )),
        "{refused}"
    );

    // E: A's files, but an ACL management token of its own: refused the
    // same way, before any change, by both tokens' fingerprints, neither
    // shown.
    let (e, e_inv) = checkout("e");
    let e_tls = e.join("consul-tls");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&a_tls)
        .arg(&e_tls)
        .status()
        .unwrap();
    assert!(copied.success());
    let own = "0e4a6f1c-1d2b-4c3d-8e5f-a6b7c8d9e0f1";
    fs::write(e_tls.join("acl-management.token"), format!("{own}\n")).unwrap();
    for i in 0..3 {
        let _ = fs::remove_file(nodes.join(cluster.name(i)).join("touched"));
    }
    let refused = run(&e_inv);
    assert_eq!(refused.code, 2, "{refused}");
    let out = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        out.contains(&format!(
            "the ACL management token `{}` is SHA-256 {}, `node1` uses {}",
            e_tls.join("acl-management.token").display(),
            short_sha256(own.as_bytes()),
            short_sha256(a_management.as_bytes())
        )),
        "{refused}"
    );
    assert!(
        !out.contains(own) && !out.contains(a_management),
        "a token was shown\n{refused}"
    );
    for i in 0..3 {
        assert!(
            !nodes.join(cluster.name(i)).join("touched").exists(),
            "{refused}"
        );
    }
}
