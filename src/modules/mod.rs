//! The module registry, and what modules share.
//!
//! One file per task kind, each owning everything about it: its names, its
//! typed arguments (read with `deny_unknown_fields`, validated at load), its
//! default task name, which of its strings are templates (checked to compile
//! at load), whether it runs locally, what it does in check mode, and how it
//! runs. [`MODULES`] lists them once; the playbook parser, "did you mean"
//! suggestions, the "task has no module" hint and dispatch all read it.
//!
//! To add a module: write `src/modules/NAME.rs` with a [`ModuleDef`] and the
//! [`Module`] its `parse` returns, and add it to [`MODULES`].
//!
//! A module renders its arguments with the host's variables, checks the
//! remote state, changes it unless in check mode, and says whether anything
//! changed. It speaks to the host only through the `Transport` trait.

pub(crate) mod apt;
pub(crate) mod assert;
pub(crate) mod blockinfile;
pub(crate) mod command;
pub(crate) mod container_gate;
pub(crate) mod copy;
pub(crate) mod debug;
pub(crate) mod deferred;
pub(crate) mod docker_container;
pub(crate) mod docker_image;
pub(crate) mod docker_prune;
pub(crate) mod fail;
pub(crate) mod file;
pub(crate) mod include_role;
pub(crate) mod include_tasks;
pub(crate) mod lineinfile;
pub(crate) mod meta;
pub(crate) mod package;
pub(crate) mod pause;
pub(crate) mod service;
pub(crate) mod set_fact;
pub(crate) mod shell;
pub(crate) mod stat;
pub(crate) mod systemd;
pub(crate) mod template;
pub(crate) mod templated;
pub(crate) mod wait_for;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::{Error, Location, Result};
use crate::playbook::Playbook;
use crate::report::Failure;
use crate::template::Engine;
use crate::transport::{Output, Sink, Transport};
use crate::vars::Vars;
use crate::yaml::{DeError, Node};

/// Every module, once. The parser, suggestions, hints and dispatch derive
/// from this list.
pub(crate) const MODULES: &[&dyn ModuleDef] = &[
    &command::Def,
    &shell::Def,
    &template::Def,
    &copy::Def,
    &file::Def,
    &lineinfile::Def,
    &blockinfile::Def,
    &service::Def,
    &systemd::Def,
    &wait_for::Def,
    &debug::Def,
    &set_fact::Def,
    &assert::Def,
    &fail::Def,
    &pause::Def,
    &stat::Def,
    &apt::Def,
    &package::Def,
    &docker_image::Def,
    &docker_container::Def,
    &docker_prune::Def,
    &container_gate::Def,
    &include_tasks::Def,
    &include_role::Def,
    &meta::Def,
];

/// The modules a playbook may use: the engine's own ([`MODULES`]) and those
/// a product adds (the cluster's `cluster_secrets`), which the command that
/// runs playbooks hands in with the product's built-ins.
#[derive(Clone, Copy, Default)]
pub(crate) struct Registry {
    pub product: &'static [&'static dyn ModuleDef],
}

impl Registry {
    /// Every module, the engine's first.
    pub(crate) fn all(self) -> impl Iterator<Item = &'static dyn ModuleDef> {
        MODULES.iter().chain(self.product).copied()
    }

    /// The module a task key names: a name or alias, optionally as
    /// `ansible.builtin.NAME` or `ansible.legacy.NAME`.
    pub(crate) fn find(self, key: &str) -> Option<&'static dyn ModuleDef> {
        let bare = key
            .strip_prefix("ansible.builtin.")
            .or_else(|| key.strip_prefix("ansible.legacy."));
        let word = bare.unwrap_or(key);
        if bare.is_some() && word.contains('.') {
            return None;
        }
        self.all()
            .find(|m| m.name() == word || m.aliases().contains(&word))
    }

    /// Every name and alias of every module.
    pub(crate) fn names(self) -> impl Iterator<Item = &'static str> {
        self.all()
            .flat_map(|m| std::iter::once(m.name()).chain(m.aliases().iter().copied()))
    }
}

/// A kind of task, as the registry lists it: its names and how it reads its
/// arguments.
pub(crate) trait ModuleDef: Sync {
    /// The name it is known by, and shown by (`service`).
    fn name(&self) -> &'static str;

    /// Other names it answers to (`systemd`, `community.docker.X`). Every
    /// name without a dot is also accepted as `ansible.builtin.NAME` and
    /// `ansible.legacy.NAME`.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// Read and validate the arguments (the value under the module's key).
    fn parse(&self, args: &Node) -> Result<Arc<dyn Module>, BadArgs>;
}

