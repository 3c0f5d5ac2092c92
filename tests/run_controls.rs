//! ansible-playbook's run controls: the listings compared with what
//! ansible-playbook 2.19 printed for the same playbook and inventory
//! (`tests/fixtures/run_controls/`), `--start-at-task`, `--step` on a real
//! terminal (a pty from `script`), and the retry file read back with
//! `--limit @FILE`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::run::{recap, run, workdir};
use crate::support::{run_arpanet, Cluster, Run};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/run_controls");

/// `arpanet run -i inventory.ini site.yml ARGS` in the fixture directory.
fn list(args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut all = vec!["run", "-i", "inventory.ini", "site.yml"];
    all.extend_from_slice(args);
    run_arpanet(home.path(), Path::new(FIXTURES), &all, &[])
}

fn recorded(name: &str) -> String {
    fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

#[test]
fn listings_print_what_ansible_playbook_prints() {
    for (args, file) in [
        (&["--list-tasks"][..], "ansible-list-tasks.txt"),
        (
            &["--list-tasks", "--tags", "db"],
            "ansible-list-tasks-tags-db.txt",
        ),
        (&["--list-tags"], "ansible-list-tags.txt"),
        (
            &["--list-tags", "--skip-tags", "motd"],
            "ansible-list-tags-skip-motd.txt",
        ),
        (&["--syntax-check"], "ansible-syntax-check.txt"),
    ] {
        let out = list(args);
        assert_eq!(out.code, 0, "{args:?}\n{out}");
        assert_eq!(out.stdout, recorded(file), "{args:?}");
    }
}

/// ansible-playbook lists a play's hosts from a set, in no fixed order:
/// each line compared with the hosts sorted within their play.
fn hosts_sorted(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("      ") {
            hosts.push(line.to_owned());
            continue;
        }
        hosts.sort();
        out.append(&mut hosts);
        out.push(line.to_owned());
    }
    hosts.sort();
    out.append(&mut hosts);
    out
}

#[test]
fn list_hosts_prints_each_plays_hosts_under_limit() {
    for (args, file) in [
        (&["--list-hosts"][..], "ansible-list-hosts.txt"),
        (
            &["--list-hosts", "--limit", "web1,db1"],
            "ansible-list-hosts-limit.txt",
        ),
    ] {
        let out = list(args);
        assert_eq!(out.code, 0, "{args:?}\n{out}");
        assert_eq!(
            hosts_sorted(&out.stdout),
            hosts_sorted(&recorded(file)),
            "{args:?}"
        );
    }
    // in the pattern's order, as Ansible: `db:web` is db's hosts, then web's
    let out = list(&["--list-hosts"]);
    assert!(
        out.stdout
            .contains("    hosts (3):\n      db1\n      web1\n      web2\n"),
        "{out}"
    );
}

#[test]
fn syntax_check_reports_a_bad_playbook_located_and_needs_no_inventory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("bad.yml"),
        "- hosts: all\n  tasks:\n    - lineinfile: {path: /etc/x, lnie: y}\n",
    )
    .unwrap();
    fs::copy(
        Path::new(FIXTURES).join("site.yml"),
        dir.path().join("site.yml"),
    )
    .unwrap();
    fs::create_dir(dir.path().join("tasks")).unwrap();
    fs::copy(
        Path::new(FIXTURES).join("tasks/extra.yml"),
        dir.path().join("tasks/extra.yml"),
    )
    .unwrap();
    let check = |playbook: &str| {
        run_arpanet(
            dir.path(),
            dir.path(),
            &["run", playbook, "--syntax-check"],
            &[],
        )
    };
    let out = check("bad.yml");
    assert_eq!(out.code, 5, "{out}");
    assert!(out.stderr.contains("bad.yml:3:"), "{out}");
    assert!(out.stderr.contains("did you mean `line`?"), "{out}");
    let out = check("site.yml");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, recorded("ansible-syntax-check.txt"));
}

fn touch_playbook(cluster: &Cluster, names: &[&str]) -> std::path::PathBuf {
    let mut text = String::from("- hosts: all\n  tasks:\n");
    for name in names {
        text.push_str(&format!(
            "    - name: touch {name}\n      file: {{path: \"{{{{ work }}}}/{name}-{{{{ inventory_hostname }}}}\", state: touch}}\n"
        ));
    }
    cluster.write_file("touch.yml", &text)
}

