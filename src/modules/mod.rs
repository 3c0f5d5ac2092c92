//! One file per task kind. Each module renders its arguments with the host's
//! variables, checks the remote state, changes it unless in check mode, and
//! says whether anything changed. They speak to the host only through the
//! `Transport` trait.

mod command;
mod docker;
mod file;
mod service;
mod wait_for;

use crate::error::{Error, Location, Result};
use crate::playbook::{DebugArgs, Module, Playbook};
use crate::report::Failure;
use crate::template::Engine;
use crate::transport::{Output, Transport};
use crate::vars::Vars;

/// What a module needs to run on one host.
pub struct Context<'a> {
    pub host: &'a str,
    pub transport: &'a dyn Transport,
    pub engine: &'a Engine,
    pub vars: &'a Vars,
    pub playbook: &'a Playbook,
    pub location: &'a Location,
    pub check: bool,
    pub diff: bool,
}

impl Context<'_> {
    /// Render one templated argument.
    pub fn render(&self, text: &str) -> Result<String> {
        if text.contains("{{") || text.contains("{%") {
            self.engine.render_str(text, self.vars, self.location)
        } else {
            Ok(text.to_owned())
        }
    }

    fn render_opt(&self, text: Option<&String>) -> Result<Option<String>> {
        text.map(|t| self.render(t)).transpose()
    }

    /// Run a command, failing the task (not the run) on a transport error.
    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output> {
        self.transport.exec(command, stdin).await
    }

    /// Run a helper script whose non-zero exit is a task failure.
    async fn script(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, Outcome> {
        match self.exec(command, stdin).await {
            Ok(out) if out.success() => Ok(out),
            Ok(out) => Err(Outcome::failed_command(command, &out)),
            Err(err) => Err(Outcome::from_error(err)),
        }
    }
}

/// What running a module did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changed: bool,
    pub failure: Option<Failure>,
    /// The host could not be reached; set only by transport errors.
    pub unreachable: Option<Error>,
    /// Why the module skipped itself (`creates`, check mode).
    pub skipped: Option<String>,
    pub rc: Option<u32>,
    pub stdout: String,
    pub stderr: String,
    /// A message to show (`debug`) or to register as `msg`.
    pub msg: Option<String>,
    pub diff: Option<String>,
    /// Variables the module sets on the host (`set_fact`).
    pub facts: Option<Vars>,
    /// One registered result per item, for a task with `loop`.
    pub results: Option<Vec<serde_json::Value>>,
}

impl Outcome {
    pub fn ok() -> Self {
        Outcome::default()
    }

    pub fn changed(changed: bool) -> Self {
        Outcome {
            changed,
            ..Outcome::default()
        }
    }

    pub fn skipped(why: impl Into<String>) -> Self {
        Outcome {
            skipped: Some(why.into()),
            ..Outcome::default()
        }
    }

    pub fn fail(message: impl Into<String>) -> Self {
        Outcome {
            failure: Some(Failure {
                message: message.into(),
                ..Failure::default()
            }),
            ..Outcome::default()
        }
    }

    /// A remote command exited non-zero.
    pub fn failed_command(command: &str, out: &Output) -> Self {
        Outcome {
            failure: Some(Failure {
                message: "command failed".into(),
                command: Some(command.to_owned()),
                rc: Some(out.status),
                stderr: tail(&out.stderr, 10),
                hint: hint_for(out.status, &out.stderr),
            }),
            rc: Some(out.status),
            stdout: out.stdout.clone(),
            stderr: out.stderr.clone(),
            ..Outcome::default()
        }
    }

    /// A local or transport error while running the module.
    pub fn from_error(err: Error) -> Self {
        match err {
            Error::Unreachable {
                ref message,
                ref hint,
                ..
            } => Outcome {
                failure: Some(Failure {
                    message: message.clone(),
                    hint: hint.clone(),
                    ..Failure::default()
                }),
                unreachable: Some(err),
                ..Outcome::default()
            },
            Error::Input {
                location,
                message,
                hint,
            } => Outcome {
                failure: Some(Failure {
                    message: format!("{location}: {message}"),
                    hint,
                    ..Failure::default()
                }),
                ..Outcome::default()
            },
            other => Outcome::fail(other.to_string()),
        }
    }

    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}

/// The last `n` non-empty lines of `text`, if any.
pub fn tail(text: &str, n: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    Some(lines[lines.len().saturating_sub(n)..].join("\n"))
}

