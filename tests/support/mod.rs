//! Shared helpers for the integration tests: real sshd hosts on loopback
//! addresses, a cluster of them with one client key and one known_hosts
//! file, and a runner for the built `arpanet` binary.

#![allow(dead_code, unused_imports)]

pub mod consul;
pub mod lab;
pub mod sshd;

pub use consul::FakeConsul;

pub use sshd::{
    ensure_banner_user, ensure_bash_user, ensure_refusing_user, ensure_test_user, keygen,
    keygen_typed, run_arpanet, spawn_arpanet, Cluster, Run, SshAgent, SshdHost, TEST_USER,
};

/// Held by every test that builds a lab on the local Docker engine, so
/// that few labs run at once: `ARPANET_LAB_PARALLEL` of them (default 2;
/// a lab test mostly waits for its nodes, so two overlap well on two
/// cores), but only one until a lab has come up, as the first `lab up`
/// builds the images every lab uses and two would build them twice. Of the
/// heavy tests (a Consul cluster under load, gates timed over a window),
/// one runs at a time: two of them starve each other's elections.
pub struct LabTurn {
    heavy: bool,
}

struct Turns {
    running: usize,
    built: bool,
    heavy_running: bool,
    heavy_waiting: usize,
}

static TURNS: std::sync::Mutex<Turns> = std::sync::Mutex::new(Turns {
    running: 0,
    built: false,
    heavy_running: false,
    heavy_waiting: 0,
});
static TURN_ENDED: std::sync::Condvar = std::sync::Condvar::new();

fn turns() -> std::sync::MutexGuard<'static, Turns> {
    TURNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wait for a lab test's turn.
pub fn lab_turn() -> LabTurn {
    take_turn(false)
}

/// Wait for a heavy lab test's turn: no other heavy one runs beside it,
/// and a waiting heavy test goes before a light one.
pub fn heavy_lab_turn() -> LabTurn {
    take_turn(true)
}

fn take_turn(heavy: bool) -> LabTurn {
    let parallel = std::env::var("ARPANET_LAB_PARALLEL")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2);
    let mut turns = turns();
    if heavy {
        turns.heavy_waiting += 1;
    }
    loop {
        let limit = if turns.built { parallel } else { 1 };
        let free = limit.saturating_sub(turns.running);
        let may = if heavy {
            free > 0 && !turns.heavy_running
        } else {
            // The last free place is kept for a heavy test that could run.
            free > 1 || (free == 1 && (turns.heavy_running || turns.heavy_waiting == 0))
        };
        if may {
            break;
        }
        turns = TURN_ENDED
            .wait(turns)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    turns.running += 1;
    if heavy {
        turns.heavy_waiting -= 1;
        turns.heavy_running = true;
    }
    LabTurn { heavy }
}

/// A lab came up: its images exist, and other lab tests may start.
pub fn labs_built() {
    turns().built = true;
    TURN_ENDED.notify_all();
}

impl Drop for LabTurn {
    fn drop(&mut self) {
        let mut turns = turns();
        turns.running -= 1;
        if self.heavy {
            turns.heavy_running = false;
        }
        // Whether or not its lab came up, the next one builds what is missing.
        turns.built = true;
        drop(turns);
        TURN_ENDED.notify_all();
    }
}

/// Labs of several checkouts can run side by side on one Docker engine:
/// `ARPANET_TEST_LAB_SLOT=N` (1 to 9) gives this run's labs their own names,
/// subnets and directories. Without it, the defaults CI uses.
pub fn lab_slot() -> Option<u8> {
    std::env::var("ARPANET_TEST_LAB_SLOT")
        .ok()
        .and_then(|s| s.parse::<u8>().ok())
        .filter(|n| (1..=9).contains(n))
}

/// `base`, or `base-sN` in slot N.
pub fn lab_name(base: &str) -> String {
    match lab_slot() {
        Some(n) => format!("{base}-s{n}"),
        None => base.to_owned(),
    }
}

/// `10.OCTET.0.0/24`, or a subnet of slot N's own (`10.1N0+OCTET%10...`).
pub fn lab_subnet(octet: u8) -> String {
    match lab_slot() {
        Some(n) => format!(
            "10.{}.0.0/24",
            110 + 10 * u16::from(n) + u16::from(octet % 10)
        ),
        None => format!("10.{octet}.0.0/24"),
    }
}

/// The address `.host` in `subnet` (`10.X.0.0/24`).
pub fn lab_address(subnet: &str, host: u8) -> String {
    let prefix = subnet.rsplit_once(".0/").map_or(subnet, |(p, _)| p);
    format!("{prefix}.{host}")
}

/// Wait up to `limit` for `done`; whether it came true.
pub fn eventually(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
