//! One source of truth for the cluster's secrets, on a 3-node lab of 3
//! Consul servers with real Consul (`ARPANET_LAB_TESTS=1`):
//!
//! - checkout A (the lab's directory) bootstraps the cluster without ACLs
//!   (`consul_acl=false`) and makes its CA, certificates and gossip key,
//!   then bootstraps again with ACLs on (the default): the agents are
//!   recreated through the roll and the cluster ends healthy with ACLs
//!   enforced: a plain container on a node gets 403 `Permission denied`
//!   from KV (read and write) while the same request with arpanet's
//!   management token is answered, DNS `consul.service.consul` still
//!   resolves there, and `arpanet kv` works; every agent uses a token of
//!   its own (the token its agent persisted is its node's, Consul knows it
//!   with the one policy `arpanet-agent-NODE` writing on that node alone,
//!   and holds exactly one agent token per node);
//! - the cluster put back as earlier versions left it (one agent token
//!   shared by every agent, policy `arpanet-agent`) moves to a token per
//!   node with a plain bootstrap from A: a leader at every 0.5 s sample,
//!   no container restarted, new tokens, the shared one refused by Consul
//!   (403 `ACL not found`) and its files gone from A;
//! - checkout B, a copy of the inventory alone, bootstraps too: it adopts
//!   the cluster's files (byte for byte A's, ACL tokens included, but the
//!   CA's private key, which no node holds, and the client pair made only
//!   beside it) and no container on any node is recreated or restarted;
//!   its next bootstrap, with `-vv`, changes nothing and prints no token;
//! - checkout C, A's files with another gossip key, is refused before any
//!   change, with both fingerprints;
//! - a rotation cut short after Consul's `use` (a second key, the primary,
//!   beside A's): each agent's keyring file lists the primary first, A is
//!   still accepted, a checkout with the inventory alone adopts the primary;
//! - `rotate --yes` from A gives the cluster a new gossip key with a leader
//!   at every 0.5 s sample and no container restarted; afterwards every
//!   keyring pool, and every agent's keyring file, holds exactly A's new
//!   key.
//!
//! - `rotate --tls --yes` from A gives the cluster a new CA in three rolled
//!   phases with at most one server down and never more than 4 s without
//!   a leader at any 0.5 s sample (each node samples its own agent):
//!   afterwards every agent trusts the new CA alone and shows a
//!   certificate it signed (`openssl verify` inside each node, the CA's
//!   fingerprint computed here from A's new `ca.pem`), a TLS handshake
//!   with Consul's RPC port that trusts the old CA fails while one that
//!   trusts the new CA succeeds, `kv get` works, and a checkout holding
//!   A's old files is refused, naming both CAs' fingerprints; every agent
//!   still uses its own token after those three restarts.
//! - `rotate --certs --yes` from A gives every agent a new certificate from
//!   the same CA with at most one server down and never more than 4 s
//!   without a leader (`ROLLED_LEADERLESS`): every server's RPC port
//!   (8300) shows a certificate other than before (fingerprints read with
//!   `openssl s_client` from here, before and after), the one A now holds
//!   for that node, verified against A's CA, which is unchanged here and
//!   on every node; `kv get` works, and every agent still uses its own
//!   token.
//! - `rotate --tokens --yes` from A, killed (SIGKILL) once the first server
//!   it restarts has passed its gates, then run again to the end (taking
//!   over the killed run's lock), gives the cluster a new management
//!   token and new agent tokens with at most one server down and never
//!   more than 4 s without a leader at any 0.5 s sample over both runs:
//!   the resumed run restarts every server but the one the cut run
//!   restarted (their containers' start times), the old
//!   management token and every old agent token get 403 `ACL not found`,
//!   the new ones are answered, every agent uses its new own token, every
//!   server's `acl.json` names the new master token, `kv get` works, no
//!   token was printed, and a checkout still holding the old management
//!   token is told by `kv` that Consul refused the token from its file.
//!
//! What the nodes hold is read with `docker exec` into the lab's node
//! containers, independently of arpanet. Phase times are printed
//! (`--nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::lab::Lab;

const NODES: usize = 3;

/// Every container on node `n`: name, id and start time.
fn containers(lab: &Lab, n: usize) -> String {
    lab.on_node(
        n,
        "docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}}' $(docker ps -aq)",
    )
}

fn snapshot(lab: &Lab) -> Vec<String> {
    (1..=NODES).map(|n| containers(lab, n)).collect()
}

