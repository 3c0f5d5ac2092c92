//! The modules added for Ansible parity, end to end over real sshd:
//! `lineinfile` and `blockinfile` land the files ansible-playbook 2.19 lands
//! (`tests/fixtures/edits/`), `stat` reports what the file system says,
//! `fail`, `pause`, `wait_for: url` against an HTTP server here, and `apt`, `package` and `systemd` against recording
//! fakes of `apt-get`, `dpkg-query` and `systemctl` (the sshd hosts are
//! this machine, which neither should change nor runs systemd; the lab
//! nodes are where the real ones run).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run::{changed, recap, run, workdir};
use crate::support::{Cluster, TEST_USER};

const EDITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/edits");

/// Copy `from` into `to`, owned by the test user (the files a playbook
/// edits are theirs).
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-rT")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    give_to_test_user(to);
}

fn give_to_test_user(path: &Path) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{TEST_USER}:"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    out.sort();
    out
}

fn show(files: &[(PathBuf, Vec<u8>)]) -> String {
    files
        .iter()
        .map(|(p, b)| format!("== {}\n{}", p.display(), String::from_utf8_lossy(b)))
        .collect()
}

#[test]
fn lineinfile_and_blockinfile_land_what_ansible_lands_and_a_second_run_changes_nothing() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    copy_tree(&Path::new(EDITS).join("before"), &work);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = Path::new(EDITS).join("edits.yml");
    let pb = playbook.to_str().unwrap();

    let first = run(&cluster, &inventory, &[pb]);
    assert_eq!(first.code, 0, "{first}");
    // ansible-playbook's recap of the same run: 14 of 15 tasks changed.
    assert_eq!(changed(&first, "node1"), 14, "{first}");
    let got = files(&work);
    let want = files(&Path::new(EDITS).join("expected"));
    assert_eq!(show(&got), show(&want));
    let mode = fs::metadata(work.join("new/created.conf")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o600);

    let second = run(&cluster, &inventory, &[pb]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(changed(&second, "node1"), 0, "{second}");
    assert_eq!(show(&files(&work)), show(&want));
}

#[test]
fn lineinfile_and_blockinfile_under_check_and_diff_show_the_change_and_touch_nothing() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    copy_tree(&Path::new(EDITS).join("before"), &work);
    let before = files(&work);
    let mtime = fs::metadata(work.join("app.conf"))
        .unwrap()
        .modified()
        .unwrap();
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = Path::new(EDITS).join("edits.yml");

    let out = run(
        &cluster,
        &inventory,
        &[playbook.to_str().unwrap(), "--check", "--diff"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(changed(&out, "node1"), 14, "{out}");
    for line in [
        "-port=22",
        "+port=2222",
        "+debug=true",
        "-#obsolete=1",
        "+user=alice-admin",
        "-10.0.0.1 old",
        "+10.0.0.2 web1",
        "+# start arpanet",
        "-maintenance tonight",
        "+created=yes",
        "--- /dev/null",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.trim_start() == line),
            "no `{line}` in the diff\n{out}"
        );
    }
    assert_eq!(
        show(&files(&work)),
        show(&before),
        "check mode changed a file"
    );
    assert!(!work.join("new").exists(), "check mode made a directory");
    assert_eq!(
        fs::metadata(work.join("app.conf"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
}

#[test]
fn lineinfile_refuses_a_missing_file_without_create_and_bad_patterns_at_load() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let w = work.to_str().unwrap();
    let inventory = cluster.inventory(&[]);
    let missing = cluster.write_file(
        "missing.yml",
        &format!("- hosts: all\n  tasks:\n    - lineinfile: {{path: \"{w}/nope\", line: x}}\n"),
    );
    let out = run(&cluster, &inventory, &[missing.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout
            .contains("does not exist (`create: true` makes it)"),
        "{out}"
    );
    assert!(!work.join("nope").exists());

    let bad = cluster.write_file(
        "bad.yml",
        "- hosts: all\n  tasks:\n    - lineinfile: {path: /x, regexp: 'a(b', line: x}\n",
    );
    let out = run(&cluster, &inventory, &[bad.to_str().unwrap()]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("bad.yml:3:"), "{out}");
    assert!(
        out.stderr.contains("`regexp` is not a regular expression"),
        "{out}"
    );
    assert!(!recap_present(&out), "a host was contacted\n{out}");
}

#[test]
fn validate_must_accept_the_new_file_before_it_replaces_the_old() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let conf = work.join("sudoers");
    fs::write(&conf, "root ALL=(ALL) ALL\n").unwrap();
    give_to_test_user(&conf);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "validate.yml",
        r#"
- hosts: all
  tasks:
    - lineinfile:
        path: "{{ work }}/sudoers"
        line: "deploy ALL=(ALL) NOPASSWD: ALL"
        validate: grep -q '^deploy ' %s
    - lineinfile:
        path: "{{ work }}/sudoers"
        line: "broken"
        validate: sh -c '! grep -q broken "$1"' validate %s
"#,
    );
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("failed validation"), "{out}");
    assert_eq!(
        fs::read_to_string(&conf).unwrap(),
        "root ALL=(ALL) ALL\ndeploy ALL=(ALL) NOPASSWD: ALL\n",
        "the first edit passed its check, the second did not"
    );
    let names: Vec<_> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "a temp file was left: {names:?}");
}

