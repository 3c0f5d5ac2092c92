//! `~/.ssh/config` parity with OpenSSH: for every fixture in
//! `tests/fixtures/ssh_config/` and every host it names (`# query: HOST
//! [-l USER]`), what arpanet resolves must equal what `ssh -G` prints, for
//! each setting arpanet honours. Where arpanet resolves nothing, ssh must
//! print its default (what `ssh -G -F /dev/null` prints for the same host).
//! And end to end: a `Match host … User` block makes arpanet log in as that
//! user on a real sshd.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use arpanet::ssh::config::{HostConfig, Query, SshConfig};

use crate::support::{keygen, Cluster, SshAgent};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ssh_config");

/// What `ssh -G` prints, keyed by option (multi-valued ones in order).
fn ssh_g(
    home: &Path,
    config: &Path,
    host: &str,
    user: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let mut command = Command::new("ssh");
    command.env("HOME", home).arg("-G").arg("-F").arg(config);
    if let Some(user) = user {
        command.args(["-l", user]);
    }
    let out = command.arg(host).output().expect("run ssh -G");
    assert!(
        out.status.success(),
        "ssh -G -F {} {host}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut options: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((key, value)) = line.split_once(' ') {
            options
                .entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    options
}

/// The options compared, as `ssh -G` would print arpanet's resolution;
/// `None` where arpanet resolved nothing.
fn arpanet_view(
    c: &HostConfig,
    host: &str,
    user: Option<&str>,
) -> Vec<(&'static str, Option<Vec<String>>)> {
    let one = |v: Option<String>| v.map(|v| vec![v]);
    let secs = |d: Option<std::time::Duration>| one(d.map(|d| d.as_secs().to_string()));
    let proxy = |key: &str| {
        c.proxy_as_ssh_g()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| vec![v])
    };
    let paths = |p: &Vec<PathBuf>| {
        p.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    vec![
        (
            "hostname",
            // ssh lowercases the final host name.
            Some(vec![c
                .host_name
                .as_deref()
                .unwrap_or(host)
                .to_ascii_lowercase()]),
        ),
        ("port", one(c.port.map(|p| p.to_string()))),
        ("user", one(user.map(str::to_owned).or(c.user.clone()))),
        (
            "identityfile",
            (!c.identity_files_as_written.is_empty()).then(|| c.identity_files_as_written.clone()),
        ),
        ("hostkeyalias", one(c.host_key_alias.clone())),
        (
            "userknownhostsfile",
            one(c.user_known_hosts_files.as_ref().map(paths)),
        ),
        (
            "identitiesonly",
            one(c
                .identities_only
                .map(|b| if b { "yes" } else { "no" }.to_owned())),
        ),
        ("connecttimeout", secs(c.connect_timeout)),
        ("serveraliveinterval", secs(c.server_alive_interval)),
        (
            "serveralivecountmax",
            one(c.server_alive_count_max.map(|n| n.to_string())),
        ),
        ("proxyjump", proxy("proxyjump")),
        ("proxycommand", proxy("proxycommand")),
    ]
}

fn local_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Copy `from` into `to`, with `@DIR@` replaced by `dir` and `@LOCALUSER@`
/// by the user running the test.
fn render_tree(from: &Path, to: &Path, dir: &Path, user: &str) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            render_tree(&entry.path(), &target, dir, user);
        } else {
            let text = fs::read_to_string(entry.path()).unwrap();
            let text = text
                .replace("@DIR@", &dir.display().to_string())
                .replace("@LOCALUSER@", user);
            fs::write(target, text).unwrap();
        }
    }
}

