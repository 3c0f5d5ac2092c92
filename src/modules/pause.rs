//! `pause`: wait `seconds` or `minutes` (every host of the task waits at
//! once, so a play pauses once per batch), or, with neither, show `prompt`
//! and wait for Enter on the terminal, asked once per task and run. Without
//! a terminal a prompt is an error rather than a silent skip: a pause meant
//! as a manual gate must not be passed by a run from CI.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{text, Flag, Text, MAX_SECONDS};
use crate::template::is_template;
use crate::yaml::Node;

/// How long to wait: a number (or a template giving one) of this unit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wait {
    pub amount: String,
    pub minutes: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PauseArgs {
    pub wait: Option<Wait>,
    pub prompt: Option<String>,
    pub echo: bool,
}

#[derive(Debug)]
pub(crate) struct Pause {
    pub args: PauseArgs,
    /// The answer to the prompt, once asked (hosts share it, as in Ansible,
    /// where `pause` runs once for all of them).
    answer: tokio::sync::OnceCell<std::result::Result<String, String>>,
}

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseMap {
    seconds: Option<Text>,
    minutes: Option<Text>,
    prompt: Option<Text>,
    echo: Option<Flag>,
}

/// `amount` as seconds, when it is a number in range.
fn seconds(amount: &str, minutes: bool) -> Option<f64> {
    let n: f64 = amount.trim().parse().ok()?;
    let s = if minutes { n * 60.0 } else { n };
    (0.0..=MAX_SECONDS).contains(&s).then_some(s)
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "pause"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: PauseMap = match node.scalar() {
            Some(crate::yaml::Scalar::Null) => PauseMap {
                seconds: None,
                minutes: None,
                prompt: None,
                echo: None,
            },
            _ => args_map(node, "a mapping with `seconds`, `minutes` or `prompt`")?,
        };
        let wait = match (m.seconds, m.minutes) {
            (Some(_), Some(_)) => {
                return Err(BadArgs::invalid("give only one of `seconds` and `minutes`"))
            }
            (Some(s), None) => Some(Wait {
                amount: s.0,
                minutes: false,
            }),
            (None, Some(m)) => Some(Wait {
                amount: m.0,
                minutes: true,
            }),
            (None, None) => None,
        };
        if let Some(w) = &wait {
            if !is_template(&w.amount) && seconds(&w.amount, w.minutes).is_none() {
                let unit = if w.minutes { "minutes" } else { "seconds" };
                return Err(BadArgs::invalid(format!(
                    "`{unit}` must be a number from 0 to a week, got `{}`",
                    w.amount
                )));
            }
        }
        Ok(Arc::new(Pause {
            args: PauseArgs {
                wait,
                prompt: text(m.prompt),
                echo: m.echo.is_none_or(|f| f.0),
            },
            answer: tokio::sync::OnceCell::new(),
        }))
    }
}

impl Module for Pause {
    fn name(&self) -> &'static str {
        "pause"
    }

    fn summary(&self) -> String {
        match (&self.args.wait, &self.args.prompt) {
            (Some(w), _) => format!(
                "{} {}",
                w.amount,
                if w.minutes { "minutes" } else { "seconds" }
            ),
            (None, Some(prompt)) => prompt.clone(),
            (None, None) => "until Enter".into(),
        }
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        out.extend(self.args.wait.as_ref().map(|w| w.amount.as_str()));
        out.extend(self.args.prompt.as_deref());
        out
    }

    fn local(&self) -> bool {
        true
    }

    fn reads_terminal(&self) -> bool {
        self.args.wait.is_none()
    }

    /// The same in check mode, as Ansible's.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(self.pause(ctx))
    }
}

/// Ansible's prompt when none is given.
const ENTER: &str = "Press enter to continue, Ctrl+C to interrupt";

impl Pause {
    async fn pause(&self, ctx: &Context<'_>) -> Result<Outcome> {
        let start = SystemTime::now();
        let (stdout, input) = match &self.args.wait {
            Some(w) => {
                let amount = ctx.render(&w.amount)?;
                let Some(secs) = seconds(&amount, w.minutes) else {
                    let unit = if w.minutes { "minutes" } else { "seconds" };
                    return Ok(Outcome::fail(format!(
                        "`{unit}` must be a number from 0 to a week, got `{amount}`"
                    )));
                };
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                let unit = if w.minutes { "minutes" } else { "seconds" };
                (format!("Paused for {amount} {unit}"), String::new())
            }
            None => {
                let prompt = match &self.args.prompt {
                    Some(p) => ctx.render(p)?,
                    None => ENTER.to_owned(),
                };
                let echo = self.args.echo;
                let answer = self
                    .answer
                    .get_or_init(|| async move {
                        tokio::task::spawn_blocking(move || ask(&prompt, echo))
                            .await
                            .unwrap_or_else(|e| Err(format!("the prompt failed: {e}")))
                    })
                    .await;
                match answer {
                    Ok(input) => ("Paused until Enter".to_owned(), input.clone()),
                    Err(message) => {
                        let mut outcome = Outcome::fail(message.clone());
                        if let Some(f) = &mut outcome.failure {
                            f.hint = Some(
                                "give `seconds` or `minutes` for a pause that needs no one, \
                                 or run from a terminal"
                                    .into(),
                            );
                        }
                        return Ok(outcome);
                    }
                }
            }
        };
        let stop = SystemTime::now();
        let epoch = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        };
        let delta = stop.duration_since(start).unwrap_or_default().as_secs();
        let mut outcome = Outcome::ok()
            .with("start", epoch(start))
            .with("stop", epoch(stop))
            .with("delta", delta)
            .with("user_input", input)
            .with("echo", self.args.echo);
        outcome.stdout = stdout;
        Ok(outcome)
    }
}

/// Show `prompt` on the terminal and read a line; an error without one.
fn ask(prompt: &str, echo: bool) -> std::result::Result<String, String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "`pause` wants an answer to `{prompt}` but stdin is not a terminal"
        ));
    }
    // One write: stderr is unbuffered, and `write!` would write each piece.
    let mut err = std::io::stderr();
    let _ = err.write_all(format!("\n[pause]\n{prompt}:\n").as_bytes());
    let _ = err.flush();
    let silent = !echo && set_echo(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if silent {
        set_echo(true);
        let _ = writeln!(err);
    }
    read.map_err(|e| format!("cannot read the answer to `{prompt}`: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Turn the terminal's echo on or off; whether it worked.
fn set_echo(on: bool) -> bool {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let Ok(mut t) = tcgetattr(&stdin) else {
        return false;
    };
    t.local_modes.set(LocalModes::ECHO, on);
    tcsetattr(&stdin, OptionalActions::Now, &t).is_ok()
}
