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
//! warns); a host's value is its vars or empty. Host names take ranges,
//! `:PORT` and IPv6 addresses (`2001:db8::1`, `[2001:db8::1]:2222`) as in
//! INI. A group or host may appear in several places; its entries are
//! merged. Scalars are YAML 1.1 as Ansible reads them (`yes`, `0644`,
//! `<<` merge keys; see `crate::yaml::parse_yaml11`), and a key given twice
//! in one mapping keeps its last value, with a warning, as in Ansible.

use std::path::Path;

use super::{expand_ranges, parse_address, valid_group_name, Builder};
use crate::error::{Error, InputKind, InputWarning, Result};
use crate::suggest::closest;
use crate::vars::check_connection;
use crate::vars::{self, Vars};
use crate::yaml::{self, Node, Pos};

/// The keys a group takes.
const GROUP_KEYS: &[&str] = &["hosts", "vars", "children"];

/// The file being read, for located errors.
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, pos: Pos, kind: InputKind) -> Error {
        yaml::input_error(self.file, self.text, pos, kind)
    }

    /// The entries of a mapping (nothing for null), refusing other values,
    /// keys that are not names, and keys given twice.
    fn entries<'n>(&self, node: &'n Node) -> Result<Vec<(&'n str, Pos, &'n Node)>> {
        if node.is_null() {
            return Ok(Vec::new());
        }
        let Some(entries) = node.entries() else {
            let kind = InputKind::WrongType {
                field: None,
                found: node.unexpected().to_string(),
                expected: "a mapping".into(),
            };
            return Err(yaml::input_error(self.file, self.text, node.pos, kind));
        };
        let mut out: Vec<(&str, Pos, &Node)> = Vec::new();
        for (key, value) in entries {
            let name = match key.text() {
                Some(name) => name,
                None => return Err(self.error(key.pos, InputKind::KeyNotName)),
            };
            out.push((name, key.pos, value));
        }
        Ok(out)
    }

    /// Variables: a mapping, or nothing. A port that is not one is
    /// refused at its value.
    fn vars(&self, node: &Node) -> Result<Option<Vars>> {
        let vars = node.to::<Option<Vars>>().map_err(|e| {
            let (pos, kind) = e.into_input(node.pos, None);
            yaml::input_error(self.file, self.text, pos, kind)
        })?;
        for (key, value) in node.entries().unwrap_or_default() {
            let (Some(name), Some(vars)) = (key.text(), &vars) else {
                continue;
            };
            if let Some(parsed) = vars.get(name) {
                check_connection(name, parsed)
                    .map_err(|kind| yaml::input_error(self.file, self.text, value.pos, kind))?;
            }
        }
        Ok(vars)
    }
}

pub(super) fn parse(b: &mut Builder, file: &Path, text: &str) -> Result<()> {
    let src = Source { file, text };
    let (root, duplicates) =
        yaml::parse_yaml11(text).map_err(|e| yaml::syntax_error(file, text, e))?;
    let Some(root) = root else {
        return Ok(());
    };
    if root.entries().is_none() {
        // not a mapping: Ansible's YAML plugin declines it (an INI file's
        // text may read as a YAML string)
        let kind = InputKind::WrongType {
            field: None,
            found: root.unexpected().to_string(),
            expected: "a mapping of groups".into(),
        };
        return Err(src.error(root.pos, kind));
    }
    for d in duplicates {
        b.warn(file, d.pos.line, InputWarning::SetTwice { key: d.key });
    }
    for (name, pos, group) in src.entries(&root)? {
        add_group(b, &src, name, pos, group, None)?;
    }
    Ok(())
}

fn add_group(
    b: &mut Builder,
    src: &Source<'_>,
    name: &str,
    pos: Pos,
    group: &Node,
    parent: Option<usize>,
) -> Result<()> {
    if !valid_group_name(name) {
        let kind = InputKind::BadGroupName { name: name.into() };
        return Err(src.error(pos, kind));
    }
    let gi = b.group(name);
    if let Some(p) = parent {
        b.add_child(p, gi).map_err(|kind| src.error(pos, kind))?;
    }
    let (mut hosts, mut group_vars, mut children) = (None, None, None);
    for (key, key_pos, value) in src.entries(group)? {
        match key {
            "hosts" => hosts = Some(value),
            "vars" => group_vars = Some(value),
            "children" => children = Some(value),
            _ => {
                let kind = InputKind::UnknownGroupKey {
                    key: key.into(),
                    group: name.into(),
                    suggestion: closest(key, GROUP_KEYS.iter().copied()).map(str::to_owned),
                    expected: GROUP_KEYS.iter().map(|k| k.to_string()).collect(),
                };
                return Err(src.error(key_pos, kind));
            }
        }
    }
    if let Some(mut v) = group_vars.map(|node| src.vars(node)).transpose()?.flatten() {
        vars::add_aliases(&mut v);
        vars::merge(&mut b.groups[gi].vars, &v);
    }
    let hosts = match hosts {
        Some(node) => src.entries(node)?,
        None => Vec::new(),
    };
    for (entry, entry_pos, value) in hosts {
        let host_vars = src.vars(value)?;
        let (base, port) = parse_address(entry)
            .map_err(|kind| yaml::input_error(src.file, src.text, entry_pos, kind))?;
        let names = expand_ranges(base).map_err(|(kind, _)| src.error(entry_pos, kind))?;
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || n.contains([',', '=']))
        {
            let kind = InputKind::BadHostName { name: bad.clone() };
            return Err(src.error(entry_pos, kind));
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
    let children = match children {
        Some(node) => src.entries(node)?,
        None => Vec::new(),
    };
    for (child, child_pos, sub) in children {
        add_group(b, src, child, child_pos, sub, Some(gi))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::inventory::Inventory;

    /// The full message of each bad YAML inventory, as the operator reads it.
    #[test]
    fn bad_yaml_inventory_messages() {
        let cases = [
            (
                "unknown_group_key",
                "all:\n  hosts:\n    h1:\n  hostz:\n    h2:\n",
            ),
            ("hosts_as_a_list", "all:\n  hosts:\n    - h1\n"),
            ("syntax", "all:\n  hosts:\n    h1: {a: [}\n"),
            ("backwards_range", "all:\n  hosts:\n    n[3:1]:\n"),
            (
                "child_loop",
                "a:\n  children:\n    b:\n      children:\n        a:\n",
            ),
            ("bad_group_name", "all:\n  children:\n    web servers:\n"),
            ("host_vars_a_list", "all:\n  hosts:\n    h1: [a, b]\n"),
        ];
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../../tests/fixtures/inventory/snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| {
            for (name, text) in cases {
                let err = Inventory::parse(Path::new("hosts.yml"), text)
                    .expect_err("a bad inventory parsed");
                assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
                insta::assert_snapshot!(name, err.to_string(), text);
            }
        });
    }
}
