//! `arpanet ui consul|cadvisor`: a web UI of the cluster in the local
//! browser, through a port on 127.0.0.1 forwarded over the node's SSH
//! connection (`tunnel`), so neither UI has to listen beyond the node:
//! Consul's is served by the agent's HTTP API (`-ui`), which listens on the
//! node's loopback and docker bridge only; cAdvisor publishes its port on
//! `cadvisor_bind` (the loopback by default).
//!
//! The node: for Consul, the first selected host whose agent answers,
//! servers first (any agent shows the whole cluster); for cAdvisor, which
//! shows one node's containers, the first selected host, servers first.
//! `-l NODE` picks. It serves until Ctrl-C, which exits 130 as `logs -f`.

use std::sync::Arc;

use serde_json::json;

use super::{first_agent, ordered_hosts, text};
use crate::error::{exit, Error, Result};
use crate::report::OutputFormat;
use crate::session::{self, HostInfo, Session};
use crate::transport::{Connector, Transport};
use crate::tunnel::{Remote, Tunnel};

/// A web UI arpanet can forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ui {
    Consul,
    Cadvisor,
}

impl Ui {
    const ALL: [(&'static str, Ui); 2] = [("consul", Ui::Consul), ("cadvisor", Ui::Cadvisor)];

    /// The UI called `name`; an unknown name gets a did-you-mean.
    pub(crate) fn parse(name: &str) -> Result<Ui> {
        if let Some((_, ui)) = Ui::ALL.iter().find(|(n, _)| *n == name) {
            return Ok(*ui);
        }
        let names = Ui::ALL.map(|(n, _)| n);
        let hint = crate::suggest::did_you_mean(name, names)
            .unwrap_or_else(|| "the UIs are `consul` and `cadvisor`".to_owned());
        Err(Error::usage(format!("there is no UI called `{name}`")).with_hint(hint))
    }

    fn name(self) -> &'static str {
        match self {
            Ui::Consul => "consul",
            Ui::Cadvisor => "cadvisor",
        }
    }

    /// The page the printed URL opens.
    fn path(self) -> &'static str {
        match self {
            Ui::Consul => "/ui/",
            Ui::Cadvisor => "/containers/",
        }
    }

    /// The local port used without `--port`: the UI's usual one, so a
    /// bookmark keeps working (a free one when it is taken).
    fn default_port(self) -> u16 {
        match self {
            Ui::Consul => 8500,
            Ui::Cadvisor => 8080,
        }
    }
}

/// What `arpanet ui` was asked for.
pub(crate) struct Request {
    pub(crate) ui: Ui,
    /// The local port; `None` for the UI's default.
    pub(crate) port: Option<u16>,
    pub(crate) open: bool,
    pub(crate) format: OutputFormat,
    pub(crate) verbose: bool,
}

/// Forward `request.ui` until Ctrl-C; returns the exit code.
pub(crate) fn ui(connect: &crate::config::ConnectOptions, request: &Request) -> Result<i32> {
    let session = Session::open(connect)?;
    let hosts = ordered_hosts(&session)?;
    // The local port first: a taken `--port` is refused before any host
    // is contacted.
    let tunnel = bind(request)?;
    let connector = session.connector();
    session::runtime()?.block_on(async {
        let (host, connection, remote_host, remote_port) = match request.ui {
            Ui::Consul => {
                let (host, connection, port) =
                    first_agent(&connector, &hosts, request.verbose).await?;
                (host, connection, "127.0.0.1".to_owned(), port)
            }
            Ui::Cadvisor => {
                let host = hosts
                    .first()
                    .ok_or_else(|| Error::usage("no hosts in the inventory"))?;
                let (connection, address, port) = cadvisor(&connector, host).await?;
                (host, connection, address, port)
            }
        };
        let url = format!("http://127.0.0.1:{}{}", tunnel.port(), request.ui.path());
        let there = format!("{remote_host}:{remote_port}");
        match request.format {
            OutputFormat::Json => println!(
                "{}",
                json!({
                    "ui": request.ui.name(),
                    "node": host.name,
                    "remote": there,
                    "url": url,
                })
            ),
            OutputFormat::Human => {
                eprintln!(
                    "{} UI of `{}` ({there} there), forwarded over SSH; Ctrl-C to stop",
                    request.ui.name(),
                    host.name
                );
                println!("{url}");
            }
        }
        if request.open {
            open_browser(&url);
        }
        let remote = Remote {
            connector: &connector as &dyn Connector,
            target: &host.target,
            connection: tokio::sync::Mutex::new(Arc::clone(&connection)),
            host: remote_host,
            port: remote_port,
            verbose: request.verbose,
        };
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
            // A second Ctrl-C does not wait for the connection to close.
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(exit::INTERRUPTED);
                }
            });
        };
        let served = tunnel.serve(&remote, stop).await;
        remote.close().await;
        served.map(|()| exit::INTERRUPTED)
    })
}

