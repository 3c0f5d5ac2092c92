//! `arpanet run` and `arpanet exec` end to end: the built binary against real
//! sshd hosts, checking files on disk and the output a user reads.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Cluster, Run, TEST_USER};

/// A directory the test user can write to, inside the cluster's tempdir.
pub(crate) fn workdir(cluster: &Cluster) -> PathBuf {
    let dir = cluster.dir().join("work");
    fs::create_dir_all(&dir).unwrap();
    let status = Command::new("chown")
        .arg(format!("{TEST_USER}:"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn args<'a>(inventory: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-i", inventory.to_str().unwrap()];
    v.extend_from_slice(rest);
    v
}

pub(crate) fn run(cluster: &Cluster, inventory: &Path, rest: &[&str]) -> Run {
    let mut all = vec!["run"];
    all.extend(args(inventory, rest));
    cluster.run(&all)
}

/// The recap line of `host`, e.g. `ok=3 changed=1 ...`.
pub(crate) fn recap<'a>(run: &'a Run, host: &str) -> &'a str {
    let start = run
        .stdout
        .find("PLAY RECAP")
        .unwrap_or_else(|| panic!("no recap\n{run}"));
    run.stdout[start..]
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no recap line for {host}\n{run}"))
}

pub(crate) fn changed(run: &Run, host: &str) -> usize {
    let line = recap(run, host);
    let field = line
        .split_whitespace()
        .find(|w| w.starts_with("changed="))
        .unwrap();
    field["changed=".len()..].parse().unwrap()
}

#[test]
fn a_multi_play_playbook_renders_precedence_into_files_and_a_second_run_changes_nothing() {
    let cluster = Cluster::start(5);
    let work = workdir(&cluster);
    let inventory = cluster.inventory_with_groups(
        &[("servers", &[0, 1, 2]), ("clients", &[3, 4])],
        &[
            ("colour", "from-all"),
            ("size", "from-all"),
            ("shape", "from-all"),
            ("work", work.to_str().unwrap()),
        ],
    );
    cluster.write_file(
        "group_vars/servers.yml",
        "colour: from-servers\nsize: from-servers\n",
    );
    cluster.write_file("host_vars/node1.yml", "colour: from-host\n");
    cluster.write_file("templates/report.j2", "{{ inventory_hostname }} colour={{ colour }} size={{ size }} shape={{ shape }} play={{ play_var }} extra={{ extra }}\n");
    let playbook = cluster.write_file(
        "site.yml",
        r#"
- name: first play
  hosts: servers
  vars:
    play_var: servers-play
  tasks:
    - name: render the report
      template:
        src: report.j2
        dest: "{{ work }}/{{ inventory_hostname }}.txt"
        mode: "0640"
- name: second play
  hosts: clients
  vars:
    play_var: clients-play
  tasks:
    - name: render the report
      template:
        src: report.j2
        dest: "{{ work }}/{{ inventory_hostname }}.txt"
    - name: a directory
      file:
        path: "{{ work }}/{{ inventory_hostname }}.d"
        state: directory
"#,
    );
    let pb = playbook.to_str().unwrap();
    let first = run(
        &cluster,
        &inventory,
        &[pb, "-e", "extra=cli", "-e", "shape=cli"],
    );
    assert_eq!(first.code, 0, "{first}");
    let read = |h: &str| fs::read_to_string(work.join(format!("{h}.txt"))).unwrap();
    assert_eq!(
        read("node1"),
        "node1 colour=from-host size=from-servers shape=cli play=servers-play extra=cli\n"
    );
    assert_eq!(
        read("node2"),
        "node2 colour=from-servers size=from-servers shape=cli play=servers-play extra=cli\n"
    );
    assert_eq!(
        read("node4"),
        "node4 colour=from-all size=from-all shape=cli play=clients-play extra=cli\n"
    );
    assert!(work.join("node5.d").is_dir());
    assert_eq!(changed(&first, "node1"), 1);
    assert_eq!(changed(&first, "node4"), 2);
    let mode = fs::metadata(work.join("node1.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o640
    );

    let second = run(
        &cluster,
        &inventory,
        &[pb, "-e", "extra=cli", "-e", "shape=cli"],
    );
    assert_eq!(second.code, 0, "{second}");
    for i in 0..5 {
        assert_eq!(changed(&second, &cluster.name(i)), 0, "{second}");
    }
    assert!(!second.stdout.contains("changed: ["), "{second}");
}

#[test]
fn handlers_fire_once_and_only_where_notified() {
    let cluster = Cluster::start(2);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "handlers.yml",
        r#"
- hosts: all
  tasks:
    - name: config only on node1
      copy:
        content: "v1\n"
        dest: "{{ work }}/{{ inventory_hostname }}.conf"
      when: inventory_hostname == "node1"
      notify: restart
    - name: second change on node1
      copy:
        content: "other\n"
        dest: "{{ work }}/{{ inventory_hostname }}.other"
      when: inventory_hostname == "node1"
      notify: restart
  handlers:
    - name: restart
      shell: echo restarted >> {{ work }}/{{ inventory_hostname }}.restarts
"#,
    );
    let first = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(
        fs::read_to_string(work.join("node1.restarts")).unwrap(),
        "restarted\n"
    );
    assert!(!work.join("node2.restarts").exists());
    assert!(
        first.stdout.contains("RUNNING HANDLER [restart]"),
        "{first}"
    );

    let second = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(
        fs::read_to_string(work.join("node1.restarts")).unwrap(),
        "restarted\n",
        "{second}"
    );
    assert!(!second.stdout.contains("RUNNING HANDLER"), "{second}");
}

#[test]
fn when_register_until_and_retries() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "until.yml",
        r#"
- hosts: all
  tasks:
    - name: count attempts until the third
      shell: echo x >> {{ work }}/attempts; wc -l < {{ work }}/attempts
      register: attempts
      until: attempts.stdout | int >= 3
      retries: 5
      delay: 0.1
    - name: runs because of the registered value
      shell: echo "saw {{ attempts.stdout }}" > {{ work }}/seen
      when: attempts.stdout | int == 3
    - name: skipped by its condition
      shell: touch {{ work }}/never
      when: attempts.rc != 0
    - name: gives up after its retries
      command: "false"
      register: never_true
      until: never_true.rc == 0
      retries: 2
      delay: 0.1
