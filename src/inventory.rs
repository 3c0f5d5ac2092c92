//! Hosts, groups and their variables from Ansible-style INI or YAML
//! inventories, with `group_vars/` and `host_vars/` beside them, and the
//! `--limit` pattern language: read as `ansible-inventory` 2.19 reads them
//! (tests/fixtures/ansible_inventory holds what Ansible made of two dozen
//! inventories, and a test compares).
//!
//! The model follows Ansible's: the groups `all` and `ungrouped` always
//! exist; `ungrouped` holds every host that is in no other group; `all` has
//! `ungrouped`, the groups given as its children, then every other
//! top-level group as children, so every host is reachable from it.
//!
//! Sources: `-i` may be given several times; each is a file or a directory
//! (every file in it, in name order, recursively, skipping hidden files,
//! `group_vars`, `host_vars` and the extensions Ansible skips: `.md`, `.txt`,
//! `.cfg`, `.retry`, `.bak`, `~`…). A file ending in `.yml`, `.yaml` or
//! `.json`, or without an extension, is read as YAML, and as INI if that
//! fails (so an INI file named `hosts.yml` works, as in Ansible); any other
//! file as INI only in Ansible, as INI then YAML here. When both fail, the
//! error shown is the one of the format the text looks like. The INI dialect is described in the `ini`
//! submodule, YAML in `yaml`, patterns in `pattern`.
//!
//! `group_vars/NAME` and `host_vars/NAME` are looked up beside each source
//! (in the directory itself for a directory) as Ansible does: the first of
//! `NAME` (a file, or a directory whose files are read in name order),
//! `NAME.yml`, `NAME.yaml`, `NAME.json` wins. They are kept apart from the
//! inline variables because Ansible ranks every `group_vars/` file above
//! every inline group variable (see `crate::scope`).

mod ini;
mod literal;
mod pattern;
mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::error::{located_warning, Error, InputKind, InputWarning, Location, Result};
use crate::vars::{self, Vars};

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    /// Inline vars, in file order (a later line wins).
    pub vars: Vars,
    /// `host_vars/NAME` files.
    pub file_vars: Vars,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// Hosts listed directly in this group, in file order (for `all`, the
    /// hosts listed under `all` itself).
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    /// `[name:vars]` and YAML `vars:`.
    pub vars: Vars,
    /// `group_vars/NAME` files.
    pub file_vars: Vars,
}

