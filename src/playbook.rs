//! The typed playbook model: plays, tasks and a `Module` enum, parsed from
//! Ansible-shaped YAML. Unknown keys and modules are rejected with their
//! file, line and a suggestion for near misses. String arguments are
//! templates, rendered per host when the task runs; each is checked to
//! compile at load time, so a broken `{{` is reported before any host is
//! touched.
//!
//! Built-in playbooks live in the repository's `playbooks/` and are embedded
//! in the binary. `arpanet run NAME` takes, in order: a file at the path
//! `NAME`; a file `NAME.yml` in the current directory (so a user overrides
//! the built-in `setup` by writing their own `setup.yml`); the built-in
//! `NAME`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::suggest::closest;
use crate::template::Engine;
use crate::vars::Vars;

mod de;
#[cfg(test)]
mod tests;

use de::{Pos, RawPlay, RawTask};

#[derive(Debug, Clone)]
pub struct Playbook {
    /// The file it came from, or `<builtin>/NAME.yml`.
    pub source: PathBuf,
    /// Where relative `src:` paths are looked up (the playbook's directory).
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// Host pattern, same language as `--limit`.
    pub hosts: String,
    pub serial: Option<Serial>,
    pub max_fail_percentage: Option<f64>,
    pub vars: Vars,
    pub tags: Vec<String>,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub location: Location,
}

/// A condition: one or more minijinja expressions that must all be true.
/// A YAML bool becomes `"true"` or `"false"`.
pub type Condition = Vec<String>;

#[derive(Debug, Clone)]
pub struct Task {
    /// The given name, else `MODULE: first argument` (e.g. `command: echo hi`).
    pub name: String,
    pub module: Module,
    pub when: Condition,
    pub tags: Vec<String>,
    pub notify: Vec<String>,
    pub register: Option<String>,
    /// Extra attempts after the first; defaults to 3 when `until` is set.
    pub retries: Option<u32>,
    /// Seconds between attempts (default 5).
    pub delay: Option<f64>,
    pub until: Condition,
    pub ignore_errors: bool,
    pub run_once: bool,
    pub changed_when: Condition,
    pub failed_when: Condition,
    pub no_log: bool,
    /// Extra vars for this task (`vars:`), templated.
    pub vars: Vars,
    /// `loop:`: a list, or a template giving one; each item runs the module
    /// once with `item` set.
    pub loop_items: Option<serde_json::Value>,
    /// `check_mode: false` runs the task for real even under `--check`
    /// (for read-only commands whose results later tasks need).
    pub check_mode: Option<bool>,
    /// Where the task starts in its file.
    pub location: Location,
}

/// One task kind and its arguments. `String` fields are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum Module {
    Command(CommandArgs),
    Shell(CommandArgs),
    Template(FileContentArgs),
    Copy(FileContentArgs),
    File(FileArgs),
    Service(ServiceArgs),
    WaitFor(WaitForArgs),
    Debug(DebugArgs),
    SetFact(Vars),
    Assert(AssertArgs),
    /// Arguments kept as data: they are rendered, then typed, per host.
    DockerImage(Vars),
    DockerContainer(Vars),
    /// The cluster's certificates and keys, made on this machine (product:
    /// `cluster/secrets.rs`).
    ClusterSecrets(crate::cluster::secrets::SecretsArgs),
}

impl Module {
    /// The name as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Module::Command(_) => "command",
            Module::Shell(_) => "shell",
            Module::Template(_) => "template",
            Module::Copy(_) => "copy",
            Module::File(_) => "file",
            Module::Service(_) => "service",
            Module::WaitFor(_) => "wait_for",
            Module::Debug(_) => "debug",
            Module::SetFact(_) => "set_fact",
            Module::Assert(_) => "assert",
            Module::DockerImage(_) => "docker_image",
            Module::DockerContainer(_) => "docker_container",
            Module::ClusterSecrets(_) => "cluster_secrets",
        }
    }
}

/// `command` and `shell`. `command: echo hi` sets `cmd`; `argv:` a list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandArgs {
    pub cmd: Option<String>,
    /// `command` only: each item is one argument, quoted for the remote shell.
    pub argv: Option<Vec<String>>,
    pub chdir: Option<String>,
    /// Skip when this path exists.
    pub creates: Option<String>,
    /// Skip unless this path exists.
    pub removes: Option<String>,
    pub stdin: Option<String>,
}

