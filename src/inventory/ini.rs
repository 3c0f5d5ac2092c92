//! The INI inventory dialect, as Ansible's `ini` plugin reads it.
//!
//! - `[group]` starts a list of host lines; hosts before any section are
//!   ungrouped. A host line is `NAME[:PORT] [key=value ...]`; `NAME` may hold
//!   ranges (`node[1:3]`, `node[01:10]`, `db-[a:c]`) and `:PORT` becomes
//!   `ansible_port`.
//! - `[group:vars]` holds `key=value` lines (the value is the rest of the
//!   line); `[group:children]` holds group names. Any other suffix is an
//!   error, as are `[g:vars]` for a group never declared and `[p:children]`
//!   naming a group that no `[g]` or `[g:children]` section declares (both
//!   Ansible errors).
//! - `#` and `;` start comment lines; in a host line a word starting with
//!   `#` ends the line, in a `:vars` value ` #` or ` ;` outside quotes does.
//! - Listing a host twice in one group, or setting a key twice in one host
//!   line or one vars section, is an error rather than a silent override.
//!
//! Values are typed the same way in host lines and `:vars` sections, a
//! predictable subset of Ansible's `literal_eval`:
//! - quoted (`'…'` or `"…"`, anywhere in the value) → a string, quotes
//!   removed: `port="22"` is the string `22`;
//! - `true`/`True`, `false`/`False` → booleans (Ansible keeps lower-case
//!   ones as strings, which templates then treat as truthy);
//! - decimal integers without leading zeros → numbers (`0755` stays a
//!   string, as in Ansible);
//! - `[…]` or `{…}` that is valid JSON → a list or mapping (unquoted
//!   brackets may contain spaces in host lines);
//! - everything else, decimals like `1.10` included → a string (Ansible
//!   would make `1.10` the float 1.1, which breaks version numbers).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::{expand_ranges, located, split_port, valid_group_name, Builder, ALL, UNGROUPED};
use crate::error::{InputKind, KeyValueIn, Result};
use crate::vars::{self, check_connection, words, Vars};

/// Type an INI value; see the module docs.
pub(crate) fn typed_value(text: &str, quoted: bool) -> Value {
    if quoted {
        return Value::String(text.to_owned());
    }
    match text {
        "true" | "True" => return Value::Bool(true),
        "false" | "False" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
    {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
    }
    if text.starts_with('[') || text.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return v;
        }
    }
    Value::String(text.to_owned())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Hosts,
    Vars,
    Children,
}

/// A group named before it was declared, to check at the end.
struct Pending {
    line: usize,
    column: usize,
    kind: InputKind,
}

