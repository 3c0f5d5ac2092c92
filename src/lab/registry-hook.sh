# mmdebstrap extract hook for the lab's registry image; $1 is the new root.
set -eu
mkdir -p "$1"/etc/docker/registry "$1"/var/lib/docker-registry
cat >"$1"/etc/docker/registry/arpanet-lab.yml <<'YAML'
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
YAML
