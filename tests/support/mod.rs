//! Shared helpers for the integration tests: real sshd hosts on loopback
//! addresses, a cluster of them with one client key and one known_hosts
//! file, and a runner for the built `arpanet` binary.

#![allow(dead_code, unused_imports)]

pub mod sshd;

pub use sshd::{
    ensure_test_user, keygen, keygen_typed, run_arpanet, Cluster, Run, SshAgent, SshdHost,
    TEST_USER,
};
