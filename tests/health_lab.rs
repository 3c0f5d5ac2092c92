//! `status` health and Consul failover on a 3-node lab with real Consul
//! (3 servers: the fewest that keep a leader with one down). Run with
//! `ARPANET_LAB_TESTS=1`; each phase prints how long it took.
//!
//! - after `bootstrap`, `status` exits 0 with no `problems:`;
//! - `arpanet ui consul` and `ui cadvisor`: headless Chromium loads
//!   Consul's services and nodes pages, and cAdvisor's containers page and
//!   container listing, through the forwarded port and shows what only the
//!   live UIs know (screenshots in `target/test-artifacts/`);
//! - `docker stop consul` on node3: `status` exits 2 and names node3's
//!   agent and its `consul` container under `problems:`;
//! - restored, `status` is 0 again;
//! - the first server's (node1's) Consul stopped: `kv get` answers through
//!   the next server, naming node1's attempt under `-v`;
//! - restored again, `status` is 0;
//! - `details -o json` gives each node's `consul` and `cadvisor` with the
//!   digest and start time `docker inspect` gives on the node;
//! - `restart consul cadvisor`: while each server samples every 0.5 s
//!   whether a consistent read through its agent is answered (a leader
//!   with quorum), every node's two containers get a new start time, the
//!   leader's Consul last, never more than one server's Consul down at a
//!   sample, and the time without a leader is measured (and bounded).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Run;

static NAME: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_name("arpanet-health"));
static SUBNET: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_subnet(72));

struct Lab {
    dir: PathBuf,
    home: tempfile::TempDir,
}

impl Lab {
    fn lab(&self, args: &[&str]) -> Run {
        let (command, rest) = args.split_first().unwrap();
        let dir = self.dir.to_str().unwrap();
        let mut all = vec!["lab", command, "--dir", dir, "--name", NAME.as_str()];
        all.extend_from_slice(rest);
        self.arpanet(&all)
    }

    /// `arpanet ARGS... -i INVENTORY`.
    fn run(&self, args: &[&str]) -> Run {
        let inventory = self.dir.join("inventory.ini");
        let mut all = args.to_vec();
        all.extend(["-i", inventory.to_str().unwrap()]);
        self.arpanet(&all)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arpanet"));
        command
            .args(args)
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("ARPANET_LAB_SUBNET", &*SUBNET)
            .env_remove("ARPANET_LAB_NAME")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        command
    }

