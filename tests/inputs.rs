//! Extreme and broken input through the real binary: each run ends within
//! seconds with exit 5 and a message located at file:line:column, before
//! any host is contacted (the inventory's one host listens nowhere, so a
//! run that got as far as connecting would exit 4 instead). The in-process
//! fuzz test (`src/fuzz.rs`) covers many more mutations of the same inputs.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{run_arpanet, Run};

const LIMIT: Duration = Duration::from_secs(10);

/// Run `arpanet run -i inv playbook` in `dir` and check it ends in time
/// with exit 5 and a located message starting with `at`.
fn refused(dir: &Path, inventory: &str, playbook: &str, extra: &[&str], at: &str, says: &str) {
    let mut args = vec!["run", "-i", inventory, playbook, "--timeout", "1"];
    args.extend(extra);
    let started = Instant::now();
    let run = run_arpanet(dir, dir, &args, &[]);
    let took = started.elapsed();
    assert!(took < LIMIT, "{args:?} took {took:?}");
    assert_eq!(run.code, 5, "{args:?}:\n{}", run.stderr);
    let message = run.stderr.trim_start_matches("error: ");
    assert!(
        message.starts_with(at),
        "{args:?}: expected `{at}`:\n{}",
        run.stderr
    );
    assert!(
        message.contains(says),
        "{args:?}: expected `{says}`:\n{}",
        run.stderr
    );
}

#[test]
fn extreme_inputs_end_in_a_located_error_before_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &[u8]| std::fs::write(d.join(name), text).unwrap();
    write(
        "hosts",
        b"[web]\nw1 ansible_host=127.0.0.1 ansible_port=1\n",
    );
    let task = |name: &str, lines: &str| {
        write(
            name,
            format!("- hosts: all\n  tasks:\n    - command: echo hi\n{lines}").as_bytes(),
        )
    };

    task("delay.yml", "      retries: 1\n      delay: 1e20\n");
    refused(d, "hosts", "delay.yml", &[], "delay.yml:5:14:", "`delay`");
    write(
        "wait.yml",
        b"- hosts: all\n  tasks:\n    - wait_for: {port: 22, timeout: 1e20}\n",
    );
    refused(d, "hosts", "wait.yml", &[], "wait.yml:3:", "`timeout`");

    let deep = format!(
        "- hosts: all\n  vars:\n    x:\n      {}a\n  tasks: []\n",
        "- ".repeat(50_000)
    );
    write("deep.yml", deep.as_bytes());
    refused(
        d,
        "deep.yml",
        "deep.yml",
        &[],
        "deep.yml:4:",
        "nested more than",
    );
    refused(
        d,
        "hosts",
        "deep.yml",
        &[],
        "deep.yml:4:",
        "nested more than",
    );

    write("range", b"[web]\nnode[1:99999999]\n");
    task("ok.yml", "");
    refused(d, "range", "ok.yml", &[], "range:2:5:", "at most 10000");

    write(
        "bytes.yml",
        b"- hosts: all\n  tasks:\n    - command: \xff\xfe\n",
    );
    refused(d, "hosts", "bytes.yml", &[], "bytes.yml:3:16:", "not UTF-8");
    write("empty.yml", b"# nothing yet\n");
    refused(d, "hosts", "empty.yml", &[], "empty.yml:1:1:", "no plays");
    write("port", b"[web]\nw1 ansible_port=99999\n");
    refused(d, "port", "ok.yml", &[], "port:2:4:", "port number");

    let unary = format!("      when: \"{}x\"\n", "- ".repeat(50_000));
    task("unary.yml", &unary);
    refused(d, "hosts", "unary.yml", &[], "unary.yml:4:7:", "in a row");
    task("filter.yml", "      changed_when: out is sucess\n");
    refused(
        d,
        "hosts",
        "filter.yml",
        &[],
        "filter.yml:4:7:",
        "unknown test `sucess`",
    );
    task("nowhere.yml", "    - command: echo {{ nowhere }}\n");
    refused(
        d,
        "hosts",
        "nowhere.yml",
        &[],
        "nowhere.yml:4:7:",
        "undefined variable `nowhere`",
    );

    // the same playbook with the name defined runs (and finds no host)
    let run = run_arpanet(
        d,
        d,
        &[
            "run",
            "-i",
            "hosts",
            "nowhere.yml",
            "-e",
            "nowhere=1",
            "--timeout",
            "1",
        ],
        &[],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
}