fn recap_present(out: &crate::support::Run) -> bool {
    out.stdout.contains("PLAY RECAP")
}

#[test]
fn stat_reports_what_the_file_system_says() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let file = work.join("data.bin");
    fs::write(&file, b"some bytes\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    give_to_test_user(&file);
    std::os::unix::fs::symlink(&file, work.join("link")).unwrap();
    let w = work.to_str().unwrap();
    let inventory = cluster.inventory(&[("work", w)]);
    let report = work.join("report");
    let playbook = cluster.write_file(
        "stat.yml",
        r#"
- hosts: all
  tasks:
    - stat: {path: "{{ work }}/data.bin"}
      register: f
    - stat: {path: "{{ work }}"}
      register: d
    - stat: {path: "{{ work }}/missing"}
      register: m
    - stat: {path: "{{ work }}/link"}
      register: l
    - stat: {path: "{{ work }}/link", follow: true, checksum_algorithm: sha256}
      register: lf
    - copy:
        dest: "{{ work }}/report"
        content: |
          {{ f.stat.exists }} {{ f.stat.isreg }} {{ f.stat.isdir }} {{ f.stat.mode }} {{ f.stat.uid }} {{ f.stat.gid }} {{ f.stat.pw_name }} {{ f.stat.size }} {{ f.stat.mtime | int }} {{ f.stat.checksum }} {{ f.stat.inode }}
          {{ d.stat.exists }} {{ d.stat.isdir }} {{ d.stat.mode }} {{ 'checksum' in d.stat }}
          {{ m.stat.exists }} {{ 'isdir' in m.stat }}
          {{ l.stat.islnk }} {{ l.stat.lnk_source }} {{ 'checksum' in l.stat }}
          {{ lf.stat.islnk }} {{ lf.stat.checksum }} {{ f.changed }}
"#,
    );
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        recap(&out, "node1").contains("changed=1"),
        "only the report\n{out}"
    );

    let meta = fs::metadata(&file).unwrap();
    let dir = fs::metadata(&work).unwrap();
    let bytes = fs::read(&file).unwrap();
    let sha1 = {
        use sha1::Digest;
        hex::encode(sha1::Sha1::digest(&bytes))
    };
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let owner = String::from_utf8(
        Command::new("id")
            .args(["-nu", &meta.uid().to_string()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let want = format!(
        "True True False {:04o} {} {} {} {} {} {sha1} {}\n\
         True True {:04o} False\n\
         False False\n\
         True {} False\n\
         False {sha256} False\n",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid(),
        owner.trim(),
        meta.len(),
        meta.mtime(),
        meta.ino(),
        dir.mode() & 0o7777,
        file.display(),
    );
    assert_eq!(fs::read_to_string(&report).unwrap(), want);
}

#[test]
fn fail_stops_the_host_with_its_message_and_the_others_go_on() {
    let cluster = Cluster::start(2);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "fail.yml",
        r#"
- hosts: all
  tasks:
    - fail:
        msg: "{{ inventory_hostname }} is not ready"
      when: inventory_hostname == 'node2'
    - file: {path: "{{ work }}/{{ inventory_hostname }}", state: touch}
    - fail:
      when: inventory_hostname == 'node1'
      ignore_errors: true
      register: r
    - copy: {dest: "{{ work }}/msg", content: "{{ r.msg }}"}
"#,
    );
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("node2 is not ready"), "{out}");
    assert!(work.join("node1").exists());
    assert!(!work.join("node2").exists(), "node2 went on after `fail`");
    assert_eq!(
        fs::read_to_string(work.join("msg")).unwrap(),
        "Failed as requested from task"
    );
    assert!(recap(&out, "node2").contains("failed=1"), "{out}");
}

