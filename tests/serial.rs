//! `serial` and `max_fail_percentage` end to end: scenarios recorded from
//! ansible-playbook 2.19 (`tests/fixtures/serial/`, see `record.py`) run by
//! the built binary against real sshd hosts, and its JSON events turned
//! back into the fixture's format. The executor's unit tests replay every
//! scenario against an in-memory transport; these few prove the same over
//! SSH, unreachable hosts included. `tests/fixtures/flow/` (blocks,
//! `any_errors_fatal`, `include_tasks`) is replayed the same way.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::Path;

use serde_json::Value;

use crate::support::Cluster;

struct Scenario {
    hosts: Vec<String>,
    unreachable: Vec<String>,
    playbook: String,
    /// Files beside the playbook (`--- file NAME` sections).
    files: Vec<(String, String)>,
    expected: String,
}

fn load(dir: &str, name: &str) -> Scenario {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{dir}/{name}.txt"));
    let text = fs::read_to_string(&path).unwrap();
    let (spec, rest) = text.split_once("--- playbook\n").unwrap();
    let (playbook, recorded) = rest.split_once("--- ansible-playbook").unwrap();
    let field = |key: &str| -> Vec<String> {
        spec.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .flat_map(|v| v.split_whitespace().map(str::to_owned))
            .collect()
    };
    let mut parts = playbook.split("\n--- file ");
    let playbook = parts.next().unwrap().to_owned() + "\n";
    let files = parts
        .map(|part| {
            let (name, body) = part.split_once('\n').unwrap();
            (name.trim().to_owned(), body.to_owned())
        })
        .collect();
    Scenario {
        hosts: field("hosts"),
        unreachable: field("unreachable"),
        playbook,
        files,
        expected: recorded.split_once('\n').unwrap().1.to_owned(),
    }
}

fn natural(name: &str) -> (String, u64) {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    let prefix = &name[..name.len() - digits.len()];
    (prefix.to_owned(), digits.parse().unwrap_or(0))
}

/// `arpanet run --output json` in the fixture format.
fn transcript(stdout: &str, code: i32) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    let flush = |out: &mut Vec<String>, block: &mut Vec<(String, String)>| {
        block.sort_by_key(|(h, _)| natural(h));
        out.extend(block.drain(..).map(|(h, s)| format!("  {h} {s}")));
    };
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    let mut recap = BTreeMap::new();
    for line in stdout.lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let line = match event["event"].as_str().unwrap() {
            "play_start" => format!("PLAY [{}]", text(&event["play"])),
            "task_start" => format!("TASK [{}]", text(&event["task"])),
            "handler_start" => format!("RUNNING HANDLER [{}]", text(&event["task"])),
            "play_aborted" if !event["max_fail_percentage"].is_null() => {
                "NO MORE HOSTS LEFT".into()
            }
            "host" => {
                let status = match event["ignored"].as_bool() {
                    Some(true) => "ignored".to_owned(),
                    _ => text(&event["status"]),
                };
                block.push((text(&event["host"]), status));
                continue;
            }
            "included" => {
                block.push((text(&event["host"]), "included".to_owned()));
                continue;
            }
            "summary" => {
                recap = event["hosts"]
                    .as_object()
                    .unwrap()
                    .clone()
                    .into_iter()
                    .collect();
                assert_eq!(event["exit_code"], code);
                continue;
            }
            _ => continue,
        };
        flush(&mut out, &mut block);
        out.push(line);
    }
    flush(&mut out, &mut block);
    out.push("RECAP".into());
    for (host, t) in &recap {
        let counts: Vec<String> = [
            "ok",
            "changed",
            "unreachable",
            "failed",
            "skipped",
            "ignored",
        ]
        .iter()
        .map(|k| format!("{k}={}", t[*k]))
        .collect();
        let rescued = match t["rescued"].as_u64() {
            Some(n) if n > 0 => format!(" rescued={n}"),
            _ => String::new(),
        };
        out.push(format!("  {host} {}{rescued}", counts.join(" ")));
    }
    out.push(format!("exit {code}"));
    out.join("\n") + "\n"
}

/// Runs scenario `name` on `cluster`: its hosts take turns on the cluster's
/// sshd hosts; unreachable ones point at a closed port.
fn replay(cluster: &Cluster, name: &str) {
    replay_in(cluster, "serial", name);
}

/// Replays scenario `name` of `tests/fixtures/DIR/` on `cluster`.
pub(crate) fn replay_in(cluster: &Cluster, dir: &str, name: &str) {
    let scenario = load(dir, name);
    for (file, body) in &scenario.files {
        cluster.write_file(file, body);
    }
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut inventory = String::new();
    for (i, host) in scenario.hosts.iter().enumerate() {
        let sshd = &cluster.hosts[i % cluster.hosts.len()];
        let port = match scenario.unreachable.contains(host) {
            true => closed,
            false => sshd.port,
        };
        inventory.push_str(&format!(
            "{host} ansible_host={} ansible_port={port} ansible_user={}\n",
            sshd.address, cluster.user
        ));
    }
    let inventory = cluster.write_file(&format!("{name}.ini"), &inventory);
    let playbook = cluster.write_file(&format!("{name}.yml"), &scenario.playbook);
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let got = transcript(&out.stdout, out.code);
    if got != scenario.expected {
        let diff = similar::TextDiff::from_lines(&scenario.expected, &got);
        panic!(
            "{name}: arpanet differs from ansible-playbook (- ansible, + arpanet):\n{}\n{out}",
            diff.unified_diff()
        );
    }
}

#[test]
fn serial_and_max_fail_percentage_match_ansible_over_ssh() {
    let cluster = Cluster::start(3);
    for name in [
        "serial_list",
        "mfp0_later_batch",
        "mfp30",
        "handler_fails_mfp0",
        "unreachable_then_mfp_same_batch",
        "unreachable_and_failed_batch",
    ] {
        replay(&cluster, name);
    }
}
