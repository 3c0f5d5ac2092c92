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

use std::collections::HashSet;
use std::path::Path;

use base64::Engine as _;
use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{ErrorKind, UndefinedBehavior};

use crate::error::{Error, Location, Result};
use crate::suggest::closest;
use crate::vars::Vars;

pub struct Engine {
    env: minijinja::Environment<'static>,
}

impl Engine {
    pub fn new() -> Self {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // As Ansible's `template` module: a file's last newline is kept and a
        // newline after a block tag is dropped.
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        add_ansible_filters(&mut env);
        add_ansible_tests(&mut env);
        Engine { env }
    }

    /// Make `value` visible to every template as `name` (e.g. `hostvars`).
    pub fn set_global(&mut self, name: &'static str, value: &serde_json::Value) {
        self.env
            .add_global(name, minijinja::Value::from_serialize(value));
    }

    /// Render a template string; `origin` names where it came from for errors.
    pub fn render_str(&self, source: &str, vars: &Vars, origin: &Location) -> Result<String> {
        if !is_template(source) {
            return Ok(source.to_owned());
        }
        let tmpl = self
            .env
            .template_from_str(source)
            .map_err(|e| self.string_error(e, source, origin, None))?;
        tmpl.render(vars).map_err(|e| {
            let names = Undeclared {
                top: tmpl.undeclared_variables(false),
                nested: tmpl.undeclared_variables(true),
            };
            self.string_error(e, source, origin, Some((&names, vars)))
        })
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
        let expr = self
            .env
            .compile_expression(source)
            .map_err(|e| self.string_error(e, source, origin, None))?;
        let names = || Undeclared {
            top: expr.undeclared_variables(false),
            nested: expr.undeclared_variables(true),
        };
        let value = expr
            .eval(vars)
            .map_err(|e| self.string_error(e, source, origin, Some((&names(), vars))))?;
        if value.is_undefined() {
            let err = minijinja::Error::from(ErrorKind::UndefinedError);
            return Err(self.string_error(err, source, origin, Some((&names(), vars))));
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
        use serde_json::Value;
        Ok(match value {
            Value::String(s) if is_template(s) => match single_expression(s) {
                Some(expr) => {
                    let value = self.eval(expr, vars, origin)?;
                    serde_json::to_value(&value)
                        .unwrap_or_else(|_| Value::String(value.to_string()))
                }
                None => Value::String(self.render_str(s, vars, origin)?),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_json(v, vars, origin))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json(v, vars, origin)?)))
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
            .env
            .template_from_named_str(name, text)
            .map_err(|e| self.file_error(e, name, text, None))?;
        tmpl.render(vars).map_err(|e| {
            let names = Undeclared {
                top: tmpl.undeclared_variables(false),
                nested: tmpl.undeclared_variables(true),
            };
            self.file_error(e, name, text, Some((&names, vars)))
        })
    }

    /// Check that a template string compiles, without rendering it.
    pub fn check(&self, source: &str, origin: &Location) -> Result<()> {
        if !is_template(source) {
            return Ok(());
        }
        self.env
            .template_from_str(source)
            .map(drop)
            .map_err(|e| self.string_error(e, source, origin, None))
    }

    /// Check that each expression of a condition compiles.
    pub fn check_condition(&self, exprs: &[String], origin: &Location) -> Result<()> {
        for raw in exprs {
            let source = strip_braces(raw);
            self.env
                .compile_expression(source)
                .map(drop)
                .map_err(|e| self.string_error(e, source, origin, None))?;
        }
        Ok(())
    }

    /// An error in a string from a playbook: located at `origin`.
    fn string_error(
        &self,
        err: minijinja::Error,
        source: &str,
        origin: &Location,
        context: Option<(&Undeclared, &Vars)>,
    ) -> Error {
        let (mut message, hint) = self.describe(&err, context);
        if source.contains('\n') {
            if let Some(line) = err.line() {
                if let Some(text) = source.lines().nth(line.saturating_sub(1)) {
                    message.push_str(&format!(
                        " (line {line} of the template: `{}`)",
                        text.trim()
                    ));
                }
            }
        } else {
            message.push_str(&format!(" in `{source}`"));
        }
        let mut out = Error::input(origin.clone(), message);
        if let Some(hint) = hint {
            out = out.with_hint(hint);
        }
        out
    }

    /// An error in a template file: located at its own line and column.
    fn file_error(
        &self,
        err: minijinja::Error,
        name: &str,
        text: &str,
        context: Option<(&Undeclared, &Vars)>,
    ) -> Error {
        let (message, hint) = self.describe(&err, context);
        let (line, column) = match err.range() {
            Some(range) if range.start <= text.len() => line_column(text, range.start),
            _ => (err.line().unwrap_or(0), 0),
        };
        let location = Location::new(name, line, column).with_source(text);
        let mut out = Error::input(location, message);
        if let Some(hint) = hint {
            out = out.with_hint(hint);
        }
        out
    }

    /// What went wrong, in words, and a hint when a name is close to a
    /// defined one.
    fn describe(
        &self,
        err: &minijinja::Error,
        context: Option<(&Undeclared, &Vars)>,
    ) -> (String, Option<String>) {
        if err.kind() == ErrorKind::UndefinedError {
            if let Some((names, vars)) = context {
                if let Some(found) = self.find_undefined(names, vars) {
                    return found;
                }
            }
        }
        let mut message = err.kind().to_string();
        if let Some(detail) = err.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        (message, None)
    }

