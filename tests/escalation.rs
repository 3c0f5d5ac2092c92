//! `become` over real sshd: unprivileged login users made for each test
//! (one allowed sudo without a password, one with its password), sudo and
//! su on this machine, and what only escalation makes: `id -un` answering
//! another name, files owned by root in a directory the login user cannot
//! write, a wrong password failing only its host.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Cluster, Run};

/// Users made for one test, removed (with their sudoers drop-ins) when it
/// ends.
struct Users {
    names: Vec<String>,
    sudoers: Vec<String>,
}

impl Users {
    fn new() -> Users {
        Users {
            names: Vec::new(),
            sudoers: Vec::new(),
        }
    }

    /// A fresh user with a unique name, login shell `/bin/sh`; with
    /// `password`, that password, else no password (but not locked, so
    /// sshd lets it in with a key).
    fn add(&mut self, role: &str, password: Option<&str>) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ab{}{role}{n}", std::process::id());
        let mut made = false;
        for _ in 0..50 {
            // Other tests may hold the passwd lock: retry.
            let ok = Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                made = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(made, "cannot create user {name}");
        self.names.push(name.clone());
        match password {
            Some(password) => {
                let mut child = Command::new("chpasswd")
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{name}:{password}\n").as_bytes())
                    .unwrap();
                assert!(child.wait().unwrap().success(), "chpasswd {name}");
            }
            None => {
                let ok = Command::new("usermod").args(["-p", "*", &name]).status();
                assert!(ok.unwrap().success(), "usermod {name}");
            }
        }
        name
    }

