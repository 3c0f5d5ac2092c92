//! `arpanet logs`: the logs of the containers arpanet manages (the ones
//! carrying its `arpanet.managed` label: Consul's agent and the stack's
//! entries), from every selected node at once, each line prefixed with its
//! node (and its container when several are shown) and printed as it
//! arrives, so `-f` interleaves the nodes live.
//!
//! Each node is asked which managed containers it has (stopped ones too:
//! their last words are often why), then the chosen containers' `docker
//! logs` run together in one remote shell on one SSH channel, streamed
//! (`Transport::exec_streamed`), each line tagged with its container (see
//! `node`), so a node shows any number of containers. `--grep` filters
//! here, line by line; `-n` and `--since` go to docker. Without `-f`, at
//! most `--forks` nodes are read at once; `-f` reads every selected node
//! at once for as long as it runs, so a `--forks` below their number is
//! refused before any host is contacted (it could never reach the rest).
//! A node that cannot be reached is reported and the others go on. Ctrl-C
//! ends it: the remote `docker logs` are stopped (see `ssh.rs` and
//! `node`) and the exit code is 130, as for `run`.

mod node;

use std::sync::{Arc, Mutex};

use regex::Regex;
use serde_json::json;

use super::text;
use crate::config::ConnectOptions;
use crate::error::{exit, Error, Result};
use crate::escalation::{self, Escalated};
use crate::modules::docker_container::MANAGED_LABEL;
use crate::prefix::Prefixes;
use crate::report::OutputFormat;
use crate::session::{self, HostInfo, Session};
use crate::transport::{quote, Connector, Pipe, Transport};

/// Lines shown from the end of each log when neither `-n` nor `--since`
/// says otherwise: a screenful per container, not years of history.
pub(crate) const DEFAULT_TAIL: u64 = 100;

/// What to show of each container's log.
#[derive(Debug)]
pub(crate) struct Query {
    /// Container names; empty for every managed container.
    services: Vec<String>,
    follow: bool,
    tail: Option<u64>,
    since: Option<String>,
    grep: Option<Regex>,
}

impl Query {
    /// Check the options before any host is contacted: `--since` must be a
    /// time docker understands, `--grep` a valid regular expression.
    pub(crate) fn new(
        services: Vec<String>,
        follow: bool,
        tail: Option<u64>,
        since: Option<String>,
        grep: Option<&str>,
    ) -> Result<Query> {
        if let Some(since) = &since {
            if !since_pattern().is_match(since) {
                return Err(Error::usage(format!(
                    "`--since {since}` is not a time docker understands"
                ))
                .with_hint(
                    "give a duration (`10m`, `1h30m`, `45s`), a date or time \
                     (`2026-11-02`, `2026-11-02T13:00:00Z`) or a Unix timestamp",
                ));
            }
        }
        let grep = grep
            .map(|re| {
                Regex::new(re).map_err(|e| {
                    Error::usage(format!("`--grep {re}` is not a valid regular expression"))
                        .with_hint(
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or_default()
                                .trim()
                                .to_owned(),
                        )
                })
            })
            .transpose()?;
        let mut unique: Vec<String> = Vec::new();
        for name in services {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        Ok(Query {
            services: unique,
            follow,
            tail,
            since,
            grep,
        })
    }

    /// The `docker logs` command line for `container`.
    pub(crate) fn command(&self, container: &str) -> String {
        let mut words = vec!["docker".to_owned(), "logs".to_owned()];
        if self.follow {
            words.push("--follow".into());
        }
        let tail = match (self.tail, &self.since) {
            (Some(lines), _) => Some(lines),
            (None, None) => Some(DEFAULT_TAIL),
            (None, Some(_)) => None,
        };
        if let Some(lines) = tail {
            words.push("--tail".into());
            words.push(lines.to_string());
        }
        if let Some(since) = &self.since {
            words.push("--since".into());
            words.push(quote(since));
        }
        words.push(quote(container));
        words.join(" ")
    }

    /// Whether `line` is shown (`--grep`).
    pub(crate) fn shows(&self, line: &str) -> bool {
        self.grep.as_ref().is_none_or(|re| re.is_match(line))
    }

    /// Of the `managed` containers a node has, the ones asked for.
    fn pick(&self, managed: &[String]) -> Vec<String> {
        managed
            .iter()
            .filter(|name| self.services.is_empty() || self.services.contains(name))
            .cloned()
            .collect()
    }
}

/// What docker's `--since` takes: a Unix timestamp, a Go duration, or an
/// RFC 3339 date with or without its time.
fn since_pattern() -> Regex {
    Regex::new(
        r"^(\d+(\.\d+)?|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)$",
    )
    .expect("a valid pattern")
}

/// The containers a host's variables say arpanet manages there: Consul's
/// agent and each `stack` entry.
pub(crate) fn declared(host: &HostInfo) -> Vec<String> {
    let mut names = vec![text(&host.vars, "consul_name", "consul")];
    if let Some(stack) = host.vars.get("stack") {
        if let Ok(entries) = super::stack::parse(stack) {
            names.extend(entries.into_iter().map(|e| e.name));
        }
    }
    names
}

/// How one node's part ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    Failed,
    Unreachable,
}