"#,
    );
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert_eq!(
        fs::read_to_string(work.join("attempts"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert_eq!(fs::read_to_string(work.join("seen")).unwrap(), "saw 3\n");
    assert!(!work.join("never").exists());
    assert!(
        out.stdout.contains("skipping: [node1]") || out.stdout.contains("skipped: [node1]"),
        "{out}"
    );
    assert!(
        out.stdout.contains("`until` still false after 3 attempts"),
        "{out}"
    );
    assert!(recap(&out, "node1").contains("failed=1"), "{out}");
}

#[test]
fn check_and_diff_show_the_change_and_touch_nothing() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap()), ("greeting", "hello")]);
    let playbook = cluster.write_file(
        "file.yml",
        r#"
- hosts: all
  tasks:
    - name: greeting file
      copy:
        content: "{{ greeting }} world\nsecond line\n"
        dest: "{{ work }}/greeting"
    - name: a directory
      file:
        path: "{{ work }}/dir"
        state: directory
    - name: a command
      command: touch {{ work }}/touched
"#,
    );
    let pb = playbook.to_str().unwrap();
    assert_eq!(run(&cluster, &inventory, &[pb]).code, 0);
    fs::remove_dir(work.join("dir")).unwrap();
    fs::remove_file(work.join("touched")).unwrap();
    let before = fs::metadata(work.join("greeting"))
        .unwrap()
        .modified()
        .unwrap();

    let out = run(
        &cluster,
        &inventory,
        &[pb, "--check", "--diff", "-e", "greeting=goodbye"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("-hello world"), "{out}");
    assert!(out.stdout.contains("+goodbye world"), "{out}");
    assert!(out.stdout.contains(" second line"), "{out}");
    assert_eq!(
        fs::read_to_string(work.join("greeting")).unwrap(),
        "hello world\nsecond line\n"
    );
    assert_eq!(
        fs::metadata(work.join("greeting"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    assert!(!work.join("dir").exists(), "check mode created a directory");
    assert!(!work.join("touched").exists(), "check mode ran a command");
    assert_eq!(changed(&out, "node1"), 2, "{out}");
}

#[test]
fn an_unreachable_host_is_reported_while_the_others_complete() {
    let cluster = Cluster::start(3);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    cluster.hosts[1].stop();
    let out = cluster.run(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "--",
        &format!("touch {}/$(hostname)-$PPID; echo done", work.display()),
    ]);
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stdout.contains("unreachable: [node2]"), "{out}");
    assert!(out.stdout.contains("connection refused"), "{out}");
    assert!(out.stdout.contains("hint:"), "{out}");
    assert!(recap(&out, "node2").contains("unreachable=1"), "{out}");
    assert!(recap(&out, "node1").contains("changed=1"), "{out}");
    assert!(recap(&out, "node3").contains("changed=1"), "{out}");
    assert_eq!(fs::read_dir(&work).unwrap().count(), 2);
}

#[test]
fn a_failing_command_exits_2_and_shows_its_stderr() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "fail.yml",
        r#"
- hosts: all
  tasks:
    - name: fail on node2
      shell: if [ {{ inventory_hostname }} = node2 ]; then echo "disk on fire" >&2; exit 3; fi
    - name: after
      command: "true"
    - name: a missing program
      command: no-such-program-here
      ignore_errors: true
"#,
    );
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("failed: [node2]"), "{out}");
    assert!(out.stdout.contains("exit code: 3"), "{out}");
    assert!(out.stdout.contains("disk on fire"), "{out}");
    assert!(
        out.stdout.contains("command: if [ node2 = node2 ]"),
        "{out}"
    );
    assert!(out.stdout.contains("exit code: 127"), "{out}");
    assert!(
        out.stdout.contains("hint: the program is not installed"),
        "{out}"
    );
    assert!(recap(&out, "node1").contains("failed=0"), "{out}");
    assert!(recap(&out, "node1").contains("ignored=1"), "{out}");
    assert!(recap(&out, "node2").contains("failed=1"), "{out}");
}

#[test]
fn a_hundred_tasks_on_one_host_reuse_one_connection() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    // $SSH_CONNECTION names the client's port: one TCP connection, one port.
    let tasks: String = (0..100)
        .map(|i| format!("    - name: task {i}\n      shell: echo $SSH_CONNECTION >> {{{{ work }}}}/connections\n"))
        .collect();
    let playbook = cluster.write_file("many.yml", &format!("- hosts: all\n  tasks:\n{tasks}"));
    let out = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out}");
    assert!(recap(&out, "node1").contains("changed=100"), "{out}");
    let seen = fs::read_to_string(work.join("connections")).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 100);
    assert!(
        lines.iter().all(|l| *l == lines[0] && !l.is_empty()),
        "more than one connection:\n{seen}"
    );
}

#[test]
fn limit_patterns_select_hosts() {
    let cluster = Cluster::start(4);
    let inventory =
        cluster.inventory_with_groups(&[("servers", &[0, 1]), ("clients", &[2, 3])], &[]);
    let hosts = |limit: &str| -> Vec<String> {
        let out = cluster.run(&[
            "exec",
            "-i",
            inventory.to_str().unwrap(),
            "--limit",
            limit,
            "--",
            "true",
        ]);
        assert_eq!(out.code, 0, "{limit}: {out}");
        let mut seen: Vec<String> = out
            .stdout
            .lines()
            .filter_map(|l| {
                l.strip_prefix("changed: [")
                    .and_then(|r| r.split(']').next())
                    .map(str::to_owned)
            })
            .collect();
        seen.sort();
        seen
    };
    assert_eq!(hosts("node3"), ["node3"]);
    assert_eq!(hosts("servers"), ["node1", "node2"]);
    assert_eq!(hosts("servers:node4"), ["node1", "node2", "node4"]);
    assert_eq!(hosts("all:!servers"), ["node3", "node4"]);
    assert_eq!(hosts("servers:&node*"), ["node1", "node2"]);
    assert_eq!(hosts("node*:!node1"), ["node2", "node3", "node4"]);

    let none = cluster.run(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "--limit",
        "nope",
        "--",
        "true",
    ]);
    assert_eq!(none.code, 5, "{none}");
    assert!(none.stderr.contains("no hosts match `nope`"), "{none}");
}

#[test]
fn json_output_is_one_object_per_line_ending_with_a_summary() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    let out = cluster.run(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "--output",
        "json",
        "--",
        "echo",
        "hi there",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let hosts: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "host").collect();
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts
            .iter()
            .all(|e| e["status"] == "changed" && e["message"] == "hi there\n"),
        "{out}"
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["hosts"]["node1"]["changed"], 1);
}

/// A listener standing in for a host: bad input must be rejected before
/// anything connects to it.
fn tripwire() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn assert_untouched(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a host was contacted: {other:?}"),
    }
}