impl Group {
    /// `ansible_group_priority` among the inline vars (default 1): groups
    /// at the same depth apply their vars in priority order, then by name.
    pub fn priority(&self) -> i64 {
        match self.vars.get("ansible_group_priority") {
            Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(1),
            Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(1),
            _ => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Inventory {
    /// The first source (for `inventory_file` and messages).
    pub source: PathBuf,
    /// Every host once, in order of first appearance.
    pub hosts: Vec<Host>,
    /// Every group including `all` and `ungrouped`.
    pub groups: Vec<Group>,
    /// Located warnings about accepted but suspicious input.
    pub warnings: Vec<String>,
    /// The directories whose `group_vars/` and `host_vars/` were read, in
    /// order.
    bases: Vec<PathBuf>,
    /// Lookups, made on first use (membership is fixed by then), so
    /// per-host questions stay cheap on inventories of thousands of hosts.
    index: std::sync::OnceLock<Index>,
}

/// Where each host and group is.
#[derive(Debug, Clone, Default)]
struct Index {
    host: HashMap<String, usize>,
    group: HashMap<String, usize>,
    /// Host → the groups that list it directly.
    direct: HashMap<String, Vec<usize>>,
    /// Group → the groups that list it as a child.
    parents: Vec<Vec<usize>>,
}

impl Inventory {
    /// Read one inventory source (a file or a directory) and the
    /// `group_vars/` and `host_vars/` beside it.
    #[cfg(test)]
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_all(&[path.to_path_buf()])
    }

    /// Read several sources into one inventory, as several `-i` do:
    /// later sources add hosts and groups and override variables.
    pub fn load_all(paths: &[PathBuf]) -> Result<Self> {
        let mut builder = Builder::new();
        for path in paths {
            if let Some(list) = host_list(path) {
                ini::parse(&mut builder, path, &list)?;
            } else if path.is_dir() {
                load_dir(&mut builder, path)?;
            } else {
                let text = crate::error::read_input(path)?;
                parse_into(&mut builder, path, &text)?;
            }
        }
        let first = paths.first().cloned().unwrap_or_default();
        let mut inventory = builder.finish(&first);
        for path in paths.iter().filter(|p| host_list(p).is_none()) {
            let base = match path.is_dir() {
                true => path.as_path(),
                false => path.parent().unwrap_or_else(|| Path::new(".")),
            };
            let base = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base
            };
            inventory.load_vars_dirs(base)?;
            inventory.bases.push(base.to_path_buf());
        }
        Ok(inventory)
    }

    /// Parse inventory `text` as if read from `source` (which names the file
    /// in errors and decides the format by its extension); no `group_vars/`.
    #[cfg(test)]
    pub fn parse(source: &Path, text: &str) -> Result<Self> {
        let mut builder = Builder::new();
        parse_into(&mut builder, source, text)?;
        Ok(builder.finish(source))
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.index().host.get(name).map(|&i| &self.hosts[i])
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut index = Index {
                parents: vec![Vec::new(); self.groups.len()],
                ..Index::default()
            };
            for (i, h) in self.hosts.iter().enumerate() {
                index.host.entry(h.name.clone()).or_insert(i);
            }
            for (g, group) in self.groups.iter().enumerate() {
                index.group.entry(group.name.clone()).or_insert(g);
            }
            for (g, group) in self.groups.iter().enumerate() {
                for h in &group.hosts {
                    index.direct.entry(h.clone()).or_default().push(g);
                }
                for c in &group.children {
                    if let Some(&ci) = index.group.get(c) {
                        index.parents[ci].push(g);
                    }
                }
            }
            index
        })
    }

    #[cfg(test)]
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.index().group.get(name).map(|&i| &self.groups[i])
    }

    /// Every host of group `name`, directly or through its children, in
    /// Ansible's order: the group's own hosts, then its children's, then
    /// their children's (breadth first, each level in listing order).
    /// An unknown group is empty.
    pub fn group_hosts(&self, name: &str) -> Vec<String> {
        let index = self.index();
        let Some(&start) = index.group.get(name) else {
            return Vec::new();
        };
        let mut seen_groups = HashSet::from([start]);
        let mut level = vec![start];
        let mut seen_hosts: HashSet<&str> = HashSet::new();
        let mut out = Vec::new();
        while !level.is_empty() {
            for &g in &level {
                for h in &self.groups[g].hosts {
                    if seen_hosts.insert(h) {
                        out.push(h.clone());
                    }
                }
            }
            let mut next = Vec::new();
            for &g in &level {
                for c in &self.groups[g].children {
                    if let Some(&ci) = index.group.get(c) {
                        if seen_groups.insert(ci) {
                            next.push(ci);
                        }
                    }
                }
            }
            level = next;
        }
        out
    }

    /// Host names matching `pattern`, in Ansible's order.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>> {
        pattern::select(self, pattern)
    }

    /// The hosts `--limit` selects, after refusing a name in it that is no
    /// host or group (see `pattern::check_limit`).
    pub fn select_limit(&self, limit: &str) -> Result<Vec<String>> {
        pattern::check_limit(self, limit)?;
        pattern::select(self, limit)
    }

    /// Names of every group `host` belongs to, directly or through children,
    /// `all` included, in inventory order. Empty for an unknown host.
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        self.group_indices_of(host)
            .into_iter()
            .map(|g| self.groups[g].name.clone())
            .collect()
    }

    /// Indices of the groups `host` belongs to (see [`Self::groups_of`]).
    fn group_indices_of(&self, host: &str) -> Vec<usize> {
        if self.host(host).is_none() {
            return Vec::new();
        }
        let index = self.index();
        let mut found: HashSet<usize> = HashSet::from([ALL]);
        let mut todo: Vec<usize> = index.direct.get(host).cloned().unwrap_or_default();
        while let Some(group) = todo.pop() {
            if found.insert(group) {
                todo.extend(index.parents[group].iter().copied());
            }
        }
        let mut out: Vec<usize> = found.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// The groups of `host` in the order Ansible applies their vars: by
    /// depth below `all`, then `ansible_group_priority`, then name; `all`
    /// first.
    pub fn groups_in_precedence(&self, host: &str, depths: &[usize]) -> Vec<&Group> {
        let mut groups: Vec<usize> = self.group_indices_of(host);
        groups.sort_by(|&a, &b| {
            let (ga, gb) = (&self.groups[a], &self.groups[b]);
            (depths[a], ga.priority(), &ga.name).cmp(&(depths[b], gb.priority(), &gb.name))
        });
        groups.into_iter().map(|g| &self.groups[g]).collect()
    }

    /// Each group's depth below `all` (0), along its longest path, by group
    /// index: the first key of the order in which group vars apply.
    pub fn group_depths(&self) -> Vec<usize> {
        let index = self.index();
        let mut memo: Vec<Option<usize>> = vec![None; self.groups.len()];
        fn depth(
            g: usize,
            parents: &[Vec<usize>],
            memo: &mut [Option<usize>],
            on: &mut HashSet<usize>,
        ) -> usize {
            if g == ALL {
                return 0;
            }
            if let Some(d) = memo[g] {
                return d;
            }
            if !on.insert(g) {
                return 1; // a loop; the loader refuses them, stay total anyway
            }
            let d = 1 + parents[g]
                .iter()
                .map(|&p| depth(p, parents, memo, on))
                .max()
                .unwrap_or(0);
            on.remove(&g);
            memo[g] = Some(d);
            d
        }
        (0..self.groups.len())
            .map(|g| depth(g, &index.parents, &mut memo, &mut HashSet::new()))
            .collect()
    }

    /// Set `key` for `host` over its own variables (inline and
    /// `host_vars/`): a value the product worked out for it, such as the
    /// address a host name resolves to.
    pub(crate) fn set_host_var(&mut self, host: &str, key: &str, value: serde_json::Value) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.name == host) {
            h.file_vars.insert(key.to_owned(), value);
        }
    }

    /// The variables `ansible-inventory --list` shows for `host`: group
    /// vars, then host vars, in Ansible's order (inline group vars of
    /// every group below every `group_vars/` file; see `crate::scope`).
    pub fn host_vars(&self, host: &str, depths: &[usize]) -> Vars {
        let mut out = Vars::new();
        let groups = self.groups_in_precedence(host, depths);
        for g in &groups {
            vars::merge(&mut out, &g.vars);
        }
        for g in &groups {
            vars::merge(&mut out, &g.file_vars);
        }
        if let Some(h) = self.host(host) {
            vars::merge(&mut out, &h.vars);
            vars::merge(&mut out, &h.file_vars);
        }
        out
    }

    /// The `group_vars/` or `host_vars/` file whose `name` wins for `host`,
    /// to point at a bad value; `None` when an inventory line (or nothing
    /// in these files) sets it. Read again from disk: only for messages.
    pub fn var_file(&self, host: &str, name: &str, depths: &[usize]) -> Option<PathBuf> {
        let sets = |file: &Path| vars::load_vars_file(file).is_ok_and(|v| v.contains_key(name));
        let in_files = |dir: &str, entry: &str| -> Option<PathBuf> {
            self.bases
                .iter()
                .filter_map(|base| vars_entry_files(&base.join(dir), entry).ok().flatten())
                .flatten()
                .rev()
                .find(|f| sets(f))
        };
        let mut winner = None;
        for g in self.groups_in_precedence(host, depths) {
            if let Some(file) = in_files("group_vars", &g.name) {
                winner = Some(file);
            }
        }
        if self.host(host).is_some_and(|h| h.vars.contains_key(name)) {
            winner = None;
        }
        in_files("host_vars", host).or(winner)
    }

    /// Merge the `group_vars/` and `host_vars/` beside a playbook in `dir`
    /// over the inventory's, as Ansible does (each file ranks just above
    /// the inventory's file of the same group or host); nothing when the
    /// inventory's own were read from there.
    pub(crate) fn load_playbook_vars_dirs(&mut self, dir: &Path) -> Result<()> {
        let same = |base: &PathBuf| match (base.canonicalize(), dir.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => base == dir,
        };
        if self.bases.iter().any(same) {
            return Ok(());
        }
        self.load_vars_dirs(dir)?;
        self.bases.push(dir.to_path_buf());
        Ok(())
    }

    /// Merge `group_vars/` and `host_vars/` from `base` over earlier ones.
    fn load_vars_dirs(&mut self, base: &Path) -> Result<()> {
        let group_dir = base.join("group_vars");
        if group_dir.is_dir() {
            for g in &mut self.groups {
                if let Some(v) = load_vars_entry(&group_dir, &g.name, &mut self.warnings)? {
                    vars::merge(&mut g.file_vars, &v);
                }
            }
        }
        let host_dir = base.join("host_vars");
        if host_dir.is_dir() {
            for h in &mut self.hosts {
                if let Some(v) = load_vars_entry(&host_dir, &h.name, &mut self.warnings)? {
                    vars::merge(&mut h.file_vars, &v);
                }
            }
        }
        Ok(())
    }
}

