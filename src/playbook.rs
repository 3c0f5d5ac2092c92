//! The typed playbook model: plays and their task lists ([`Step`]s: tasks,
//! and blocks of them), each task with one module from the registry
//! (`modules::MODULES`), parsed from Ansible-shaped YAML. What a block or an
//! `import_tasks` sets is handed down to its tasks here, once, so the
//! executor reads each task's own fields.
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

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::error::{Error, InputError, InputKind, Location, Result, Within};
use crate::escalation::Keywords;
use crate::modules::Module;
use crate::suggest::closest;
use crate::template::{strip_braces, Engine};
use crate::vars::Vars;
use crate::yaml::{self, Pos};

mod parse;
mod role;
#[cfg(test)]
mod tests;
pub(crate) mod values;

use crate::modules::include_role::IncludeRole;
use crate::modules::include_tasks::IncludeTasks;
pub(crate) use parse::RoleRef;
use parse::{Located, RawBlock, RawPlay, RawTask};
pub use role::Role;
use values::json_strings;

#[derive(Debug, Clone)]
pub struct Playbook {
    /// Where relative `src:` paths are looked up (the playbook's directory).
    pub dir: PathBuf,
    pub plays: Vec<Play>,
    /// Where built-in templates are found after the disk.
    pub(crate) builtins: Builtins,
    /// The variables each task's templates need, for [`Playbook::check_names`].
    pub(crate) uses: Vec<NameUse>,
    /// Names the playbook itself defines: play and task `vars`, `register`,
    /// `set_fact` keys.
    pub(crate) defines: BTreeSet<String>,
    /// An `include_tasks` names its file with a template: what that file
    /// defines is not known before the run, so names are not checked.
    pub(crate) dynamic: bool,
}

/// What a product ships inside the binary: playbooks, task files and
/// templates, found by name after the files on disk; the modules it adds;
/// and its default variables, the lowest layer of every host's scope. The
/// engine knows no names of its own; the commands pass these in.
#[derive(Clone, Copy, Default)]
pub struct Builtins {
    /// The playbooks offered to the user (named in hints), in order.
    pub names: &'static [&'static str],
    /// Every playbook by name (those above and the parts they import).
    pub playbooks: &'static [(&'static str, &'static str)],
    /// Task files for `import_tasks`, by file name.
    pub tasks: &'static [(&'static str, &'static str)],
    /// Templates for `src:`, by file name.
    pub templates: &'static [(&'static str, &'static str)],
    /// Modules beside the engine's own.
    pub modules: &'static [&'static dyn crate::modules::ModuleDef],
    /// Default variables, as YAML text.
    pub defaults: &'static str,
}

impl std::fmt::Debug for Builtins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtins")
            .field("names", &self.names)
            .field(
                "modules",
                &self.modules.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Builtins {
    /// No built-ins at all.
    pub const NONE: Builtins = Builtins {
        names: &[],
        playbooks: &[],
        tasks: &[],
        templates: &[],
        modules: &[],
        defaults: "",
    };

    /// The modules a playbook may use with these built-ins.
    pub(crate) fn registry(&self) -> crate::modules::Registry {
        crate::modules::Registry {
            product: self.modules,
        }
    }

    fn find(table: &[(&str, &'static str)], name: &str) -> Option<&'static str> {
        table.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// The YAML text of the built-in playbook `name`.
    pub fn playbook(&self, name: &str) -> Option<&'static str> {
        Self::find(self.playbooks, name)
    }

    /// The text of the built-in template `name`.
    pub fn template(&self, name: &str) -> Option<&'static str> {
        Self::find(self.templates, name)
    }

    fn task_file(&self, name: &str) -> Option<&'static str> {
        Self::find(self.tasks, name)
    }
}

/// Templated strings of one task and the variables they need: each must be
/// defined somewhere, or the task can never run.
#[derive(Debug, Clone)]
pub(crate) struct NameUse {
    pub names: Vec<String>,
    pub location: Location,
    /// The string from the playbook; `None` for a template file.
    pub text: Option<String>,
}

impl NameUse {
    /// Where in the string `name` is: the string itself when it is one
    /// line, else the line that uses it.
    fn within(&self, name: &str) -> Within {
        let Some(text) = &self.text else {
            return Within::File;
        };
        if !text.contains('\n') {
            return Within::Inline(text.clone());
        }
        let lines: Vec<&str> = text.lines().collect();
        let index = lines.iter().position(|l| l.contains(name)).unwrap_or(0);
        Within::Line {
            line: index + 1,
            text: lines.get(index).unwrap_or(&"").trim().to_owned(),
        }
    }
}

/// One `serial` batch size. A list of them gives the sizes of the first
/// batches, the last repeating for the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Serial {
    /// This many hosts; 0 means every host left.
    Count(usize),
    /// This share of the play's hosts, rounded down, at least one.
    Percent(f64),
    /// A template (`serial: "{{ roll_batch }}"`), rendered to one of the
    /// above with the play's variables when the play starts.
    Template(String),
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// Host pattern, same language as `--limit`.
    pub hosts: String,
    /// Batch sizes; empty runs every host in one batch.
    pub serial: Vec<Serial>,
    pub max_fail_percentage: Option<f64>,
    /// One host's failure ends the play for every host.
    pub any_errors_fatal: bool,
    /// Environment variables for every task's commands (below block and
    /// task `environment`).
    pub environment: Vars,
    pub vars: Vars,
    /// `remote_user`: the user to connect as (a template) where a host's
    /// variables set no `ansible_user`.
    pub remote_user: Option<String>,
    /// `connection: local` or `ssh`, where a host's variables set no
    /// `ansible_connection`.
    pub local: Option<bool>,
    /// What the play's roles (`roles:` and `import_role`) show every task:
    /// their defaults and vars, merged in the order the roles come.
    pub(crate) role_layers: crate::scope::RoleLayers,
    pub tags: Vec<String>,
    pub pre_tasks: Vec<Step>,
    /// The tasks of `roles:`, then `tasks:`.
    pub tasks: Vec<Step>,
    pub post_tasks: Vec<Step>,
    /// The play's handlers, then its roles'.
    pub handlers: Vec<Task>,
    pub location: Location,
}

impl Play {
    /// `pre_tasks`, then roles and `tasks`, then `post_tasks`: the
    /// handlers notified in each run at its end, as in Ansible.
    pub fn sections(&self) -> [&[Step]; 3] {
        [&self.pre_tasks, &self.tasks, &self.post_tasks]
    }

    /// Every task of the play, blocks opened, in the order they run.
    pub fn task_list(&self) -> Vec<&Task> {
        self.sections().into_iter().flat_map(Step::tasks).collect()
    }
}

/// One entry of a task list: a task, or a `block` of them. A role's task
/// list is the same shape.
// Most steps are tasks; boxing them would cost every task an allocation
// to save a block a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Step {
    Task(Task),
    Block(Block),
}