/// A connection to `host` and the address of its cAdvisor there
/// (`cadvisor_bind:cadvisor_port`), checked to answer.
async fn cadvisor(
    connector: &dyn Connector,
    host: &HostInfo,
) -> Result<(Arc<dyn Transport>, String, u16)> {
    let port = text(&host.vars, "cadvisor_port", "8080");
    let port = port.parse().map_err(|_| {
        Error::usage(format!(
            "`cadvisor_port` must be a port number, got `{port}`"
        ))
    })?;
    // Published on every address: the loopback is one of them.
    let address = match text(&host.vars, "cadvisor_bind", "127.0.0.1").as_str() {
        "" | "0.0.0.0" | "::" => "127.0.0.1".to_owned(),
        other => other.to_owned(),
    };
    let connection = connector.connect(&host.target).await?;
    if let Err(err) = connection.forward(&address, port).await {
        connection.close().await;
        return Err(not_answering(&host.name, err));
    }
    Ok((connection, address, port))
}

/// The local port: `--port` (taken: an error), else the UI's default, or
/// a free one when that is taken.
fn bind(request: &Request) -> Result<Tunnel> {
    let taken = |port: u16, e: std::io::Error| {
        Error::usage(format!("cannot listen on 127.0.0.1:{port}: {e}"))
            .with_hint("choose another with `--port PORT` (`--port 0`: any free port)")
    };
    match request.port {
        Some(port) => Tunnel::bind(port).map_err(|e| taken(port, e)),
        None => {
            let port = request.ui.default_port();
            Tunnel::bind(port).or_else(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    eprintln!("note: 127.0.0.1:{port} is taken; using a free port");
                    Tunnel::bind(0).map_err(|e| taken(0, e))
                } else {
                    Err(taken(port, e))
                }
            })
        }
    }
}

/// `err` from the first channel to cAdvisor, said as what it means.
fn not_answering(host: &str, err: Error) -> Error {
    match err {
        Error::Remote { message, .. } => Error::Remote {
            host: host.to_owned(),
            message: format!(
                "cadvisor: {message}\nhint: is the stack running there? `arpanet status` \
                 shows each node's containers; `cadvisor_port` and `cadvisor_bind` say where \
                 cAdvisor is published"
            ),
        },
        other => other,
    }
}

/// Launch the browser on `url` (`$BROWSER`, as a `:`-separated list of
/// commands with `%s` for the URL or the URL appended, else `xdg-open`),
/// in its own process group so Ctrl-C here does not close it. Failing is a
/// warning: the URL is printed anyway.
fn open_browser(url: &str) {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let from_env = std::env::var("BROWSER").unwrap_or_default();
    let mut commands: Vec<Vec<String>> = from_env
        .split(':')
        .map(|entry| {
            let mut words: Vec<String> = entry
                .split_whitespace()
                .map(|w| w.replace("%s", url))
                .collect();
            if !words.is_empty() && !entry.contains("%s") {
                words.push(url.to_owned());
            }
            words
        })
        .filter(|words| !words.is_empty())
        .collect();
    if commands.is_empty() {
        commands.push(vec!["xdg-open".to_owned(), url.to_owned()]);
    }
    let mut failures = Vec::new();
    for words in commands {
        let spawned = Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match spawned {
            Ok(mut child) => {
                let program = words[0].clone();
                // `xdg-open` says by its exit status whether it found one.
                std::thread::spawn(move || match child.wait() {
                    Ok(status) if !status.success() => eprintln!(
                        "warning: `{program}` could not open a browser ({status}); \
                         open the URL yourself"
                    ),
                    _ => {}
                });
                return;
            }
            Err(e) => failures.push(format!("`{}`: {e}", words[0])),
        }
    }
    eprintln!(
        "warning: cannot open a browser ({}); open the URL yourself\n\
         hint: set `BROWSER` to the command that opens a URL",
        failures.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_names_parse_and_a_typo_gets_a_suggestion() {
        assert_eq!(Ui::parse("consul").unwrap(), Ui::Consul);
        assert_eq!(Ui::parse("cadvisor").unwrap(), Ui::Cadvisor);
        let err = Ui::parse("consol").unwrap_err();
        assert_eq!(
            err.to_string(),
            "there is no UI called `consol`\nhint: did you mean `consul`?"
        );
        assert_eq!(err.exit_code(), exit::BAD_INPUT);
        assert!(Ui::parse("grafana")
            .unwrap_err()
            .to_string()
            .ends_with("hint: the UIs are `consul` and `cadvisor`"));
    }
}