/// A hint for failures whose cause is recognisable from the exit code or
/// stderr.
pub fn hint_for(rc: u32, stderr: &str) -> Option<String> {
    let lower = stderr.to_lowercase();
    if rc == 127 || lower.contains("command not found") {
        return Some(
            "the program is not installed on the host, or not on the PATH of the SSH user".into(),
        );
    }
    if lower.contains("permission denied") || lower.contains("operation not permitted") {
        return Some("the SSH user lacks the rights for this; connect as root (`ansible_user=root` or `-u root`)".into());
    }
    if rc == 126 {
        return Some("the file exists but is not executable".into());
    }
    if lower.contains("cannot connect to the docker daemon") {
        return Some("docker is not running on the host: `systemctl status docker`".into());
    }
    if lower.contains("no space left on device") {
        return Some("the host's disk is full".into());
    }
    None
}

/// Run `module` on one host.
pub async fn run(module: &Module, ctx: &Context<'_>) -> Outcome {
    let result = match module {
        Module::Command(args) => command::run(args, false, ctx).await,
        Module::Shell(args) => command::run(args, true, ctx).await,
        Module::Template(args) => file::content(args, true, ctx).await,
        Module::Copy(args) => file::content(args, false, ctx).await,
        Module::File(args) => file::file(args, ctx).await,
        Module::Service(args) => service::run(args, ctx).await,
        Module::WaitFor(args) => wait_for::run(args, ctx).await,
        Module::Debug(args) => debug(args, ctx),
        Module::SetFact(values) => set_fact(values, ctx),
        Module::Assert(args) => assert(args, ctx),
        Module::DockerImage(args) => docker::image(args, ctx).await,
        Module::DockerContainer(args) => docker::container(args, ctx).await,
        Module::ClusterSecrets(args) => crate::cluster::secrets::run(args, ctx),
    };
    result.unwrap_or_else(Outcome::from_error)
}

fn debug(args: &DebugArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let msg = match args {
        DebugArgs::Msg(text) => ctx.render(text)?,
        DebugArgs::Var(name) => {
            let value = ctx.engine.render_str(
                &format!("{{{{ {name} | tojson }}}}"),
                ctx.vars,
                ctx.location,
            )?;
            format!("{name} = {value}")
        }
    };
    Ok(Outcome {
        msg: Some(msg),
        ..Outcome::ok()
    })
}

fn assert(args: &crate::playbook::AssertArgs, ctx: &Context<'_>) -> Result<Outcome> {
    for expr in &args.that {
        if !ctx
            .engine
            .eval_condition(std::slice::from_ref(expr), ctx.vars, ctx.location)?
        {
            let message = match &args.fail_msg {
                Some(msg) => ctx.render(msg)?,
                None => format!("assertion failed: `{expr}`"),
            };
            return Ok(Outcome::fail(message));
        }
    }
    let msg = args
        .success_msg
        .as_ref()
        .map(|m| ctx.render(m))
        .transpose()?;
    Ok(Outcome {
        msg,
        ..Outcome::ok()
    })
}

/// Modules that run entirely on the machine running arpanet.
pub fn is_local(module: &Module) -> bool {
    matches!(
        module,
        Module::Debug(_) | Module::SetFact(_) | Module::Assert(_) | Module::ClusterSecrets(_)
    )
}

fn set_fact(values: &Vars, ctx: &Context<'_>) -> Result<Outcome> {
    let mut facts = Vars::new();
    for (key, value) in values {
        facts.insert(key.clone(), render_value(value, ctx)?);
    }
    Ok(Outcome {
        facts: Some(facts),
        ..Outcome::ok()
    })
}

/// Render every string inside a JSON value with the task's variables.
pub fn render_value(value: &serde_json::Value, ctx: &Context<'_>) -> Result<serde_json::Value> {
    ctx.engine.render_json(value, ctx.vars, ctx.location)
}

/// The text of a playbook's `src:` file: beside the playbook, in its
/// `templates/` or `files/` folder, else a built-in template.
pub fn read_src(
    ctx: &Context<'_>,
    src: &str,
    template: bool,
) -> Result<(std::path::PathBuf, String)> {
    let kind = if template {
        crate::playbook::SrcKind::Template
    } else {
        crate::playbook::SrcKind::File
    };
    if let Some(path) = ctx.playbook.resolve_src(src, kind) {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        return Ok((path, text));
    }
    if let Some(text) = crate::playbook::builtin_template(src) {
        return Ok((
            std::path::Path::new("<builtin>/templates").join(src),
            text.to_owned(),
        ));
    }
    Err(Error::input(
        ctx.location.clone(),
        format!("`src` file `{src}` not found"),
    )
    .with_hint(format!(
        "looked in `{}` and its `templates/` and `files/` folders",
        ctx.playbook.dir.display()
    )))
}
