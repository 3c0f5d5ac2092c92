//! Roles, as Ansible lays them out: a directory whose `tasks/`,
//! `handlers/`, `defaults/`, `vars/` and `meta/` hold `main.yml` (or
//! `main.yaml`, or `main`), and whose `templates/` and `files/` are searched
//! first by its tasks. A role named by `roles:` or `import_role` becomes,
//! when the playbook is built, the same shape as any task list: its
//! dependencies' steps, then its own, each task knowing its [`Role`] (for
//! its variables and its files); its handlers join the play's. Each role
//! runs once per play unless its values differ or it allows duplicates.
//! `include_role` loads a role the same way when it runs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::parse::{self, RawTask, RoleRef};
use super::{located, Builder, Inherit, Step, Task};
use crate::error::{InputError, InputKind, Location, Result};
use crate::scope::RoleLayers;
use crate::vars::{merge, Vars};
use crate::yaml;

/// The environment variable naming more role directories, `:`-separated.
pub(crate) const ROLES_PATH_ENV: &str = "ARPANET_ROLES_PATH";

/// One role as a play runs it.
#[derive(Debug)]
pub struct Role {
    /// Tells apart two loads of a role (another `include_role`, other
    /// values): the scope keeps each one's variables.
    pub(crate) id: usize,
    pub name: String,
    /// Its directory: `templates/` and `files/` are searched here first.
    pub dir: PathBuf,
    /// Its `defaults/` and `vars/`, its dependencies' under its own.
    pub(crate) layers: RoleLayers,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// What loading a role gives: its steps (its dependencies' first) and
/// handlers; both empty when the play already ran it with these values.
pub(super) struct Loaded {
    pub steps: Vec<Step>,
    pub handlers: Vec<Task>,
    pub role: Arc<Role>,
}

/// Where a role named `name` is looked for, in order: a path (a name with a
/// `/`) from the playbook's directory; else `roles/` beside the playbook,
/// each directory of `ARPANET_ROLES_PATH`, `ANSIBLE_ROLES_PATH` and the
/// project file's `roles_path`, and the playbook's directory itself, as
/// Ansible searches.
pub(super) fn candidates(name: &str, playbook_dir: &Path) -> Vec<PathBuf> {
    if name.contains('/') {
        return vec![playbook_dir.join(name)];
    }
    let mut dirs = vec![playbook_dir.join("roles")];
    for var in [ROLES_PATH_ENV, "ANSIBLE_ROLES_PATH"] {
        if let Some(value) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty()));
        }
    }
    dirs.extend(crate::project::roles_path().iter().cloned());
    dirs.push(playbook_dir.to_path_buf());
    dirs.into_iter().map(|d| d.join(name)).collect()
}

