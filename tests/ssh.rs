//! The SSH transport against real sshd hosts (see `support::sshd`), through
//! the library API.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arpanet::error::Error;
use arpanet::ssh::SshConnector;
use arpanet::transport::{Connector, HostKeyChecking, Target, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{keygen, keygen_typed, Cluster, SshAgent};

/// A connector that ignores the environment (no agent, no passphrase), so
/// tests running in parallel never depend on `SSH_AUTH_SOCK`.
fn connector() -> SshConnector {
    SshConnector::new(8).with_agent(None).with_passphrase(None)
}

async fn connect(cluster: &Cluster, i: usize) -> Arc<dyn Transport> {
    let target = cluster.target(i);
    match connector().connect(&target).await {
        Ok(t) => t,
        Err(e) => panic!("cannot connect to {}: {e}", target.name),
    }
}

/// The error of a connection that must fail, as (message, hint).
async fn refused(connector: &SshConnector, target: &Target) -> (String, String) {
    match connector.connect(target).await {
        Ok(_) => panic!("{} connected but should not have", target.name),
        Err(Error::Unreachable {
            host,
            message,
            hint,
        }) => {
            assert_eq!(host, target.name);
            (message, hint.unwrap_or_default())
        }
        Err(other) => panic!("expected an unreachable error, got {other:?}"),
    }
}

/// `SHA256:...` of a public key file, as ssh-keygen computes it.
fn fingerprint_of(pub_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
fn harness_hosts_accept_the_cluster_key() {
    let cluster = Cluster::start(2);
    for i in 0..2 {
        let out = cluster.ssh(i, "id -un; echo $HOME");
        assert_eq!(out, "arpanet-test\n/home/arpanet-test\n");
    }
    let host = &cluster.hosts[1];
    host.stop();
    assert!(std::net::TcpStream::connect((host.address.as_str(), host.port)).is_err());
    host.restart();
    assert_eq!(cluster.ssh(1, "echo back"), "back\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_returns_stdout_stderr_and_status() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster, 0).await;
    let out = ssh
        .exec(
            "echo out; echo err >&2; printf 'caf\\303\\251'; exit 3",
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "out\ncafé");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.status, 3);
    assert!(!out.success());

    let ok = ssh.exec("id -un", None).await.unwrap();
    assert_eq!(ok.stdout, "arpanet-test\n");
    assert!(ok.success());
    ssh.close().await;
}

/// arpanet offers P-256 key exchange before curve25519 (OpenSSH does it
/// with less CPU); a server that allows only one of the others it offers
/// is still reached, with that one.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_allows_one_key_exchange_is_reached_with_it() {
    for kex in [
        "curve25519-sha256",
        "ecdh-sha2-nistp256",
        "diffie-hellman-group14-sha256",
    ] {
        let cluster = Cluster::start_with_config(1, &format!("KexAlgorithms {kex}\n"));
        let ssh = connect(&cluster, 0).await;
        let out = ssh.exec("id -un", None).await.unwrap();
        assert_eq!(out.stdout, "arpanet-test\n", "{kex}");
        ssh.close().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_killed_by_a_signal_reports_128_plus_the_signal() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster, 0).await;
    // A shell of its own: in the persistent shell a command is a subshell,
    // whose `$$` is the persistent shell's.
    let out = ssh.exec("sh -c 'kill -TERM $$'", None).await.unwrap();
    assert_eq!(out.status, 128 + 15, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_is_delivered_then_eof() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster, 0).await;
    let out = ssh.exec("cat", Some(b"hello\nworld\n")).await.unwrap();
    assert_eq!(out.stdout, "hello\nworld\n");

    // More than the channel window, so flow control is exercised.
    let big = vec![b'x'; 5 * 1024 * 1024];
    let out = ssh.exec("wc -c", Some(&big)).await.unwrap();
    assert_eq!(out.stdout.trim(), (5 * 1024 * 1024).to_string());

    // Large output both ways at once must not deadlock; of the output, the
    // first and last `OUTPUT_CAP / 2` bytes are kept.
    let out = ssh.exec("cat", Some(&big)).await.unwrap();
    let dropped = big.len() - arpanet::transport::OUTPUT_CAP;
    let marker = format!("\n[arpanet: {dropped} bytes of output dropped here;");
    let (head, tail) = out.stdout.split_once(&marker).unwrap();
    assert_eq!(head.len(), arpanet::transport::OUTPUT_CAP / 2);
    assert!(tail.ends_with(&"x".repeat(arpanet::transport::OUTPUT_CAP / 2)));

    // A command that ignores its stdin still finishes.
    let out = ssh.exec("echo ignored", Some(&big)).await.unwrap();
    assert_eq!(out.stdout, "ignored\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_sequential_execs_on_one_connection_stay_under_max_sessions() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster, 0).await;
    for i in 0..100 {
        let out = ssh.exec(&format!("echo {i}"), None).await.unwrap();
        assert_eq!(out.stdout, format!("{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_execs_on_one_connection() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster, 0).await;
    let runs = (0..20).map(|i| {
        let ssh = Arc::clone(&ssh);
        async move { ssh.exec(&format!("sleep 0.2; echo {i}"), None).await }
    });
    let outputs = futures::future::join_all(runs).await;
    for (i, out) in outputs.into_iter().enumerate() {
        assert_eq!(out.unwrap().stdout, format!("{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_key_is_refused_when_strict_with_its_fingerprint() {
    let cluster = Cluster::start(1);
    let mut target = cluster.target(0);
    target.known_hosts = cluster.dir().join("empty_known_hosts");
    let (message, hint) = refused(&connector(), &target).await;
    let host = &cluster.hosts[0];
    let fingerprint = fingerprint_of(&host.host_key_file.with_extension("pub"));
    assert!(message.contains("unknown host key"), "{message}");
    assert!(message.contains(&host.address), "{message}");
    assert!(message.contains("ssh-ed25519"), "{message}");
    assert!(
        message.contains(&fingerprint),
        "{message} lacks {fingerprint}"
    );
    assert!(hint.contains(&host.known_hosts_line()), "{hint}");
    assert!(hint.contains("ssh-keyscan"), "{hint}");
    assert!(!target.known_hosts.exists(), "strict mode must not write");
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_host_key_is_refused_even_with_accept_new_naming_the_line() {
    let cluster = Cluster::start(1);
    let host = &cluster.hosts[0];
    let other_key = keygen(&cluster.dir().join("other_host_key"), "");
    let known_hosts = cluster.write_file(
        "changed_known_hosts",
        &format!(
            "# a comment\n\n[{}]:{} {other_key}\n",
            host.address, host.port
        ),
    );
    for checking in [HostKeyChecking::Strict, HostKeyChecking::AcceptNew] {
        let mut target = cluster.target(0);
        target.known_hosts = known_hosts.clone();
        target.host_key_checking = checking;
        let (message, hint) = refused(&connector(), &target).await;
        let fingerprint = fingerprint_of(&host.host_key_file.with_extension("pub"));
        assert!(message.contains("host key for"), "{message}");
        assert!(message.contains("changed"), "{message}");
        assert!(message.contains(&fingerprint), "{message}");
        assert!(
            message.contains(&format!("{}:3", known_hosts.display())),
            "{message}"
        );
        assert!(hint.contains("man-in-the-middle"), "{hint}");
        assert!(hint.contains("ssh-keygen -R"), "{hint}");
    }
    let text = fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(text.lines().count(), 3, "nothing appended: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_new_records_the_key_then_strict_accepts_it() {
    let cluster = Cluster::start(1);
    let mut target = cluster.target(0);
    target.known_hosts = cluster.dir().join("new/dir/known_hosts");
    target.host_key_checking = HostKeyChecking::AcceptNew;
    let ssh = connector().connect(&target).await.unwrap();
    assert_eq!(ssh.exec("echo hi", None).await.unwrap().stdout, "hi\n");
    let text = fs::read_to_string(&target.known_hosts).unwrap();
    assert_eq!(text, format!("{}\n", cluster.hosts[0].known_hosts_line()));

    target.host_key_checking = HostKeyChecking::Strict;
    let again = connector().connect(&target).await.unwrap();
    assert_eq!(
        again.exec("echo again", None).await.unwrap().stdout,
        "again\n"
    );
    assert_eq!(fs::read_to_string(&target.known_hosts).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_accept_new_connections_append_whole_lines() {
    let cluster = Cluster::start(4);
    let known_hosts = cluster.dir().join("shared_known_hosts");
    let connector = connector();
    let connects = (0..4).map(|i| {
        let mut target = cluster.target(i);
        target.known_hosts = known_hosts.clone();
        target.host_key_checking = HostKeyChecking::AcceptNew;
        let connector = &connector;
        async move { connector.connect(&target).await.map(|_| ()) }
    });
    for result in futures::future::join_all(connects).await {
        result.unwrap();
    }
    let text = fs::read_to_string(&known_hosts).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    let mut expected: Vec<String> = cluster.hosts.iter().map(|h| h.known_hosts_line()).collect();
    expected.sort();
    assert_eq!(lines, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn hashed_known_hosts_entry_is_accepted() {
    let cluster = Cluster::start(1);
    let hashed = cluster.write_file(
        "hashed_known_hosts",
        &format!("{}\n", cluster.hosts[0].known_hosts_line()),
    );
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = fs::read_to_string(&hashed).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    assert!(!text.contains(&cluster.hosts[0].address), "{text}");

    let mut target = cluster.target(0);
    target.known_hosts = hashed;
    let ssh = connector().connect(&target).await.unwrap();
    assert_eq!(ssh.exec("echo ok", None).await.unwrap().stdout, "ok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn checking_off_accepts_any_key_and_writes_nothing() {
    let cluster = Cluster::start(1);
    let mut target = cluster.target(0);
    target.known_hosts = cluster.dir().join("none");
    target.host_key_checking = HostKeyChecking::Off;
    let ssh = connector().connect(&target).await.unwrap();
    assert_eq!(ssh.exec("echo ok", None).await.unwrap().stdout, "ok\n");
    assert!(!target.known_hosts.exists());
    assert!(arpanet::ssh::host_key_checking_off_warning(&target).contains("man-in-the-middle"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_host_does_not_know_is_permission_denied_with_a_hint() {
    let cluster = Cluster::start(1);
    let stranger = cluster.dir().join("stranger_key");
    keygen(&stranger, "");
    let missing = cluster.dir().join("no_such_key");
    let mut target = cluster.target(0);
    target.identity_files = vec![missing, stranger.clone()];
    let (message, hint) = refused(&connector(), &target).await;
    assert_eq!(
        message,
        "permission denied (publickey) for user `arpanet-test`"
    );
    assert!(hint.contains(&stranger.display().to_string()), "{hint}");
    assert!(hint.contains("authorized_keys"), "{hint}");

    target.identity_files = vec![];
    let (_, hint) = refused(&connector(), &target).await;
    assert!(hint.contains("--private-key"), "{hint}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_identities_are_tried_before_key_files() {
    let cluster = Cluster::start(1);
    let agent = SshAgent::start();
    let stranger = cluster.dir().join("stranger_key");
    keygen(&stranger, "");
    agent.add(&stranger);
    agent.add(&cluster.key);
    let mut target = cluster.target(0);
    target.identity_files = vec![];
    let ssh = connector()
        .with_agent(Some(agent.socket.clone()))
        .connect(&target)
        .await
        .unwrap();
    assert_eq!(
        ssh.exec("echo agent", None).await.unwrap().stdout,
        "agent\n"
    );

    // An agent without the right key: the hint counts what it offered.
    let empty = SshAgent::start();
    empty.add(&stranger);
    let (_, hint) = refused(&connector().with_agent(Some(empty.socket.clone())), &target).await;
    assert!(hint.contains("1 ssh-agent identity"), "{hint}");
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_key_needs_the_passphrase() {
    let cluster = Cluster::start(1);
    let locked = cluster.dir().join("locked_key");
    let public = keygen(&locked, "s3cret phrase");
    fs::write(
        &cluster.authorized_keys,
        format!("{}\n{public}\n", cluster.public_key),
    )
    .unwrap();
    let mut target = cluster.target(0);
    target.identity_files = vec![locked.clone()];

    let ssh = connector()
        .with_passphrase(Some("s3cret phrase".into()))
        .connect(&target)
        .await
        .unwrap();
    assert_eq!(
        ssh.exec("echo unlocked", None).await.unwrap().stdout,
        "unlocked\n"
    );

    let (message, hint) = refused(&connector(), &target).await;
    assert!(message.starts_with("permission denied"), "{message}");
    assert!(hint.contains("encrypted"), "{hint}");
    assert!(hint.contains("ARPANET_SSH_PASSPHRASE"), "{hint}");

    let (_, hint) = refused(&connector().with_passphrase(Some("wrong".into())), &target).await;
    assert!(hint.contains("wrong passphrase"), "{hint}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_keys_sign_with_the_servers_best_hash() {
    let cluster = Cluster::start(1);
    let rsa = cluster.dir().join("rsa_key");
    let public = keygen_typed(&rsa, "rsa", "");
    fs::write(&cluster.authorized_keys, format!("{public}\n")).unwrap();
    let mut target = cluster.target(0);
    target.identity_files = vec![rsa];
    // OpenSSH 8.8+ refuses SHA-1 `ssh-rsa` signatures, so this only works
    // with rsa-sha2-256/512.
    let ssh = connector().connect(&target).await.unwrap();
    assert_eq!(ssh.exec("echo rsa", None).await.unwrap().stdout, "rsa\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_host_is_refused_quickly_with_a_hint() {
    let cluster = Cluster::start(1);
    cluster.hosts[0].stop();
    let target = cluster.target(0);
    let started = Instant::now();
    let (message, hint) = refused(&connector(), &target).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let host = &cluster.hosts[0];
    assert_eq!(
        message,
        format!("connection refused at {}:{}", host.address, host.port)
    );
    assert!(hint.contains("is sshd running"), "{hint}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unresolvable_names_and_silent_ports_are_unreachable() {
    let cluster = Cluster::start(1);
    let mut target = cluster.target(0);
    target.address = "no-such-host.invalid".into();
    let (message, _) = refused(&connector(), &target).await;
    assert!(
        message.contains("cannot resolve `no-such-host.invalid`"),
        "{message}"
    );

    // A port that accepts TCP but never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut target = cluster.target(0);
    target.address = "127.0.0.1".into();
    target.port = silent.local_addr().unwrap().port();
    target.connect_timeout = Duration::from_millis(500);
    let (message, _) = refused(&connector(), &target).await;
    assert!(message.contains("timed out after 0.5s"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_mid_command_is_unreachable() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster, 0).await;
    let running = {
        let ssh = Arc::clone(&ssh);
        tokio::spawn(async move { ssh.exec("sleep 30", None).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let host = &cluster.hosts[0];
    tokio::task::block_in_place(|| host.stop());
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("exec noticed the drop")
        .unwrap();
    match result {
        Err(Error::Unreachable { message, .. }) => {
            assert!(message.contains("connection lost"), "{message}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    match ssh.exec("true", None).await {
        Err(Error::Unreachable { .. }) => {}
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_round_trips_bytes_through_the_host() {
    let cluster = Cluster::start(1);
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let ssh = connect(&cluster, 0).await;
    for round in 0..3 {
        let mut stream = ssh.forward("127.0.0.1", port).await.unwrap();
        let message = format!("ping {round} through ssh");
        stream.write_all(message.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        let mut buf = vec![0; message.len()];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, message.as_bytes());
    }
    // Execs still work beside forwarded channels.
    assert_eq!(
        ssh.exec("echo still", None).await.unwrap().stdout,
        "still\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_hosts_connect_at_once_with_eight_starts() {
    let cluster = Cluster::start(30);
    let connector = SshConnector::new(8).with_agent(None).with_passphrase(None);
    let connects = (0..30).map(|i| {
        let target = cluster.target(i);
        let connector = &connector;
        async move {
            let ssh = connector.connect(&target).await?;
            ssh.exec("hostname >/dev/null; echo up", None).await
        }
    });
    for (i, out) in futures::future::join_all(connects)
        .await
        .into_iter()
        .enumerate()
    {
        match out {
            Ok(out) => assert_eq!(out.stdout, "up\n"),
            Err(e) => panic!("host {i}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_starts_are_throttled_below_max_startups() {
    // sshd drops connections beyond MaxStartups unauthenticated ones; with
    // at most 4 handshakes in flight, 16 connections to one host all pass.
    let cluster = Cluster::start_with_config(1, "MaxStartups 6\n");
    // No retry of a dropped handshake: a drop must fail this test.
    let connector = SshConnector::new(4)
        .with_agent(None)
        .with_passphrase(None)
        .with_handshake_attempts(1);
    let target = cluster.target(0);
    let connects = (0..16).map(|_| async {
        let ssh = connector.connect(&target).await?;
        ssh.exec("echo up", None).await
    });
    for out in futures::future::join_all(connects).await {
        assert_eq!(out.unwrap().stdout, "up\n");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn handshakes_are_throttled_per_address_not_globally() {
    // Each sshd allows 5 unauthenticated connections; 2 handshakes in
    // flight per address keep below that for both hosts at once. The
    // margin is for sshd's listener, which counts a connection as
    // unauthenticated until its child reports the login, a moment after
    // the client has seen it (CI saw a drop with a margin of one).
    let cluster = Cluster::start_with_config(2, "MaxStartups 5\n");
    // No retry of a dropped handshake: a drop must fail this test.
    let connector = SshConnector::new(2)
        .with_agent(None)
        .with_passphrase(None)
        .with_handshake_attempts(1);
    let targets = [cluster.target(0), cluster.target(1)];
    let connects = targets.iter().flat_map(|target| {
        let connector = &connector;
        (0..12).map(move |_| async move {
            let ssh = connector.connect(target).await?;
            ssh.exec("echo up", None).await
        })
    });
    for out in futures::future::join_all(connects).await {
        assert_eq!(out.unwrap().stdout, "up\n");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_handshake_does_not_hold_up_other_hosts() {
    // A port that accepts and never answers holds its handshake until the
    // connect timeout; with one start per address, another host connects
    // meanwhile (a global limit of one would make it wait).
    let cluster = Cluster::start(1);
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let connector = SshConnector::new(1).with_agent(None).with_passphrase(None);
    let mut stalled = cluster.target(0);
    stalled.name = "silent".into();
    stalled.address = "127.0.0.1".into();
    stalled.port = silent_port;
    stalled.connect_timeout = Duration::from_secs(20);
    let stalled_connect = connector.connect(&stalled);
    tokio::pin!(stalled_connect);
    // Let the stalled handshake take its slot first.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut stalled_connect)
            .await
            .is_err(),
        "the silent port answered"
    );
    let target = cluster.target(0);
    tokio::select! {
        out = connector.connect(&target) => {
            let ssh = out.unwrap();
            assert_eq!(ssh.exec("echo up", None).await.unwrap().stdout, "up\n");
        }
        _ = &mut stalled_connect => panic!("the silent port connected or timed out first"),
    }
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn execs_abandoned_by_a_timeout_free_their_sessions() {
    let cluster = Cluster::start(1);
    let ssh = connect(&cluster, 0).await;
    let abandoned = (0..12).map(|_| {
        let ssh = Arc::clone(&ssh);
        async move {
            let run = ssh.exec("sleep 31.5", None);
            assert!(tokio::time::timeout(Duration::from_millis(300), run)
                .await
                .is_err());
        }
    });
    futures::future::join_all(abandoned).await;
    for i in 0..20 {
        let out = ssh.exec(&format!("echo {i}"), None).await.unwrap();
        assert_eq!(out.stdout, format!("{i}\n"));
    }
    // The abandoned commands were killed, not left running. sshd signals
    // them when their channels close, which a loaded machine can take a
    // few seconds to get to; a command left running lives 31.5 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = ssh
            .exec("ps -eo pid,ppid,etimes,args | grep 'sleep 31[.]5' >&2; pgrep -f 'sleep 31[.]5' | wc -l", None)
            .await
            .unwrap();
        if left.stdout.trim() == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after 10 s:\n{}",
            left.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_binary_runs_with_a_temp_home() {
    let cluster = Cluster::start(1);
    let run = cluster.run(&["--version"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.starts_with("arpanet "), "{run}");
    let inventory = cluster.inventory(&[("consul_expect", "1")]);
    let text = fs::read_to_string(inventory).unwrap();
    assert!(text.starts_with(&cluster.host_line(0)), "{text}");
    assert!(text.ends_with("[all:vars]\nconsul_expect=1\n"), "{text}");
}
