//! Replays the scenarios of `tests/fixtures/serial/` (and, with the same
//! code, `tests/fixtures/flow/`), recorded from ansible-playbook 2.19 by
//! `record.py`, and expects arpanet's executor to run the same tasks on the
//! same hosts with the same results, recap and exit code. The in-memory
//! transport stands in for the hosts: these tests are about ordering and
//! failure rules only.

use std::path::PathBuf;

use super::*;
use crate::report::{exit_code, Recap};

fn dir() -> PathBuf {
    fixtures("serial")
}

pub(super) fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A scenario: its inventory, unreachable hosts, playbook, and what
/// ansible-playbook printed, in the fixture format.
struct Scenario {
    hosts: Vec<String>,
    unreachable: Vec<String>,
    playbook: String,
    /// Files beside the playbook (`--- file NAME` sections), by name.
    files: Vec<(String, String)>,
    expected: String,
}

fn load(dir: &Path, name: &str) -> Scenario {
    let path = dir.join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let (spec, rest) = text
        .split_once("--- playbook\n")
        .expect("a playbook section");
    let (playbook, recorded) = rest
        .split_once("--- ansible-playbook")
        .expect("a recorded section: run record.py");
    let field = |key: &str| -> Vec<String> {
        spec.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .flat_map(|v| v.split_whitespace().map(str::to_owned))
            .collect()
    };
    let expected = recorded.split_once('\n').map_or("", |(_, body)| body);
    let mut parts = playbook.split("\n--- file ");
    let playbook = parts.next().unwrap_or_default().to_owned() + "\n";
    let files = parts
        .map(|part| {
            let (name, body) = part.split_once('\n').unwrap_or((part, ""));
            (name.trim().to_owned(), body.to_owned())
        })
        .collect();
    Scenario {
        hosts: field("hosts"),
        unreachable: field("unreachable"),
        playbook,
        files,
        expected: expected.to_owned(),
    }
}

/// Sorts host names as record.py does: `h2` before `h10`.
fn natural(name: &str) -> (String, u64) {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    let prefix = &name[..name.len() - digits.len()];
    (prefix.to_owned(), digits.parse().unwrap_or(0))
}

/// arpanet's events in the fixture format.
fn transcript(events: &[Event]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut block: Vec<(String, &str)> = Vec::new();
    let flush = |out: &mut Vec<String>, block: &mut Vec<(String, &str)>| {
        block.sort_by_key(|(h, _)| natural(h));
        out.extend(block.drain(..).map(|(h, s)| format!("  {h} {s}")));
    };
    let mut recap = Recap::default();
    for event in events {
        recap.add(event);
        let line = match event {
            Event::PlayStart { play, .. } => format!("PLAY [{play}]"),
            Event::TaskStart { task, .. } => format!("TASK [{task}]"),
            Event::HandlerStart { task, .. } => format!("RUNNING HANDLER [{task}]"),
            Event::PlayAborted {
                max_fail_percentage: Some(_),
                ..
            } => "NO MORE HOSTS LEFT".to_owned(),
            Event::Host(r) => {
                let status = if r.ignored {
                    "ignored"
                } else {
                    r.status.label()
                };
                block.push((r.host.clone(), status));
                continue;
            }
            Event::Included { host, .. } => {
                block.push((host.clone(), "included"));
                continue;
            }
            _ => continue,
        };
        flush(&mut out, &mut block);
        out.push(line);
    }
    flush(&mut out, &mut block);
    out.push("RECAP".into());
    for (host, t) in &recap.hosts {
        let rescued = match t.rescued {
            0 => String::new(),
            n => format!(" rescued={n}"),
        };
        out.push(format!(
            "  {host} ok={} changed={} unreachable={} failed={} skipped={} ignored={}{rescued}",
            t.ok, t.changed, t.unreachable, t.failed, t.skipped, t.ignored
        ));
    }
    out.push(format!("exit {}", exit_code(&recap)));
    out.join("\n") + "\n"
}

fn replay(name: &str) {
    replay_in(&dir(), name);
}

pub(super) fn replay_in(dir: &Path, name: &str) {
    let scenario = load(dir, name);
    let fake = Fake {
        down: scenario.unreachable.clone(),
        ..Fake::default()
    };
    let files = tempfile::tempdir().unwrap();
    for (file, body) in &scenario.files {
        let path = files.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let (captured, _) = run_in_dir(
        &fake,
        inventory_of(&scenario.hosts),
        &scenario.playbook,
        files.path(),
        Settings::default(),
    );
    let got = transcript(&captured.events());
    if got != scenario.expected {
        let diff = similar::TextDiff::from_lines(&scenario.expected, &got);
        panic!(
            "{name}: arpanet differs from ansible-playbook (- ansible, + arpanet):\n{}",
            diff.unified_diff()
        );
    }
}

macro_rules! scenarios {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_recorded_scenario_is_replayed() {
            let mut listed = vec![$(stringify!($name)),*];
            listed.sort_unstable();
            let mut found: Vec<String> = std::fs::read_dir(dir())
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    name.strip_suffix(".txt").map(str::to_owned)
                })
                .collect();
            found.sort_unstable();
            assert_eq!(found, listed);
        }
    };
}

scenarios! {
    serial_count
    serial_percent
    serial_percent_small
    serial_list
    mfp0_later_batch
    mfp30
    mfp49
    mfp50
    mfp50_across_batches
    mfp100_whole_batch
    no_mfp_failures
    unreachable_mfp0
    unreachable_no_mfp
    unreachable_and_failed_batch
    unreachable_mfp_over
    unreachable_then_mfp_same_batch
    ignore_errors_mfp0
    handler_fails_mfp0
    exit_code_mixed
    exit_code_unreachable_first
    exit_code_unreachable_then_mfp
    exit_code_plays
    exit_code_plays_unreachable_first
}
