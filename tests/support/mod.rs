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

/// Held by every test that builds a lab on the local Docker engine, so they
/// take turns: two first `lab up`s at once would build the same images twice.
pub fn lab_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
