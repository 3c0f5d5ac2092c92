//! Everything arpanet tells the operator during a run. Jobs send `Event`s
//! through one channel to one printer thread, so lines from parallel hosts
//! never interleave; the printer writes either human lines or one JSON
//! object per event. It also keeps the per-host tallies for the recap.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::error::exit;

/// How the run is printed: for people, or one JSON object per line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
}

/// How one task ended on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
}

impl Status {
    /// The word printed for it: `ok`, `changed`, ...
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Unreachable => "unreachable",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Status::Ok => "\x1b[32m",
            Status::Changed => "\x1b[33m",
            Status::Failed | Status::Unreachable => "\x1b[31m",
            Status::Skipped => "\x1b[36m",
        }
    }
}

/// Why a task failed, in the words the operator needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rc: Option<u32>,
    /// The last lines of stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One host's result for one task.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    pub task: String,
    pub status: Status,
    /// Seconds.
    pub elapsed: f64,
    /// The failure was tolerated by `ignore_errors`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
    /// The failure is in a `block` with a `rescue`, which runs next: counted
    /// as rescued, not failed, as Ansible counts it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rescued: bool,
    /// A short note: `debug` messages, why a task was skipped, ad-hoc stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Unified diff of a file, with `--diff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// The tallies of one host over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub ok: usize,
    pub changed: usize,
    pub unreachable: usize,
    pub failed: usize,
    pub skipped: usize,
    pub ignored: usize,
    pub rescued: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PlayStart {
        play: String,
        hosts: Vec<String>,
    },
    TaskStart {
        task: String,
        hosts: usize,
        /// The hosts it runs on, for the `still waiting` lines.
        #[serde(skip)]
        names: Vec<String>,
    },
    HandlerStart {
        task: String,
        hosts: usize,
        #[serde(skip)]
        names: Vec<String>,
    },
    Host(HostResult),
    /// An `include_tasks` brought in `file` for `host` (once per loop item,
    /// `item` naming it); counted as ok, as Ansible does.
    Included {
        host: String,
        task: String,
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        item: Option<String>,
    },
    Warning {
        message: String,
    },
    /// A line a host's command printed, as it arrived (`exec`).
    Output {
        host: String,
        stream: crate::transport::Pipe,
        line: String,
    },
    /// `-v` and up: a command sent to a host (`-vvv`: how it ended), or how
    /// the host was reached (`-vvv`).
    Detail {
        host: String,
        text: String,
    },
    /// The run stopped in this play: a batch went over its
    /// `max_fail_percentage` (given here), or lost every host.
    PlayAborted {
        play: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_fail_percentage: Option<f64>,
    },
}

/// The final object in JSON output.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    event: &'static str,
    hosts: &'a BTreeMap<String, Tally>,
    exit_code: i32,
    elapsed: f64,
    /// Stopped by Ctrl-C.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    interrupted: bool,
}

/// The sending side, cheap to clone into every job.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Msg>,
}

enum Msg {
    Event(Event),
    /// Answered once every message before it is printed.
    Flush(mpsc::Sender<()>),
    Finish(mpsc::Sender<Recap>),
}

/// What the printer counted for the recap and the exit code.
#[derive(Debug, Default)]
pub(crate) struct Recap {
    pub(crate) hosts: BTreeMap<String, Tally>,
    /// A batch went over its `max_fail_percentage` and stopped the run.
    pub(crate) over_budget: bool,
}

impl Reporter {
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(Msg::Event(event));
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.send(Event::Warning {
            message: message.into(),
        });
    }

    /// Wait (a few seconds at most) until everything sent so far is
    /// printed, so a question asked on the terminal (`--step`, `pause`)
    /// comes after the output it is about; the task under way then says
    /// nothing more until its results (no spinner, no `still waiting`).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
        }
    }

    /// A reporter whose events are kept rather than printed, for tests.
    #[cfg(test)]
    pub fn capture() -> (Reporter, Captured) {
        let (tx, rx) = mpsc::channel();
        (Reporter { tx }, Captured { rx })
    }
}