/// One task's module with its typed, validated arguments.
pub(crate) trait Module: fmt::Debug + Send + Sync + AsAny {
    /// The module's name (as [`ModuleDef::name`]).
    fn name(&self) -> &'static str;

    /// The main argument, for the default task name `NAME: SUMMARY`.
    fn summary(&self) -> String;

    /// Every string argument that is a template, checked to compile at load.
    fn templates(&self) -> Vec<&str>;

    /// Arguments that are bare expressions (`assert`'s `that`, `debug`'s
    /// `var`), checked to compile at load.
    fn expressions(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Runs entirely on the machine running arpanet, without connecting.
    fn local(&self) -> bool {
        false
    }

    /// Asks on arpanet's terminal (`pause` with a prompt): the reporter
    /// takes its spinner down first, so that nothing is drawn over the
    /// question or the answer being typed.
    fn reads_terminal(&self) -> bool {
        false
    }

    /// A template file the task renders (`template`'s `src`), checked at
    /// load when it is found.
    fn template_file(&self) -> Option<&str> {
        None
    }

    /// Variables the task sets for the tasks after it (`set_fact`'s keys).
    fn defines(&self) -> Vec<&str> {
        Vec::new()
    }

    /// Talks to other inventory hosts than its own (through
    /// [`Context::peers`]), so those are resolved even outside `--limit`,
    /// as `delegate_to` targets are.
    fn reaches_peers(&self) -> bool {
        false
    }

    /// Run on one host. Check mode (`ctx.check`) is the module's to honour:
    /// it reports what it would change and changes nothing.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>>;
}

/// Lets tests look at a task's arguments as the module's own type, and the
/// executor recognise an `include_tasks`.
pub(crate) trait AsAny: Any {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl dyn Module {
    /// The arguments as the module's own type, if it is `M`.
    pub(crate) fn downcast<M: Module>(&self) -> Option<&M> {
        self.as_any().downcast_ref()
    }
}

/// Why a module's arguments were refused.
#[derive(Debug)]
pub(crate) enum BadArgs {
    /// They do not have the module's shape (unknown, missing or mistyped).
    De(DeError),
    /// Each is fine, but together they are not.
    Invalid {
        message: String,
        hint: Option<String>,
    },
}

impl BadArgs {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        BadArgs::Invalid {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(self, text: impl Into<String>) -> Self {
        match self {
            BadArgs::Invalid { message, .. } => BadArgs::Invalid {
                message,
                hint: Some(text.into()),
            },
            other => other,
        }
    }
}

impl From<DeError> for BadArgs {
    fn from(e: DeError) -> Self {
        BadArgs::De(e)
    }
}

/// A module's arguments as the mapping `T`; `expecting` says what they
/// should be when they are not a mapping.
pub(crate) fn args_map<'a, T: serde::Deserialize<'a>>(
    node: &'a Node,
    expecting: &'static str,
) -> Result<T, BadArgs> {
    if node.entries().is_none() {
        return Err(wrong_type(node, expecting));
    }
    Ok(node.to::<T>()?)
}

/// "invalid type: ..., expected `expecting`", at `node`.
pub(crate) fn wrong_type(node: &Node, expecting: &'static str) -> BadArgs {
    struct Expecting(&'static str);
    impl serde::de::Expected for Expecting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    let mut err: DeError = serde::de::Error::invalid_type(node.unexpected(), &Expecting(expecting));
    err.pos = Some(node.pos);
    BadArgs::De(err)
}

/// A plain-text argument of a module written as `MODULE: text` (`command:
/// echo hi`): the text, when `node` is a non-empty scalar.
pub(crate) fn free_form(node: &Node) -> Option<String> {
    match node.scalar()? {
        crate::yaml::Scalar::Null => None,
        _ => node
            .text()
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned),
    }
}

/// What a module needs to run on one host.
pub struct Context<'a> {
    pub host: &'a str,
    pub transport: &'a dyn Transport,
    pub engine: &'a Engine,
    pub vars: &'a Vars,
    pub playbook: &'a Playbook,
    /// The directory of the task's role, searched first for `src:` files.
    pub role: Option<&'a std::path::Path>,
    pub location: &'a Location,
    pub check: bool,
    pub diff: bool,
    /// Where the output of the task's command goes as it arrives (`exec`),
    /// besides the outcome.
    pub live: Option<&'a Sink<'a>>,
    /// Other inventory hosts, for a module that asks them something (see
    /// [`Module::reaches_peers`]).
    pub peers: &'a dyn Peers,
}

/// Connections to other inventory hosts than the task's own, as
/// `delegate_to` makes them: shared with the run, under the task's `become`.
pub(crate) trait Peers: Sync {
    fn connect<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Arc<dyn Transport>>>;
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

