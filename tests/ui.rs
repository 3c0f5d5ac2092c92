//! `arpanet ui`: a local port forwarded over SSH to a node's web UI, tested
//! against real sshd hosts with a small HTTP server standing in for the UI
//! on the host's side (the lab test in `health_lab.rs` loads the real
//! Consul and cAdvisor UIs in a browser).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{spawn_arpanet, Cluster};

/// A running `arpanet ui`, its URL read from its first line on stdout;
/// killed when dropped.
pub struct Forward {
    child: Child,
    /// The first line on stdout (the URL, or the JSON object with `-o json`).
    pub first_line: String,
    stderr: Arc<Mutex<String>>,
}

impl Forward {
    /// The `arpanet ui` process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait up to a minute for `child` (an `arpanet ui`) to print its first
    /// line; panics with its stderr when it ends or stays silent.
    pub fn start(mut child: Child) -> Forward {
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(|l| l.ok()));
            // Keep reading so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let first_line = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "`arpanet ui` printed no URL\nstderr:\n{}",
                    stderr.lock().unwrap()
                )
            });
        Forward {
            child,
            first_line,
            stderr,
        }
    }

    /// The URL's port.
    pub fn port(&self, url: &str) -> u16 {
        url.strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a local URL: {url}"))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Ctrl-C (SIGINT); returns the exit code once it has ended.
    pub fn interrupt(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running after SIGINT");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET path` on `127.0.0.1:port`: the status code and the body.
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// A stand-in for a UI on `address`: every page answers `TOKEN PATH
/// together=BOOL`, where `together` says whether another page request was
/// open on another connection at the same time (each waits up to 5 s for
/// a partner), so two concurrent fetches prove two channels at once.
/// `/v1/status/leader` answers at once, as an agent's API.
struct UiServer {
    port: u16,
    token: String,
}

impl UiServer {
    fn start(address: &str) -> UiServer {
        let listener = TcpListener::bind((address, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let token = format!("ui-page-{}-{port}", std::process::id());
        let waiting = Arc::new((Mutex::new(0usize), Condvar::new()));
        let answer = token.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (waiting, token) = (waiting.clone(), answer.clone());
                std::thread::spawn(move || serve(stream, &waiting, &token));
            }
        });
        UiServer { port, token }
    }
}

fn serve(mut stream: TcpStream, waiting: &(Mutex<usize>, Condvar), token: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    let _ = reader.read_line(&mut request);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let Some(path) = request.split_whitespace().nth(1).map(str::to_owned) else {
        // A connection closed without a request (`ui cadvisor`'s probe).
        return;
    };
    let body = if path == "/v1/status/leader" {
        "\"127.0.0.1:8300\"".to_owned()
    } else {
        let (count, partner) = waiting;
        let mut arrived = count.lock().unwrap();
        *arrived += 1;
        partner.notify_all();
        let (arrived, _) = partner
            .wait_timeout_while(arrived, Duration::from_secs(5), |n| *n < 2)
            .unwrap();
        format!("{token} {path} together={}", *arrived >= 2)
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The addresses process `pid` listens on at TCP `port` (its socket inodes
/// in /proc/PID/fd, matched in
/// /proc/net/tcp and tcp6; hex as the kernel writes them).
fn listening_on(pid: u32, port: u16) -> Vec<String> {
    // Only the process's own sockets: another program on this machine
    // (a test host, a benchmark) may listen on the same port number on
    // another loopback address.
    let mut inodes = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.push(inode.to_owned());
                }
            }
        }
    }
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            // 0A: LISTEN.
            if *state == "0A"
                && local.ends_with(&format!(":{port:04X}"))
                && inodes.iter().any(|i| i == inode)
            {
                found.push(local.to_string());
            }
        }
    }
    found
}

