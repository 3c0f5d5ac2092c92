//! Host-key checking held against the real OpenSSH client: for each fixture
//! (a user and a global known_hosts file, built at run time from real sshd
//! host keys, CA-signed host certificates included) and each mode (`yes`,
//! `accept-new`), `ssh` and arpanet's `SshConnector` connect with their own
//! copies of the same files, and must agree on whether the host is accepted
//! and on what the user file holds afterwards, byte for byte. Nothing here
//! states what the answer should be: `ssh` decides.
//!
//! The servers: `multi` offers ed25519, ecdsa and RSA keys and also listens
//! on port 22 of a spare loopback address (for the `host` rather than
//! `[host]:port` cases); `ed-only` and `rsa-only` hold an RSA and an
//! ed25519 key but offer one type (`HostKeyAlgorithms`); `cert`, `cert-wrong`,
//! `cert-expired` and `cert-any` present an ecdsa host certificate (signed
//! for their address, for another name, expired, for any name) besides
//! their plain ed25519 key.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use arpanet::error::Error;
use arpanet::ssh::SshConnector;
use arpanet::transport::{Connector, HostKeyChecking, Target};

use crate::support::{keygen, keygen_typed, Cluster, SshdHost, TEST_USER};

/// Fixtures checked at once: each opens up to one connection at a time.
const WORKERS: usize = 8;

/// Loopback addresses tried for the port-22 listener, above the harness's
/// range (127.0.0.2 to .250).
const PORT_22_ADDRESSES: [&str; 4] = ["127.0.0.251", "127.0.0.252", "127.0.0.253", "127.0.0.254"];

/// `ssh-keygen` with `args`; panics with its output on failure.
fn ssh_keygen(args: &[&str]) -> String {
    let out = Command::new("ssh-keygen")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen: {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sign `key` (its `.pub`) as a host certificate with the CA at `ca`.
fn sign_host_key(ca: &Path, key: &Path, principals: Option<&str>, validity: Option<&str>) {
    let mut args = vec!["-q", "-s", ca.to_str().unwrap(), "-h", "-I", "arpanet-test"];
    if let Some(principals) = principals {
        args.extend(["-n", principals]);
    }
    if let Some(validity) = validity {
        args.extend(["-V", validity]);
    }
    let public = key.with_extension("pub");
    args.push(public.to_str().unwrap());
    ssh_keygen(&args);
}

/// `text` with every host field hashed, as `ssh-keygen -H` writes it.
fn hashed(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    ssh_keygen(&["-q", "-H", "-f", path.to_str().unwrap()]);
    fs::read_to_string(&path).unwrap()
}

/// One sshd and the keys it holds.
struct Server {
    /// `None` for a second address of another server's sshd.
    host: Option<SshdHost>,
    /// The address and port the fixtures connect to.
    address: String,
    port: u16,
    ed25519: String,
    rsa: String,
    ecdsa: String,
}

impl Server {
    /// `[address]:port`, or `address` on port 22.
    fn name(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }
}

/// Start an sshd with an extra RSA and ecdsa host key (kept in `dir`), and
/// `extra` config lines, which may name `{ecdsa}` (the ecdsa key's path).
fn server(dir: &Path, tag: &str, authorized_keys: &Path, extra: &str) -> Server {
    let rsa_file = dir.join(format!("{tag}_rsa"));
    let ecdsa_file = dir.join(format!("{tag}_ecdsa"));
    let rsa = keygen_typed(&rsa_file, "rsa", "");
    let ecdsa = keygen_typed(&ecdsa_file, "ecdsa", "");
    let config = format!(
        "HostKey {}\nHostKey {}\nMaxStartups 100\n{}",
        rsa_file.display(),
        ecdsa_file.display(),
        extra.replace("{ecdsa}", &ecdsa_file.display().to_string())
    );
    let host = SshdHost::start_with_config(authorized_keys, &config);
    Server {
        address: host.address.clone(),
        port: host.port,
        ed25519: host.host_key.clone(),
        rsa,
        ecdsa,
        host: Some(host),
    }
}

/// A free loopback address with nothing listening on port 22.
fn free_port_22_address() -> &'static str {
    PORT_22_ADDRESSES
        .iter()
        .copied()
        .find(|address| {
            TcpStream::connect_timeout(
                &format!("{address}:22").parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_err()
        })
        .expect("every spare loopback address already has something on port 22")
}

struct Fixture {
    name: &'static str,
    server: usize,
    /// The user file's content; `None`: it does not exist.
    user: Option<String>,
    global: String,
}

/// What one client did with one fixture in one mode.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    accepted: bool,
    user_file: Option<String>,
}

impl Outcome {
    fn short(&self) -> &'static str {
        if self.accepted {
            "accepted"
        } else {
            "refused"
        }
    }
}

