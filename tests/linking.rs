//! Linking (the seed's "auto linking"): declared `service:`s in Consul,
//! `NAME.service.consul` from another node, `publish_env`, and the
//! watcher registering containers started by hand, on a 3-node lab (one
//! server, two clients) of real Debian nodes, real Consul and the lab's
//! busybox test service. Run with `ARPANET_LAB_TESTS=1`; the bad-input test
//! needs no lab.
//!
//! `ARPANET_TEST_KEEP_LAB=1` keeps the lab of a failed run to look into.
//!
//! What the nodes did is read with `docker exec` into the node containers
//! (Consul's HTTP API with the node's `curl` and the checkout's ACL
//! management token; the consul CLI with the node's linking token), not
//! through arpanet.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::lab::recap_changed;
use crate::support::{run_arpanet, Run};

static NAME: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_name("arpanet-linking"));
static SUBNET: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::support::lab_subnet(87));

/// The consul CLI in a node's agent container, with the node's linking
/// token (ACLs are on): it reads `env/` and the agent.
/// node3's Docker bridge address (daemon.json `bip`), not Docker's usual
/// 172.17.0.1: its containers reach Consul there.
const NODE3_BRIDGE: &str = "172.29.0.1";

const CONSUL_CLI: &str =
    "docker exec -e CONSUL_HTTP_TOKEN_FILE=/consul/data/arpanet/linking.token consul consul";

fn at(host: u8) -> String {
    crate::support::lab_address(&SUBNET, host)
}

struct Lab {
    dir: PathBuf,
    home: tempfile::TempDir,
}

impl Lab {
    fn up() -> Lab {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(crate::support::lab_name("arpanet-linking-lab"));
        let lab = Lab {
            dir,
            home: tempfile::tempdir().unwrap(),
        };
        let _ = lab.lab(&["down"]);
        let up = lab.lab(&["up", "--nodes", "3", "--servers", "1"]);
        assert_eq!(up.code, 0, "lab up failed:\n{up}");
        lab
    }

    fn lab(&self, args: &[&str]) -> Run {
        let (command, rest) = args.split_first().unwrap();
        let mut all = vec![
            "lab",
            command,
            "--dir",
            self.dir.to_str().unwrap(),
            "--name",
            NAME.as_str(),
        ];
        all.extend_from_slice(rest);
        self.arpanet(&all)
    }

    /// `arpanet COMMAND -i INVENTORY ARGS...`
    fn run(&self, command: &str, args: &[&str]) -> Run {
        let inventory = self.dir.join("inventory.ini");
        let mut all = vec![command, "-i", inventory.to_str().unwrap()];
        all.extend_from_slice(args);
        self.arpanet(&all)
    }