pub(super) fn parse(b: &mut Builder, file: &Path, text: &str) -> Result<()> {
    let err = |line: usize, column: usize, kind: InputKind| located(file, text, line, column, kind);
    // Groups declared by `[g]` or `[g:children]`.
    let mut declared: HashSet<String> = HashSet::from(["all".to_owned(), "ungrouped".to_owned()]);
    let mut pending: Vec<(String, Pending)> = Vec::new();
    let mut kind = Kind::Hosts;
    let mut group = UNGROUPED;
    let mut section_line = 0;
    // Keys set in the current vars section, with their line.
    let mut section_keys: HashMap<String, usize> = HashMap::new();
    // (group, host) → line of first listing.
    let mut listed: HashMap<(usize, String), usize> = HashMap::new();

    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }

        if line.starts_with('[') {
            let Some(close) = line.find(']') else {
                return Err(err(lineno, indent + 1, InputKind::UnclosedSection));
            };
            let rest = line[close + 1..].trim();
            if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with(';') {
                return Err(err(
                    lineno,
                    indent + line[..close + 1].chars().count() + 1,
                    InputKind::AfterSectionHeader { text: rest.into() },
                ));
            }
            let inner = &line[1..close];
            let (name, suffix) = match inner.split_once(':') {
                Some((n, s)) => (n, Some(s)),
                None => (inner, None),
            };
            if !valid_group_name(name) {
                let kind = InputKind::BadGroupName { name: name.into() };
                return Err(err(lineno, indent + 2, kind));
            }
            kind = match suffix {
                None | Some("hosts") => Kind::Hosts,
                Some("vars") => Kind::Vars,
                Some("children") => Kind::Children,
                Some(other) => {
                    return Err(err(
                        lineno,
                        indent + name.chars().count() + 3,
                        InputKind::UnknownSectionType {
                            suffix: other.into(),
                            section: inner.into(),
                            group: name.into(),
                        },
                    ))
                }
            };
            group = b.group(name);
            section_line = lineno;
            section_keys.clear();
            if kind == Kind::Vars {
                if !declared.contains(name) {
                    pending.push((
                        name.to_owned(),
                        Pending {
                            line: lineno,
                            column: indent + 2,
                            kind: InputKind::VarsOfUndeclaredGroup { group: name.into() },
                        },
                    ));
                }
            } else {
                declared.insert(name.to_owned());
            }
            continue;
        }

        match kind {
            Kind::Hosts => {
                let words = words(raw).map_err(|(col, kind)| err(lineno, col, kind))?;
                let Some((first, rest)) = words.split_first() else {
                    continue;
                };
                if first.text.contains('=') {
                    let kind = InputKind::VariableNotHost {
                        variable: first.text.clone(),
                        group: b.groups[group].name.clone(),
                    };
                    return Err(err(lineno, first.column, kind));
                }
                let (entry, port) =
                    split_port(&first.text).map_err(|kind| err(lineno, first.column, kind))?;
                let names = expand_ranges(entry).map_err(|(kind, at)| {
                    err(lineno, first.column + entry[..at].chars().count(), kind)
                })?;
                if let Some(bad) = names
                    .iter()
                    .find(|n| n.is_empty() || n.contains([',', '=']))
                {
                    let kind = InputKind::BadHostName { name: bad.clone() };
                    return Err(err(lineno, first.column, kind));
                }
                let mut line_vars = Vars::new();
                if let Some(port) = port {
                    line_vars.insert("ansible_port".into(), port.into());
                }
                let mut seen: HashSet<&str> = HashSet::new();
                for w in rest {
                    let Some((key, value)) = w.text.split_once('=') else {
                        let kind = InputKind::NotKeyValue {
                            found: w.text.clone(),
                            within: KeyValueIn::HostLine,
                        };
                        return Err(err(lineno, w.column, kind));
                    };
                    if key.is_empty() || key.contains(char::is_whitespace) {
                        let kind = InputKind::BadVariableName {
                            name: key.into(),
                            within: KeyValueIn::HostLine,
                        };
                        return Err(err(lineno, w.column, kind));
                    }
                    if !seen.insert(key) {
                        let kind = InputKind::SetTwiceOnLine { key: key.into() };
                        return Err(err(lineno, w.column, kind));
                    }
                    let value = typed_value(value, w.quoted);
                    check_connection(key, &value).map_err(|kind| err(lineno, w.column, kind))?;
                    line_vars.insert(key.to_owned(), value);
                }
                vars::add_aliases(&mut line_vars);
                for name in names {
                    let key = (group, name.clone());
                    if let Some(first_line) = listed.get(&key) {
                        let kind = InputKind::HostListedTwice {
                            host: name,
                            group: b.groups[group].name.clone(),
                            line: *first_line,
                        };
                        return Err(err(lineno, first.column, kind));
                    }
                    listed.insert(key, lineno);
                    b.add_host(group, &name);
                    let h = b.host(&name);
                    vars::merge(&mut b.hosts[h].vars, &line_vars);
                }
            }
            Kind::Vars => {
                let Some((key, value)) = line.split_once('=') else {
                    let kind = InputKind::NotKeyValue {
                        found: line.into(),
                        within: KeyValueIn::VarsSection,
                    };
                    return Err(err(lineno, indent + 1, kind));
                };
                let key = key.trim();
                if key.is_empty() || key.contains(char::is_whitespace) {
                    let kind = InputKind::BadVariableName {
                        name: key.into(),
                        within: KeyValueIn::VarsSection,
                    };
                    return Err(err(lineno, indent + 1, kind));
                }
                if let Some(prev) = section_keys.insert(key.to_owned(), lineno) {
                    let kind = InputKind::SetTwiceInSection {
                        key: key.into(),
                        previous: prev,
                        section: section_line,
                    };
                    return Err(err(lineno, indent + 1, kind));
                }
                let value_column = indent + line[..line.len() - value.len()].chars().count() + 1;
                let value = vars_value(value)
                    .map_err(|(col, kind)| err(lineno, value_column + col - 1, kind))?;
                check_connection(key, &value).map_err(|kind| err(lineno, value_column, kind))?;
                let mut one = Vars::new();
                one.insert(key.to_owned(), value);
                vars::add_aliases(&mut one);
                vars::merge(&mut b.groups[group].vars, &one);
            }
            Kind::Children => {
                let words = words(raw).map_err(|(col, kind)| err(lineno, col, kind))?;
                let Some((child, rest)) = words.split_first() else {
                    continue;
                };
                if let Some(extra) = rest.first() {
                    let kind = InputKind::AfterChildGroup {
                        text: extra.text.clone(),
                    };
                    return Err(err(lineno, extra.column, kind));
                }
                if !valid_group_name(&child.text) {
                    let kind = InputKind::BadGroupName {
                        name: child.text.clone(),
                    };
                    return Err(err(lineno, child.column, kind));
                }
                if child.text == "all" {
                    let kind = InputKind::AllAsChild { parent: None };
                    return Err(err(lineno, child.column, kind));
                }
                if !declared.contains(&child.text) {
                    let parent = &b.groups[group].name;
                    pending.push((
                        child.text.clone(),
                        Pending {
                            line: lineno,
                            column: child.column,
                            kind: InputKind::UndefinedChildGroup {
                                parent: parent.clone(),
                                child: child.text.clone(),
                            },
                        },
                    ));
                }
                let c = b.group(&child.text);
                b.add_child(group, c)
                    .map_err(|kind| err(lineno, child.column, kind))?;
            }
        }
    }
    debug_assert_eq!(b.find_group("all"), Some(ALL));

    if let Some((_, p)) = pending
        .into_iter()
        .filter(|(name, _)| !declared.contains(name))
        .min_by_key(|(_, p)| p.line)
    {
        return Err(err(p.line, p.column, p.kind));
    }
    Ok(())
}

