//! The SSH transport against real sshd hosts (see `support::sshd`).

use crate::support::Cluster;

#[test]
fn harness_hosts_accept_the_cluster_key() {
    let cluster = Cluster::start(2);
    for i in 0..2 {
        let out = cluster.ssh(i, "id -un; echo $HOME");
        assert_eq!(out, "arpanet-test\n/home/arpanet-test\n");
    }
    let host = &cluster.hosts[1];
    host.stop();
    assert!(std::net::TcpStream::connect((host.address.as_str(), host.port)).is_err());
    host.restart();
    assert_eq!(cluster.ssh(1, "echo back"), "back\n");
}