    fn arpanet(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_arpanet"))
            .args(args)
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("ARPANET_LAB_SUBNET", &*SUBNET)
            .env_remove("ARPANET_LAB_NAME")
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("run arpanet");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `sh -c COMMAND` inside lab node `n`: its exit status and output.
    fn try_on_node(&self, n: usize, command: &str) -> (bool, String) {
        let output = Command::new("docker")
            .args(["exec", &format!("{}-node{n}", *NAME), "sh", "-c", command])
            .output()
            .expect("docker exec");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    }

    fn on_node(&self, n: usize, command: &str) -> String {
        let (ok, out) = self.try_on_node(n, command);
        assert!(ok, "`{command}` on node{n} failed: {out}");
        out
    }

    /// Consul's HTTP API `path`, asked of node `n`'s agent with the
    /// checkout's ACL management token.
    fn consul_get(&self, n: usize, path: &str) -> serde_json::Value {
        let token = std::fs::read_to_string(self.dir.join("consul-tls/acl-management.token"))
            .unwrap_or_default();
        let out = self.on_node(
            n,
            &format!(
                "curl -sf -H 'X-Consul-Token: {}' 'http://127.0.0.1:8500{path}'",
                token.trim()
            ),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
    }

    /// `(address, port)` of every passing instance of `service`.
    fn passing(&self, service: &str) -> Vec<(String, u64)> {
        let rows = self.consul_get(1, &format!("/v1/health/service/{service}?passing"));
        let mut out: Vec<(String, u64)> = rows
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["Service"]["Address"].as_str().unwrap_or("").to_owned(),
                    r["Service"]["Port"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Every instance of `service` in the catalog, healthy or not.
    /// Whether an intention allows `source` to reach `destination`.
    fn allows(&self, source: &str, destination: &str) -> bool {
        self.consul_get(1, "/v1/connect/intentions")
            .as_array()
            .is_some_and(|all| {
                all.iter().any(|i| {
                    i["SourceName"] == source
                        && i["DestinationName"] == destination
                        && i["Action"] == "allow"
                })
            })
    }

    /// POST `body` to the Consul HTTP API `path` of node `n`'s agent (with
    /// the node's curl: the agent's busybox `wget` cannot POST), with the
    /// checkout's ACL management token.
    fn post_to_consul(&self, n: usize, path: &str, body: &str) {
        use std::io::Write;
        let token = std::fs::read_to_string(self.dir.join("consul-tls/acl-management.token"))
            .unwrap_or_default();
        let mut child = Command::new("docker")
            .args(["exec", "-i", &format!("{}-node{n}", *NAME)])
            .args(["curl", "-sSf", "-X", "POST", "--data-binary", "@-"])
            .args(["-H", &format!("X-Consul-Token: {}", token.trim())])
            .arg(format!("http://127.0.0.1:8500{path}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker exec");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "POST {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn catalog(&self, service: &str) -> serde_json::Value {
        self.consul_get(1, &format!("/v1/catalog/service/{service}"))
    }

    /// `nslookup ARGS` from a fresh container on node 3.
    fn nslookup(&self, args: &str) -> String {
        let image = format!("{}:5000/arpanet/testsvc:1", at(2));
        self.try_on_node(3, &format!("docker run --rm {image} nslookup {args}"))
            .1
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // `ARPANET_TEST_KEEP_LAB=1` keeps a failed run's lab to look at
        // (`arpanet lab down --dir DIR --name NAME` removes it).
        if std::thread::panicking() && std::env::var_os("ARPANET_TEST_KEEP_LAB").is_some() {
            return;
        }
        let _ = self.lab(&["down"]);
    }
}

/// Wait up to `limit` for `ok`; how long it took, or `None`.
fn within(limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ok() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// The `web` entry of node `n`'s stack: the busybox httpd on 8080,
/// published on 8081, checked over HTTP every 2 s, one env key published.
fn web_stack(secret: &str, tag: &str) -> String {
    format!(
        r#"stack:
  - name: web
    image: "{{{{ lab_testsvc_image }}}}"
    command: ["sh", "-c", "hostname >/www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
    ports: ["8081:8080"]
    env:
      COLOR: blue
      SECRET_TOKEN: "{secret}"
    publish_env: [COLOR]
    service:
      tags: [{tag}]
      check: {{http: /, interval: 2s, timeout: 1s}}
"#
    )
}

#[test]
fn services_are_announced_found_by_name_and_removed() {
    if std::env::var("ARPANET_LAB_TESTS").ok().as_deref() != Some("1") {
        eprintln!("note: skipping the linking test: set ARPANET_LAB_TESTS=1");
        return;
    }
    let _turn = crate::support::lab_turn();
    let lab = Lab::up();
    // node3's Docker bridge is not Docker's usual 172.17.0.1 (daemon.json's
    // `bip`, as on a network where that range is taken): its containers
    // resolving `web` below (step 2) through Consul on that bridge shows
    // `docker_bridge_ip` was read from the node, not assumed.
    let bridge = lab.on_node(
        3,
        &format!(
            "printf '{{\"bip\": \"{NODE3_BRIDGE}/16\"}}\\n' >/etc/docker/daemon.json && \
             systemctl restart docker && ip -4 -o addr show dev docker0"
        ),
    );
    assert!(bridge.contains(&format!(" {NODE3_BRIDGE}/16 ")), "{bridge}");
    let secret = format!("tok-{}-{}", std::process::id(), rand_suffix());
    for n in [1, 2] {
        lab.write(&format!("host_vars/node{n}.yml"), &web_stack(&secret, "v1"));
    }
    // node3 runs a client of `web` through Connect: 127.0.0.1:9191.
    lab.write(
        "host_vars/node3.yml",
        r#"stack:
  - name: client
    image: "{{ lab_testsvc_image }}"
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]
    upstreams: [{service: web, port: 9191}]
"#,
    );

    // 1. bootstrap: `web` on node1 and node2 is one service with two
    //    healthy instances, each at its node's address and published port.
    let boot = lab.run("run", &["bootstrap"]);
    assert_eq!(boot.code, 0, "{boot}");
    assert!(!boot.stdout.contains(&secret) && !boot.stderr.contains(&secret));
    let both = vec![(at(11), 8081), (at(12), 8081)];
    assert!(
        within(Duration::from_secs(20), || lab.passing("web") == both).is_some(),
        "web instances: {:?}",
        lab.passing("web")
    );
    assert_eq!(
        lab.catalog("web")[0]["ServiceTags"],
        serde_json::json!(["v1"])
    );

    // 2. DNS from a container on the third node: both addresses, and SRV
    //    gives the port.
    let dns = lab.on_node(3, "cat /etc/default/docker");
    assert!(dns.contains(&format!("--dns {NODE3_BRIDGE} ")), "{dns}");
    let a = lab.nslookup("web.service.consul");
    assert!(a.contains(&at(11)) && a.contains(&at(12)), "{a}");
    let srv = lab.nslookup("-type=SRV web.service.consul");
    assert!(srv.contains(" 8081 "), "{srv}");

    // 2b. `arpanet services` lists both instances, healthy, as the stack's.
    let listed = lab.run("services", &["--output", "json"]);
    assert_eq!(listed.code, 0, "{listed}");
    let rows: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let mut web: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] == "web")
        .map(|r| {
            format!(
                "{} {}:{} {} {}",
                r["node"], r["address"], r["port"], r["health"], r["source"]
            )
        })
        .collect();
    web.sort();
    assert_eq!(
        web,
        [
            format!("\"node1\" \"{}\":8081 \"passing\" \"stack\"", at(11)),
            format!("\"node2\" \"{}\":8081 \"passing\" \"stack\"", at(12)),
        ],
        "{listed}"
    );

    // 3. publish_env: the named key, not the others, per node.
    let kv = lab.on_node(3, &format!("{CONSUL_CLI} kv get -recurse arpanet/env/web/"));
    assert!(kv.contains("arpanet/env/web/node1/COLOR:blue"), "{kv}");
    assert!(kv.contains("arpanet/env/web/node2/COLOR:blue"), "{kv}");
    assert!(
        !kv.contains("SECRET_TOKEN") && !kv.contains(&secret),
        "{kv}"
    );

    // 3b. upstreams: inside `client` on node3, 127.0.0.1:9191 reaches a
    //     `web` instance on node1 or node2 through the Connect proxies.
    // (busybox-static's wget crashes on lookups; nc it is, its stdin held
    // open: the built-in proxy drops a half-closed connection.)
    let through = |container: &str, port: u16| {
        let (_, out) = lab.try_on_node(
            3,
            &format!(
                "docker exec {container} sh -c \"(printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | nc 127.0.0.1 {port}\" 2>&1"
            ),
        );
        (out.contains("200 OK"), out)
    };
    let reached = within(Duration::from_secs(45), || through("client", 9191).0);
    assert!(
        reached.is_some(),
        "{}\n{}\n{}\n{}\n{}",
        through("client", 9191).1,
        lab.try_on_node(3, "docker logs client-upstreams 2>&1 | tail -n 20")
            .1,
        lab.try_on_node(1, "docker ps -a --format '{{.Names}} {{.Status}}'; docker logs web-proxy 2>&1 | tail -n 30").1,
        lab.consul_get(1, "/v1/health/connect/web"),
        lab.consul_get(1, "/v1/connect/intentions")
    );
    // An identity with no declared upstream is refused by the intentions:
    // its own proxy listens, but the connection is closed. (It is given
    // the node's linking token, so that the intentions, not the ACLs,
    // are what refuse it.)
    let consul_image = format!("{}:5000/arpanet/consul:1.8.7", at(2));
    let image = format!("{}:5000/arpanet/testsvc:1", at(2));
    lab.on_node(
        3,
        &format!(
            "docker run -d --name intruder {image} sh -c \"trap 'exit 0' TERM; sleep 1000000 & wait\" && \
             docker run -d --name intruder-proxy --network container:intruder \
             -v /mnt/arpanet-consul/arpanet/linking.token:/t:ro {consul_image} \
             connect proxy -service intruder -upstream web:9292 -http-addr {NODE3_BRIDGE}:8500 -token-file /t",
        ),
    );
    let listening = within(Duration::from_secs(30), || {
        !through("intruder", 9292).1.contains("refused")
    });
    assert!(listening.is_some(), "{}", through("intruder", 9292).1);
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..3 {
        let (ok, out) = through("intruder", 9292);
        assert!(!ok, "the intruder reached web: {out}");
    }
    let denied = [1, 2].iter().any(|n| {
        lab.on_node(*n, "docker logs web-proxy 2>&1")
            .contains("authz call denied")
    });
    assert!(denied, "no web sidecar logged the intention's denial");
    assert!(through("client", 9191).0);
    // Between nodes it is TLS: the sidecar's port refuses plain HTTP.
    let sidecar = lab.catalog("web-sidecar-proxy");
    let sidecar_port = sidecar[0]["ServicePort"].as_u64().unwrap();
    let plain = lab.try_on_node(
        3,
        &format!(
            "curl -s --max-time 3 http://{}:{sidecar_port}/ 2>&1; echo rc=$?",
            at(11)
        ),
    );
    assert!(
        !plain.1.contains("rc=0") && !plain.1.contains("refused"),
        "the sidecar answered plain HTTP (or nothing listens): {}",
        plain.1
    );
    let tls = lab.try_on_node(
        3,
        &format!(
            "curl -vsk --max-time 5 https://{}:{sidecar_port}/ 2>&1 || true",
            at(11)
        ),
    );
    assert!(
        tls.1.contains("Server hello"),
        "no TLS server there: {}",
        tls.1
    );

    // 4. a second run changes nothing.
    let again = lab.run("run", &["stack"]);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(recap_changed(&again), [0, 0, 0], "{again}");

    // 5. one instance stopped: out of DNS within the check interval + 5 s.
    lab.on_node(2, "docker stop web");
    let gone = within(Duration::from_secs(7), || {
        let a = lab.nslookup("web.service.consul");
        a.contains(&at(11)) && !a.contains(&at(12))
    });
    assert!(gone.is_some(), "{}", lab.nslookup("web.service.consul"));
    // The client still reaches `web`, on the instance left.
    for _ in 0..5 {
        let (ok, out) = through("client", 9191);
        assert!(ok, "with one instance down: {out}");
    }
    lab.on_node(2, "docker start web");
    assert!(within(Duration::from_secs(10), || lab.passing("web") == both).is_some());

    // 6. a changed declaration updates the registration, in place.
    lab.write("host_vars/node1.yml", &web_stack(&secret, "v2"));
    let changed = lab.run("run", &["stack", "--limit", "node1"]);
    assert_eq!(recap_changed(&changed), [1], "{changed}");
    assert!(changed.stdout.contains("updated web"), "{changed}");
    let tags: Vec<String> = lab
        .catalog("web")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ServiceTags"].to_string())
        .collect();
    assert!(tags.contains(&"[\"v2\"]".to_owned()), "{tags:?}");
    // A run on node1 alone keeps the intention node3's stack declares.
    assert!(
        lab.allows("client", "web"),
        "{}",
        lab.consul_get(1, "/v1/connect/intentions")
    );

    // 7. the watcher: a container started by hand is in the catalog
    //    within 5 s, with its published port, and gone within 5 s of
    //    `docker stop`; with SERVICE_IGNORE it never appears; multi-port
    //    containers with TCP and TTL checks.
    let quick = "sh -c \"trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait\"";
    lab.on_node(
        3,
        &format!(
            "docker run -d -P -e SERVICE_NAME=handmade -e SERVICE_TAGS=a,b \
             -e SERVICE_CHECK_HTTP=/ -e SERVICE_CHECK_INTERVAL=2s \
             -e COLOR=red -e TOKEN={secret} -l arpanet.publish_env=COLOR \
             --name hand {image} {quick}"
        ),
    );
    let published = lab.on_node(3, "docker port hand 8080/tcp | head -n 1");
    let port: u64 = published
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("`docker port hand`: {published}"));
    let seen = within(Duration::from_secs(5), || {
        lab.catalog("handmade")
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert!(
        seen.is_some(),
        "{}",
        lab.on_node(3, "journalctl -u registrator --no-pager | tail -n 20")
    );
    let row = &lab.catalog("handmade")[0];
    assert_eq!(row["ServiceAddress"], at(13).as_str());
    assert_eq!(row["ServicePort"], port);
    assert_eq!(row["ServiceTags"], serde_json::json!(["a", "b"]));
    // Its SERVICE_CHECK_HTTP check runs and passes; its labelled env key
    // is published, the other is not.
    let healthy = within(Duration::from_secs(10), || {
        lab.passing("handmade") == [(at(13), port)]
    });
    assert!(
        healthy.is_some(),
        "{}",
        lab.consul_get(1, "/v1/health/checks/handmade")
    );
    let kv = lab.on_node(
        3,
        &format!("{CONSUL_CLI} kv get -recurse arpanet/env/handmade/"),
    );
    assert_eq!(kv.trim(), "arpanet/env/handmade/node3/COLOR:red");
    lab.on_node(3, "docker stop hand");
    let stopped = within(Duration::from_secs(5), || {
        lab.catalog("handmade")
            .as_array()
            .is_some_and(|a| a.is_empty())
    });
    assert!(
        stopped.is_some(),
        "handmade still registered after docker stop"
    );
    let kv = lab.on_node(
        3,
        &format!("{CONSUL_CLI} kv get -recurse arpanet/env/handmade/ || true"),
    );
    assert!(!kv.contains("COLOR"), "{kv}");
    lab.on_node(
        3,
        &format!(
            "docker run -d -P -e SERVICE_NAME=hidden -e SERVICE_IGNORE=1 --name hidden {image}"
        ),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lab.catalog("hidden"), serde_json::json!([]));

    // A container with two published ports is two services, each named by
    // its SERVICE_<port>_NAME, one with a TCP check (it passes: httpd
    // accepts), the other with a TTL check (critical until something
    // reports: nobody does); both go with the container.
    lab.on_node(
        3,
        &format!(
            "docker run -d -p 8080 -p 9090 -e SERVICE_8080_NAME=front \
             -e SERVICE_9090_NAME=back -e SERVICE_8080_CHECK_TCP=true \
             -e SERVICE_9090_CHECK_TTL=30s -e SERVICE_CHECK_INTERVAL=2s \
             --name multi {image} sh -c 'httpd -p 8080 -h /www; httpd -f -p 9090 -h /www'"
        ),
    );
    let host_port = |port: u16| -> u64 {
        let published = lab.on_node(3, &format!("docker port multi {port}/tcp | head -n 1"));
        published
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("`docker port multi {port}`: {published}"))
    };
    let (front, back) = (host_port(8080), host_port(9090));
    let front_up = within(Duration::from_secs(10), || {
        lab.passing("front") == [(at(13), front)]
    });
    assert!(
        front_up.is_some(),
        "{}",
        lab.consul_get(1, "/v1/health/checks/front")
    );
    let checks = lab.consul_get(1, "/v1/health/checks/front");
    assert_eq!(checks[0]["Type"], "tcp", "{checks}");
    // The watcher registers the two ports one after the other: `back` may
    // reach the catalog a moment after `front` passes.
    let listed = within(Duration::from_secs(10), || {
        lab.catalog("back")
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    assert!(listed.is_some(), "`back` never reached the catalog");
    let row = &lab.catalog("back")[0];
    assert_eq!(row["ServicePort"], back, "{row}");
    let checks = lab.consul_get(1, "/v1/health/checks/back");
    assert_eq!(
        (&checks[0]["Type"], &checks[0]["Status"]),
        (&serde_json::json!("ttl"), &serde_json::json!("critical")),
        "{checks}"
    );
    assert_eq!(lab.passing("back"), []);
    lab.on_node(3, "docker rm -f multi");
    let gone = within(Duration::from_secs(5), || {
        ["front", "back"]
            .iter()
            .all(|s| lab.catalog(s).as_array().is_some_and(|a| a.is_empty()))
    });
    assert!(
        gone.is_some(),
        "front or back still registered after docker rm"
    );

    // 8. the watcher after a node restart: back, and resynced (a container
    //    that came back is registered; one that did not is gone).
    lab.on_node(
        3,
        &format!(
            "docker run -d -P -e SERVICE_NAME=survivor --restart always --name survivor {image}"
        ),
    );
    lab.on_node(
        3,
        &format!(
            "docker start hand && docker run -d -P -e SERVICE_NAME=mortal --name mortal {image}"
        ),
    );
    assert!(within(Duration::from_secs(5), || {
        lab.catalog("mortal")
            .as_array()
            .is_some_and(|a| a.len() == 1)
            && lab
                .catalog("survivor")
                .as_array()
                .is_some_and(|a| a.len() == 1)
    })
    .is_some());
    let node3 = format!("{}-node3", *NAME);
    let restarted = Command::new("docker")
        .args(["restart", &node3])
        .output()
        .unwrap();
    assert!(restarted.status.success());
    let resynced = within(Duration::from_secs(90), || {
        let (ok, _) = lab.try_on_node(3, "systemctl is-active registrator");
        ok && lab
            .try_on_node(3, &format!("{CONSUL_CLI} info >/dev/null"))
            .0
            && lab
                .catalog("survivor")
                .as_array()
                .is_some_and(|a| a.len() == 1)
            && lab
                .catalog("mortal")
                .as_array()
                .is_some_and(|a| a.is_empty())
    });
    assert!(
        resynced.is_some(),
        "survivor: {} mortal: {}\n{}",
        lab.catalog("survivor"),
        lab.catalog("mortal"),
        lab.try_on_node(3, "journalctl -u registrator --no-pager | tail -n 20")
            .1
    );
    // `hand` (started again before the restart, without a restart policy)
    // is gone, and so is the env it published.
    let kv = within(Duration::from_secs(10), || {
        !lab.on_node(
            1,
            &format!("{CONSUL_CLI} kv get -recurse arpanet/env/handmade/ || true"),
        )
        .contains("COLOR")
    });
    assert!(kv.is_some(), "hand's env outlived it");

    // 9. the entry removed from node2: its instance deregistered, its env gone.
    lab.write("host_vars/node2.yml", "stack: []\n");
    let removed = lab.run("run", &["stack", "--limit", "node2"]);
    assert_eq!(removed.code, 0, "{removed}");
    assert!(removed.stdout.contains("deregistered web"), "{removed}");
    let nodes: Vec<String> = lab
        .catalog("web")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Node"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(nodes, ["node1"]);
    let kv = lab.on_node(3, &format!("{CONSUL_CLI} kv get -recurse arpanet/env/web/"));
    assert!(!kv.contains("node2"), "{kv}");

    // 10. node3's upstream dropped: the intention that let `client` reach
    //     `web` goes (it would let a container calling itself `client`
    //     in); the default deny stays.
    lab.write(
        "host_vars/node3.yml",
        r#"stack:
  - name: client
    image: "{{ lab_testsvc_image }}"
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]
"#,
    );
    assert!(lab.allows("client", "web"));
    // A node taken out of the inventory left its record and an intention
    // only it declared: both go too.
    lab.on_node(
        1,
        &format!(r#"{CONSUL_CLI} kv put arpanet/upstreams/ghost '[["ghost-app","web"]]'"#),
    );
    let intention = serde_json::json!({
        "SourceName": "ghost-app",
        "DestinationName": "web",
        "Action": "allow",
        "Description": "arpanet: the stack's declared upstreams",
    });
    lab.post_to_consul(1, "/v1/connect/intentions", &intention.to_string());
    assert!(lab.allows("ghost-app", "web"));
    let dropped = lab.run("run", &["stack", "--limit", "node3"]);
    assert_eq!(dropped.code, 0, "{dropped}");
    for said in [
        "intention client → web removed",
        "upstreams of ghost forgotten",
        "intention ghost-app → web removed",
    ] {
        assert!(dropped.stdout.contains(said), "no `{said}`:\n{dropped}");
    }
    assert!(!lab.allows("ghost-app", "web"));
    let (kept, _) = lab.try_on_node(1, &format!("{CONSUL_CLI} kv get arpanet/upstreams/ghost"));
    assert!(!kept, "the record of a node not in the inventory is kept");
    let left = lab.consul_get(1, "/v1/connect/intentions");
    assert!(!lab.allows("client", "web"), "{left}");
    assert!(
        left.as_array()
            .unwrap()
            .iter()
            .any(|i| i["SourceName"] == "*"
                && i["DestinationName"] == "*"
                && i["Action"] == "deny"),
        "{left}"
    );

    // 11. `upgrade` puts the watcher this version installs in place and
    //     restarts it: a script changed on the node is replaced.
    let pid = |lab: &Lab| lab.on_node(3, "systemctl show -p MainPID --value registrator");
    let marker = format!("# changed-by-hand-{}", rand_suffix());
    lab.on_node(
        3,
        &format!("echo '{marker}' >> /usr/local/lib/arpanet/watcher.sh"),
    );
    let before = pid(&lab);
    let upgraded = lab.run("run", &["upgrade", "--limit", "node3"]);
    assert_eq!(upgraded.code, 0, "{upgraded}");
    let script = lab.on_node(3, "cat /usr/local/lib/arpanet/watcher.sh");
    assert!(
        !script.contains(&marker),
        "the watcher script was kept:\n{upgraded}"
    );
    let after = pid(&lab);
    assert!(
        after.trim() != before.trim() && after.trim() != "0",
        "the watcher was not restarted (MainPID {before} → {after}):\n{upgraded}"
    );
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// Bad `service`/`upstreams`/`publish_env` in a `stack`: exit 5 with the
/// entry and key named, before any host is contacted (the one host listens
/// nowhere: a run that got as far as connecting would find it unreachable
/// when taking the cluster's lock there, exit 4).
#[test]
fn bad_linking_declarations_are_refused_before_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("hosts"),
        "[servers]\nn1 ansible_host=127.0.0.1 ansible_port=1\n[all:vars]\nFLEETSTREET_IMAGE=x/fleetstreet\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("group_vars")).unwrap();
    // Each error points at the file, line and column of the bad part
    // (`at`: the text there), computed from the file written.
    let refused = |stack: &str, says: &[&str], at: &str| {
        let text = format!("stack:\n{stack}");
        std::fs::write(d.join("group_vars/all.yml"), &text).unwrap();
        let run = run_arpanet(
            d,
            d,
            &["run", "-i", "hosts", "stack", "--timeout", "1"],
            &[],
        );
        assert_eq!(run.code, 5, "{run}");
        for s in says {
            assert!(run.stderr.contains(s), "expected `{s}`:\n{run}");
        }
        let (line, column) = text
            .lines()
            .enumerate()
            .find_map(|(n, l)| l.find(at).map(|c| (n + 1, c + 1)))
            .unwrap();
        let place = format!("group_vars/all.yml:{line}:{column}: bad `stack`");
        assert!(run.stderr.contains(&place), "expected `{place}`:\n{run}");
    };
    let web = "  - name: web\n    image: x\n    ports: [\"8081:8080\"]\n";
    refused(
        &format!("{web}    service: {{check: {{intervall: 5s, http: /}}}}\n"),
        &[
            "stack entry `web`: service.check.intervall",
            "did you mean `interval`",
        ],
        "intervall",
    );
    refused(
        &format!("{web}    service: {{check: {{interval: 5s}}}}\n"),
        &["service.check", "has no target"],
        "check",
    );
    refused(
        &format!("{web}    service: {{port: 9090}}\n"),
        &["does not publish port 9090"],
        "port: 9090",
    );
    refused(
        &format!("{web}    upstreams: [{{service: db, port: 5432, via: x}}]\n"),
        &["upstreams[0].via"],
        "via",
    );
    refused(
        &format!("{web}    env: {{A: b}}\n    service: {{}}\n    publish_env: [B]\n"),
        &["`B` is not in the entry's `env`"],
        "publish_env",
    );

    // host_vars/ wins over group_vars/: the error points at the host's file.
    std::fs::create_dir_all(d.join("host_vars")).unwrap();
    let mine = format!("stack:\n{web}    service: {{chekc: {{tcp: 8080}}}}\n");
    std::fs::write(d.join("host_vars/n1.yml"), &mine).unwrap();
    let run = run_arpanet(
        d,
        d,
        &["run", "-i", "hosts", "stack", "--timeout", "1"],
        &[],
    );
    assert_eq!(run.code, 5, "{run}");
    let line = mine.lines().position(|l| l.contains("chekc")).unwrap() + 1;
    let place = format!("host_vars/n1.yml:{line}:");
    assert!(run.stderr.contains(&place), "expected `{place}`:\n{run}");
    std::fs::remove_file(d.join("host_vars/n1.yml")).unwrap();

    // An upstream nobody declares: a warning, and the run goes on to the
    // hosts: here to taking the cluster's lock on the boot server, which is
    // unreachable (a built-in always takes the lock; exit 4, a host
    // fault, see `cluster::lock`).
    std::fs::write(
        d.join("group_vars/all.yml"),
        format!("stack:\n{web}    upstreams: [{{service: db, port: 5432}}]\n"),
    )
    .unwrap();
    let run = run_arpanet(
        d,
        d,
        &["run", "-i", "hosts", "stack", "--timeout", "1"],
        &[],
    );
    assert_eq!(run.code, 4, "{run}");
    assert!(
        run.stderr.contains("cannot take the cluster lock") && run.stderr.contains("n1"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("upstream `db` is declared by no stack entry"),
        "{run}"
    );
    // The 2014 variables of the linking containers say what does their job.
    assert!(
        run.stderr
            .contains("`FLEETSTREET_IMAGE` (`fleetstreet_image`) is ignored")
            && run.stderr.contains("`publish_env:`"),
        "{run}"
    );
}
