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

use crate::error::{Error, Location, Result};
use crate::vars::{self, Layers, Vars};

pub(crate) use ini::words;
pub(crate) use yaml::{yaml_error, yaml_message};

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
}

impl Inventory {
    /// Read an INI or YAML inventory and the `group_vars/` and `host_vars/`
    /// directories beside it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
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
        self.hosts.iter().find(|h| h.name == name)
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
            .groups
            .iter()
            .filter(|g| g.hosts.iter().any(|h| h == host))
            .map(|g| g.name.as_str())
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

    /// `ansible-inventory --list` without `host` (each group's hosts and
    /// children, and every host's resolved vars under `_meta.hostvars`,
    /// leaving out the bulky `groups` magic var), or one host's resolved
    /// vars (`ansible-inventory --host`).
    pub fn to_json(&self, layers: &Layers, host: Option<&str>) -> Result<serde_json::Value> {
        let no_play_vars = Vars::new();
        if let Some(host) = host {
            if self.host(host).is_none() {
                let mut err = Error::usage(format!(
                    "unknown host `{host}` in `{}`",
                    self.source.display()
                ));
                if let Some(near) = suggest(host, self.hosts.iter().map(|h| h.name.as_str())) {
                    err = err.with_hint(format!("did you mean `{near}`?"));
                }
                return Err(err);
            }
            return Ok(vars::for_host(self, host, layers, &no_play_vars).into());
        }
        let mut hostvars = Vars::new();
        for h in &self.hosts {
            let mut resolved = vars::for_host(self, &h.name, layers, &no_play_vars);
            resolved.remove("groups");
            hostvars.insert(h.name.clone(), resolved.into());
        }
        let mut out = Vars::new();
        out.insert("_meta".into(), serde_json::json!({ "hostvars": hostvars }));
        for g in &self.groups {
            let mut entry = Vars::new();
            if !g.hosts.is_empty() {
                entry.insert("hosts".into(), g.hosts.clone().into());
            }
            if !g.children.is_empty() {
                entry.insert("children".into(), g.children.clone().into());
            }
            if !entry.is_empty() {
                out.insert(g.name.clone(), entry.into());
            }
        }
        Ok(out.into())
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

/// The closest of `candidates` to `word`, if any is close enough to be a
/// plausible typo.
fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

const ALL: usize = 0;
const UNGROUPED: usize = 1;

/// Collects hosts and groups while a parser walks its file.
struct Builder {
    hosts: Vec<Host>,
    host_index: HashMap<String, usize>,
    groups: Vec<Group>,
    group_index: HashMap<String, usize>,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder {
            hosts: Vec::new(),
            host_index: HashMap::new(),
            groups: Vec::new(),
            group_index: HashMap::new(),
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
        self.host(host);
        let hosts = &mut self.groups[group].hosts;
        if hosts.iter().any(|h| h == host) {
            return false;
        }
        hosts.push(host.to_owned());
        true
    }

    /// Make `child` a child of `parent`; an error message if that would
    /// make a loop.
    fn add_child(&mut self, parent: usize, child: usize) -> std::result::Result<(), String> {
        let (p, c) = (&self.groups[parent].name, &self.groups[child].name);
        if child == ALL {
            return Err(format!("group `all` cannot be a child of `{p}`"));
        }
        if parent == child || self.descends(child, parent) {
            return Err(format!(
                "making `{c}` a child of `{p}` creates a loop: `{p}` is already below `{c}`"
            ));
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
        }
    }
}

/// Split a trailing `:PORT` off a host entry (`node1:2222`), outside of
/// range brackets.
fn split_port(entry: &str) -> (&str, Option<u16>) {
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
            if let Ok(p) = port.parse() {
                return (&entry[..i], Some(p));
            }
        }
    }
    (entry, None)
}

/// Expand Ansible host ranges: `node[1:3]`, `node[01:10]`, `db-[a:c]`,
/// `n[0:10:5]`, several per name. On error, the message and the byte offset
/// of the offending bracket.
fn expand_ranges(name: &str) -> std::result::Result<Vec<String>, (String, usize)> {
    let Some(open) = name.find('[') else {
        if name.contains(']') {
            return Err((
                "`]` without `[` in host name".into(),
                name.find(']').unwrap_or(0),
            ));
        }
        return Ok(vec![name.to_owned()]);
    };
    let Some(close) = name[open..].find(']').map(|i| i + open) else {
        return Err(("unclosed `[` in host range".into(), open));
    };
    let (head, body, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let bad = |msg: String| Err((msg, open));
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return bad(format!(
            "invalid host range `[{body}]`, expected `[START:END]` or `[START:END:STEP]`"
        ));
    }
    let step: usize = match parts.get(2) {
        None => 1,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => return bad(format!("invalid step `{s}` in host range `[{body}]`")),
        },
    };
    let (beg, end) = (parts[0], parts[1]);
    let mut items = Vec::new();
    let is_letter = |s: &str| s.len() == 1 && s.bytes().all(|b| b.is_ascii_alphabetic());
    if is_letter(beg) && is_letter(end) {
        let (b, e) = (beg.as_bytes()[0], end.as_bytes()[0]);
        if b > e {
            return bad(format!("host range `[{body}]` runs backwards"));
        }
        items.extend((b..=e).step_by(step).map(|c| (c as char).to_string()));
    } else {
        let beg = if beg.is_empty() { "0" } else { beg };
        let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) else {
            return bad(format!(
                "invalid host range `[{body}]`: use numbers (`[1:3]`) or single letters (`[a:c]`)"
            ));
        };
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if end.len() != beg.len() {
                return bad(format!(
                    "host range `[{body}]` pads `{beg}` with zeros, so `{end}` needs the same width"
                ));
            }
            beg.len()
        } else {
            0
        };
        if b > e {
            return bad(format!("host range `[{body}]` runs backwards"));
        }
        items.extend((b..=e).step_by(step).map(|n| format!("{n:0width$}")));
    }
    let tails = expand_ranges(tail).map_err(|(m, at)| (m, at + close + 1))?;
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

/// A located error at 1-based `line` and `column` of `text`.
fn located(file: &Path, text: &str, line: usize, column: usize, msg: impl Into<String>) -> Error {
    Error::input(Location::new(file, line, column).with_source(text), msg)
}

#[cfg(test)]
mod tests {
    use super::*;
}