/// Events sent to a capturing reporter.
#[cfg(test)]
pub struct Captured {
    rx: mpsc::Receiver<Msg>,
}

#[cfg(test)]
impl Captured {
    /// Every event sent so far.
    pub fn events(&self) -> Vec<Event> {
        self.rx
            .try_iter()
            .filter_map(|m| match m {
                Msg::Event(e) => Some(e),
                Msg::Finish(_) | Msg::Flush(_) => None,
            })
            .collect()
    }
}

/// How a run ended, as the recap tells it.
#[derive(Debug, Default)]
pub struct Finished {
    /// The exit code (as ansible-playbook's).
    pub code: i32,
    /// The hosts that failed or were unreachable, sorted: what a retry
    /// file lists.
    pub retry: Vec<String>,
}

/// The receiving side: owns the printer thread.
pub struct Printer {
    reporter: Reporter,
    thread: Option<JoinHandle<()>>,
    format: OutputFormat,
    started: std::time::Instant,
}

impl Printer {
    /// Start the printer thread. With `group`, each host's
    /// [`Event::Output`] lines are held and printed under its result.
    pub fn start(format: OutputFormat, verbose: u8, group: bool) -> Self {
        let (tx, rx) = mpsc::channel();
        let style = Style {
            group,
            colour: crate::prefix::colour_on_stdout(),
            progress: format == OutputFormat::Human && std::io::stderr().is_terminal(),
            heartbeat: !std::io::stdout().is_terminal(),
            verbose,
        };
        let thread = std::thread::spawn(move || print_loop(rx, format, style));
        Printer {
            reporter: Reporter { tx },
            thread: Some(thread),
            format,
            started: std::time::Instant::now(),
        }
    }

    pub fn reporter(&self) -> Reporter {
        self.reporter.clone()
    }

    /// Print the recap (and the JSON summary) and return the exit code the
    /// tallies call for, or [`exit::INTERRUPTED`] for a run stopped by
    /// Ctrl-C (its recap says so).
    pub fn finish(mut self, interrupted: bool) -> Finished {
        let (tx, rx) = mpsc::channel();
        let _ = self.reporter.tx.send(Msg::Finish(tx));
        let recap = rx.recv().unwrap_or_default();
        let code = if interrupted {
            exit::INTERRUPTED
        } else {
            exit_code(&recap)
        };
        let tallies = recap.hosts;
        let retry = tallies
            .iter()
            .filter(|(_, t)| t.failed > 0 || t.unreachable > 0)
            .map(|(host, _)| host.clone())
            .collect();
        let mut out = std::io::stdout().lock();
        match self.format {
            OutputFormat::Human => {
                let _ = write_recap(&mut out, &tallies, interrupted);
            }
            OutputFormat::Json => {
                let summary = Summary {
                    event: "summary",
                    hosts: &tallies,
                    exit_code: code,
                    elapsed: round(self.started.elapsed()),
                    interrupted,
                };
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&summary).unwrap_or_default()
                );
            }
        }
        let _ = out.flush();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        Finished { code, retry }
    }
}

/// As ansible-playbook 2.19 decides it (`tests/fixtures/serial/exit_code_*`
/// record it): 2 when a batch went over its `max_fail_percentage`; else 4
/// when any host was unreachable, even if others failed; else 2 when any
/// host failed.
pub(crate) fn exit_code(recap: &Recap) -> i32 {
    let tallies = recap.hosts.values();
    if recap.over_budget {
        exit::HOST_FAILED
    } else if tallies.clone().any(|t| t.unreachable > 0) {
        exit::HOST_UNREACHABLE
    } else if tallies.clone().any(|t| t.failed > 0) {
        exit::HOST_FAILED
    } else {
        exit::OK
    }
}

pub fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[derive(Clone, Copy)]
struct Style {
    /// Output lines are printed under their host's result, not as they
    /// arrive.
    group: bool,
    colour: bool,
    progress: bool,
    /// Without a terminal on stdout (a pipe, CI), a line on stderr every
    /// [`HEARTBEAT`] while a task runs, so a long wait shows a sign of life.
    heartbeat: bool,
    verbose: u8,
}