#[test]
fn ui_forwards_concurrent_connections_each_on_its_own_channel_on_the_loopback_only() {
    let cluster = Cluster::start(1);
    // cAdvisor's stand-in on the host's own address, where `cadvisor_bind`
    // says it is published.
    let host_address = cluster.hosts[0].address.clone();
    let server = UiServer::start(&host_address);
    let inventory = cluster.inventory(&[
        ("cadvisor_bind", &host_address),
        ("cadvisor_port", &server.port.to_string()),
    ]);
    let inv = inventory.to_str().unwrap();
    // `--open` with a browser that cannot start: a warning, still served.
    let mut forward = Forward::start(spawn_arpanet(
        &cluster.home,
        cluster.dir(),
        &["ui", "cadvisor", "-i", inv, "--port", "0", "--open"],
        &[("BROWSER", "/nonexistent/browser")],
    ));
    let url = forward.first_line.clone();
    let port = forward.port(&url);
    assert!(url.ends_with("/containers/"), "{url}");

    // Two page loads at once: each answered, each seeing the other open.
    let fetches: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || get(port, "/containers/")))
        .collect();
    for fetch in fetches {
        let (status, body) = fetch.join().unwrap().expect("fetch through the forward");
        assert_eq!(
            (status, body),
            (200, format!("{} /containers/ together=true", server.token)),
            "{}",
            forward.stderr()
        );
    }

    // On 127.0.0.1 only: nothing on any other address, v4 or v6.
    assert_eq!(
        listening_on(forward.pid(), port),
        [format!("0100007F:{port:04X}")]
    );
    assert!(TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 2], port)),
        Duration::from_secs(2)
    )
    .is_err());

    let stderr = forward.stderr();
    assert!(
        stderr.contains("cadvisor UI of `node1`")
            && stderr.contains(&format!("{host_address}:{} there", server.port)),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: cannot open a browser (`/nonexistent/browser`:"),
        "{stderr}"
    );
    // Ctrl-C: 130, as `logs -f`, and the port is closed.
    assert_eq!(forward.interrupt(), Some(130), "{}", forward.stderr());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn ui_consul_goes_to_the_agents_port_prints_json_and_opens_the_browser() {
    let cluster = Cluster::start(2);
    // The agent's HTTP API listens on the node's loopback.
    let agent = UiServer::start("127.0.0.1");
    let inventory = cluster.inventory_with_groups(
        &[("servers", &[1]), ("clients", &[0])],
        &[("consul_port", &agent.port.to_string())],
    );
    let opened = cluster.dir().join("opened");
    let browser = cluster.write_file(
        "browser",
        &format!("#!/bin/sh\necho \"$@\" > {}\n", opened.display()),
    );
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let forward = Forward::start(spawn_arpanet(
        &cluster.home,
        cluster.dir(),
        &[
            "ui",
            "consul",
            "--open",
            "-o",
            "json",
            "--port",
            "0",
            "-i",
            inventory.to_str().unwrap(),
        ],
        &[("BROWSER", &format!("{} --new-window %s", browser.display()))],
    ));
    let shown: serde_json::Value = serde_json::from_str(&forward.first_line)
        .unwrap_or_else(|e| panic!("{e}: {}", forward.first_line));
    let url = shown["url"].as_str().unwrap().to_owned();
    let port = forward.port(&url);
    // The first server, not the first host listed.
    assert_eq!(shown["node"], "node2", "{shown}");
    assert_eq!(shown["remote"], format!("127.0.0.1:{}", agent.port));
    assert!(url.ends_with("/ui/"), "{url}");
    let (status, body) = get(port, "/ui/dc1/services").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.starts_with(&format!("{} /ui/dc1/services ", agent.token)),
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !opened.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap_or_default().trim(),
        format!("--new-window {url}"),
        "{}",
        forward.stderr()
    );
}

