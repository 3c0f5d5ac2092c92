//! Shared helpers for the integration tests: real sshd hosts on loopback
//! addresses, a cluster of them with one client key and one known_hosts
//! file, and a runner for the built `arpanet` binary.

#![allow(dead_code, unused_imports)]

pub mod sshd;

pub use sshd::{
    ensure_banner_user, ensure_test_user, keygen, keygen_typed, run_arpanet, spawn_arpanet,
    Cluster, Run, SshAgent, SshdHost, TEST_USER,
};

/// Held by every test that builds a lab on the local Docker engine, so they
/// take turns: two first `lab up`s at once would build the same images twice.
pub fn lab_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