/// How often a long task says it is still running, without a terminal.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// The task under way and the hosts that have not reported yet.
struct Running {
    task: String,
    pending: Vec<String>,
    started: std::time::Instant,
    next: std::time::Instant,
}

impl Running {
    fn track(running: &mut Option<Running>, event: &Event) {
        match event {
            Event::TaskStart { task, names, .. } | Event::HandlerStart { task, names, .. } => {
                let now = std::time::Instant::now();
                *running = Some(Running {
                    task: task.clone(),
                    pending: names.clone(),
                    started: now,
                    next: now + HEARTBEAT,
                });
            }
            Event::Host(HostResult { host, .. }) | Event::Included { host, .. } => {
                if let Some(r) = running {
                    r.pending.retain(|h| h != host);
                }
            }
            Event::PlayStart { .. } | Event::PlayAborted { .. } => *running = None,
            Event::Warning { .. } | Event::Detail { .. } | Event::Output { .. } => {}
        }
    }

    /// `still waiting: TASK on a, b (20s)`, when it is time for one.
    fn beat(&mut self) -> Option<String> {
        let now = std::time::Instant::now();
        if now < self.next || self.pending.is_empty() {
            return None;
        }
        // Whole heartbeats, so the lines read 10s, 20s, ... however late
        // the printer woke.
        let seconds = (self.next - self.started).as_secs();
        self.next += HEARTBEAT;
        let mut hosts = self
            .pending
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if self.pending.len() > 5 {
            hosts.push_str(&format!(" and {} more", self.pending.len() - 5));
        }
        Some(format!(
            "still waiting: {} on {hosts} ({seconds}s)",
            self.task
        ))
    }
}

