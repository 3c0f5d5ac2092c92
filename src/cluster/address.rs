//! The address each node's Consul agent binds to and advertises to the
//! others: `arpanet_ip`, by default the address arpanet reaches the node
//! at over SSH (`ansible_host`, or its short form `host`, else the
//! inventory name, after `~/.ssh/config`). Consul takes an IP address
//! there and nothing else: a host name leaves the agent's container
//! exiting at start, which the gates would report only after their
//! timeout. So before any host is contacted, `run` reads every agent
//! node's value and resolves a host name to its address on this machine,
//! or stops when it cannot ([`resolve`]).
//!
//! The same holds for `docker_bridge_ip`, where the agent also listens and
//! containers send their DNS queries: unset (read from the node when a
//! playbook runs) or an IPv4 address ([`check_bridge`]).

use std::net::{IpAddr, Ipv4Addr};

use crate::error::{Error, Result};

/// Every Consul node's (`servers`, `clients`) `arpanet_ip` as an IP
/// address: where it is a host name, the address that name resolves to on
/// this machine (for the default, the SSH address: the name arpanet
/// connects to, after `~/.ssh/config`'s `HostName`), returned for
/// [`crate::config::ConnectOptions::resolved_ips`]. With `strict` (the
/// built-in playbooks, which start Consul with it), a name that does not
/// resolve is an error (exit 5) naming the host and the value, and so is
/// one that resolves only to a loopback address where the cluster has more
/// than one node (Debian maps the machine's own name to 127.0.1.1: the
/// other nodes could not reach it); otherwise it is left as it is.
///
/// The nodes `--limit` selects are resolved, and the servers whatever it
/// says: a node's Consul command names the servers by their addresses.
pub(crate) fn resolve(
    connect: &crate::config::ConnectOptions,
    strict: bool,
) -> Result<Vec<(String, String)>> {
    let session = crate::session::Session::open(&crate::config::ConnectOptions {
        limit: None,
        ..connect.clone()
    })?;
    let inventory = &session.inventory;
    let limit = connect.limit.as_deref();
    let mut wanted: std::collections::HashSet<String> =
        crate::plan::play_hosts(inventory, "servers:clients", limit)?
            .into_iter()
            .collect();
    wanted.extend(crate::plan::play_hosts(inventory, "servers", None)?);
    let agents = crate::plan::play_hosts(inventory, "servers:clients", None)?.len();
    let mut names = Vec::new();
    for host in session.hosts("servers:clients")? {
        if !wanted.contains(&host.name) {
            continue;
        }
        let Some(value) = text_of(&host.vars, "arpanet_ip") else {
            continue;
        };
        if value.parse::<IpAddr>().is_ok() {
            continue;
        }
        let ssh_host = text_of(&host.vars, "ansible_host")
            .or_else(|| text_of(&host.vars, "host"))
            .unwrap_or_else(|| host.name.clone());
        let lookup = if value == ssh_host {
            host.target.address.clone()
        } else {
            value.clone()
        };
        names.push((host.name, value, lookup));
    }
    let found = lookup_all(names.iter().map(|(_, _, lookup)| lookup.as_str()));
    let mut resolved = Vec::with_capacity(names.len());
    for ((host, value, lookup), found) in names.into_iter().zip(found) {
        let problem = match found {
            Ok(ip) if ip.is_loopback() && agents > 1 && strict => format!(
                "`{lookup}` resolves on this machine only to {ip}, a loopback address the \
                 other nodes cannot reach"
            ),
            Ok(ip) => {
                resolved.push((host, ip.to_string()));
                continue;
            }
            Err(_) if !strict => continue,
            Err(err) => format!("`{lookup}` does not resolve on this machine ({err})"),
        };
        return Err(Error::usage(format!(
            "host `{host}`: `arpanet_ip` is `{value}`, a host name, and {problem}: the node's \
             Consul agent binds to this address and advertises it to the cluster"
        ))
        .with_hint(format!(
            "set the node's private address in the inventory, `{host} arpanet_ip=10.0.0.11` \
             for example; without it, `arpanet_ip` is the address arpanet reaches the node at \
             (`ansible_host`, or `host`, else the inventory name)"
        )));
    }
    Ok(resolved)
}

/// How many names are looked up at once.
const LOOKUPS_AT_ONCE: usize = 32;

/// Each name's address on this machine (the system resolver: `/etc/hosts`,
/// DNS), as [`pick`] chooses it.
fn lookup_all<'a>(names: impl Iterator<Item = &'a str>) -> Vec<std::io::Result<IpAddr>> {
    let names: Vec<&str> = names.collect();
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(LOOKUPS_AT_ONCE) {
        std::thread::scope(|scope| {
            let lookups: Vec<_> = chunk
                .iter()
                .map(|name| scope.spawn(move || lookup(name)))
                .collect();
            for lookup in lookups {
                out.push(
                    lookup
                        .join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("the lookup failed"))),
                );
            }
        });
    }
    out
}

fn lookup(name: &str) -> std::io::Result<IpAddr> {
    use std::net::ToSocketAddrs;
    let found: Vec<IpAddr> = (name, 0).to_socket_addrs()?.map(|a| a.ip()).collect();
    pick(&found).ok_or_else(|| std::io::Error::other("no address"))
}

/// The address to use of those a name resolves to: IPv4 before IPv6 (the
/// cluster's addresses are IPv4), and of each, one other nodes can reach
/// before a loopback one (Debian maps the machine's own name to
/// 127.0.1.1 as well as to its address).
fn pick(found: &[IpAddr]) -> Option<IpAddr> {
    let rank = |ip: &IpAddr| (!ip.is_ipv4(), ip.is_loopback());
    found.iter().min_by_key(|ip| rank(ip)).copied()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn an_ipv4_address_other_nodes_can_reach_is_picked_first() {
        let pick = |list: &[&str]| pick(&ips(list)).map(|ip| ip.to_string());
        assert_eq!(
            pick(&["::1", "127.0.1.1", "fd00::5", "10.0.0.5"]).as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            pick(&["fd00::5", "127.0.0.1"]).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(pick(&["::1", "fd00::5"]).as_deref(), Some("fd00::5"));
        assert_eq!(pick(&[]), None);
    }
}