/// `block`/`rescue`/`always`. What the block sets (`when`, `tags`, `vars`,
/// `environment`, `become`, ...) is already handed down to every task in
/// it when it is built, so a block only orders its three lists: `rescue`
/// runs on the hosts a `body` task failed on, `always` on every host that
/// entered.
#[derive(Debug, Clone)]
pub struct Block {
    pub body: Vec<Step>,
    pub rescue: Vec<Step>,
    pub always: Vec<Step>,
    pub location: Location,
}

impl Step {
    /// Every task in `steps`, depth first, in file order (a block's body,
    /// then its rescue, then its always).
    pub fn tasks(steps: &[Step]) -> Vec<&Task> {
        let mut out = Vec::new();
        for step in steps {
            match step {
                Step::Task(task) => out.push(task),
                Step::Block(b) => {
                    for list in [&b.body, &b.rescue, &b.always] {
                        out.extend(Step::tasks(list));
                    }
                }
            }
        }
        out
    }

    /// `steps` keeping only the tasks `keep` accepts (empty blocks go).
    pub(crate) fn filter(steps: &[Step], keep: &dyn Fn(&Task) -> bool) -> Vec<Step> {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Task(task) => keep(task).then(|| step.clone()),
                Step::Block(b) => {
                    let block = Block {
                        body: Step::filter(&b.body, keep),
                        rescue: Step::filter(&b.rescue, keep),
                        always: Step::filter(&b.always, keep),
                        ..b.clone()
                    };
                    let empty = block.body.is_empty() && block.always.is_empty();
                    (!empty).then_some(Step::Block(block))
                }
            })
            .collect()
    }
}

/// How a loop's value becomes its items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoopKind {
    /// `loop`, `with_list`: the list as it is.
    #[default]
    List,
    /// `with_items`: nested lists flattened one level.
    Items,
    /// `with_dict`: each entry as `{key, value}`.
    Dict,
    /// `with_indexed_items`: each item as `[index, item]`.
    Indexed,
}

/// `loop_control`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopControl {
    /// The name each item is bound to (`item`).
    #[serde(deserialize_with = "ident")]
    pub loop_var: String,
    /// A name bound to the item's index, from 0.
    #[serde(deserialize_with = "some_ident")]
    pub index_var: Option<String>,
    /// A template shown instead of the item in output.
    #[serde(deserialize_with = "some_text")]
    pub label: Option<String>,
    /// Seconds between items.
    #[serde(deserialize_with = "some_seconds")]
    pub pause: Option<f64>,
}

impl Default for LoopControl {
    fn default() -> Self {
        LoopControl {
            loop_var: "item".into(),
            index_var: None,
            label: None,
            pause: None,
        }
    }
}

fn ident<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    serde::Deserialize::deserialize(d).map(|values::Ident(s)| s)
}

fn some_ident<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    ident(d).map(Some)
}

fn some_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    serde::Deserialize::deserialize(d).map(|values::Text(s)| Some(s))
}

fn some_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    serde::Deserialize::deserialize(d).map(|values::Seconds(s)| Some(s))
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
    /// A handler's `listen` topics: a `notify` of one runs every handler
    /// that listens to it.
    pub listen: Vec<String>,
    pub register: Option<String>,
    /// Extra attempts after the first; defaults to 3 when `until` is set.
    pub retries: Option<u32>,
    /// Seconds between attempts (default 5).
    pub delay: Option<f64>,
    pub until: Condition,
    /// Seconds each attempt may take before it is stopped and fails
    /// (`timeout:`; 0 is no limit); unset, `--task-timeout` applies.
    pub timeout: Option<u32>,
    pub ignore_errors: bool,
    pub run_once: bool,
    pub changed_when: Condition,
    pub failed_when: Condition,
    pub no_log: bool,
    /// Extra vars for this task (`vars:`), templated.
    pub vars: Vars,
    /// `loop:`: a list, or a template giving one; each item runs the module
    /// once with `item` (or `loop_control.loop_var`) set.
    pub loop_items: Option<serde_json::Value>,
    pub loop_kind: LoopKind,
    pub loop_control: LoopControl,
    /// `check_mode: false` runs the task for real even under `--check`
    /// (for read-only commands whose results later tasks need).
    pub check_mode: Option<bool>,
    /// `delegate_to`: run on this host (a template) with this task's host's
    /// variables; `localhost` runs on this machine.
    pub delegate_to: Option<String>,
    /// Environment variables for the task's commands (with its blocks').
    pub environment: Vars,
    /// A failure here ends the play for every host.
    pub any_errors_fatal: bool,
    /// `become` and friends: the task's own over its blocks' and its
    /// play's.
    pub(crate) escalate: Keywords,
    /// Values set by the `include_tasks` that brought the task in (its
    /// rendered `vars` and loop variable): above task vars, not templates.
    pub(crate) params: Vars,
    /// The role the task belongs to: its variables and its
    /// `templates/`/`files/`.
    pub role: Option<Arc<Role>>,
    /// Where the task starts in its file.
    pub location: Location,
}