#[test]
fn bad_input_is_located_and_contacts_no_host() {
    let cluster = Cluster::start(1);
    let (listener, port) = tripwire();
    let good_inventory = cluster.write_file(
        "good.ini",
        &format!("node1 ansible_host=127.0.0.1 ansible_port={port}\n"),
    );
    let good_playbook = cluster.write_file(
        "good.yml",
        "- hosts: all\n  tasks:\n    - command: echo hi\n",
    );
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "unknown task key",
            vec![cluster
                .write_file(
                    "bad1.yml",
                    "- hosts: all\n  tasks:\n    - nmae: x\n      command: echo\n",
                )
                .display()
                .to_string()],
            "bad1.yml:3",
        ),
        (
            "unknown module",
            vec![cluster
                .write_file("bad2.yml", "- hosts: all\n  tasks:\n    - comand: echo\n")
                .display()
                .to_string()],
            "bad2.yml:3",
        ),
        (
            "broken template",
            vec![cluster
                .write_file(
                    "bad3.yml",
                    "- hosts: all\n  tasks:\n    - shell: echo {{ oops\n",
                )
                .display()
                .to_string()],
            "bad3.yml:3",
        ),
        (
            "bad vars file",
            vec![
                good_playbook.display().to_string(),
                "-e".into(),
                format!("@{}", cluster.write_file("vars.yml", "a: [1,\n").display()),
            ],
            "vars.yml:",
        ),
    ];
    for (what, rest, location) in cases {
        let mut all = vec!["run", "-i", good_inventory.to_str().unwrap()];
        all.extend(rest.iter().map(String::as_str));
        let out = cluster.run(&all);
        assert_eq!(out.code, 5, "{what}: {out}");
        assert!(
            out.stderr.contains(location),
            "{what}: expected `{location}` in\n{out}"
        );
        assert_untouched(&listener);
    }
    let flag = cluster.run(&[
        "run",
        "-i",
        good_inventory.to_str().unwrap(),
        "--no-such-flag",
        "x.yml",
    ]);
    assert_eq!(flag.code, 5, "{flag}");
    let missing = cluster.run(&[
        "run",
        "-i",
        "/nonexistent/hosts",
        good_playbook.to_str().unwrap(),
    ]);
    assert_eq!(missing.code, 5, "{missing}");
    assert!(
        missing.stderr.contains("cannot read `/nonexistent/hosts`"),
        "{missing}"
    );
    assert_eq!(
        missing.stderr.lines().count(),
        1,
        "the cause is said once: {missing}"
    );
    let unrendered = cluster.write_file(
        "unrendered.ini",
        "node1 ansible_host=\"{{ subnet_typo }}.11\"\n[all:vars]\nsubnet=127.0.0\n",
    );
    let out = cluster.run_playbook(&unrendered, &good_playbook);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr
            .contains("host `node1`: `ansible_host` does not render"),
        "{out}"
    );
    assert!(out.stderr.contains("subnet_typo"), "{out}");
    let bad_inventory = cluster.write_file("bad.ini", "[servers\nnode1\n");
    let out = cluster.run_playbook(&bad_inventory, &good_playbook);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("bad.ini:1"), "{out}");
    assert_untouched(&listener);
}

#[test]
fn host_keys_unknown_changed_and_accept_new() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let inv = inventory.to_str().unwrap();
    let empty = cluster.write_file("empty_known_hosts", "");
    let empty_s = empty.to_str().unwrap();

    let unknown = cluster.run(&["exec", "-i", inv, "--known-hosts", empty_s, "--", "true"]);
    assert_eq!(unknown.code, 4, "{unknown}");
    assert!(unknown.stdout.contains("SHA256:"), "{unknown}");

    let accepted = cluster.run(&[
        "exec",
        "-i",
        inv,
        "--known-hosts",
        empty_s,
        "--host-key-checking",
        "accept-new",
        "--",
        "true",
    ]);
    assert_eq!(accepted.code, 0, "{accepted}");
    assert!(fs::read_to_string(&empty).unwrap().contains("ssh-ed25519"));
    let strict_again = cluster.run(&["exec", "-i", inv, "--known-hosts", empty_s, "--", "true"]);
    assert_eq!(strict_again.code, 0, "{strict_again}");

    let host = &cluster.hosts[0];
    let wrong = crate::support::keygen(&cluster.dir().join("other_host_key"), "");
    let changed_file = cluster.write_file(
        "changed_known_hosts",
        &format!("[{}]:{} {wrong}\n", host.address, host.port),
    );
    let changed_s = changed_file.to_str().unwrap();
    for mode in ["strict", "accept-new"] {
        let out = cluster.run(&[
            "exec",
            "-i",
            inv,
            "--known-hosts",
            changed_s,
            "--host-key-checking",
            mode,
            "--",
            "true",
        ]);
        assert_eq!(out.code, 4, "{mode}: {out}");
        assert!(out.stdout.contains("changed"), "{mode}: {out}");
    }
    let off = cluster.run(&[
        "exec",
        "-i",
        inv,
        "--known-hosts",
        changed_s,
        "--host-key-checking",
        "off",
        "--",
        "true",
    ]);
    assert_eq!(off.code, 0, "{off}");
    assert!(off.stdout.contains("host key checking is off"), "{off}");
}

/// A secret made up at run time, used by named and unnamed `no_log` tasks
/// (in a variable and written out in the task) that succeed, fail, loop and
/// change a file, must not reach stdout or stderr in human or JSON output,
/// with `-v` and `--diff`; the task after them prints the registered value
/// on purpose, to show the secret really went through those tasks.
#[test]
fn no_log_keeps_secrets_out_of_every_output() {
    use rand::Rng;
    let secret: String = format!("s3cret{:016x}", rand::thread_rng().gen::<u64>());
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "secret.yml",
        &r#"- hosts: all
  tasks:
    - shell: echo {{ secret }}; echo {{ secret }} >&2
      no_log: true
      register: unnamed
    - name: named success
      command: echo {{ secret }}
      no_log: true
    - command: echo SECRET written out
      no_log: true
    - shell: echo SECRET >&2; false SECRET
      no_log: true
      ignore_errors: true
    - command: echo {{ secret }} {{ item }}
      no_log: true
      loop: [one, "{{ secret }}"]
    - copy:
        content: "{{ secret }}\n"
        dest: "{{ work }}/{{ secret }}.txt"
      no_log: true
    - shell: echo {{ secret }} >&2; exit 3
      no_log: true
      ignore_errors: true
    - command: test {{ secret }} = "{{ secret }}"
      no_log: true
      changed_when: false
      failed_when: "secret in unnamed.stdout"
      ignore_errors: true
    - name: printed on purpose
      debug:
        msg: "registered {{ unnamed.stdout }}"
    - name: named failure
      shell: echo {{ secret }}; echo {{ secret }} >&2; exit 1
      no_log: true
"#
        .replace("SECRET", &secret),
    );
    let extra = format!("secret={secret}");
    for format in ["human", "json"] {
        for verbose in [None, Some("-vv")] {
            let mut rest = vec![
                playbook.to_str().unwrap(),
                "--output",
                format,
                "--diff",
                "-e",
                &extra,
            ];
            rest.extend(verbose);
            let _ = fs::remove_file(work.join(format!("{secret}.txt")));
            let out = run(&cluster, &inventory, &rest);
            assert_eq!(out.code, 2, "{out}");
            assert!(
                work.join(format!("{secret}.txt")).is_file(),
                "the copy ran: {out}"
            );
            let text = format!("{}{}", out.stdout, out.stderr);
            let printed = format!("registered {secret}");
            assert_eq!(
                text.matches(&secret).count(),
                1,
                "{format} {verbose:?}: {out}"
            );
            assert!(text.contains(&printed), "{format} {verbose:?}: {out}");
            assert!(text.contains("<hidden by no_log>"), "{out}");
        }
    }
}