/// A directory with inventory `hosts` (whose hosts listen nowhere: a run
/// that connects exits 4) and a one-task playbook, and a run of it with a
/// `--limit`, which must end within [`LIMIT`].
fn limited(hosts: &str) -> (tempfile::TempDir, impl Fn(&str) -> Run) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    std::fs::write(d.join("hosts"), hosts).unwrap();
    std::fs::write(
        d.join("ok.yml"),
        "- hosts: all\n  tasks:\n    - command: echo hi\n",
    )
    .unwrap();
    let limit = move |pattern: &str| {
        let started = Instant::now();
        let args = [
            "run",
            "-i",
            "hosts",
            "ok.yml",
            "--limit",
            pattern,
            "--timeout",
            "1",
        ];
        let run = run_arpanet(&d, &d, &args, &[]);
        assert!(started.elapsed() < LIMIT, "{pattern}");
        run
    };
    (dir, limit)
}

#[test]
fn a_huge_limit_range_is_a_subscript_not_an_allocation() {
    let (_dir, limit) = limited("[web]\nw[1:3] ansible_host=127.0.0.1 ansible_port=1\n");
    // the group's second host on: w2 and w3, both unreachable
    let run = limit("web[1:99999999]");
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stdout.contains("w2") && !run.stdout.contains("w1 "),
        "{}",
        run.stdout
    );
    let run = limit("w[1:99999999]");
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("no hosts match"), "{}", run.stderr);
    let run = limit(&format!("{}b", "*w".repeat(40)));
    assert_eq!(run.code, 5, "{}", run.stderr);
}

/// A name in `--limit` that is no host or group stops the run before any
/// host (exit 5, with the name it was likely meant to be): otherwise it
/// drops out of the pattern, and `all:!nod1` runs on node1. Globs and
/// regexes may match nothing.
#[test]
fn a_limit_naming_no_host_or_group_is_refused_before_any_host() {
    let (_dir, limit) = limited("[web]\nnode1 ansible_host=127.0.0.1 ansible_port=1\n");
    for pattern in ["all:!nod1", "nod1,node1", "web:&nod1", "!nod1"] {
        let run = limit(pattern);
        assert_eq!(run.code, 5, "{pattern}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("`nod1` is no host or group")
                && run.stderr.contains("did you mean `node1`?"),
            "{pattern}: {}",
            run.stderr
        );
    }
    for pattern in ["all:!x*", "web:!~x.*", "node1"] {
        let run = limit(pattern);
        assert_eq!(run.code, 4, "{pattern}: {}{}", run.stdout, run.stderr);
    }
}

/// A directory with an inventory of one server that listens nowhere (a
/// run that connects exits 4) and `group_vars/all.yml` holding `vars`.
fn one_server(vars: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("hosts"),
        "[servers]\nn1 ansible_host=127.0.0.1 ansible_port=1\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("group_vars")).unwrap();
    std::fs::write(d.join("group_vars/all.yml"), vars).unwrap();
    dir
}

