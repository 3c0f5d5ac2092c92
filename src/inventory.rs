//! Hosts, groups and their variables from Ansible-style INI or YAML
//! inventories, with `group_vars/` and `host_vars/` beside the file, and the
//! `--limit` pattern language.
//!
//! The model follows Ansible's: the groups `all` and `ungrouped` always
//! exist; `ungrouped` holds every host that is in no other group; `all` lists
//! no hosts directly but has every top-level group (`ungrouped` first) as a
//! child, so every host is reachable from it.
//!
//! Format detection: a `.yml`, `.yaml` or `.json` file is YAML, and so is a
//! file whose first significant line is `---` or a bare mapping key such as
//! `all:`; anything else is INI. The INI dialect is described in the `ini`
//! submodule, patterns in the `pattern` submodule.
//!
//! `group_vars/NAME` and `host_vars/NAME` are looked up beside the inventory
//! file as Ansible does: the first of `NAME` (a file, or a directory whose
//! files are read in name order), `NAME.yml`, `NAME.yaml`, `NAME.json` wins.
//! Their variables override the inline ones of the same group or host.

mod ini;
mod pattern;
mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, InputKind, Location, Result};
use crate::vars::{self, Vars};

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    /// Inline vars and `host_vars/NAME.yml`, host_vars winning.
    pub vars: Vars,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// Hosts listed directly in this group, in file order. Empty for `all`,
    /// whose hosts are reached through its children.
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    /// `[name:vars]` and `group_vars/NAME.yml`, group_vars winning.
    pub vars: Vars,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub source: PathBuf,
    /// Every host once, in order of first appearance.
    pub hosts: Vec<Host>,
    /// Every group including `all` and `ungrouped`.
    pub groups: Vec<Group>,
    /// Host lookups, made on first use (membership is fixed by then), so
    /// per-host questions stay cheap on inventories of thousands of hosts.
    index: std::sync::OnceLock<Index>,
}

/// Where each host is: its position, and the groups that list it directly.
#[derive(Debug, Clone, Default)]
struct Index {
    host: HashMap<String, usize>,
    direct: HashMap<String, Vec<usize>>,
}

impl Inventory {
    /// Read an INI or YAML inventory and the `group_vars/` and `host_vars/`
    /// directories beside it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::error::read_input(path)?;
        let mut inventory = Self::parse(path, &text)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        inventory.load_vars_dirs(base)?;
        Ok(inventory)
    }

    /// Parse inventory `text` as if read from `source` (which names the file
    /// in errors and decides the format by its extension); no `group_vars/`.
    pub fn parse(source: &Path, text: &str) -> Result<Self> {
        let mut builder = Builder::new();
        if is_yaml(source, text) {
            yaml::parse(&mut builder, source, text)?;
        } else {
            ini::parse(&mut builder, source, text)?;
        }
        Ok(builder.finish(source))
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.index().host.get(name).map(|&i| &self.hosts[i])
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut index = Index::default();
            for (i, h) in self.hosts.iter().enumerate() {
                index.host.entry(h.name.clone()).or_insert(i);
            }
            for (g, group) in self.groups.iter().enumerate() {
                for h in &group.hosts {
                    index.direct.entry(h.clone()).or_default().push(g);
                }
            }
            index
        })
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Every host of group `name`, directly or through its children, in
    /// inventory order. `all` is every host; an unknown group is empty.
    pub fn group_hosts(&self, name: &str) -> Vec<String> {
        if name == "all" {
            return self.hosts.iter().map(|h| h.name.clone()).collect();
        }
        let members = self.members(name);
        self.hosts
            .iter()
            .filter(|h| members.contains(h.name.as_str()))
            .map(|h| h.name.clone())
            .collect()
    }

    /// Host names matching `pattern`, in inventory order.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>> {
        pattern::select(self, pattern)
    }

    /// Names of every group `host` belongs to, directly or through children,
    /// `all` included, in inventory order. Empty for an unknown host.
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        if self.host(host).is_none() {
            return Vec::new();
        }
        let parents = self.parents();
        let mut found: HashSet<&str> = HashSet::from(["all"]);
        let mut todo: Vec<&str> = self
            .index()
            .direct
            .get(host)
            .into_iter()
            .flatten()
            .map(|&g| self.groups[g].name.as_str())
            .collect();
        while let Some(group) = todo.pop() {
            if found.insert(group) {
                todo.extend(parents.get(group).into_iter().flatten().copied());
            }
        }
        let mut out: Vec<String> = Vec::new();
        if self.group("all").is_none() {
            out.push("all".to_owned());
        }
        out.extend(
            self.groups
                .iter()
                .filter(|g| found.contains(g.name.as_str()))
                .map(|g| g.name.clone()),
        );
        out
    }

    /// Each group's depth below `all` (0), along its longest path: the
    /// order in which Ansible applies group vars (then by name).
    pub fn group_depths(&self) -> HashMap<&str, usize> {
        fn depth<'a>(
            group: &'a str,
            parents: &HashMap<&'a str, Vec<&'a str>>,
            memo: &mut HashMap<&'a str, usize>,
            seen: &mut HashSet<&'a str>,
        ) -> usize {
            if group == "all" {
                return 0;
            }
            if let Some(d) = memo.get(group) {
                return *d;
            }
            if !seen.insert(group) {
                return 1; // a loop; the loader refuses them, stay total anyway
            }
            let d = 1 + parents
                .get(group)
                .into_iter()
                .flatten()
                .map(|p| depth(p, parents, memo, seen))
                .max()
                .unwrap_or(0);
            memo.insert(group, d);
            d
        }
        let parents = self.parents();
        let mut memo = HashMap::new();
        for g in &self.groups {
            depth(&g.name, &parents, &mut memo, &mut HashSet::new());
        }
        memo.insert("all", 0);
        memo
    }

    /// Group name → the groups that list it as a child.
    fn parents(&self) -> HashMap<&str, Vec<&str>> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for g in &self.groups {
            for c in &g.children {
                parents.entry(c.as_str()).or_default().push(g.name.as_str());
            }
        }
        parents
    }

    /// Hosts of `group` and of its descendants.
    fn members(&self, group: &str) -> HashSet<&str> {
        let mut members = HashSet::new();
        let mut seen = HashSet::new();
        let mut todo = vec![group];
        while let Some(name) = todo.pop() {
            if !seen.insert(name) {
                continue;
            }
            if let Some(g) = self.group(name) {
                members.extend(g.hosts.iter().map(String::as_str));
                todo.extend(g.children.iter().map(String::as_str));
            }
        }
        members
    }

    /// Merge `group_vars/` and `host_vars/` from `base` over inline vars.
    fn load_vars_dirs(&mut self, base: &Path) -> Result<()> {
        let group_dir = base.join("group_vars");
        if group_dir.is_dir() {
            for g in &mut self.groups {
                if let Some(v) = load_vars_entry(&group_dir, &g.name)? {
                    vars::merge(&mut g.vars, &v);
                }
            }
        }
        let host_dir = base.join("host_vars");
        if host_dir.is_dir() {
            for h in &mut self.hosts {
                if let Some(v) = load_vars_entry(&host_dir, &h.name)? {
                    vars::merge(&mut h.vars, &v);
                }
            }
        }
        Ok(())
    }
}

