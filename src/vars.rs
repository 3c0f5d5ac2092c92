//! Variables and their precedence. Lowest first:
//!
//! 1. built-in defaults (`playbooks/vars/defaults.yml`, embedded),
//! 2. `~/.arpanetrc`,
//! 3. group `all` (`[all:vars]`, then `group_vars/all.yml`),
//! 4. the host's other groups, parents before children and, at the same
//!    depth, by name (Ansible's order); for each, `[g:vars]` then
//!    `group_vars/g.yml`,
//! 5. host vars (inline, then `host_vars/HOST.yml`),
//! 6. play vars,
//! 7. `-e` extra vars, in command-line order,
//! 8. magic vars, which cannot be overridden: `inventory_hostname`,
//!    `inventory_hostname_short`, `group_names` (sorted, without `all`) and
//!    `groups` (group → its hosts, inventory order).
//!
//! Merging replaces per top-level key (Ansible's default `hash_behaviour`).
//!
//! Old upper-case names: every key made only of `A-Z`, `0-9` and `_` with at
//! least one letter (`CONSUL_EXPECT`) is also set under its lower-case name
//! (`consul_expect`) in the same layer (each rc file, `-e` argument, vars
//! file, inventory line or section is its own layer), unless that layer sets
//! the lower-case name itself. So a later layer's `CONSUL_EXPECT` overrides
//! an earlier `consul_expect` and the other way round, as precedence says.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Location, Result};
use crate::inventory::{self, Inventory};

/// A set of variables; insertion-ordered JSON values.
pub type Vars = serde_json::Map<String, serde_json::Value>;

/// The embedded built-in defaults.
const DEFAULTS: &str = include_str!("../playbooks/vars/defaults.yml");

/// The layers that do not come from the inventory.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub defaults: Vars,
    pub rc: Vars,
    pub extra: Vars,
}

impl Layers {
    /// Built-in defaults, `rc_file` if it exists, and each `-e` argument.
    pub fn load(rc_file: Option<&Path>, extra_args: &[String]) -> Result<Self> {
        let rc = match rc_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => parse_rc(path, &text)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vars::new(),
                Err(e) => return Err(Error::io("read", path, e)),
            },
            None => Vars::new(),
        };
        let mut extra = Vars::new();
        for arg in extra_args {
            merge(&mut extra, &parse_extra(arg)?);
        }
        Ok(Layers {
            defaults: defaults()?,
            rc,
            extra,
        })
    }
}

/// The built-in defaults.
pub fn defaults() -> Result<Vars> {
    let vars: Option<Vars> = serde_norway::from_str(DEFAULTS).map_err(|e| {
        Error::Internal(format!(
            "embedded playbooks/vars/defaults.yml: {}",
            inventory::yaml_message(&e)
        ))
    })?;
    Ok(vars.unwrap_or_default())
}

/// Everything `host` sees, play vars included.
pub fn for_host(inventory: &Inventory, host: &str, layers: &Layers, play_vars: &Vars) -> Vars {
    let mut out = Vars::new();
    merge(&mut out, &layers.defaults);
    merge(&mut out, &layers.rc);

    let names = inventory.groups_of(host);
    if let Some(all) = inventory.group("all") {
        merge(&mut out, &all.vars);
    }
    let depths = inventory.group_depths();
    let mut groups: Vec<_> = names
        .iter()
        .filter(|n| *n != "all")
        .filter_map(|n| inventory.group(n))
        .collect();
    groups.sort_by_key(|g| (depths.get(g.name.as_str()).copied().unwrap_or(1), &g.name));
    for g in groups {
        merge(&mut out, &g.vars);
    }
    if let Some(h) = inventory.host(host) {
        merge(&mut out, &h.vars);
    }
    let mut play = play_vars.clone();
    add_aliases(&mut play);
    merge(&mut out, &play);
    merge(&mut out, &layers.extra);

    out.insert("inventory_hostname".into(), host.into());
    let short = host.split('.').next().unwrap_or(host);
    out.insert("inventory_hostname_short".into(), short.into());
    let mut group_names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "all")
        .collect();
    group_names.sort();
    out.insert("group_names".into(), group_names.into());
    let groups: Vars = inventory
        .groups
        .iter()
        .map(|g| (g.name.clone(), inventory.group_hosts(&g.name).into()))
        .collect();
    out.insert("groups".into(), groups.into());
    out
}

/// Set each key of `layer` in `into`, replacing whole values.
pub fn merge(into: &mut Vars, layer: &Vars) {
    for (k, v) in layer {
        into.insert(k.clone(), v.clone());
    }
}