/// Parse one file into `b`, as YAML or INI: the format the text looks like
/// first, the other when that fails; when both fail, the error of the
/// format it looks like. (Ansible tries YAML first for `.yml`, `.yaml`,
/// `.json` and extensionless files, INI for the others; no real inventory
/// reads as both, and trying the likely one first keeps a big INI file
/// from going through the YAML parser.)
fn parse_into(b: &mut Builder, source: &Path, text: &str) -> Result<()> {
    let yaml_first = looks_like_yaml(text);
    let parse = |b: &mut Builder, yaml: bool| match yaml {
        true => yaml::parse(b, source, text),
        false => ini::parse(b, source, text),
    };
    let before = b.clone();
    let Err(first) = parse(b, yaml_first) else {
        return Ok(());
    };
    *b = before.clone();
    if parse(b, !yaml_first).is_ok() {
        return Ok(());
    }
    *b = before;
    Err(first)
}

/// A `-i` that is no file and has a comma (`-i web1,web2` or `-i db1,`),
/// as Ansible takes it: those hosts, in no group, as inventory lines
/// (`host:port` gives the port).
fn host_list(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    if !text.contains(',') || path.exists() {
        return None;
    }
    let mut lines = String::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let (host, port) = match name.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => {
                (host, Some(port))
            }
            _ => (name, None),
        };
        lines.push_str(host);
        if let Some(port) = port {
            lines.push_str(" ansible_port=");
            lines.push_str(port);
        }
        lines.push('\n');
    }
    Some(lines)
}

