//! The address each node's Consul agent binds to and advertises to the
//! others: `arpanet_ip`, by default the address arpanet reaches the node
//! at over SSH (`ansible_host`, or its short form `host`, else the
//! inventory name). Consul takes an IP address there and nothing else: a
//! host name leaves the agent's container exiting at start, which the
//! gates would report only after their timeout. `run` reads every agent
//! node's value before any host is contacted ([`check`]).
//!
//! The same holds for `docker_bridge_ip`, where the agent also listens and
//! containers send their DNS queries: unset (read from the node when a
//! playbook runs) or an IPv4 address ([`check_bridge`]).

use std::net::{IpAddr, Ipv4Addr};

use crate::error::{Error, Result};

/// Every Consul node's (`servers`, `clients`) `arpanet_ip` is an IP
/// address, else an error (exit 5) naming the host and the value, and
/// the address arpanet reaches the node at when that one is an IP (from
/// `~/.ssh/config`, say).
pub(crate) fn check(session: &crate::session::Session) -> Result<()> {
    for host in session.hosts("servers:clients")? {
        let Some(value) = text_of(&host.vars, "arpanet_ip") else {
            continue;
        };
        if value.parse::<IpAddr>().is_ok() {
            continue;
        }
        let reached = match host.target.address.parse::<IpAddr>() {
            Ok(ip) => format!(" (arpanet reaches it at {ip}; is that the one?)"),
            Err(_) => String::new(),
        };
        return Err(Error::usage(format!(
            "host `{}`: `arpanet_ip` is `{value}`, not an IP address: the node's Consul agent \
             binds to it and advertises it to the cluster",
            host.name
        ))
        .with_hint(format!(
            "set the node's private address in the inventory, `{} arpanet_ip=10.0.0.11` for \
             example{reached}; without it, `arpanet_ip` is `ansible_host` (or `host`), else the \
             inventory name",
            host.name
        )));
    }
    Ok(())
}

/// Every host's `docker_bridge_ip` is unset or an IPv4 address, else an
/// error (exit 5) at its line where a `group_vars`/`host_vars` file sets
/// it, or naming the host.
pub(crate) fn check_bridge(session: &crate::session::Session) -> Result<()> {
    const HINT: &str = "leave it unset (each node's Docker bridge address is then read when \
                        the playbook runs), or set the address docker0 has on the node";
    for host in session.hosts("all")? {
        let Some(value) = text_of(&host.vars, "docker_bridge_ip") else {
            continue;
        };
        if value.parse::<Ipv4Addr>().is_ok() {
            continue;
        }
        let message = format!(
            "`docker_bridge_ip` is `{value}`, not an IPv4 address: containers \
             resolve names through it and the node's Consul agent listens on it"
        );
        if let Some(err) = session
            .scope
            .var_file(&host.name, "docker_bridge_ip")
            .and_then(|file| super::docker_api::locate(&file, "docker_bridge_ip", &message, HINT))
        {
            return Err(err);
        }
        return Err(Error::usage(format!("host `{}`: {message}", host.name)).with_hint(HINT));
    }
    Ok(())
}

/// `key`'s value as written (a string trimmed, anything else as JSON).
fn text_of(vars: &crate::vars::Vars, key: &str) -> Option<String> {
    match vars.get(key)? {
        serde_json::Value::String(s) => Some(s.trim().to_owned()),
        other => Some(other.to_string()),
    }
}
