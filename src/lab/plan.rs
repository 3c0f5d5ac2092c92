//! What a lab looks like, decided without touching anything: addresses,
//! node names and roles, and the inventory that describes them.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use super::images;
use super::REGISTRY_PORT;
use crate::error::{Error, Result};

/// The first node's last address octet minus one: node1 is `.11`; the
/// bastion (`lab up --bastion`) takes this one, `.10`.
const NODE_OFFSET: usize = 10;

/// The bastion's node name (and container suffix).
pub const BASTION: &str = "bastion";
const MAX_NODES: usize = 200;

/// The lab's /24 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    prefix: [u8; 3],
}

impl Subnet {
    /// `10.77.0.0/24` (only /24 networks).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::usage(format!("bad lab subnet `{text}`"))
                .with_hint("give a /24 network such as `10.77.0.0/24`")
        };
        let (address, bits) = text.trim().split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let [a, b, c, d] = address.octets();
        if bits != "24" || d != 0 {
            return Err(bad());
        }
        Ok(Subnet { prefix: [a, b, c] })
    }

    fn host(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, last)
    }

    pub fn cidr(&self) -> String {
        format!("{}/24", self.host(0))
    }

    /// The host's address on the lab network.
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }

    pub fn registry(&self) -> Ipv4Addr {
        self.host(2)
    }

    /// `IP:PORT` of the registry as the nodes reach it.
    pub fn registry_address(&self) -> String {
        format!("{}:{REGISTRY_PORT}", self.registry())
    }

    /// Address of node `index` (1-based).
    pub fn node(&self, index: usize) -> Ipv4Addr {
        self.host(u8::try_from(NODE_OFFSET + index).expect("index checked against MAX_NODES"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
    /// Not a cluster node: the way to the nodes' SSH port.
    Bastion,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Bastion => "bastion",
        })
    }
}

/// One node of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Inventory name and hostname: `node1`, `node2`, ...
    pub name: String,
    pub ip: Ipv4Addr,
    pub role: Role,
}

/// `count` nodes, the first `servers` of them Consul servers.
pub fn nodes(count: usize, servers: usize, subnet: &Subnet) -> Result<Vec<NodePlan>> {
    if count == 0 || count > MAX_NODES {
        return Err(Error::usage(format!(
            "--nodes must be between 1 and {MAX_NODES}, not {count}"
        )));
    }
    if servers == 0 || servers > count {
        return Err(Error::usage(format!(
            "--servers must be between 1 and --nodes ({count}), not {servers}"
        )));
    }
    Ok((1..=count)
        .map(|i| NodePlan {
            name: format!("node{i}"),
            ip: subnet.node(i),
            role: if i <= servers {
                Role::Server
            } else {
                Role::Client
            },
        })
        .collect())
}

/// The bastion of `lab up --bastion`.
pub fn bastion(subnet: &Subnet) -> NodePlan {
    NodePlan {
        name: BASTION.to_owned(),
        ip: subnet.host(NODE_OFFSET as u8),
        role: Role::Bastion,
    }
}

/// The lab's Ansible-style INI inventory; with a `bastion`, every node is
/// reached through it as root.
pub fn render_inventory(
    lab: &str,
    nodes: &[NodePlan],
    key: &Path,
    known_hosts: &Path,
    registry: &str,
    bastion: Option<Ipv4Addr>,
) -> String {
    let mut out = format!(
        "# The arpanet lab `{lab}`, written by `arpanet lab up`; `arpanet lab down` removes it.\n"
    );
    for (group, role) in [("servers", Role::Server), ("clients", Role::Client)] {
        out.push_str(&format!("\n[{group}]\n"));
        for node in nodes.iter().filter(|n| n.role == role) {
            out.push_str(&format!(
                "{} ansible_host={} arpanet_ip={}\n",
                node.name, node.ip, node.ip
            ));
        }
    }
    let servers = nodes.iter().filter(|n| n.role == Role::Server).count();
    let image = |spec: images::ImageSpec| {
        format!(
            "{registry}/{}",
            spec.registry_path.expect("a cluster image")
        )
    };
    out.push_str(&format!(
        "\n[all:vars]\n\
         ansible_user=root\n\
         # Or as an unprivileged sudoer, as on cloud VMs: `admin` (no password\n\
         # needed) or `deploy` (with ansible_become_pass, or ARPANET_BECOME_PASS,\n\
         # set to the password in `become-password` beside this file):\n\
         # ansible_user=admin\n\
         # ansible_become=true\n\
         ansible_ssh_private_key_file={}\n\
         arpanet_known_hosts_file={}\n\
         lab_registry={registry}\n\
         docker_insecure_registries=[\"{registry}\"]\n\
         consul_image={}\n\
         cadvisor_image={}\n\
         lab_testsvc_image={}\n\
         consul_expect={servers}\n",
        key.display(),
        known_hosts.display(),
        image(images::CONSUL),
        image(images::CADVISOR),
        image(images::TESTSVC),
    ));
    if let Some(ip) = bastion {
        out.push_str(&format!("arpanet_jump=root@{ip}\n"));
    }
    out
}

