//! Cluster key material is made only by the `cluster_secrets` task: never by
//! `exec`, `inventory`, `render` or a playbook that does not ask for it,
//! even on an inventory with `servers` and `docker_tcp` on (issue 7: every
//! `run` and `exec` used to write a Consul CA and gossip key beside it).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
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
    let mine = cluster.run(&["run", "-i", inv, t(&playbook), "-v"]);
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