fn copy_fixture(fixture: &Fixture, dir: &Path) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let user = dir.join("known_hosts");
    let global = dir.join("ssh_known_hosts");
    if let Some(text) = &fixture.user {
        fs::write(&user, text).unwrap();
    }
    fs::write(&global, &fixture.global).unwrap();
    (user, global)
}

fn read_optional(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

struct Client<'a> {
    key: &'a Path,
    home: &'a Path,
    runtime: &'a tokio::runtime::Runtime,
}

impl Client<'_> {
    fn ssh(&self, server: &Server, mode: &str, user: &Path, global: &Path) -> Outcome {
        let out = Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
            .arg(format!("StrictHostKeyChecking={mode}"))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", user.display()))
            .arg("-o")
            .arg(format!("GlobalKnownHostsFile={}", global.display()))
            .args(["-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-i"])
            .arg(self.key)
            .args(["-p", &server.port.to_string()])
            .arg(format!("{TEST_USER}@{}", server.address))
            .arg("true")
            .env("HOME", self.home)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ssh: {e}"));
        Outcome {
            accepted: out.status.success(),
            user_file: read_optional(user),
        }
    }

    fn arpanet(&self, server: &Server, mode: &str, user: &Path, global: &Path) -> Outcome {
        let target = Target {
            name: "fixture".into(),
            address: server.address.clone(),
            port: server.port,
            user: TEST_USER.into(),
            identity_files: vec![self.key.to_path_buf()],
            known_hosts: user.to_path_buf(),
            extra_known_hosts: vec![global.to_path_buf()],
            host_key_checking: match mode {
                "yes" => HostKeyChecking::Strict,
                _ => HostKeyChecking::AcceptNew,
            },
            host_key_alias: None,
            identities_only: false,
            connect_timeout: Duration::from_secs(10),
            keepalive: Default::default(),
            reconnect: Duration::ZERO,
            proxy: Default::default(),
            session: crate::support::sshd::session_mode(),
            local: false,
        };
        // Only a refused host key counts as refused: another failure (a
        // handshake that timed out on a loaded machine) is tried again.
        let accepted = self.runtime.block_on(async {
            let connector = SshConnector::new(4).with_agent(None).with_passphrase(None);
            let mut attempt = 0;
            loop {
                attempt += 1;
                match connector.connect(&target).await {
                    Ok(transport) => {
                        transport.close().await;
                        break true;
                    }
                    Err(e) if e.to_string().contains("host key") => break false,
                    Err(e) if attempt < 3 => eprintln!("retrying after: {e}"),
                    Err(e) => panic!("not a host key verdict after {attempt} attempts: {e}"),
                }
            }
        });
        Outcome {
            accepted,
            user_file: read_optional(user),
        }
    }
}