#[test]
fn ad_hoc_commands_are_not_templated() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let out = cluster.run(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "--",
        "echo",
        "{{.Names}} {% x %}",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("node1 | {{.Names}} {% x %}"), "{out}");
}

#[test]
fn bootstrap_refuses_impossible_cluster_shapes_before_contacting_any_host() {
    let cluster = Cluster::start(1);
    let (listener, port) = tripwire();
    let host = |n: u8| format!("node{n} ansible_host=127.0.0.1 ansible_port={port}\n");
    let no_servers = cluster.write_file("none.ini", &format!("[clients]\n{}{}", host(1), host(2)));
    let out = cluster.run(&["run", "-i", no_servers.to_str().unwrap(), "bootstrap"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout.contains("the inventory has no `servers` group"),
        "{out}"
    );
    assert_untouched(&listener);

    let too_few = cluster.write_file("few.ini", &format!("[servers]\n{}{}", host(1), host(2)));
    let out = cluster.run(&[
        "run",
        "-i",
        too_few.to_str().unwrap(),
        "consul",
        "-e",
        "consul_expect=3",
    ]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout
            .contains("consul_expect=3 but the inventory has 2 servers"),
        "{out}"
    );
    assert!(
        !out.stdout.contains("TASK [start the boot server]"),
        "{out}"
    );
    assert_untouched(&listener);
}

#[test]
fn tags_and_skip_tags_choose_tasks() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "tags.yml",
        r#"
- hosts: all
  tasks:
    - name: config
      shell: echo config >> {{ work }}/log
      tags: [config]
    - name: deploy
      shell: echo deploy >> {{ work }}/log
      tags: deploy
    - name: always
      shell: echo always >> {{ work }}/log
      tags: [always]
"#,
    );
    let pb = playbook.to_str().unwrap();
    let log = || fs::read_to_string(work.join("log")).unwrap_or_default();
    assert_eq!(run(&cluster, &inventory, &[pb, "--tags", "deploy"]).code, 0);
    assert_eq!(log(), "deploy\nalways\n");
    fs::remove_file(work.join("log")).unwrap();
    assert_eq!(
        run(&cluster, &inventory, &[pb, "--skip-tags", "deploy,always"]).code,
        0
    );
    assert_eq!(log(), "config\n");
}

/// `arpanet_ip` given as a host name is the address that name resolves
/// to on this machine, as a playbook sees it (Consul binds to it).
#[test]
fn an_arpanet_ip_given_as_a_host_name_is_read_as_its_address() {
    let cluster = Cluster::start(1);
    let inventory =
        cluster.inventory_with_groups(&[("servers", &[0])], &[("arpanet_ip", "localhost")]);
    let playbook = cluster.write_file(
        "show.yml",
        "- hosts: servers\n  tasks:\n    - debug:\n        msg: \"binds to {{ arpanet_ip }}\"\n",
    );
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("binds to 127.0.0.1"), "{out}");

    // `render` previews what the run sends: the address, not the name.
    let template = cluster.write_file("bind.j2", "bind={{ arpanet_ip }}\n");
    let out = cluster.run(&[
        "render",
        "-i",
        inventory.to_str().unwrap(),
        "--host",
        "node1",
        template.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, "bind=127.0.0.1\n", "{out}");
}