/// An HTTP server on 127.0.0.1 that answers 503 to the first `busy`
/// requests and 200 after; the request lines and `Host` headers it got.
fn warming_server(busy: usize) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if request.is_empty() || line.starts_with("Host:") {
                    request.push_str(line.trim_end());
                    request.push(' ');
                }
                line.clear();
            }
            record.lock().unwrap().push(request.trim_end().to_owned());
            let status = if n < busy {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                reader.into_inner(),
                "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            );
        }
    });
    (port, seen)
}

/// `wait_for: url` asks from the host (through the SSH connection) until
/// the URL answers with the status, and names URL and status when it
/// gives up.
#[test]
fn wait_for_url_waits_for_the_status_and_names_it_when_it_gives_up() {
    let cluster = Cluster::start(1);
    let (port, seen) = warming_server(3);
    let url = format!("http://127.0.0.1:{port}/health");
    let inventory = cluster.inventory(&[("url", url.as_str())]);
    let playbook = cluster.write_file(
        "ready.yml",
        "- hosts: all\n  tasks:\n    - wait_for: {url: \"{{ url }}\", timeout: 20}\n",
    );
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    let requests = seen.lock().unwrap().clone();
    // Three 503s, then the 200 it waited for.
    assert_eq!(requests.len(), 4, "{requests:?}");
    let expected = format!("GET /health HTTP/1.1 Host: 127.0.0.1:{port}");
    assert!(requests.iter().all(|r| *r == expected), "{requests:?}");

    let teapot = cluster.write_file(
        "teapot.yml",
        "- hosts: all\n  tasks:\n    - wait_for: {url: \"{{ url }}\", status_code: 418, timeout: 1}\n",
    );
    let out = run(&cluster, &inventory, &[teapot.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    let said = format!("timed out after 1s waiting for `{url}` (status 418) to answer");
    assert!(out.stdout.contains(&said), "{out}");
}

#[test]
fn pause_waits_its_seconds_and_refuses_a_prompt_without_a_terminal() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "pause.yml",
        r#"
- hosts: all
  tasks:
    - pause: {seconds: 1}
      register: p
    - copy: {dest: "{{ work }}/paused", content: "{{ p.stdout }}"}
    - pause: {prompt: "ready to go on?"}
    - file: {path: "{{ work }}/after", state: touch}
"#,
    );
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        fs::read_to_string(work.join("paused")).unwrap(),
        "Paused for 1 seconds"
    );
    assert!(
        out.stdout
            .contains("`pause` wants an answer to `ready to go on?` but stdin is not a terminal"),
        "{out}"
    );
    assert!(!work.join("after").exists());
}

