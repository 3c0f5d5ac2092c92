//! Docker's API reaches the network only with TLS and client certificates.
//!
//! `docker_opts_extra` goes to dockerd as written (`/etc/default/docker`),
//! so a `-H tcp://0.0.0.0:2375` there would open the API, which is root on
//! the node, to anyone who reaches the port: the 2014 tool's defect.
//! `run` reads every host's value before any host is contacted ([`check`])
//! and refuses a TCP listener without `--tlsverify`; `docker_tcp: true` is
//! the way to open it (arpanet's CA, a certificate per node, clients
//! verified).

use crate::error::{Error, InputKind, Result};

const HINT: &str = "set `docker_tcp: true` instead: dockerd then listens on \
                    arpanet_ip:docker_port with TLS, and only clients holding a certificate \
                    of the cluster's CA get in (see the README, *The cluster it builds*)";

/// The TCP address `opts` (dockerd's options) listens on without client
/// verification, if any: a `-H`/`--host` value that is not a local socket
/// (`unix://`, `fd://`), while `--tlsverify` is absent or false. dockerd
/// reads an address without a scheme (`-H :2375`) as TCP too.
pub(crate) fn plain_tcp(opts: &str) -> Option<String> {
    let words: Vec<&str> = opts.split_whitespace().collect();
    let mut listens = Vec::new();
    let mut verified = false;
    let mut i = 0;
    while i < words.len() {
        let word = words[i].trim_matches(['"', '\'']);
        let value = match word {
            "-H" | "--host" => {
                i += 1;
                words.get(i).map(|w| w.trim_matches(['"', '\'']))
            }
            _ => word
                .strip_prefix("--host=")
                .or_else(|| word.strip_prefix("-H=").or_else(|| word.strip_prefix("-H"))),
        };
        match word {
            "--tlsverify" | "--tlsverify=true" => verified = true,
            "--tlsverify=false" => verified = false,
            _ => {}
        }
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            listens.push(value.to_owned());
        }
        i += 1;
    }
    let local = |v: &str| {
        ["unix://", "fd://", "npipe://"]
            .iter()
            .any(|s| v.starts_with(s))
    };
    match verified {
        true => None,
        false => listens.into_iter().find(|v| !local(v)),
    }
}

/// Every host's `docker_opts_extra`, before anything connects: the first
/// that would open the API without TLS is an error (exit 5), at its line
/// when a `group_vars`/`host_vars` file sets it.
pub(crate) fn check(session: &crate::session::Session) -> Result<()> {
    for host in session.hosts("all")? {
        let Some(opts) = host.vars.get("docker_opts_extra").and_then(|v| v.as_str()) else {
            continue;
        };
        let Some(listen) = plain_tcp(opts) else {
            continue;
        };
        let message = format!(
            "`docker_opts_extra` opens Docker's API on `{listen}` without TLS client \
             verification (`--tlsverify`): anyone who reaches that port is root on the node"
        );
        if let Some(err) = session
            .scope
            .var_file(&host.name, "docker_opts_extra")
            .and_then(|file| locate(&file, "docker_opts_extra", &message, HINT))
        {
            return Err(err);
        }
        return Err(Error::usage(format!("host `{}`: {message}", host.name)).with_hint(HINT));
    }
    Ok(())
}

/// `message` at the `name` key of the vars file `file`.
pub(super) fn locate(
    file: &std::path::Path,
    name: &str,
    message: &str,
    hint: &str,
) -> Option<Error> {
    let text = std::fs::read_to_string(file).ok()?;
    let root = crate::yaml::parse(&text).ok()??;
    let (key, _) = root
        .entries()?
        .iter()
        .find(|(k, _)| k.text() == Some(name))?;
    let kind = InputKind::Invalid {
        field: None,
        message: message.to_owned(),
        hint: Some(hint.to_owned()),
    };
    Some(crate::yaml::input_error(file, &text, key.pos, kind))
}

#[cfg(test)]
mod tests {
    use super::plain_tcp;

    #[test]
    fn a_tcp_listener_without_tlsverify_is_found_in_every_spelling() {
        for opts in [
            "-H tcp://0.0.0.0:2375",
            "--debug -H tcp://10.0.0.1:2375",
            "--host tcp://0.0.0.0:2375",
            "--host=tcp://0.0.0.0:2375",
            "-H=tcp://0.0.0.0:2375",
            "-Htcp://0.0.0.0:2375",
            "-H :2375",
            "-H 0.0.0.0:2375 --tls",
            "-H unix:///var/run/docker.sock -H tcp://0.0.0.0:2376 --tlsverify=false",
            "\"-H\" \"tcp://0.0.0.0:2375\"",
        ] {
            assert!(plain_tcp(opts).is_some(), "{opts}");
        }
        assert_eq!(
            plain_tcp("-H unix:///x.sock -H tcp://1.2.3.4:2375").as_deref(),
            Some("tcp://1.2.3.4:2375")
        );
    }

    #[test]
    fn local_sockets_verified_tls_and_other_options_pass() {
        for opts in [
            "",
            "--debug",
            "-H unix:///var/run/docker.sock",
            "-H fd://",
            "--log-opt syslog-address=tcp://10.0.0.9:514",
            "-H tcp://0.0.0.0:2376 --tlsverify --tlscacert=/c.pem",
            "--tlsverify=true --host=tcp://0.0.0.0:2376",
        ] {
            assert_eq!(plain_tcp(opts), None, "{opts}");
        }
    }
}