    /// `arpanet ARGS... -i INVENTORY` in the background, stdout and
    /// stderr piped.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let inventory = self.dir.join("inventory.ini");
        let mut all = args.to_vec();
        all.extend(["-i", inventory.to_str().unwrap()]);
        self.command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run arpanet")
    }

    fn arpanet(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run arpanet");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `docker ACTION consul` inside node `n`, bypassing arpanet.
    fn consul_container(&self, n: usize, action: &str) {
        self.exec_on_node(n, &["docker", action, "consul"]);
    }

    /// Run `command` inside node `n` (`docker exec`), bypassing arpanet;
    /// its stdout.
    fn exec_on_node(&self, n: usize, command: &[&str]) -> String {
        let out = Command::new("docker")
            .args(["exec", &format!("{}-node{n}", *NAME)])
            .args(command)
            .output()
            .expect("docker exec");
        assert!(
            out.status.success(),
            "{command:?} on node{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sh -c COMMAND` inside node `n`, bypassing arpanet; its stdout.
    fn on_node(&self, n: usize, command: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &format!("{}-node{n}", *NAME), "sh", "-c", command])
            .output()
            .expect("docker exec");
        assert!(
            out.status.success(),
            "`{command}` on node{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (up to 60 s) until autopilot, asked on node1, tolerates a
    /// server failure: every server a healthy voter.
    fn wait_tolerant(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = self.on_node(
                1,
                "curl -s -H \"X-Consul-Token: $(cat /mnt/arpanet-consul/arpanet/management.token)\" \
                 http://127.0.0.1:8500/v1/operator/autopilot/health || true",
            );
            let tolerance = serde_json::from_str::<serde_json::Value>(&health)
                .ok()
                .and_then(|h| h["FailureTolerance"].as_u64())
                .unwrap_or(0);
            if tolerance >= 1 {
                return;
            }
            assert!(Instant::now() < deadline, "no failure tolerance: {health}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// `NAME: DIGEST STARTED_AT` of `names` on node `n`, as Docker there
    /// says.
    fn inspected(&self, n: usize, names: &[&str]) -> Vec<String> {
        self.on_node(
            n,
            &format!(
                "docker inspect --format '{{{{.Name}}}}: {{{{.Image}}}} {{{{.State.StartedAt}}}}' {}",
                names.join(" ")
            ),
        )
        .lines()
        .map(|l| l.trim_start_matches('/').to_owned())
        .collect()
    }

    /// Run `args` until `done` holds for its result (up to `limit`);
    /// returns the last result.
    fn until(&self, args: &[&str], limit: Duration, done: impl Fn(&Run) -> bool) -> Run {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.run(args);
            if done(&out) || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.lab(&["down"]);
    }
}

/// The lines after `problems:` in `status`'s output.
fn problems(out: &Run) -> Vec<String> {
    out.stdout
        .lines()
        .skip_while(|l| *l != "problems:")
        .skip(1)
        .map(|l| l.trim().to_owned())
        .collect()
}

fn phase(name: &str, since: &mut Instant) {
    eprintln!("phase {name}: {:.1}s", since.elapsed().as_secs_f64());
    *since = Instant::now();
}

#[test]
fn status_reports_a_stopped_agent_and_kv_fails_over_to_the_next_server() {
    if std::env::var("ARPANET_LAB_TESTS").ok().as_deref() != Some("1") {
        eprintln!("note: skipping the health lab test: set ARPANET_LAB_TESTS=1");
        return;
    }
    let _turn = crate::support::heavy_lab_turn();
    let mut clock = Instant::now();
    let lab = Lab {
        dir: Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(crate::support::lab_name("arpanet-health-lab")),
        home: tempfile::tempdir().unwrap(),
    };
    let _ = lab.lab(&["down"]);
    let up = lab.lab(&["up", "--nodes", "3", "--servers", "3"]);
    assert_eq!(up.code, 0, "lab up failed:\n{up}");
    phase("lab up", &mut clock);
    let bootstrap = lab.run(&["run", "bootstrap"]);
    assert_eq!(bootstrap.code, 0, "{bootstrap}");
    phase("bootstrap", &mut clock);

    let healthy = |out: &Run| out.code == 0;
    let status = lab.until(&["status"], Duration::from_secs(60), healthy);
    assert_eq!(status.code, 0, "{status}");
    assert!(!status.stdout.contains("problems:"), "{status}");
    eprintln!("{}", status.stdout);
    let value = format!("v-{}", std::process::id());
    let set = lab.run(&["kv", "set", "health/x", &value]);
    assert_eq!(set.code, 0, "{set}");
    phase("healthy status", &mut clock);

    uis_in_a_browser(&lab);
    phase("the consul and cadvisor UIs in a browser", &mut clock);

    // One agent down: named, with its container; exit 2 (unhealthy).
    lab.consul_container(3, "stop");
    let status = lab.run(&["status"]);
    eprintln!("{status}");
    assert_eq!(status.code, 2, "{status}");
    let found = problems(&status);
    assert!(
        found
            .iter()
            .any(|l| l.starts_with("node3: consul agent: not answering")),
        "{status}"
    );
    assert!(
        found.contains(&"node3: container `consul`: exited".to_owned()),
        "{status}"
    );
    assert!(!found.iter().any(|l| l.starts_with("node1")), "{status}");
    lab.consul_container(3, "start");
    let status = lab.until(&["status"], Duration::from_secs(90), healthy);
    assert_eq!(status.code, 0, "{status}");
    phase("one agent down, then back", &mut clock);

    // The first server's Consul down: `kv get` answers through another
    // server (once the other two have a leader). node3, back, counts as a
    // voter only once autopilot has promoted it (after ~10 s of
    // stability): until then, node1 down would leave no quorum.
    lab.wait_tolerant();
    lab.consul_container(1, "stop");
    let get = lab.until(
        &["kv", "-v", "get", "health/x"],
        Duration::from_secs(60),
        |r| r.code == 0,
    );
    eprintln!("{get}");
    assert_eq!((get.code, get.stdout.trim()), (0, value.as_str()), "{get}");
    assert!(
        get.stderr
            .lines()
            .any(|l| l.starts_with("node1: ") && l.ends_with("trying the next node")),
        "{get}"
    );
    assert!(!get.stderr.contains("MaxSessions"), "{get}");
    phase("kv with the first server's consul down", &mut clock);
    lab.consul_container(1, "start");
    let status = lab.until(&["status"], Duration::from_secs(90), healthy);
    assert_eq!(status.code, 0, "{status}");
    phase("restored", &mut clock);

    details_and_restart(&lab, &mut clock);
}

const NODES: [usize; 3] = [1, 2, 3];

/// `details` against `docker inspect` on the nodes, then a rolling
/// `restart` of Consul and the stack under a leader sampler.
fn details_and_restart(lab: &Lab, clock: &mut Instant) {
    let names = ["cadvisor", "consul"];
    let out = lab.run(&["details", "-o", "json"]);
    assert_eq!(out.code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for n in NODES {
        let node = json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["node"] == format!("node{n}"))
            .unwrap_or_else(|| panic!("no node{n}: {out}"));
        let shown: Vec<String> = node["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| names.contains(&c["name"].as_str().unwrap()))
            .map(|c| {
                format!(
                    "{}: {} {}",
                    c["name"].as_str().unwrap(),
                    c["digest"].as_str().unwrap(),
                    c["started_at"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(shown, lab.inspected(n, &names), "node{n}: {out}");
    }
    eprintln!("{}", out.stdout);
    let human = lab.run(&["details"]);
    eprintln!("{human}");
    phase("details", clock);

    let before: Vec<Vec<String>> = NODES.iter().map(|&n| lab.inspected(n, &names)).collect();
    let leader_ip = lab
        .on_node(1, "curl -s http://127.0.0.1:8500/v1/status/leader")
        .trim()
        .trim_matches('"')
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    let sampler = "rm -f /root/samples /root/sample-stop; \
         while [ ! -e /root/sample-stop ]; do sleep 0.5 & p=$!; \
         r=$(docker ps -q --filter name=^consul$ --filter status=running | wc -l); \
         l=$(curl -s -m 0.4 -o /dev/null -w '%{http_code}' \
         -H \"X-Consul-Token: $(cat /mnt/arpanet-consul/arpanet/management.token)\" \
         'http://127.0.0.1:8500/v1/kv/probe?consistent'); \
         echo \"$(date +%s.%N) $r $l\" >> /root/samples; wait $p; done";
    for n in NODES {
        let started = Command::new("docker")
            .args([
                "exec",
                "-d",
                &format!("{}-node{n}", *NAME),
                "sh",
                "-c",
                sampler,
            ])
            .status()
            .unwrap();
        assert!(started.success());
    }
    std::thread::sleep(Duration::from_secs(2));
    let restart = lab.run(&[
        "restart",
        "consul",
        "cadvisor",
        "-e",
        "gate_settle_seconds=5",
    ]);
    eprintln!("{restart}");
    assert_eq!(restart.code, 0, "{restart}");
    std::thread::sleep(Duration::from_secs(2));
    let mut samples: Vec<(f64, usize, bool, bool)> = Vec::new();
    for n in NODES {
        lab.on_node(n, "touch /root/sample-stop");
    }
    std::thread::sleep(Duration::from_secs(1));
    for n in NODES {
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
    // Each node's latest sample, replayed in time order.
    let mut now = std::collections::BTreeMap::new();
    let (mut max_down, mut without, mut leaderless) = (0, None::<f64>, Vec::new());
    for &(at, node, running, leader) in &samples {
        now.insert(node, (running, leader));
        max_down = max_down.max(now.values().filter(|(r, _)| !r).count());
        match (now.values().any(|(r, l)| *r && *l), without) {
            (false, None) => without = Some(at),
            (true, Some(since)) => {
                leaderless.push(at - since);
                without = None;
            }
            _ => {}
        }
    }
    let longest = leaderless.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "restart consul cadvisor: {} samples, max servers down {max_down}, leaderless periods {:?} s",
        samples.len(),
        leaderless
            .iter()
            .map(|s| (s * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    assert!(samples.len() > 30, "{samples:?}");
    assert!(max_down <= 1, "{samples:?}");
    assert!(without.is_none(), "no leader at the end: {samples:?}");
    // One election, the leader's own restart (Consul 1.8 cannot hand its
    // leadership over first): 0.9, 2.5 and 1.7 s measured. (Not counted: a
    // read slower than 0.4 s on a busy machine looks leaderless too.)
    assert!(longest <= 5.0, "leaderless for {longest:.1} s");

    // Every container started anew; the leader's Consul last.
    let after: Vec<Vec<String>> = NODES.iter().map(|&n| lab.inspected(n, &names)).collect();
    let started = |line: &str| line.rsplit(' ').next().unwrap().to_owned();
    for (i, n) in NODES.iter().enumerate() {
        for (b, a) in before[i].iter().zip(&after[i]) {
            assert_ne!(started(b), started(a), "node{n}: {a} not restarted");
        }
    }
    let consul_started: Vec<(time::OffsetDateTime, usize)> = NODES
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let at = started(&after[i][1]);
            let parsed =
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("`{at}`: {e}"));
            (parsed, *n)
        })
        .collect();
    let last = consul_started.iter().max().unwrap().1;
    let inventory = std::fs::read_to_string(lab.dir.join("inventory.ini")).unwrap();
    assert!(
        inventory
            .lines()
            .any(|l| l.starts_with(&format!("node{last} ansible_host={leader_ip} "))),
        "the leader ({leader_ip}) was not restarted last: node{last} was; {consul_started:?}\n{inventory}"
    );
    let status = lab.until(&["status"], Duration::from_secs(60), |r| r.code == 0);
    assert_eq!(status.code, 0, "{status}");
    phase("restart consul and cadvisor", clock);
}

/// The text of a rendered page, for assertion messages: tags dropped,
/// the first 3000 characters.
fn visible(dom: &str) -> String {
    let text = regex::Regex::new(r"(?s)<script.*?</script>|<style.*?</style>|<[^>]*>")
        .unwrap()
        .replace_all(dom, " ");
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(3000).collect()
}

/// `ui consul` and `ui cadvisor` in headless Chromium: each page shows
/// what only the live UI, fed through the forward, can know (a service
/// registered now on another node, the nodes' names, a container started
/// now on the UI's node), and the same URL without the forward shows none
/// of it.
fn uis_in_a_browser(lab: &Lab) {
    use crate::ui::{artifacts, browse, Forward};
    let free_port = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port().to_string()
    };
    // A service registered on node2's agent: node1's UI knows it only
    // from the cluster's catalog.
    let service = format!("ui-probe-svc-{}", std::process::id());
    lab.exec_on_node(
        2,
        &[
            "docker",
            "exec",
            "-e",
            "CONSUL_HTTP_TOKEN_FILE=/consul/data/arpanet/linking.token",
            "consul",
            "consul",
            "services",
            "register",
            &format!("-name={service}"),
        ],
    );
    let port = free_port();
    let services = format!("http://127.0.0.1:{port}/ui/dc1/services");
    let nodes = format!("http://127.0.0.1:{port}/ui/dc1/nodes");
    let shows_service = |dom: &str| dom.contains(&service);
    let before = browse(&services, shows_service, Duration::from_secs(3), None);
    assert!(!before.contains(&service), "{}", visible(&before));

    let mut consul = Forward::start(lab.spawn(&["ui", "consul", "--port", &port]));
    assert_eq!(
        consul.first_line,
        format!("http://127.0.0.1:{port}/ui/"),
        "{}",
        consul.stderr()
    );
    let shot = artifacts().join("ui-consul.png");
    let dom = browse(
        &services,
        shows_service,
        Duration::from_secs(60),
        Some(&shot),
    );
    assert!(
        dom.contains(&service) && dom.contains("consul"),
        "no `{service}` on the services page:\n{}\n{}",
        visible(&dom),
        consul.stderr()
    );
    let all_nodes = |dom: &str| ["node1", "node2", "node3"].iter().all(|n| dom.contains(n));
    let dom = browse(&nodes, all_nodes, Duration::from_secs(60), None);
    for node in ["node1", "node2", "node3"] {
        assert!(
            dom.contains(node),
            "no `{node}` on the nodes page:\n{}",
            visible(&dom)
        );
    }
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(consul.interrupt(), Some(130), "{}", consul.stderr());
    assert!(
        consul.stderr().contains("consul UI of `node1`"),
        "{}",
        consul.stderr()
    );

    // cAdvisor on the first server (node1): a container started there now.
    let probe = format!("ui-probe-ctr-{}", std::process::id());
    let image = lab.exec_on_node(
        1,
        &[
            "docker",
            "inspect",
            "--format",
            "{{.Config.Image}}",
            "consul",
        ],
    );
    lab.exec_on_node(
        1,
        &[
            "docker",
            "run",
            "-d",
            "--name",
            &probe,
            "--entrypoint",
            "/bin/sleep",
            image.trim(),
            "600",
        ],
    );
    let names = lab.exec_on_node(1, &["docker", "ps", "--format", "{{.Names}}"]);
    let port = free_port();
    let containers = format!("http://127.0.0.1:{port}/containers/");
    // Debian's cAdvisor (the lab's) is built without its web pages: its
    // `/containers/` says so, and the containers are read from the JSON
    // its pages would show, in the same browser through the same port.
    let listing = format!("http://127.0.0.1:{port}/api/v1.3/docker/");
    let expected: Vec<&str> = names.lines().chain([probe.as_str()]).collect();
    let shows_all = |dom: &str| expected.iter().all(|name| dom.contains(name));
    let before = browse(
        &listing,
        |dom| dom.contains(&probe),
        Duration::from_secs(3),
        None,
    );
    assert!(!before.contains(&probe), "{}", visible(&before));
    let mut cadvisor = Forward::start(lab.spawn(&["ui", "cadvisor", "--port", &port]));
    assert_eq!(cadvisor.first_line, containers, "{}", cadvisor.stderr());
    let page = browse(
        &containers,
        |dom| dom.contains("cadvisor"),
        Duration::from_secs(30),
        None,
    );
    assert!(
        page.contains("cadvisor"),
        "{}\n{}",
        visible(&page),
        cadvisor.stderr()
    );
    let shot = artifacts().join("ui-cadvisor.png");
    let dom = browse(&listing, shows_all, Duration::from_secs(60), Some(&shot));
    for name in &expected {
        assert!(
            dom.contains(&format!("\"/{name}\"")) || dom.contains(&format!("\"{name}\"")),
            "no container `{name}` in cAdvisor's listing:\n{}\n{}",
            visible(&dom),
            cadvisor.stderr()
        );
    }
    eprintln!("screenshot: {}", shot.display());
    assert_eq!(cadvisor.interrupt(), Some(130), "{}", cadvisor.stderr());
    lab.exec_on_node(1, &["docker", "rm", "-f", &probe]);
    lab.exec_on_node(
        2,
        &[
            "docker",
            "exec",
            "-e",
            "CONSUL_HTTP_TOKEN_FILE=/consul/data/arpanet/linking.token",
            "consul",
            "consul",
            "services",
            "deregister",
            &format!("-id={service}"),
        ],
    );
}