#[test]
fn start_at_task_skips_the_tasks_before_it_and_an_unknown_name_stops_before_any_host() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = touch_playbook(&cluster, &["a", "b", "c"]);
    let pb = playbook.to_str().unwrap();

    let out = run(&cluster, &inventory, &[pb, "--start-at-task", "touch b"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!work.join("a-node1").exists(), "{out}");
    assert!(work.join("b-node1").exists(), "{out}");
    assert!(work.join("c-node1").exists(), "{out}");

    let out = run(&cluster, &inventory, &[pb, "--start-at-task", "touch x"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr
            .contains("no task matches `--start-at-task` `touch x`"),
        "{out}"
    );
    assert!(out.stderr.contains("did you mean `touch a`?"), "{out}");
    assert!(!out.stdout.contains("PLAY RECAP"), "{out}");
    assert!(!work.join("a-node1").exists());

    let out = run(
        &cluster,
        &inventory,
        &[pb, "--start-at-task", "touch [c-z]"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        !work.join("a-node1").exists(),
        "a glob starts at its first match"
    );

    // Inside a block: what follows the task in it, its `always`, and on.
    let blocks = cluster.write_file(
        "blocks.yml",
        r#"
- hosts: all
  tasks:
    - block:
        - name: x
          file: {path: "{{ work }}/x", state: touch}
        - name: y
          file: {path: "{{ work }}/y", state: touch}
      always:
        - name: z
          file: {path: "{{ work }}/z", state: touch}
"#,
    );
    let out = run(
        &cluster,
        &inventory,
        &[blocks.to_str().unwrap(), "--start-at-task", "y"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(!work.join("x").exists(), "{out}");
    assert!(work.join("y").exists() && work.join("z").exists(), "{out}");
}

/// Run the binary on a pty (`script`), typing `input` after a while, as a
/// person would once the question is there.
fn on_terminal(cluster: &Cluster, args: &[&str], input: &str) -> Run {
    typed(cluster, args, None, Duration::from_millis(800), input)
}

/// Run the binary on a pty (`script`), its stdout sent to `stdout_to`
/// instead when given (a pipe or a log, with the terminal still on stdin
/// and stderr), typing `input` after `delay`. What the terminal showed is
/// the returned stdout.
fn typed(
    cluster: &Cluster,
    args: &[&str],
    stdout_to: Option<&Path>,
    delay: Duration,
    input: &str,
) -> Run {
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let mut line: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_arpanet"))
        .chain(args.iter().copied())
        .map(quote)
        .collect();
    if let Some(file) = stdout_to {
        line.push(format!("> {}", quote(file.to_str().unwrap())));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .current_dir(cluster.dir())
        .env("HOME", &cluster.home)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs a command on a pty");
    use std::io::Write;
    std::thread::sleep(delay);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn step_asks_before_each_task_on_a_terminal_and_refuses_without_one() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = touch_playbook(&cluster, &["a", "b", "c", "d"]);
    let (inv, pb) = (inventory.to_str().unwrap(), playbook.to_str().unwrap());

    let out = run(&cluster, &inventory, &[pb, "--step"]);
    assert_eq!(out.code, 5, "{out}");
    assert!(
        out.stderr.contains("`--step` asks before each task"),
        "{out}"
    );
    assert!(!work.join("a-node1").exists());

    // No, yes, continue: a is skipped, b runs, c and d run unasked.
    let out = on_terminal(&cluster, &["run", "-i", inv, pb, "--step"], "n\ny\nc\n");
    assert_eq!(out.code, 0, "{out}");
    let asked = out.stdout.matches("(N)o/(y)es/(c)ontinue:").count();
    assert_eq!(asked, 3, "{out}");
    assert!(
        out.stdout
            .contains("Perform task: TASK: touch a (N)o/(y)es/(c)ontinue:"),
        "{out}"
    );
    assert!(!work.join("a-node1").exists(), "{out}");
    for name in ["b", "c", "d"] {
        assert!(work.join(format!("{name}-node1")).exists(), "{name}\n{out}");
    }
}

/// Two hosts, a work directory, and a playbook that asks `which colour`
/// (`pause`) and writes the answer to `WORK/HOST`: the cluster, the work
/// directory and the `run` arguments.
fn asking() -> (Cluster, std::path::PathBuf, Vec<String>) {
    let cluster = Cluster::start(2);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "ask.yml",
        r#"
- hosts: all
  tasks:
    - pause: {prompt: "which colour"}
      register: answer
    - copy: {dest: "{{ work }}/{{ inventory_hostname }}", content: "{{ answer.user_input }}"}
"#,
    );
    let args = [
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
    ];
    (cluster, work, args.map(String::from).to_vec())
}

#[test]
fn pause_asks_once_on_a_terminal_for_every_host() {
    let (cluster, work, args) = asking();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = on_terminal(&cluster, &args, "blue\n");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.matches("which colour:").count(), 1, "{out}");
    // Nothing (the task's spinner) is drawn over the question while it
    // waits: the answer typed is echoed right after it.
    assert!(
        out.stdout
            .replace("\r\n", "\n")
            .contains("[pause]\nwhich colour:\nblue\n"),
        "{out}"
    );
    for host in ["node1", "node2"] {
        assert_eq!(fs::read_to_string(work.join(host)).unwrap(), "blue");
    }
}

/// With the output going to a log, a task that runs long says so every
/// 10 s on stderr (`still waiting`); a `pause` that asks on the terminal
/// does not, since it waits for the person at it, and such a line would
/// land in the middle of their answer.
#[test]
fn pause_in_a_pipe_asks_without_still_waiting_lines_over_the_question() {
    let (cluster, work, args) = asking();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = cluster.dir().join("run.log");
    // Past the first heartbeat (10 s) before the answer comes.
    let out = typed(
        &cluster,
        &args,
        Some(&log),
        Duration::from_millis(11_500),
        "green\n",
    );
    let logged = fs::read_to_string(&log).unwrap();
    let shown = out.stdout.replace("\r\n", "\n");
    assert_eq!(out.code, 0, "{out}\n{logged}");
    assert!(shown.contains("[pause]\nwhich colour:\ngreen\n"), "{shown}");
    assert!(!shown.contains("still waiting"), "{shown}");
    // The run's results went to the log, not to the terminal.
    assert!(logged.contains("TASK [pause: which colour]"), "{logged}");
    assert!(logged.contains("changed: [node2]"), "{logged}");
    for host in ["node1", "node2"] {
        assert_eq!(fs::read_to_string(work.join(host)).unwrap(), "green");
    }
}

#[test]
fn a_retry_file_lists_failed_and_unreachable_hosts_for_limit_at_file() {
    let cluster = Cluster::start(3);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[("work", work.to_str().unwrap())]);
    let playbook = cluster.write_file(
        "site.yml",
        r#"
- hosts: all
  tasks:
    - command: "false"
      when: inventory_hostname == 'node2'
    - file: {path: "{{ work }}/{{ inventory_hostname }}", state: touch}
"#,
    );
    let pb = playbook.to_str().unwrap();
    cluster.hosts[2].stop();
    let out = run(&cluster, &inventory, &[pb]);
    assert_eq!(out.code, 4, "{out}");
    let retry = cluster.dir().join("site.retry");
    assert_eq!(fs::read_to_string(&retry).unwrap(), "node2\nnode3\n");
    assert!(
        out.stderr
            .contains(&format!("--limit @{}", retry.display())),
        "{out}"
    );
    fs::remove_file(work.join("node1")).unwrap();

    // Fixed: node2 passes now, node3 is back; only they run.
    let fixed = cluster.write_file(
        "site.yml",
        "- hosts: all\n  tasks:\n    - file: {path: \"{{ work }}/{{ inventory_hostname }}\", state: touch}\n",
    );
    cluster.hosts[2].restart();
    let limit = format!("@{}", retry.display());
    let out = run(
        &cluster,
        &inventory,
        &[fixed.to_str().unwrap(), "--limit", &limit],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        work.join("node2").exists() && work.join("node3").exists(),
        "{out}"
    );
    assert!(
        !work.join("node1").exists(),
        "node1 was not in the retry file\n{out}"
    );
    assert!(recap(&out, "node2").contains("changed=1"), "{out}");

    // Off, as an operator may want it, and never under `--check`.
    fs::remove_file(&retry).unwrap();
    let failing = cluster.write_file(
        "fails.yml",
        "- hosts: all\n  tasks:\n    - fail: {msg: not yet}\n",
    );
    let failing = failing.to_str().unwrap();
    for extra in ["--no-retry-file", "--check"] {
        let out = run(&cluster, &inventory, &[failing, extra]);
        assert_eq!(out.code, 2, "{out}");
        assert!(!cluster.dir().join("fails.retry").exists(), "{extra}");
    }
    let env = [("ARPANET_RETRY_FILES_ENABLED", "no")];
    let out = cluster.run_with_env(&["run", "-i", inventory.to_str().unwrap(), failing], &env);
    assert_eq!(out.code, 2, "{out}");
    assert!(!cluster.dir().join("fails.retry").exists());
    // The same run without either writes it.
    let out = run(&cluster, &inventory, &[failing]);
    assert_eq!(out.code, 2, "{out}");
    assert!(cluster.dir().join("fails.retry").exists());
}

/// `bootstrap`'s steps carry tags, as an Ansible user would expect of a
/// site playbook: `--tags consul` keeps the checks and the cluster's keys
/// (`always`) and the Consul agents, and leaves Docker's setup, the pulls
/// and the stack out.
#[test]
fn bootstraps_steps_are_tagged() {
    let home = tempfile::tempdir().unwrap();
    fs::write(
        home.path().join("hosts"),
        "[servers]\nn1 ansible_host=127.0.0.1\n[clients]\nn2 ansible_host=127.0.0.1\n",
    )
    .unwrap();
    let list = |args: &[&str]| {
        let mut all = vec!["run", "-i", "hosts", "bootstrap"];
        all.extend_from_slice(args);
        let out = run_arpanet(home.path(), home.path(), &all, &[]);
        assert_eq!(out.code, 0, "{out}");
        out.stdout
    };
    let tags = list(&["--list-tags"]);
    for tag in ["always", "consul", "docker", "pull", "stack"] {
        assert!(tags.contains(tag), "no `{tag}`\n{tags}");
    }
    let every = list(&["--list-tasks"]);
    let consul = list(&["--list-tasks", "--tags", "consul"]);
    for (task, kept) in [
        ("there are consul servers", true),
        ("consul certificates and gossip key", true),
        ("consul agent container", true),
        ("render /etc/default/docker", false),
        ("pull the stack images", false),
        ("linking watcher script", false),
    ] {
        assert!(every.contains(task), "no `{task}` at all\n{every}");
        assert_eq!(consul.contains(task), kept, "`{task}`\n{consul}");
    }
}