/// Every inventory file under `dir`, in name order, as Ansible reads a
/// directory source.
fn load_dir(b: &mut Builder, dir: &Path) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("read directory", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if ignored_in_dir(name) {
            continue;
        }
        if path.is_dir() {
            load_dir(b, &path)?;
        } else {
            let text = crate::error::read_input(&path)?;
            parse_into(b, &path, &text)?;
        }
    }
    Ok(())
}

/// The names Ansible skips in a directory source.
fn ignored_in_dir(name: &str) -> bool {
    const EXTS: &[&str] = &[
        ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
        ".retry",
    ];
    name.starts_with('.')
        || matches!(name, "host_vars" | "group_vars" | "vars_plugins")
        || EXTS.iter().any(|e| name.ends_with(e))
}

/// Whether text reads as YAML: its first significant line is `---`, a
/// `{`, or a bare mapping key such as `all:`.
fn looks_like_yaml(text: &str) -> bool {
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
fn load_vars_entry(dir: &Path, name: &str, warnings: &mut Vec<String>) -> Result<Option<Vars>> {
    let Some(files) = vars_entry_files(dir, name)? else {
        return Ok(None);
    };
    let mut out = Vars::new();
    for f in files {
        vars::merge(&mut out, &vars::load_vars_file_warn(&f, warnings)?);
    }
    Ok(Some(out))
}

/// The files of `dir/NAME` (every vars file under it, in name order, when
/// it is a directory), `NAME.yml`, `NAME.yaml` or `NAME.json`: the first
/// that exists, in the order they are merged.
fn vars_entry_files(dir: &Path, name: &str) -> Result<Option<Vec<PathBuf>>> {
    for ext in ["", ".yml", ".yaml", ".json"] {
        let path = dir.join(format!("{name}{ext}"));
        if path.is_dir() {
            let mut files = Vec::new();
            collect_vars_files(&path, &mut files)?;
            return Ok(Some(files));
        }
        if path.is_file() {
            return Ok(Some(vec![path]));
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
#[derive(Clone)]
struct Builder {
    hosts: Vec<Host>,
    host_index: HashMap<String, usize>,
    groups: Vec<Group>,
    group_index: HashMap<String, usize>,
    /// (group index, host index) of every listing, so a large range is not
    /// quadratic to add.
    members: HashSet<(usize, usize)>,
    warnings: Vec<String>,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder {
            hosts: Vec::new(),
            host_index: HashMap::new(),
            groups: Vec::new(),
            group_index: HashMap::new(),
            members: HashSet::new(),
            warnings: Vec::new(),
        };
        b.group("all");
        b.group("ungrouped");
        b
    }

    fn warn(&mut self, file: &Path, line: usize, warning: InputWarning) {
        self.warnings.push(located_warning(file, line, warning));
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
            file_vars: Vars::new(),
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
            file_vars: Vars::new(),
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
        // `ungrouped`, the groups given as children of `all` in the order
        // given, then the other top-level groups in the order they appeared.
        let mut top = vec!["ungrouped".to_owned()];
        for c in std::mem::take(&mut self.groups[ALL].children) {
            if !top.contains(&c) {
                top.push(c);
            }
        }
        let explicit: HashSet<String> = top.iter().cloned().collect();
        top.extend(
            self.groups
                .iter()
                .enumerate()
                .skip(2)
                .filter(|(i, g)| !has_parent[*i] && !explicit.contains(&g.name))
                .map(|(_, g)| g.name.clone()),
        );
        self.groups[ALL].children = top;
        Inventory {
            source: source.to_owned(),
            hosts: self.hosts,
            groups: self.groups,
            warnings: self.warnings,
            bases: Vec::new(),
            index: std::sync::OnceLock::new(),
        }
    }
}

/// Split a host entry into its name and port as Ansible's `parse_address`
/// does: `[ADDR]:PORT` (IPv6 needs the brackets for a port), `NAME:PORT`
/// for a host name or IPv4 address (ranges allowed), a bare IPv6 address
/// has no port. Anything that is not a valid address stays whole, without
/// a port, as in Ansible. A port out of range is an error.
fn parse_address(entry: &str) -> std::result::Result<(&str, Option<u16>), InputKind> {
    let (host, port) = split_address(entry);
    if !is_address(host) {
        return Ok((entry, None));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(InputKind::BadPort {
                    key: "ansible_port".into(),
                    value: p.into(),
                })
            }
        },
    };
    Ok((host, port))
}

/// `[HOST]:PORT` or `HOST:PORT` (colons inside `[…]` aside) split, or the
/// entry whole.
fn split_address(entry: &str) -> (&str, Option<&str>) {
    // Both forms have a colon; most entries have none (and compiling the
    // patterns costs more than parsing a small inventory).
    if !entry.contains(':') {
        return (entry, None);
    }
    static BRACKETED: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"^\[(.+)\]:([0-9]+)$").expect("regex"));
    static HOSTPORT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$").expect("regex")
    });
    match BRACKETED
        .captures(entry)
        .or_else(|| HOSTPORT.captures(entry))
    {
        Some(c) => match (c.get(1), c.get(2)) {
            (Some(h), Some(p)) => (h.as_str(), Some(p.as_str())),
            _ => (entry, None),
        },
        None => (entry, None),
    }
}