/// Print the logs `query` asks for from every host of `connect`; returns
/// the exit code. `forks` is `--forks` when given on the command line.
pub(crate) fn logs(
    connect: &ConnectOptions,
    format: OutputFormat,
    query: &Query,
    forks: Option<usize>,
) -> Result<i32> {
    let session = Session::open(connect)?;
    let hosts = session.hosts("all")?;
    let at_once = match (query.follow, forks) {
        (true, Some(forks)) if forks < hosts.len() => {
            return Err(Error::usage(format!(
                "`logs -f` follows every selected node at once, and `--forks {forks}` \
                 is fewer than the {} selected",
                hosts.len()
            ))
            .with_hint(
                "a node followed is never done, so the nodes past the first `--forks` \
                 would never be shown: drop `--forks`, or choose the nodes with `--limit`",
            ))
        }
        (true, _) => hosts.len().max(1),
        (false, _) => connect.forks,
    };
    let mut known: Vec<String> = Vec::new();
    for host in &hosts {
        escalation::check(&host.name, &host.vars)?;
        for name in declared(host) {
            if !known.contains(&name) {
                known.push(name);
            }
        }
    }
    for name in &query.services {
        if !known.contains(name) {
            let hint = crate::suggest::did_you_mean(name, known.iter().map(String::as_str))
                .unwrap_or_else(|| format!("the managed containers are {}", list(&known)));
            return Err(
                Error::usage(format!("no managed container is called `{name}`")).with_hint(hint),
            );
        }
    }
    // The node alone when one container is shown, else node and container.
    let one = query.services.len() == 1;
    let source = move |host: &str, container: &str| match one {
        true => host.to_owned(),
        false => format!("{host} {container}"),
    };
    let mut sources = Vec::new();
    for host in &hosts {
        for name in declared(host) {
            if query.services.is_empty() || query.services.contains(&name) {
                sources.push(source(&host.name, &name));
            }
        }
    }
    let printer = Printer {
        format,
        prefixes: Prefixes::new(sources, crate::prefix::colour_on_stdout()),
    };
    let connector = session.connector();
    let open: Mutex<Vec<Arc<dyn Transport>>> = Mutex::default();
    let runtime = session::runtime()?;
    let shows: Vec<_> = hosts
        .iter()
        .map(|host| {
            let (printer, source) = (&printer, &source);
            move |container: &str, pipe: Pipe, line: &str| {
                if query.shows(line) {
                    let from = source(&host.name, container);
                    printer.print(&host.name, container, &from, pipe, line)
                }
            }
        })
        .collect();
    runtime.block_on(async {
        use futures::StreamExt as _;
        let all = futures::stream::iter(
            hosts
                .iter()
                .zip(&shows)
                .map(|(host, show)| host_logs(host, &connector, connect, query, &open, show)),
        )
        .buffer_unordered(at_once)
        .collect::<Vec<End>>();
        let ends = tokio::select! {
            ends = all => Some(ends),
            _ = tokio::signal::ctrl_c() => {
                // A second Ctrl-C does not wait for the remote commands.
                tokio::spawn(async {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(exit::INTERRUPTED);
                    }
                });
                None
            }
        };
        // Dropped commands are stopped on the nodes; `close` waits for that.
        let open = std::mem::take(&mut *open.lock().unwrap_or_else(|p| p.into_inner()));
        futures::future::join_all(open.iter().map(|conn| conn.close())).await;
        Ok(match ends {
            None => exit::INTERRUPTED,
            Some(ends) if ends.contains(&End::Unreachable) => exit::HOST_UNREACHABLE,
            Some(ends) if ends.contains(&End::Failed) => exit::HOST_FAILED,
            Some(_) => exit::OK,
        })
    })
}