/// `template` (src is a template file) and `copy` (`src` file or `content`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileContentArgs {
    pub src: Option<String>,
    /// `copy` only.
    pub content: Option<String>,
    pub dest: String,
    /// Octal string such as `"0644"`.
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Keep the old file as `DEST.TIMESTAMP~` before replacing it.
    pub backup: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    #[default]
    File,
    Directory,
    Absent,
    Touch,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileArgs {
    pub path: String,
    pub state: FileState,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceArgs {
    pub name: String,
    pub state: Option<ServiceState>,
    pub enabled: Option<bool>,
    pub daemon_reload: bool,
}

/// `present`/`absent` (Ansible's words for `path:`) are accepted too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    #[default]
    #[serde(alias = "present")]
    Started,
    #[serde(alias = "absent")]
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitForArgs {
    /// Default `127.0.0.1`, as seen from the remote host.
    pub host: String,
    /// A template so `{{ consul_port }}` works; must render to a port number.
    pub port: Option<String>,
    /// File to wait for, instead of a port.
    pub path: Option<String>,
    pub state: PortState,
    /// Seconds before the first check.
    pub delay: f64,
    /// Seconds before giving up (default 300).
    pub timeout: f64,
}

/// `assert`: every expression of `that` must hold; checked on the machine
/// running arpanet, without contacting the host.
#[derive(Debug, Clone, PartialEq)]
pub struct AssertArgs {
    pub that: Condition,
    pub fail_msg: Option<String>,
    pub success_msg: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DebugArgs {
    Msg(String),
    Var(String),
}

/// Where a relative `src:` is looked for: `templates/` for `template`,
/// `files/` for `copy`, after the playbook's own directory (as Ansible does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcKind {
    Template,
    File,
}

impl Playbook {
    /// Read and parse a playbook file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::parse(path, &dir, &text)
    }

    /// Parse `text` as if read from `source`; relative paths resolve in `dir`.
    ///
    /// Everything is checked before anything runs: keys, modules and their
    /// arguments, that every templated string and condition compiles, and
    /// that every `notify` names a handler of its play.
    pub fn parse(source: &Path, dir: &Path, text: &str) -> Result<Self> {
        // YAML syntax first: serde_norway reports a syntax error only when
        // deserializing reaches it, after any type error before it.
        serde_norway::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
            let Error::Input {
                location,
                message,
                hint,
            } = yaml_error(&e, source, text)
            else {
                unreachable!("yaml_error makes input errors")
            };
            Error::Input {
                location,
                message: format!("invalid YAML: {message}"),
                hint,
            }
        })?;
        let de::PlayList(raw) =
            serde_norway::from_str(text).map_err(|e| yaml_error(&e, source, text))?;
        if raw.is_empty() {
            return Err(
                Error::input(Location::new(source, 0, 0), "playbook has no plays")
                    .with_hint("a playbook is a list of plays, such as `- hosts: all`"),
            );
        }
        let builder = Builder {
            source,
            text,
            dir,
            engine: Engine::new(),
        };
        let mut plays = Vec::new();
        for p in raw {
            match &p.import {
                Some(name) => {
                    let location = builder.loc(p.key_pos("import_playbook"));
                    plays.extend(import(name, dir, &location)?.plays);
                }
                None => plays.push(builder.play(p)?),
            }
        }
        Ok(Playbook {
            source: source.to_path_buf(),
            dir: dir.to_path_buf(),
            plays,
        })
    }

    /// Find a task's `src:` file: absolute as given; relative in the
    /// playbook's directory, then in its `templates/` (for `template`) or
    /// `files/` (for `copy`) folder. `None` when no such file exists.
    pub fn resolve_src(&self, src: &str, kind: SrcKind) -> Option<PathBuf> {
        let path = Path::new(src);
        if path.is_absolute() {
            return path.exists().then(|| path.to_path_buf());
        }
        let folder = match kind {
            SrcKind::Template => "templates",
            SrcKind::File => "files",
        };
        [self.dir.join(path), self.dir.join(folder).join(path)]
            .into_iter()
            .find(|p| p.exists())
    }
}