/// Decide between YAML and INI.
fn is_yaml(source: &Path, text: &str) -> bool {
    match source.extension().and_then(|e| e.to_str()) {
        Some("yml" | "yaml" | "json") => return true,
        Some("ini" | "cfg") => return false,
        _ => {}
    }
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
    else {
        return false;
    };
    if first.starts_with("---") || first.starts_with('{') {
        return true;
    }
    let key = first.split(" #").next().unwrap_or("").trim_end();
    key.len() > 1 && key.ends_with(':') && !key.starts_with('[') && !key.contains(['=', ' ', '\t'])
}

/// The first of `dir/NAME` (file or directory), `NAME.yml`, `NAME.yaml`,
/// `NAME.json`, as Ansible's host_group_vars plugin looks them up.
fn load_vars_entry(dir: &Path, name: &str) -> Result<Option<Vars>> {
    for ext in ["", ".yml", ".yaml", ".json"] {
        let path = dir.join(format!("{name}{ext}"));
        if path.is_dir() {
            let mut files = Vec::new();
            collect_vars_files(&path, &mut files)?;
            let mut out = Vars::new();
            for f in files {
                vars::merge(&mut out, &vars::load_vars_file(&f)?);
            }
            return Ok(Some(out));
        }
        if path.is_file() {
            return vars::load_vars_file(&path).map(Some);
        }
    }
    Ok(None)
}