/// Whether `text` reads as one host address with an optional port, ranges
/// allowed (Ansible's `parse_address` succeeding).
fn is_host_address(text: &str) -> bool {
    if colon_list(text) {
        return false;
    }
    is_address(split_address(text).0)
}

/// Whether `text` has a colon and yet cannot be an address, with or
/// without a port, so the patterns need not be compiled to say so (a run
/// with `--limit web:db` or a play on `servers:clients` would otherwise
/// pay about 3 ms for them): without brackets, only `NAME:DIGITS` or an
/// IPv6 address (hex digits, colons and dots) has a colon.
fn colon_list(text: &str) -> bool {
    let Some((head, tail)) = text.rsplit_once(':') else {
        return false;
    };
    if text.contains(['[', ']']) {
        return false;
    }
    let port = !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) && !head.contains(':');
    let ipv6 = text
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    !port && !ipv6
}

/// Whether `host` is an IPv4 or IPv6 address or a host name, ranges
/// allowed, by the rules of Ansible's `parse_address`.
fn is_address(host: &str) -> bool {
    plain_host_name(host).unwrap_or_else(|| matches_address_patterns(host))
}

/// [`is_address`] by the patterns themselves.
fn matches_address_patterns(host: &str) -> bool {
    static PATTERNS: LazyLock<[regex::Regex; 3]> = LazyLock::new(|| {
        let numeric = r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]";
        let hex = r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]";
        let alnum = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";
        let i4 = format!(r"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{numeric})");
        let c = format!(r"(?:[0-9a-f]{{1,4}}|{hex})");
        let ipv4 = format!(r"(?i)^(?:{i4}\.){{3}}{i4}$");
        let ipv6 = format!(
            r"(?i)^(?:(?:{c}:){{7}}{c}|(?:{c}:){{1,6}}:|(?:{c}:)(?::{c}){{1,6}}|(?:{c}:){{2}}(?::{c}){{1,5}}|(?:{c}:){{3}}(?::{c}){{1,4}}|(?:{c}:){{4}}(?::{c}){{1,3}}|(?:{c}:){{5}}(?::{c}){{1,2}}|(?:{c}:){{6}}(?::{c})|:(?::{c}){{1,6}}|{c}?::|(?:0:){{6}}(?:{c}\.){{3}}{c}|::(?:ffff:)?(?:{c}\.){{3}}{c}|(?:0:){{5}}ffff:(?:{c}\.){{3}}{c})$"
        );
        // a label may not end in `_` or `-` (Ansible says so with a lookbehind)
        let label = format!(r"(?:\w|{alnum})(?:(?:[\w-]|{alnum})*(?:[^\W_]|{alnum}))?");
        let hostname = format!(r"(?i)^{label}(?:\.{label})*$");
        [ipv4, ipv6, hostname].map(|p| regex::Regex::new(&p).expect("regex"))
    });
    PATTERNS.iter().any(|p| p.is_match(host))
}

