//! The one integration test binary: every test module is a `mod` here so the
//! crate is linked once and the sshd harness is shared.

mod support;

mod bastion;
mod cluster;
mod daytwo;
mod deployed;
mod escalation;
mod flow;
mod gates;
mod health;
mod health_lab;
mod host_keys;
mod inputs;
mod inventory_reference;
mod lab;
mod limits;
mod linking;
mod live;
mod lock;
mod lock_lab;
mod modules;
mod operate;
mod reconnect;
mod roles;
mod roll;
mod run;
mod run_controls;
mod secrets;
mod secrets_lab;
mod serial;
mod shell;
mod ssh;
mod ssh_config;
mod transfer;
mod ui;
