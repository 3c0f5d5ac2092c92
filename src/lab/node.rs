//! Talking to a running lab node or the registry: readiness checks, the
//! lab's key, the node's host key.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::docker::{lab_error, Docker};
use crate::error::Result;

const POLL: Duration = Duration::from_millis(500);

/// Wait until systemd in `container` says `running` (or `degraded`, which
/// still boots sshd and dockerd); the state it reached.
pub fn wait_for_systemd(docker: &Docker, container: &str, deadline: Instant) -> Result<String> {
    loop {
        let output = docker.raw(&["exec", container, "systemctl", "is-system-running"], None)?;
        let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let last = match state.as_str() {
            "running" | "degraded" => return Ok(state),
            "" => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            _ => state,
        };
        if Instant::now() >= deadline {
            return Err(lab_error(format!(
                "`{container}` did not finish booting: systemd is `{last}`"
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// Add the lab's public key to root's authorized_keys unless it is there;
/// whether it was added. Written under /root, not a tmpfs, so it survives a
/// restart.
pub fn authorise_key(docker: &Docker, container: &str, public_key: &str) -> Result<bool> {
    let script = "umask 077; mkdir -p /root/.ssh; key=$(cat); \
        touch /root/.ssh/authorized_keys; \
        if grep -qxF \"$key\" /root/.ssh/authorized_keys; then echo present; \
        else printf '%s\\n' \"$key\" >>/root/.ssh/authorized_keys; echo added; fi";
    let said = docker.out_with_input(
        &["exec", "--interactive", container, "sh", "-c", script],
        Some(format!("{public_key}\n").as_bytes()),
    )?;
    Ok(said.trim() == "added")
}

/// The unprivileged sudoers every node has, as cloud images do: `admin`
/// may sudo without a password, `deploy` with its password (the lab's, in
/// `become-password` beside the inventory). Both log in with the lab's key.
pub const SUDO_USERS: [(&str, bool); 2] = [("admin", true), ("deploy", false)];

/// Make [`SUDO_USERS`] on the node unless they are there, with the lab's
/// key and `password` for `deploy`; whether anything changed. The key and
/// the password go on stdin, never on a command line.
pub fn ensure_sudo_users(
    docker: &Docker,
    container: &str,
    public_key: &str,
    password: &str,
) -> Result<bool> {
    let mut script = String::from("set -e; umask 022; read -r key; read -r password; changed=; ");
    for (user, nopasswd) in SUDO_USERS {
        let rule = if nopasswd { "NOPASSWD: ALL" } else { "ALL" };
        script.push_str(&format!(
            "if ! id -u {user} >/dev/null 2>&1; then useradd -m -s /bin/bash {user}; changed=1; fi; \
             home=$(getent passwd {user} | cut -d: -f6); mkdir -p \"$home/.ssh\"; \
             if ! grep -qxF \"$key\" \"$home/.ssh/authorized_keys\" 2>/dev/null; then \
             printf '%s\\n' \"$key\" >\"$home/.ssh/authorized_keys\"; changed=1; fi; \
             chown -R {user}: \"$home/.ssh\"; chmod 700 \"$home/.ssh\"; \
             rule='{user} ALL=(ALL:ALL) {rule}'; f=/etc/sudoers.d/arpanet-lab-{user}; \
             if [ \"$(cat $f 2>/dev/null)\" != \"$rule\" ]; then \
             printf '%s\\n' \"$rule\" >$f; chmod 440 $f; changed=1; fi; "
        ));
        if nopasswd {
            // Not locked (sshd refuses locked accounts), but no password.
            script.push_str(&format!("usermod -p '*' {user}; "));
        } else {
            script.push_str(&format!(
                "printf '%s:%s\\n' {user} \"$password\" | chpasswd; "
            ));
        }
    }
    script.push_str("[ -n \"$changed\" ] && echo added || echo present");
    let said = docker.out_with_input(
        &["exec", "--interactive", container, "sh", "-c", &script],
        Some(format!("{public_key}\n{password}\n").as_bytes()),
    )?;
    Ok(said.trim() == "added")
}

/// The node's own ed25519 host key, `ssh-ed25519 AAAA...`, read from the
/// node (never learnt from a first connection).
pub fn host_key(docker: &Docker, container: &str) -> Result<String> {
    let text = docker.out(&[
        "exec",
        container,
        "cat",
        "/etc/ssh/ssh_host_ed25519_key.pub",
    ])?;
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind @ "ssh-ed25519"), Some(key)) => Ok(format!("{kind} {key}")),
        _ => Err(lab_error(format!(
            "`{container}` has no usable ed25519 host key: `{text}`"
        ))),
    }
}

/// The systemd unit (and iptables rule comment) that lets only the lab's
/// bastion reach a node's sshd.
const BASTION_ONLY: &str = "arpanet-lab-bastion-only";

/// Let only `bastion` (and the node itself, over loopback) reach the
/// node's sshd (an iptables rule rejecting every other source, made again at each boot by a systemd unit), or with
/// `None` everyone again; whether anything changed.
pub fn ssh_only_from(docker: &Docker, container: &str, bastion: Option<Ipv4Addr>) -> Result<bool> {
    let script = r#"set -e
tag=$1 bastion=$2 unit=/etc/systemd/system/$1.service
before=$(iptables -S INPUT | grep -F -- "--comment $tag" || true)
printf '%s\n' "$before" | grep -F -- '-A INPUT' | sed 's/^-A /-D /' |
    while read -r rule; do eval "iptables $rule"; done
if [ -n "$bastion" ]; then
    rule="INPUT -p tcp --dport 22 ! -i lo ! -s $bastion -m comment --comment $tag -j REJECT --reject-with tcp-reset"
    cat >"$unit" <<UNIT
[Unit]
Description=Let only the lab's bastion reach sshd
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/iptables -I $rule

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable "$tag.service" >/dev/null 2>&1
    iptables -I $rule
elif [ -f "$unit" ]; then
    systemctl disable "$tag.service" >/dev/null 2>&1 || true
    rm -f "$unit"
    systemctl daemon-reload
fi
after=$(iptables -S INPUT | grep -F -- "--comment $tag" || true)
[ "$before" = "$after" ] && echo same || echo changed
"#;
    let bastion = bastion.map(|ip| ip.to_string()).unwrap_or_default();
    let said = docker.out(&[
        "exec",
        container,
        "sh",
        "-c",
        script,
        "sh",
        BASTION_ONLY,
        &bastion,
    ])?;
    Ok(said.trim() == "changed")
}

/// Wait until the node's own sshd sends its banner on 127.0.0.1:22, asked
/// from inside the node (for nodes only the bastion may reach).
pub fn wait_for_sshd_inside(
    docker: &Docker,
    container: &str,
    deadline: Instant,
) -> std::result::Result<(), String> {
    let probe = "exec 3<>/dev/tcp/127.0.0.1/22 && head -c 4 <&3";
    loop {
        let said = docker
            .raw(
                &["exec", container, "timeout", "5", "bash", "-c", probe],
                None,
            )
            .map_err(|e| e.to_string())?;
        let banner = String::from_utf8_lossy(&said.stdout).into_owned();
        if banner == "SSH-" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no banner from inside the node: `{}`",
                String::from_utf8_lossy(&said.stderr).trim()
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Wait until sshd on `ip:22` sends its banner.
pub fn wait_for_sshd(ip: Ipv4Addr, deadline: Instant) -> std::result::Result<(), String> {
    let addr = SocketAddr::from((ip, 22));
    loop {
        let error = match ssh_banner(addr) {
            Ok(banner) if banner.starts_with("SSH-2.0-") => return Ok(()),
            Ok(banner) => format!("unexpected banner `{banner}`"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(error);
        }
        std::thread::sleep(POLL);
    }
}

fn ssh_banner(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 256];
    let mut banner = Vec::new();
    while !banner.contains(&b'\n') && banner.len() < 255 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        banner.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&banner).trim().to_owned())
}

/// The HTTP status code of `METHOD path` on the registry at 127.0.0.1:port.
fn registry_request(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
         Accept: application/vnd.docker.distribution.manifest.v2+json\r\n\
         Accept: application/vnd.oci.image.manifest.v1+json\r\n\r\n"
    )?;
    let mut response = Vec::new();
    let mut buf = [0u8; 512];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let status_line = String::from_utf8_lossy(&response);
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP answer: `{}`", status_line.trim()),
            )
        })
}

/// Wait until the registry answers `GET /v2/` with 200.
pub fn wait_for_registry(port: u16, timeout: Duration) -> std::result::Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let error = match registry_request(port, "GET", "/v2/") {
            Ok(200) => return Ok(()),
            Ok(code) => format!("HTTP status {code}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(error);
        }
        std::thread::sleep(POLL);
    }
}

/// Whether the registry holds `name:tag`.
pub fn registry_has(port: u16, image: &str) -> std::io::Result<bool> {
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    Ok(registry_request(port, "HEAD", &format!("/v2/{name}/manifests/{tag}"))? == 200)
}
