//! The minijinja environment shared by templates, task arguments and
//! conditions: strict undefined, Ansible's common filters and tests, and
//! errors located in the file they came from.
//!
//! Where an error points:
//! - strings from a playbook (task arguments, conditions) point at the
//!   `origin` the caller gives (the task's first line); when the string spans
//!   several lines the message adds which line of the string is wrong;
//! - template files point at their own file, line and column, with the
//!   offending line shown.
//!
//! An undefined variable is named in the message (minijinja itself only says
//! "undefined value"), with a hint when a defined name is close to it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use minijinja::value::Value;
use minijinja::{machinery, ErrorKind, UndefinedBehavior};

use crate::error::{Error, InputError, InputKind, Location, Result, Within};
use crate::suggest::closest;
use crate::vars::Vars;

mod filters;
mod literals;
mod lookup;
mod methods;
mod regex;

/// What the name of a template string starts with, before its text: no
/// file or `include` name does.
const SOURCE_NAME: &str = "\0";

/// What `omit` renders to: an argument whose value renders to exactly this
/// is left out, as if not given (`mode: "{{ mode | default(omit) }}"`).
pub const OMIT: &str = "__omit_place_holder__arpanet";

/// `value` without what renders to [`OMIT`]: members of mappings and
/// items of lists, at any depth, as Ansible leaves them out.
pub fn strip_omitted(value: &mut serde_json::Value) {
    let omitted = |v: &serde_json::Value| v.as_str() == Some(OMIT);
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !omitted(v));
            map.values_mut().for_each(strip_omitted);
        }
        serde_json::Value::Array(items) => {
            items.retain(|v| !omitted(v));
            items.iter_mut().for_each(strip_omitted);
        }
        _ => {}
    }
}

/// How many instructions one render may run: far beyond any real template,
/// small enough that a runaway loop ends in seconds.
const MAX_FUEL: u64 = 20_000_000;

pub struct Engine {
    env: minijinja::Environment<'static>,
    facts: Facts,
    /// The names each template string reads (see [`Engine::names_read`]),
    /// worked out once per text.
    reads: std::sync::Mutex<HashMap<String, Option<Arc<[String]>>>>,
}

/// What tasks set on each host (`set_fact`, `register`), as `hostvars`
/// shows it to every host's templates: facts outlive plays, and a task on
/// one host reads what another host's task set before it.
#[derive(Debug, Default, Clone)]
struct Facts(Arc<std::sync::RwLock<std::collections::HashMap<String, Vars>>>);

impl Facts {
    fn get(&self, host: &str, key: &str) -> Option<Value> {
        let facts = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        facts.get(host)?.get(key).map(Value::from_serialize)
    }

    fn keys(&self, host: &str) -> Vec<String> {
        let facts = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        facts
            .get(host)
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The variables a render reads. Borrowed ones become one minijinja value
/// per render; shared ones are a minijinja object that converts a variable
/// only when the template reads it. A host has hundreds of variables and a
/// template reads a few: converting all of them for every templated
/// default, host and round was a fifth of a run's CPU before connecting.
#[derive(Clone, Copy)]
enum Root<'v> {
    Vars(&'v Vars),
    Shared(&'v Arc<Vars>),
}

impl Root<'_> {
    fn vars(&self) -> &Vars {
        match self {
            Root::Vars(vars) => vars,
            Root::Shared(vars) => vars,
        }
    }

    fn value(&self) -> Value {
        match self {
            Root::Vars(vars) => Value::from_serialize(vars),
            Root::Shared(vars) => Value::from_object(LazyVars {
                own: Arc::clone(vars),
                below: None,
                facts: None,
            }),
        }
    }
}

/// Variables as a minijinja object that converts a value only when a
/// template reads it (see [`Root::Shared`]): `own` over `below`, which, for
/// a host in `hostvars`, holds the values every host of the play has alike
/// (see `Scope::play`). Both are shared, never copied.
#[derive(Debug)]
struct LazyVars {
    own: Arc<Vars>,
    below: Option<Arc<Vars>>,
    /// For a host in `hostvars`: its facts, over `own`.
    facts: Option<(Facts, String)>,
}

impl minijinja::value::Object for LazyVars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        if let Some(fact) = self.facts.as_ref().and_then(|(f, host)| f.get(host, key)) {
            return Some(fact);
        }
        self.own
            .get(key)
            .or_else(|| self.below.as_ref()?.get(key))
            .map(Value::from_serialize)
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let below = self.below.iter().flat_map(|below| below.keys());
        let facts = match &self.facts {
            Some((f, host)) => f.keys(host),
            None => Vec::new(),
        };
        let mut keys: Vec<Value> = below
            .filter(|k| !self.own.contains_key(*k))
            .chain(self.own.keys())
            .filter(|k| !facts.contains(k))
            .map(|k| Value::from(k.as_str()))
            .collect();
        keys.extend(facts.iter().map(|k| Value::from(k.as_str())));
        minijinja::value::Enumerator::Values(keys)
    }
}

/// `hostvars`: every host's [`LazyVars`] by name.
#[derive(Debug)]
struct Hostvars(std::collections::BTreeMap<String, Value>);

impl minijinja::value::Object for Hostvars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(
            self.0.keys().map(|k| Value::from(k.as_str())).collect(),
        )
    }
}

/// How much a render error says: all of it for the operator, or only its
/// kind where the caller only needs to know that the render failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Errors {
    Explained,
    Bare,
}

impl Engine {
    pub fn new() -> Self {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // As Ansible: the last newline of a template goes, and what renders
        // gets back the newlines the template ended with where it has
        // fewer (see `trailing_newlines`); a newline after a block tag is
        // dropped.
        env.set_keep_trailing_newline(false);
        env.set_trim_blocks(true);
        // A template that loops without end (or nearly) fails instead of
        // hanging the run.
        env.set_fuel(Some(MAX_FUEL));
        // As Ansible 2.19: `{{ nothing }}` of a null prints nothing.
        env.set_formatter(|out, state, value| match value.is_none() {
            true => Ok(()),
            false => minijinja::escape_formatter(out, state, value),
        });
        env.add_global("omit", OMIT);
        filters::add(&mut env);
        lookup::add(&mut env);
        env.set_unknown_method_callback(methods::call);
        // Template strings are compiled once and kept by the environment,
        // under their own text (see `Engine::template`): a templated
        // default renders for every host, and compiling it each time was
        // an eighth of a run's CPU. No other name loads: an `include`
        // finds nothing, as without a loader.
        // (A template string is never escaped, whatever its text ends
        // with; a file's name picks its escaping, as minijinja's default.)
        env.set_auto_escape_callback(|name| match name.starts_with(SOURCE_NAME) {
            true => minijinja::AutoEscape::None,
            false => minijinja::default_auto_escape_callback(name),
        });
        env.set_loader(|name| match name.strip_prefix(SOURCE_NAME) {
            Some(source) => {
                too_deep(source, false)?;
                too_wide(source)?;
                Ok(Some(literals::raw(source, false).into_owned()))
            }
            None => Ok(None),
        });
        Engine {
            env,
            facts: Facts::default(),
            reads: Default::default(),
        }
    }