impl Task {
    /// The names a `notify` may give this task by, as a handler: its
    /// [`Task::titles`] and its `listen` topics.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.titles().chain(self.listen.iter().map(String::as_str))
    }

    /// The task's name and, in a role, its name without the `ROLE : `
    /// Ansible shows before it.
    pub(crate) fn titles(&self) -> impl Iterator<Item = &str> {
        let bare = self
            .role
            .as_ref()
            .and_then(|r| self.name.strip_prefix(&format!("{} : ", r.name)));
        std::iter::once(self.name.as_str()).chain(bare)
    }
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
    #[cfg(test)]
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, Builtins::NONE)
    }

    /// Read and parse a playbook file whose imports may name `builtins`.
    fn load_with(path: &Path, builtins: Builtins) -> Result<Self> {
        let text = crate::error::read_input(path)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::parse_with(path, &dir, &text, builtins)
    }

    /// Parse `text` as if read from `source`; relative paths resolve in `dir`.
    ///
    /// Everything is checked before anything runs: keys, modules and their
    /// arguments, that every templated string and condition compiles, and
    /// that every `notify` names a handler of its play.
    pub fn parse(source: &Path, dir: &Path, text: &str) -> Result<Self> {
        Self::parse_with(source, dir, text, Builtins::NONE)
    }

    /// [`Playbook::parse`], finding imports and templates in `builtins`
    /// after the disk.
    pub fn parse_with(source: &Path, dir: &Path, text: &str, builtins: Builtins) -> Result<Self> {
        let raw = yaml::parse(text)
            .map_err(|e| yaml::syntax_error(source, text, e))
            .and_then(|doc| {
                parse::plays(doc.as_ref(), builtins.registry())
                    .map_err(|e| located(e, source, text))
            })?;
        if raw.is_empty() {
            let location = Location::new(source, 1, 1).with_source(text);
            return Err(InputError::new(location, InputKind::EmptyPlaybook).into());
        }
        let found = RefCell::new(Found::default());
        let engine = Engine::new();
        let builder = Builder {
            source,
            text,
            dir,
            engine: &engine,
            builtins,
            found: &found,
            role: None,
        };
        let mut plays = Vec::new();
        for p in raw {
            match &p.import {
                Some(name) => {
                    let location = builder.loc(p.key_pos("import_playbook"));
                    let imported = import(name, disk_dir(source, dir), &location, builtins)?;
                    // The import's tags go to every play it brings in.
                    plays.extend(imported.plays.into_iter().map(|mut play| {
                        play.tags.extend(p.tags.iter().cloned());
                        play
                    }));
                    let mut found = found.borrow_mut();
                    found.uses.extend(imported.uses);
                    found.defines.extend(imported.defines);
                    found.dynamic |= imported.dynamic;
                }
                None => plays.push(builder.play(p)?),
            }
        }
        let Found {
            uses,
            defines,
            dynamic,
            ..
        } = found.into_inner();
        Ok(Playbook {
            dir: dir.to_path_buf(),
            plays,
            builtins,
            uses,
            defines,
            dynamic,
        })
    }

    /// Refuse a variable that some task needs and nothing defines: not the
    /// inventory or any vars layer (`known`), not a play or task of any of
    /// `playbooks`, not a loop's `item` or a magic variable. Such a task
    /// could only fail, so this is said before any host is contacted.
    /// `candidates` are offered as "did you mean".
    pub(crate) fn check_names(
        playbooks: &[Playbook],
        known: &dyn Fn(&str) -> bool,
        candidates: &[String],
    ) -> Result<()> {
        let defined = |name: &str| {
            known(name)
                || ALWAYS_DEFINED.contains(&name)
                || crate::scope::MAGIC.contains(&name)
                || name.starts_with("ansible_")
                || playbooks.iter().any(|p| p.defines.contains(name))
        };
        if playbooks.iter().any(|p| p.dynamic) {
            return Ok(());
        }
        for name_use in playbooks.iter().flat_map(|p| &p.uses) {
            if let Some(name) = name_use.names.iter().find(|n| !defined(n)) {
                let all = candidates.iter().map(String::as_str).chain(
                    playbooks
                        .iter()
                        .flat_map(|p| p.defines.iter().map(String::as_str)),
                );
                let kind = InputKind::DefinedNowhere {
                    name: name.clone(),
                    within: name_use.within(name),
                    suggestion: closest(name, all).map(str::to_owned),
                };
                let mut location = name_use.location.clone();
                if name_use.text.is_none() {
                    location = locate_word(location, name);
                }
                return Err(InputError::new(location, kind).into());
            }
        }
        Ok(())
    }

    /// The steps of the task file `name`, read for an `include_tasks` at
    /// `from` when it runs: found as `import_tasks` finds its file, checked
    /// as any task is (its `notify` against `handler_names`).
    pub(crate) fn include(
        &self,
        engine: &Engine,
        name: &str,
        from: &Location,
        handler_names: &[&str],
        role: Option<Arc<Role>>,
    ) -> Result<Vec<Step>> {
        let found = RefCell::new(Found::default());
        let builder = Builder {
            source: &from.file,
            text: "",
            dir: &self.dir,
            engine,
            builtins: self.builtins,
            found: &found,
            role,
        };
        builder.with_task_file(name, from, "include_tasks", |inner, raws| {
            let mut out = Vec::new();
            for raw in raws {
                out.extend(inner.tasks(raw, handler_names, 1, false)?);
            }
            Ok(out)
        })
    }

    /// The steps and handlers of the role an `include_role` at `from` names
    /// when it runs, given `params` (its rendered `vars`): read as
    /// `import_role` reads one, its handlers checked and run as the play's.
    pub(crate) fn include_role(
        &self,
        engine: &Engine,
        role: &RoleRef,
        params: &Vars,
        from: &Location,
        handler_names: &[&str],
    ) -> Result<(Vec<Step>, Vec<Task>)> {
        let found = RefCell::new(Found::default());
        let builder = Builder {
            source: &from.file,
            text: "",
            dir: &self.dir,
            engine,
            builtins: self.builtins,
            found: &found,
            role: None,
        };
        let loaded = builder.load_role(role, params, from, handler_names, 1, false)?;
        Ok((loaded.steps, loaded.handlers))
    }

    /// The text of the built-in template `name`, if there is one.
    pub fn builtin_template(&self, name: &str) -> Option<&'static str> {
        self.builtins.template(name)
    }

    /// Find a task's `src:` file: absolute as given; relative, for a task
    /// of a role, in the role's `templates/` (for `template`) or `files/`
    /// (for `copy`) folder, then the role's directory; then in the
    /// playbook's directory and its such folder. `None` when no such file
    /// exists.
    pub fn resolve_src(&self, src: &str, kind: SrcKind, role: Option<&Path>) -> Option<PathBuf> {
        src_candidates(src, kind, &self.dir, role)
            .into_iter()
            .find(|p| p.exists())
    }
}