#[test]
fn ui_refuses_an_unknown_ui_and_a_taken_port_before_any_host_and_names_a_stopped_cadvisor() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[("cadvisor_port", "1")]);
    let inv = inventory.to_str().unwrap();
    let unknown = cluster.run(&["ui", "consol", "-i", inv]);
    assert_eq!(unknown.code, 5, "{unknown}");
    assert!(
        unknown
            .stderr
            .contains("there is no UI called `consol`\nhint: did you mean `consul`?"),
        "{unknown}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    // An unreachable host: the port is refused before it would be tried.
    let nowhere = cluster.write_file(
        "nowhere.ini",
        "node9 ansible_host=127.0.0.1 ansible_port=1\n",
    );
    let busy = cluster.run(&[
        "ui",
        "cadvisor",
        "--port",
        &port,
        "-i",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(busy.code, 5, "{busy}");
    assert!(
        busy.stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{busy}"
    );

    // Nothing on cAdvisor's port: said at once, with where to look.
    let stopped = cluster.run(&["ui", "cadvisor", "--port", "0", "-i", inv]);
    assert_eq!(stopped.code, 2, "{stopped}");
    assert!(
        stopped
            .stderr
            .contains("node1: cadvisor: nothing answers to 127.0.0.1:1 on the host"),
        "{stopped}"
    );
    assert!(
        stopped.stderr.contains("hint: is the stack running there?"),
        "{stopped}"
    );
}

/// Where the browser tests keep their screenshots: `target/test-artifacts/`.
pub fn artifacts() -> std::path::PathBuf {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("test-artifacts");
    std::fs::create_dir_all(&target).unwrap();
    target
}

/// Load `url` in headless Chromium (a fresh profile, no network of its
/// own beyond the page) and return the DOM it rendered once `ready` holds
/// for it, or after `limit`; with `screenshot`, save a picture of the page
/// (1280x900) there too.
///
/// Driven over the DevTools protocol on a pipe rather than with
/// `--dump-dom --virtual-time-budget`: Consul's UI keeps a blocking query
/// (a long poll) open, and virtual time stands still while a request is
/// pending, so the budget never runs out.
pub fn browse(
    url: &str,
    ready: impl Fn(&str) -> bool,
    limit: Duration,
    screenshot: Option<&std::path::Path>,
) -> String {
    use std::sync::atomic::{AtomicBool, Ordering};
    let started = Instant::now();
    let profile = tempfile::tempdir().unwrap();
    // The protocol goes over fds 3 (to Chromium) and 4 (from it): the
    // shell moves the child's stdin and stdout there.
    let script = r#"exec chromium "$@" 3<&0 4>&1 0</dev/null 1>&2"#;
    let mut child = Command::new("sh")
        .args(["-c", script, "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium (apt-get install chromium): {e}"));
    // A browser that stops answering is killed, so reads end.
    let done = Arc::new(AtomicBool::new(false));
    let (watch, pid) = (done.clone(), child.id().to_string());
    let watchdog = limit + Duration::from_secs(60);
    std::thread::spawn(move || {
        let deadline = Instant::now() + watchdog;
        while !watch.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                let _ = Command::new("kill").args(["-9", &pid]).status();
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut cdp = Cdp {
        input: child.stdin.take().unwrap(),
        output: BufReader::new(child.stdout.take().unwrap()),
        next: 0,
    };
    let target = cdp.call(None, "Target.createTarget", json!({"url": "about:blank"}));
    let target = target["targetId"].as_str().unwrap().to_owned();
    let session = cdp.call(
        None,
        "Target.attachToTarget",
        json!({"targetId": target, "flatten": true}),
    );
    let session = session["sessionId"].as_str().map(str::to_owned);
    let session = session.as_deref();
    cdp.call(session, "Page.navigate", json!({"url": url}));
    let deadline = Instant::now() + limit;
    let dom = loop {
        let value = cdp.call(
            session,
            "Runtime.evaluate",
            json!({"expression": "document.documentElement.outerHTML", "returnByValue": true}),
        );
        let dom = value["result"]["value"].as_str().unwrap_or("").to_owned();
        if ready(&dom) || Instant::now() > deadline {
            break dom;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if let Some(path) = screenshot {
        let shot = cdp.call(session, "Page.captureScreenshot", json!({"format": "png"}));
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or(""))
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
    cdp.call(None, "Browser.close", json!({}));
    let _ = child.wait();
    done.store(true, Ordering::Relaxed);
    eprintln!("chromium: {url} in {:.1}s", started.elapsed().as_secs_f64());
    dom
}

/// The DevTools protocol on Chromium's pipe: JSON messages ended by NUL.
struct Cdp {
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
    next: u64,
}

impl Cdp {
    /// Call `method` (on the page's `session`, or the browser's) and
    /// return its result, skipping the events in between.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        self.next += 1;
        let mut message = json!({"id": self.next, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.input
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("chromium gone before `{method}`: {e}"));
        loop {
            let mut raw = Vec::new();
            let n = self.output.read_until(0, &mut raw).unwrap_or(0);
            assert!(n > 0, "chromium closed its pipe waiting for `{method}`");
            if raw.last() == Some(&0) {
                raw.pop();
            }
            let reply: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            if reply["id"] == self.next {
                assert!(reply.get("error").is_none(), "`{method}`: {reply}");
                return reply["result"].clone();
            }
        }
    }
}