/// `folder/main.yml`, `main.yaml` or `main` (or `folder/FROM`, with those
/// endings tried too) in the role `dir`.
fn file_in(dir: &Path, folder: &str, from: Option<&str>) -> Option<PathBuf> {
    let base = dir.join(folder).join(from.unwrap_or("main"));
    let name = base.file_name()?.to_string_lossy().into_owned();
    [
        base.clone(),
        base.with_file_name(format!("{name}.yml")),
        base.with_file_name(format!("{name}.yaml")),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The variables of `folder` (`defaults` or `vars`): a mapping, or none.
fn vars_in(dir: &Path, folder: &str, from: Option<&str>, at: &Location) -> Result<Vars> {
    match file_in(dir, folder, from) {
        Some(path) => crate::vars::load_vars_file(&path),
        None if from.is_some() => Err(not_found(from.unwrap_or(""), folder, dir, at)),
        None => Ok(Vars::new()),
    }
}

fn not_found(from: &str, folder: &str, dir: &Path, at: &Location) -> crate::error::Error {
    let kind = InputKind::ImportNotFound {
        keyword: "include_tasks".into(),
        name: from.into(),
        looked: format!(
            "looked for `{from}`, `{from}.yml` and `{from}.yaml` in `{}`",
            dir.join(folder).display()
        ),
    };
    InputError::new(at.clone(), kind).into()
}

/// A role's `meta/main.yml`: its dependencies (entries as in `roles:`) and
/// whether it may run twice with the same values.
struct Meta {
    dependencies: Vec<RawTask>,
    allow_duplicates: bool,
    source: PathBuf,
    text: String,
}

fn meta(dir: &Path, builder: &Builder<'_>) -> Result<Option<Meta>> {
    let Some(path) = file_in(dir, "meta", None) else {
        return Ok(None);
    };
    let text = crate::error::read_input(&path)?;
    let doc = yaml::parse(&text).map_err(|e| yaml::syntax_error(&path, &text, e))?;
    let (dependencies, allow_duplicates) = parse::meta(doc.as_ref(), builder.builtins.registry())
        .map_err(|e| located(e, &path, &text))?;
    Ok(Some(Meta {
        dependencies,
        allow_duplicates,
        source: path,
        text,
    }))
}

impl Builder<'_> {
    /// The steps of `import_role` (or a `roles:` entry) `raw`, with what it
    /// sets handed down to each task.
    pub(super) fn import_role(
        &self,
        raw: &RawTask,
        role: &RoleRef,
        handler_names: &[&str],
        depth: usize,
        needs: bool,
    ) -> Result<Vec<Step>> {
        let location = self.loc(raw.key_pos("import_role"));
        self.engine
            .check_condition(&raw.when, &self.loc(raw.key_pos("when")))?;
        let needs = needs && raw.when.is_empty();
        let loaded = self.load_role(role, &raw.vars, &location, handler_names, depth, needs)?;
        let inherit = Inherit::from(raw);
        let mut steps = loaded.steps;
        steps.iter_mut().for_each(|s| inherit.apply(s));
        let mut found = self.found.borrow_mut();
        let mut handlers = loaded.handlers;
        handlers
            .iter_mut()
            .for_each(|h| inherit.apply_to_handler(h));
        found.handlers.extend(handlers);
        found.roles.push(loaded.role);
        Ok(steps)
    }

    /// Find and read the role `role` given `params` (its entry's `vars`):
    /// its dependencies first, then its handlers and tasks.
    pub(super) fn load_role(
        &self,
        role: &RoleRef,
        params: &Vars,
        location: &Location,
        handler_names: &[&str],
        depth: usize,
        needs: bool,
    ) -> Result<Loaded> {
        if depth >= 8 {
            let kind = InputKind::ImportCycle {
                keyword: "role".into(),
                name: role.name.clone(),
            };
            return Err(InputError::new(location.clone(), kind).into());
        }
        let looked = candidates(&role.name, self.dir);
        let Some(dir) = looked.iter().find(|d| d.is_dir()).cloned() else {
            let list: Vec<String> = looked
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect();
            let kind = InputKind::ImportNotFound {
                keyword: "role".into(),
                name: role.name.clone(),
                looked: format!(
                    "looked in {}; set `{ROLES_PATH_ENV}` to search more directories",
                    list.join(", ")
                ),
            };
            return Err(InputError::new(location.clone(), kind).into());
        };
        let meta = meta(&dir, self)?;
        let key = format!(
            "{}\u{0}{:?}\u{0}{}",
            dir.display(),
            role.tasks_from,
            serde_json::to_string(params).unwrap_or_default()
        );
        let again = self.found.borrow().seen.contains(&key);
        let allow = role.allow_duplicates || meta.as_ref().is_some_and(|m| m.allow_duplicates);
        self.found.borrow_mut().seen.push(key);

        let mut layers = RoleLayers::default();
        let mut steps = Vec::new();
        let mut handlers = Vec::new();
        if let Some(meta) = &meta {
            let inner = Builder {
                source: &meta.source,
                text: &meta.text,
                ..self.with_role(None)
            };
            for dep in &meta.dependencies {
                let dep_ref = dep.role.as_ref().expect("a dependency names a role");
                let at = inner.loc(dep.key_pos("import_role"));
                let loaded = inner.load_role(
                    dep_ref,
                    &dep.vars,
                    &at,
                    handler_names,
                    depth + 1,
                    needs && dep.when.is_empty(),
                )?;
                merge(&mut layers.defaults, &loaded.role.layers.defaults);
                merge(&mut layers.vars, &loaded.role.layers.vars);
                let inherit = Inherit::from(dep);
                for mut step in loaded.steps {
                    inherit.apply(&mut step);
                    steps.push(step);
                }
                for mut handler in loaded.handlers {
                    inherit.apply_to_handler(&mut handler);
                    handlers.push(handler);
                }
                self.found.borrow_mut().roles.push(loaded.role);
            }
        }
        merge(
            &mut layers.defaults,
            &vars_in(&dir, "defaults", role.defaults_from.as_deref(), location)?,
        );
        merge(
            &mut layers.vars,
            &vars_in(&dir, "vars", role.vars_from.as_deref(), location)?,
        );
        {
            let mut found = self.found.borrow_mut();
            found.defines.extend(layers.defaults.keys().cloned());
            found.defines.extend(layers.vars.keys().cloned());
        }
        let name = dir
            .file_name()
            .map_or_else(|| role.name.clone(), |n| n.to_string_lossy().into_owned());
        let this = Arc::new(Role {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name,
            dir: dir.clone(),
            layers,
        });
        if again && !allow {
            return Ok(Loaded {
                steps: Vec::new(),
                handlers: Vec::new(),
                role: this,
            });
        }
        let inner = self.with_role(Some(this.clone()));
        // The role's handlers first, so its tasks may notify them.
        let mut own_handlers = Vec::new();
        if let Some(path) = file_in(&dir, "handlers", role.handlers_from.as_deref()) {
            inner.read_tasks(&path, |builder, raws| {
                let names: Vec<String> = raws.iter().filter_map(|r| r.name.clone()).collect();
                let all: Vec<&str> = handler_names
                    .iter()
                    .copied()
                    .chain(names.iter().map(String::as_str))
                    .collect();
                for raw in raws {
                    for step in builder.tasks(raw, &all, depth + 1, false)? {
                        match step {
                            Step::Task(task) => own_handlers.push(task),
                            Step::Block(b) => {
                                let kind = InputKind::Unsupported {
                                    key: "block` in `handlers".into(),
                                };
                                return Err(InputError::new(b.location, kind).into());
                            }
                        }
                    }
                }
                Ok(())
            })?;
        } else if let Some(from) = &role.handlers_from {
            return Err(not_found(from, "handlers", &dir, location));
        }
        let names: Vec<&str> = handler_names
            .iter()
            .copied()
            .chain(handlers.iter().flat_map(Task::names))
            .chain(own_handlers.iter().flat_map(Task::names))
            .collect();
        if let Some(path) = file_in(&dir, "tasks", role.tasks_from.as_deref()) {
            inner.read_tasks(&path, |builder, raws| {
                for raw in raws {
                    steps.extend(builder.tasks(raw, &names, depth + 1, needs)?);
                }
                Ok(())
            })?;
        } else if let Some(from) = &role.tasks_from {
            return Err(not_found(from, "tasks", &dir, location));
        }
        handlers.extend(own_handlers);
        Ok(Loaded {
            steps,
            handlers,
            role: this,
        })
    }

    /// This builder for the tasks of `role` (or of no role).
    pub(super) fn with_role(&self, role: Option<Arc<Role>>) -> Builder<'_> {
        Builder {
            source: self.source,
            text: self.text,
            dir: self.dir,
            engine: self.engine,
            builtins: self.builtins,
            found: self.found,
            role,
        }
    }

    /// Parse the task file at `path` and hand its raw tasks to `f` with a
    /// builder that locates errors in it.
    fn read_tasks(
        &self,
        path: &Path,
        f: impl FnOnce(&Builder<'_>, &[RawTask]) -> Result<()>,
    ) -> Result<()> {
        let text = crate::error::read_input(path)?;
        let raws = yaml::parse(&text)
            .map_err(|e| yaml::syntax_error(path, &text, e))
            .and_then(|doc| {
                parse::tasks(doc.as_ref(), self.builtins.registry())
                    .map_err(|e| located(e, path, &text))
            })?;
        let inner = Builder {
            source: path,
            text: &text,
            ..self.with_role(self.role.clone())
        };
        f(&inner, &raws)
    }
}