/// A `docker_opts_extra` that would open Docker's API on TCP without TLS
/// client verification is refused by `setup` and `bootstrap` before any
/// host is contacted (the one host listens nowhere: exit 4 once a run
/// connects), at its line in a vars file or named with its host from
/// `-e`; with `--tlsverify` the same listener goes through to the host.
#[test]
fn docker_opts_opening_plain_tcp_are_refused_before_any_host() {
    let text = "consul_expect: 1\ndocker_opts_extra: \"--debug -H tcp://0.0.0.0:2375\"\n";
    let dir = one_server(text);
    let d = dir.path();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-i", "hosts", "--timeout", "1"];
        all.extend_from_slice(args);
        run_arpanet(d, d, &all, &[])
    };
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("docker_opts_extra"))
        .unwrap();
    let setup = run(&["setup"]);
    assert_eq!(setup.code, 5, "{setup}");
    assert!(
        setup.stderr.contains(&format!(
            "group_vars/all.yml:{line}:1: `docker_opts_extra` opens"
        )),
        "{setup}"
    );
    assert!(setup.stderr.contains("`tcp://0.0.0.0:2375`"), "{setup}");
    assert!(setup.stderr.contains("docker_tcp: true"), "{setup}");

    let given = run(&["bootstrap", "-e", r#"{"docker_opts_extra": "-H :2375"}"#]);
    assert_eq!(given.code, 5, "{given}");
    assert!(
        given
            .stderr
            .contains("host `n1`: `docker_opts_extra` opens Docker's API on `:2375`"),
        "{given}"
    );

    let verified = run(&[
        "setup",
        "-e",
        r#"{"docker_opts_extra": "-H tcp://0.0.0.0:2376 --tlsverify"}"#,
    ]);
    assert_eq!(verified.code, 4, "{verified}");
}

/// The built-in playbooks' numbers are checked on every host before any
/// host: a gate's seconds, the roll's batch size, `consul_expect`, ports.
/// `restart` too. (The one host listens nowhere: a run that connects
/// exits 4.)
#[test]
fn settings_the_playbooks_cannot_use_are_refused_before_any_host() {
    let dir = one_server("consul_expect: 1\ngate_settle_seconds: -5\n");
    let d = dir.path();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--timeout", "1", "-i", "hosts"]);
        run_arpanet(d, d, &all, &[])
    };
    let located = run(&["run", "bootstrap"]);
    assert_eq!(located.code, 5, "{located}");
    assert!(
        located.stderr.contains(
            "group_vars/all.yml:2:1: `gate_settle_seconds` is `-5`, not a number of seconds"
        ),
        "{located}"
    );
    let restart = run(&["restart", "consul"]);
    assert_eq!(restart.code, 5, "{restart}");
    assert!(
        restart.stderr.contains("`gate_settle_seconds` is `-5`"),
        "{restart}"
    );
    for (given, said) in [
        ("roll_serial=abc", "`roll_serial` is `abc`"),
        ("consul_expect=oops", "`consul_expect` is `oops`"),
        ("consul_port=0", "`consul_port` is `0`, not a port number"),
    ] {
        let out = run(&["run", "upgrade", "-e", "gate_settle_seconds=3", "-e", given]);
        assert_eq!(out.code, 5, "{given}: {out}");
        assert!(
            out.stderr.contains(&format!("host `n1`: {said}")),
            "{given}: {out}"
        );
    }
    let fine = run(&[
        "run",
        "setup",
        "-e",
        "gate_settle_seconds=0",
        "-e",
        "roll_serial=50%",
    ]);
    assert_eq!(fine.code, 4, "{fine}");
}

/// Consul binds to `arpanet_ip`, which must be an IP address. By default
/// it is the SSH address: a node reached through a `~/.ssh/config` alias
/// (`HostName` an IP) or by `host` (the short form of `ansible_host`) goes
/// through to the host (exit 4: it listens nowhere). A host name that does
/// not resolve here, whether the SSH address or set as `arpanet_ip`, is
/// refused by `bootstrap`, `consul` and `upgrade` before any host is
/// contacted, naming the host and the name.
#[test]
fn a_consul_node_whose_arpanet_ip_does_not_resolve_is_refused_before_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join(".ssh")).unwrap();
    std::fs::write(
        d.join(".ssh/config"),
        "Host n1\n  HostName 127.0.0.1\n  Port 1\n",
    )
    .unwrap();
    let run = |inventory: &str, playbook: &str| {
        std::fs::write(d.join("hosts"), inventory).unwrap();
        run_arpanet(
            d,
            d,
            &["run", "-i", "hosts", playbook, "--timeout", "1"],
            &[],
        )
    };
    for playbook in ["bootstrap", "consul", "upgrade"] {
        let aliased = run("[servers]\nn1\n", playbook);
        assert_eq!(aliased.code, 4, "{playbook}: {aliased}");
        assert!(!aliased.stderr.contains("arpanet_ip"), "{aliased}");

        // Absolute (the trailing dot): no search domain is tried.
        let named = run(
            "[servers]\nn1 ansible_host=no-such-node.invalid.\n",
            playbook,
        );
        assert_eq!(named.code, 5, "{playbook}: {named}");
        assert!(
            named.stderr.contains(
                "host `n1`: `arpanet_ip` is `no-such-node.invalid.`, a host name, and \
                 `no-such-node.invalid.` does not resolve on this machine"
            ),
            "{playbook}: {named}"
        );
    }
    let set = run("[servers]\nn1 arpanet_ip=consul-one.invalid.\n", "consul");
    assert_eq!(set.code, 5, "{set}");
    assert!(
        set.stderr
            .contains("`arpanet_ip` is `consul-one.invalid.`, a host name"),
        "{set}"
    );
    // A name for a loopback address only, beside another node: the other
    // nodes could not reach it.
    let looped = run(
        "[servers]\nn3 ansible_host=localhost\nn4 ansible_host=127.0.0.2 port=1\n",
        "consul",
    );
    assert_eq!(looped.code, 5, "{looped}");
    assert!(
        looped
            .stderr
            .contains("`localhost` resolves on this machine only to 127.0.0.1, a loopback address"),
        "{looped}"
    );
    assert!(set.stderr.contains("n1 arpanet_ip=10.0.0.11"), "{set}");
    let short = run("[servers]\nn2 host=127.0.0.1 port=1\n", "consul");
    assert_eq!(short.code, 4, "{short}");
    assert!(!short.stderr.contains("arpanet_ip"), "{short}");
}

