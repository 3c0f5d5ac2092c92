# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: make this machine able to run the
# arpanet lab. Installs what is missing (Debian or Ubuntu, as root) and starts
# a Docker engine in the background when none answers.

ARPANET_DOCKERD_PIDFILE=${ARPANET_DOCKERD_PIDFILE:-/run/arpanet-dockerd.pid}
ARPANET_DOCKERD_LOG=${ARPANET_DOCKERD_LOG:-/var/log/arpanet-dockerd.log}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# install_prerequisites: apt-get install whatever the lab and the tests need
# and is missing (sudo: the become tests run it on their sshd hosts).
install_prerequisites() {
    local missing=() cmd pkg
    for pair in docker:docker.io dockerd:docker.io mmdebstrap:mmdebstrap \
        sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client \
        ip:iproute2 curl:curl openssl:openssl \
        pgrep:procps sudo:sudo; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ]; then
            missing+=("$pkg")
        fi
    done
    [ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
    # The `ui` lab test loads the Consul and cAdvisor UIs in headless
    # Chromium; fonts-liberation (only recommended) gives its screenshots text.
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    [ -d /usr/share/fonts/truetype/liberation ] || missing+=(fonts-liberation)
    # The locale test compiles de_DE from these sources with localedef.
    [ -e /usr/share/i18n/locales/de_DE ] || missing+=(locales)
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get to install them (Debian or Ubuntu expected)"
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ensure_dockerd: start dockerd in the background unless an engine answers.
ensure_dockerd() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    local pid
    if [ -f "$ARPANET_DOCKERD_PIDFILE" ]; then
        pid=$(cat "$ARPANET_DOCKERD_PIDFILE" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            log "dockerd (pid $pid) is running but not answering yet"
        else
            log "removing stale pid file $ARPANET_DOCKERD_PIDFILE"
            as_root rm -f "$ARPANET_DOCKERD_PIDFILE"
            pid=
        fi
    fi
    if [ -z "${pid:-}" ]; then
        # Docker's own pid file too, left behind by a killed engine.
        if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
            as_root rm -f /var/run/docker.pid
        fi
        log "starting dockerd (log: $ARPANET_DOCKERD_LOG)"
        as_root sh -c "nohup dockerd --pidfile '$ARPANET_DOCKERD_PIDFILE' >>'$ARPANET_DOCKERD_LOG' 2>&1 </dev/null &"
    fi
    local waited=0
    until docker info >/dev/null 2>&1; do
        if [ "$waited" -ge 60 ]; then
            tail -n 20 "$ARPANET_DOCKERD_LOG" >&2 || true
            die "dockerd did not answer within 60 s (log: $ARPANET_DOCKERD_LOG)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "docker engine answers after ${waited} s"
}

# ensure_rust: cargo must be on the PATH.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
        export PATH
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found; install Rust (https://rustup.rs) and run again"
}

prepare_machine() {
    install_prerequisites
    ensure_dockerd
    ensure_rust
}