fn print_loop(rx: mpsc::Receiver<Msg>, format: OutputFormat, style: Style) {
    let mut recap = Recap::default();
    let mut progress: Option<indicatif::ProgressBar> = None;
    let mut running: Option<Running> = None;
    let mut prefixes = crate::prefix::Prefixes::default();
    // With `group`, each host's output lines until its result: its first
    // and last bytes, as a command's output is kept (see `transport`).
    let mut held: BTreeMap<String, crate::transport::Capped> = BTreeMap::new();
    loop {
        let msg = match running.as_mut().filter(|_| style.heartbeat) {
            Some(r) => {
                let wait = r.next.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(msg) => msg,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(line) = r.beat() {
                            eprintln!("{line}");
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => return,
            },
        };
        match msg {
            Msg::Flush(reply) => {
                if let Some(bar) = progress.take() {
                    bar.finish_and_clear();
                }
                // A question on the terminal follows (`pause`, `--step`):
                // the task under way waits for a person, and a `still
                // waiting` line would land in the middle of the answer.
                running = None;
                let _ = std::io::stdout().flush();
                let _ = reply.send(());
            }
            Msg::Finish(reply) => {
                if let Some(bar) = progress.take() {
                    bar.finish_and_clear();
                }
                let _ = reply.send(std::mem::take(&mut recap));
                return;
            }
            Msg::Event(event) => {
                recap.add(&event);
                Running::track(&mut running, &event);
                if let Event::PlayStart { hosts, .. } = &event {
                    prefixes = crate::prefix::Prefixes::new(hosts.clone(), style.colour);
                }
                let line = match (format, &event) {
                    (OutputFormat::Json, _) => serde_json::to_string(&event).unwrap_or_default(),
                    (OutputFormat::Human, Event::Output { host, stream, line }) => {
                        let line = prefixes.line(host, *stream, line);
                        if style.group {
                            let kept = held.entry(host.clone()).or_default();
                            kept.push(line.as_bytes());
                            kept.push(b"\n");
                            continue;
                        }
                        line
                    }
                    (OutputFormat::Human, Event::Host(result)) => {
                        let mut text = host_line(result, style);
                        if let Some(kept) = held.remove(&result.host) {
                            text.push('\n');
                            text.push_str(kept.into_text().trim_end_matches('\n'));
                        }
                        text
                    }
                    (OutputFormat::Human, _) => human(&event, style),
                };
                let write = |line: &str| {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                };
                match &progress {
                    Some(bar) => bar.suspend(|| write(&line)),
                    None => write(&line),
                }
                if style.progress {
                    update_progress(&mut progress, &event);
                }
            }
        }
    }
}

/// A spinner on stderr counting the hosts still working on the current task.
fn update_progress(progress: &mut Option<indicatif::ProgressBar>, event: &Event) {
    match event {
        Event::TaskStart { task, hosts, .. } | Event::HandlerStart { task, hosts, .. } => {
            if let Some(bar) = progress.take() {
                bar.finish_and_clear();
            }
            let bar = indicatif::ProgressBar::new(*hosts as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{pos}/{len} hosts, {elapsed}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_message(task.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            *progress = Some(bar);
        }
        Event::Host(_) => {
            if let Some(bar) = progress {
                bar.inc(1);
            }
        }
        _ => {}
    }
}

impl Recap {
    /// Count `event` in.
    pub(crate) fn add(&mut self, event: &Event) {
        match event {
            Event::PlayStart { hosts, .. } => {
                for host in hosts {
                    self.hosts.entry(host.clone()).or_default();
                }
            }
            Event::Host(result) => {
                count(self.hosts.entry(result.host.clone()).or_default(), result)
            }
            Event::Included { host, .. } => self.hosts.entry(host.clone()).or_default().ok += 1,
            Event::PlayAborted {
                max_fail_percentage: Some(_),
                ..
            } => self.over_budget = true,
            _ => {}
        }
    }
}

fn count(tally: &mut Tally, result: &HostResult) {
    match result.status {
        Status::Ok => tally.ok += 1,
        Status::Changed => {
            tally.ok += 1;
            tally.changed += 1;
        }
        Status::Failed if result.ignored => {
            tally.ok += 1;
            tally.ignored += 1;
        }
        Status::Failed if result.rescued => tally.rescued += 1,
        Status::Failed => tally.failed += 1,
        Status::Skipped => tally.skipped += 1,
        Status::Unreachable => tally.unreachable += 1,
    }
}

fn banner(kind: &str, name: &str) -> String {
    let head = format!("{kind} [{name}] ");
    let stars = 72usize.saturating_sub(head.chars().count()).max(3);
    format!("\n{head}{}", "*".repeat(stars))
}

fn human(event: &Event, style: Style) -> String {
    match event {
        Event::PlayStart { play, .. } => banner("PLAY", play),
        Event::TaskStart { task, .. } => banner("TASK", task),
        Event::HandlerStart { task, .. } => banner("RUNNING HANDLER", task),
        Event::Warning { message } => format!("[WARNING]: {message}"),
        Event::Detail { host, text } => format!("<{host}> {text}"),
        Event::PlayAborted { play, reason, .. } => format!("play `{play}` stopped: {reason}"),
        Event::Host(result) => host_line(result, style),
        Event::Output { host, stream, line } => {
            format!("{host} {} {line}", crate::prefix::mark(*stream))
        }
        Event::Included {
            host, file, item, ..
        } => match item {
            Some(item) => format!("included: {file} for {host} (item={item})"),
            None => format!("included: {file} for {host}"),
        },
    }
}

fn host_line(result: &HostResult, style: Style) -> String {
    let label = result.status.label();
    let label = if style.colour {
        format!("{}{label}\x1b[0m", result.status.colour())
    } else {
        label.to_owned()
    };
    let mut line = format!("{label}: [{}] ({:.2}s)", result.host, result.elapsed);
    if result.ignored {
        line.push_str(" ...ignoring");
    }
    if result.rescued {
        line.push_str(" ...rescued");
    }
    if let Some(diff) = &result.diff {
        line.push('\n');
        line.push_str(diff.trim_end());
    }
    if let Some(message) = &result.message {
        if result.status != Status::Skipped || style.verbose > 0 {
            for text in message.trim_end().lines() {
                line.push_str("\n  ");
                line.push_str(text);
            }
        }
    }
    if let Some(f) = &result.failure {
        line.push_str(&format!("\n  {}", f.message));
        if let Some(command) = &f.command {
            line.push_str(&format!("\n  command: {command}"));
        }
        if let Some(rc) = f.rc {
            line.push_str(&format!("\n  exit code: {rc}"));
        }
        if let Some(stderr) = &f.stderr {
            line.push_str("\n  stderr:");
            for text in stderr.lines() {
                line.push_str("\n    ");
                line.push_str(text);
            }
        }
        if let Some(hint) = &f.hint {
            line.push_str(&format!("\n  hint: {hint}"));
        }
    }
    line
}

fn write_recap(
    out: &mut impl Write,
    tallies: &BTreeMap<String, Tally>,
    interrupted: bool,
) -> std::io::Result<()> {
    let title = if interrupted {
        "PLAY RECAP (interrupted by Ctrl-C)"
    } else {
        "PLAY RECAP"
    };
    writeln!(
        out,
        "{}",
        banner("PLAY", "RECAP").replace("PLAY [RECAP]", title)
    )?;
    let width = tallies.keys().map(|h| h.len()).max().unwrap_or(0);
    for (host, t) in tallies {
        writeln!(
            out,
            "{host:width$} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={}",
            t.ok, t.changed, t.unreachable, t.failed, t.skipped, t.rescued, t.ignored
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(host: &str, status: Status) -> HostResult {
        HostResult {
            host: host.into(),
            task: "t".into(),
            status,
            elapsed: 0.5,
            ignored: false,
            rescued: false,
            message: None,
            failure: None,
            diff: None,
        }
    }

    #[test]
    fn exit_code_prefers_unreachable_over_failed_unless_over_budget() {
        let tally = |failed, unreachable| Tally {
            failed,
            unreachable,
            ..Tally::default()
        };
        let mut recap = Recap::default();
        recap.hosts.insert("a".into(), tally(0, 0));
        assert_eq!(exit_code(&recap), 0);
        recap.hosts.insert("b".into(), tally(1, 0));
        assert_eq!(exit_code(&recap), 2);
        recap.hosts.insert("c".into(), tally(0, 1));
        assert_eq!(exit_code(&recap), 4);
        recap.add(&Event::PlayAborted {
            play: "p".into(),
            reason: "every host in the batch failed or was unreachable".into(),
            max_fail_percentage: None,
        });
        assert_eq!(exit_code(&recap), 4);
        recap.add(&Event::PlayAborted {
            play: "p".into(),
            reason: "over".into(),
            max_fail_percentage: Some(0.0),
        });
        assert_eq!(exit_code(&recap), 2);
    }

    #[test]
    fn changed_and_ignored_failures_count_as_ok_too_as_in_ansible() {
        let mut t = Tally::default();
        count(&mut t, &result("a", Status::Changed));
        let mut ignored = result("a", Status::Failed);
        ignored.ignored = true;
        count(&mut t, &ignored);
        assert_eq!(
            t,
            Tally {
                ok: 2,
                changed: 1,
                ignored: 1,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn failure_line_shows_command_exit_code_stderr_and_hint() {
        let mut r = result("node1", Status::Failed);
        r.failure = Some(Failure {
            message: "command failed".into(),
            command: Some("false".into()),
            rc: Some(1),
            stderr: Some("boom".into()),
            hint: Some("look".into()),
        });
        let text = host_line(
            &r,
            Style {
                group: false,
                colour: false,
                progress: false,
                heartbeat: false,
                verbose: 0,
            },
        );
        assert_eq!(
            text,
            "failed: [node1] (0.50s)\n  command failed\n  command: false\n  exit code: 1\n  stderr:\n    boom\n  hint: look"
        );
    }

    #[test]
    fn json_events_are_tagged() {
        let text = serde_json::to_string(&Event::Host(result("a", Status::Ok))).unwrap();
        assert!(
            text.starts_with(r#"{"event":"host","host":"a","task":"t","status":"ok""#),
            "{text}"
        );
    }
}