/// The built-in playbooks, embedded from the repository's `playbooks/`.
const BUILTINS: &[(&str, &str)] = &[
    ("bootstrap", include_str!("../playbooks/bootstrap.yml")),
    ("setup", include_str!("../playbooks/setup.yml")),
    ("pull", include_str!("../playbooks/pull.yml")),
    ("consul", include_str!("../playbooks/consul.yml")),
    ("stack", include_str!("../playbooks/stack.yml")),
    ("stop", include_str!("../playbooks/stop.yml")),
    ("upgrade", include_str!("../playbooks/upgrade.yml")),
    ("info", include_str!("../playbooks/info.yml")),
    // Parts imported by the playbooks above.
    ("preflight", include_str!("../playbooks/preflight.yml")),
    (
        "consul-agents",
        include_str!("../playbooks/consul-agents.yml"),
    ),
];
const BUILTIN_NAMES: &[&str] = &[
    "bootstrap",
    "setup",
    "pull",
    "consul",
    "stack",
    "upgrade",
    "stop",
    "info",
];

/// The YAML text of a built-in playbook (`bootstrap`, `setup`, ...).
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// The names of the built-in playbooks.
pub fn builtin_names() -> &'static [&'static str] {
    BUILTIN_NAMES
}

/// Templates embedded from the repository's `templates/` folder, by the
/// name a playbook gives as `src:` (e.g. `docker-default.j2`). A file of the
/// same name beside the playbook (or in its `templates/`) wins over these.
/// Add an entry with `include_str!("../templates/NAME")` for each template.
const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "docker.default.j2",
        include_str!("../templates/docker.default.j2"),
    ),
    (
        "docker-dropin.conf.j2",
        include_str!("../templates/docker-dropin.conf.j2"),
    ),
];

/// The text of a built-in template, if there is one named `name`.
pub fn builtin_template(name: &str) -> Option<&'static str> {
    BUILTIN_TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

/// The playbook a command-line argument names: a path to an existing file;
/// else a built-in name, where a file `NAME.yml` in the current directory
/// overrides the built-in `NAME` (so a user can adapt `setup` by copying it).
pub fn resolve(arg: &str) -> Result<Playbook> {
    resolve_in(arg, Path::new("."))
}

/// [`resolve`] with `cwd` as the current directory.
fn resolve_in(arg: &str, cwd: &Path) -> Result<Playbook> {
    // `./x.yml` reads better as `x.yml` in messages.
    let in_cwd = |name: &str| match cwd == Path::new(".") {
        true => PathBuf::from(name),
        false => cwd.join(name),
    };
    let path = in_cwd(arg);
    if path.is_file() {
        return Playbook::load(&path);
    }
    if let Some(text) = builtin(arg) {
        let local = in_cwd(&format!("{arg}.yml"));
        if local.is_file() {
            return Playbook::load(&local);
        }
        let dir = std::path::absolute(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        return Playbook::parse(Path::new(&format!("<builtin>/{arg}.yml")), &dir, text);
    }
    let names = BUILTIN_NAMES
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let looks_like_path = arg.contains('/') || arg.ends_with(".yml") || arg.ends_with(".yaml");
    let message = if looks_like_path {
        format!("playbook file `{arg}` does not exist")
    } else {
        format!("no playbook file or built-in playbook named `{arg}`")
    };
    let hint = match closest(arg, BUILTIN_NAMES.iter().copied()) {
        Some(c) => format!("did you mean `{c}`? built-in playbooks: {names}"),
        None => format!("built-in playbooks: {names}"),
    };
    Err(Error::usage(message).with_hint(hint))
}

/// The plays of `import_playbook: NAME`: a file beside the importing
/// playbook, else a built-in (`setup.yml` or `setup`).
fn import(name: &str, dir: &Path, location: &Location) -> Result<Playbook> {
    thread_local! {
        static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    if DEPTH.get() >= 8 {
        return Err(Error::input(
            location.clone(),
            format!("`import_playbook: {name}` nests too deeply"),
        )
        .with_hint("playbooks import each other in a cycle"));
    }
    let path = dir.join(name);
    let builtin_name = name.trim_end_matches(".yml").trim_end_matches(".yaml");
    DEPTH.set(DEPTH.get() + 1);
    let result = if path.is_file() {
        Playbook::load(&path)
    } else if let Some(text) = builtin(builtin_name) {
        Playbook::parse(
            Path::new(&format!("<builtin>/{builtin_name}.yml")),
            dir,
            text,
        )
    } else {
        Err(
            Error::input(location.clone(), format!("no playbook `{name}` to import")).with_hint(
                format!(
                    "looked for `{}` and a built-in `{builtin_name}`",
                    path.display()
                ),
            ),
        )
    };
    DEPTH.set(DEPTH.get() - 1);
    result
}

/// The text of `import_tasks: NAME`: beside the playbook, in its `tasks/`
/// folder, else a built-in task file.
fn task_file(name: &str, dir: &Path, location: &Location) -> Result<(PathBuf, String)> {
    for path in [dir.join(name), dir.join("tasks").join(name)] {
        if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
            return Ok((path, text));
        }
    }
    match BUILTIN_TASKS.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => Ok((
            PathBuf::from(format!("<builtin>/tasks/{n}")),
            (*text).to_owned(),
        )),
        None => Err(
            Error::input(location.clone(), format!("no task file `{name}` to import")).with_hint(
                format!("looked in `{}` and its `tasks/` folder", dir.display()),
            ),
        ),
    }
}