/// Where [`Playbook::resolve_src`] looks, in order.
fn src_candidates(src: &str, kind: SrcKind, dir: &Path, role: Option<&Path>) -> Vec<PathBuf> {
    let path = Path::new(src);
    if path.is_absolute() {
        return vec![path.to_path_buf()];
    }
    let folder = match kind {
        SrcKind::Template => "templates",
        SrcKind::File => "files",
    };
    let role = role
        .into_iter()
        .flat_map(|r| [r.join(folder).join(path), r.join(path)]);
    role.chain([dir.join(path), dir.join(folder).join(path)])
        .collect()
}

/// The playbook a command-line argument names: a path to an existing file;
/// else a built-in name, where a file `NAME.yml` in the current directory
/// overrides the built-in `NAME` (so a user can adapt `setup` by copying it).
pub fn resolve(arg: &str, builtins: Builtins) -> Result<Playbook> {
    resolve_in(arg, Path::new("."), builtins)
}

/// Whether [`resolve`] gives `arg`'s built-in playbook: a built-in name
/// that no file in the current directory (`ARG` or `ARG.yml`) takes the
/// place of.
pub fn resolves_to_builtin(arg: &str, builtins: Builtins) -> bool {
    builtins.playbook(arg).is_some()
        && !Path::new(arg).is_file()
        && !Path::new(&format!("{arg}.yml")).is_file()
}

/// [`resolve`] with `cwd` as the current directory.
fn resolve_in(arg: &str, cwd: &Path, builtins: Builtins) -> Result<Playbook> {
    // `./x.yml` reads better as `x.yml` in messages.
    let in_cwd = |name: &str| match cwd == Path::new(".") {
        true => PathBuf::from(name),
        false => cwd.join(name),
    };
    let path = in_cwd(arg);
    if path.is_file() {
        return Playbook::load_with(&path, builtins);
    }
    if let Some(text) = builtins.playbook(arg) {
        let local = in_cwd(&format!("{arg}.yml"));
        if local.is_file() {
            return Playbook::load_with(&local, builtins);
        }
        let dir = std::path::absolute(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        let source = format!("<builtin>/{arg}.yml");
        return Playbook::parse_with(Path::new(&source), &dir, text, builtins);
    }
    Err(Error::from(crate::error::UsageKind::NoPlaybook {
        name: arg.into(),
        suggestion: closest(arg, builtins.names.iter().copied()).map(str::to_owned),
        builtins: builtins.names.iter().map(|n| n.to_string()).collect(),
    }))
}

/// Where the imports of the playbook or task file `source` are looked for on
/// disk: beside it, or nowhere for a built-in one, whose import chain never
/// picks up a stray file in the current directory (a `pull.yml` there
/// overrides `arpanet run pull`, not the `pull` inside `bootstrap`).
fn disk_dir<'d>(source: &Path, dir: &'d Path) -> Option<&'d Path> {
    (!source.starts_with("<builtin>")).then_some(dir)
}

/// The plays of `import_playbook: NAME`: a file beside the importing
/// playbook (`dir`, if it is on disk), else a built-in (`setup.yml` or
/// `setup`).
fn import(
    name: &str,
    dir: Option<&Path>,
    location: &Location,
    builtins: Builtins,
) -> Result<Playbook> {
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
    let path = dir.map(|d| d.join(name)).filter(|p| p.is_file());
    let builtin_name = name.trim_end_matches(".yml").trim_end_matches(".yaml");
    DEPTH.set(DEPTH.get() + 1);
    let result = if let Some(path) = path {
        Playbook::load_with(&path, builtins)
    } else if let Some(text) = builtins.playbook(builtin_name) {
        let source = format!("<builtin>/{builtin_name}.yml");
        let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Playbook::parse_with(Path::new(&source), &dir, text, builtins)
    } else {
        let kind = InputKind::ImportNotFound {
            keyword: "import_playbook".into(),
            name: name.into(),
            looked: match dir {
                Some(dir) => format!(
                    "looked for `{}` and a built-in `{builtin_name}`",
                    dir.join(name).display()
                ),
                None => format!("looked for a built-in `{builtin_name}`"),
            },
        };
        Err(InputError::new(location.clone(), kind).into())
    };
    DEPTH.set(DEPTH.get() - 1);
    result
}