#[test]
fn inventory_and_render_show_resolved_variables() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory_with_groups(
        &[("servers", &[0])],
        &[("greeting", "hi"), ("CONSUL_EXPECT", "1")],
    );
    cluster.write_file("host_vars/node1.yml", "greeting: hello\n");
    let inv = inventory.to_str().unwrap();

    let out = cluster.run(&["inventory", "-i", inv]);
    assert_eq!(out.code, 0, "{out}");
    let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(all["servers"]["hosts"], serde_json::json!(["node1"]));
    assert_eq!(all["_meta"]["hostvars"]["node1"]["greeting"], "hello");

    let out = cluster.run(&[
        "inventory",
        "-i",
        inv,
        "--host",
        "node1",
        "-e",
        "greeting=from-cli",
    ]);
    let host: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(host["greeting"], "from-cli");
    assert_eq!(host["consul_expect"], 1);

    let template = cluster.write_file(
        "t.j2",
        "{{ inventory_hostname }} says {{ greeting }}; expect {{ consul_expect }}\n",
    );
    let out = cluster.run(&[
        "render",
        "-i",
        inv,
        "--host",
        "node1",
        template.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, "node1 says hello; expect 1\n");

    // The docker bridge's address is read from the node when a playbook
    // runs: a placeholder here, said so, unless given.
    let out = cluster.run(&["render", "-i", inv, "--host", "node1", "docker.default.j2"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("--dns-search service.consul"), "{out}");
    assert!(out.stdout.contains("--dns <docker0 address> "), "{out}");
    assert!(out.stderr.contains("-e docker_bridge_ip=ADDRESS"), "{out}");
    let out = cluster.run(&[
        "render",
        "-i",
        inv,
        "--host",
        "node1",
        "docker.default.j2",
        "-e",
        "docker_bridge_ip=10.9.0.1",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("--dns 10.9.0.1 "), "{out}");
    assert!(out.stderr.is_empty(), "{out}");

    let broken = cluster.write_file("broken.j2", "line one\n{{ greting }}\n");
    let out = cluster.run(&[
        "render",
        "-i",
        inv,
        "--host",
        "node1",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("broken.j2:2"), "{out}");
    assert!(out.stderr.contains("did you mean `greeting`?"), "{out}");
}

#[test]
fn hosts_can_be_reached_through_ssh_config_aliases() {
    let cluster = Cluster::start(1);
    let host = &cluster.hosts[0];
    fs::write(
        cluster.home.join(".ssh/config"),
        format!(
            "Host alias1\n    HostName {}\n    Port {}\n    User {TEST_USER}\n",
            host.address, host.port
        ),
    )
    .unwrap();
    let inventory = cluster.write_file("aliases.ini", "alias1\n");
    let out = cluster.run(&["exec", "-i", inventory.to_str().unwrap(), "--", "id", "-un"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains(&format!("alias1 | {TEST_USER}\n")),
        "{out}"
    );
}

#[test]
fn doubly_verbose_runs_show_what_commands_printed() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "v.yml",
        "- hosts: all\n  tasks:\n    - command: echo visible-with-vv\n",
    );
    let quiet = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert!(!quiet.stdout.contains("visible-with-vv\n  "), "{quiet}");
    assert!(
        !quiet.stdout.lines().any(|l| l.trim() == "visible-with-vv"),
        "{quiet}"
    );
    let verbose = run(&cluster, &inventory, &[playbook.to_str().unwrap(), "-vv"]);
    assert!(
        verbose
            .stdout
            .lines()
            .any(|l| l.trim() == "visible-with-vv"),
        "{verbose}"
    );
}

#[test]
fn symbolic_modes_and_symlinked_destinations_settle_on_the_first_run() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    fs::write(work.join("real.conf"), "old\n").unwrap();
    std::os::unix::fs::symlink(work.join("real.conf"), work.join("link.conf")).unwrap();
    Command::new("chown")
        .arg("-h")
        .arg(format!("{TEST_USER}:"))
        .arg(work.join("real.conf"))
        .status()
        .unwrap();
    let playbook = cluster.write_file(
        "modes.yml",
        r#"
- hosts: all
  tasks:
    - copy:
        content: "new\n"
        dest: "{{ work }}/moded"
        mode: "u=rw,go=r"
    - file:
        path: "{{ work }}/dir"
        state: directory
        mode: "u=rwx,go="
    - copy:
        content: "through the link\n"
        dest: "{{ work }}/link.conf"
"#,
    );
    let pb = playbook.to_str().unwrap();
    let first = run(&cluster, &inventory, &[pb]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(changed(&first, "node1"), 3, "{first}");
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(work.join(p)).unwrap().permissions())
            & 0o7777
    };
    assert_eq!(mode("moded"), 0o644);
    assert_eq!(mode("dir"), 0o700);
    assert!(fs::symlink_metadata(work.join("link.conf"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(work.join("real.conf")).unwrap(),
        "through the link\n"
    );
    let second = run(&cluster, &inventory, &[pb]);
    assert_eq!(changed(&second, "node1"), 0, "{second}");
}

/// Hosts whose sessions speak German: `stat -c %F` says `reguläre Datei`
/// there. `template`, `copy` and `file` must read the remote state the same
/// way as in English (they once compared that text with `regular file`).
#[test]
fn file_modules_work_on_hosts_with_a_non_english_locale() {
    // A German locale compiled for the test alone (LOCPATH), so nothing on
    // the machine changes.
    let locales = tempfile::tempdir().unwrap();
    let status = Command::new("localedef")
        .args(["-i", "de_DE", "-f", "UTF-8"])
        .arg(locales.path().join("de_DE.UTF-8"))
        .status()
        .expect("localedef (libc-bin) runs");
    assert!(status.success(), "localedef de_DE.UTF-8 failed");
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(locales.path())
        .status()
        .unwrap();
    let cluster = Cluster::start_with_config(
        1,
        &format!(
            "SetEnv LOCPATH={} LC_ALL=de_DE.UTF-8 LANG=de_DE.UTF-8\n",
            locales.path().display()
        ),
    );
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    // The host really answers in German, or this test proves nothing.
    let german = cluster.run(&[
        "exec",
        "-i",
        inventory.to_str().unwrap(),
        "--",
        "stat",
        "-c",
        "%F",
        "/etc/hostname",
    ]);
    assert!(german.stdout.contains("reguläre Datei"), "{german}");

    cluster.write_file("motd.j2", "welcome to {{ inventory_hostname }}\n");
    let playbook = cluster.write_file(
        "files.yml",
        r#"
- hosts: all
  tasks:
    - template:
        src: motd.j2
        dest: "{{ work }}/motd"
        mode: "0640"
    - copy:
        content: "plain\n"
        dest: "{{ work }}/plain"
    - file:
        path: "{{ work }}/conf.d"
        state: directory
        mode: "0750"
    - copy:
        content: "inside\n"
        dest: "{{ work }}/conf.d/inner"
"#,
    );
    let pb = playbook.to_str().unwrap();
    let first = run(&cluster, &inventory, &[pb]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(changed(&first, "node1"), 4, "{first}");
    assert_eq!(
        fs::read_to_string(work.join("motd")).unwrap(),
        "welcome to node1\n"
    );
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(work.join(p)).unwrap().permissions())
            & 0o7777
    };
    assert_eq!(mode("motd"), 0o640);
    assert_eq!(mode("conf.d"), 0o750);
    let second = run(&cluster, &inventory, &[pb]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(changed(&second, "node1"), 0, "{second}");

    // A file where a directory is wanted is named as such, in English.
    let clash = cluster.write_file(
        "clash.yml",
        "- hosts: all\n  tasks:\n    - file:\n        path: \"{{ work }}/plain\"\n        state: directory\n",
    );
    let failed = run(&cluster, &inventory, &[clash.to_str().unwrap()]);
    assert_eq!(failed.code, 2, "{failed}");
    assert!(
        failed.stdout.contains("is a regular file, not a directory")
            || failed.stderr.contains("is a regular file, not a directory"),
        "{failed}"
    );
}

/// The whole precedence order through a real run, pairwise: each variable is
/// set by two neighbouring layers and the higher one must win, so the chain
/// pins defaults < rc < all:vars < parent:vars < child:vars < group_vars/all
/// < group_vars/parent < group_vars/child (every group_vars file above every
/// inline group var, as in Ansible) < host < host_vars < play < set_fact and
/// register < task vars < -e, and no layer changes a magic var. (`scope::tests::the_precedence_table`
/// checks every combination without sshd.)
#[test]
fn each_variable_layer_beats_the_one_below_it_end_to_end() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let chain = [
        "defaults",
        "rc",
        "all_vars",
        "parent_vars",
        "child_vars",
        "all_file",
        "parent_file",
        "child_file",
        "host_line",
        "host_file",
        "play",
        "fact",
        "task",
        "extra",
    ];
    // layer → the (variable, value) pairs it sets
    let mut sets: std::collections::BTreeMap<&str, Vec<(String, String)>> = Default::default();
    let mut expected = vec![("docker_port".to_owned(), "rc".to_owned())];
    sets.entry("rc")
        .or_default()
        .push(("docker_port".into(), "rc".into()));
    for pair in chain[1..].windows(2) {
        let key = format!("{}_below_{}", pair[0], pair[1]);
        for layer in pair {
            sets.entry(layer)
                .or_default()
                .push((key.clone(), layer.to_string()));
        }
        expected.push((key, pair[1].to_owned()));
    }
    // register is the fact layer too: above play, below task vars and -e
    for (key, below, above) in [
        ("play_below_register", "play", "register"),
        ("register_below_task", "register", "task"),
        ("register_below_extra", "register", "extra"),
    ] {
        for layer in [below, above] {
            sets.entry(layer)
                .or_default()
                .push((key.into(), layer.into()));
        }
        expected.push((key.into(), above.into()));
    }
    for layer in chain.iter().skip(1) {
        sets.entry(layer)
            .or_default()
            .push(("inventory_hostname".into(), layer.to_string()));
    }
    expected.push(("inventory_hostname".into(), "node1".into()));
    let lines = |layer: &str, sep: &str| -> String {
        sets.get(layer)
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}{sep}{v}\n"))
            .collect()
    };
    let words = |layer: &str| lines(layer, "=").replace('\n', " ");

    fs::write(cluster.home.join(".arpanetrc"), lines("rc", "=")).unwrap();
    let inventory = cluster.write_file(
        "inventory.ini",
        &format!(
            "[child]\n{} {}\n[parent:children]\nchild\n[all:vars]\n{}[parent:vars]\n{}[child:vars]\n{}",
            cluster.host_line(0),
            words("host_line"),
            lines("all_vars", "="),
            lines("parent_vars", "="),
            lines("child_vars", "="),
        ),
    );
    cluster.write_file("group_vars/all.yml", &lines("all_file", ": "));
    cluster.write_file("group_vars/parent.yml", &lines("parent_file", ": "));
    cluster.write_file("group_vars/child.yml", &lines("child_file", ": "));
    cluster.write_file("host_vars/node1.yml", &lines("host_file", ": "));
    let indent = |layer: &str, by: &str| -> String {
        lines(layer, ": ")
            .lines()
            .map(|l| format!("{by}{l}\n"))
            .collect()
    };
    let registered: String = sets["register"]
        .iter()
        .map(|(k, _)| format!("    - command: echo register\n      register: {k}\n"))
        .collect();
    let content: String = expected
        .iter()
        .map(|(k, _)| format!("{k}={{{{ {k}.stdout if {k} is mapping else {k} }}}}\n"))
        .collect();
    let playbook = cluster.write_file(
        "precedence.yml",
        &format!(
            "- hosts: all\n  vars:\n{}  tasks:\n    - set_fact:\n{}{registered}    - copy:\n        dest: {}/seen\n        content: {}\n      vars:\n{}",
            indent("play", "    "),
            indent("fact", "        "),
            work.display(),
            serde_json::Value::from(content),
            indent("task", "        "),
        ),
    );
    let extra = words("extra");
    let out = run(
        &cluster,
        &inventory,
        &[playbook.to_str().unwrap(), "-e", extra.trim()],
    );
    assert_eq!(out.code, 0, "{out}");
    let seen = fs::read_to_string(work.join("seen")).unwrap();
    let want: String = expected.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    assert_eq!(seen, want);
}

