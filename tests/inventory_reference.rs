//! `arpanet inventory` against what `ansible-inventory` 2.19 made of the
//! same inventories: two dozen written in the shapes of public ones
//! (Kubespray, Kolla, ceph-ansible, ansible-examples, k3s-ansible, homelabs)
//! under tests/fixtures/ansible_inventory, recorded by `record.py` there.
//! No Ansible is needed to run this test.
//!
//! Compared, for each case: `arpanet inventory --list` with the recorded
//! `ansible-inventory --list` (groups, their hosts and children, and every
//! host's variables), and `arpanet inventory --list-hosts --limit PATTERN`
//! with `ansible PATTERN --list-hosts` for each recorded pattern, order
//! included. Normalisations, each because the difference is deliberate:
//!
//! - `_meta.profile` (`inventory_legacy`) is Ansible's output-format marker;
//!   it is dropped.
//! - A pattern that selects no host is an error in arpanet (Ansible warns
//!   and lists none); an empty recorded list expects our bad-input exit
//!   code (5) and a `no hosts match` message.
//! - Patterns listed in a case's `unordered` file are compared as sets:
//!   there Ansible walks grandchild groups through a Python set, so its
//!   order is arbitrary (arpanet goes breadth first in listing order).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible_inventory")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("sources").is_file())
        .collect();
    cases.sort();
    cases
}

fn lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `arpanet inventory -i SOURCE... ARGS` in the case's directory, with no
/// rc file or project file to pick up.
fn arpanet(case: &Path, args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arpanet"));
    cmd.arg("inventory")
        .current_dir(case)
        .env("HOME", home.path());
    cmd.env_remove("ARPANET_INVENTORY");
    for s in lines(&case.join("sources")) {
        cmd.args(["-i", s.trim()]);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn inventories_read_as_ansible_inventory_reads_them() {
    let cases = cases();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let out = arpanet(case, &["--list"]);
        if !out.status.success() {
            failures.push(format!(
                "{name}: `--list` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut theirs: Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("list.json")).unwrap())
                .unwrap();
        if let Some(meta) = theirs.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.remove("profile");
        }
        if ours != theirs {
            failures.push(format!("{name}: --list differs\n{}", diff(&theirs, &ours)));
        }

        let limits: serde_json::Map<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(case.join("limits.json")).unwrap())
                .unwrap();
        let unordered: BTreeSet<String> = lines(&case.join("unordered")).into_iter().collect();
        for (pattern, expected) in &limits {
            let out = arpanet(case, &["--list-hosts", "--limit", pattern]);
            let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            let expected: Vec<String> = match expected {
                Value::Array(hosts) => hosts
                    .iter()
                    .map(|h| h.as_str().unwrap().to_owned())
                    .collect(),
                _ => {
                    if out.status.code() != Some(5) {
                        failures.push(format!(
                            "{name}: `{pattern}`: Ansible refused it, we did not"
                        ));
                    }
                    continue;
                }
            };
            if expected.is_empty() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.code() != Some(5) || !stderr.contains("no hosts match") {
                    failures.push(format!(
                        "{name}: `{pattern}` selects nothing in Ansible; expected our error, got {got:?}"
                    ));
                }
                continue;
            }
            if !out.status.success() {
                failures.push(format!(
                    "{name}: `{pattern}` failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
                continue;
            }
            let same = match unordered.contains(pattern) {
                true => {
                    got.iter().collect::<BTreeSet<_>>() == expected.iter().collect::<BTreeSet<_>>()
                        && got.len() == expected.len()
                }
                false => got == expected,
            };
            if !same {
                failures.push(format!(
                    "{name}: `{pattern}`\n  ansible: {expected:?}\n  arpanet: {got:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The paths where two JSON values differ, for a readable failure.
fn diff(want: &Value, got: &Value) -> String {
    fn walk(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
        match (want, got) {
            (Value::Object(a), Value::Object(b)) => {
                let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for k in keys {
                    let p = format!("{path}.{k}");
                    match (a.get(k), b.get(k)) {
                        (Some(x), Some(y)) => walk(&p, x, y, out),
                        (Some(x), None) => out.push(format!("  {p}: ansible {x}, arpanet missing")),
                        (None, Some(y)) => out.push(format!("  {p}: ansible missing, arpanet {y}")),
                        (None, None) => {}
                    }
                }
            }
            _ if want != got => out.push(format!("  {path}: ansible {want}, arpanet {got}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", want, got, &mut out);
    out.join("\n")
}