    /// The first variable or attribute the template uses that `vars` lacks.
    fn find_undefined(&self, names: &Undeclared, vars: &Vars) -> Option<(String, Option<String>)> {
        let globals: HashSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let mut top: Vec<&String> = names
            .top
            .iter()
            .filter(|n| !vars.contains_key(n.as_str()) && !globals.contains(n.as_str()))
            .collect();
        top.sort();
        if let Some(name) = top.first() {
            let hint = closest(name, vars.keys().map(String::as_str))
                .map(|c| format!("did you mean `{c}`?"));
            return Some((format!("undefined variable `{name}`"), hint));
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
                        let hint = closest(part, map.keys().map(String::as_str))
                            .map(|c| format!("did you mean `{walked}.{c}`?"));
                        return Some((format!("undefined attribute `{part}` of `{walked}`"), hint));
                    }
                }
                walked.push('.');
                walked.push_str(part);
            }
        }
        None
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
fn strip_braces(s: &str) -> &str {
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

fn add_ansible_filters(env: &mut minijinja::Environment<'static>) {
    env.add_filter("d", minijinja::filters::default);
    env.add_filter("bool", to_bool);
    env.add_filter("to_json", to_json);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_yaml);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("quote", quote);
    env.add_filter("mandatory", mandatory);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("ternary", ternary);
}

fn add_ansible_tests(env: &mut minijinja::Environment<'static>) {
    env.add_test("succeeded", |v: &Value| {
        result_flag(v, "failed").map(|f| !f)
    });
    env.add_test("success", |v: &Value| result_flag(v, "failed").map(|f| !f));
    env.add_test("failed", |v: &Value| result_flag(v, "failed"));
    env.add_test("failure", |v: &Value| result_flag(v, "failed"));
    env.add_test("changed", |v: &Value| result_flag(v, "changed"));
    env.add_test("skipped", |v: &Value| result_flag(v, "skipped"));
}

fn invalid(msg: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// `key` of a registered result (`failed`, `changed`, `skipped`); false when
/// the result lacks it.
fn result_flag(value: &Value, key: &str) -> Result<bool, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "the test needs a registered result, got an undefined value",
        ));
    }
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "the test needs a registered result (a mapping), got {}",
            value.kind()
        )));
    }
    let flag = value.get_attr(key)?;
    Ok(!flag.is_undefined() && flag.is_true())
}

/// Ansible's `bool` filter: booleans, the yes/no words of
/// [`crate::truth::parse_bool`] in any case, and the numbers 1 and 0;
/// anything else is false.
fn to_bool(value: &Value) -> bool {
    if value.is_undefined() || value.is_none() {
        return false;
    }
    serde_json::to_value(value)
        .ok()
        .and_then(|v| crate::truth::as_bool(&v))
        .unwrap_or(false)
}

fn to_json(value: &Value, _kwargs: Kwargs) -> Result<String, minijinja::Error> {
    serde_json::to_string(value).map_err(|e| invalid(format!("cannot convert to JSON: {e}")))
}

fn to_nice_json(value: &Value, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let indent = " ".repeat(indent.unwrap_or(4));
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut ser)
        .map_err(|e| invalid(format!("cannot convert to JSON: {e}")))?;
    kwargs.assert_all_used()?;
    String::from_utf8(out).map_err(|e| invalid(e.to_string()))
}

fn from_json(value: &str) -> Result<Value, minijinja::Error> {
    let parsed: serde_json::Value =
        serde_json::from_str(value).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    Ok(Value::from_serialize(&parsed))
}

fn to_yaml(value: &Value, _kwargs: Kwargs) -> Result<String, minijinja::Error> {
    serde_norway::to_string(value).map_err(|e| invalid(format!("cannot convert to YAML: {e}")))
}

fn b64encode(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

fn b64decode(value: &str) -> Result<String, minijinja::Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim().as_bytes())
        .map_err(|e| invalid(format!("invalid base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| invalid("base64 data is not UTF-8 text"))
}

fn quote(value: &Value) -> String {
    match value.as_str() {
        Some(s) => crate::transport::quote(s),
        None => crate::transport::quote(&value.to_string()),
    }
}

fn mandatory(value: Value, msg: Option<String>) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        let msg = msg.unwrap_or_else(|| "mandatory variable not defined".to_owned());
        Err(minijinja::Error::new(ErrorKind::UndefinedError, msg))
    } else {
        Ok(value)
    }
}

/// As Python's `os.path.basename`: the part after the last `/`.
fn basename(path: &str) -> String {
    path.rsplit_once('/')
        .map_or(path, |(_, base)| base)
        .to_owned()
}

/// As Python's `os.path.dirname`: the part before the last `/`.
fn dirname(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".to_owned(),
        Some((dir, _)) => dir.to_owned(),
        None => String::new(),
    }
}

fn ternary(
    value: &Value,
    if_true: Value,
    if_false: Value,
    rest: Rest<Value>,
) -> Result<Value, minijinja::Error> {
    if rest.len() > 1 {
        return Err(minijinja::Error::from(ErrorKind::TooManyArguments));
    }
    if value.is_none() {
        if let Some(if_none) = rest.first() {
            return Ok(if_none.clone());
        }
    }
    Ok(if value.is_true() { if_true } else { if_false })
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
    fn engine_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
    }
}