/// The value of a `:vars` line: the rest of the line, a ` #` comment
/// removed, one quoted string or a typed bare value. On error, the 1-based
/// column within `raw` and what is wrong.
fn vars_value(raw: &str) -> std::result::Result<Value, (usize, InputKind)> {
    let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
    let trimmed = raw.trim_start();
    if trimmed.starts_with('\'') || trimmed.starts_with('"') {
        let words = words(trimmed).map_err(|(c, m)| (c + lead, m))?;
        return match words.as_slice() {
            [] => Ok(Value::String(String::new())),
            [one] => Ok(Value::String(one.text.clone())),
            [_, extra, ..] => Err((
                extra.column + lead,
                InputKind::AfterQuotedValue {
                    extra: extra.text.clone(),
                },
            )),
        };
    }
    let mut end = trimmed.len();
    let mut prev_space = false;
    for (i, c) in trimmed.char_indices() {
        if (c == '#' || c == ';') && prev_space {
            end = i;
            break;
        }
        prev_space = c.is_whitespace();
    }
    Ok(typed_value(trimmed[..end].trim_end(), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_predictably() {
        assert_eq!(typed_value("22", false), json!(22));
        assert_eq!(typed_value("-3", false), json!(-3));
        assert_eq!(typed_value("22", true), json!("22"));
        assert_eq!(typed_value("0755", false), json!("0755"));
        assert_eq!(typed_value("1.10", false), json!("1.10"));
        assert_eq!(typed_value("true", false), json!(true));
        assert_eq!(typed_value("False", false), json!(false));
        assert_eq!(typed_value("yes", false), json!("yes"));
        assert_eq!(typed_value("[1, \"a\"]", false), json!([1, "a"]));
        assert_eq!(typed_value("{\"a\": 1}", false), json!({"a": 1}));
        assert_eq!(typed_value("[oops", false), json!("[oops"));
        assert_eq!(typed_value("", false), json!(""));
    }

    #[test]
    fn vars_values_take_the_rest_of_the_line() {
        assert_eq!(
            vars_value(" hello world # c").unwrap(),
            json!("hello world")
        );
        assert_eq!(vars_value(r#" "a # b" "#).unwrap(), json!("a # b"));
        assert_eq!(vars_value("8500").unwrap(), json!(8500));
        assert_eq!(vars_value("a#b").unwrap(), json!("a#b"));
        assert_eq!(vars_value(r#" "a" b"#).unwrap_err().0, 6);
    }
}
