//! The typed playbook model: plays and tasks, each task with one module from
//! the registry (`modules::MODULES`), parsed from Ansible-shaped YAML.
//! Unknown keys and modules are rejected with their file, line and column
//! (from the YAML parser) and a suggestion for near misses. String arguments are
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
use std::sync::Arc;

use crate::error::{Error, InputError, InputKind, Location, Result};
use crate::modules::Module;
use crate::suggest::closest;
use crate::template::Engine;
use crate::vars::Vars;
use crate::yaml::{self, Pos};

mod parse;
#[cfg(test)]
mod tests;
pub(crate) mod values;

use parse::{Located, RawPlay, RawTask};
use values::json_strings;

#[derive(Debug, Clone)]
pub struct Playbook {
    /// Where relative `src:` paths are looked up (the playbook's directory).
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

/// One `serial` batch size. A list of them gives the sizes of the first
/// batches, the last repeating for the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Serial {
    /// This many hosts; 0 means every host left.
    Count(usize),
    /// This share of the play's hosts, rounded down, at least one.
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// Host pattern, same language as `--limit`.
    pub hosts: String,
    /// Batch sizes; empty runs every host in one batch.
    pub serial: Vec<Serial>,
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

/// What an unnamed `no_log` task shows instead of its arguments.
pub(crate) const NO_LOG_PLACEHOLDER: &str = "<hidden by no_log>";

#[derive(Debug, Clone)]
pub struct Task {
    /// The given name, else `MODULE: first argument` (e.g. `command: echo hi`).
    pub name: String,
    pub(crate) module: Arc<dyn Module>,
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
        let text = crate::error::read_input(path)?;
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
        let raw = yaml::parse(text)
            .map_err(|e| yaml::syntax_error(source, text, e))
            .and_then(|doc| parse::plays(doc.as_ref()).map_err(|e| located(e, source, text)))?;
        if raw.is_empty() {
            let location = Location::new(source, 1, 1).with_source(text);
            return Err(InputError::new(location, InputKind::EmptyPlaybook).into());
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
#[cfg(test)]
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
        let kind = InputKind::ImportCycle {
            keyword: "import_playbook".into(),
            name: name.into(),
        };
        return Err(InputError::new(location.clone(), kind).into());
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
        let kind = InputKind::ImportNotFound {
            keyword: "import_playbook".into(),
            name: name.into(),
            looked: format!(
                "looked for `{}` and a built-in `{builtin_name}`",
                path.display()
            ),
        };
        Err(InputError::new(location.clone(), kind).into())
    };
    DEPTH.set(DEPTH.get() - 1);
    result
}

/// The text of `import_tasks: NAME`: beside the playbook, in its `tasks/`
/// folder, else a built-in task file.
fn task_file(name: &str, dir: &Path, location: &Location) -> Result<(PathBuf, String)> {
    for path in [dir.join(name), dir.join("tasks").join(name)] {
        if path.is_file() {
            let text = crate::error::read_input(&path)?;
            return Ok((path, text));
        }
    }
    match BUILTIN_TASKS.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => Ok((
            PathBuf::from(format!("<builtin>/tasks/{n}")),
            (*text).to_owned(),
        )),
        None => {
            let kind = InputKind::ImportNotFound {
                keyword: "import_tasks".into(),
                name: name.into(),
                looked: format!("looked in `{}` and its `tasks/` folder", dir.display()),
            };
            Err(InputError::new(location.clone(), kind).into())
        }
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

/// The default task name: `MODULE: first argument`, on one line; under
/// `no_log` the argument, which may hold a secret, is left out.
fn default_name(module: &dyn Module, no_log: bool) -> String {
    if no_log {
        return format!("{}: {NO_LOG_PLACEHOLDER}", module.name());
    }
    let arg = module.summary();
    let first_line = arg.trim().lines().next().unwrap_or("").trim();
    format!("{}: {first_line}", module.name())
}

/// A parse error, located in `source`.
fn located(e: Located, source: &Path, text: &str) -> Error {
    yaml::input_error(source, text, e.pos, e.kind)
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
            .for_each(|v| json_strings(v, &mut vars_strings));
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
            let kind = InputKind::ImportCycle {
                keyword: "import_tasks".into(),
                name: name.clone(),
            };
            return Err(InputError::new(location, kind).into());
        }
        self.engine
            .check_condition(&raw.when, &self.loc(raw.key_pos("when")))?;
        let (source, text) = task_file(name, self.dir, &location)?;
        let raw_tasks = yaml::parse(&text)
            .map_err(|e| yaml::syntax_error(&source, &text, e))
            .and_then(|doc| parse::tasks(doc.as_ref()).map_err(|e| located(e, &source, &text)))?;
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
        match raw_task
            .notify
            .iter()
            .find(|target| !handler_names.contains(&target.as_str()))
        {
            None => Ok(()),
            Some(target) => {
                let kind = InputKind::UnknownHandler {
                    target: target.clone(),
                    suggestion: closest(target, handler_names.iter().copied()).map(str::to_owned),
                    handlers: handler_names.iter().map(|h| (*h).to_owned()).collect(),
                };
                let location = self.loc(raw_task.key_pos("notify"));
                Err(InputError::new(location, kind).into())
            }
        }
    }

    fn task(&self, raw: &RawTask) -> Result<Task> {
        if let Some(name) = &raw.name {
            self.engine.check(name, &self.loc(raw.key_pos("name")))?;
        }
        let Some((_, module)) = &raw.module else {
            unreachable!("the parser refuses a task without a module")
        };
        let module_pos = raw.key_pos("module");
        self.check_strings(module.templates(), module_pos)?;
        if let Some(items) = &raw.loop_items {
            let mut strings = Vec::new();
            json_strings(items, &mut strings);
            self.check_strings(strings, raw.key_pos("loop"))?;
        }
        let expressions: Vec<String> = module
            .expressions()
            .into_iter()
            .map(str::to_owned)
            .collect();
        self.engine
            .check_condition(&expressions, &self.loc(module_pos))?;
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
            .for_each(|v| json_strings(v, &mut vars_strings));
        self.check_strings(vars_strings, raw.key_pos("vars"))?;

        let retries = raw.retries.or((!raw.until.is_empty()).then_some(3));
        let delay = raw.delay.or(retries.map(|_| 5.0));
        Ok(Task {
            name: raw
                .name
                .clone()
                .unwrap_or_else(|| default_name(module.as_ref(), raw.no_log)),
            module: module.clone(),
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