#[test]
fn every_fixture_resolves_as_ssh_g_prints_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    let home = tmp.path().join("home");
    let user = local_user();
    render_tree(Path::new(FIXTURES), &dir, &dir, &user);
    render_tree(&dir.join("dot-ssh"), &home.join(".ssh"), &dir, &user);
    let empty = tmp.path().join("empty");
    fs::write(&empty, "").unwrap();

    let mut fixtures: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 15, "only {} fixtures", fixtures.len());

    let mut checked = 0;
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let text = fs::read_to_string(fixture).unwrap();
        let config = SshConfig::load(fixture, Some(&home))
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
        let queries: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# query: "))
            .collect();
        assert!(
            !queries.is_empty(),
            "{}: no `# query:` line",
            fixture.display()
        );
        for query in queries {
            let (host, login) = match query.split_once(" -l ") {
                Some((host, login)) => (host, Some(login)),
                None => (query, None),
            };
            let resolved = config
                .resolve(&Query {
                    host,
                    user: login,
                    port: None,
                    local_user: &user,
                    home: Some(&home),
                })
                .unwrap_or_else(|e| panic!("{}: {host}: {e}", fixture.display()));
            let ssh = ssh_g(&home, fixture, host, login);
            let default = ssh_g(&home, &empty, host, login);
            for (key, ours) in arpanet_view(&resolved, host, login) {
                let expected = ours.or_else(|| default.get(key).cloned());
                let printed = ssh.get(key).cloned();
                checked += 1;
                if expected != printed {
                    failures.push(format!(
                        "{} `{query}`: {key}: arpanet {expected:?}, ssh -G {printed:?}",
                        fixture.file_name().unwrap().to_string_lossy()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 300, "{checked}");
}

/// `Match host ADDRESS User x`: arpanet logs in as `x` (the harness's test
/// user), not as the config's `Host *` user, and honours the file's `Port`,
/// `IdentityFile`, `UserKnownHostsFile` and `HostKeyAlias` (the host key is
/// recorded only under the alias).
#[test]
fn a_match_host_block_picks_the_login_user_on_a_real_sshd() {
    let cluster = Cluster::start(1);
    let host = &cluster.hosts[0];
    // The key and known_hosts move away from their default places, so only
    // the config can lead arpanet to them.
    let keys = cluster.dir().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let key = keys.join("lab key");
    fs::rename(&cluster.key, &key).unwrap();
    fs::remove_file(&cluster.known_hosts).unwrap();
    let known_hosts = keys.join("known");
    fs::write(
        &known_hosts,
        format!("[lab-alias]:{} {}\n", host.port, host.host_key),
    )
    .unwrap();
    let config = |matched: &str| {
        format!(
            "Host lab\n    HostName {}\n    Port {}\n    HostKeyAlias lab-alias\n\
             {matched}\
             Host *\n    User nobody-here\n    IdentityFile \"{}\"\n\
             \x20   UserKnownHostsFile {} ~/.ssh/unused\n",
            host.address,
            host.port,
            key.display(),
            known_hosts.display()
        )
    };
    let config_file = cluster.home.join(".ssh").join("config");
    fs::write(
        &config_file,
        config(&format!(
            "Match host {} originalhost lab\n    User {}\n",
            host.address, cluster.user
        )),
    )
    .unwrap();
    let inventory = cluster.write_file("inventory.ini", "lab\n");
    let inv = inventory.to_str().unwrap();
    let run = cluster.run(&["exec", "-i", inv, "--", "id -un"]);
    assert_eq!(run.code, 0, "{run}");
    let said: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| *l == format!("lab | {}", cluster.user))
        .collect();
    assert_eq!(said.len(), 1, "{run}");

    // Without the Match block the login user is the `Host *` one, which
    // sshd refuses.
    fs::write(&config_file, config("")).unwrap();
    let run = cluster.run(&["exec", "-i", inv, "--", "id -un"]);
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stdout.contains("`nobody-here`"), "{run}");

    // A key recorded under the address, not the alias, is unknown.
    fs::write(
        &config_file,
        config(&format!("Host *\n    User {}\n", cluster.user)),
    )
    .unwrap();
    fs::write(&known_hosts, format!("{}\n", host.known_hosts_line())).unwrap();
    let run = cluster.run(&["exec", "-i", inv, "--", "id -un"]);
    assert_eq!(run.code, 4, "{run}");
    assert!(run.stdout.contains("unknown host key"), "{run}");
    assert!(run.stdout.contains("[lab-alias]:"), "{run}");

    // accept-new records the key under the alias, in the first
    // UserKnownHostsFile.
    fs::write(&known_hosts, "").unwrap();
    let run = cluster.run(&[
        "exec",
        "-i",
        inv,
        "--host-key-checking",
        "accept-new",
        "--",
        "true",
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        fs::read_to_string(&known_hosts).unwrap(),
        format!("[lab-alias]:{} {}\n", host.port, host.host_key)
    );
    assert!(!cluster.home.join(".ssh").join("unused").exists());
}

/// `IdentitiesOnly yes`: the agent's keys that are not among the
/// `IdentityFile`s are not offered.
#[test]
fn identities_only_keeps_other_agent_keys_back() {
    let cluster = Cluster::start(1);
    let agent = SshAgent::start();
    agent.add(&cluster.key);
    let other = cluster.dir().join("other_key");
    keygen(&other, "");
    let inventory = cluster.inventory(&[]);
    let inv = inventory.to_str().unwrap();
    let socket = agent.socket.to_str().unwrap();
    let config_file = cluster.home.join(".ssh").join("config");
    for (only, code) in [("no", 0), ("yes", 4)] {
        fs::write(
            &config_file,
            format!(
                "Host *\n    IdentitiesOnly {only}\n    IdentityFile {}\n",
                other.display()
            ),
        )
        .unwrap();
        let run = cluster.run_with_env(
            &["exec", "-i", inv, "--", "true"],
            &[("SSH_AUTH_SOCK", socket)],
        );
        assert_eq!(run.code, code, "IdentitiesOnly {only}: {run}");
    }
    // The agent key that is named is offered through the agent, even with
    // its private file gone (its `.pub` names it).
    fs::write(
        &config_file,
        format!(
            "Host *\n    IdentitiesOnly yes\n    IdentityFile {}\n",
            cluster.key.display()
        ),
    )
    .unwrap();
    fs::remove_file(&cluster.key).unwrap();
    let run = cluster.run_with_env(
        &["exec", "-i", inv, "--", "true"],
        &[("SSH_AUTH_SOCK", socket)],
    );
    assert_eq!(run.code, 0, "{run}");
}

/// An option arpanet does not honour is named once per run, however many
/// hosts it applies to; `Match exec` is never run.
#[test]
fn unhonoured_options_are_warned_about_once_per_run() {
    let cluster = Cluster::start(2);
    let marker = cluster.dir().join("exec-ran");
    fs::write(
        cluster.home.join(".ssh").join("config"),
        format!(
            "Host *\n    ForwardAgent yes\n    Compression yes\n\
             Match exec \"touch {}\"\n    User someone-else\n",
            marker.display()
        ),
    )
    .unwrap();
    let inventory = cluster.inventory(&[]);
    let run = cluster.run(&["exec", "-i", inventory.to_str().unwrap(), "--", "true"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!marker.exists(), "Match exec ran its command");
    let all = format!("{}{}", run.stdout, run.stderr);
    for name in ["`ForwardAgent`", "`Compression`", "`Match exec`"] {
        assert_eq!(all.matches(name).count(), 1, "{name}\n{run}");
    }
}