/// Writes log lines to stdout, one whole line at a time.
struct Printer {
    format: OutputFormat,
    prefixes: Prefixes,
}

impl Printer {
    fn print(&self, host: &str, container: &str, source: &str, pipe: Pipe, line: &str) {
        use std::io::Write;
        let text = match self.format {
            OutputFormat::Human => self.prefixes.line(source, Pipe::Stdout, line),
            OutputFormat::Json => json!({
                "host": host,
                "service": container,
                "stream": pipe,
                "line": line,
            })
            .to_string(),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// One node's logs: connect, find its managed containers, stream the
/// chosen ones' logs to `show` until they end.
async fn host_logs(
    host: &HostInfo,
    connector: &dyn Connector,
    connect: &ConnectOptions,
    query: &Query,
    open: &Mutex<Vec<Arc<dyn Transport>>>,
    show: &(dyn Fn(&str, Pipe, &str) + Sync),
) -> End {
    let conn = match connector.connect(&host.target).await {
        Ok(conn) => conn,
        Err(err) => {
            eprintln!("error: {err}");
            return End::Unreachable;
        }
    };
    open.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(conn.clone());
    let conn = match escalation::for_host(&connect.escalation, &host.vars) {
        // `docker` needs the rights `become` gives.
        Ok(how) => Escalated::wrap(conn, how, &host.name),
        Err(err) => {
            eprintln!("error: {err}");
            return End::Failed;
        }
    };
    let ps = format!(
        "docker ps --all --filter {} --format '{{{{.Names}}}}'",
        quote(&format!("label={MANAGED_LABEL}=true"))
    );
    let managed = match crate::probe::exec(conn.as_ref(), &host.name, &ps, None).await {
        Ok(out) if out.success() => out.stdout.lines().map(str::to_owned).collect::<Vec<_>>(),
        Ok(out) => {
            let said = out.stderr.trim();
            eprintln!("error: {}: cannot list its containers: {said}", host.name);
            return End::Failed;
        }
        Err(err) => {
            eprintln!("error: {err}");
            return match err {
                Error::Unreachable { .. } => End::Unreachable,
                _ => End::Failed,
            };
        }
    };
    let chosen = query.pick(&managed);
    if chosen.is_empty() {
        let what = match query.services.is_empty() {
            true => "no managed container".to_owned(),
            false => format!("none of {}", list(&query.services)),
        };
        eprintln!("note: {} runs {what}", host.name);
        return End::Done;
    }
    // One channel for all of them: see `node`.
    let script = node::script(&chosen, |container| query.command(container));
    let ended: Mutex<Vec<Option<u32>>> = Mutex::new(vec![None; chosen.len()]);
    let sink = |pipe: Pipe, line: &str| match node::read(pipe, line, chosen.len()) {
        node::Tagged::Line(index, text) => show(&chosen[index], pipe, text),
        node::Tagged::Exit(index, status) => {
            ended.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(status)
        }
        node::Tagged::Beat => {}
        node::Tagged::Other(text) => eprintln!("warning: {}: {text}", host.name),
    };
    let run = conn.exec_streamed(&script, None, None, &sink).await;
    let ended = ended.into_inner().unwrap_or_else(|p| p.into_inner());
    match run {
        Ok(gated) if gated.output.success() && ended.iter().all(|s| *s == Some(0)) => End::Done,
        Ok(_) => {
            for (container, status) in chosen.iter().zip(&ended) {
                match status {
                    Some(0) => {}
                    Some(status) => eprintln!(
                        "error: {}: `docker logs {container}` ended with status {status}",
                        host.name
                    ),
                    None => eprintln!(
                        "error: {}: `docker logs {container}` ended without a status",
                        host.name
                    ),
                }
            }
            End::Failed
        }
        Err(err) => {
            eprintln!("error: {err}");
            match err {
                Error::Unreachable { .. } => End::Unreachable,
                _ => End::Failed,
            }
        }
    }
}

/// `` `a`, `b` `` for a message.
fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{Query, DEFAULT_TAIL};

    fn query(follow: bool, tail: Option<u64>, since: Option<&str>, grep: Option<&str>) -> Query {
        Query::new(vec![], follow, tail, since.map(str::to_owned), grep).unwrap()
    }

    #[test]
    fn follow_tail_and_since_become_docker_logs_flags() {
        assert_eq!(
            query(false, None, None, None).command("consul"),
            format!("docker logs --tail {DEFAULT_TAIL} consul")
        );
        assert_eq!(
            query(true, Some(5), None, None).command("web"),
            "docker logs --follow --tail 5 web"
        );
        // `--since` alone shows all since then; with `-n`, the last N of those.
        assert_eq!(
            query(false, None, Some("1h30m"), None).command("web"),
            "docker logs --since 1h30m web"
        );
        assert_eq!(
            query(true, Some(0), Some("2026-11-02T13:00:00+01:00"), None).command("my web"),
            "docker logs --follow --tail 0 --since 2026-11-02T13:00:00+01:00 'my web'"
        );
    }

    #[test]
    fn since_is_checked_before_any_host() {
        for good in [
            "10m",
            "1h30m",
            "45s",
            "1.5h",
            "1700000000",
            "2026-11-02",
            "2026-11-02T13:00:00Z",
        ] {
            assert!(
                query(false, None, Some(good), None).since.is_some(),
                "{good}"
            );
        }
        for bad in [
            "yesterday",
            "10 minutes",
            "-5m",
            "2026-11-02T13",
            "$(reboot)",
        ] {
            let err = Query::new(vec![], false, None, Some(bad.into()), None).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("`--since {bad}`")), "{text}");
            assert!(text.contains("hint: give a duration"), "{text}");
        }
    }

    #[test]
    fn grep_is_a_regex_applied_to_each_line() {
        let q = query(false, None, None, Some(r"^ERR\b|timeout \d+"));
        assert!(q.shows("ERR disk full"));
        assert!(q.shows("a timeout 30 was hit"));
        assert!(!q.shows("ERRATA"));
        assert!(!q.shows("all fine"));
        assert!(query(false, None, None, None).shows("anything"));
        let err = Query::new(vec![], false, None, None, Some("(unclosed")).unwrap_err();
        assert!(
            err.to_string()
                .contains("`--grep (unclosed` is not a valid regular expression"),
            "{err}"
        );
    }

    #[test]
    fn services_select_among_the_managed_containers() {
        let all = query(false, None, None, None);
        let managed = ["consul".to_owned(), "web".to_owned()];
        assert_eq!(all.pick(&managed), managed);
        let one = Query::new(vec!["web".into(), "web".into()], false, None, None, None).unwrap();
        assert_eq!(one.pick(&managed), ["web"]);
    }
}