/// Vars files under `dir`, recursively, in name order; hidden files, backups
/// and files with other extensions are skipped.
fn collect_vars_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("read directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        if path.is_dir() {
            collect_vars_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            None | Some("yml" | "yaml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

pub(crate) use crate::suggest::closest as suggest;

const ALL: usize = 0;
const UNGROUPED: usize = 1;

/// Collects hosts and groups while a parser walks its file.
struct Builder {
    hosts: Vec<Host>,
    host_index: HashMap<String, usize>,
    groups: Vec<Group>,
    group_index: HashMap<String, usize>,
    /// (group index, host index) of every listing, so a large range is not
    /// quadratic to add.
    members: HashSet<(usize, usize)>,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder {
            hosts: Vec::new(),
            host_index: HashMap::new(),
            groups: Vec::new(),
            group_index: HashMap::new(),
            members: HashSet::new(),
        };
        b.group("all");
        b.group("ungrouped");
        b
    }

    fn find_group(&self, name: &str) -> Option<usize> {
        self.group_index.get(name).copied()
    }

    /// The index of group `name`, created empty if new.
    fn group(&mut self, name: &str) -> usize {
        if let Some(i) = self.find_group(name) {
            return i;
        }
        self.groups.push(Group {
            name: name.to_owned(),
            hosts: Vec::new(),
            children: Vec::new(),
            vars: Vars::new(),
        });
        self.group_index
            .insert(name.to_owned(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// The index of host `name`, created without vars if new.
    fn host(&mut self, name: &str) -> usize {
        if let Some(i) = self.host_index.get(name) {
            return *i;
        }
        self.hosts.push(Host {
            name: name.to_owned(),
            vars: Vars::new(),
        });
        self.host_index
            .insert(name.to_owned(), self.hosts.len() - 1);
        self.hosts.len() - 1
    }

    /// List `host` in `group`; false if it was already listed there.
    fn add_host(&mut self, group: usize, host: &str) -> bool {
        let index = self.host(host);
        if !self.members.insert((group, index)) {
            return false;
        }
        self.groups[group].hosts.push(host.to_owned());
        true
    }

    /// Make `child` a child of `parent`; an error message if that would
    /// make a loop.
    fn add_child(&mut self, parent: usize, child: usize) -> std::result::Result<(), InputKind> {
        let (p, c) = (&self.groups[parent].name, &self.groups[child].name);
        if child == ALL {
            return Err(InputKind::AllAsChild {
                parent: Some(p.clone()),
            });
        }
        if parent == child || self.descends(child, parent) {
            return Err(InputKind::GroupLoop {
                child: c.clone(),
                parent: p.clone(),
            });
        }
        let c = c.clone();
        let children = &mut self.groups[parent].children;
        if !children.contains(&c) {
            children.push(c);
        }
        Ok(())
    }

    /// Whether `target` is `from` or below it.
    fn descends(&self, from: usize, target: usize) -> bool {
        let mut seen = HashSet::new();
        let mut todo = vec![from];
        while let Some(g) = todo.pop() {
            if g == target {
                return true;
            }
            if seen.insert(g) {
                todo.extend(
                    self.groups[g]
                        .children
                        .iter()
                        .filter_map(|c| self.find_group(c)),
                );
            }
        }
        false
    }

    /// Settle `all` and `ungrouped` as Ansible does.
    fn finish(mut self, source: &Path) -> Inventory {
        let mut grouped: HashSet<String> = HashSet::new();
        let mut has_parent = vec![false; self.groups.len()];
        for (i, g) in self.groups.iter().enumerate() {
            if i != ALL && i != UNGROUPED {
                grouped.extend(g.hosts.iter().cloned());
            }
            if i != ALL {
                for c in &g.children {
                    if let Some(ci) = self.group_index.get(c) {
                        has_parent[*ci] = true;
                    }
                }
            }
        }
        self.groups[UNGROUPED].hosts = self
            .hosts
            .iter()
            .filter(|h| !grouped.contains(&h.name))
            .map(|h| h.name.clone())
            .collect();
        let mut top = vec!["ungrouped".to_owned()];
        top.extend(
            self.groups
                .iter()
                .enumerate()
                .skip(2)
                .filter(|(i, _)| !has_parent[*i])
                .map(|(_, g)| g.name.clone()),
        );
        self.groups[ALL].hosts.clear();
        self.groups[ALL].children = top;
        Inventory {
            source: source.to_owned(),
            hosts: self.hosts,
            groups: self.groups,
            index: std::sync::OnceLock::new(),
        }
    }
}

/// Split a trailing `:PORT` off a host entry (`node1:2222`), outside of
/// range brackets; a port out of range is an error.
fn split_port(entry: &str) -> std::result::Result<(&str, Option<u16>), InputKind> {
    let mut depth = 0usize;
    let mut colon = None;
    for (i, c) in entry.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => colon = Some(i),
            _ => {}
        }
    }
    if let Some(i) = colon {
        let port = &entry[i + 1..];
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return match port.parse() {
                Ok(p) if p > 0 => Ok((&entry[..i], Some(p))),
                _ => Err(InputKind::BadPort {
                    key: "ansible_port".into(),
                    value: port.into(),
                }),
            };
        }
    }
    Ok((entry, None))
}

/// The most hosts one range entry (`node[1:100]`) may name.
pub(crate) const MAX_RANGE_HOSTS: usize = 10_000;

/// Expand Ansible host ranges: `node[1:3]`, `node[01:10]`, `db-[a:c]`,
/// `n[0:10:5]`, several per name. On error, the message and the byte offset
/// of the offending bracket.
fn expand_ranges(name: &str) -> std::result::Result<Vec<String>, (InputKind, usize)> {
    if name.matches('[').count() > 8 {
        let at = name.match_indices('[').nth(8).map_or(0, |(i, _)| i);
        return Err((InputKind::TooManyRanges, at));
    }
    let Some(open) = name.find('[') else {
        if name.contains(']') {
            return Err((InputKind::StrayCloseBracket, name.find(']').unwrap_or(0)));
        }
        return Ok(vec![name.to_owned()]);
    };
    let Some(close) = name[open..].find(']').map(|i| i + open) else {
        return Err((InputKind::UnclosedRange, open));
    };
    let (head, body, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let range = body.to_owned();
    let bad = |kind: InputKind| Err((kind, open));
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return bad(InputKind::BadRange { range });
    }
    let step: usize = match parts.get(2) {
        None => 1,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                return bad(InputKind::BadRangeStep {
                    range,
                    step: s.to_string(),
                })
            }
        },
    };
    let (beg, end) = (parts[0], parts[1]);
    let too_many = |count: u64| {
        Err((
            InputKind::RangeTooLarge {
                range: body.to_owned(),
                count,
                max: MAX_RANGE_HOSTS,
            },
            open,
        ))
    };
    let mut items = Vec::new();
    let is_letter = |s: &str| s.len() == 1 && s.bytes().all(|b| b.is_ascii_alphabetic());
    if is_letter(beg) && is_letter(end) {
        let (b, e) = (beg.as_bytes()[0], end.as_bytes()[0]);
        if b > e {
            return bad(InputKind::RangeBackwards { range });
        }
        items.extend((b..=e).step_by(step).map(|c| (c as char).to_string()));
    } else {
        let beg = if beg.is_empty() { "0" } else { beg };
        let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) else {
            return bad(InputKind::BadRangeBounds { range });
        };
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if end.len() != beg.len() {
                return bad(InputKind::RangePadding {
                    range,
                    start: beg.into(),
                    end: end.into(),
                });
            }
            beg.len()
        } else {
            0
        };
        if b > e {
            return bad(InputKind::RangeBackwards { range });
        }
        let count = ((e - b) / step as u64).saturating_add(1);
        if count > MAX_RANGE_HOSTS as u64 {
            return too_many(count);
        }
        items.extend((b..=e).step_by(step).map(|n| format!("{n:0width$}")));
    }
    let tails = expand_ranges(tail).map_err(|(m, at)| (m, at + close + 1))?;
    let count = items.len() as u64 * tails.len() as u64;
    if count > MAX_RANGE_HOSTS as u64 {
        return too_many(count);
    }
    Ok(items
        .iter()
        .flat_map(|i| tails.iter().map(move |t| format!("{head}{i}{t}")))
        .collect())
}