#[test]
fn stop_with_purge_needs_yes_off_a_terminal_before_any_host() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    cluster.hosts[0].stop();
    let refused = run(&cluster, &inventory, &["stop", "-e", "purge=true"]);
    assert_eq!(refused.code, 5, "{refused}");
    assert!(refused.stderr.contains("`--yes`"), "{refused}");
    assert!(!refused.stdout.contains("unreachable"), "{refused}");
    // With `--yes` it goes ahead (and finds the host down); without
    // `purge` it never asks.
    let forced = run(&cluster, &inventory, &["stop", "-e", "purge=true", "--yes"]);
    assert_eq!(forced.code, 4, "{forced}");
    let plain = run(&cluster, &inventory, &["stop", "-e", "purge=no"]);
    assert_eq!(plain.code, 4, "{plain}");
}

/// Execs sshd started (its `Starting session: command` lines at LogLevel
/// VERBOSE) while `playbook` ran alone on host 0.
fn execs_of(cluster: &Cluster, inventory: &Path, playbook: &Path, extra: &[&str]) -> usize {
    let count = || {
        cluster.hosts[0]
            .log()
            .matches("Starting session: command ")
            .count()
    };
    let before = count();
    let mut rest = vec![playbook.to_str().unwrap()];
    rest.extend_from_slice(extra);
    let out = run(cluster, inventory, &rest);
    assert_eq!(out.code, 0, "{out}");
    count() - before
}

/// A one-task playbook (no facts gathered) named `name`.
fn one_task(cluster: &Cluster, name: &str, task: &str) -> PathBuf {
    cluster.write_file(
        &format!("{name}.yml"),
        &format!("- hosts: all\n  gather_facts: false\n  tasks:\n    - {task}\n"),
    )
}

#[test]
fn file_tasks_and_guarded_commands_take_one_exec() {
    // LogLevel in a Match block overrides the harness's global ERROR.
    let cluster = Cluster::start_with_config(1, "Match all\n  LogLevel VERBOSE\n");
    let work = workdir(&cluster);
    let w = work.to_str().unwrap();
    let inventory = cluster.inventory(&[("work", w), ("who", "world")]);
    cluster.write_file("greeting.j2", "hello {{ who }}\n");
    let tasks = [
        (
            "copy",
            format!("copy: {{content: \"some text\\n\", dest: \"{w}/copied\", mode: \"0640\"}}"),
        ),
        (
            "template",
            format!("template: {{src: greeting.j2, dest: \"{w}/greeting\", mode: \"u=rw,go=r\"}}"),
        ),
        (
            "directory",
            format!("file: {{path: \"{w}/dir\", state: directory, mode: \"0750\"}}"),
        ),
        (
            "creates",
            format!("command: {{cmd: \"touch {w}/made\", creates: \"{w}/made\"}}"),
        ),
        (
            "removes",
            format!("shell: {{cmd: \"rm {w}/gone\", removes: \"{w}/gone\"}}"),
        ),
    ];
    let empty = one_task(&cluster, "empty", "debug: {msg: hi}");
    let baseline = execs_of(&cluster, &inventory, &empty, &[]);
    for (name, task) in &tasks {
        let playbook = one_task(&cluster, name, task);
        // The first run creates (one exec for file tasks, which compare and
        // write at once); the second finds everything in place.
        let first = execs_of(&cluster, &inventory, &playbook, &[]) - baseline;
        assert_eq!(first, 1, "`{name}` creating took {first} execs");
        let again = execs_of(&cluster, &inventory, &playbook, &[]) - baseline;
        assert_eq!(again, 1, "`{name}` unchanged took {again} execs");
        let diff = execs_of(&cluster, &inventory, &playbook, &["--diff"]) - baseline;
        assert!(
            diff <= 2,
            "`{name}` unchanged with --diff took {diff} execs"
        );
    }
    assert_eq!(
        fs::read_to_string(work.join("copied")).unwrap(),
        "some text\n"
    );
    assert_eq!(
        fs::read_to_string(work.join("greeting")).unwrap(),
        "hello world\n"
    );
    assert!(work.join("dir").is_dir() && work.join("made").exists());

    // A changed content and a metadata-only change take one exec too.
    let copy = one_task(&cluster, "copy", &tasks[0].1.replace("some text", "other"));
    assert_eq!(execs_of(&cluster, &inventory, &copy, &[]) - baseline, 1);
    assert_eq!(fs::read_to_string(work.join("copied")).unwrap(), "other\n");
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(work.join(p)).unwrap().permissions())
            & 0o7777
    };
    assert_eq!(mode("copied"), 0o640);
    let dir = one_task(&cluster, "dir", &tasks[2].1.replace("0750", "0700"));
    assert_eq!(execs_of(&cluster, &inventory, &dir, &[]) - baseline, 1);
    assert_eq!(mode("dir"), 0o700);
}