/// [`is_address`] for the common case without the patterns (compiling
/// them is most of parsing a small inventory): a name of ASCII letters,
/// digits, `_`, `-` and dots, which can only be a host name (an IPv4
/// address is one too). A label starts with a letter, digit or `_` and
/// ends with a letter or digit. `None` for anything else (ranges, IPv6,
/// other scripts), which the patterns judge.
fn plain_host_name(host: &str) -> Option<bool> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    if host.is_empty() || !host.bytes().all(plain) {
        return None;
    }
    Some(host.split('.').all(|label| match label.as_bytes() {
        [] => false,
        [only] => only.is_ascii_alphanumeric() || *only == b'_',
        [first, .., last] => {
            (first.is_ascii_alphanumeric() || *first == b'_') && last.is_ascii_alphanumeric()
        }
    }))
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

    #[test]
    fn plain_host_names_are_judged_as_the_patterns_judge_them() {
        let samples = [
            "node1",
            "a",
            "_",
            "-",
            "a-",
            "a_",
            "_a",
            "-a",
            "a-b_c",
            "web.example.com",
            "web..example",
            ".web",
            "web.",
            "10.0.0.1",
            "256.1.1.1",
            "1.2.3",
            "x.y-.z",
            "x._.z",
            "x.a_b.z",
            "host_",
            "A-1",
            "",
        ];
        for host in samples {
            if let Some(plain) = plain_host_name(host) {
                assert_eq!(plain, matches_address_patterns(host), "{host:?}");
            }
        }
        assert_eq!(plain_host_name("node[1:3]"), None);
        assert_eq!(plain_host_name("::1"), None);
        assert_eq!(plain_host_name("nöde"), None);
        assert!(is_address("node[1:3]") && is_address("::1") && is_address("nöde"));
        assert!(!is_address("a-") && !is_address("web..example"));
    }

    #[test]
    fn a_colon_list_is_told_from_an_address_as_the_patterns_would() {
        let samples = [
            "servers:clients",
            "web:&db:!old",
            "web:8080",
            "web:80x",
            "10.0.0.1:22",
            "::1",
            "fe80::1:2",
            "abc:def",
            "abc:def:99",
            "a:b",
            "web:",
            ":22",
            "1.2.3.4:22:33",
            "::ffff:10.0.0.1",
            "g::1",
            "node[1:3]:22",
            "node[1:3]",
            "web",
        ];
        for text in samples {
            let slow = is_address(split_address(text).0);
            if colon_list(text) {
                assert!(!slow, "{text:?} is an address");
            }
            assert_eq!(is_host_address(text), slow, "{text:?}");
        }
        assert!(colon_list("servers:clients") && colon_list("web:&db"));
        assert!(!colon_list("web:8080") && !colon_list("fe80::1") && !colon_list("web"));
    }

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

    /// A host's inline vars with its `host_vars/` files over them.
    fn host_vars(inv: &Inventory, name: &str) -> serde_json::Value {
        let h = inv.host(name).unwrap();
        let mut vars = h.vars.clone();
        vars::merge(&mut vars, &h.file_vars);
        vars.into()
    }

    /// A group's inline vars with its `group_vars/` files over them.
    fn group_vars(inv: &Inventory, name: &str) -> Vars {
        let g = group(inv, name);
        let mut vars = g.vars.clone();
        vars::merge(&mut vars, &g.file_vars);
        vars
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
        // the same hosts and groups; values may differ in type (INI's
        // `docker_tls=false` is the string `false`, as in Ansible)
        assert_eq!(names(&a), names(&b));
        let shape = |inv: &Inventory| -> Vec<(String, Vec<String>, Vec<String>)> {
            inv.groups
                .iter()
                .filter(|g| g.name != "all")
                .map(|g| (g.name.clone(), g.hosts.clone(), g.children.clone()))
                .collect()
        };
        assert_eq!(shape(&a), shape(&b));
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
        let servers = &group_vars(&inv, "servers");
        assert_eq!(servers["consul_server"], json!("true"));
        assert_eq!(servers["CONSUL_EXPECT"], json!(3));
        // group_vars/servers.yml overrides the alias of CONSUL_EXPECT=3
        assert_eq!(servers["consul_expect"], json!(5));
        assert_eq!(servers["consul_ui"], json!(true));
        // group_vars/clients/ is a directory read in name order
        let clients = &group_vars(&inv, "clients");
        assert_eq!(clients["consul_role"], json!("client"));
        assert_eq!(clients["client_label"], json!("override"));
        assert_eq!(group_vars(&inv, "all")["ntp_server"], json!("pool.ntp.org"));
        assert_eq!(group_vars(&inv, "cluster")["docker_tls"], json!("false"));
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
        assert!(looks_like_yaml("# c\nall:\n  hosts:\n"));
        assert!(looks_like_yaml("---\nweb:\n"));
        assert!(!looks_like_yaml("node1:2222\n"));
        assert!(!looks_like_yaml("[web]\nnode1\n"));
        assert!(!looks_like_yaml("node1 a=b:\n"));
        // INI text in a `.yml` file and YAML in a file without extension
        let inv = yml("[web]\nw1 a=1\n").unwrap();
        assert_eq!(host_vars(&inv, "w1"), json!({"a": 1}));
        let inv = ini("all:\n  hosts:\n    h1: {a: yes}\n").unwrap();
        assert_eq!(host_vars(&inv, "h1"), json!({"a": true}));
        // when both fail, the error is the one of the format it looks like
        let err = yml("all:\n  hosts: [\n").unwrap_err().to_string();
        assert!(err.contains("hosts.yml:"), "{err}");
        let err = yml("[web\nw1\n").unwrap_err().to_string();
        assert!(err.contains("unclosed section header"), "{err}");
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
            json!({"s": "a b", "n": 42, "t": true, "l": [1, 2], "m": "0644", "f": 1.1})
        );
        assert_eq!(
            serde_json::Value::from(group(&inv, "web").vars.clone()),
            // as in Ansible: the rest of the line, comment included; `false`
            // is not a Python literal
            json!({"greeting": "hello world # gone too", "quoted": "x # y", "list": ["a", "b"], "flag": "false"})
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
            // a trailing `:` without a port: YAML in an INI file, usually
            ("[web]\nw1:\n", "hosts:2:1", &["ends in `:` without a port"]),
            ("[web]\nw1 a='x\n", "hosts:2:6", &["unterminated `'` quote"]),
            ("[web]\nn[3:1]\n", "hosts:2:2", &["runs backwards"]),
            ("[web]\nn[01:5]\n", "hosts:2:2", &["same width"]),
            (
                "[web]\nw1\n[web:vars]\nport: 80\n",
                "hosts:4:1",
                &["expected `key=value`", "not `key: value`"],
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
    fn repeated_keys_and_hosts_warn_and_the_last_wins() {
        let inv = ini("[web]\nw1 a=1 a=2\nw2\nw1 b=3\n[web:vars]\nk=1\nk=2\n").unwrap();
        assert_eq!(host_vars(&inv, "w1"), json!({"a": 2, "b": 3}));
        assert_eq!(group(&inv, "web").hosts, ["w1", "w2"]);
        assert_eq!(group(&inv, "web").vars["k"], json!(2));
        assert_eq!(
            inv.warnings,
            [
                "hosts:2: `a` is set twice; the last value wins, as in Ansible",
                "hosts:4: host `w1` is listed twice in group `web`; it keeps its first place and gets both lines' variables, as in Ansible",
                "hosts:7: `k` is set twice; the last value wins, as in Ansible",
            ]
        );
        let inv = yml("all:\n  hosts:\n    h1: {a: 1}\n    h1: {b: 2}\n").unwrap();
        assert_eq!(host_vars(&inv, "h1"), json!({"b": 2}));
        assert_eq!(inv.warnings.len(), 1, "{:?}", inv.warnings);
    }

    #[test]
    fn ipv6_hosts_and_ports() {
        let inv =
            ini("[v6]\n[2001:db8::2]:2223\n2001:db8::3 a=1\nfe80::1\nh:22\nbad_:22\n").unwrap();
        assert_eq!(
            group(&inv, "v6").hosts,
            ["2001:db8::2", "2001:db8::3", "fe80::1", "h", "bad_:22"]
        );
        assert_eq!(
            host_vars(&inv, "2001:db8::2"),
            json!({"ansible_port": 2223})
        );
        assert_eq!(host_vars(&inv, "h"), json!({"ansible_port": 22}));
        assert_eq!(host_vars(&inv, "bad_:22"), json!({}));
        let inv = yml("all:\n  hosts:\n    2001:db8::5:\n    \"[::1]:2022\":\n").unwrap();
        assert_eq!(names(&inv), ["2001:db8::5", "::1"]);
        assert_eq!(host_vars(&inv, "::1"), json!({"ansible_port": 2022}));
    }

    #[test]
    fn directories_and_several_sources() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("inv");
        std::fs::create_dir_all(d.join("group_vars")).unwrap();
        std::fs::write(
            d.join("b.yml"),
            "all:\n  children:\n    web:\n      hosts: {w2: }\n",
        )
        .unwrap();
        std::fs::write(d.join("a"), "[web]\nw1\n").unwrap();
        std::fs::write(d.join("c"), "[app:children]\nweb\n").unwrap();
        std::fs::write(d.join("notes.md"), "[web]\nnot_a_host\n").unwrap();
        std::fs::write(d.join("old.retry"), "w1\n").unwrap();
        std::fs::write(d.join(".hidden"), "[web]\nhidden\n").unwrap();
        std::fs::write(d.join("group_vars/web.yml"), "port: 80\n").unwrap();
        let other = dir.path().join("other.ini");
        std::fs::write(&other, "[web]\nw3\n[web:vars]\nport=81\n").unwrap();
        let inv = Inventory::load_all(&[d.clone(), other]).unwrap();
        assert_eq!(group(&inv, "web").hosts, ["w1", "w2", "w3"]);
        assert_eq!(group(&inv, "app").children, ["web"]);
        // group_vars/ beats inline group vars, whichever source
        let depths = inv.group_depths();
        assert_eq!(inv.host_vars("w3", &depths)["port"], json!(80));
        // an error names the file in the directory
        std::fs::write(d.join("d"), "[web\n").unwrap();
        let err = Inventory::load(&d).unwrap_err().to_string();
        assert!(err.contains("inv/d:1:"), "{err}");
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
        // `all` is its top-level groups' hosts in order: web, then cluster
        let all = ["web1", "web2", "node5", "node1", "node2", "node3", "node4"];
        assert_eq!(sel("all"), all);
        assert_eq!(sel("*"), all);
        assert_eq!(sel("servers"), ["node1", "node2", "node3"]);
        assert_eq!(
            sel("cluster"),
            ["node1", "node2", "node3", "node4", "node5"]
        );
        assert_eq!(sel("node2"), ["node2"]);
        // union, in pattern order
        assert_eq!(
            sel("web:servers"),
            ["web1", "web2", "node5", "node1", "node2", "node3"]
        );
        assert_eq!(sel("node4,node1"), ["node4", "node1"]);
        assert_eq!(sel("node4, node1"), ["node4", "node1"]);
        // intersection and exclusion
        assert_eq!(sel("clients:&web"), ["node5"]);
        assert_eq!(sel("cluster:!servers"), ["node4", "node5"]);
        assert_eq!(
            sel("all:!node5"),
            ["web1", "web2", "node1", "node2", "node3", "node4"]
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
        // regular expressions, matched from the start of names
        assert_eq!(sel("~node[45]"), ["node4", "node5"]);
        assert_eq!(sel("~serv"), ["node1", "node2", "node3"]);
        // Ansible's old `[x-y]` subscript, and an end of 0 meaning none
        assert_eq!(sel("cluster[1-2]"), ["node2", "node3"]);
        assert_eq!(sel("cluster[2:0]"), ["node3"]);
        // a retry file
        let dir = tempfile::tempdir().unwrap();
        let retry = dir.path().join("site.retry");
        std::fs::write(&retry, "node3\n\nweb1\n").unwrap();
        assert_eq!(sel(&format!("@{}", retry.display())), ["node3", "web1"]);
        assert_eq!(
            sel(&format!("servers,!@{}", retry.display())),
            ["node1", "node2", "node3"]
        );
        // globs over group and host names
        assert_eq!(sel("web*"), ["web1", "web2", "node5"]);
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
        // unclosed `[` separate terms, as in Ansible: this is `*`
        let bracketed = format!("*{}", "[".repeat(1000));
        assert_eq!(inv.select(&bracketed).unwrap().len(), 7);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let text = inv.select("~node(").unwrap_err().to_string();
        assert!(
            text.contains("invalid regular expression `~node(`"),
            "{text}"
        );
        assert!(inv.select("servers[7]").is_err());
        // a group that exists but is empty
        let inv = ini("[empty:children]\n[h]\nh1\n").unwrap();
        assert!(inv.select("empty").is_err());
    }

    #[test]
    fn group_depths_follow_the_longest_path() {
        let inv = ini("[a:children]\nb\n[b:children]\nc\n[c]\nh\n[x:children]\nc\n").unwrap();
        let depths = inv.group_depths();
        let d = |name: &str| depths[inv.groups.iter().position(|g| g.name == name).unwrap()];
        assert_eq!(
            (d("all"), d("ungrouped"), d("a"), d("b"), d("c"), d("x")),
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