/// The text of `import_tasks: NAME`: beside the playbook, in its `tasks/`
/// folder (when `dir` is on disk), else a built-in task file.
fn task_file(
    name: &str,
    dir: Option<&Path>,
    location: &Location,
    builtins: Builtins,
    keyword: &str,
) -> Result<(PathBuf, String)> {
    let candidates = dir.map(|dir| [dir.join(name), dir.join("tasks").join(name)]);
    for path in candidates.into_iter().flatten() {
        if path.is_file() {
            let text = crate::error::read_input(&path)?;
            return Ok((path, text));
        }
    }
    match builtins.task_file(name) {
        Some(text) => Ok((
            PathBuf::from(format!("<builtin>/tasks/{name}")),
            text.to_owned(),
        )),
        None => {
            let kind = InputKind::ImportNotFound {
                keyword: keyword.into(),
                name: name.into(),
                looked: match dir {
                    Some(dir) => format!("looked in `{}` and its `tasks/` folder", dir.display()),
                    None => "looked among the built-in task files".into(),
                },
            };
            Err(InputError::new(location.clone(), kind).into())
        }
    }
}

/// The default task name: `MODULE: first argument`, on one line; under
/// `no_log` the argument, which may hold a secret, is left out.
pub(crate) fn default_name(module: &dyn Module, no_log: bool) -> String {
    if no_log {
        return format!("{}: {NO_LOG_PLACEHOLDER}", module.name());
    }
    let arg = module.summary();
    let first_line = arg.trim().lines().next().unwrap_or("").trim();
    format!("{}: {first_line}", module.name())
}

/// A parse error, located in `source`.
fn located(e: Located, source: &Path, text: &str) -> Error {
    yaml::input_error(source, text, e.pos, *e.kind)
}

/// Names that are always defined while a task runs, beside the scope's
/// magic variables (and `ansible_*`, which facts and connection settings
/// may set).
const ALWAYS_DEFINED: &[&str] = &[
    "item",
    "hostvars",
    "omit",
    "play_hosts",
    "playbook_dir",
    "role_path",
    "role_name",
    "loop",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
    "vars",
];

/// What the builder learns about variables while it walks the tasks.
#[derive(Default)]
struct Found {
    uses: Vec<NameUse>,
    defines: BTreeSet<String>,
    dynamic: bool,
    /// The current play's roles, in the order they load.
    roles: Vec<Arc<Role>>,
    /// Their handlers.
    handlers: Vec<Task>,
    /// Each role loaded in the current play, with its values, so a role
    /// runs once per play.
    seen: Vec<String>,
    /// While a play is built, `notify` targets are checked at its end,
    /// once its roles' handlers are known.
    deferred: Option<Vec<(String, Location)>>,
}

/// The location of the first `name` in a template file (else the file).
fn locate_word(location: Location, name: &str) -> Location {
    let Ok(text) = std::fs::read_to_string(&location.file) else {
        return location;
    };
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    for (index, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find(name).map(|i| i + from) {
            let before = line[..at].chars().next_back();
            let after = line[at + name.len()..].chars().next();
            if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                let column = line[..at].chars().count() + 1;
                return Location::new(&location.file, index + 1, column).with_source(&text);
            }
            from = at + name.len();
        }
    }
    location
}