    /// The top-level names the template strings inside `value` read and do
    /// not set themselves (`groups`, `ansible_host` for `{{ ansible_host |
    /// default(groups.all[0]) }}`), or `None` when one does not compile.
    /// A name read only through another (`vars[name]`) is not seen.
    /// Each template string's names come as the one cached list, not a
    /// copy: this runs for every templated value of every host.
    pub(crate) fn names_read(&self, value: &serde_json::Value) -> Option<Vec<Arc<[String]>>> {
        let mut found = Vec::new();
        let mut strings = vec![value];
        while let Some(value) = strings.pop() {
            match value {
                serde_json::Value::String(s) if is_template(s) => {
                    found.push(self.reads_of(s)?);
                }
                serde_json::Value::Array(items) => strings.extend(items),
                serde_json::Value::Object(map) => strings.extend(map.values()),
                _ => {}
            }
        }
        Some(found)
    }

    /// [`Self::names_read`] of one template string, kept by its text.
    fn reads_of(&self, source: &str) -> Option<Arc<[String]>> {
        let mut reads = self
            .reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(names) = reads.get(source) {
            return names.clone();
        }
        // minijinja counts a name a tag assigns as set before it reads the
        // tag's own expression (`{% set b = b ~ '!' %}`): such a read is
        // not seen, so these give no names to be sure of.
        let assigns = source.match_indices("{%").any(|(at, _)| {
            let tag = source[at + 2..].trim_start_matches(['-', '+']).trim_start();
            ["set", "with", "macro", "call"].iter().any(|word| {
                tag.strip_prefix(word).is_some_and(|rest| {
                    !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        });
        if assigns {
            reads.insert(source.to_owned(), None);
            return None;
        }
        let names = match single_expression(source) {
            Some(expr) => self
                .expression(expr, true)
                .ok()
                .map(|e| e.undeclared_variables(false)),
            None => self
                .template(source)
                .ok()
                .map(|t| t.undeclared_variables(false)),
        };
        let names: Option<Arc<[String]>> = names.map(|n| n.into_iter().collect());
        reads.insert(source.to_owned(), names.clone());
        names
    }

    /// Compile a template string (see [`too_deep`]), or find it compiled.
    fn template(&self, source: &str) -> Result<minijinja::Template<'_, '_>, minijinja::Error> {
        self.env.get_template(&format!("{SOURCE_NAME}{source}"))
    }

    /// Compile the template text of file `name`.
    fn named<'s>(
        &'s self,
        name: &'s str,
        text: &'s str,
    ) -> Result<minijinja::Template<'s, 's>, minijinja::Error> {
        too_deep(text, false)?;
        too_wide(text)?;
        self.env.template_from_named_str(name, text)
    }

    /// Compile a bare expression: from a `{{ }}` of a playbook string when
    /// `raw` (its literals keep their backslashes, see `literals.rs`), else
    /// a condition's.
    fn expression<'s>(
        &'s self,
        source: &'s str,
        raw: bool,
    ) -> Result<minijinja::Expression<'s, 's>, minijinja::Error> {
        too_deep(source, true)?;
        too_wide(source)?;
        if !raw {
            return self.env.compile_expression(source);
        }
        match literals::raw(source, true) {
            std::borrow::Cow::Borrowed(source) => self.env.compile_expression(source),
            std::borrow::Cow::Owned(code) => self.env.compile_expression_owned(code),
        }
    }

    /// Make `value` visible to every template as `name` (e.g. `groups`).
    pub fn set_global(&mut self, name: &'static str, value: &impl serde::Serialize) {
        self.env
            .add_global(name, minijinja::Value::from_serialize(value));
    }

    /// Make `hostvars` show each host's variables, given as (name, the
    /// values every host has alike, the host's own values above them).
    /// Nothing is copied: a template converts what it reads.
    pub fn set_hostvars(
        &mut self,
        hosts: impl IntoIterator<Item = (String, Arc<Vars>, Arc<Vars>)>,
    ) {
        let hosts = hosts
            .into_iter()
            .map(|(name, common, own)| {
                let below = Some(common);
                let facts = Some((self.facts.clone(), name.clone()));
                (name, Value::from_object(LazyVars { own, below, facts }))
            })
            .collect();
        self.env
            .add_global("hostvars", Value::from_object(Hostvars(hosts)));
    }

    /// Record a fact (or registered result) of `host` for `hostvars`.
    pub fn record_fact(&self, host: &str, name: &str, value: &serde_json::Value) {
        let mut facts = self
            .facts
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        facts
            .entry(host.to_owned())
            .or_default()
            .insert(name.to_owned(), value.clone());
    }

    /// Render a template string; `origin` names where it came from for errors.
    pub fn render_str(&self, source: &str, vars: &Vars, origin: &Location) -> Result<String> {
        self.render_str_as(source, Root::Vars(vars), origin, Errors::Explained)
    }

    fn render_str_as(
        &self,
        source: &str,
        root: Root<'_>,
        origin: &Location,
        errors: Errors,
    ) -> Result<String> {
        if !is_template(source) {
            return Ok(source.to_owned());
        }
        let tmpl = self
            .template(source)
            .map_err(|e| self.string_error(e, source, origin, None))?;
        let rendered = tmpl.render(root.value()).map_err(|e| {
            if errors == Errors::Bare {
                return self.string_error(e, source, origin, None);
            }
            // The check names the filter or test and suggests a near one.
            if matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest) {
                if let Err(found) = self.check(source, origin) {
                    return found;
                }
            }
            let names = Undeclared {
                top: tmpl.undeclared_variables(false),
                nested: tmpl.undeclared_variables(true),
            };
            self.string_error(e, source, origin, Some((&names, root.vars())))
        })?;
        Ok(trailing_newlines(source, rendered))
    }

    /// Evaluate every expression of a condition; true when all are.
    ///
    /// Each item is a bare expression as in Ansible's `when:`; a `{{ }}`
    /// around it is tolerated and stripped. A result that is a yes/no word
    /// (`when: "{{ flag }}"` with `flag=no`) counts as that word says, by
    /// [`crate::truth`]; any other value by Jinja's truthiness.
    pub fn eval_condition(&self, exprs: &[String], vars: &Vars, origin: &Location) -> Result<bool> {
        for raw in exprs {
            let value = self.eval(strip_braces(raw), vars, origin)?;
            let yes = match value.as_str().and_then(crate::truth::parse_bool) {
                Some(word) => word,
                None => value.is_true(),
            };
            if !yes {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Evaluate one bare expression; undefined is an error.
    fn eval(&self, source: &str, vars: &Vars, origin: &Location) -> Result<minijinja::Value> {
        self.eval_as(source, false, Root::Vars(vars), origin, Errors::Explained)
    }

    fn eval_as(
        &self,
        source: &str,
        raw: bool,
        root: Root<'_>,
        origin: &Location,
        errors: Errors,
    ) -> Result<minijinja::Value> {
        let expr = self
            .expression(source, raw)
            .map_err(|e| self.string_error(e, source, origin, None))?;
        let fail = |e: minijinja::Error| match errors {
            Errors::Bare => self.string_error(e, source, origin, None),
            Errors::Explained => {
                let names = Undeclared {
                    top: expr.undeclared_variables(false),
                    nested: expr.undeclared_variables(true),
                };
                self.string_error(e, source, origin, Some((&names, root.vars())))
            }
        };
        let value = expr.eval(root.value()).map_err(fail)?;
        if value.is_undefined() {
            return Err(fail(minijinja::Error::from(ErrorKind::UndefinedError)));
        }
        Ok(value)
    }

    /// Render every string inside a JSON value. A string that is exactly one
    /// `{{ expr }}` keeps the expression's type (a list stays a list, a bool
    /// a bool), as in Ansible.
    pub fn render_json(
        &self,
        value: &serde_json::Value,
        vars: &Vars,
        origin: &Location,
    ) -> Result<serde_json::Value> {
        self.render_json_as(value, Root::Vars(vars), origin, Errors::Explained)
    }

    /// [`Self::render_json`] when only whether it renders matters: an error
    /// is not explained (no search for the undefined name, no suggestion),
    /// which costs more than the render itself.
    /// The variables are shared so that a render converts only those the
    /// template reads (see [`Root`]).
    pub(crate) fn try_render_json(
        &self,
        value: &serde_json::Value,
        vars: &Arc<Vars>,
        origin: &Location,
    ) -> Option<serde_json::Value> {
        self.render_json_as(value, Root::Shared(vars), origin, Errors::Bare)
            .ok()
    }

    fn render_json_as(
        &self,
        value: &serde_json::Value,
        root: Root<'_>,
        origin: &Location,
        errors: Errors,
    ) -> Result<serde_json::Value> {
        use serde_json::Value;
        Ok(match value {
            Value::String(s) if is_template(s) => match single_expression(s) {
                Some(expr) => {
                    let value = self.eval_as(expr, true, root, origin, errors)?;
                    serde_json::to_value(&value)
                        .unwrap_or_else(|_| Value::String(value.to_string()))
                }
                None => Value::String(self.render_str_as(s, root, origin, errors)?),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_json_as(v, root, origin, errors))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json_as(v, root, origin, errors)?)))
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Render a template file.
    pub fn render_file(&self, path: &Path, vars: &Vars) -> Result<String> {
        let text = crate::error::read_input(path)?;
        self.render_named(&path.display().to_string(), &text, vars)
    }

    /// Render template text that came from the file (or embedded name)
    /// `name`; errors point into `text` as that file.
    pub fn render_named(&self, name: &str, text: &str, vars: &Vars) -> Result<String> {
        let tmpl = self
            .named(name, text)
            .map_err(|e| self.file_error(e, name, text, None))?;
        let rendered = tmpl.render(vars).map_err(|e| {
            // The check names the filter or test and suggests a near one.
            if matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest) {
                if let Err(found) = self.check_file(name, text) {
                    return found;
                }
            }
            let names = Undeclared {
                top: tmpl.undeclared_variables(false),
                nested: tmpl.undeclared_variables(true),
            };
            self.file_error(e, name, text, Some((&names, vars)))
        })?;
        Ok(trailing_newlines(text, rendered))
    }

    /// Check that a template string compiles and that every filter and
    /// test it uses exists, without rendering it.
    pub fn check(&self, source: &str, origin: &Location) -> Result<()> {
        if !is_template(source) {
            return Ok(());
        }
        let tmpl = self
            .template(source)
            .map_err(|e| self.string_error(e, source, origin, None))?;
        let found = Inspection::of_template(&tmpl);
        self.check_callables(&found, |kind| (origin.clone(), kind), &|_| {
            within_string(source, None)
        })
    }

    /// Check that each expression of a condition compiles and that every
    /// filter and test it uses exists.
    pub fn check_condition(&self, exprs: &[String], origin: &Location) -> Result<()> {
        for raw in exprs {
            let source = strip_braces(raw);
            self.expression(source, false)
                .map(drop)
                .map_err(|e| self.string_error(e, source, origin, None))?;
            let found = Inspection::of_expression(source);
            self.check_callables(&found, |kind| (origin.clone(), kind), &|_| {
                within_string(source, None)
            })?;
        }
        Ok(())
    }

    /// Check a template file (`name` as it is shown, `text` its content):
    /// syntax, filters and tests, located in the file.
    pub fn check_file(&self, name: &str, text: &str) -> Result<()> {
        let tmpl = self
            .named(name, text)
            .map_err(|e| self.file_error(e, name, text, None))?;
        let found = Inspection::of_template(&tmpl);
        let locate = |kind| (Location::new(name, 0, 0), kind);
        self.check_callables(&found, locate, &|offset| {
            let (line, column) = line_column(text, offset);
            (
                Within::File,
                Some(Location::new(name, line, column).with_source(text)),
            )
        })
    }

    /// The variables a template string reads that it does not set itself,
    /// or `None` when it guards a name (`is defined`, `default`): then no
    /// name it reads is certain to be needed.
    pub fn needed_names(&self, source: &str, expression: bool) -> Option<Vec<String>> {
        let (found, names) = if expression {
            let expr = self.expression(source, false).ok()?;
            (
                Inspection::of_expression(source),
                expr.undeclared_variables(false),
            )
        } else {
            let tmpl = self.template(source).ok()?;
            (
                Inspection::of_template(&tmpl),
                tmpl.undeclared_variables(false),
            )
        };
        if found.guarded {
            return None;
        }
        let mut names: Vec<String> = names.into_iter().filter(|n| !self.is_global(n)).collect();
        names.sort();
        Some(names)
    }

    /// Whether `name` is a global of every template (`range`, `hostvars`).
    pub fn is_global(&self, name: &str) -> bool {
        self.env.globals().any(|(n, _)| n == name)
    }

    /// Refuse the first filter or test of `found` the environment lacks.
    fn check_callables(
        &self,
        found: &Inspection,
        locate: impl Fn(InputKind) -> (Location, InputKind),
        within: &dyn Fn(usize) -> (Within, Option<Location>),
    ) -> Result<()> {
        let state = self.env.empty_state();
        let none = [Value::from(())];
        for (name, offset) in &found.filters {
            let missing = matches!(state.apply_filter(name, &none), Err(e) if e.kind() == ErrorKind::UnknownFilter);
            if missing {
                let suggestion = self.closest_callable(name, KNOWN_FILTERS, true);
                let (within, at) = within(*offset);
                let kind = InputKind::UnknownFilter {
                    name: name.clone(),
                    within,
                    suggestion,
                };
                let (origin, kind) = locate(kind);
                return Err(InputError::new(at.unwrap_or(origin), kind).into());
            }
        }
        for (name, offset) in &found.tests {
            let missing = matches!(state.perform_test(name, &none), Err(e) if e.kind() == ErrorKind::UnknownTest);
            if missing {
                let suggestion = self.closest_callable(name, KNOWN_TESTS, false);
                let (within, at) = within(*offset);
                let kind = InputKind::UnknownTest {
                    name: name.clone(),
                    within,
                    suggestion,
                };
                let (origin, kind) = locate(kind);
                return Err(InputError::new(at.unwrap_or(origin), kind).into());
            }
        }
        Ok(())
    }

    /// The known filter (or test) closest to `name`.
    fn closest_callable(&self, name: &str, known: &[&'static str], filter: bool) -> Option<String> {
        let state = self.env.empty_state();
        let none = [Value::from(())];
        let exists = |n: &&str| match filter {
            true => {
                !matches!(state.apply_filter(n, &none), Err(e) if e.kind() == ErrorKind::UnknownFilter)
            }
            false => {
                !matches!(state.perform_test(n, &none), Err(e) if e.kind() == ErrorKind::UnknownTest)
            }
        };
        let present: Vec<&str> = known.iter().copied().filter(exists).collect();
        closest(name, present).map(str::to_owned)
    }

    /// An error in a string from a playbook: located at `origin`.
    fn string_error(
        &self,
        err: minijinja::Error,
        source: &str,
        origin: &Location,
        context: Option<(&Undeclared, &Vars)>,
    ) -> Error {
        let (within, _) = within_string(source, err.line());
        let kind = self.describe(&err, context, within);
        InputError::new(origin.clone(), kind).into()
    }

    /// An error in a template file: located at its own line and column.
    fn file_error(
        &self,
        err: minijinja::Error,
        name: &str,
        text: &str,
        context: Option<(&Undeclared, &Vars)>,
    ) -> Error {
        let kind = self.describe(&err, context, Within::File);
        let (line, column) = match err.range() {
            Some(range) if range.start <= text.len() => line_column(text, range.start),
            _ => (err.line().unwrap_or(0), 0),
        };
        let location = Location::new(name, line, column).with_source(text);
        InputError::new(location, kind).into()
    }

    /// What went wrong: the undefined name when it can be found, else
    /// minijinja's own words.
    fn describe(
        &self,
        err: &minijinja::Error,
        context: Option<(&Undeclared, &Vars)>,
        within: Within,
    ) -> InputKind {
        if err.kind() == ErrorKind::UndefinedError {
            if let Some((names, vars)) = context {
                if let Some(found) = self.find_undefined(names, vars, within.clone()) {
                    return found;
                }
            }
        }
        let mut problem = err.kind().to_string();
        if let Some(detail) = err.detail() {
            problem.push_str(": ");
            problem.push_str(detail);
        }
        InputKind::Template { problem, within }
    }

    /// The first variable or attribute the template uses that `vars` lacks.
    fn find_undefined(&self, names: &Undeclared, vars: &Vars, within: Within) -> Option<InputKind> {
        let globals: HashSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let mut top: Vec<&String> = names
            .top
            .iter()
            .filter(|n| !vars.contains_key(n.as_str()) && !globals.contains(n.as_str()))
            .collect();
        top.sort();
        if let Some(name) = top.first() {
            return Some(InputKind::UndefinedVariable {
                name: (*name).clone(),
                within,
                suggestion: closest(name, vars.keys().map(String::as_str)).map(str::to_owned),
            });
        }
        let mut nested: Vec<&String> = names.nested.iter().collect();
        nested.sort();
        for path in nested {
            let mut parts = path.split('.');
            let Some(first) = parts.next() else { continue };
            let mut current = match vars.get(first) {
                Some(value) => value,
                None => continue,
            };
            let mut walked = first.to_owned();
            for part in parts {
                let serde_json::Value::Object(map) = current else {
                    break;
                };
                match map.get(part) {
                    Some(next) => current = next,
                    None => {
                        return Some(InputKind::UndefinedAttribute {
                            attribute: part.to_owned(),
                            suggestion: closest(part, map.keys().map(String::as_str))
                                .map(str::to_owned),
                            of: walked,
                            within,
                        });
                    }
                }
                walked.push('.');
                walked.push_str(part);
            }
        }
        None
    }
}

/// The most `-` or `not` in a row an expression may hold.
const MAX_UNARY_RUN: usize = 64;

/// The longest line minijinja can locate: it counts columns in a `u16`
/// (and a debug build panics past it).
const MAX_LINE_CHARS: usize = u16::MAX as usize - 1;

/// Refuse a line longer than [`MAX_LINE_CHARS`].
fn too_wide(source: &str) -> Result<(), minijinja::Error> {
    if source.len() <= MAX_LINE_CHARS {
        return Ok(());
    }
    match source
        .lines()
        .position(|line| line.len() > MAX_LINE_CHARS && line.chars().count() > MAX_LINE_CHARS)
    {
        None => Ok(()),
        Some(index) => Err(minijinja::Error::new(
            ErrorKind::SyntaxError,
            format!(
                "line {} is longer than {MAX_LINE_CHARS} characters",
                index + 1
            ),
        )),
    }
}

/// Refuse a long run of unary `-` or `not` (`{{ - - - … x }}`): minijinja
/// parses those by unbounded recursion, and enough of them overflow the
/// stack. Its other constructs have their own limit.
fn too_deep(source: &str, in_expr: bool) -> Result<(), minijinja::Error> {
    if source.matches('-').count() + source.matches("not").count() <= MAX_UNARY_RUN {
        return Ok(());
    }
    let mut run = 0;
    for token in machinery::tokenize(source, in_expr, Default::default(), Default::default()) {
        let Ok((token, _)) = token else {
            // the compiler reports it
            return Ok(());
        };
        match token {
            machinery::Token::Minus | machinery::Token::Ident("not") => run += 1,
            _ => run = 0,
        }
        if run > MAX_UNARY_RUN {
            return Err(minijinja::Error::new(
                ErrorKind::SyntaxError,
                format!("more than {MAX_UNARY_RUN} `-` or `not` in a row"),
            ));
        }
    }
    Ok(())
}

/// Which text of a playbook string a problem is in: the string itself when
/// it is one line, else its line `line` (when known).
fn within_string(source: &str, line: Option<usize>) -> (Within, Option<Location>) {
    let within = match (source.contains('\n'), line) {
        (false, _) => Within::Inline(source.to_owned()),
        (true, Some(line)) => match source.lines().nth(line.saturating_sub(1)) {
            Some(text) => Within::Line {
                line,
                text: text.trim().to_owned(),
            },
            None => Within::Inline(source.trim().to_owned()),
        },
        (true, None) => Within::Inline(source.trim().to_owned()),
    };
    (within, None)
}

/// Filters and tests considered for "did you mean": minijinja's built-in
/// ones and Ansible's common ones (those this engine has are offered).
const KNOWN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "b64decode",
    "b64encode",
    "basename",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "dirname",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "from_json",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "mandatory",
    "max",
    "min",
    "pprint",
    "quote",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "ternary",
    "title",
    "to_json",
    "to_nice_json",
    "to_nice_yaml",
    "to_yaml",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "zip",
];
const KNOWN_TESTS: &[&str] = &[
    "boolean",
    "changed",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "failed",
    "failure",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "skipped",
    "startingwith",
    "string",
    "succeeded",
    "success",
    "test",
    "true",
    "undefined",
    "upper",
];

/// What a compiled template or expression applies: each filter and test
/// with the byte offset of its use (when known), and whether it guards a
/// name against being undefined.
#[derive(Default)]
struct Inspection {
    filters: Vec<(String, usize)>,
    tests: Vec<(String, usize)>,
    guarded: bool,
}

impl Inspection {
    fn of_template(tmpl: &minijinja::Template<'_, '_>) -> Self {
        let compiled = machinery::get_compiled_template(tmpl);
        let mut out = Inspection::default();
        out.add(&compiled.instructions);
        for block in compiled.blocks.values() {
            out.add(block);
        }
        out
    }

    /// An expression that already compiled (so parsing cannot fail here).
    fn of_expression(source: &str) -> Self {
        let mut out = Inspection::default();
        if let Ok(ast) = machinery::parse_expr(source) {
            let mut generator = machinery::CodeGenerator::new("<expression>", source);
            generator.compile_expr(&ast);
            out.add(&generator.finish().0);
        }
        out
    }

    fn add(&mut self, instructions: &machinery::Instructions<'_>) {
        for index in 0..instructions.len() {
            let offset = || {
                instructions
                    .get_span(index as u32)
                    .map_or(0, |span| span.start_offset as usize)
            };
            match instructions.get(index as u32) {
                Some(machinery::Instruction::ApplyFilter(name, ..)) => {
                    self.guarded |= matches!(*name, "default" | "d" | "mandatory");
                    self.filters.push(((*name).to_owned(), offset()));
                }
                Some(machinery::Instruction::PerformTest(name, ..)) => {
                    self.guarded |= matches!(*name, "defined" | "undefined");
                    self.tests.push(((*name).to_owned(), offset()));
                }
                _ => {}
            }
        }
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

struct Undeclared {
    top: HashSet<String>,
    nested: HashSet<String>,
}

/// Ansible's rule for a template's last newlines: `rendered` (made without
/// the template's last newline) gets newlines added until it ends with as
/// many as `source` does; one that ends with more keeps them.
fn trailing_newlines(source: &str, mut rendered: String) -> String {
    let count = |s: &str| s.len() - s.trim_end_matches('\n').len();
    let (wanted, has) = (count(source), count(&rendered));
    if wanted > has {
        rendered.extend(std::iter::repeat_n('\n', wanted - has));
    }
    rendered
}

/// Whether `s` contains template syntax at all; plain strings skip minijinja.
/// Whether a JSON value holds a template anywhere.
pub fn has_template(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => is_template(s),
        serde_json::Value::Array(items) => items.iter().any(has_template),
        serde_json::Value::Object(map) => map.values().any(has_template),
        _ => false,
    }
}

/// The expression of a string that is exactly one `{{ expr }}`.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}

pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// `{{ expr }}` → `expr`, as Ansible tolerates in `when:`.
pub(crate) fn strip_braces(s: &str) -> &str {
    let t = s.trim();
    match t.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
        Some(inner) if !inner.contains("{{") && !inner.contains("}}") => inner.trim(),
        _ => t,
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: serde_json::Value) -> Vars {
        match value {
            serde_json::Value::Object(map) => map,
            _ => panic!("vars must be an object"),
        }
    }

    fn origin() -> Location {
        Location::new("site.yml", 7, 5)
            .with_source("- hosts: all\n  tasks:\n\n\n\n\n    - command: echo {{ consul_expct }}\n")
    }

    fn render(source: &str, v: serde_json::Value) -> Result<String> {
        Engine::new().render_str(source, &vars(v), &origin())
    }

    #[test]
    fn omitted_values_leave_mappings_and_lists_at_any_depth() {
        let mut v = json!({"a": OMIT, "b": {"c": OMIT, "d": 1}, "e": [OMIT, "x", {"f": OMIT}]});
        strip_omitted(&mut v);
        assert_eq!(v, json!({"b": {"d": 1}, "e": ["x", {}]}));
    }

    #[test]
    fn a_compiled_string_renders_anew_unescaped_and_includes_nothing() {
        let engine = Engine::new();
        for (name, out) in [("h1", "\"h1\" & <b>.yml"), ("h2", "\"h2\" & <b>.yml")] {
            let v = vars(json!({"name": format!("\"{name}\" & <b>")}));
            assert_eq!(
                engine.render_str("{{ name }}.yml", &v, &origin()).unwrap(),
                out
            );
            assert_eq!(
                engine.render_str("{{ name }}.html", &v, &origin()).unwrap(),
                out.replace(".yml", ".html")
            );
        }
        let err = engine
            .render_str("{% include 'x.yml' %}", &Vars::new(), &origin())
            .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }

    #[test]
    fn plain_strings_pass_through() {
        assert_eq!(render("echo hi", json!({})).unwrap(), "echo hi");
    }

    #[test]
    fn renders_vars_and_keeps_trailing_newline() {
        let out = render("port={{ consul_port }}\n", json!({"consul_port": 8500})).unwrap();
        assert_eq!(out, "port=8500\n");
    }

    #[test]
    fn undefined_variable_is_named_with_a_close_match_hint() {
        let err = render("echo {{ consul_expct }}", json!({"consul_expect": 3})).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("site.yml:7:5: undefined variable `consul_expct`"),
            "{text}"
        );
        assert!(
            text.contains("7 |     - command: echo {{ consul_expct }}"),
            "{text}"
        );
        assert!(
            text.ends_with("hint: did you mean `consul_expect`?"),
            "{text}"
        );
    }

    #[test]
    fn undefined_attribute_is_named() {
        let v = json!({"result": {"stdout": "x", "rc": 0}});
        let text = render("{{ result.stdot }}", v).unwrap_err().to_string();
        assert!(
            text.contains("undefined attribute `stdot` of `result`"),
            "{text}"
        );
        assert!(text.contains("did you mean `result.stdout`?"), "{text}");
    }

    #[test]
    fn multi_line_string_error_names_the_line_within_it() {
        let text = render("a\nb {{ nope }}\n", json!({}))
            .unwrap_err()
            .to_string();
        assert!(text.contains("undefined variable `nope`"), "{text}");
        assert!(
            text.contains("line 2 of the template: `b {{ nope }}`"),
            "{text}"
        );
    }

    #[test]
    fn check_rejects_broken_syntax_at_the_origin() {
        let err = Engine::new().check("echo {{ foo", &origin()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("site.yml:7:5: syntax error"), "{text}");
        assert!(Engine::new().check("echo {{ foo }}", &origin()).is_ok());
        assert!(Engine::new().check("no template", &origin()).is_ok());
    }

    #[test]
    fn conditions_and_together_and_tolerate_braces() {
        let e = Engine::new();
        let v = vars(json!({"role": "server", "n": 3, "flag": "yes"}));
        let cond = |items: &[&str]| {
            let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            e.eval_condition(&items, &v, &origin())
        };
        assert!(cond(&["role == 'server'", "n > 2"]).unwrap());
        assert!(!cond(&["role == 'server'", "n > 3"]).unwrap());
        assert!(cond(&["{{ role == 'server' }}"]).unwrap());
        assert!(cond(&["flag | bool"]).unwrap());
        assert!(cond(&["true"]).unwrap());
        assert!(!cond(&["false"]).unwrap());
        assert!(cond(&[]).unwrap());
        assert!(cond(&["missing is not defined"]).unwrap());
        // a yes/no word as the result means what it says; other strings
        // are true when not empty, numbers when not zero
        let words = vars(json!({"no": "no", "off": "Off", "y": "y", "word": "maybe", "two": 2}));
        let by = |s: &str| {
            e.eval_condition(&[s.to_owned()], &words, &origin())
                .unwrap()
        };
        assert!(!by("no") && !by("off") && !by("'False'") && !by("'0'"));
        assert!(by("y") && by("word") && by("two") && by("'TRUE'"));
        let text = cond(&["rol == 'server'"]).unwrap_err().to_string();
        assert!(text.contains("undefined variable `rol`"), "{text}");
        assert!(text.contains("did you mean `role`?"), "{text}");
        let text = cond(&["rol"]).unwrap_err().to_string();
        assert!(text.contains("undefined variable `rol`"), "{text}");
        assert!(e.check_condition(&["a ==".into()], &origin()).is_err());
    }

    #[test]
    fn ansible_filters() {
        let v = json!({"s": "it's", "b64": "aGVsbG8=", "path": "/etc/default/docker",
                       "data": {"a": 1}, "json": "{\"x\": [1, 2]}", "empty": null});
        let r = |t: &str| render(t, v.clone()).unwrap();
        assert_eq!(r("{{ nope | default('x') }}"), "x");
        assert_eq!(r("{{ nope | d('y') }}"), "y");
        assert_eq!(
            r("{{ 'yes' | bool }}/{{ 'off' | bool }}/{{ 1 | bool }}"),
            "True/False/True"
        );
        assert_eq!(r("{{ '42' | int + 1 }}"), "43");
        assert_eq!(r("{{ '1.5' | float }}"), "1.5");
        assert_eq!(r("{{ 5 | string }}"), "5");
        assert_eq!(r("{{ data | to_json }}"), "{\"a\":1}");
        assert_eq!(r("{{ data | to_nice_json }}"), "{\n    \"a\": 1\n}");
        assert_eq!(r("{{ (json | from_json).x[1] }}"), "2");
        assert_eq!(r("{{ data | to_yaml }}"), "a: 1\n");
        assert_eq!(r("{{ 'hello' | b64encode }}"), "aGVsbG8=");
        assert_eq!(r("{{ b64 | b64decode }}"), "hello");
        assert_eq!(r("{{ s | quote }}"), r"'it'\''s'");
        assert_eq!(r("{{ ['a', 'b'] | join(',') }}"), "a,b");
        assert_eq!(r("{{ path | basename }}"), "docker");
        assert_eq!(r("{{ path | dirname }}"), "/etc/default");
        assert_eq!(r("{{ (1 > 0) | ternary('y', 'n') }}"), "y");
        assert_eq!(r("{{ (1 < 0) | ternary('y', 'n') }}"), "n");
        assert_eq!(r("{{ empty | ternary('y', 'n', 'none') }}"), "none");
        assert_eq!(r("{{ s | mandatory }}"), "it's");
        let text = render("{{ nope | mandatory }}", v.clone())
            .unwrap_err()
            .to_string();
        assert!(text.contains("nope"), "{text}");
    }

    #[test]
    fn result_tests() {
        let e = Engine::new();
        let v = vars(json!({
            "ok": {"rc": 0, "stdout": "", "stderr": "", "stdout_lines": [],
                   "changed": true, "failed": false, "skipped": false},
            "bad": {"rc": 1, "changed": false, "failed": true},
            "skip": {"changed": false, "skipped": true},
            "text": "x",
        }));
        let cond = |s: &str| e.eval_condition(&[s.to_owned()], &v, &origin());
        assert!(cond("ok is succeeded").unwrap());
        assert!(cond("ok is success").unwrap());
        assert!(cond("ok is changed").unwrap());
        assert!(cond("ok is not failed").unwrap());
        assert!(cond("bad is failed").unwrap());
        assert!(cond("bad is not succeeded").unwrap());
        assert!(cond("skip is skipped").unwrap());
        assert!(cond("ok is not skipped").unwrap());
        assert!(cond("nope is undefined").unwrap());
        let text = cond("text is failed").unwrap_err().to_string();
        assert!(text.contains("registered result"), "{text}");
    }

    #[test]
    fn file_errors_point_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.j2");
        std::fs::write(&path, "# header\nDOCKER_OPTS=\"-H {{ docker_sock }}\"\n").unwrap();
        let e = Engine::new();
        let v = vars(json!({"docker_socket": "unix:///var/run/docker.sock"}));
        let text = e.render_file(&path, &v).unwrap_err().to_string();
        let expected = format!("{}:2:", path.display());
        assert!(text.starts_with(&expected), "{text}");
        assert!(text.contains("undefined variable `docker_sock`"), "{text}");
        assert!(
            text.contains("2 | DOCKER_OPTS=\"-H {{ docker_sock }}\""),
            "{text}"
        );
        assert!(text.contains("did you mean `docker_socket`?"), "{text}");

        std::fs::write(&path, "ok\n{% if x %}\nno end\n").unwrap();
        let text = e.render_file(&path, &v).unwrap_err().to_string();
        assert!(text.contains("syntax error"), "{text}");

        let missing = dir.path().join("missing.j2");
        let err = e.render_file(&missing, &v).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn long_unary_runs_are_a_syntax_error_not_a_stack_overflow() {
        let deep = format!("{{{{ {}x }}}}", "- ".repeat(50_000));
        let text = Engine::new()
            .check(&deep, &origin())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("more than 64 `-` or `not` in a row"),
            "{text}"
        );
        let nots = format!("{}x", "not ".repeat(50_000));
        assert!(Engine::new().check_condition(&[nots], &origin()).is_err());
        let ok = format!("{{{{ {}x }}}} {}", "- ".repeat(10), "-".repeat(500));
        assert!(Engine::new().check(&ok, &origin()).is_ok());
    }

    #[test]
    fn a_line_past_minijinjas_column_counter_is_a_syntax_error_not_a_panic() {
        let wide = format!("x\n{{{{ {} }}}}", "a ~ ".repeat(20_000) + "a");
        let text = Engine::new()
            .check(&wide, &origin())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("line 2 is longer than 65534 characters"),
            "{text}"
        );
        let ok = format!("{{{{ {} }}}}", "a ~ ".repeat(1_000) + "a");
        assert!(Engine::new().check(&ok, &origin()).is_ok());
    }