#[test]
fn host_keys_are_accepted_refused_and_recorded_exactly_as_openssh_does() {
    let dir = tempfile::Builder::new()
        .prefix("arpanet-host-keys-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    let home = root.join("home");
    fs::create_dir_all(&home).unwrap();
    let key = root.join("id_ed25519");
    let authorized_keys = root.join("authorized_keys");
    fs::write(&authorized_keys, format!("{}\n", keygen(&key, ""))).unwrap();
    fs::set_permissions(&authorized_keys, fs::Permissions::from_mode(0o644)).unwrap();
    let ca = root.join("ca");
    let ca_key = keygen(&ca, "");
    let other_ca = keygen(&root.join("other_ca"), "");
    let other = keygen(&root.join("other_host_key"), "");

    // The certificates that can be made before their server starts.
    let cert_config = "HostCertificate {ecdsa}-cert.pub\n";
    let address_22 = free_port_22_address();
    let specs: Vec<(&str, String)> = vec![
        ("multi", format!("ListenAddress {address_22}:22\n")),
        ("ed-only", "HostKeyAlgorithms ssh-ed25519\n".into()),
        (
            "rsa-only",
            "HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256\n".into(),
        ),
        ("cert", cert_config.into()),
        ("cert-wrong", cert_config.into()),
        ("cert-expired", cert_config.into()),
        ("cert-any", cert_config.into()),
    ];
    let ecdsa_file = |tag: &str| root.join(format!("{tag}_ecdsa"));
    let mut servers: Vec<Server> = thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|(tag, extra)| {
                let authorized_keys = &authorized_keys;
                scope.spawn(move || server(root, tag, authorized_keys, extra))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    sign_host_key(&ca, &ecdsa_file("cert"), Some(&servers[3].address), None);
    sign_host_key(&ca, &ecdsa_file("cert-wrong"), Some("wrong.example"), None);
    sign_host_key(
        &ca,
        &ecdsa_file("cert-expired"),
        Some(&servers[5].address),
        Some("20000101:20010101"),
    );
    sign_host_key(&ca, &ecdsa_file("cert-any"), None, None);
    for server in &servers[3..] {
        server.host.as_ref().unwrap().restart();
    }
    // `multi` again, reached on port 22 of another address.
    let multi = &servers[0];
    servers.push(Server {
        host: None,
        address: address_22.to_owned(),
        port: 22,
        ed25519: multi.ed25519.clone(),
        rsa: multi.rsa.clone(),
        ecdsa: multi.ecdsa.clone(),
    });
    let [m, e, r, c, w, x, n, m22] = [0, 1, 2, 3, 4, 5, 6, 7];
    let s = |i: usize| &servers[i];

    let hm = s(m).name();
    let am = s(m).address.clone();
    let ed = s(m).ed25519.clone();
    let hc = s(c).name();
    let a22 = s(m22).address.clone();
    let fixture = |name: &'static str, server: usize, user: String, global: String| Fixture {
        name,
        server,
        user: Some(user),
        global,
    };
    let none = String::new;
    let fixtures = vec![
        fixture("unknown host", m, none(), none()),
        Fixture {
            name: "unknown host, no user file yet",
            server: m,
            user: None,
            global: none(),
        },
        fixture("recorded ed25519 key", m, format!("{hm} {ed}\n"), none()),
        fixture(
            "only its RSA key recorded, all types offered",
            m,
            format!("{hm} {}\n", s(m).rsa),
            none(),
        ),
        fixture(
            "only its ecdsa key recorded, all types offered",
            m,
            format!("{hm} {}\n", s(m).ecdsa),
            none(),
        ),
        fixture(
            "another ed25519 key recorded",
            m,
            format!("{hm} {other}\n"),
            none(),
        ),
        fixture(
            "multi-key: all three recorded among other hosts",
            m,
            format!(
                "other.example {other}\n{hm} {}\n[other]:2 {ed}\n{hm} {}\n{hm} {ed}\n",
                s(m).rsa,
                s(m).ecdsa
            ),
            none(),
        ),
        fixture(
            "multi-key: a wrong ed25519 and its right RSA key",
            m,
            format!("{hm} {other}\n{hm} {}\n", s(m).rsa),
            none(),
        ),
        fixture(
            "type change: RSA recorded, server offers only ed25519",
            e,
            format!("{} {}\n", s(e).name(), s(e).rsa),
            none(),
        ),
        fixture(
            "type change: RSA and ed25519 recorded, server offers only ed25519",
            e,
            format!("{0} {1}\n{0} {2}\n", s(e).name(), s(e).rsa, s(e).ed25519),
            none(),
        ),
        fixture(
            "type change: ed25519 recorded, server offers only RSA",
            r,
            format!("{} {}\n", s(r).name(), s(r).ed25519),
            none(),
        ),
        fixture(
            "RSA recorded, server offers only RSA",
            r,
            format!("{} {}\n", s(r).name(), s(r).rsa),
            none(),
        ),
        fixture(
            "hashed entry",
            m,
            hashed(root, "h1", &format!("{hm} {ed}\n")),
            none(),
        ),
        fixture(
            "hashed entry with another key",
            m,
            hashed(root, "h2", &format!("{hm} {other}\n")),
            none(),
        ),
        fixture(
            "hashed plain entry on another port",
            m,
            hashed(root, "h3", &format!("{am} {ed}\n")),
            none(),
        ),
        fixture(
            "comma list",
            m,
            format!("foo.example,{hm},bar {ed}\n"),
            none(),
        ),
        fixture("wildcard *", m, format!("* {ed}\n"), none()),
        fixture(
            "wildcards in address and port",
            m,
            format!("[127.0.0.*]:{}?* {ed}\n", &s(m).port.to_string()[..1]),
            none(),
        ),
        fixture(
            "wildcard ? in the address",
            m,
            format!(
                "[{}?]:{} {ed}\n",
                &am[..am.len() - 1],
                s(m).port
            ),
            none(),
        ),
        fixture(
            "negation of the host",
            m,
            format!("*,!{hm} {ed}\n"),
            none(),
        ),
        fixture(
            "negation of another host",
            m,
            format!("*,!other.example {ed}\n"),
            none(),
        ),
        fixture(
            "negation hides another key",
            m,
            format!("*,!{hm} {other}\n"),
            none(),
        ),
        fixture(
            "plain entry, non-22 port",
            m,
            format!("{am} {ed}\n"),
            none(),
        ),
        fixture(
            "plain entry with another key, non-22 port",
            m,
            format!("{am} {other}\n"),
            none(),
        ),
        fixture(
            "plain entry right, [host]:port entry wrong",
            m,
            format!("{am} {ed}\n{hm} {other}\n"),
            none(),
        ),
        fixture("port 22, plain entry", m22, format!("{a22} {ed}\n"), none()),
        fixture("port 22, unknown", m22, none(), none()),
        fixture(
            "port 22, [host]:22 entry",
            m22,
            format!("[{a22}]:22 {ed}\n"),
            none(),
        ),
        fixture(
            "port 22, another key",
            m22,
            format!("{a22} {other}\n"),
            none(),
        ),
        fixture(
            "port 22, only RSA recorded",
            m22,
            format!("{a22} {}\n", s(m).rsa),
            none(),
        ),
        fixture("global file only", m, none(), format!("{hm} {ed}\n")),
        fixture(
            "global file holds another key",
            m,
            none(),
            format!("{hm} {other}\n"),
        ),
        fixture(
            "global file: RSA recorded, server offers only ed25519",
            e,
            none(),
            format!("{} {}\n", s(e).name(), s(e).rsa),
        ),
        fixture(
            "global file: plain entry, non-22 port",
            m,
            none(),
            format!("{am} {ed}\n"),
        ),
        fixture(
            "@revoked key also recorded",
            m,
            format!("{hm} {ed}\n@revoked * {ed}\n"),
            none(),
        ),
        fixture(
            "@revoked another key",
            m,
            format!("{hm} {ed}\n@revoked * {other}\n"),
            none(),
        ),
        fixture(
            "@revoked only",
            m,
            format!("@revoked {hm} {ed}\n"),
            none(),
        ),
        fixture(
            "@revoked plain entry, non-22 port",
            m,
            format!("{am} {ed}\n@revoked {am} {ed}\n"),
            none(),
        ),
        fixture(
            "@revoked in the global file",
            m,
            format!("{hm} {ed}\n"),
            format!("@revoked * {ed}\n"),
        ),
        fixture(
            "@cert-authority for [host]:port",
            c,
            format!("@cert-authority {hc} {ca_key}\n"),
            none(),
        ),
        fixture(
            "@cert-authority *",
            c,
            format!("@cert-authority * {ca_key}\n"),
            none(),
        ),
        fixture(
            "@cert-authority for the plain host, non-22 port",
            c,
            format!("@cert-authority {} {ca_key}\n", s(c).address),
            none(),
        ),
        fixture(
            "@cert-authority in the global file",
            c,
            none(),
            format!("@cert-authority * {ca_key}\n"),
        ),
        fixture(
            "@cert-authority of another CA",
            c,
            format!("@cert-authority * {other_ca}\n"),
            none(),
        ),
        fixture(
            "@cert-authority of another CA, certified key recorded",
            c,
            format!("@cert-authority * {other_ca}\n{hc} {}\n", s(c).ecdsa),
            none(),
        ),
        fixture("certificate, no @cert-authority, unknown host", c, none(), none()),
        fixture(
            "certificate, no @cert-authority, ed25519 recorded",
            c,
            format!("{hc} {}\n", s(c).ed25519),
            none(),
        ),
        fixture(
            "@cert-authority with its CA @revoked",
            c,
            format!("@cert-authority * {ca_key}\n@revoked * {ca_key}\n"),
            none(),
        ),
        fixture(
            "@cert-authority with the certified key @revoked",
            c,
            format!("@cert-authority * {ca_key}\n@revoked * {}\n", s(c).ecdsa),
            none(),
        ),
        fixture(
            "certificate for another name",
            w,
            format!("@cert-authority * {ca_key}\n"),
            none(),
        ),
        fixture(
            "certificate for another name, ed25519 recorded",
            w,
            format!("@cert-authority * {ca_key}\n{} {}\n", s(w).name(), s(w).ed25519),
            none(),
        ),
        fixture(
            "expired certificate",
            x,
            format!("@cert-authority * {ca_key}\n"),
            none(),
        ),
        fixture(
            "certificate without principals",
            n,
            format!("@cert-authority * {ca_key}\n"),
            none(),
        ),
        fixture(
            "comments, blanks, bad lines and an unknown marker",
            m,
            format!(
                "# comment\n\n   \ngarbage\n{hm} ssh-ed25519 notbase64\n@bogus * {other}\n  {hm}\t{ed} a comment\n"
            ),
            none(),
        ),
    ];

    let work = Mutex::new(fixtures.iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client {
        key: &key,
        home: &home,
        runtime: &runtime,
    };
    thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let Some((i, fixture)) = work.lock().unwrap().pop() else {
                    break;
                };
                let server = &servers[fixture.server];
                for mode in ["yes", "accept-new"] {
                    let base = root.join(format!("fixture{i}-{mode}"));
                    let (user, global) = copy_fixture(fixture, &base.join("ssh"));
                    let ssh = client.ssh(server, mode, &user, &global);
                    let (user, global) = copy_fixture(fixture, &base.join("arpanet"));
                    let arpanet = client.arpanet(server, mode, &user, &global);
                    results.lock().unwrap().push((i, mode, ssh, arpanet));
                }
            });
        }
    });

    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, mode, ..)| (*i, *mode == "accept-new"));
    let mut table = String::new();
    let mut differences = Vec::new();
    for (i, mode, ssh, arpanet) in &results {
        let fixture = &fixtures[*i];
        let appended = ssh.user_file != fixture.user;
        let _ = writeln!(
            table,
            "{:>2} {:<11} ssh {:<8}{} arpanet {:<8} {}",
            i + 1,
            mode,
            ssh.short(),
            if appended { " +line" } else { "      " },
            arpanet.short(),
            fixture.name
        );
        if ssh != arpanet {
            differences.push(format!(
                "fixture {} `{}` ({mode}):\n  user file: {:?}\n  global file: {:?}\n  ssh:     {ssh:?}\n  arpanet: {arpanet:?}",
                i + 1,
                fixture.name,
                fixture.user,
                fixture.global
            ));
        }
    }
    eprintln!("{table}");
    assert!(fixtures.len() >= 25);
    assert!(
        differences.is_empty(),
        "arpanet and ssh disagree on {} of {} runs:\n{}\n\n{table}",
        differences.len(),
        results.len(),
        differences.join("\n")
    );
}