/// A directory of fake `apt-get`, `apt-cache`, `dpkg-query` and
/// `systemctl` that keep their state in `state/` and log each call with
/// the environment that matters, and sshd hosts whose sessions find them
/// first on the PATH.
struct Fakes {
    cluster: Cluster,
    state: PathBuf,
    _bin: tempfile::TempDir,
}

impl Fakes {
    fn start() -> Fakes {
        let dir = tempfile::Builder::new()
            .prefix("arpanet-fakes-")
            .tempdir()
            .unwrap();
        let bin = dir.path().to_path_buf();
        let state = bin.join("state");
        for dir in [&state, &state.join("installed"), &state.join("units")] {
            fs::create_dir_all(dir).unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
        }
        let s = state.display();
        let scripts = [
            (
                "apt-get",
                format!(
                    "#!/bin/sh\necho \"apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND\" >> {s}/calls\n\
                     verb=; for a in \"$@\"; do case \"$a\" in install|remove|purge|update) verb=$a;; -*|*=*) ;; *) \
                     [ -n \"$verb\" ] && case $verb in install) echo 1.0 > {s}/installed/$a;; remove|purge) rm -f {s}/installed/$a;; esac;; esac; done\n"
                ),
            ),
            (
                "dpkg-query",
                format!(
                    "#!/bin/sh\nfor n; do :; done\nf={s}/installed/$n\nif [ -f $f ]; then \
                     case \"$*\" in *Status*) printf 'ii ';; *) cat $f | tr -d '\\n';; esac; \
                     else case \"$*\" in *Status*) printf 'un ';; esac; fi\n"
                ),
            ),
            (
                "apt-cache",
                format!(
                    "#!/bin/sh\nfor n; do :; done\necho \"$n:\"\necho \"  Installed: $(cat {s}/installed/$n 2>/dev/null || echo '(none)')\"\n\
                     echo \"  Candidate: 2.0\"\n"
                ),
            ),
            (
                "systemctl",
                format!(
                    "#!/bin/sh\necho \"systemctl $*\" >> {s}/calls\nu={s}/units/$2\ncase $1 in\n\
                     is-enabled) if [ -f $u.masked ]; then echo masked; exit 1; fi; \
                     if [ -f $u.enabled ]; then echo enabled; else echo disabled; exit 1; fi;;\n\
                     show) for n; do :; done; if [ -f {s}/units/$n.active ]; then echo active; else echo inactive; fi;;\n\
                     enable) touch $u.enabled;; disable) rm -f $u.enabled;;\n\
                     mask) touch $u.masked;; unmask) rm -f $u.masked;;\n\
                     start|restart) touch $u.active;; stop) rm -f $u.active;;\nesac\n"
                ),
            ),
        ];
        for (name, text) in scripts {
            let path = bin.join(name);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Command::new("chown")
            .arg("-R")
            .arg(format!("{TEST_USER}:"))
            .arg(&bin)
            .status()
            .unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let config = format!(
            "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n",
            bin.display()
        );
        Fakes {
            cluster: Cluster::start_with_config(1, &config),
            state,
            _bin: dir,
        }
    }

    /// The calls logged since the last look.
    fn calls(&self) -> Vec<String> {
        let path = self.state.join("calls");
        let text = fs::read_to_string(&path).unwrap_or_default();
        let _ = fs::remove_file(&path);
        text.lines().map(str::to_owned).collect()
    }

    fn install(&self, name: &str) {
        let path = self.state.join("installed").join(name);
        fs::write(&path, "1.0\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    }

    fn installed(&self, name: &str) -> bool {
        self.state.join("installed").join(name).exists()
    }
}

#[test]
fn apt_installs_and_removes_only_what_differs_noninteractively() {
    let fakes = Fakes::start();
    let cluster = &fakes.cluster;
    fakes.install("curl");
    let inventory = cluster.inventory(&[]);
    let install = cluster.write_file(
        "install.yml",
        "- hosts: all\n  tasks:\n    - apt:\n        name: [curl, jq]\n        update_cache: true\n        cache_valid_time: 0\n",
    );
    let pb = install.to_str().unwrap();

    let out = run(cluster, &inventory, &[pb, "--check"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(changed(&out, "node1"), 1, "{out}");
    assert_eq!(
        fakes.calls(),
        Vec::<String>::new(),
        "check mode ran apt-get"
    );
    assert!(!fakes.installed("jq"));

    let out = run(cluster, &inventory, &[pb]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(changed(&out, "node1"), 1, "{out}");
    assert_eq!(
        fakes.calls(),
        [
            "apt-get -o DPkg::Lock::Timeout=60 -q update DEBIAN_FRONTEND=noninteractive",
            "apt-get -o DPkg::Lock::Timeout=60 -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install jq DEBIAN_FRONTEND=noninteractive",
        ]
    );
    assert!(fakes.installed("jq"));

    // Installed already: the index is refreshed (cache_valid_time 0) but
    // nothing is installed, so nothing changed.
    let out = run(cluster, &inventory, &[pb]);
    assert_eq!(changed(&out, "node1"), 0, "{out}");
    assert_eq!(fakes.calls().len(), 1, "only the update");

    let remove = cluster.write_file(
        "remove.yml",
        "- hosts: all\n  tasks:\n    - package: {name: jq, state: absent}\n    - apt: {name: nothere, state: absent, purge: true}\n",
    );
    let out = run(cluster, &inventory, &[remove.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(changed(&out, "node1"), 1, "{out}");
    assert_eq!(
        fakes.calls(),
        ["apt-get -o DPkg::Lock::Timeout=60 -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold remove jq DEBIAN_FRONTEND=noninteractive"]
    );
    assert!(!fakes.installed("jq"));
    assert!(fakes.installed("curl"));

    let latest = cluster.write_file(
        "latest.yml",
        "- hosts: all\n  tasks:\n    - apt: {name: curl, state: latest}\n",
    );
    let out = run(cluster, &inventory, &[latest.to_str().unwrap()]);
    assert_eq!(
        changed(&out, "node1"),
        1,
        "1.0 installed, 2.0 the candidate\n{out}"
    );
    assert_eq!(
        fakes.calls(),
        ["apt-get -o DPkg::Lock::Timeout=60 -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install curl DEBIAN_FRONTEND=noninteractive"]
    );
}

#[test]
fn systemd_reloads_then_enables_and_starts_only_what_differs() {
    let fakes = Fakes::start();
    let cluster = &fakes.cluster;
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "unit.yml",
        r#"
- hosts: all
  tasks:
    - systemd:
        name: app
        daemon_reload: true
        enabled: true
        state: started
      register: r
    - ansible.builtin.systemd_service: {name: cups, masked: true}
    - debug: {msg: "enabled={{ r.enabled }} state={{ r.state }}"}
"#,
    );
    let pb = playbook.to_str().unwrap();
    let out = run(cluster, &inventory, &[pb]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(changed(&out, "node1"), 2, "{out}");
    assert!(out.stdout.contains("enabled=True state=started"), "{out}");
    assert_eq!(
        fakes.calls(),
        [
            "systemctl daemon-reload",
            "systemctl is-enabled app -l",
            "systemctl enable app",
            "systemctl show -p ActiveState --value app",
            "systemctl start app",
            "systemctl is-enabled cups",
            "systemctl mask cups",
        ]
    );

    let out = run(cluster, &inventory, &[pb]);
    assert_eq!(
        changed(&out, "node1"),
        0,
        "a reload alone is no change\n{out}"
    );
    let calls = fakes.calls();
    assert_eq!(calls[0], "systemctl daemon-reload");
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(" enable ") || c.contains(" start ") || c.contains(" mask ")),
        "{calls:?}"
    );

    let out = run(cluster, &inventory, &[pb, "--check"]);
    assert_eq!(changed(&out, "node1"), 0, "{out}");
    assert!(
        !fakes.calls().iter().any(|c| c.contains("daemon-reload")),
        "check mode reloaded"
    );
}

#[test]
fn a_free_form_command_takes_its_options_as_key_value_words() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let dir = cluster.dir().join("inline");
    fs::create_dir_all(&dir).unwrap();
    give_to_test_user(&dir);
    let marker = dir.join("made");
    let playbook = cluster.write_file(
        "inline.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - command: touch {m} creates={m}\n      register: first\n\
             \x20   - command: touch {m} creates={m}\n      register: again\n\
             \x20   - shell: pwd chdir=/usr\n      register: here\n\
             \x20   - command: touch {m}2 creates={m}\n      args: {{chdir: /}}\n      register: with_args\n\
             \x20   - debug: {{msg: \"first={{{{ first is skipped }}}} again={{{{ again is skipped }}}} \
             here={{{{ here.stdout }}}} args={{{{ with_args is skipped }}}}\"}}\n",
            m = marker.display()
        ),
    );
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(marker.exists(), "{out}");
    assert!(
        out.stdout
            .contains("first=False again=True here=/usr args=True"),
        "{out}"
    );
}

#[test]
fn an_argument_that_renders_to_omit_is_left_out() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let dir = cluster.dir().join("omitted");
    fs::create_dir_all(&dir).unwrap();
    give_to_test_user(&dir);
    let playbook = cluster.write_file(
        "omit.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - file: {{path: \"{d}/made\", state: directory, mode: \"{{{{ dir_mode | default(omit) }}}}\"}}\n\
             \x20   - copy: {{dest: \"{d}/note\", content: \"hi\\n\", mode: \"{{{{ file_mode | default(omit) }}}}\"}}\n\
             \x20   - command:\n        cmd: pwd\n        chdir: \"{{{{ where | default(omit) }}}}\"\n      register: here\n\
             \x20   - copy: {{dest: \"{d}/where\", content: \"{{{{ here.stdout }}}} {{{{ omit is string }}}}\\n\"}}\n",
            d = dir.display()
        ),
    );
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        "-e",
        "file_mode=0640",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(dir.join("made").is_dir(), "{out}");
    let mode = fs::metadata(dir.join("note")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "{out}");
    let home = fs::read_to_string(dir.join("where")).unwrap();
    assert!(!home.contains("omit"), "{home}");
    assert!(home.ends_with(" True\n"), "{home}");
}

#[test]
fn ansible_filters_regexes_and_python_methods_work_in_a_playbook() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let dir = cluster.dir().join("templating");
    fs::create_dir_all(&dir).unwrap();
    give_to_test_user(&dir);
    // As an Ansible user writes them: single-quoted YAML, so `\1` and
    // `\d` reach the template as written.
    let playbook = cluster.write_file(
        "templating.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - command: uname -n\n      register: un\n\
             \x20   - set_fact:\n        parts: '{{{{ (un.stdout ~ \".v12.x\").split(\".\")[-2:] }}}}'\n\
             \x20   - copy:\n        dest: {d}/out\n        content: '{{{{ un.stdout | regex_replace(\"^(.*)$\", \"<\\1>\") }}}} \
             {{{{ un.stdout.upper() }}}} {{{{ parts | join(\",\") | regex_search(\"\\d+\") }}}} \
             {{{{ {{\"a\": 1}} | combine({{\"b\": parts}}) | dict2items | map(attribute=\"key\") | join }}}}'\n",
            d = dir.display()
        ),
    );
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    let name = String::from_utf8(
        std::process::Command::new("uname")
            .arg("-n")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let name = name.trim();
    let written = fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(
        written,
        format!("<{name}> {} 12 ab", name.to_uppercase()),
        "{out}"
    );
}