/// `docker_bridge_ip` is unset (read from each node) or an IPv4 address:
/// setup, consul and stack playbooks refuse anything else before any host
/// is contacted, at its line in a vars file or naming the host from `-e`;
/// an address goes through to the host (exit 4: it listens nowhere).
#[test]
fn a_docker_bridge_ip_that_is_not_an_ipv4_address_is_refused_before_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("hosts"),
        "[servers]\nn1 ansible_host=127.0.0.1 ansible_port=1\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("host_vars")).unwrap();
    let text = "consul_expect: 1\ndocker_bridge_ip: docker0\n";
    std::fs::write(d.join("host_vars/n1.yml"), text).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-i", "hosts", "--timeout", "1"];
        all.extend_from_slice(args);
        run_arpanet(d, d, &all, &[])
    };
    for playbook in ["setup", "consul", "stack"] {
        let named = run(&[playbook]);
        assert_eq!(named.code, 5, "{playbook}: {named}");
        assert!(
            named.stderr.contains(
                "host_vars/n1.yml:2:1: `docker_bridge_ip` is `docker0`, not an IPv4 address"
            ),
            "{playbook}: {named}"
        );
    }
    std::fs::write(d.join("host_vars/n1.yml"), "consul_expect: 1\n").unwrap();
    let given = run(&["bootstrap", "-e", "docker_bridge_ip=172.17.0.1/16"]);
    assert_eq!(given.code, 5, "{given}");
    assert!(
        given
            .stderr
            .contains("host `n1`: `docker_bridge_ip` is `172.17.0.1/16`"),
        "{given}"
    );
    for extra in [vec![], vec!["-e", "docker_bridge_ip=10.99.0.1"]] {
        let mut args = vec!["setup"];
        args.extend(extra);
        let fine = run(&args);
        assert_eq!(fine.code, 4, "{args:?}: {fine}");
    }
}

/// With `--output json`, a run refused for bad input says why on stdout
/// too, as an `error` event with the file and line, so a program reading
/// the events is not left with none; a usage error has no place.
#[test]
fn a_refused_run_with_json_output_prints_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("hosts"),
        "h1 ansible_host=127.0.0.1 ansible_port=1\n",
    )
    .unwrap();
    std::fs::write(
        d.join("play.yml"),
        "- hosts: all\n  tasks:\n    - name: first\n      command: \"true\"\n    - name: bad\n      no_such_module: {}\n",
    )
    .unwrap();
    let out = run_arpanet(d, d, &["run", "-i", "hosts", "play.yml", "-o", "json"], &[]);
    assert_eq!(out.code, 5, "{out}");
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len(), 1, "{out}");
    let event = &events[0];
    assert_eq!(event["event"], "error", "{out}");
    assert_eq!(event["exit_code"], 5, "{out}");
    assert_eq!(event["line"], 6, "{out}");
    assert!(
        event["file"].as_str().unwrap().ends_with("play.yml"),
        "{out}"
    );
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains("no_such_module"),
        "{out}"
    );
    assert!(out.stderr.contains("no_such_module"), "{out}");

    std::fs::write(d.join("ok.yml"), "- hosts: all\n  tasks: []\n").unwrap();
    let usage = run_arpanet(d, d, &["run", "-i", "missing", "ok.yml", "-o", "json"], &[]);
    assert_eq!(usage.code, 5, "{usage}");
    let event: serde_json::Value = serde_json::from_str(usage.stdout.trim()).unwrap();
    assert_eq!(event["event"], "error", "{usage}");
    assert!(event.get("line").is_none(), "{usage}");
}