/// Two arpanet processes recording the same new hosts at once, under umask
/// 000: each host's line is written once and whole (the in-process mutex
/// cannot see the other process; the `flock` does), the new file is 0644
/// and its new directory 0700.
#[test]
fn two_processes_accepting_new_hosts_at_once_write_each_line_once_with_safe_modes() {
    let cluster = Cluster::start(4);
    let inventory = cluster.inventory(&[]);
    let mut expected: Vec<String> = cluster.hosts.iter().map(|h| h.known_hosts_line()).collect();
    expected.sort();
    for round in 0..3 {
        let dir = cluster.dir().join(format!("round{round}/ssh"));
        let known_hosts = dir.join("known_hosts");
        let runs: Vec<_> = (0..2)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "umask 000 && exec \"$@\"", "sh"])
                    .arg(env!("CARGO_BIN_EXE_arpanet"))
                    .arg("exec")
                    .arg("-i")
                    .arg(&inventory)
                    .arg("--known-hosts")
                    .arg(&known_hosts)
                    .args(["--host-key-checking", "accept-new", "--", "true"])
                    .env("HOME", &cluster.home)
                    .env("NO_COLOR", "1")
                    .env_remove("SSH_AUTH_SOCK")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let out = run.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = fs::read_to_string(&known_hosts).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(lines, expected, "round {round}:\n{text}");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&known_hosts), 0o644);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(dir.parent().unwrap()), 0o700);
    }
}