/// Task files the built-in playbooks import, embedded from `playbooks/tasks/`.
const BUILTIN_TASKS: &[(&str, &str)] = &[
    (
        "consul-agent.yml",
        include_str!("../playbooks/tasks/consul-agent.yml"),
    ),
    (
        "stack-services.yml",
        include_str!("../playbooks/tasks/stack-services.yml"),
    ),
    (
        "upgrade-node.yml",
        include_str!("../playbooks/tasks/upgrade-node.yml"),
    ),
];

/// The default task name: `MODULE: first argument`, on one line.
fn default_name(module: &Module) -> String {
    let arg = match module {
        Module::Command(a) | Module::Shell(a) => a
            .cmd
            .clone()
            .or_else(|| a.argv.as_ref().map(|v| v.join(" ")))
            .unwrap_or_default(),
        Module::Template(a) | Module::Copy(a) => a.dest.clone(),
        Module::File(a) => a.path.clone(),
        Module::Service(a) => a.name.clone(),
        Module::WaitFor(a) => match (&a.port, &a.path) {
            (Some(port), _) => format!("{}:{port}", a.host),
            (None, Some(path)) => path.clone(),
            (None, None) => String::new(),
        },
        Module::Debug(DebugArgs::Msg(s)) | Module::Debug(DebugArgs::Var(s)) => s.clone(),
        Module::SetFact(vars) => vars.keys().cloned().collect::<Vec<_>>().join(", "),
        Module::Assert(a) => a.that.join(" and "),
        Module::DockerImage(args) | Module::DockerContainer(args) => match args.get("name") {
            Some(serde_json::Value::String(name)) => name.clone(),
            _ => String::new(),
        },
        Module::ClusterSecrets(a) => a.kind.name().to_owned(),
    };
    let first_line = arg.trim().lines().next().unwrap_or("").trim();
    format!("{}: {first_line}", module.kind())
}

/// Every string of a module's arguments (all are templates).
fn module_strings(module: &Module) -> Vec<&str> {
    let mut out = Vec::new();
    match module {
        Module::Command(a) | Module::Shell(a) => {
            out.extend(a.cmd.as_deref());
            out.extend(a.argv.iter().flatten().map(String::as_str));
            for s in [&a.chdir, &a.creates, &a.removes, &a.stdin] {
                out.extend(s.as_deref());
            }
        }
        Module::Template(a) | Module::Copy(a) => {
            out.push(&a.dest);
            for s in [&a.src, &a.content, &a.mode, &a.owner, &a.group] {
                out.extend(s.as_deref());
            }
        }
        Module::File(a) => {
            out.push(&a.path);
            for s in [&a.mode, &a.owner, &a.group] {
                out.extend(s.as_deref());
            }
        }
        Module::Service(a) => out.push(&a.name),
        Module::WaitFor(a) => {
            out.push(&a.host);
            out.extend(a.port.as_deref());
            out.extend(a.path.as_deref());
        }
        Module::Debug(DebugArgs::Msg(s)) => out.push(s),
        Module::Debug(DebugArgs::Var(_)) => {}
        Module::Assert(a) => {
            out.extend(a.fail_msg.as_deref());
            out.extend(a.success_msg.as_deref());
        }
        Module::SetFact(vars) | Module::DockerImage(vars) | Module::DockerContainer(vars) => {
            vars.values().for_each(|v| value_strings(v, &mut out))
        }
        Module::ClusterSecrets(a) => out.push(&a.dir),
    }
    out
}