    #[test]
    fn engine_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
    }
    const ANSIBLE_RENDERS: &[(&str, &str)] = &[
        (r#"'a.b.c'.split('.')"#, r#"["a", "b", "c"]"#),
        (r#"'  a  b c '.split()"#, r#"["a", "b", "c"]"#),
        (r#"'a b c d'.split(None, 1)"#, r#"["a", "b c d"]"#),
        (r#"'a.b.c'.rsplit('.', 1)"#, r#"["a.b", "c"]"#),
        (r#"'Hello World'.upper()"#, r#""HELLO WORLD""#),
        (r#"'Hello World'.lower()"#, r#""hello world""#),
        (r#"'hello world'.capitalize()"#, r#""Hello world""#),
        (r#"'hello wORLD-x'.title()"#, r#""Hello World-X""#),
        (r#"'xxhixx'.strip('x')"#, r#""hi""#),
        (r#"'  hi  '.lstrip()"#, r#""hi  ""#),
        (r#"'  hi  '.rstrip()"#, r#""  hi""#),
        (r#"'x.yml'.endswith('.yml')"#, r#"true"#),
        (r#"'aaa'.replace('a', 'b', 2)"#, r#""bba""#),
        (r#"'-'.join(['a', 'b'])"#, r#""a-b""#),
        (r#"'hello'.find('l')"#, r#"2"#),
        (r#"'hello'.rfind('l')"#, r#"3"#),
        (r#"'hello'.find('z')"#, r#"-1"#),
        (r#"'hello'.count('l')"#, r#"2"#),
        (r#"'123'.isdigit()"#, r#"true"#),
        (r#"'12a'.isdigit()"#, r#"false"#),
        (r#"'abc'.isalpha()"#, r#"true"#),
        (r#"'ABC'.isupper()"#, r#"true"#),
        (r#"'42'.zfill(5)"#, r#""00042""#),
        (r#"'-42'.zfill(5)"#, r#""-0042""#),
        (r#"'{}-{}'.format(1, 'a')"#, r#""1-a""#),
        (r#"'{1}{0}'.format('a', 'b')"#, r#""ba""#),
        (r#"'{name}!'.format(name='x')"#, r#""x!""#),
        (
            r#"{'a': 1, 'b': 2}.items() | list"#,
            r#"[["a", 1], ["b", 2]]"#,
        ),
        (r#"{'a': 1, 'b': 2}.keys() | list"#, r#"["a", "b"]"#),
        (r#"{'a': 1, 'b': 2}.values() | list"#, r#"[1, 2]"#),
        (r#"{'a': 1}.get('a')"#, r#"1"#),
        (r#"{'a': 1}.get('z', 5)"#, r#"5"#),
        (r#"{'a': 1}.get('z')"#, r#"null"#),
        (r#"[1, 2, 3, 2].index(2)"#, r#"1"#),
        (r#"[1, 2, 3, 2].count(2)"#, r#"2"#),
        (
            r#"{'a': 1, 'b': {'c': 1} } | combine({'b': {'d': 2} })"#,
            r#"{"a": 1, "b": {"d": 2}}"#,
        ),
        (
            r#"{'a': 1, 'b': {'c': 1} } | combine({'b': {'d': 2} }, recursive=true)"#,
            r#"{"a": 1, "b": {"c": 1, "d": 2}}"#,
        ),
        (
            r#"{'a': [1, 2]} | combine({'a': [2, 3]}, list_merge='append')"#,
            r#"{"a": [1, 2, 2, 3]}"#,
        ),
        (
            r#"{'a': [1, 2]} | combine({'a': [2, 3]}, list_merge='append_rp')"#,
            r#"{"a": [1, 2, 3]}"#,
        ),
        (
            r#"{'a': [1, 2]} | combine({'a': [2, 3]}, list_merge='prepend')"#,
            r#"{"a": [2, 3, 1, 2]}"#,
        ),
        (r#"[{'a': 1}, {'b': 2}] | combine"#, r#"{"a": 1, "b": 2}"#),
        (
            r#"{'a': 1, 'b': 2} | dict2items"#,
            r#"[{"key": "a", "value": 1}, {"key": "b", "value": 2}]"#,
        ),
        (
            r#"{'a': 1} | dict2items(key_name='k', value_name='v')"#,
            r#"[{"k": "a", "v": 1}]"#,
        ),
        (
            r#"[{'key': 'a', 'value': 1}, {'key': 'b', 'value': 2}] | items2dict"#,
            r#"{"a": 1, "b": 2}"#,
        ),
        (r#"[1, [2, [3, [4]]], none] | flatten"#, r#"[1, 2, 3, 4]"#),
        (r#"[1, [2, [3, [4]]]] | flatten(1)"#, r#"[1, 2, [3, [4]]]"#),
        (r#"[1, 2, 3, 2] | difference([2, 5])"#, r#"[1, 3]"#),
        (r#"[1, 2, 3, 2] | intersect([2, 3, 5])"#, r#"[2, 3]"#),
        (r#"[1, 2, 2] | union([3, 1])"#, r#"[1, 2, 3]"#),
        (r#"[1, 2] | symmetric_difference([2, 3])"#, r#"[1, 3]"#),
        (r#"'/a/b.tar.gz' | splitext"#, r#"["/a/b.tar", ".gz"]"#),
        (r#"'.bashrc' | splitext"#, r#"[".bashrc", ""]"#),
        (r#"'/a.b/c' | splitext"#, r#"["/a.b/c", ""]"#),
        (r#"['a', 'b', 'c'] | path_join"#, r#""a/b/c""#),
        (r#"['a', '/b', 'c'] | path_join"#, r#""/b/c""#),
        (r#"1 | type_debug"#, r#""int""#),
        (r#"1.5 | type_debug"#, r#""float""#),
        (r#"'x' | type_debug"#, r#""str""#),
        (r#"[1] | type_debug"#, r#""list""#),
        (r#"{'a': 1} | type_debug"#, r#""dict""#),
        (r#"none | type_debug"#, r#""NoneType""#),
        (r#"true | type_debug"#, r#""bool""#),
        (
            r#"'hello' | hash('sha256')"#,
            r#""2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824""#,
        ),
        (
            r#"'hello' | hash('md5')"#,
            r#""5d41402abc4b2a76b9719d911017c592""#,
        ),
        (
            r#"'hello' | hash"#,
            r#""aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d""#,
        ),
        (
            r#"'hello' | sha1"#,
            r#""aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d""#,
        ),
        (r#"'hello' | md5"#, r#""5d41402abc4b2a76b9719d911017c592""#),
        (
            r#"'hello' | checksum"#,
            r#""aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d""#,
        ),
        (r#"'aaa' | regex_replace('a', 'b', count=2)"#, r#""bba""#),
        (
            r#"'ABC' | regex_replace('b', 'x', ignorecase=true)"#,
            r#""AxC""#,
        ),
        (r#"'a.b*c' | regex_escape"#, r#""a\\.b\\*c""#),
        (r#"'abc' is match('b')"#, r#"false"#),
        (r#"'abc' is search('b')"#, r#"true"#),
        (r#"'abc' is match('ab')"#, r#"true"#),
        (r#"'ABC' is match('ab', ignorecase=true)"#, r#"true"#),
        (r#"'abc' is regex('^a.c$')"#, r#"true"#),
        (r#"'2.10' is version('2.9', '>')"#, r#"true"#),
        (r#"'2.10' is version('2.9', 'lt')"#, r#"false"#),
        (r#"'1.2.3' is version('1.2.3', '==')"#, r#"true"#),
        (r#"'1.2' is version('1.2.0', '<')"#, r#"true"#),
        (r#"'5.4.0-rc1' is version('5.4.0', '<')"#, r#"false"#),
        (r#"'7.2' is version_compare('7.10', '<')"#, r#"true"#),
        (r#"[1, 2] is subset([1, 2, 3])"#, r#"true"#),
        (r#"[1, 2, 3] is superset([3])"#, r#"true"#),
        (r#"[1, 2] is contains(2)"#, r#"true"#),
        (r#"'x' is truthy"#, r#"true"#),
        (r#"'x' is sequence"#, r#"true"#),
        (r#"'' is falsy"#, r#"true"#),
        (r#"'etc' is abs"#, r#"false"#),
        (
            r#"groups_list | map('extract', hv, 'ip') | list"#,
            r#"[1, 2]"#,
        ),
        (r#"'a' | extract({'a': {'b': [1, 2]} }, ['b', 1])"#, r#"2"#),
        (
            r#"'abc123def45' | regex_replace('\d+', 'N')"#,
            r#""abcNdefN""#,
        ),
        (
            r#"'abc123' | regex_replace('([a-z]+)(\d+)', '\2-\1')"#,
            r#""123-abc""#,
        ),
        (
            r#"'abc123' | regex_replace('(?P<w>[a-z]+)', '<\g<w>>')"#,
            r#""<abc>123""#,
        ),
        (
            r#"'cost $5' | regex_replace('\$(\d)', 'USD\1')"#,
            r#""cost USD5""#,
        ),
        (r#"'foo bar' | regex_replace('\bbar', 'X')"#, r#""foo X""#),
        (r#"'abc123def45' | regex_search('\d+')"#, r#""123""#),
        (r#"'abc' | regex_search('\d+')"#, r#"null"#),
        (
            r#"'key=val' | regex_search('(\w+)=(\w+)', '\2', '\1')"#,
            r#"["val", "key"]"#,
        ),
        (
            r#"'key=val' | regex_search('(?P<k>\w+)=', '\g<k>')"#,
            r#"["key"]"#,
        ),
        (
            r#"'a1b22c333' | regex_findall('\d+')"#,
            r#"["1", "22", "333"]"#,
        ),
        (
            r#"'k1=v1 k2=v2' | regex_findall('(\w+)=(\w+)')"#,
            r#"[["k1", "v1"], ["k2", "v2"]]"#,
        ),
        (r#"'a\nb' | length"#, r#"4"#),
        (r#"'x\by' | length"#, r#"4"#),
        (r#"'a: 1' | from_yaml"#, r#"{"a": 1}"#),
        (r#"'a\nb\n'.splitlines()"#, r#"["a\\nb\\n"]"#),
        (r#"'x y z'.rsplit(None, 1)"#, r#"["x y", "z"]"#),
        (r#"'a b '.split(None, 1)"#, r#"["a", "b "]"#),
        (r#"' a b'.rsplit(None, 1)"#, r#"[" a", "b"]"#),
        (r#"'a b c'.split(maxsplit=1)"#, r#"["a", "b c"]"#),
        (r#"[1, [2, [3]]] | flatten(levels=1)"#, r#"[1, 2, [3]]"#),
        (
            r#"['a', 'None', 'null', none, ''] | flatten"#,
            r#"["a", ""]"#,
        ),
        (
            r#"'1.0.0-rc.1' is version('1.0.0', '<', version_type='semver')"#,
            r#"true"#,
        ),
        (r#"'1.0.0-rc.1' is version('1.0.0', '<')"#, r#"false"#),
        (
            r#"'aaa' | regex_replace('a', 'b', count=1, mandatory_count=1)"#,
            r#""baa""#,
        ),
        (r#"8080 | regex_replace('80$', '81')"#, r#""8081""#),
        (r#"'abc' is contains('bc')"#, r#"true"#),
        (r#"'/etc' | path_join"#, r#""/etc""#),
        (r#"([{'key': 1, 'value': 'x'}] | items2dict)[1]"#, r#""x""#),
        (r#"'x: yes' | from_yaml"#, r#"{"x": true}"#),
        (r#"'a b' | regex_escape"#, r#""a\\ b""#),
        (r#"'{}-{}'.format(true, none)"#, r#""True-None""#),
        (r#"'it\'s' | length"#, r#"5"#),
    ];

    /// Each expression's value as ansible-core 2.19 renders it (`debug:
    /// msg=` of it, the template in single-quoted YAML, 2026-12-08).
    #[test]
    fn python_methods_filters_and_tests_render_as_ansible_does() {
        let engine = Engine::new();
        let v =
            vars(json!({"groups_list": ["h1", "h2"], "hv": {"h1": {"ip": 1}, "h2": {"ip": 2}}}));
        let mut wrong = Vec::new();
        for (expr, expected) in ANSIBLE_RENDERS {
            let expected: serde_json::Value = serde_json::from_str(expected).unwrap();
            let got = engine.render_json(&json!(format!("{{{{ {expr} }}}}")), &v, &origin());
            match got {
                Ok(got) if got == expected => {}
                other => wrong.push(format!("{expr}: {other:?}, Ansible: {expected}")),
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // On this machine, as Ansible's path tests.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let (d, f) = (dir.path().display(), file.display());
        for (expr, expected) in [
            (format!("'{f}' is file"), true),
            (format!("'{d}' is file"), false),
            (format!("'{d}' is directory"), true),
            (format!("'{d}/nothing' is exists"), false),
            (format!("'{f}' is exists"), true),
        ] {
            let got = engine.render_json(&json!(format!("{{{{ {expr} }}}}")), &v, &origin());
            assert_eq!(got.unwrap(), json!(expected), "{expr}");
        }
    }

    /// Ansible keeps Jinja's escapes outside the `{{ }}` of playbook
    /// strings: in conditions, `{% %}` statements and template files.
    #[test]
    fn conditions_statements_and_files_keep_jinjas_escapes() {
        let engine = Engine::new();
        let v = Vars::new();
        let when = [r"'a\nb' | length == 3".to_owned()];
        assert!(engine.eval_condition(&when, &v, &origin()).unwrap());
        let set = r"{% set s = 'a\tb' %}{{ s | length }} {{ 'a\tb' | length }}";
        assert_eq!(engine.render_str(set, &v, &origin()).unwrap(), "3 4");
        let file = r"{{ ['a', 'b'] | join('\n') }}|{{ 'a\tb' | length }}";
        assert_eq!(engine.render_named("t.j2", file, &v).unwrap(), "a\nb|3");
        let err = render(
            "{{ nothing is version('1.0', '<') }}",
            json!({"nothing": null}),
        );
        assert!(err.unwrap_err().to_string().contains("is not a version"));
    }

    /// As Ansible (a file ending in a variable that ends in a newline got
    /// one newline too many).
    #[test]
    fn a_template_ends_with_as_many_newlines_as_ansible_gives_it() {
        let engine = Engine::new();
        let v = vars(json!({"keys": "a\nb\n", "x": "x"}));
        for (text, out) in [
            ("# keys\n{{ keys }}\n", "# keys\na\nb\n"),
            ("{{ keys }}", "a\nb\n"),
            ("{{ x }}\n\n", "x\n\n"),
            ("{{ x }}", "x"),
            ("{% if true %}\n{{ x }}\n{% endif %}\n", "x\n"),
        ] {
            assert_eq!(
                engine.render_named("t.j2", text, &v).unwrap(),
                out,
                "{text:?}"
            );
            assert_eq!(
                engine.render_str(text, &v, &origin()).unwrap(),
                out,
                "{text:?}"
            );
        }
    }

    #[test]
    fn lookups_read_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("files")).unwrap();
        std::fs::write(dir.path().join("files/key.pub"), "ssh-ed25519 AAAA me\n\n").unwrap();
        let mut engine = Engine::new();
        engine.set_global("playbook_dir", &dir.path().display().to_string());
        let v = vars(json!({"which": "b", "a": 1, "b": [2]}));
        let eval = |expr: &str| {
            engine
                .render_json(&json!(format!("{{{{ {expr} }}}}")), &v, &origin())
                .map_err(|e| e.to_string())
        };
        let home = std::env::var("HOME").unwrap();
        assert_eq!(eval("lookup('env', 'HOME')").unwrap(), json!(home));
        assert_eq!(
            eval("lookup('ansible.builtin.env', 'HOME', 'ARPANET_NO_SUCH_VAR')").unwrap(),
            json!(format!("{home},"))
        );
        assert_eq!(
            eval("query('env', 'ARPANET_NO_SUCH_VAR', default='d')").unwrap(),
            json!(["d"])
        );
        assert_eq!(
            eval("lookup('file', 'key.pub')").unwrap(),
            json!("ssh-ed25519 AAAA me")
        );
        let absolute = dir.path().join("files/key.pub").display().to_string();
        assert_eq!(
            eval(&format!("q('file', '{absolute}')")).unwrap(),
            json!(["ssh-ed25519 AAAA me"])
        );
        let err = eval("lookup('file', 'nope.pub')").unwrap_err();
        assert!(err.contains("no file `nope.pub`"), "{err}");
        assert_eq!(
            eval("lookup('file', 'nope.pub', errors='ignore') | type_debug").unwrap(),
            json!("NoneType")
        );
        assert_eq!(
            eval("lookup('pipe', 'echo hi; echo there')").unwrap(),
            json!("hi\nthere")
        );
        // in the playbook's directory
        assert_eq!(
            eval("lookup('pipe', 'ls files')").unwrap(),
            json!("key.pub")
        );
        assert_eq!(
            eval("query('lines', 'printf \"x\\ny\"')").unwrap(),
            json!(["x", "y"])
        );
        let err = eval("lookup('pipe', 'exit 3')").unwrap_err();
        assert!(err.contains("`exit 3` failed"), "{err}");
        assert_eq!(eval("lookup('vars', which)").unwrap(), json!([2]));
        assert_eq!(
            eval("lookup('vars', 'a', wantlist=true)").unwrap(),
            json!([1])
        );
        assert_eq!(eval("query('items', [1, 2], 3)").unwrap(), json!([1, 2, 3]));
        let err = eval("lookup('password', '/tmp/x')").unwrap_err();
        assert!(
            err.contains("lookup plugin `password` is not one arpanet has"),
            "{err}"
        );
    }

    #[test]
    fn a_method_a_type_lacks_is_refused_by_name() {
        let err = render("{{ 'x'.nosuch() }}", json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("string has no method named nosuch"), "{err}");
        let err = render(
            "{{ x | combine({}, list_merge='merge') }}",
            json!({"x": {}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("list_merge is `merge`"), "{err}");
        let err = render("{{ 'a' | regex_search('(?=a)') }}", json!({}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the regular expression `(?=a)` is not valid here"),
            "{err}"
        );
    }
}