/// Turns parsed plays into the model, checking templates and handlers.
struct Builder<'a> {
    source: &'a Path,
    text: &'a str,
    /// Where `import_tasks` files are looked up.
    dir: &'a Path,
    engine: &'a Engine,
    builtins: Builtins,
    found: &'a RefCell<Found>,
    /// The role whose tasks these are.
    role: Option<Arc<Role>>,
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

    fn play(&self, mut raw: RawPlay) -> Result<Play> {
        // `vars_files` rank above the play's `vars`, as in Ansible.
        for (names, pos) in std::mem::take(&mut raw.vars_files) {
            let loaded = self.vars_file(&names, pos)?;
            crate::vars::merge(&mut raw.vars, &loaded);
        }
        let mut vars_strings = Vec::new();
        raw.vars
            .values()
            .for_each(|v| json_strings(v, &mut vars_strings));
        self.check_strings(vars_strings, raw.key_pos("vars"))?;
        if let Some(name) = &raw.name {
            self.engine.check(name, &self.loc(raw.key_pos("name")))?;
        }
        if let Some(user) = &raw.remote_user {
            self.engine
                .check(user, &self.loc(raw.key_pos("remote_user")))?;
        }
        self.found
            .borrow_mut()
            .defines
            .extend(raw.vars.keys().cloned());
        {
            // A play's roles and their handlers are its own; `notify` is
            // checked once they are all known.
            let mut found = self.found.borrow_mut();
            found.roles.clear();
            found.handlers.clear();
            found.seen.clear();
            found.deferred = Some(Vec::new());
        }
        let mut handlers = Vec::new();
        for t in &raw.handlers {
            for step in self.tasks(t, &[], 0, false)? {
                match step {
                    Step::Task(task) => handlers.push(task),
                    Step::Block(b) => {
                        let kind = InputKind::Unsupported {
                            key: "block` in `handlers".into(),
                        };
                        return Err(InputError::new(b.location, kind).into());
                    }
                }
            }
        }
        let mut env_strings = Vec::new();
        raw.environment
            .values()
            .for_each(|v| json_strings(v, &mut env_strings));
        self.check_strings(env_strings, raw.key_pos("environment"))?;
        let section = |raws: &[RawTask]| -> Result<Vec<Step>> {
            let mut out = Vec::new();
            for t in raws {
                out.extend(self.tasks(t, &[], 0, true)?);
            }
            Ok(out)
        };
        let pre_tasks = section(&raw.pre_tasks)?;
        let mut tasks = section(&raw.roles)?;
        tasks.extend(section(&raw.tasks)?);
        let post_tasks = section(&raw.post_tasks)?;
        let (roles, role_handlers, deferred) = {
            let mut found = self.found.borrow_mut();
            let deferred = found.deferred.take().unwrap_or_default();
            (
                std::mem::take(&mut found.roles),
                std::mem::take(&mut found.handlers),
                deferred,
            )
        };
        handlers.extend(role_handlers);
        let handler_names: Vec<&str> = handlers.iter().flat_map(Task::names).collect();
        for (target, location) in deferred {
            check_notify(&[target], &handler_names, || location.clone())?;
        }
        let mut role_layers = crate::scope::RoleLayers::default();
        for role in &roles {
            role_layers.add(&role.layers);
        }
        // The play's become keywords under everything its tasks and blocks
        // say.
        let play = Inherit {
            escalate: raw.escalate.clone(),
            ..Inherit::default()
        };
        let mut pre_tasks = pre_tasks;
        let mut post_tasks = post_tasks;
        for list in [&mut pre_tasks, &mut tasks, &mut post_tasks] {
            list.iter_mut().for_each(|step| play.apply(step));
        }
        for task in &mut handlers {
            task.escalate = task.escalate.under(&raw.escalate);
        }
        Ok(Play {
            name: raw.name.clone().unwrap_or_else(|| raw.hosts.clone()),
            hosts: raw.hosts,
            serial: raw.serial,
            max_fail_percentage: raw.max_fail_percentage,
            any_errors_fatal: raw.any_errors_fatal,
            environment: raw.environment,
            vars: raw.vars,
            remote_user: raw.remote_user,
            local: raw.local,
            role_layers,
            tags: raw.tags,
            pre_tasks,
            tasks,
            post_tasks,
            handlers,
            location: self.loc(raw.pos),
        })
    }

    /// The first of `names` (a `vars_files` entry) found beside the
    /// playbook or in its `vars/` (or at its absolute path), read as a
    /// vars file.
    fn vars_file(&self, names: &[String], pos: Pos) -> Result<Vars> {
        for name in names {
            if crate::template::is_template(name) {
                let kind = InputKind::Invalid {
                    field: Some("vars_files".into()),
                    message: format!(
                        "`{name}` is a template: vars files are read as the playbook loads, \
                         before any variable has a value"
                    ),
                    hint: Some("name the file itself".into()),
                };
                return Err(InputError::new(self.loc(pos), kind).into());
            }
            // beside the playbook, then in its `vars/`, as Ansible looks
            for path in [self.dir.join(name), self.dir.join("vars").join(name)] {
                if path.is_file() {
                    return crate::vars::load_vars_file(&path);
                }
            }
        }
        let kind = InputKind::ImportNotFound {
            keyword: "vars_files".into(),
            name: names.join("`, `"),
            looked: format!("looked in `{}` and its `vars/`", self.dir.display()),
        };
        Err(InputError::new(self.loc(pos), kind).into())
    }

    /// The steps a raw entry stands for: itself, a block, or the tasks of
    /// the file it imports with its `when`, `tags` and `vars` added to each.
    ///
    /// The variables a task needs are noted when `needs` (tasks, not
    /// handlers, which may never be notified).
    fn tasks(
        &self,
        raw: &RawTask,
        handler_names: &[&str],
        depth: usize,
        needs: bool,
    ) -> Result<Vec<Step>> {
        {
            let mut found = self.found.borrow_mut();
            found.defines.extend(raw.vars.keys().cloned());
            found.defines.insert(raw.loop_control.loop_var.clone());
            found.defines.extend(raw.loop_control.index_var.clone());
        }
        if let Some(block) = &raw.block {
            return self.block(raw, block, handler_names, depth, needs);
        }
        if let Some(role) = &raw.role {
            return self.import_role(raw, role, handler_names, depth, needs);
        }
        let Some(name) = &raw.import else {
            self.check_notify(raw, handler_names)?;
            let task = self.task(raw)?;
            let mut found = self.found.borrow_mut();
            found.defines.extend(task.register.iter().cloned());
            found
                .defines
                .extend(task.module.defines().into_iter().map(str::to_owned));
            drop(found);
            if needs {
                self.note_needs(raw, &task)?;
            }
            self.check_include(raw, &task, handler_names, depth)?;
            return Ok(vec![Step::Task(task)]);
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
        // An import under `when` may never run: its tasks' needs are not
        // certain.
        let needs = needs && raw.when.is_empty();
        let inherit = Inherit::from(raw);
        self.with_task_file(name, &location, "import_tasks", |inner, raws| {
            let mut out = Vec::new();
            for r in raws {
                for mut step in inner.tasks(r, handler_names, depth + 1, needs)? {
                    inherit.apply(&mut step);
                    out.push(step);
                }
            }
            Ok(out)
        })
    }

    /// Read the task file `name` (for `keyword`, at `location`) and hand
    /// its raw tasks to `f` with a builder that locates errors in it.
    fn with_task_file<T>(
        &self,
        name: &str,
        location: &Location,
        keyword: &str,
        f: impl FnOnce(&Builder<'_>, &[RawTask]) -> Result<T>,
    ) -> Result<T> {
        let dir = match &self.role {
            Some(role) => Some(role.dir.as_path()),
            None => disk_dir(self.source, self.dir),
        };
        let (source, text) = task_file(name, dir, location, self.builtins, keyword)?;
        let raws = yaml::parse(&text)
            .map_err(|e| yaml::syntax_error(&source, &text, e))
            .and_then(|doc| {
                parse::tasks(doc.as_ref(), self.builtins.registry())
                    .map_err(|e| located(e, &source, &text))
            })?;
        let inner = Builder {
            source: &source,
            text: &text,
            dir: self.dir,
            engine: self.engine,
            builtins: self.builtins,
            found: self.found,
            role: self.role.clone(),
        };
        f(&inner, &raws)
    }

    /// A `block`: its three lists, each task given what the block sets.
    fn block(
        &self,
        raw: &RawTask,
        block: &RawBlock,
        handler_names: &[&str],
        depth: usize,
        needs: bool,
    ) -> Result<Vec<Step>> {
        self.check_shared(raw)?;
        // Under `when`, nothing in the block is certain to run; a rescue
        // runs only after a failure.
        let needs = needs && raw.when.is_empty();
        let inherit = Inherit::from(raw);
        let list = |raws: &[RawTask], needs: bool| -> Result<Vec<Step>> {
            let mut out = Vec::new();
            for r in raws {
                for mut step in self.tasks(r, handler_names, depth, needs)? {
                    inherit.apply(&mut step);
                    out.push(step);
                }
            }
            Ok(out)
        };
        Ok(vec![Step::Block(Block {
            body: list(&block.body, needs)?,
            rescue: list(&block.rescue, false)?,
            always: list(&block.always, needs)?,
            location: self.loc(raw.pos),
        })])
    }

    /// The keys a task and a block share, checked as templates.
    fn check_shared(&self, raw: &RawTask) -> Result<()> {
        if let Some(name) = &raw.name {
            self.engine.check(name, &self.loc(raw.key_pos("name")))?;
        }
        self.engine
            .check_condition(&raw.when, &self.loc(raw.key_pos("when")))?;
        for (key, map) in [("vars", &raw.vars), ("environment", &raw.environment)] {
            let mut strings = Vec::new();
            map.values().for_each(|v| json_strings(v, &mut strings));
            self.check_strings(strings, raw.key_pos(key))?;
        }
        if let Some(host) = &raw.delegate_to {
            self.engine
                .check(host, &self.loc(raw.key_pos("delegate_to")))?;
        }
        if let Some(user) = &raw.escalate.user {
            self.engine
                .check(user, &self.loc(raw.key_pos("become_user")))?;
        }
        Ok(())
    }

    /// An `include_tasks` whose file is named without a template is read
    /// now, so a missing or broken file is said before any host is
    /// contacted (and what it defines is known); a templated name makes
    /// the playbook's names unknowable until the run.
    /// A file that includes itself (under a `when` that ends it) is
    /// checked to a depth of 8.
    fn check_include(
        &self,
        raw: &RawTask,
        task: &Task,
        handler_names: &[&str],
        depth: usize,
    ) -> Result<()> {
        if let Some(include) = task.module.downcast::<IncludeRole>() {
            return self.check_include_role(raw, &include.role, handler_names, depth);
        }
        let Some(include) = task.module.downcast::<IncludeTasks>() else {
            return Ok(());
        };
        if crate::template::is_template(&include.file) {
            self.found.borrow_mut().dynamic = true;
            return Ok(());
        }
        if depth >= 8 {
            return Ok(());
        }
        let location = self.loc(raw.key_pos("module"));
        self.with_task_file(&include.file, &location, "include_tasks", |inner, raws| {
            raws.iter()
                .try_for_each(|r| inner.tasks(r, handler_names, depth + 1, false).map(drop))
        })
    }

    /// An `include_role` whose role is named without a template is loaded
    /// now, as when it runs, so a missing role or a broken file in it is
    /// said before any host is contacted. Its handlers and variables stay
    /// its own (they join the play only when it runs).
    fn check_include_role(
        &self,
        raw: &RawTask,
        role: &RoleRef,
        handler_names: &[&str],
        depth: usize,
    ) -> Result<()> {
        if crate::template::is_template(&role.name) {
            self.found.borrow_mut().dynamic = true;
            return Ok(());
        }
        let deferring = self.found.borrow().deferred.is_some();
        let own = RefCell::new(Found {
            deferred: deferring.then(Vec::new),
            ..Found::default()
        });
        let builder = Builder {
            found: &own,
            ..self.with_role(None)
        };
        let location = self.loc(raw.key_pos("module"));
        let loaded =
            builder.load_role(role, &raw.vars, &location, handler_names, depth + 1, false)?;
        let own = own.into_inner();
        let mut found = self.found.borrow_mut();
        found.uses.extend(own.uses);
        found.defines.extend(own.defines);
        found.dynamic |= own.dynamic;
        // The role's tasks may notify its own handlers, or the play's.
        let ours = |target: &String| {
            loaded
                .handlers
                .iter()
                .any(|h| h.names().any(|n| n == target))
        };
        if let Some(deferred) = &mut found.deferred {
            let theirs = own.deferred.into_iter().flatten();
            deferred.extend(theirs.filter(|(target, _)| !ours(target)));
        }
        Ok(())
    }

    /// Note the variables `task` needs for sure: those
    /// of its module's templates, loop and conditions, unless a condition
    /// may skip it (then only its first `when`), it ignores errors, or it is
    /// tagged `never`. A template file it renders is checked here too, when
    /// it is found.
    fn note_needs(&self, raw: &RawTask, task: &Task) -> Result<()> {
        let template_file = self.template_file(task)?;
        if task.ignore_errors || task.tags.iter().any(|t| t == "never") {
            return Ok(());
        }
        let mut strings: Vec<(&str, bool, &str)> = Vec::new();
        if let Some(first) = task.when.first() {
            strings.push((strip_braces(first), true, "when"));
        } else {
            strings.extend(
                task.module
                    .templates()
                    .into_iter()
                    .map(|s| (s, false, "module")),
            );
            let mut items = Vec::new();
            if let Some(loop_items) = &task.loop_items {
                json_strings(loop_items, &mut items);
            }
            strings.extend(items.into_iter().map(|s| (s, false, "loop")));
            for (key, cond) in [
                ("until", &task.until),
                ("changed_when", &task.changed_when),
                ("failed_when", &task.failed_when),
            ] {
                strings.extend(cond.iter().map(|c| (strip_braces(c), true, key)));
            }
        }
        let mut found = self.found.borrow_mut();
        for (source, expression, key) in strings {
            if !expression && !crate::template::is_template(source) {
                continue;
            }
            let Some(names) = self.engine.needed_names(source, expression) else {
                continue;
            };
            if names.is_empty() {
                continue;
            }
            found.uses.push(NameUse {
                names,
                location: self.loc(raw.key_pos(key)),
                text: Some(source.to_owned()),
            });
        }
        if let Some((path, text)) = template_file {
            if task.when.is_empty() {
                if let Some(names) = self.engine.needed_names(&text, false) {
                    found.uses.push(NameUse {
                        names,
                        location: Location::new(path, 0, 0),
                        text: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// The template file a task renders, when its `src` is no template and
    /// the file is found (as the task will look for it), checked to compile
    /// with known filters and tests.
    fn template_file(&self, task: &Task) -> Result<Option<(PathBuf, String)>> {
        let Some(src) = task.module.template_file() else {
            return Ok(None);
        };
        if crate::template::is_template(src) {
            return Ok(None);
        }
        let role = self.role.as_ref().map(|r| r.dir.as_path());
        let on_disk = src_candidates(src, SrcKind::Template, self.dir, role)
            .into_iter()
            .find(|p| p.is_file());
        let (path, text) = match on_disk {
            Some(path) => {
                let text = crate::error::read_input(&path)?;
                (path, text)
            }
            None => match self.builtins.template(src) {
                Some(text) => (Path::new("<builtin>/templates").join(src), text.to_owned()),
                None => return Ok(None),
            },
        };
        self.engine.check_file(&path.display().to_string(), &text)?;
        Ok(Some((path, text)))
    }

    fn check_notify(&self, raw_task: &RawTask, handler_names: &[&str]) -> Result<()> {
        let location = || self.loc(raw_task.key_pos("notify"));
        let mut found = self.found.borrow_mut();
        if let Some(deferred) = &mut found.deferred {
            let targets = raw_task.notify.iter();
            deferred.extend(targets.map(|t| (t.clone(), location())));
            return Ok(());
        }
        check_notify(&raw_task.notify, handler_names, location)
    }

    fn task(&self, raw: &RawTask) -> Result<Task> {
        self.check_shared(raw)?;
        if let Some(label) = &raw.loop_control.label {
            self.engine
                .check(label, &self.loc(raw.key_pos("loop_control")))?;
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
            ("until", &raw.until),
            ("changed_when", &raw.changed_when),
            ("failed_when", &raw.failed_when),
        ] {
            self.engine
                .check_condition(cond, &self.loc(raw.key_pos(key)))?;
        }
        let retries = raw.retries.or((!raw.until.is_empty()).then_some(3));
        let delay = raw.delay.or(retries.map(|_| 5.0));
        let name = raw
            .name
            .clone()
            .unwrap_or_else(|| default_name(module.as_ref(), raw.no_log));
        Ok(Task {
            // As Ansible shows a role's tasks.
            name: match &self.role {
                Some(role) => format!("{} : {name}", role.name),
                None => name,
            },
            module: module.clone(),
            when: raw.when.clone(),
            tags: raw.tags.clone(),
            notify: raw.notify.clone(),
            listen: raw.listen.clone(),
            register: raw.register.clone(),
            retries,
            delay,
            until: raw.until.clone(),
            timeout: raw.timeout,
            ignore_errors: raw.ignore_errors,
            run_once: raw.run_once,
            changed_when: raw.changed_when.clone(),
            failed_when: raw.failed_when.clone(),
            no_log: raw.no_log,
            vars: raw.vars.clone(),
            loop_items: raw.loop_items.clone(),
            loop_kind: raw.loop_kind,
            loop_control: raw.loop_control.clone(),
            check_mode: raw.check_mode,
            delegate_to: raw.delegate_to.clone(),
            environment: raw.environment.clone(),
            any_errors_fatal: raw.any_errors_fatal,
            escalate: raw.escalate.clone(),
            params: Vars::new(),
            role: self.role.clone(),
            location: self.loc(raw.pos),
        })
    }
}

/// Refuse a `notify` target that is not among `handler_names`.
fn check_notify(
    targets: &[String],
    handler_names: &[&str],
    location: impl Fn() -> Location,
) -> Result<()> {
    match targets
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
            Err(InputError::new(location(), kind).into())
        }
    }
}

/// What a block (or an `import_tasks`) hands down to each task in it, as
/// Ansible's keyword inheritance does: conditions and tags add up; vars and
/// environment fill in below the task's own; the rest apply where the task
/// sets nothing.
#[derive(Default)]
struct Inherit {
    when: Vec<String>,
    tags: Vec<String>,
    vars: Vars,
    environment: Vars,
    any_errors_fatal: bool,
    ignore_errors: bool,
    no_log: bool,
    delegate_to: Option<String>,
    check_mode: Option<bool>,
    escalate: Keywords,
}

impl From<&RawTask> for Inherit {
    fn from(raw: &RawTask) -> Self {
        Inherit {
            when: raw.when.clone(),
            tags: raw.tags.clone(),
            vars: raw.vars.clone(),
            environment: raw.environment.clone(),
            any_errors_fatal: raw.any_errors_fatal,
            ignore_errors: raw.ignore_errors,
            no_log: raw.no_log,
            delegate_to: raw.delegate_to.clone(),
            check_mode: raw.check_mode,
            escalate: raw.escalate.clone(),
        }
    }
}

impl Inherit {
    fn apply(&self, step: &mut Step) {
        match step {
            Step::Task(task) => self.apply_to_handler(task),
            Step::Block(b) => {
                for list in [&mut b.body, &mut b.rescue, &mut b.always] {
                    list.iter_mut().for_each(|s| self.apply(s));
                }
            }
        }
    }

    /// [`Inherit::apply`] for one task (a role's handler).
    fn apply_to_handler(&self, task: &mut Task) {
        task.when = self
            .when
            .iter()
            .cloned()
            .chain(task.when.drain(..))
            .collect();
        task.tags.extend(self.tags.iter().cloned());
        for (mine, theirs) in [
            (&mut task.vars, &self.vars),
            (&mut task.environment, &self.environment),
        ] {
            for (key, value) in theirs {
                mine.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        task.any_errors_fatal |= self.any_errors_fatal;
        task.ignore_errors |= self.ignore_errors;
        task.no_log |= self.no_log;
        if task.delegate_to.is_none() {
            task.delegate_to = self.delegate_to.clone();
        }
        task.check_mode = task.check_mode.or(self.check_mode);
        task.escalate = task.escalate.under(&self.escalate);
    }
}