/// The files under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What the refusal prints for a key or certificate: the first 8 bytes of
/// its SHA-256, as `AB:CD:...`.
fn fingerprint(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A checkout of the lab's inventory alone, in a directory of its own.
fn checkout(lab: &Lab, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let inventory = dir.join("inventory.ini");
    std::fs::copy(lab.inventory(), &inventory).unwrap();
    inventory
}

fn bootstrap(lab: &Lab, inventory: &Path) -> crate::support::Run {
    bootstrap_with(lab, inventory, &[])
}

fn bootstrap_with(lab: &Lab, inventory: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["run", "-i", inventory.to_str().unwrap(), "bootstrap"];
    args.extend_from_slice(extra);
    let out = lab.command(&args).output().unwrap();
    crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The image of the lab's Consul agents, as the inventory names it.
fn consul_image(lab: &Lab) -> String {
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    inventory
        .lines()
        .find_map(|l| l.trim().strip_prefix("consul_image="))
        .expect("consul_image in the lab's inventory")
        .trim()
        .to_owned()
}

/// An HTTP request sent, from a plain container on node `n`'s docker
/// bridge (Consul's image, busybox's `nc`: no token, no consul CLI), to
/// the node's agent where containers reach it; Consul's raw answer.
fn from_container(lab: &Lab, n: usize, request: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args([
            "exec",
            "-i",
            &format!("{}-node{n}", lab.name),
            "docker",
            "run",
            "--rm",
            "-i",
        ])
        .args(["--entrypoint", "busybox", &consul_image(lab)])
        .args(["nc", "-w", "5", "172.17.0.1", "8500"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status code of a raw HTTP answer.
fn status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn request(method: &str, path: &str, token: Option<&str>, body: &str) -> String {
    let token = token
        .map(|t| format!("X-Consul-Token: {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.0\r\nHost: 172.17.0.1\r\n{token}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The gossip keys in node `n`'s agent keyring file, in its order.
fn keyring_file(lab: &Lab, n: usize) -> Vec<String> {
    let text = lab.on_node(n, "cat /mnt/arpanet-consul/serf/local.keyring");
    serde_json::from_str(&text).unwrap()
}

/// The `changed=` count of each host in a run's recap.
fn changed(stdout: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" changed=").filter(|_| l.contains(" : ok=")))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Samples `/v1/status/leader` on node1 every 0.5 s until stopped; the
/// longest stretch without a leader, and how many samples were taken.
struct LeaderWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Duration, usize, usize)>,
}

impl LeaderWatch {
    fn start(lab: &Lab) -> LeaderWatch {
        let node = format!("{}-node1", lab.name);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut samples, mut empty) = (0, 0);
            let mut longest = Duration::ZERO;
            let mut since: Option<Instant> = None;
            let start = Instant::now();
            while !stopped.load(Ordering::SeqCst) {
                let at = Instant::now();
                let out = Command::new("docker")
                    .args([
                        "exec",
                        &node,
                        "curl",
                        "-s",
                        "-m",
                        "0.4",
                        "http://127.0.0.1:8500/v1/status/leader",
                    ])
                    .output()
                    .unwrap();
                let answer = String::from_utf8_lossy(&out.stdout);
                let leader = answer.trim().trim_matches('"');
                samples += 1;
                if leader.is_empty() {
                    empty += 1;
                    since.get_or_insert(at);
                } else if let Some(from) = since.take() {
                    longest = longest.max(at - from);
                }
                let next = start + Duration::from_millis(500) * samples as u32;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            if let Some(from) = since {
                longest = longest.max(from.elapsed());
            }
            (longest, samples, empty)
        });
        LeaderWatch { stop, thread }
    }

    fn finish(self) -> (Duration, usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

#[test]
fn a_second_checkout_adopts_the_cluster_secrets_a_differing_one_is_refused_and_rotate_keeps_a_leader(
) {
    if std::env::var("ARPANET_LAB_TESTS").ok().as_deref() != Some("1") {
        eprintln!("note: skipping the secrets lab test: set ARPANET_LAB_TESTS=1");
        return;
    }
    let _turn = crate::support::heavy_lab_turn();
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    let clock = Instant::now();
    let lab = Lab::up("arpanet-secrets", 71, NODES, NODES);
    phases.push(("lab up", clock.elapsed()));

    // Checkout A (the lab's directory) makes the cluster and its secrets,
    // first without ACLs.
    let clock = Instant::now();
    let a = bootstrap_with(&lab, &lab.inventory(), &["-e", "consul_acl=false"]);
    assert_eq!(a.code, 0, "{a}");
    lab.assert_healthy();
    phases.push(("bootstrap from A, no ACLs", clock.elapsed()));
    let a_tls = lab.dir.join("consul-tls");
    let kv_path = "/v1/kv/arpanet/deployed/current";
    let open = from_container(&lab, 2, &request("GET", kv_path, None, ""));
    assert_eq!(status(&open), 200, "{open}");

    // ACLs on, for the running cluster: a plain bootstrap rolls them in.
    let clock = Instant::now();
    let a = bootstrap(&lab, &lab.inventory());
    assert_eq!(a.code, 0, "{a}");
    lab.assert_healthy();
    phases.push(("bootstrap from A, ACLs on", clock.elapsed()));
    eprintln!("A's bootstrap with ACLs:\n{}", tail(&a.stdout, 4));
    let token = std::fs::read_to_string(a_tls.join("acl-management.token")).unwrap();
    let token = token.trim().to_owned();
    // Without a token, from a plain container: denied, by the ACLs (the
    // body only ACL enforcement gives), for a read and for a write.
    for n in [1, NODES] {
        let denied = from_container(&lab, n, &request("GET", kv_path, None, ""));
        assert!(
            status(&denied) == 403 && denied.contains("Permission denied"),
            "node{n}: {denied}"
        );
        let write = request("PUT", "/v1/kv/arpanet/intruder", None, "x");
        let denied = from_container(&lab, n, &write);
        assert!(
            status(&denied) == 403 && denied.contains("Permission denied"),
            "node{n}: {denied}"
        );
    }
    // The same read with arpanet's token is answered.
    let allowed = from_container(&lab, NODES, &request("GET", kv_path, Some(&token), ""));
    assert!(
        status(&allowed) == 200 && allowed.contains("\"Key\":\"arpanet/deployed/current\""),
        "{allowed}"
    );
    let missing = lab.run("kv", &["get", "intruder"]);
    assert_eq!(missing.code, 2, "the denied write landed\n{missing}");
    let set = lab.run("kv", &["set", "acl-probe", "yes"]);
    assert_eq!(set.code, 0, "{set}");
    let got = lab.run("kv", &["get", "acl-probe"]);
    assert_eq!((got.code, got.stdout.trim()), (0, "yes"), "{got}");
    // DNS and catalog reads need no token.
    let dns = lab.on_node(
        NODES,
        &format!(
            "docker run --rm --entrypoint busybox {} nslookup consul.service.consul",
            consul_image(&lab)
        ),
    );
    let server_ip = lab.on_node(
        1,
        "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1",
    );
    assert!(dns.contains(server_ip.trim()), "{dns}");
    let first_tokens = assert_own_agent_tokens(&lab, &a_tls, &token);

    // A cluster as versions before one token per node left it (one agent
    // token shared by every agent) moves to a token per node with a plain
    // bootstrap: no container restarted, a leader at every sample.
    let shared = to_shared_agent_token(&lab, &a_tls, &token);
    let before = snapshot(&lab);
    let watch = LeaderWatch::start(&lab);
    std::thread::sleep(Duration::from_secs(1));
    let clock = Instant::now();
    let migrated = bootstrap(&lab, &lab.inventory());
    phases.push(("bootstrap from A (own tokens)", clock.elapsed()));
    std::thread::sleep(Duration::from_secs(1));
    let (leaderless, samples, empty) = watch.finish();
    assert_eq!(migrated.code, 0, "{migrated}");
    eprintln!(
        "shared -> own agent tokens: {samples} leader samples, {empty} without a leader, \
         longest leaderless {leaderless:?}\n{}",
        tail(&migrated.stdout, 4)
    );
    assert_leader_kept(samples, leaderless);
    assert_eq!(
        snapshot(&lab),
        before,
        "moving to a token per node restarted a container\n{migrated}"
    );
    let own = assert_own_agent_tokens(&lab, &a_tls, &token);
    assert!(
        own.iter()
            .all(|t| *t != shared && !first_tokens.contains(t)),
        "an agent kept an old token"
    );
    let (status, body) = consul(&lab, "GET", "/v1/acl/token/self", &shared, None);
    assert!(
        status == 403 && body.contains("ACL not found"),
        "the shared token still works: {status} {body}"
    );
    for legacy in ["acl-agent.token", "acl-server.json", "acl-client.json"] {
        assert!(!a_tls.join(legacy).exists(), "`{legacy}` left");
    }
    let a_files = files(&a_tls);
    assert!(a_files.contains_key(Path::new("ca-key.pem")), "{a_files:?}");
    let before = snapshot(&lab);

    // Checkout B: the inventory alone. It adopts; nothing restarts.
    let b_dir = lab.dir.join("checkout-b");
    let _ = std::fs::remove_dir_all(&b_dir);
    let b_inventory = checkout(&lab, &b_dir);
    let clock = Instant::now();
    let b = bootstrap(&lab, &b_inventory);
    phases.push(("bootstrap from B (adopts)", clock.elapsed()));
    assert_eq!(b.code, 0, "{b}");
    eprintln!("B's bootstrap:\n{}", tail(&b.stdout, 4));
    assert_eq!(
        snapshot(&lab),
        before,
        "B's bootstrap changed a container\n{b}"
    );
    let b_files = files(&b_dir.join("consul-tls"));
    let mut expected = a_files.clone();
    // The CA's private key is on no node, and the client pair is made
    // only where that key is: they stay A's alone.
    for local in ["ca-key.pem", "cert.pem", "key.pem"] {
        assert!(
            expected.remove(Path::new(local)).is_some(),
            "A has no `{local}`"
        );
    }
    assert_eq!(
        b_files.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &expected {
        assert!(
            b_files[path] == *bytes,
            "B's `{}` differs from A's",
            path.display()
        );
    }
    assert!(!b_dir.join("docker-tls").exists());
    // Adopting wrote B's files (its one changed task per node); after it,
    // B's bootstrap finds everything as it is. Run with -vv: no token
    // shows, in what arpanet prints or in its errors.
    let clock = Instant::now();
    // Every task runs (the stamps off): the check is of what they print.
    let b_again = bootstrap_with(&lab, &b_inventory, &["-vv", "-e", "bootstrap_fast=false"]);
    phases.push(("bootstrap from B again", clock.elapsed()));
    assert_eq!(b_again.code, 0, "{b_again}");
    let b_tls = b_dir.join("consul-tls");
    let b_kv = lab
        .command(&[
            "kv",
            "-i",
            b_inventory.to_str().unwrap(),
            "get",
            "acl-probe",
            "-vv",
        ])
        .output()
        .unwrap();
    assert!(b_kv.status.success(), "B's kv");
    for file in [
        "acl-management.token",
        "acl-linking.token",
        "hosts/node1/acl-agent.token",
        "hosts/node2/acl-agent.token",
        "hosts/node3/acl-agent.token",
    ] {
        let secret = std::fs::read_to_string(b_tls.join(file)).unwrap();
        let secret = secret.trim();
        assert_eq!(secret.len(), 36, "{file}");
        for shown in [
            &b_again.stdout,
            &b_again.stderr,
            &String::from_utf8_lossy(&b_kv.stdout).into_owned(),
            &String::from_utf8_lossy(&b_kv.stderr).into_owned(),
        ] {
            assert!(!shown.contains(secret), "`{file}` printed by a -vv run");
        }
    }
    assert_eq!(changed(&b_again.stdout), [0; NODES], "{b_again}");
    assert_eq!(
        snapshot(&lab),
        before,
        "B's second bootstrap changed a container\n{b_again}"
    );

    // Checkout C: A's files, but another gossip key. Refused, nothing changed.
    let c_dir = lab.dir.join("checkout-c");
    let _ = std::fs::remove_dir_all(&c_dir);
    let c_inventory = checkout(&lab, &c_dir);
    let c_tls = c_dir.join("consul-tls");
    for (path, bytes) in &a_files {
        let to = c_tls.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, bytes).unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        for dir in [c_tls.clone(), c_tls.join("hosts")] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
    }
    let other_key = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rand::random::<[u8; 32]>(),
    );
    std::fs::write(c_tls.join("gossip.key"), &other_key).unwrap();
    let a_key = String::from_utf8(a_files[Path::new("gossip.key")].clone()).unwrap();
    let clock = Instant::now();
    let c = bootstrap(&lab, &c_inventory);
    phases.push(("bootstrap from C (refused)", clock.elapsed()));
    assert_eq!(c.code, 2, "{c}");
    let said = format!("{}{}", c.stdout, c.stderr);
    assert!(said.contains("refused"), "{c}");
    eprintln!("C's bootstrap:\n{}", tail(&said, 8));
    assert!(said.contains(&fingerprint(other_key.as_bytes())), "{c}");
    assert!(said.contains(&fingerprint(a_key.trim().as_bytes())), "{c}");
    assert!(
        !said.contains(&other_key) && !said.contains(a_key.trim()),
        "a key was printed\n{c}"
    );
    assert_eq!(
        snapshot(&lab),
        before,
        "C's refused bootstrap changed a container\n{c}"
    );

    // A rotation cut short after `use` (done here by hand through the
    // keyring API): a second key, the primary, beside A's. Every agent's
    // keyring file lists the primary first; A is still accepted (its key
    // is one the cluster holds), and a checkout without files adopts the
    // primary.
    let cut = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        rand::random::<[u8; 32]>(),
    );
    lab.on_node(
        1,
        &format!(
            "for m in POST PUT; do curl -sf -X $m -H 'X-Consul-Token: {token}' \
             -d '{{\"Key\":\"{cut}\"}}' http://127.0.0.1:8500/v1/operator/keyring || exit 1; done"
        ),
    );
    for n in 1..=NODES {
        let held = keyring_file(&lab, n);
        assert_eq!(held.len(), 2, "node{n}: {held:?}");
        assert_eq!(
            held[0], cut,
            "node{n}'s keyring file does not list the primary first"
        );
        assert_eq!(held[1], a_key.trim(), "node{n}");
    }
    let clock = Instant::now();
    let again = bootstrap(&lab, &lab.inventory());
    phases.push(("bootstrap from A (2 keys)", clock.elapsed()));
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(changed(&again.stdout), [0; NODES], "{again}");
    assert_eq!(
        snapshot(&lab),
        before,
        "A's bootstrap changed a container\n{again}"
    );
    let d_dir = lab.dir.join("checkout-d");
    let _ = std::fs::remove_dir_all(&d_dir);
    let d_inventory = checkout(&lab, &d_dir);
    let clock = Instant::now();
    let d = bootstrap(&lab, &d_inventory);
    phases.push(("bootstrap from D (adopts)", clock.elapsed()));
    assert_eq!(d.code, 0, "{d}");
    assert_eq!(
        snapshot(&lab),
        before,
        "D's bootstrap changed a container\n{d}"
    );
    let adopted = std::fs::read_to_string(d_dir.join("consul-tls/gossip.key")).unwrap();
    assert!(adopted.trim() == cut, "D did not adopt the primary key");

    // rotate from A: a leader at every sample, no restart, one new key
    // (both old ones removed).
    let watch = LeaderWatch::start(&lab);
    std::thread::sleep(Duration::from_secs(1));
    let clock = Instant::now();
    let rotated = lab.run("rotate", &["--yes"]);
    phases.push(("rotate from A", clock.elapsed()));
    std::thread::sleep(Duration::from_secs(1));
    let (leaderless, samples, empty) = watch.finish();
    assert_eq!(rotated.code, 0, "{rotated}");
    eprintln!(
        "rotate: {samples} leader samples, {empty} without a leader, longest leaderless {leaderless:?}"
    );
    // A new gossip key restarts no agent, so raft keeps its leader.
    assert_leader_kept(samples, leaderless);
    assert_eq!(
        snapshot(&lab),
        before,
        "rotate restarted a container\n{rotated}"
    );
    let new_key = std::fs::read_to_string(a_tls.join("gossip.key")).unwrap();
    let new_key = new_key.trim();
    assert!(
        new_key != a_key.trim() && new_key != cut,
        "rotate left an old key"
    );
    eprintln!("rotate:\n{}", tail(&rotated.stdout, 4));
    let ring: serde_json::Value = serde_json::from_str(&lab.on_node(
        1,
        &format!("curl -sf -H 'X-Consul-Token: {token}' http://127.0.0.1:8500/v1/operator/keyring"),
    ))
    .unwrap();
    let pools = ring.as_array().unwrap();
    assert!(!pools.is_empty(), "{ring}");
    for pool in pools {
        let keys: Vec<&String> = pool["Keys"].as_object().unwrap().keys().collect();
        assert_eq!(keys, [new_key], "{pool}");
    }
    for n in 1..=NODES {
        assert_eq!(keyring_file(&lab, n), [new_key], "node{n}'s keyring file");
    }

    rotate_tls(&lab, &token, &mut phases);
    rotate_certs(&lab, &token, &mut phases);
    // Four restarts of every agent later, each still uses its own token
    // (the one it persisted when handed it).
    assert_eq!(assert_own_agent_tokens(&lab, &a_tls, &token), own);

    rotate_tokens(&lab, &token, &own, &mut phases);

    eprintln!("phases:");
    for (phase, took) in &phases {
        eprintln!("  {phase:<28} {:>6.1} s", took.as_secs_f64());
    }
}

/// `rotate --tokens --yes` from A, and what it left (see the module
/// documentation).
fn rotate_tokens(
    lab: &Lab,
    management: &str,
    agents: &[String],
    phases: &mut Vec<(&str, Duration)>,
) {
    let a_tls = lab.dir.join("consul-tls");
    // The samplers read KV with a token of their own, which the rotation
    // does not replace.
    let sampler = lab.on_node(1, "cat /proc/sys/kernel/random/uuid");
    let sampler = sampler.trim();
    let policy =
        r#"{"Name":"test-sampler","Rules":"key_prefix \"probe\" {\n  policy = \"read\"\n}\n"}"#;
    let (status, body) = consul(lab, "PUT", "/v1/acl/policy", management, Some(policy));
    assert_eq!(status, 200, "{body}");
    let token = format!(r#"{{"SecretID":"{sampler}","Policies":[{{"Name":"test-sampler"}}]}}"#);
    let (status, body) = consul(lab, "PUT", "/v1/acl/token", management, Some(&token));
    assert_eq!(status, 200, "{body}");
    // A first run, killed (SIGKILL) once the first server it restarted has
    // passed its gates; then a second run to the end. Each node samples its
    // own agent throughout.
    start_samplers(lab, sampler);
    std::thread::sleep(Duration::from_secs(2));
    let started = server_starts(lab);
    let clock = Instant::now();
    let (cut, first) = cut_after_first_restart(lab);
    phases.push(("rotate --tokens, cut short", clock.elapsed()));
    let after_cut = server_starts(lab);
    let restarted: Vec<usize> = (0..NODES).filter(|&i| started[i] != after_cut[i]).collect();
    assert_eq!(
        restarted,
        [first - 1],
        "the cut run restarted other servers than node{first}\n{cut}"
    );
    let clock = Instant::now();
    let rotated = lab.run("rotate", &["--tokens", "--yes"]);
    let took = clock.elapsed();
    phases.push(("rotate --tokens, resumed", took));
    std::thread::sleep(Duration::from_secs(2));
    let seen = finish_samplers(lab);
    assert_eq!(rotated.code, 0, "{rotated}");
    let what = format!(
        "rotate --tokens cut after node{first}'s restart, then resumed (samples over both runs, \
         the time of the resumed one)"
    );
    assert_rolled(&what, took, seen, &rotated.stdout);
    // The resumed run restarted every server but the one the cut run had.
    let resumed = server_starts(lab);
    for i in 0..NODES {
        if i == first - 1 {
            assert_eq!(
                resumed[i], after_cut[i],
                "the resumed run restarted node{first} again\n{rotated}"
            );
        } else {
            assert_ne!(
                resumed[i],
                after_cut[i],
                "the resumed run did not restart node{}\n{rotated}",
                i + 1
            );
        }
    }
    lab.assert_healthy();
    let new = std::fs::read_to_string(a_tls.join("acl-management.token")).unwrap();
    let new = new.trim();
    assert!(
        new.len() == 36 && new != management,
        "no new management token"
    );
    assert!(!a_tls.join("acl-management.old.token").exists());
    // The old tokens are refused, the new ones answered.
    for (what, old) in std::iter::once(("management", management))
        .chain(agents.iter().map(|t| ("agent", t.as_str())))
    {
        let (status, body) = consul(lab, "GET", "/v1/acl/token/self", old, None);
        assert!(
            status == 403 && body.contains("ACL not found"),
            "an old {what} token still works: {status} {body}"
        );
    }
    let (status, body) = consul(lab, "GET", "/v1/acl/token/self", new, None);
    assert_eq!(status, 200, "{body}");
    let fresh = assert_own_agent_tokens(lab, &a_tls, new);
    assert!(
        fresh.iter().all(|t| !agents.contains(t)),
        "an agent kept its token"
    );
    // Every server starts with the new master token, so no leader makes
    // the old one again.
    for n in 1..=NODES {
        let config = lab.on_node(n, "cat /mnt/arpanet-consul/arpanet/acl.json");
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert!(
            config["acl"]["tokens"]["master"] == new,
            "node{n}'s acl.json"
        );
        let kept = lab.on_node(n, "cat /mnt/arpanet-consul/arpanet/management.token");
        assert!(kept.trim() == new, "node{n}'s management.token");
    }
    let got = lab.run("kv", &["get", "acl-probe"]);
    assert_eq!((got.code, got.stdout.trim()), (0, "yes"), "{got}");
    // Checkout E still holds the old management token: its `kv` is
    // refused, naming that token's file.
    let e_dir = lab.dir.join("checkout-e");
    let e_inventory = e_dir.join("inventory.ini");
    let e_kv = lab
        .command(&[
            "kv",
            "-i",
            e_inventory.to_str().unwrap(),
            "get",
            "acl-probe",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&e_kv.stderr);
    let file = e_dir.join("consul-tls/acl-management.token");
    // (A follower answers `rpc error making call: ACL not found`.)
    assert!(
        said.contains(&format!(
            "consul refused the ACL token from `{}` (HTTP 403: ",
            file.display()
        )) && said.contains("ACL not found)"),
        "E's kv: {said}"
    );
    assert!(!said.contains(management), "E's kv printed its token");
    for shown in [&cut.stdout, &cut.stderr, &rotated.stdout, &rotated.stderr] {
        assert!(
            !shown.contains(new) && !shown.contains(management),
            "a token was printed"
        );
    }
}

/// When each server's Consul container started, by node.
fn server_starts(lab: &Lab) -> Vec<String> {
    (1..=NODES)
        .map(|n| lab.on_node(n, "docker inspect -f '{{.State.StartedAt}}' consul"))
        .collect()
}

/// `rotate --tokens --yes` from A, killed with SIGKILL as soon as its
/// output shows the first server restarted by the followers' play through
/// its last gate (`gate: every server healthy, a leader, ...` reported for
/// that server, in that play). What it printed, and that server's number.
fn cut_after_first_restart(lab: &Lab) -> (crate::support::Run, usize) {
    use std::io::{BufRead, Read};
    let inventory = lab.inventory();
    let args = [
        "rotate",
        "-i",
        inventory.to_str().unwrap(),
        "--tokens",
        "--yes",
    ];
    let mut child = lab.spawn(&args);
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (mut stdout, mut play, mut task) = (String::new(), String::new(), String::new());
    let mut first = None;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        let banner = |word: &str| {
            line.strip_prefix(word)
                .and_then(|rest| rest.split_once("] "))
                .map(|(name, _)| name.to_owned())
        };
        if let Some(name) = banner("PLAY [") {
            play = name;
        } else if let Some(name) = banner("TASK [") {
            task = name;
        } else if play.starts_with("restart on the consul followers")
            && task.starts_with("gate: every server healthy, a leader")
        {
            let host = ["ok: [node", "changed: [node"]
                .iter()
                .find_map(|p| line.strip_prefix(p))
                .and_then(|rest| rest.split(']').next())
                .and_then(|n| n.parse::<usize>().ok());
            if host.is_some() {
                child.kill().unwrap();
                first = host;
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    let run = crate::support::Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: errors.join().unwrap(),
    };
    let first = first.unwrap_or_else(|| panic!("no server restart to cut after\n{run}"));
    (run, first)
}

/// `METHOD path` sent to node1's agent with `token` (and `body`): the
/// status and the answer.
fn consul(lab: &Lab, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
    let data = body.map(|b| format!("-d '{b}'")).unwrap_or_default();
    let out = lab.on_node(
        1,
        &format!(
            "curl -s -X {method} {data} -w '\\n%{{http_code}}' -H 'X-Consul-Token: {token}' \
             'http://127.0.0.1:8500{path}'"
        ),
    );
    let (answer, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (code.parse().unwrap_or(0), answer.to_owned())
}

/// The names of a token's (or a list of tokens') policies.
fn policy_names(token: &serde_json::Value) -> Vec<String> {
    token["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["Name"].as_str().map(str::to_owned))
        .collect()
}

/// Every node's agent uses a token of its own, different from every other
/// node's: the token it persisted when arpanet handed it (what it uses) is
/// the checkout's `hosts/NODE/acl-agent.token` and the node's
/// `agent.token`, Consul knows it with the one policy
/// `arpanet-agent-NODE`, whose rules write on that node alone; and Consul
/// holds exactly one agent token per node, none shared. The tokens.
fn assert_own_agent_tokens(lab: &Lab, tls: &Path, management: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for n in 1..=NODES {
        let node = format!("node{n}");
        let own =
            std::fs::read_to_string(tls.join("hosts").join(&node).join("acl-agent.token")).unwrap();
        let own = own.trim().to_owned();
        assert_eq!(own.len(), 36, "{node}");
        let persisted: serde_json::Value =
            serde_json::from_str(&lab.on_node(n, "cat /mnt/arpanet-consul/acl-tokens.json"))
                .unwrap();
        assert!(
            persisted["agent"] == own.as_str(),
            "{node}'s agent does not use its own token"
        );
        let kept = lab.on_node(n, "cat /mnt/arpanet-consul/arpanet/agent.token");
        assert!(kept.trim() == own, "{node}'s agent.token");
        let (status, body) = consul(lab, "GET", "/v1/acl/token/self", &own, None);
        assert_eq!(status, 200, "{node}: {body}");
        let policy = format!("arpanet-agent-{node}");
        let found: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(policy_names(&found), [policy.as_str()], "{node}");
        let (_, listed) = consul(lab, "GET", "/v1/acl/policies", management, None);
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let id = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Name"] == policy.as_str())
            .and_then(|p| p["ID"].as_str())
            .unwrap()
            .to_owned();
        let (_, read) = consul(
            lab,
            "GET",
            &format!("/v1/acl/policy/{id}"),
            management,
            None,
        );
        let rules: serde_json::Value = serde_json::from_str(&read).unwrap();
        let rules = rules["Rules"].as_str().unwrap();
        assert!(
            rules.contains(&format!("node \"{node}\"")) && !rules.contains("node_prefix"),
            "{policy}: {rules}"
        );
        tokens.push(own);
    }
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), NODES, "two nodes share an agent token");
    let (status, body) = consul(lab, "GET", "/v1/acl/tokens", management, None);
    assert_eq!(status, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let mut agent_policies: Vec<String> = list
        .iter()
        .flat_map(policy_names)
        .filter(|p| p.starts_with("arpanet-agent"))
        .collect();
    agent_policies.sort();
    let expected: Vec<String> = (1..=NODES)
        .map(|n| format!("arpanet-agent-node{n}"))
        .collect();
    assert_eq!(agent_policies, expected, "not one agent token per node");
    tokens
}

/// Put the cluster back as versions before one token per node left it:
/// one agent token (policy `arpanet-agent`: write on every node) that
/// every agent uses and its `acl.json` names, no `agent.token` on the
/// nodes, no per-node policies or tokens in Consul, and the checkout's
/// files as those versions wrote them. The shared token.
fn to_shared_agent_token(lab: &Lab, tls: &Path, management: &str) -> String {
    let shared = lab.on_node(1, "cat /proc/sys/kernel/random/uuid");
    let shared = shared.trim().to_owned();
    let rules = r#"node_prefix \"\" {\n  policy = \"write\"\n}\nservice_prefix \"\" {\n  policy = \"read\"\n}\n"#;
    let policy = format!(
        r#"{{"Name":"arpanet-agent","Description":"arpanet: every Consul agent","Rules":"{rules}"}}"#
    );
    let (status, body) = consul(lab, "PUT", "/v1/acl/policy", management, Some(&policy));
    assert_eq!(status, 200, "{body}");
    let token = format!(
        r#"{{"SecretID":"{shared}","Description":"arpanet: the Consul agents","Policies":[{{"Name":"arpanet-agent"}}]}}"#
    );
    let (status, body) = consul(lab, "PUT", "/v1/acl/token", management, Some(&token));
    assert_eq!(status, 200, "{body}");
    for n in 1..=NODES {
        lab.on_node(
            n,
            &format!(
                "curl -sf -X PUT -H 'X-Consul-Token: {management}' -d '{{\"Token\":\"{shared}\"}}' \
                 http://127.0.0.1:8500/v1/agent/token/agent && \
                 rm /mnt/arpanet-consul/arpanet/agent.token && \
                 sed -i 's/\"agent\": \"[^\"]*\"/\"agent\": \"{shared}\"/' \
                 /mnt/arpanet-consul/arpanet/acl.json"
            ),
        );
        let node = tls.join("hosts").join(format!("node{n}"));
        std::fs::remove_file(node.join("acl-agent.token")).unwrap();
        std::fs::remove_file(node.join("acl.json")).unwrap();
    }
    let (_, body) = consul(lab, "GET", "/v1/acl/tokens", management, None);
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    for token in &list {
        if policy_names(token)
            .iter()
            .any(|p| p.starts_with("arpanet-agent-"))
        {
            let accessor = token["AccessorID"].as_str().unwrap();
            let (status, body) = consul(
                lab,
                "DELETE",
                &format!("/v1/acl/token/{accessor}"),
                management,
                None,
            );
            assert_eq!(status, 200, "{body}");
        }
    }
    let (_, body) = consul(lab, "GET", "/v1/acl/policies", management, None);
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    for policy in &list {
        if policy["Name"]
            .as_str()
            .unwrap()
            .starts_with("arpanet-agent-")
        {
            let id = policy["ID"].as_str().unwrap();
            let path = format!("/v1/acl/policy/{id}");
            let (status, body) = consul(lab, "DELETE", &path, management, None);
            assert_eq!(status, 200, "{body}");
        }
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        let config = lab.on_node(1, "cat /mnt/arpanet-consul/arpanet/acl.json");
        for (file, text) in [
            ("acl-agent.token", format!("{shared}\n")),
            ("acl-server.json", config),
        ] {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(tls.join(file))
                .unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        }
    }
    // Every agent now uses the shared token.
    for n in 1..=NODES {
        let persisted = lab.on_node(n, "cat /mnt/arpanet-consul/acl-tokens.json");
        assert!(persisted.contains(&shared), "node{n}");
    }
    shared
}

/// The SHA-256 of a PEM certificate's DER, as `openssl x509 -fingerprint
/// -sha256` prints it (`AB:CD:...`, 32 bytes).
fn cert_fingerprint(pem: &str) -> String {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A TLS handshake with node `ip`'s Consul RPC port (8300), trusting
/// `ca` and showing `cert`/`key` (Consul asks for a client certificate):
/// `openssl s_client` through a local relay that first sends the byte by
/// which Consul's RPC port chooses TLS (`RPCTLS`, 3). Whether the server's certificate
/// was verified and the handshake completed, and what openssl said.
fn handshake(ip: &str, ca: &Path, cert: &Path, key: &Path) -> (bool, String) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = format!("{ip}:8300");
    let relay = std::thread::spawn(move || {
        let (local, _) = listener.accept().unwrap();
        let mut remote = std::net::TcpStream::connect(&target).unwrap();
        remote.write_all(&[0x03]).unwrap();
        let (mut l2, mut r2) = (local.try_clone().unwrap(), remote.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut l2, &mut r2);
            let _ = r2.shutdown(std::net::Shutdown::Write);
        });
        let (mut l, mut r) = (local, remote);
        let _ = std::io::copy(&mut r, &mut l);
        let _ = l.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    });
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "server.dc1.consul", "-verify_return_error"])
        .arg("-CAfile")
        .arg(ca)
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = relay.join();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && said.contains("Verify return code: 0 (ok)"),
        said,
    )
}

/// Each node samples its own agent every 0.5 s: its Consul container
/// running, and a consistent KV read answered within 0.4 s (a leader with
/// its quorum). Stopped by `finish`: the most servers down at once, the
/// longest stretch without a leader anywhere, and the number of samples.
fn start_samplers(lab: &Lab, token: &str) {
    for n in 1..=NODES {
        lab.on_node(
            n,
            &format!("printf 'X-Consul-Token: %s' '{token}' > /root/consul-token"),
        );
        let sampler = "rm -f /root/samples /root/sample-stop; \
             while [ ! -e /root/sample-stop ]; do sleep 0.5 & p=$!; \
             r=$(docker ps -q --filter name=^consul$ --filter status=running | wc -l); \
             l=$(curl -s -m 0.4 -H @/root/consul-token -o /dev/null -w '%{http_code}' 'http://127.0.0.1:8500/v1/kv/probe?consistent'); \
             echo \"$(date +%s.%N) $r $l\" >> /root/samples; wait $p; done";
        let started = Command::new("docker")
            .args(["exec", "-d", &lab.node(n), "sh", "-c", sampler])
            .status()
            .unwrap();
        assert!(started.success());
    }
}

fn finish_samplers(lab: &Lab) -> (usize, f64, usize) {
    for n in 1..=NODES {
        lab.on_node(n, "touch /root/sample-stop");
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut samples: Vec<(f64, usize, bool, bool)> = Vec::new();
    for n in 1..=NODES {
        for line in lab.on_node(n, "cat /root/samples").lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            samples.push((
                f[0].parse().unwrap(),
                n,
                f[1] == "1",
                matches!(f.get(2), Some(&"200" | &"404")),
            ));
        }
    }
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut now: BTreeMap<usize, (bool, bool)> = BTreeMap::new();
    let (mut max_down, mut longest) = (0, 0.0_f64);
    let mut since: Option<f64> = None;
    for (at, n, running, leader) in &samples {
        now.insert(*n, (*running, *leader));
        max_down = max_down.max(now.values().filter(|(r, _)| !r).count());
        let any = now.values().any(|(r, l)| *r && *l);
        match (any, since) {
            (false, None) => since = Some(*at),
            (true, Some(from)) => {
                longest = longest.max(at - from);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(from), Some(last)) = (since, samples.last()) {
        longest = longest.max(last.0 - from);
    }
    (max_down, longest, samples.len())
}

/// A change that restarts no agent keeps raft's leader: of a
/// [`LeaderWatch`]'s samples, the one gap allowed is a single lost sample
/// (the probe's own 0.4 s timeout on a loaded machine), never two in a row.
fn assert_leader_kept(samples: usize, leaderless: Duration) {
    assert!(samples >= 4, "too few samples: {samples}");
    assert!(
        leaderless < Duration::from_millis(900),
        "{leaderless:?} without a leader"
    );
}

/// `rotate FLAG --yes` from A, which must succeed, while every node
/// samples its own agent (KV read with `token`): the run, how long it
/// took, and what the samplers saw (see [`finish_samplers`]).
fn sampled_rotate(
    lab: &Lab,
    token: &str,
    flag: &str,
) -> (crate::support::Run, Duration, (usize, f64, usize)) {
    start_samplers(lab, token);
    std::thread::sleep(Duration::from_secs(2));
    let clock = Instant::now();
    let rotated = lab.run("rotate", &[flag, "--yes"]);
    let took = clock.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let seen = finish_samplers(lab);
    assert_eq!(rotated.code, 0, "{rotated}");
    (rotated, took, seen)
}

/// The longest a rolled rotation may leave the cluster without a leader.
/// Consul 1.8.7 cannot hand leadership over, so the leader's own restart
/// costs a heartbeat timeout (1-2 s at `raft_multiplier = 1`) and an
/// election, seen through samples 0.5 s apart: `rotate --tls` measured
/// 3.2 s in two of three CI runs on 2026-12-07 (one of them with no other
/// lab beside it). Two servers down at once (no quorum) lasts a whole
/// restart, far longer, and `max_down` catches it on its own.
const ROLLED_LEADERLESS: f64 = 4.0;

/// What the samplers saw over a rolled rotation (see [`finish_samplers`]),
/// printed with the time it took and the end of its output, within the
/// roll's bounds: enough samples, at most one server down at once, at most
/// [`ROLLED_LEADERLESS`] without a leader.
fn assert_rolled(what: &str, took: Duration, seen: (usize, f64, usize), stdout: &str) {
    let (max_down, leaderless, samples) = seen;
    eprintln!(
        "{what}: {:.1} s, {samples} samples, at most {max_down} server(s) down, \
         longest without a leader {leaderless:.1} s\n{}",
        took.as_secs_f64(),
        tail(stdout, 4)
    );
    assert!(samples > 20, "{samples} samples");
    assert!(max_down <= 1, "{max_down} servers down at once");
    assert!(
        leaderless <= ROLLED_LEADERLESS,
        "{leaderless:.1} s without a leader"
    );
}

/// `rotate --tls` from A, and what it left (see the module documentation).
fn rotate_tls(lab: &Lab, token: &str, phases: &mut Vec<(&str, Duration)>) {
    let a_tls = lab.dir.join("consul-tls");
    let old_ca = std::fs::read_to_string(a_tls.join("ca.pem")).unwrap();
    // Checkout E keeps A's files as they are before the rotation.
    let e_dir = lab.dir.join("checkout-e");
    let _ = std::fs::remove_dir_all(&e_dir);
    let e_inventory = checkout(lab, &e_dir);
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&a_tls)
        .arg(e_dir.join("consul-tls"))
        .status()
        .unwrap();
    assert!(copied.success());
    let old_ca_file = e_dir.join("consul-tls/ca.pem");

    let (rotated, took, seen) = sampled_rotate(lab, token, "--tls");
    phases.push(("rotate --tls from A", took));
    assert_rolled("rotate --tls", took, seen, &rotated.stdout);
    lab.assert_healthy();

    let new_ca = std::fs::read_to_string(a_tls.join("ca.pem")).unwrap();
    assert_ne!(cert_fingerprint(&new_ca), cert_fingerprint(&old_ca));
    for file in ["ca.old.pem", "ca.rotation"] {
        assert!(
            !a_tls.join(file).exists(),
            "`{file}` left after the rotation"
        );
    }
    let new_print = cert_fingerprint(&new_ca);
    for n in 1..=NODES {
        lab.on_node(
            n,
            &format!("printf '%s' '{new_ca}' > /root/new-ca.pem; printf '%s' '{old_ca}' > /root/old-ca.pem"),
        );
        let dir = "/mnt/arpanet-consul/arpanet";
        // The agent trusts the new CA alone...
        let trusted = lab.on_node(n, &format!("grep -c 'BEGIN CERTIFICATE' {dir}/ca.pem"));
        assert_eq!(trusted.trim(), "1", "node{n} trusts more than one CA");
        let print = lab.on_node(
            n,
            &format!("openssl x509 -in {dir}/ca.pem -noout -fingerprint -sha256"),
        );
        assert!(
            print.trim().ends_with(&new_print),
            "node{n}: {print} is not {new_print}"
        );
        // ... and shows a certificate the new CA signed, not the old.
        let verified = lab.on_node(
            n,
            &format!("openssl verify -CAfile /root/new-ca.pem {dir}/cert.pem"),
        );
        assert!(verified.contains(": OK"), "node{n}: {verified}");
        let (old_ok, said) = lab.try_on_node(
            n,
            &format!("openssl verify -CAfile /root/old-ca.pem {dir}/cert.pem 2>&1"),
        );
        assert!(
            !old_ok,
            "node{n}'s certificate verifies with the old CA: {said}"
        );
    }
    // A TLS handshake with a server's RPC port: trusting the old CA it
    // fails, trusting the new one it succeeds.
    let ip = lab.on_node(
        2,
        "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1",
    );
    let host = a_tls.join("hosts/node1");
    let (cert, key) = (host.join("server-cert.pem"), host.join("server-key.pem"));
    let (ok, said) = handshake(ip.trim(), &a_tls.join("ca.pem"), &cert, &key);
    assert!(ok, "the handshake trusting the new CA failed:\n{said}");
    let (ok, said) = handshake(ip.trim(), &old_ca_file, &cert, &key);
    assert!(!ok, "a handshake trusting the old CA succeeded:\n{said}");
    assert!(said.contains("verify error"), "{said}");

    let got = lab.run("kv", &["get", "acl-probe"]);
    assert_eq!((got.code, got.stdout.trim()), (0, "yes"), "{got}");

    // The old files are refused, naming both CAs.
    let before = snapshot(lab);
    let e = bootstrap(lab, &e_inventory);
    assert_eq!(e.code, 2, "{e}");
    let said = format!("{}{}", e.stdout, e.stderr);
    eprintln!("E's bootstrap (old CA):\n{}", tail(&said, 6));
    assert!(said.contains("refused"), "{e}");
    assert!(said.contains(&old_print_short(&old_ca)), "{e}");
    assert!(said.contains(&old_print_short(&new_ca)), "{e}");
    assert_eq!(
        snapshot(lab),
        before,
        "E's refused bootstrap changed a container\n{e}"
    );
}

/// The certificate each server shows on its RPC port (8300), by node: its
/// fingerprint, from a TLS handshake made here that trusts the checkout's
/// `ca.pem` (which must verify it).
fn served_certificates(lab: &Lab) -> Vec<String> {
    let tls = lab.dir.join("consul-tls");
    let host = tls.join("hosts/node1");
    let (cert, key) = (host.join("server-cert.pem"), host.join("server-key.pem"));
    (1..=NODES)
        .map(|n| {
            let ip = lab.on_node(
                n,
                "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1",
            );
            let (ok, said) = handshake(ip.trim(), &tls.join("ca.pem"), &cert, &key);
            assert!(ok, "node{n}'s RPC certificate does not verify:\n{said}");
            let pem: String = said
                .lines()
                .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
                .take_while(|l| !l.starts_with("-----END CERTIFICATE"))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(!pem.is_empty(), "node{n} showed no certificate:\n{said}");
            cert_fingerprint(&pem)
        })
        .collect()
}

/// `rotate --certs` from A, and what it left (see the module
/// documentation).
fn rotate_certs(lab: &Lab, token: &str, phases: &mut Vec<(&str, Duration)>) {
    let a_tls = lab.dir.join("consul-tls");
    let ca = std::fs::read_to_string(a_tls.join("ca.pem")).unwrap();
    let before = served_certificates(lab);
    let (rotated, took, seen) = sampled_rotate(lab, token, "--certs");
    phases.push(("rotate --certs from A", took));
    assert_rolled("rotate --certs", took, seen, &rotated.stdout);
    lab.assert_healthy();
    // The CA stays, here and on every node.
    let after_ca = std::fs::read_to_string(a_tls.join("ca.pem")).unwrap();
    assert_eq!(cert_fingerprint(&after_ca), cert_fingerprint(&ca));
    let ca_print = cert_fingerprint(&ca);
    for n in 1..=NODES {
        let print = lab.on_node(
            n,
            "openssl x509 -in /mnt/arpanet-consul/arpanet/ca.pem -noout -fingerprint -sha256",
        );
        assert!(print.trim().ends_with(&ca_print), "node{n}: {print}");
    }
    // Every server shows a new certificate, which that CA signed (the
    // handshake verified it) and which is the one the checkout now holds
    // for that node.
    let after = served_certificates(lab);
    for (n, (old, new)) in before.iter().zip(&after).enumerate() {
        let node = format!("node{}", n + 1);
        assert_ne!(old, new, "{node} still shows its old certificate");
        let issued =
            std::fs::read_to_string(a_tls.join("hosts").join(&node).join("server-cert.pem"))
                .unwrap();
        assert_eq!(
            *new,
            cert_fingerprint(&issued),
            "{node} shows a certificate other than the one issued for it"
        );
    }
    let got = lab.run("kv", &["get", "acl-probe"]);
    assert_eq!((got.code, got.stdout.trim()), (0, "yes"), "{got}");
}

/// The refusal's short fingerprint of a certificate: its first 8 bytes.
fn old_print_short(pem: &str) -> String {
    cert_fingerprint(pem)[..23].to_owned()
}