/// Whether `name` can be a group name: no spaces and none of the characters
/// the pattern language gives a meaning to.
fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || ":,[]=!&~*?'\"#;".contains(c))
}

/// Bad input of `kind` at 1-based `line` and `column` of `text`.
fn located(file: &Path, text: &str, line: usize, column: usize, kind: InputKind) -> Error {
    Error::input(Location::new(file, line, column).with_source(text), kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/inventory")
            .join(name)
    }

    fn ini(text: &str) -> Result<Inventory> {
        Inventory::parse(Path::new("hosts"), text)
    }

    fn yml(text: &str) -> Result<Inventory> {
        Inventory::parse(Path::new("hosts.yml"), text)
    }

    fn names(inv: &Inventory) -> Vec<&str> {
        inv.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    fn group<'a>(inv: &'a Inventory, name: &str) -> &'a Group {
        inv.group(name).unwrap_or_else(|| panic!("no group {name}"))
    }

    fn host_vars(inv: &Inventory, name: &str) -> serde_json::Value {
        inv.host(name).unwrap().vars.clone().into()
    }

    /// The error text, which must name `file:line`, and contain `parts`.
    fn error_text(err: Error, at: &str, parts: &[&str]) -> String {
        let text = err.to_string();
        assert!(text.contains(at), "expected `{at}` in:\n{text}");
        for p in parts {
            assert!(text.contains(p), "expected `{p}` in:\n{text}");
        }
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        text
    }

    #[test]
    fn ini_and_yaml_fixtures_are_the_same_inventory() {
        let a = Inventory::load(&fixture("hosts.ini")).unwrap();
        let b = Inventory::load(&fixture("hosts.yml")).unwrap();
        assert_eq!(a.hosts, b.hosts);
        assert_eq!(a.groups, b.groups);
        assert_eq!(
            names(&a),
            ["bastion", "node1", "node2", "node3", "node4", "node5"]
        );
        let group_names: Vec<&str> = a.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            group_names,
            ["all", "ungrouped", "cluster", "servers", "clients"]
        );
        assert_eq!(group(&a, "all").children, ["ungrouped", "cluster"]);
        assert!(group(&a, "all").hosts.is_empty());
        assert_eq!(group(&a, "ungrouped").hosts, ["bastion"]);
        assert_eq!(group(&a, "cluster").children, ["servers", "clients"]);
        assert_eq!(group(&a, "clients").hosts, ["node4", "node5"]);
    }

    #[test]
    fn fixture_vars_inline_typed_and_from_vars_dirs() {
        let inv = Inventory::load(&fixture("hosts.ini")).unwrap();
        assert_eq!(
            host_vars(&inv, "node3"),
            json!({"ansible_port": 2222, "ansible_host": "192.168.56.13", "arpanet_ip": "10.0.0.3"})
        );
        // host_vars/node1.yml overrides the inline value
        assert_eq!(host_vars(&inv, "node1")["arpanet_ip"], json!("10.0.0.101"));
        assert_eq!(host_vars(&inv, "node4"), json!({"arpanet_ip": "10.0.0.45"}));
        let servers = &group(&inv, "servers").vars;
        assert_eq!(servers["consul_server"], json!(true));
        assert_eq!(servers["CONSUL_EXPECT"], json!(3));
        // group_vars/servers.yml overrides the alias of CONSUL_EXPECT=3
        assert_eq!(servers["consul_expect"], json!(5));
        assert_eq!(servers["consul_ui"], json!(true));
        // group_vars/clients/ is a directory read in name order
        let clients = &group(&inv, "clients").vars;
        assert_eq!(clients["consul_role"], json!("client"));
        assert_eq!(clients["client_label"], json!("override"));
        assert_eq!(group(&inv, "all").vars["ntp_server"], json!("pool.ntp.org"));
        assert_eq!(group(&inv, "cluster").vars["docker_tls"], json!(false));
    }

    #[test]
    fn example_inventory_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example");
        let inv = Inventory::load(&path).unwrap();
        assert_eq!(inv.select("servers").unwrap(), ["node1", "node2", "node3"]);
        assert_eq!(inv.select("clients").unwrap(), ["node4", "node5"]);
        assert_eq!(group(&inv, "all").vars["ansible_user"], json!("root"));
        assert_eq!(group(&inv, "all").vars["consul_expect"], json!(3));
        for h in &inv.hosts {
            assert!(h.vars["arpanet_ip"].is_string(), "{}", h.name);
        }
        assert_eq!(host_vars(&inv, "node1")["consul_role"], json!("boot"));
    }

    #[test]
    fn format_detection() {
        assert!(is_yaml(Path::new("x.yml"), "[web]"));
        assert!(is_yaml(Path::new("x.yaml"), ""));
        assert!(is_yaml(Path::new("hosts"), "# c\nall:\n  hosts:\n"));
        assert!(is_yaml(Path::new("hosts"), "---\nweb:\n"));
        assert!(!is_yaml(Path::new("hosts"), "node1:2222\n"));
        assert!(!is_yaml(Path::new("hosts"), "[web]\nnode1\n"));
        assert!(!is_yaml(Path::new("hosts"), "node1 a=b:\n"));
    }

    #[test]
    fn ini_ungrouped_hosts_children_and_vars() {
        let inv = ini("solo x=1\n[web]\nw1\nw2 port=8080\n[app:children]\nweb\n[app:vars]\nk=v\n")
            .unwrap();
        assert_eq!(group(&inv, "ungrouped").hosts, ["solo"]);
        assert_eq!(group(&inv, "web").hosts, ["w1", "w2"]);
        assert_eq!(group(&inv, "app").children, ["web"]);
        assert_eq!(
            group(&inv, "app").vars,
            json!({"k": "v"}).as_object().unwrap().clone()
        );
        assert_eq!(host_vars(&inv, "w2"), json!({"port": 8080}));
        assert_eq!(group(&inv, "all").children, ["ungrouped", "app"]);
        assert_eq!(inv.groups_of("w1"), ["all", "web", "app"]);
        assert_eq!(inv.groups_of("solo"), ["all", "ungrouped"]);
        assert!(inv.groups_of("nope").is_empty());
        assert_eq!(inv.group_hosts("app"), ["w1", "w2"]);
        assert_eq!(inv.group_hosts("all"), ["solo", "w1", "w2"]);
    }

    #[test]
    fn ini_host_in_several_groups_merges_vars_and_leaves_ungrouped() {
        let inv = ini("h1 a=1 b=1\n[g1]\nh1 b=2\n[g2]\nh1 c=3\n[g1]\nh2\n").unwrap();
        assert_eq!(host_vars(&inv, "h1"), json!({"a": 1, "b": 2, "c": 3}));
        assert!(group(&inv, "ungrouped").hosts.is_empty());
        assert_eq!(group(&inv, "g1").hosts, ["h1", "h2"]);
        assert_eq!(names(&inv), ["h1", "h2"]);
    }

    #[test]
    fn ini_values_comments_and_quotes() {
        let inv = ini(concat!(
            "[web] # trailing comment\n",
            "; comment\n",
            "w1 s='a b' n=42 t=True l=[1, 2] m=0644 f=1.10 # gone\n",
            "[web:vars]\n",
            "greeting = hello world # gone too\n",
            "quoted=\"x # y\"\n",
            "list=[\"a\", \"b\"]\n",
            "flag=false\n",
        ))
        .unwrap();
        assert_eq!(
            host_vars(&inv, "w1"),
            json!({"s": "a b", "n": 42, "t": true, "l": [1, 2], "m": "0644", "f": "1.10"})
        );
        assert_eq!(
            serde_json::Value::from(group(&inv, "web").vars.clone()),
            json!({"greeting": "hello world", "quoted": "x # y", "list": ["a", "b"], "flag": false})
        );
    }

    #[test]
    fn host_ranges_expand() {
        let inv =
            ini("[a]\nn[1:3]\n[b]\nm[08:10].x\n[c]\ndb-[a:c]\n[d]\ns[0:10:5]-[1:2]\n").unwrap();
        assert_eq!(group(&inv, "a").hosts, ["n1", "n2", "n3"]);
        assert_eq!(group(&inv, "b").hosts, ["m08.x", "m09.x", "m10.x"]);
        assert_eq!(group(&inv, "c").hosts, ["db-a", "db-b", "db-c"]);
        assert_eq!(
            group(&inv, "d").hosts,
            ["s0-1", "s0-2", "s5-1", "s5-2", "s10-1", "s10-2"]
        );
        let inv = yml("all:\n  hosts:\n    n[1:2]:2200: {a: 1}\n").unwrap();
        assert_eq!(host_vars(&inv, "n2"), json!({"ansible_port": 2200, "a": 1}));
    }

    #[test]
    fn huge_host_ranges_are_refused_before_expanding() {
        let limit = MAX_RANGE_HOSTS;
        assert!(ini(&format!("[a]\nn[1:{limit}]\n")).is_ok());
        for entry in [
            "n[1:99999999]".to_owned(),
            format!("n[1:{}]", limit + 1),
            "n[1:200][1:200]".to_owned(),
            "n[0:18446744073709551615]".to_owned(),
            "n".to_owned() + &"[1:1]".repeat(20_000),
        ] {
            let text = ini(&format!("[a]\n{entry} x=1\n")).unwrap_err().to_string();
            assert!(text.starts_with("hosts:2:"), "{text}");
            let text = yml(&format!("all:\n  hosts:\n    {entry}:\n"))
                .unwrap_err()
                .to_string();
            assert!(text.starts_with("hosts.yml:3:"), "{text}");
        }
    }

    #[test]
    fn yaml_groups_hosts_vars_and_children() {
        let inv = yml(concat!(
            "all:\n",
            "  vars: {x: 1}\n",
            "  hosts:\n",
            "    lone:\n",
            "  children:\n",
            "    web:\n",
            "      hosts:\n",
            "        w1:\n",
            "        w2: {port: 81}\n",
            "      children:\n",
            "        canary:\n",
            "          hosts: {w2: }\n",
            "    empty:\n",
            "db:\n",
            "  hosts:\n",
            "    d1: {}\n",
        ))
        .unwrap();
        assert_eq!(names(&inv), ["lone", "w1", "w2", "d1"]);
        assert_eq!(group(&inv, "web").children, ["canary"]);
        assert_eq!(
            group(&inv, "all").children,
            ["ungrouped", "web", "empty", "db"]
        );
        assert_eq!(group(&inv, "ungrouped").hosts, ["lone"]);
        assert_eq!(inv.groups_of("w2"), ["all", "web", "canary"]);
        assert_eq!(host_vars(&inv, "w2"), json!({"port": 81}));
        assert_eq!(group(&inv, "all").vars["x"], json!(1));
        assert!(yml("").unwrap().hosts.is_empty());
    }

    #[test]
    fn yaml_errors_are_located() {
        let err = yml("all:\n  hosts:\n    h1:\n  hostz:\n    h2:\n").unwrap_err();
        error_text(
            err,
            "hosts.yml:4:",
            &[
                "unknown key `hostz` in group `all`",
                "4 |   hostz:",
                "hint: did you mean `hosts`?",
            ],
        );
        let err = yml("all:\n  hosts:\n    - h1\n").unwrap_err();
        error_text(err, "hosts.yml:3:", &["invalid type: sequence"]);
        let err = yml("all:\n  hosts:\n    h1: {a: [}\n").unwrap_err();
        error_text(err, "hosts.yml:3:", &["3 |     h1: {a: [}"]);
        let err = yml("all:\n  hosts:\n    h1:\n    h1:\n").unwrap_err();
        error_text(err, "hosts.yml:4:", &["duplicate key `h1`"]);
        let err = yml("all:\n  hosts:\n    n[3:1]:\n").unwrap_err();
        error_text(err, "hosts.yml:3:5", &["runs backwards"]);
        let err = yml("a:\n  children:\n    b:\n      children:\n        a:\n").unwrap_err();
        // At the entry that closes the loop (the parser's position of that
        // key), not the first `a:` in the text.
        error_text(err, "hosts.yml:5:9", &["creates a loop", "5 |         a:"]);
    }

    #[test]
    fn ini_errors_are_located() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "[web:things]\nw1\n",
                "hosts:1:6",
                &["unknown section type `things`", "[web:vars]"],
            ),
            ("[web\nw1\n", "hosts:1:1", &["unclosed section header"]),
            (
                "[web]\nw1\nansible_user=root\n",
                "hosts:3:1",
                &["expected a host name", "[web:vars]"],
            ),
            (
                "[web]\nw1 port\n",
                "hosts:2:4",
                &["expected `key=value`", "2 | w1 port"],
            ),
            ("[web]\nw1 a=1 a=2\n", "hosts:2:8", &["`a` is set twice"]),
            (
                "[web]\nw1\nw1\n",
                "hosts:3:1",
                &["already listed in group `web` on line 2"],
            ),
            ("[web]\nw1 a='x\n", "hosts:2:6", &["unterminated `'` quote"]),
            ("[web]\nn[3:1]\n", "hosts:2:2", &["runs backwards"]),
            ("[web]\nn[01:5]\n", "hosts:2:2", &["same width"]),
            (
                "[web]\nw1\n[web:vars]\nport: 80\n",
                "hosts:4:1",
                &["expected `key=value`", "not `key: value`"],
            ),
            (
                "[web]\nw1\n[web:vars]\na=1\na=2\n",
                "hosts:5:1",
                &["already set on line 4"],
            ),
            ("[web:vars]\na=1\n", "hosts:1:2", &["never declared"]),
            (
                "[p:children]\nmissing\n[other]\nh\n",
                "hosts:2:1",
                &["includes undefined group `missing`"],
            ),
            (
                "[a:children]\nb\n[b:children]\na\n",
                "hosts:4:1",
                &["creates a loop"],
            ),
            ("[a:children]\na\n", "hosts:2:1", &["creates a loop"]),
            ("[a:children]\nb c\n[b]\n", "hosts:2:3", &["unexpected `c`"]),
            ("[we b]\n", "hosts:1:2", &["invalid group name"]),
        ];
        for (text, at, parts) in cases {
            let err = ini(text).expect_err(text);
            error_text(err, at, parts);
        }
    }

    #[test]
    fn children_may_be_declared_later() {
        let inv = ini("[p:children]\nc\n[c]\nh1\n[p:vars]\nv=1\n").unwrap();
        assert_eq!(inv.select("p").unwrap(), ["h1"]);
        // a group declared only through children is fine
        let inv = ini("[p:children]\nc\n[c:children]\n[x]\nh\n").unwrap();
        assert!(inv.group("c").is_some());
    }

    #[test]
    fn vars_dirs_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "[web]\nw1\n").unwrap();
        std::fs::create_dir(dir.path().join("group_vars")).unwrap();
        std::fs::write(dir.path().join("group_vars/web.yaml"), "a: 1\nb: [\n").unwrap();
        let err = Inventory::load(&dir.path().join("hosts")).unwrap_err();
        error_text(err, "web.yaml:", &["group_vars"]);

        std::fs::remove_file(dir.path().join("group_vars/web.yaml")).unwrap();
        std::fs::create_dir(dir.path().join("host_vars")).unwrap();
        std::fs::write(dir.path().join("host_vars/w1"), "- not\n- a mapping\n").unwrap();
        let err = Inventory::load(&dir.path().join("hosts")).unwrap_err();
        error_text(
            err,
            "w1:1:1",
            &[
                "invalid type: sequence",
                "hint: a vars file is a YAML mapping",
            ],
        );

        let err = Inventory::load(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read `"), "{err}");
    }

    #[test]
    fn vars_dirs_lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("inv.yml"),
            "all:\n  hosts:\n    h1:\n    h2:\n    h3:\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join("host_vars/h2/sub")).unwrap();
        // bare name first, then .yml, .yaml, .json: only the first counts
        std::fs::write(d.join("host_vars/h1.yml"), "from: yml\n").unwrap();
        std::fs::write(
            d.join("host_vars/h1.json"),
            "{\"from\": \"json\", \"j\": 1}",
        )
        .unwrap();
        std::fs::write(d.join("host_vars/h2/b.yml"), "x: b\n").unwrap();
        std::fs::write(d.join("host_vars/h2/a.yml"), "x: a\ny: a\n").unwrap();
        std::fs::write(d.join("host_vars/h2/sub/c.yml"), "y: c\n").unwrap();
        std::fs::write(d.join("host_vars/h2/.hidden.yml"), "x: hidden\n").unwrap();
        std::fs::write(d.join("host_vars/h2/notes.txt"), "not: vars\n").unwrap();
        std::fs::write(d.join("host_vars/h3.json"), "{\"DOCKER_PORT\": 2376}").unwrap();
        let inv = Inventory::load(&d.join("inv.yml")).unwrap();
        assert_eq!(host_vars(&inv, "h1"), json!({"from": "yml"}));
        assert_eq!(host_vars(&inv, "h2"), json!({"x": "b", "y": "c"}));
        assert_eq!(
            host_vars(&inv, "h3"),
            json!({"DOCKER_PORT": 2376, "docker_port": 2376})
        );
    }

    fn pattern_inventory() -> Inventory {
        ini(concat!(
            "[servers]\nnode1\nnode2\nnode3\n",
            "[clients]\nnode4\nnode5\n",
            "[web]\nweb1\nweb2\nnode5\n",
            "[cluster:children]\nservers\nclients\n",
        ))
        .unwrap()
    }

    #[test]
    fn select_every_pattern_form() {
        let inv = pattern_inventory();
        let sel = |p: &str| inv.select(p).unwrap();
        let all = ["node1", "node2", "node3", "node4", "node5", "web1", "web2"];
        assert_eq!(sel("all"), all);
        assert_eq!(sel("*"), all);
        assert_eq!(sel("servers"), ["node1", "node2", "node3"]);
        assert_eq!(
            sel("cluster"),
            ["node1", "node2", "node3", "node4", "node5"]
        );
        assert_eq!(sel("node2"), ["node2"]);
        // union, in inventory order whatever the pattern order
        assert_eq!(
            sel("web:servers"),
            ["node1", "node2", "node3", "node5", "web1", "web2"]
        );
        assert_eq!(sel("node4,node1"), ["node1", "node4"]);
        assert_eq!(sel("node4, node1"), ["node1", "node4"]);
        // intersection and exclusion
        assert_eq!(sel("clients:&web"), ["node5"]);
        assert_eq!(sel("cluster:!servers"), ["node4", "node5"]);
        assert_eq!(
            sel("all:!node5"),
            ["node1", "node2", "node3", "node4", "web1", "web2"]
        );
        // unions first, then intersections, then exclusions, whatever the order
        assert_eq!(sel("!node1:servers"), ["node2", "node3"]);
        assert_eq!(sel("&web:clients:servers"), ["node5"]);
        assert_eq!(
            sel("servers:!node2:&cluster:clients"),
            ["node1", "node3", "node4", "node5"]
        );
        // only exclusions start from all
        assert_eq!(sel("!cluster"), ["web1", "web2"]);
        // globs over group and host names
        assert_eq!(sel("web*"), ["node5", "web1", "web2"]);
        assert_eq!(sel("node?"), ["node1", "node2", "node3", "node4", "node5"]);
        assert_eq!(sel("serv*:&node[!2]"), ["node1", "node3"]);
        assert_eq!(sel("*ients"), ["node4", "node5"]);
        // subscripts
        assert_eq!(sel("servers[0]"), ["node1"]);
        assert_eq!(sel("servers[-1]"), ["node3"]);
        assert_eq!(sel("cluster[1:3]"), ["node2", "node3", "node4"]);
        assert_eq!(sel("cluster[3:]"), ["node4", "node5"]);
        assert_eq!(sel("servers[0]:clients[0]"), ["node1", "node4"]);
    }

    #[test]
    fn select_errors() {
        let inv = pattern_inventory();
        let err = inv.select("sevrers").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("no hosts match `sevrers`"), "{text}");
        assert!(text.contains("hint: did you mean `servers`?"), "{text}");
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let text = inv.select("servers:&clients").unwrap_err().to_string();
        assert!(text.contains("no hosts match `servers:&clients`"), "{text}");
        assert!(
            text.contains("hint: groups in `hosts`: `all`, `servers`"),
            "{text}"
        );
        assert!(inv.select("").is_err());
        // a long pattern of brackets took minutes (found by the fuzz test)
        let started = std::time::Instant::now();
        let long = format!("serv{}", "[".repeat(60_000));
        let text = inv.select(&long).unwrap_err().to_string();
        assert!(text.contains("is longer than 1024 bytes"), "{text}");
        let bracketed = format!("*{}", "[".repeat(1000));
        assert!(inv.select(&bracketed).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(inv
            .select("~node.*")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(inv.select("servers[7]").is_err());
        // a group that exists but is empty
        let inv = ini("[empty:children]\n[h]\nh1\n").unwrap();
        assert!(inv.select("empty").is_err());
    }

    #[test]
    fn group_depths_follow_the_longest_path() {
        let inv = ini("[a:children]\nb\n[b:children]\nc\n[c]\nh\n[x:children]\nc\n").unwrap();
        let d = inv.group_depths();
        assert_eq!(
            (d["all"], d["ungrouped"], d["a"], d["b"], d["c"], d["x"]),
            (0, 1, 1, 2, 3, 1)
        );
        assert_eq!(inv.groups_of("h"), ["all", "a", "b", "c", "x"]);
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let c = ["servers", "clients", "node1"];
        assert_eq!(suggest("sevrers", c), Some("servers"));
        assert_eq!(suggest("node2", c), Some("node1"));
        assert_eq!(suggest("database", c), None);
    }
}