/// Whether `key` is an old upper-case name (`CONSUL_EXPECT`).
fn is_upper_name(key: &str) -> bool {
    key.bytes().any(|b| b.is_ascii_uppercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Also expose every upper-case key under its lower-case name, unless
/// `vars` sets that name itself.
pub fn add_aliases(vars: &mut Vars) {
    let aliases: Vec<(String, Value)> = vars
        .iter()
        .filter(|(k, _)| is_upper_name(k))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !vars.contains_key(k))
        .collect();
    vars.extend(aliases);
}

/// Read a YAML (or JSON) vars file: a mapping, or empty. Upper-case names
/// get their aliases.
pub fn load_vars_file(path: &Path) -> Result<Vars> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    parse_vars_yaml(path, &text)
}

fn parse_vars_yaml(path: &Path, text: &str) -> Result<Vars> {
    let vars: Option<Vars> = serde_norway::from_str(text).map_err(|e| {
        inventory::yaml_error(path, text, &e)
            .with_hint("a vars file is a YAML mapping of names to values, like `consul_expect: 3`")
    })?;
    let mut vars = vars.unwrap_or_default();
    add_aliases(&mut vars);
    Ok(vars)
}

/// Parse `~/.arpanetrc`: `KEY=VALUE` lines, `#` comments, blank lines, an
/// optional `export `, values optionally in single or double quotes (a
/// ` #` after an unquoted value starts a comment). Values are strings; no
/// `$VAR` expansion.
pub fn parse_rc(path: &Path, text: &str) -> Result<Vars> {
    let mut out = Vars::new();
    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let err = |column: usize, msg: String| {
            Error::input(Location::new(path, lineno, column).with_source(text), msg)
                .with_hint("each line of the rc file is `KEY=VALUE`, e.g. `CONSUL_EXPECT=3`")
        };
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        let mut line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut column = indent + 1;
        if let Some(rest) = line.strip_prefix("export") {
            if rest.starts_with([' ', '\t']) {
                let rest_trimmed = rest.trim_start();
                column += line.chars().count() - rest_trimmed.chars().count();
                line = rest_trimmed;
            }
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(column, format!("expected `KEY=VALUE`, found `{line}`")));
        };
        if !valid_name(key) {
            return Err(err(column, format!("invalid variable name `{key}`")));
        }
        let value_column = column + key.chars().count() + 1;
        let value = rc_value(value).map_err(|(c, msg)| err(value_column + c - 1, msg))?;
        out.insert(key.to_owned(), Value::String(value));
    }
    add_aliases(&mut out);
    Ok(out)
}

/// A shell-like variable name.
fn valid_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One rc value; on error the 1-based column within `raw` and a message.
fn rc_value(raw: &str) -> std::result::Result<String, (usize, String)> {
    if raw.starts_with(['\'', '"']) {
        let words = inventory::words(raw)?;
        return match words.as_slice() {
            [] => Ok(String::new()),
            [one] => Ok(one.text.clone()),
            [_, extra, ..] => Err((
                extra.column,
                format!("unexpected `{}` after the quoted value", extra.text),
            )),
        };
    }
    let mut end = raw.len();
    let mut prev_space = false;
    for (i, c) in raw.char_indices() {
        if c == '#' && prev_space {
            end = i;
            break;
        }
        prev_space = c.is_whitespace();
    }
    Ok(raw[..end].trim().to_owned())
}

/// One `-e` argument: `@FILE` (YAML or JSON), an inline YAML/JSON mapping
/// (`{"a": 1}`), or `KEY=VALUE` pairs separated by spaces (values are
/// strings, quotes group).
pub fn parse_extra(arg: &str) -> Result<Vars> {
    let trimmed = arg.trim();
    if trimmed.is_empty() {
        return Ok(Vars::new());
    }
    if let Some(file) = trimmed.strip_prefix('@') {
        return load_vars_file(Path::new(file));
    }
    if trimmed.starts_with('{') {
        return parse_vars_yaml(Path::new("-e"), arg);
    }
    if trimmed.starts_with('[') {
        return Err(Error::usage(format!(
            "`-e {arg}`: extra vars must be a mapping, not a list"
        ))
        .with_hint("use `-e KEY=VALUE`, `-e '{\"key\": value}'` or `-e @vars.yml`"));
    }
    let bad = |msg: String| {
        Error::usage(format!("`-e {arg}`: {msg}"))
            .with_hint("use `-e KEY=VALUE`, `-e '{\"key\": value}'` or `-e @vars.yml`")
    };
    let words =
        inventory::words(arg).map_err(|(col, msg)| bad(format!("{msg} at column {col}")))?;
    let mut out = Vars::new();
    for w in words {
        let Some((key, value)) = w.text.split_once('=') else {
            return Err(bad(format!("expected `KEY=VALUE`, found `{}`", w.text)));
        };
        if !valid_name(key) {
            return Err(bad(format!("invalid variable name `{key}`")));
        }
        out.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    add_aliases(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
}