    /// Render an optional argument: `None` where it renders to `omit`.
    fn render_opt(&self, text: Option<&String>) -> Result<Option<String>> {
        let rendered = text.map(|t| self.render(t)).transpose()?;
        Ok(rendered.filter(|r| r != crate::template::OMIT))
    }

    /// Run a command, failing the task (not the run) on a transport error.
    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output> {
        self.transport.exec(command, stdin).await
    }

    /// Run the command a task is about ([`Context::exec`]), its output
    /// streamed to [`Context::live`] when there is one.
    async fn exec_live(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output> {
        match self.live {
            Some(sink) => Ok(self
                .transport
                .exec_streamed(command, stdin, None, sink)
                .await?
                .output),
            None => self.exec(command, stdin).await,
        }
    }

    /// Run a helper script whose non-zero exit is a task failure.
    async fn script(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, Outcome> {
        self.masked_script(command, command, stdin).await
    }

    /// [`Context::script`] for a script that carries secrets: `shown` is
    /// the same script with them masked, which is all `-v` shows and a
    /// failure names (see [`Transport::exec_masked`]).
    async fn masked_script(
        &self,
        command: &str,
        shown: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, Outcome> {
        match self.transport.exec_masked(command, shown, stdin).await {
            Ok(out) if out.success() => Ok(out),
            Ok(out) => Err(Outcome::failed_command(shown, &out)),
            Err(err) => Err(Outcome::from_error(err)),
        }
    }

    /// Run a command whose stdout is read, framed so that a login banner is
    /// never taken for its answer (see `probe.rs`).
    async fn framed_exec(&self, command: &str) -> Result<Output> {
        crate::probe::exec(self.transport, self.host, command, None).await
    }

    /// [`Context::script`] for a script whose stdout is read, framed as
    /// [`Context::framed_exec`].
    async fn framed_script(&self, command: &str) -> Result<Output, Outcome> {
        match self.framed_exec(command).await {
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
    /// The module's own return values, registered beside the common ones
    /// (`stat`'s `stat`, `apt`'s `cache_updated`), as Ansible names them.
    pub values: serde_json::Map<String, serde_json::Value>,
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
            Error::Input(input) => Outcome {
                failure: Some(Failure {
                    message: format!("{}: {}", input.location, input.kind),
                    hint: input.hint(),
                    ..Failure::default()
                }),
                ..Outcome::default()
            },
            Error::Become { message, hint, .. } => Outcome {
                failure: Some(Failure {
                    message,
                    hint,
                    ..Failure::default()
                }),
                ..Outcome::default()
            },
            other => Outcome::fail(other.to_string()),
        }
    }

    /// This outcome with the return value `key` set.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.values.insert(key.to_owned(), value.into());
        self
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
        return Some(
            "the user running it lacks the rights for this: run it as root with `become: true` \
             (or -b), or connect as root (`ansible_user=root` or `-u root`)"
                .into(),
        );
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
pub(crate) async fn run(module: &dyn Module, ctx: &Context<'_>) -> Outcome {
    module.run(ctx).await.unwrap_or_else(Outcome::from_error)
}

/// The bytes of a playbook's `src:` file: beside the playbook, in its
/// `templates/` or `files/` folder, else a built-in template.
pub fn read_src(
    ctx: &Context<'_>,
    src: &str,
    template: bool,
) -> Result<(std::path::PathBuf, Vec<u8>)> {
    let kind = if template {
        crate::playbook::SrcKind::Template
    } else {
        crate::playbook::SrcKind::File
    };
    if let Some(path) = ctx.playbook.resolve_src(src, kind, ctx.role) {
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        return Ok((path, bytes));
    }
    if let Some(text) = ctx.playbook.builtin_template(src) {
        return Ok((
            std::path::Path::new("<builtin>/templates").join(src),
            text.as_bytes().to_vec(),
        ));
    }
    let kind = crate::error::InputKind::SrcNotFound {
        src: src.into(),
        dir: ctx.playbook.dir.display().to_string(),
    };
    Err(Error::input(ctx.location.clone(), kind))
}