/// Every string inside a variable's value.
fn value_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| value_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| value_strings(v, out)),
        _ => {}
    }
}

/// Turns parsed plays into the model, checking templates and handlers.
struct Builder<'a> {
    source: &'a Path,
    text: &'a str,
    /// Where `import_tasks` files are looked up.
    dir: &'a Path,
    engine: Engine,
}

impl Builder<'_> {
    fn loc(&self, pos: Pos) -> Location {
        Location::new(self.source, pos.line, pos.column).with_source(self.text)
    }

    fn check_strings<'s>(
        &self,
        strings: impl IntoIterator<Item = &'s str>,
        pos: Pos,
    ) -> Result<()> {
        strings
            .into_iter()
            .try_for_each(|s| self.engine.check(s, &self.loc(pos)))
    }

    fn play(&self, raw: RawPlay) -> Result<Play> {
        let mut vars_strings = Vec::new();
        raw.vars
            .values()
            .for_each(|v| value_strings(v, &mut vars_strings));
        self.check_strings(vars_strings, raw.key_pos("vars"))?;
        if let Some(name) = &raw.name {
            self.engine.check(name, &self.loc(raw.key_pos("name")))?;
        }
        let handler_names: Vec<String> =
            raw.handlers.iter().filter_map(|h| h.name.clone()).collect();
        let handler_names: Vec<&str> = handler_names.iter().map(String::as_str).collect();
        let mut handlers = Vec::new();
        for t in &raw.handlers {
            handlers.extend(self.tasks(t, &handler_names, 0)?);
        }
        let handler_names: Vec<&str> = handlers.iter().map(|h| h.name.as_str()).collect();
        let mut tasks = Vec::new();
        for t in &raw.tasks {
            tasks.extend(self.tasks(t, &handler_names, 0)?);
        }
        Ok(Play {
            name: raw.name.clone().unwrap_or_else(|| raw.hosts.clone()),
            hosts: raw.hosts,
            serial: raw.serial,
            max_fail_percentage: raw.max_fail_percentage,
            vars: raw.vars,
            tags: raw.tags,
            tasks,
            handlers,
            location: self.loc(raw.pos),
        })
    }

    /// The tasks a raw entry stands for: itself, or the tasks of the file it
    /// imports with its `when`, `tags` and `vars` added to each.
    fn tasks(&self, raw: &RawTask, handler_names: &[&str], depth: usize) -> Result<Vec<Task>> {
        let Some(name) = &raw.import else {
            self.check_notify(raw, handler_names)?;
            return Ok(vec![self.task(raw)?]);
        };
        let location = self.loc(raw.key_pos("import_tasks"));
        if depth >= 8 {
            return Err(
                Error::input(location, format!("`import_tasks: {name}` nests too deeply"))
                    .with_hint("task files import each other in a cycle"),
            );
        }
        self.engine
            .check_condition(&raw.when, &self.loc(raw.key_pos("when")))?;
        let (source, text) = task_file(name, self.dir, &location)?;
        let raw_tasks: Vec<RawTask> = serde_norway::from_str::<Option<Vec<RawTask>>>(&text)
            .map_err(|e| yaml_error(&e, &source, &text))?
            .unwrap_or_default();
        let inner = Builder {
            source: &source,
            text: &text,
            dir: self.dir,
            engine: Engine::new(),
        };
        let mut out = Vec::new();
        for r in &raw_tasks {
            for mut task in inner.tasks(r, handler_names, depth + 1)? {
                task.when = raw.when.iter().cloned().chain(task.when).collect();
                task.tags.extend(raw.tags.iter().cloned());
                for (key, value) in &raw.vars {
                    task.vars
                        .entry(key.clone())
                        .or_insert_with(|| value.clone());
                }
                out.push(task);
            }
        }
        Ok(out)
    }

    fn check_notify(&self, raw_task: &RawTask, handler_names: &[&str]) -> Result<()> {
        for target in &raw_task.notify {
            if !handler_names.contains(&target.as_str()) {
                let hint = match closest(target, handler_names.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None if handler_names.is_empty() => {
                        "define it under the play's `handlers:`".to_owned()
                    }
                    None => format!(
                        "handlers in this play: {}",
                        handler_names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(Error::input(
                    self.loc(raw_task.key_pos("notify")),
                    format!("`notify` names no handler of this play: `{target}`"),
                )
                .with_hint(hint));
            }
        }
        Ok(())
    }

    fn task(&self, raw: &RawTask) -> Result<Task> {
        if let Some(name) = &raw.name {
            self.engine.check(name, &self.loc(raw.key_pos("name")))?;
        }
        self.check_strings(module_strings(&raw.module), raw.key_pos("module"))?;
        if let Some(items) = &raw.loop_items {
            let mut strings = Vec::new();
            value_strings(items, &mut strings);
            self.check_strings(strings, raw.key_pos("loop"))?;
        }
        if let Module::Assert(a) = &raw.module {
            self.engine
                .check_condition(&a.that, &self.loc(raw.key_pos("module")))?;
        }
        if let Module::Debug(DebugArgs::Var(var)) = &raw.module {
            self.engine
                .check_condition(std::slice::from_ref(var), &self.loc(raw.key_pos("module")))?;
        }
        for (key, cond) in [
            ("when", &raw.when),
            ("until", &raw.until),
            ("changed_when", &raw.changed_when),
            ("failed_when", &raw.failed_when),
        ] {
            self.engine
                .check_condition(cond, &self.loc(raw.key_pos(key)))?;
        }
        let mut vars_strings = Vec::new();
        raw.vars
            .values()
            .for_each(|v| value_strings(v, &mut vars_strings));
        self.check_strings(vars_strings, raw.key_pos("vars"))?;

        let retries = raw.retries.or((!raw.until.is_empty()).then_some(3));
        let delay = raw.delay.or(retries.map(|_| 5.0));
        Ok(Task {
            name: raw
                .name
                .clone()
                .unwrap_or_else(|| default_name(&raw.module)),
            module: raw.module.clone(),
            when: raw.when.clone(),
            tags: raw.tags.clone(),
            notify: raw.notify.clone(),
            register: raw.register.clone(),
            retries,
            delay,
            until: raw.until.clone(),
            ignore_errors: raw.ignore_errors,
            run_once: raw.run_once,
            changed_when: raw.changed_when.clone(),
            failed_when: raw.failed_when.clone(),
            no_log: raw.no_log,
            vars: raw.vars.clone(),
            loop_items: raw.loop_items.clone(),
            check_mode: raw.check_mode,
            location: self.loc(raw.pos),
        })
    }
}

/// A `serde_norway` error as a located input error: the message without
/// serde_norway's path prefix and position suffix, the field it concerns,
/// and a hint (carried in the message, or a near miss of an unknown name).
fn yaml_error(err: &serde_norway::Error, source: &Path, text: &str) -> Error {
    let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = err.to_string();
    let suffix = format!(" at line {line} column {column}");
    if let Some(i) = message.find(&suffix) {
        message.replace_range(i..i + suffix.len(), "");
    }
    // serde_norway prefixes the path to the node: `[0].tasks[2].template: `.
    let mut field = None;
    if let Some((path, rest)) = message.split_once(": ") {
        if !path.is_empty() && !path.contains([' ', '`']) {
            let last = path.rsplit('.').next().unwrap_or(path);
            if !last.contains('[') {
                field = Some(last.to_owned());
            }
            message = rest.to_owned();
        }
    }
    let (mut message, mut hint) = match message.split_once(de::HINT_SEP) {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (message, None),
    };
    for (from, to) in [
        ("unknown field", "unknown argument"),
        ("missing field", "missing argument"),
        ("unknown variant", "unknown value"),
    ] {
        if let Some(rest) = message.strip_prefix(from) {
            if hint.is_none() {
                hint = near_miss(rest);
            }
            message = format!("{to}{rest}");
        }
    }
    if let Some(field) = field {
        message = format!("`{field}`: {message}");
    }
    let mut out = Error::input(
        Location::new(source, line, column).with_source(text),
        message,
    );
    if let Some(hint) = hint {
        out = out.with_hint(hint);
    }
    out
}

/// For serde's `` `nmae`, expected one of `name`, `hosts` ``: the closest
/// expected word to the unknown one.
fn near_miss(rest: &str) -> Option<String> {
    let words: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let (unknown, expected) = words.split_first()?;
    closest(unknown, expected.iter().copied()).map(|c| format!("did you mean `{c}`?"))
}