    /// A sudoers drop-in: `user` may run anything as anyone, with or
    /// without its password.
    fn sudoer(&mut self, user: &str, nopasswd: bool) {
        let path = format!("/etc/sudoers.d/arpanet-test-{user}");
        let tag = if nopasswd { "NOPASSWD: " } else { "" };
        fs::write(&path, format!("{user} ALL=(ALL:ALL) {tag}ALL\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o440)).unwrap();
        self.sudoers.push(path);
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for path in &self.sudoers {
            let _ = fs::remove_file(path);
        }
        for name in &self.names {
            let _ = Command::new("userdel")
                .args(["-r", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn random_password() -> String {
    format!("pw-{:016x}-Zq", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// A cluster of `n` hosts reached as `user`.
fn cluster_as(n: usize, user: &str) -> Cluster {
    let mut cluster = Cluster::start(n);
    cluster.user = user.to_owned();
    cluster
}

/// A directory only root may write, readable by all (the login users can
/// list it but not create files in it).
fn root_only_dir(cluster: &Cluster) -> std::path::PathBuf {
    let dir = cluster.dir().join("root-only");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The JSON events of a run with `--output json`.
fn events(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The message of `task` on `host` in a JSON run.
fn message(run: &Run, host: &str, task: &str) -> String {
    events(run)
        .iter()
        .find(|e| e["event"] == "host" && e["host"] == host && e["task"] == task)
        .and_then(|e| e["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no message of `{task}` on {host}\n{run}"))
}

fn status(run: &Run, host: &str, task: &str) -> String {
    events(run)
        .iter()
        .find(|e| e["event"] == "host" && e["host"] == host && e["task"] == task)
        .and_then(|e| e["status"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no status of `{task}` on {host}\n{run}"))
}

/// A playbook printing who runs `id -un` as: the login user, with become
/// (root) and as `other`.
fn whoami_playbook(cluster: &Cluster, play_keys: &str, other: &str) -> std::path::PathBuf {
    cluster.write_file(
        "whoami.yml",
        &format!(
            "- hosts: all\n{play_keys}  tasks:\n\
             \x20   - command: id -un\n      register: plain\n      become: false\n\
             \x20   - debug: {{msg: \"{{{{ plain.stdout }}}}\"}}\n      name: plain\n\
             \x20   - command: id -un\n      register: escalated\n      become: true\n\
             \x20   - debug: {{msg: \"{{{{ escalated.stdout }}}}\"}}\n      name: escalated\n\
             \x20   - command: id -un\n      register: other\n      become: true\n      become_user: {other}\n\
             \x20   - debug: {{msg: \"{{{{ other.stdout }}}}\"}}\n      name: other\n"
        ),
    )
}

#[test]
fn become_without_a_password_runs_as_root_or_another_user_and_writes_root_owned_files() {
    let mut users = Users::new();
    let login = users.add("n", None);
    users.sudoer(&login, true);
    let other = users.add("o", None);
    let cluster = cluster_as(1, &login);
    let dir = root_only_dir(&cluster);
    let inventory = cluster.inventory(&[]);
    let playbook = whoami_playbook(&cluster, "", &other);
    // A run password is set but never asked for: it must not end up in
    // anything a command reads.
    let password = random_password();
    let run = cluster.run_with_env(
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            "-o",
            "json",
            playbook.to_str().unwrap(),
        ],
        &[("ARPANET_BECOME_PASS", &password)],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(message(&run, "node1", "plain"), login);
    assert_eq!(message(&run, "node1", "escalated"), "root");
    assert_eq!(message(&run, "node1", "other"), other);

    // File modules write as the become user, with a stdin upload.
    let copied = dir.join("copied.txt");
    let templated = dir.join("templated.txt");
    let made = dir.join("made");
    let content = format!("content {}\nsecond line\n", rand_u64());
    cluster.write_file("t.j2", "host {{ inventory_hostname }}\n");
    let files = cluster.write_file(
        "files.yml",
        &format!(
            "- hosts: all\n  become: true\n  tasks:\n\
             \x20   - copy: {{content: {content:?}, dest: {copied}}}\n\
             \x20   - template: {{src: t.j2, dest: {templated}, mode: \"0640\", owner: {other}}}\n\
             \x20   - file: {{path: {made}, state: directory}}\n",
            copied = copied.display(),
            templated = templated.display(),
            made = made.display(),
        ),
    );
    let run = cluster.run_with_env(
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            files.to_str().unwrap(),
        ],
        &[("ARPANET_BECOME_PASS", &password)],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(fs::read_to_string(&copied).unwrap(), content);
    let meta = fs::metadata(&copied).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "copy as root");
    assert_eq!(meta.mode() & 0o777, 0o644);
    assert_eq!(fs::read_to_string(&templated).unwrap(), "host node1\n");
    let meta = fs::metadata(&templated).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid_of(&other), 0o640));
    assert_eq!(fs::metadata(&made).unwrap().uid(), 0);
    // No temp file left behind.
    let left: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".arpanet"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A second run changes nothing.
    let again = cluster.run_with_env(
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            files.to_str().unwrap(),
        ],
        &[("ARPANET_BECOME_PASS", &password)],
    );
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stdout.contains("changed=0"), "{again}");

    // Without become the same write is refused: the directory is root's.
    let plain = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        "-e",
        "ansible_become=false",
        files.to_str().unwrap(),
    ]);
    assert_eq!(plain.code, 2, "{plain}");
}

#[test]
fn become_with_a_password_from_the_environment_or_the_inventory() {
    let mut users = Users::new();
    let password = random_password();
    let login = users.add("p", Some(&password));
    users.sudoer(&login, false);
    let cluster = cluster_as(1, &login);
    let dir = root_only_dir(&cluster);
    let inventory = cluster.inventory(&[]);
    let target = dir.join("uploaded.bin");
    // Binary content with newlines and what looks like a password prompt
    // answer: it must arrive intact after the password.
    let content: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let src = cluster.write_file("upload.txt", &content);
    let playbook = cluster.write_file(
        "pw.yml",
        &format!(
            "- hosts: all\n  become: yes\n  tasks:\n\
             \x20   - command: id -un\n      register: who\n\
             \x20   - debug: {{msg: \"{{{{ who.stdout }}}}\"}}\n      name: who\n\
             \x20   - copy: {{src: {}, dest: {}}}\n",
            src.display(),
            target.display()
        ),
    );
    let run = cluster.run_with_env(
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            "-o",
            "json",
            "-v",
            playbook.to_str().unwrap(),
        ],
        &[("ARPANET_BECOME_PASS", &password)],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(message(&run, "node1", "who"), "root");
    assert_eq!(fs::read_to_string(&target).unwrap(), content);
    assert_eq!(fs::metadata(&target).unwrap().uid(), 0);
    // `-v` says who each command runs as.
    assert!(run.stdout.contains("id -un  (as `root` via sudo)"), "{run}");
    assert!(
        !run.stdout.contains(&password) && !run.stderr.contains(&password),
        "{run}"
    );

    // The same from the inventory, without the environment variable.
    fs::remove_file(&target).unwrap();
    let inventory = cluster.inventory(&[("ansible_become_pass", &password)]);
    let run = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        "-o",
        "json",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(message(&run, "node1", "who"), "root");
    assert_eq!(fs::read_to_string(&target).unwrap(), content);

    // No password at all: the failure says how to give one.
    let inventory = cluster.inventory(&[]);
    let run = cluster.run_playbook(&inventory, &playbook);
    assert_eq!(run.code, 2, "{run}");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("asks for a password"), "{run}");
    assert!(
        all.contains("ARPANET_BECOME_PASS") && all.contains("-K"),
        "{run}"
    );
}

#[test]
fn a_wrong_password_fails_its_host_only_and_never_shows() {
    let mut users = Users::new();
    let password = random_password();
    let login = users.add("w", Some(&password));
    users.sudoer(&login, false);
    let cluster = cluster_as(2, &login);
    let wrong = random_password();
    // node1 gets a wrong password in the inventory, node2 the right one.
    let text = format!(
        "{} ansible_become_pass={wrong}\n{} ansible_become_pass={password}\n",
        cluster.host_line(0),
        cluster.host_line(1)
    );
    let inventory = cluster.write_file("inventory.ini", &text);
    let playbook = cluster.write_file(
        "wrong.yml",
        "- hosts: all\n  become: true\n  tasks:\n\
         \x20   - command: id -un\n      register: who\n\
         \x20   - debug: {msg: \"{{ who.stdout }}\"}\n      name: who\n",
    );
    for format in ["json", "human"] {
        let run = cluster.run(&[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            "-o",
            format,
            "-vvv",
            playbook.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 2, "{run}");
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(all.contains("become password refused"), "{run}");
        assert!(all.contains(&login), "names the user: {run}");
        for secret in [&wrong, &password] {
            assert!(!all.contains(secret.as_str()), "a password shows:\n{run}");
        }
        if format == "json" {
            assert_eq!(status(&run, "node1", "command: id -un"), "failed");
            assert_eq!(message(&run, "node2", "who"), "root");
        }
    }
}

#[test]
fn su_with_the_target_users_password() {
    let mut users = Users::new();
    let login = users.add("s", None);
    let target_password = random_password();
    let target = users.add("t", Some(&target_password));
    let cluster = cluster_as(1, &login);
    let inventory = cluster.inventory(&[]);
    // A directory only the target user may write to.
    let own = cluster.dir().join("target-only");
    fs::create_dir_all(&own).unwrap();
    let owner = Command::new("chown").arg(&target).arg(&own).status();
    assert!(owner.unwrap().success());
    let dest = own.join("by-su.txt");
    let playbook = cluster.write_file(
        "su.yml",
        &format!(
            "- hosts: all\n  become: true\n  become_method: su\n  become_user: {target}\n  tasks:\n\
             \x20   - command: id -un\n      register: who\n\
             \x20   - debug: {{msg: \"{{{{ who.stdout }}}}\"}}\n      name: who\n\
             \x20   - copy: {{content: \"by su\\n\", dest: {}}}\n",
            dest.display()
        ),
    );
    let run = cluster.run_with_env(
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            "-o",
            "json",
            playbook.to_str().unwrap(),
        ],
        &[("ARPANET_BECOME_PASS", &target_password)],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(message(&run, "node1", "who"), target);
    assert_eq!(fs::read_to_string(&dest).unwrap(), "by su\n");
    assert_eq!(fs::metadata(&dest).unwrap().uid(), uid_of(&target));
    assert!(!run.stdout.contains(&target_password) && !run.stderr.contains(&target_password));

    let wrong = random_password();
    let run = cluster.run_with_env(
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            playbook.to_str().unwrap(),
        ],
        &[("ARPANET_BECOME_PASS", &wrong)],
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.contains("become password refused"), "{run}");
    assert!(
        !run.stdout.contains(&wrong) && !run.stderr.contains(&wrong),
        "{run}"
    );
}

#[test]
fn the_password_is_not_on_the_process_list_during_a_long_task() {
    let mut users = Users::new();
    let password = random_password();
    let login = users.add("l", Some(&password));
    users.sudoer(&login, false);
    let cluster = cluster_as(1, &login);
    let inventory = cluster.inventory(&[]);
    let marker = format!("{}", 40_000 + rand_u64() % 10_000);
    let playbook = cluster.write_file(
        "long.yml",
        &format!("- hosts: all\n  become: true\n  tasks:\n    - command: sleep 4.{marker}\n"),
    );
    let mut child = crate::support::spawn_arpanet(
        &cluster.home,
        cluster.dir(),
        &[
            "run",
            "-i",
            inventory.to_str().unwrap(),
            playbook.to_str().unwrap(),
        ],
        &[("ARPANET_BECOME_PASS", &password)],
    );
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let commands = cluster.hosts[0].session_commands();
        if commands
            .iter()
            .any(|c| c.starts_with("sleep 4.") && c.contains(&marker))
        {
            seen = commands;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !seen.is_empty(),
        "the sleep never showed in the process table"
    );
    assert!(
        seen.iter().any(|c| c.starts_with("sudo ")),
        "runs through sudo: {seen:?}"
    );
    assert!(
        !seen.iter().any(|c| c.contains(&password)),
        "the password is on the process list: {seen:?}"
    );
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn become_from_the_command_line_and_the_inventory() {
    let mut users = Users::new();
    let login = users.add("c", None);
    users.sudoer(&login, true);
    let cluster = cluster_as(2, &login);
    let inventory = cluster.inventory(&[]);
    let exec = |extra: &[&str], inventory: &Path| {
        let mut args = vec!["exec", "-i", inventory.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "id", "-un"]);
        cluster.run(&args)
    };
    let plain = exec(&[], &inventory);
    assert_eq!(plain.code, 0, "{plain}");
    assert!(
        plain
            .stdout
            .contains(&format!("\"message\":\"{login}\\n\"")),
        "{plain}"
    );
    let run = exec(&["-b"], &inventory);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.stdout.matches("\"message\":\"root\\n\"").count(),
        2,
        "{run}"
    );
    // Streamed line by line through sudo too.
    assert_eq!(
        run.stdout
            .matches("\"stream\":\"stdout\",\"line\":\"root\"}")
            .count(),
        2,
        "{run}"
    );
    let other = users.add("d", None);
    let run = exec(&["--become", "--become-user", &other], &inventory);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.stdout
            .matches(&format!("\"message\":\"{other}\\n\""))
            .count(),
        2,
        "{run}"
    );

    // `ansible_become` in the inventory, for one group only.
    let inventory = cluster.inventory_with_groups(&[("admins", &[1])], &[]);
    let text = fs::read_to_string(&inventory).unwrap() + "\n[admins:vars]\nansible_become=true\n";
    fs::write(&inventory, text).unwrap();
    let run = exec(&[], &inventory);
    assert_eq!(run.code, 0, "{run}");
    let by_host = |host: &str| message(&run, host, "exec: id -un");
    assert_eq!(by_host("node1"), format!("{login}\n"));
    assert_eq!(by_host("node2"), "root\n");

    // The command reaches the shell as written, double spaces and quotes
    // included.
    let line = "printf '%s|' \"a  b\" 'it'\\''s'";
    let run = cluster.run(&[
        "exec",
        "-b",
        "-i",
        inventory.to_str().unwrap(),
        "-o",
        "json",
        "--",
        line,
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        message(&run, "node1", &format!("exec: {line}")),
        "a  b|it's|"
    );

    // A bad method is refused before any host is touched.
    let bad = cluster.write_file(
        "bad.yml",
        "- hosts: all\n  become: true\n  become_method: doas\n  tasks:\n    - command: true\n",
    );
    let run = cluster.run_playbook(&inventory, &bad);
    assert_eq!(run.code, 5, "{run}");
    assert!(
        run.stderr.contains("bad.yml:3") && run.stderr.contains("doas"),
        "{run}"
    );
    let run = cluster.run(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "-e",
        "ansible_become_method=doas",
        "--",
        "true",
    ]);
    assert_eq!(run.code, 5, "{run}");
    assert!(
        run.stderr.contains("`ansible_become_method` is `doas`"),
        "{run}"
    );
}

#[test]
fn ask_become_pass_without_a_terminal_is_refused() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    // setsid: no controlling terminal, whatever ran the tests.
    let out = Command::new("setsid")
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_arpanet"))
        .args([
            "exec",
            "-K",
            "-i",
            inventory.to_str().unwrap(),
            "--",
            "true",
        ])
        .env("HOME", &cluster.home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("needs a terminal"), "{stderr}");
    assert!(stderr.contains("ARPANET_BECOME_PASS"), "{stderr}");
}

#[test]
fn a_timed_out_become_task_is_stopped_on_the_host() {
    let mut users = Users::new();
    let login = users.add("k", None);
    users.sudoer(&login, true);
    let cluster = cluster_as(1, &login);
    let inventory = cluster.inventory(&[]);
    let marker = format!("{}", 50_000 + rand_u64() % 10_000);
    let playbook = cluster.write_file(
        "stuck.yml",
        &format!(
            "- hosts: all\n  become: true\n  tasks:\n    - command: sleep 60.{marker}\n      timeout: 1\n"
        ),
    );
    let run = cluster.run_playbook(&inventory, &playbook);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.contains("timed out after 1 s"), "{run}");
    // The root-owned sleep went with it (sudo passes sshd's signal on).
    let sleeping = || {
        Command::new("pgrep")
            .args(["-f", &format!("sleep 60.{marker}")])
            .output()
            .unwrap()
            .stdout
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !sleeping().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        sleeping().is_empty(),
        "the become task still runs on the host"
    );
}

#[test]
fn a_blocks_become_reaches_its_tasks_with_their_environment() {
    let mut users = Users::new();
    let login = users.add("b", None);
    users.sudoer(&login, true);
    let cluster = cluster_as(1, &login);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "block.yml",
        "- hosts: all\n  tasks:\n\
         \x20   - block:\n\
         \x20       - command: id -un\n          register: inside\n\
         \x20       - shell: echo \"$GREETING from $(id -un)\"\n          register: env\n          environment: {GREETING: hello}\n\
         \x20       - command: id -un\n          register: local\n          delegate_to: localhost\n\
         \x20     become: true\n\
         \x20   - command: id -un\n      register: outside\n\
         \x20   - debug: {msg: \"{{ inside.stdout }}|{{ env.stdout }}|{{ outside.stdout }}\"}\n      name: seen\n",
    );
    let run = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        "-o",
        "json",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        message(&run, "node1", "seen"),
        format!("root|hello from root|{login}")
    );
}

