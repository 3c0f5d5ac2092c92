//! Day-two rough edges: `render` with a run's magic variables, old command
//! names, options anywhere, the inventory found without `-i`, verbosity,
//! signs of life in a pipe, readable loop labels.

use crate::support::Cluster;

/// An inventory of three hosts (two servers) with addresses, no sshd needed.
fn servers_inventory(cluster: &Cluster) -> String {
    let path = cluster.write_file(
        "inventory.ini",
        "[servers]\nnode1 arpanet_ip=10.9.0.1\nnode2 arpanet_ip=10.9.0.2\n\n\
         [clients]\nnode3 arpanet_ip=10.9.0.3\n",
    );
    path.to_str().unwrap().to_owned()
}

#[test]
fn render_sees_hostvars_groups_and_the_consul_command_built_from_them() {
    let cluster = Cluster::start(0);
    let inv = servers_inventory(&cluster);
    let template = cluster.write_file(
        "t.j2",
        "{{ hostvars['node2'].arpanet_ip }} {{ groups['servers'] | join(',') }} \
         {{ group_names | join(',') }}\n{{ consul_server_command }}\n",
    );
    let out = cluster.run(&[
        "render",
        "-i",
        &inv,
        "--host",
        "node3",
        template.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("10.9.0.2 node1,node2 clients"), "{out}");
    let command = lines.next().unwrap_or_default();
    // The first server is the one others join, by its address.
    assert!(command.contains("-retry-join=10.9.0.1"), "{out}");
    assert!(command.contains("-advertise=10.9.0.3"), "{out}");
}