#[test]
fn check_mode_judges_file_tasks_in_one_exec_and_changes_nothing() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let w = work.to_str().unwrap();
    let inventory = cluster.inventory(&[("work", w)]);
    let playbook = cluster.write_file(
        "files.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  vars: {{text: old}}\n  tasks:\n\
             \x20   - copy: {{content: \"{{{{ text }}}}\\n\", dest: \"{w}/a\", mode: \"0644\"}}\n\
             \x20   - copy: {{content: \"same\\n\", dest: \"{w}/b\", mode: \"0644\"}}\n\
             \x20   - file: {{path: \"{w}/d\", state: directory, mode: \"0755\"}}\n\
             \x20   - file: {{path: \"{w}/gone\", state: absent}}\n"
        ),
    );
    let pb = playbook.to_str().unwrap();
    let first = run(&cluster, &inventory, &[pb]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(changed(&first, "node1"), 3, "{first}");
    fs::write(work.join("gone"), "x").unwrap();
    let mode = |p: &str, m: u32| {
        fs::set_permissions(
            work.join(p),
            std::os::unix::fs::PermissionsExt::from_mode(m),
        )
        .unwrap()
    };
    mode("b", 0o600);
    mode("d", 0o700);
    let stamp = |p: &str| fs::metadata(work.join(p)).unwrap().modified().unwrap();
    let before = (stamp("a"), stamp("b"));
    let check = run(&cluster, &inventory, &[pb, "--check", "-e", "text=new"]);
    assert_eq!(check.code, 0, "{check}");
    // a's content, b's mode, d's mode and `gone` would change.
    assert_eq!(changed(&check, "node1"), 4, "{check}");
    assert_eq!(fs::read_to_string(work.join("a")).unwrap(), "old\n");
    assert_eq!((stamp("a"), stamp("b")), before);
    let perm = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(work.join(p)).unwrap().permissions())
            & 0o7777
    };
    assert_eq!((perm("b"), perm("d")), (0o600, 0o700));
    assert!(work.join("gone").exists(), "check mode removed a file");
    let names: Vec<_> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 4, "no temp file: {names:?}");
}

/// Ansible's task-level `args:` beside a free-form command: `chdir` and
/// `creates` take effect (the command runs in the directory, and not again
/// once the file is there); a module's own key wins over `args`.
#[test]
fn task_args_join_a_free_form_command_s_arguments() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let w = work.display();
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "args.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: pwd >> where\n      args:\n        chdir: {w}\n        creates: {w}/marker\n    - copy:\n        content: mine\n        dest: {w}/copied\n      args:\n        content: theirs\n"
        ),
    );
    let first = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{first}");
    assert_eq!(
        fs::read_to_string(work.join("where")).unwrap(),
        format!("{w}\n")
    );
    assert_eq!(fs::read_to_string(work.join("copied")).unwrap(), "mine");
    fs::write(work.join("marker"), "").unwrap();
    let second = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(changed(&second, "node1"), 0, "{second}");
    assert_eq!(
        fs::read_to_string(work.join("where")).unwrap(),
        format!("{w}\n"),
        "the command ran again though `creates` exists"
    );
}

/// An argument a module reads as a fixed kind of value (`file`'s `state`)
/// may be a template, as in Ansible: it is read on each host after
/// rendering, with that host's variables; a value that renders wrong fails
/// that host's task naming the argument, and a misspelt argument is still
/// bad input before any host.
#[test]
fn templated_arguments_are_read_per_host_after_rendering() {
    let cluster = Cluster::start(2);
    let work = workdir(&cluster);
    let w = work.display();
    let inventory = cluster.write_file(
        "inventory.ini",
        &format!(
            "{} kind=directory\n{} kind=touch\n",
            cluster.host_line(0),
            cluster.host_line(1)
        ),
    );
    let task = |state: &str| {
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - file:\n        path: \"{w}/{{{{ inventory_hostname }}}}\"\n        {state}\n"
        )
    };
    let playbook = cluster.write_file("state.yml", &task("state: \"{{ kind }}\""));
    let first = run(&cluster, &inventory, &[playbook.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{first}");
    assert!(work.join("node1").is_dir(), "{first}");
    assert!(work.join("node2").is_file(), "{first}");

    let wrong = run(
        &cluster,
        &inventory,
        &[playbook.to_str().unwrap(), "-e", "kind=cube"],
    );
    assert_eq!(wrong.code, 2, "{wrong}");
    assert!(wrong.stdout.contains("cube"), "{wrong}");

    let misspelt = cluster.write_file("misspelt.yml", &task("sate: \"{{ kind }}\""));
    let refused = run(&cluster, &inventory, &[misspelt.to_str().unwrap()]);
    assert_eq!(refused.code, 5, "{refused}");
    assert!(refused.stderr.contains("sate"), "{refused}");
}

/// The docker bridge's address as the built-in playbooks read it
/// (`tasks/docker-bridge.yml`, imported here by a user playbook): a `--bip`
/// in `docker_opts_extra` wins in either spelling, and a value the
/// inventory or `-e` sets is kept; neither asks the host's Docker.
#[test]
fn the_docker_bridge_address_comes_from_a_bip_option_or_is_kept_when_set() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "bridge.yml",
        "- hosts: all\n  tasks:\n    - import_tasks: docker-bridge.yml\n    \
         - debug:\n        msg: \"bridge=[{{ docker_bridge_ip }}]\"\n",
    );
    let playbook = playbook.to_str().unwrap();
    for (extra, address) in [
        (
            "docker_opts_extra='--debug --bip=10.55.0.1/24'",
            "10.55.0.1",
        ),
        (
            "docker_opts_extra='--bip 10.56.0.1/16 --debug'",
            "10.56.0.1",
        ),
        ("docker_bridge_ip=10.57.0.1", "10.57.0.1"),
    ] {
        let out = run(&cluster, &inventory, &[playbook, "-e", extra]);
        assert_eq!(out.code, 0, "{extra}: {out}");
        assert!(
            out.stdout.contains(&format!("bridge=[{address}]")),
            "{extra}: {out}"
        );
    }
}

