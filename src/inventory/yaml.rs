//! The YAML inventory format, as Ansible's `yaml` plugin reads it:
//!
//! ```yaml
//! all:
//!   vars: {ansible_user: root}
//!   hosts:
//!     node1: {arpanet_ip: 10.0.0.1}
//!     node[2:3]:
//!   children:
//!     servers:
//!       hosts: {node1: , node2: }
//! ```
//!
//! Top-level keys are groups (usually just `all`); a group has only `hosts`,
//! `vars` and `children` (anything else is an error where Ansible merely
//! warns); a host's value is its vars or empty. Host names take ranges and
//! `:PORT` as in INI. A group or host may appear in several places; its
//! entries are merged. Duplicate keys in one mapping are errors.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::{expand_ranges, located, split_port, valid_group_name, Builder};
use crate::error::Result;
use crate::vars::{self, yaml_error, Vars};

/// A mapping whose entries keep their order; a repeated key is an error.
struct Entries<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    let value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_any(EntriesVisitor(PhantomData))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlGroup {
    #[serde(default)]
    hosts: Option<Entries<Option<Vars>>>,
    #[serde(default)]
    vars: Option<Vars>,
    #[serde(default)]
    children: Option<Entries<Option<YamlGroup>>>,
}

pub(super) fn parse(b: &mut Builder, file: &Path, text: &str) -> Result<()> {
    let root: Option<Entries<Option<YamlGroup>>> =
        serde_norway::from_str(text).map_err(|e| yaml_error(file, text, &e))?;
    for (name, group) in root.map(|r| r.0).unwrap_or_default() {
        add_group(b, file, text, &name, group, None)?;
    }
    Ok(())
}

fn add_group(
    b: &mut Builder,
    file: &Path,
    text: &str,
    name: &str,
    group: Option<YamlGroup>,
    parent: Option<usize>,
) -> Result<()> {
    let at = |key: &str, msg: String| {
        let (line, column) = find_key(text, key);
        located(file, text, line, column, msg)
    };
    if !valid_group_name(name) {
        return Err(at(name, format!("invalid group name `{name}`"))
            .with_hint("group names cannot contain spaces or any of `:,[]=!&~*?'\"#;`"));
    }
    let gi = b.group(name);
    if let Some(p) = parent {
        b.add_child(p, gi).map_err(|msg| at(name, msg))?;
    }
    let Some(group) = group else {
        return Ok(());
    };
    if let Some(mut v) = group.vars {
        vars::add_aliases(&mut v);
        vars::merge(&mut b.groups[gi].vars, &v);
    }
    for (entry, host_vars) in group.hosts.map(|h| h.0).unwrap_or_default() {
        let (base, port) = split_port(&entry);
        let names = expand_ranges(base).map_err(|(msg, _)| at(&entry, msg))?;
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || n.contains([',', '=']))
        {
            return Err(at(&entry, format!("invalid host name `{bad}`")));
        }
        let mut v = Vars::new();
        if let Some(port) = port {
            v.insert("ansible_port".into(), port.into());
        }
        if let Some(mut hv) = host_vars {
            vars::add_aliases(&mut hv);
            vars::merge(&mut v, &hv);
        }
        for n in names {
            b.add_host(gi, &n);
            let h = b.host(&n);
            vars::merge(&mut b.hosts[h].vars, &v);
        }
    }
    for (child, sub) in group.children.map(|c| c.0).unwrap_or_default() {
        add_group(b, file, text, &child, sub, Some(gi))?;
    }
    Ok(())
}

/// The line and column of the first mapping key `key` in `text`, for
/// errors found after deserializing; (0, 0) if not found.
fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        for quoted in [key.to_owned(), format!("\"{key}\""), format!("'{key}'")] {
            if let Some(rest) = body.strip_prefix(&quoted) {
                if rest.trim_start().starts_with(':') {
                    return (i + 1, line[..indent].chars().count() + 1);
                }
            }
        }
    }
    (0, 0)
}
