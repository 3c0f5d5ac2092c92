# mmdebstrap customize hook for the lab's node image; $1 is the new root.
set -eu
root=$1

# Every node makes its own host keys on first boot, never shares the image's.
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root"/etc/systemd/system/arpanet-lab-hostkeys.service <<'UNIT'
[Unit]
Description=Generate this node's own SSH host keys
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
UNIT
mkdir -p "$root"/etc/systemd/system/ssh.service.wants
ln -sf /etc/systemd/system/arpanet-lab-hostkeys.service \
    "$root"/etc/systemd/system/ssh.service.wants/arpanet-lab-hostkeys.service

# Each node gets its own machine id on first boot, kept across restarts.
echo uninitialized >"$root"/etc/machine-id

rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/lib/apt/lists/*