#[test]
fn a_templated_hosts_pattern_is_rendered_with_extra_and_play_vars() {
    let cluster = Cluster::start(3);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "targeted.yml",
        "- hosts: \"{{ target }}\"\n  tasks:\n    - command: hostname\n      register: h\n    \
         - debug: {msg: \"ran on {{ inventory_hostname }}\"}\n\
         - hosts: \"{{ pick }}\"\n  vars:\n    n: 3\n    pick: \"node{{ n }}\"\n  tasks:\n    \
         - debug: {msg: \"second on {{ inventory_hostname }}\"}\n",
    );
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        "-e",
        "target=node2",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("ran on node2"), "{out}");
    assert!(!out.stdout.contains("ran on node1"), "{out}");
    assert!(out.stdout.contains("second on node3"), "{out}");
    assert!(!out.stdout.contains("second on node1"), "{out}");
    assert!(!out.stderr.contains("no hosts matched"), "{out}");
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        "-e",
        "target=node2",
        "--list-hosts",
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("play #1 (node2): node2"), "{out}");

    // Without the variable, the pattern is bad input, before any host.
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("targeted.yml"), "{out}");
}

#[test]
fn group_and_host_vars_beside_the_playbook_apply_over_the_inventorys() {
    let cluster = Cluster::start(2);
    let inventory = cluster.inventory(&[]);
    cluster.write_file("group_vars/all.yml", "color: inventory\nshade: inventory\n");
    cluster.write_file("play/group_vars/all.yml", "color: playbook\n");
    cluster.write_file("play/host_vars/node1.yml", "mark: playbook-node1\n");
    let playbook = cluster.write_file(
        "play/show.yml",
        "- hosts: all\n  tasks:\n    - debug: {msg: \"{{ inventory_hostname }} \
         {{ color }}/{{ shade }}/{{ mark | default('unset') }}\"}\n",
    );
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("node1 playbook/inventory/playbook-node1"),
        "{out}"
    );
    assert!(
        out.stdout.contains("node2 playbook/inventory/unset"),
        "{out}"
    );
}

/// `ansible_connection: local` runs the host's tasks on this machine, as
/// the user running arpanet, beside SSH hosts; a `-i` of names with
/// commas is those hosts; a module's `key=value` line is its arguments.
#[test]
fn a_local_host_and_a_host_list_run_beside_ssh_hosts() {
    let cluster = Cluster::start(1);
    let inventory = cluster.inventory(&[]);
    let dir = workdir(&cluster);
    // Its address is a listener that nothing may connect to.
    let (wire, port) = tripwire();
    let local = cluster.write_file(
        "local.ini",
        &format!("here ansible_connection=local ansible_host=127.0.0.1 ansible_port={port}\n"),
    );
    let playbook = cluster.write_file(
        "who.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - command: id -un\n      register: who\n\
             \x20   - copy: dest={d}/{{{{ inventory_hostname }}}} content=\"{{{{ who.stdout }}}} ran\"\n",
            d = dir.display()
        ),
    );
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        "-i",
        local.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert_untouched(&wire);
    let me = Command::new("id").arg("-un").output().unwrap();
    let me = String::from_utf8(me.stdout).unwrap();
    assert_ne!(me.trim(), TEST_USER);
    assert_eq!(
        fs::read_to_string(dir.join("here")).unwrap(),
        format!("{} ran", me.trim())
    );
    let remote: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "here")
        .collect();
    assert_eq!(remote.len(), 1, "{remote:?}");
    let written = fs::read_to_string(dir.join(&remote[0])).unwrap();
    assert_eq!(written, format!("{TEST_USER} ran"), "{out}");

    // `-i NAME,` with the connection given on the command line.
    let touch = cluster.write_file(
        "touch.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - file: path={d}/listed state=touch mode=0600\n",
            d = dir.display()
        ),
    );
    let listed = ["run", "-i", "listed,", "-e", "ansible_connection=local"];
    let out = cluster.run(&[&listed[..], &[touch.to_str().unwrap()]].concat());
    assert_eq!(out.code, 0, "{out}");
    let mode = fs::metadata(dir.join("listed")).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let out = cluster.run(&["inventory", "-i", "a,b:2200,", "--list"]);
    assert_eq!(out.code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["ungrouped"]["hosts"], serde_json::json!(["a", "b"]));
    assert_eq!(json["_meta"]["hostvars"]["b"]["ansible_port"], 2200);

    // A connection arpanet does not have is refused before any host.
    fs::remove_file(dir.join("listed")).unwrap();
    let out = cluster.run(&[
        "run",
        "-i",
        "listed,",
        "-e",
        "ansible_connection=docker",
        touch.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains("`ansible_connection` is `docker`"),
        "{out}"
    );
    assert!(!dir.join("listed").exists());
}

/// A play's `remote_user` and `connection` apply where the host's
/// variables say nothing, as in Ansible; `ansible_user` wins over them.
#[test]
fn a_plays_remote_user_and_connection_apply_below_the_hosts_variables() {
    let cluster = Cluster::start(1);
    let dir = workdir(&cluster);
    // The host line without its user: arpanet's default would be this
    // machine's user.
    let line = cluster.host_line(0);
    let line = line.split(" ansible_user=").next().unwrap();
    let inventory = cluster.write_file("bare.ini", &format!("{line}\n"));
    let playbook = cluster.write_file(
        "users.yml",
        &format!(
            "- hosts: all\n  remote_user: \"{{{{ login }}}}\"\n  vars: {{login: {TEST_USER}}}\n  tasks:\n\
             \x20   - command: id -un\n      register: who\n\
             \x20   - copy: {{dest: {d}/remote, content: \"{{{{ who.stdout }}}}\"}}\n\
             - hosts: all\n  connection: local\n  tasks:\n\
             \x20   - command: pwd\n      register: who\n\
             \x20   - copy: {{dest: {d}/local, content: \"{{{{ who.stdout }}}}\"}}\n\
             - hosts: all\n  remote_user: nobody-at-all\n  vars: {{ansible_user: {TEST_USER}}}\n  tasks:\n\
             \x20   - command: id -un\n      register: who\n\
             \x20   - copy: {{dest: {d}/var, content: \"{{{{ who.stdout }}}}\"}}\n",
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
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("remote"), TEST_USER, "{out}");
    // Run here, in arpanet's own working directory (over SSH: a home).
    assert_eq!(read("local"), cluster.dir().display().to_string(), "{out}");
    assert_eq!(read("var"), TEST_USER, "{out}");
}