/// Host names in the `[servers]` group of an inventory this module wrote.
pub fn servers_in_inventory(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut in_servers = false;
    let mut servers = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_servers = line == "[servers]";
        } else if in_servers && !line.is_empty() && !line.starts_with('#') {
            servers.extend(line.split_whitespace().next().map(str::to_owned));
        }
    }
    Some(servers)
}

/// Order for listing: the registry, then nodes by number.
pub fn sort_key(name: &str) -> (usize, String) {
    match name
        .strip_prefix("node")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => (n, String::new()),
        None => (0, name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_gives_fixed_addresses() {
        let subnet = Subnet::parse("10.77.0.0/24").unwrap();
        assert_eq!(subnet.cidr(), "10.77.0.0/24");
        assert_eq!(subnet.gateway().to_string(), "10.77.0.1");
        assert_eq!(subnet.registry_address(), "10.77.0.2:5000");
        assert_eq!(subnet.node(1).to_string(), "10.77.0.11");
    }

    #[test]
    fn subnet_must_be_a_slash_24_network() {
        for bad in ["10.77.0.0/16", "10.77.0.5/24", "10.77.0.0", "ten/24"] {
            let err = Subnet::parse(bad).unwrap_err().to_string();
            assert!(err.contains("bad lab subnet"), "{bad}: {err}");
        }
    }

    #[test]
    fn first_nodes_are_servers() {
        let subnet = Subnet::parse("10.77.0.0/24").unwrap();
        let plan = nodes(5, 3, &subnet).unwrap();
        let roles: Vec<_> = plan.iter().map(|n| n.role).collect();
        assert_eq!(roles[..3], [Role::Server; 3]);
        assert_eq!(roles[3..], [Role::Client; 2]);
        assert_eq!(plan[4].name, "node5");
        assert_eq!(plan[4].ip.to_string(), "10.77.0.15");
    }

    #[test]
    fn more_servers_than_nodes_is_refused() {
        let subnet = Subnet::parse("10.77.0.0/24").unwrap();
        assert!(nodes(2, 3, &subnet).is_err());
        assert!(nodes(0, 0, &subnet).is_err());
        assert!(nodes(201, 3, &subnet).is_err());
    }

    #[test]
    fn inventory_lists_groups_key_and_registry() {
        let subnet = Subnet::parse("10.77.0.0/24").unwrap();
        let plan = nodes(3, 2, &subnet).unwrap();
        let text = render_inventory(
            "arpanet-lab",
            &plan,
            Path::new("/lab/id_ed25519"),
            Path::new("/lab/known_hosts"),
            &subnet.registry_address(),
            None,
        );
        let expected = "\
# The arpanet lab `arpanet-lab`, written by `arpanet lab up`; `arpanet lab down` removes it.

[servers]
node1 ansible_host=10.77.0.11 arpanet_ip=10.77.0.11
node2 ansible_host=10.77.0.12 arpanet_ip=10.77.0.12

[clients]
node3 ansible_host=10.77.0.13 arpanet_ip=10.77.0.13

[all:vars]
ansible_user=root
# Or as an unprivileged sudoer, as on cloud VMs: `admin` (no password
# needed) or `deploy` (with ansible_become_pass, or ARPANET_BECOME_PASS,
# set to the password in `become-password` beside this file):
# ansible_user=admin
# ansible_become=true
ansible_ssh_private_key_file=/lab/id_ed25519
arpanet_known_hosts_file=/lab/known_hosts
lab_registry=10.77.0.2:5000
docker_insecure_registries=[\"10.77.0.2:5000\"]
consul_image=10.77.0.2:5000/arpanet/consul:1.8.7
cadvisor_image=10.77.0.2:5000/arpanet/cadvisor:0.38.7
lab_testsvc_image=10.77.0.2:5000/arpanet/testsvc:1
consul_expect=2
";
        assert_eq!(text, expected);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.ini");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            servers_in_inventory(&path).unwrap(),
            ["node1".to_owned(), "node2".to_owned()]
        );
    }

    #[test]
    fn a_bastion_lab_reaches_its_nodes_through_the_bastion() {
        let subnet = Subnet::parse("10.77.0.0/24").unwrap();
        let bastion = bastion(&subnet);
        assert_eq!(bastion.ip.to_string(), "10.77.0.10");
        let plan = nodes(2, 1, &subnet).unwrap();
        let text = render_inventory(
            "l",
            &plan,
            Path::new("/k"),
            Path::new("/kh"),
            "10.77.0.2:5000",
            Some(bastion.ip),
        );
        assert!(text.ends_with("\narpanet_jump=root@10.77.0.10\n"), "{text}");
        assert!(!text.contains("bastion ansible_host"), "{text}");
    }
}