#[test]
fn a_sysv_service_is_enabled_and_disabled_once_then_left_alone() {
    // A host without systemd keeps boot order in runlevel links: the
    // service module reads them, so a second run changes nothing (it ran
    // update-rc.d, and said changed, on every run).
    let mut users = Users::new();
    let login = users.add("v", None);
    users.sudoer(&login, true);
    let cluster = cluster_as(1, &login);
    let name = format!("arpanet-test-{}", std::process::id());
    let script = std::path::PathBuf::from(format!("/etc/init.d/{name}"));
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("update-rc.d")
                .args(["-f", &self.0, "remove"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = fs::remove_file(format!("/etc/init.d/{}", self.0));
        }
    }
    let _remove = Remove(name.clone());
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n### BEGIN INIT INFO\n# Provides: {name}\n# Default-Start: 2 3 4 5\n\
             # Default-Stop: 0 1 6\n### END INIT INFO\nexit 0\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let inventory = cluster.inventory(&[]);
    let playbook = |enabled: bool| {
        cluster.write_file(
            "svc.yml",
            &format!(
                "- hosts: all\n  become: true\n  tasks:\n    - name: boot\n      service: \
                 {{name: {name}, enabled: {enabled}}}\n"
            ),
        )
    };
    let links = || {
        let mut found: Vec<String> = fs::read_dir("/etc/rc2.d")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.ends_with(&name))
            .map(|f| f[..1].to_owned())
            .collect();
        found.sort();
        found
    };
    let systemd = std::path::Path::new("/run/systemd/system").is_dir();
    for (enabled, link) in [(true, "S"), (false, "K")] {
        let playbook = playbook(enabled);
        for expected in ["changed", "ok"] {
            let run = cluster.run(&[
                "run",
                "-i",
                inventory.to_str().unwrap(),
                "-o",
                "json",
                playbook.to_str().unwrap(),
            ]);
            assert_eq!(run.code, 0, "{run}");
            assert_eq!(
                status(&run, "node1", "boot"),
                expected,
                "enabled={enabled}\n{run}"
            );
            if !systemd {
                assert_eq!(links(), [link], "enabled={enabled}\n{run}");
            }
        }
    }
}