/// The refusal of a host recorded with another key type names both types,
/// the offending line and how to remove it.
#[test]
fn a_host_recorded_with_another_key_type_is_changed_with_both_types_named() {
    let cluster = Cluster::start(1);
    let host = &cluster.hosts[0];
    let rsa = keygen_typed(&cluster.dir().join("old_rsa"), "rsa", "");
    let known_hosts = cluster.write_file(
        "rsa_known_hosts",
        &format!("# old\n[{}]:{} {rsa}\n", host.address, host.port),
    );
    let mut target = cluster.target(0);
    target.known_hosts = known_hosts.clone();
    target.host_key_checking = HostKeyChecking::AcceptNew;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connector = SshConnector::new(1).with_agent(None).with_passphrase(None);
    let error = match runtime.block_on(connector.connect(&target)) {
        Ok(_) => panic!("a changed key type was accepted"),
        Err(e) => e,
    };
    let text = format!("{error}");
    let Error::Unreachable { message, hint, .. } = error else {
        panic!("expected an unreachable host, got {text}");
    };
    assert!(
        message.contains("changed: it now offers ssh-ed25519 SHA256:"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "`{}:2` holds a different ssh-rsa key",
            known_hosts.display()
        )),
        "{message}"
    );
    let hint = hint.unwrap_or_default();
    assert!(hint.contains("ssh-keygen -R"), "{hint}");
    assert_eq!(
        fs::read_to_string(&known_hosts).unwrap().lines().count(),
        2,
        "nothing appended"
    );
}
