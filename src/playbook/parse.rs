//! Plays and tasks built from the located YAML tree.
//!
//! Plays and tasks are mappings whose keys decide what their values are (a
//! task's module is a key), so they are read by plain functions over
//! [`Node`]s, key by key in file order: a bad key is reported at the key, a
//! bad value at the value, and every key keeps its position for the checks
//! that come later (templates, handlers). Values of a fixed shape (module
//! arguments, numbers, conditions) are deserialized from their node.

use std::sync::Arc;

use serde::Deserialize;

use super::values::{
    Cond, Count, Flag, Ident, List, Percent, Seconds, SerialValue, Text, VarMap, WholeSeconds,
};
use super::{LoopControl, LoopKind, Serial};
use crate::error::InputKind;
use crate::escalation::{Keywords, Method};
use crate::modules::{deferred, BadArgs, Module, Registry};
use crate::suggest::closest;
use crate::vars::Vars;
use crate::yaml::{Kind, Node, Pos};

/// An input error before its file is known.
#[derive(Debug)]
pub(super) struct Located {
    pub pos: Pos,
    pub kind: Box<InputKind>,
}

type Res<T> = std::result::Result<T, Located>;

fn at(pos: Pos, kind: InputKind) -> Located {
    Located {
        pos,
        kind: Box::new(kind),
    }
}

/// Play keys; `gather_facts` is accepted and ignored.
pub(super) const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "serial",
    "max_fail_percentage",
    "any_errors_fatal",
    "environment",
    "vars",
    "tags",
    "pre_tasks",
    "roles",
    "tasks",
    "post_tasks",
    "handlers",
    "gather_facts",
    "import_playbook",
    "become",
    "become_user",
    "become_method",
    "become_flags",
];

/// Task keywords (everything but the module).
pub(super) const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "tags",
    "notify",
    "register",
    "retries",
    "delay",
    "until",
    "timeout",
    "ignore_errors",
    "run_once",
    "changed_when",
    "failed_when",
    "no_log",
    "vars",
    "loop",
    "loop_control",
    "with_items",
    "with_list",
    "with_dict",
    "with_indexed_items",
    "check_mode",
    "import_tasks",
    "import_role",
    "delegate_to",
    "local_action",
    "environment",
    "any_errors_fatal",
    "block",
    "rescue",
    "always",
    "become",
    "become_user",
    "become_method",
    "become_flags",
];

/// The keys a `block` takes beside `block`, `rescue` and `always`: those its
/// tasks inherit, and its name.
const BLOCK_KEYS: &[&str] = &[
    "block",
    "rescue",
    "always",
    "name",
    "when",
    "tags",
    "vars",
    "environment",
    "any_errors_fatal",
    "ignore_errors",
    "delegate_to",
    "no_log",
    "check_mode",
    "become",
    "become_user",
    "become_method",
    "become_flags",
];

/// Ansible keys people will try that arpanet does not implement.
const UNSUPPORTED_PLAY_KEYS: &[&str] = &["vars_prompt", "strategy"];
const UNSUPPORTED_TASK_KEYS: &[&str] = &["async", "poll"];

/// What a role entry (in `roles:`) or an `import_role` takes beside the
/// role's name: the keywords its tasks inherit.
pub(super) const ROLE_KEYS: &[&str] = &[
    "when",
    "tags",
    "vars",
    "environment",
    "any_errors_fatal",
    "ignore_errors",
    "delegate_to",
    "no_log",
    "check_mode",
    "become",
    "become_user",
    "become_method",
    "become_flags",
];

/// A role named by `roles:` or `import_role`, with the files it reads in
/// place of its `main` ones.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleRef {
    #[serde(deserialize_with = "text")]
    pub name: String,
    #[serde(default, deserialize_with = "some_text")]
    pub tasks_from: Option<String>,
    #[serde(default, deserialize_with = "some_text")]
    pub defaults_from: Option<String>,
    #[serde(default, deserialize_with = "some_text")]
    pub vars_from: Option<String>,
    #[serde(default, deserialize_with = "some_text")]
    pub handlers_from: Option<String>,
    /// Run again in a play that already ran it with the same values.
    #[serde(default, deserialize_with = "flag")]
    pub allow_duplicates: bool,
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Deserialize::deserialize(d).map(|Text(s)| s)
}

fn some_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    text(d).map(Some)
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    Deserialize::deserialize(d).map(|Flag(b)| b)
}

impl RoleRef {
    /// `import_role: NAME` or `import_role: {name: NAME, tasks_from: ...}`.
    pub(crate) fn parse(node: &Node) -> std::result::Result<RoleRef, crate::yaml::DeError> {
        let role = match node.entries() {
            Some(_) => node.to::<RoleRef>()?,
            None => RoleRef {
                name: node.to::<Text>()?.0,
                ..RoleRef::default()
            },
        };
        Ok(role)
    }
}

/// A task as parsed, with the positions of its keys.
pub(super) struct RawTask {
    pub name: Option<String>,
    /// The key as written, and the module with its arguments.
    pub module: Option<(String, Arc<dyn Module>)>,
    pub when: Vec<String>,
    pub tags: Vec<String>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub register: Option<String>,
    pub retries: Option<u32>,
    pub delay: Option<f64>,
    pub until: Vec<String>,
    pub timeout: Option<u32>,
    pub ignore_errors: bool,
    pub run_once: bool,
    pub changed_when: Vec<String>,
    pub failed_when: Vec<String>,
    pub no_log: bool,
    pub vars: Vars,
    pub loop_items: Option<serde_json::Value>,
    pub loop_kind: LoopKind,
    pub loop_control: LoopControl,
    pub check_mode: Option<bool>,
    pub delegate_to: Option<String>,
    pub environment: Vars,
    pub any_errors_fatal: bool,
    /// `become`, `become_user`, ... as this task or block says them.
    pub escalate: Keywords,
    /// `import_tasks: FILE`: this entry stands for that file's tasks.
    pub import: Option<String>,
    /// `import_role` (or an entry of `roles:`): this entry stands for the
    /// role's tasks.
    pub role: Option<RoleRef>,
    /// `block:`: this entry groups tasks.
    pub block: Option<RawBlock>,
    /// The first key's position.
    pub pos: Pos,
    /// Each key as written, with its position.
    pub keys: Vec<(String, Pos)>,
}

impl RawTask {
    /// Where `key` sits (the module's key for `"module"`), else the task start.
    pub fn key_pos(&self, key: &str) -> Pos {
        let key = match (key, &self.module) {
            ("module", Some((module_key, _))) => module_key.as_str(),
            _ => key,
        };
        key_pos(&self.keys, key, self.pos)
    }
}

/// The three task lists of a `block`.
pub(super) struct RawBlock {
    pub body: Vec<RawTask>,
    pub rescue: Vec<RawTask>,
    pub always: Vec<RawTask>,
}

/// A play as parsed, with the positions of its keys.
pub(super) struct RawPlay {
    pub name: Option<String>,
    pub hosts: String,
    pub serial: Vec<Serial>,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    pub environment: Vars,
    pub vars: Vars,
    /// `vars_files:` entries: a file, or files of which the first found
    /// is read.
    pub vars_files: Vec<(Vec<String>, Pos)>,
    /// `remote_user`: the user to connect as where the host's variables
    /// name none.
    pub remote_user: Option<String>,
    /// `connection: local` (true) or `ssh` (false), where the host's
    /// variables say nothing.
    pub local: Option<bool>,
    pub tags: Vec<String>,
    pub pre_tasks: Vec<RawTask>,
    /// `roles:`, each entry as an `import_role`.
    pub roles: Vec<RawTask>,
    pub tasks: Vec<RawTask>,
    pub post_tasks: Vec<RawTask>,
    pub handlers: Vec<RawTask>,
    /// `become`, `become_user`, ... as this play says them.
    pub escalate: Keywords,
    /// `import_playbook: NAME`: this entry stands for another playbook's plays.
    pub import: Option<String>,
    pub pos: Pos,
    pub keys: Vec<(String, Pos)>,
}

impl RawPlay {
    pub fn key_pos(&self, key: &str) -> Pos {
        key_pos(&self.keys, key, self.pos)
    }
}

fn key_pos(keys: &[(String, Pos)], key: &str, default: Pos) -> Pos {
    keys.iter()
        .find(|(k, _)| k == key)
        .map_or(default, |(_, p)| *p)
}

/// The plays of a playbook document (`None` for an empty file).
pub(super) fn plays(doc: Option<&Node>, reg: Registry) -> Res<Vec<RawPlay>> {
    list(doc, "a list of plays (`- hosts: ...`)")?
        .iter()
        .map(|p| play(p, reg))
        .collect()
}

/// The tasks of a task file (`import_tasks`), or of `tasks:`/`handlers:`.
pub(super) fn tasks(doc: Option<&Node>, reg: Registry) -> Res<Vec<RawTask>> {
    list(doc, "a list of tasks")?
        .iter()
        .map(|t| task(t, reg))
        .collect()
}

/// A role's `meta/main.yml`: its `dependencies` (entries as in `roles:`)
/// and `allow_duplicates`; other keys (`galaxy_info`...) are Galaxy's.
pub(super) fn meta(doc: Option<&Node>, reg: Registry) -> Res<(Vec<RawTask>, bool)> {
    let Some(doc) = doc.filter(|d| !d.is_null()) else {
        return Ok((Vec::new(), false));
    };
    let mut deps = Vec::new();
    let mut allow = false;
    for (key, pos, v) in entries(doc, "a mapping with `dependencies`")? {
        match key {
            "dependencies" => {
                deps = list(Some(v), "a list of roles")?
                    .iter()
                    .map(|r| role_entry(r, reg))
                    .collect::<Res<_>>()?
            }
            "allow_duplicates" => allow = value::<Flag>(key, v)?.0,
            _ => {
                let _ = pos;
            }
        }
    }
    Ok((deps, allow))
}

/// The items of a sequence; nothing for null.
fn list<'a>(node: Option<&'a Node>, expected: &str) -> Res<&'a [Node]> {
    match node {
        None => Ok(&[]),
        Some(node) if node.is_null() => Ok(&[]),
        Some(node) => node.items().ok_or_else(|| wrong_type(node, expected, None)),
    }
}

/// `vars_files:`: each entry a file name, or a list of them (the first
/// that exists is read).
fn vars_files(node: &Node) -> Res<Vec<(Vec<String>, Pos)>> {
    let expected = "a list of vars file names";
    list(Some(node), expected)?
        .iter()
        .map(|item| {
            let names = match item.text() {
                Some(name) => vec![name.to_owned()],
                None => list(Some(item), expected)?
                    .iter()
                    .map(|n| {
                        n.text()
                            .map(str::to_owned)
                            .ok_or_else(|| wrong_type(n, "a file name", None))
                    })
                    .collect::<Res<_>>()?,
            };
            Ok((names, item.pos))
        })
        .collect()
}

fn wrong_type(node: &Node, expected: &str, field: Option<&str>) -> Located {
    at(
        node.pos,
        InputKind::WrongType {
            field: field.map(str::to_owned),
            found: node.unexpected().to_string(),
            expected: expected.to_owned(),
        },
    )
}

/// `serial:` one batch size, or a list of them (`[1, 3, "50%"]`).
fn serial(key: &str, node: &Node) -> Res<Vec<Serial>> {
    match node.items() {
        Some(items) => items
            .iter()
            .map(|item| Ok(value::<SerialValue>(key, item)?.0))
            .collect(),
        None => Ok(vec![value::<SerialValue>(key, node)?.0]),
    }
}

/// The value under `key`, deserialized as `T`.
fn value<'a, T: Deserialize<'a>>(key: &str, node: &'a Node) -> Res<T> {
    node.to::<T>().map_err(|e| {
        let (pos, kind) = e.into_input(node.pos, Some(key));
        at(pos, kind)
    })
}

/// The entries of a play or task mapping with their key names, refusing
/// keys that are not strings and keys given twice.
fn entries<'a>(node: &'a Node, expected: &str) -> Res<Vec<(&'a str, Pos, &'a Node)>> {
    let entries = node
        .entries()
        .ok_or_else(|| wrong_type(node, expected, None))?;
    let mut out: Vec<(&str, Pos, &Node)> = Vec::new();
    for (key, value) in entries {
        let name = match key.text() {
            Some(name) if key.entries().is_none() => name,
            _ => return Err(wrong_type(key, "a key name", None)),
        };
        if out.iter().any(|(k, _, _)| *k == name) {
            return Err(at(
                key.pos,
                InputKind::DuplicateKey {
                    key: name.to_owned(),
                },
            ));
        }
        out.push((name, key.pos, value));
    }
    Ok(out)
}

fn play(node: &Node, reg: Registry) -> Res<RawPlay> {
    let mut hosts: Vec<String> = Vec::new();
    let mut p = RawPlay {
        name: None,
        hosts: String::new(),
        serial: Vec::new(),
        max_fail_percentage: None,
        any_errors_fatal: false,
        environment: Vars::new(),
        vars: Vars::new(),
        vars_files: Vec::new(),
        remote_user: None,
        local: None,
        tags: Vec::new(),
        pre_tasks: Vec::new(),
        roles: Vec::new(),
        tasks: Vec::new(),
        post_tasks: Vec::new(),
        handlers: Vec::new(),
        escalate: Keywords::default(),
        import: None,
        pos: node.pos,
        keys: Vec::new(),
    };
    let entries = entries(node, "a play (a mapping with `hosts` and `tasks`)")?;
    for &(key, pos, v) in &entries {
        match key {
            "name" => p.name = Some(value::<Text>(key, v)?.0),
            "hosts" => hosts = value::<List>(key, v)?.0,
            "serial" => p.serial = serial(key, v)?,
            "max_fail_percentage" => p.max_fail_percentage = Some(value::<Percent>(key, v)?.0),
            "any_errors_fatal" => p.any_errors_fatal = value::<Flag>(key, v)?.0,
            "environment" => p.environment = environment(key, v)?,
            "vars" => p.vars = value::<VarMap>(key, &crate::yaml::yaml11(v))?.0,
            "vars_files" => p.vars_files = vars_files(v)?,
            "remote_user" => p.remote_user = Some(value::<Text>(key, v)?.0),
            "connection" => {
                p.local = Some(match value::<Text>(key, v)?.0.trim() {
                    "local" | "ansible.builtin.local" => true,
                    "ssh" | "smart" | "paramiko" | "ansible.builtin.ssh" => false,
                    other => {
                        return Err(at(
                            v.pos,
                            InputKind::Invalid {
                                field: Some("connection".into()),
                                message: format!(
                                    "`{other}`: arpanet connects with `ssh` or runs on this \
                                     machine with `local`"
                                ),
                                hint: None,
                            },
                        ))
                    }
                })
            }
            "import_playbook" => p.import = Some(value::<Text>(key, v)?.0),
            "tags" => p.tags = split_tags(value::<List>(key, v)?.0),
            "tasks" => p.tasks = tasks(Some(v), reg)?,
            "pre_tasks" => p.pre_tasks = tasks(Some(v), reg)?,
            "post_tasks" => p.post_tasks = tasks(Some(v), reg)?,
            "roles" => {
                p.roles = list(Some(v), "a list of roles")?
                    .iter()
                    .map(|r| role_entry(r, reg))
                    .collect::<Res<_>>()?
            }
            "handlers" => p.handlers = tasks(Some(v), reg)?,
            "gather_facts" => {}
            _ if escalation(&mut p.escalate, key, v)? => {}
            _ if UNSUPPORTED_PLAY_KEYS.contains(&key) => {
                return Err(at(pos, InputKind::Unsupported { key: key.into() }))
            }
            _ => {
                return Err(at(
                    pos,
                    InputKind::UnknownPlayKey {
                        key: key.into(),
                        suggestion: closest(key, PLAY_KEYS.iter().copied()).map(str::to_owned),
                        task_key: reg.find(key).is_some() || TASK_KEYS.contains(&key),
                        expected: strings(PLAY_KEYS),
                    },
                ))
            }
        }
        p.keys.push((key.to_owned(), pos));
    }
    if let Some(&(_, pos, _)) = entries.first() {
        p.pos = pos;
    }
    if p.import.is_some() {
        if let Some((other, pos, _)) = entries
            .iter()
            .find(|(k, _, _)| !["import_playbook", "name", "tags"].contains(k))
        {
            return Err(at(
                *pos,
                InputKind::ImportPlaybookWith {
                    key: (*other).to_owned(),
                },
            ));
        }
    } else if hosts.iter().all(|h| h.trim().is_empty()) {
        return Err(at(p.pos, InputKind::NoHosts));
    }
    p.hosts = hosts.join(",");
    Ok(p)
}

fn task(node: &Node, reg: Registry) -> Res<RawTask> {
    let mut t = RawTask {
        name: None,
        module: None,
        when: Vec::new(),
        tags: Vec::new(),
        notify: Vec::new(),
        listen: Vec::new(),
        register: None,
        retries: None,
        delay: None,
        until: Vec::new(),
        timeout: None,
        ignore_errors: false,
        run_once: false,
        changed_when: Vec::new(),
        failed_when: Vec::new(),
        no_log: false,
        vars: Vars::new(),
        loop_items: None,
        loop_kind: LoopKind::List,
        loop_control: LoopControl::default(),
        check_mode: None,
        delegate_to: None,
        environment: Vars::new(),
        any_errors_fatal: false,
        escalate: Keywords::default(),
        import: None,
        role: None,
        block: None,
        pos: node.pos,
        keys: Vec::new(),
    };
    let entries = entries(
        node,
        "a task (a mapping with one module, e.g. `command: echo hi`)",
    )?;
    let is_block = entries.iter().any(|(k, _, _)| *k == "block");
    let extra_args = entries
        .iter()
        .find(|(k, _, _)| *k == "args")
        .map(|&(_, _, v)| v);
    let mut block = RawBlock {
        body: Vec::new(),
        rescue: Vec::new(),
        always: Vec::new(),
    };
    for &(key, pos, v) in &entries {
        let key = keyword(key);
        match key {
            "name" => t.name = Some(value::<Text>(key, v)?.0),
            "when" => t.when = value::<Cond>(key, v)?.0,
            "tags" => t.tags = split_tags(value::<List>(key, v)?.0),
            "notify" => t.notify = value::<List>(key, v)?.0,
            "listen" => t.listen = value::<List>(key, v)?.0,
            "register" => t.register = Some(value::<Ident>(key, v)?.0),
            "retries" => t.retries = Some(value::<Count>(key, v)?.0),
            "delay" => t.delay = Some(value::<Seconds>(key, v)?.0),
            "until" => t.until = value::<Cond>(key, v)?.0,
            "timeout" => t.timeout = Some(value::<WholeSeconds>(key, v)?.0),
            "ignore_errors" => t.ignore_errors = value::<Flag>(key, v)?.0,
            "run_once" => t.run_once = value::<Flag>(key, v)?.0,
            "changed_when" => t.changed_when = value::<Cond>(key, v)?.0,
            "failed_when" => t.failed_when = value::<Cond>(key, v)?.0,
            "no_log" => t.no_log = value::<Flag>(key, v)?.0,
            "vars" => t.vars = value::<VarMap>(key, &crate::yaml::yaml11(v))?.0,
            "loop" | "with_items" | "with_list" | "with_indexed_items" | "with_dict" => {
                let items: serde_json::Value = value(key, &crate::yaml::yaml11(v))?;
                let fits = match key {
                    "with_dict" => items.is_object() || items.is_string(),
                    _ => items.is_array() || items.is_string(),
                };
                if !fits {
                    return Err(at(v.pos, InputKind::LoopNotList { key: key.into() }));
                }
                if let Some((first, _)) = t.keys.iter().find(|(k, _)| is_loop_key(k)) {
                    return Err(at(
                        pos,
                        InputKind::TwoLoops {
                            first: first.clone(),
                            second: key.into(),
                        },
                    ));
                }
                t.loop_kind = match key {
                    "with_items" => LoopKind::Items,
                    "with_dict" => LoopKind::Dict,
                    "with_indexed_items" => LoopKind::Indexed,
                    _ => LoopKind::List,
                };
                t.loop_items = Some(items);
            }
            "loop_control" => t.loop_control = value::<LoopControl>(key, v)?,
            "check_mode" => t.check_mode = Some(value::<Flag>(key, v)?.0),
            "import_tasks" => t.import = Some(value::<Text>(key, v)?.0),
            "import_role" => {
                t.role = Some(RoleRef::parse(v).map_err(|e| {
                    let (pos, kind) = e.into_input(v.pos, Some(key));
                    at(pos, kind)
                })?)
            }
            "delegate_to" => t.delegate_to = Some(value::<Text>(key, v)?.0),
            "environment" => t.environment = environment(key, v)?,
            "any_errors_fatal" => t.any_errors_fatal = value::<Flag>(key, v)?.0,
            "local_action" => {
                let (name, args) = local_action(v)?;
                let def = reg
                    .find(&name)
                    .ok_or_else(|| at(v.pos, unknown_task_key(&name, true, reg)))?;
                if let Some((first, _)) = &t.module {
                    return Err(at(
                        pos,
                        InputKind::TwoModules {
                            first: first.clone(),
                            second: key.into(),
                        },
                    ));
                }
                let module = def.parse(&args).map_err(|e| bad_args(e, &name, &args))?;
                t.module = Some((key.to_owned(), module));
                t.delegate_to = Some("localhost".into());
            }
            "block" if is_block => block.body = tasks(Some(v), reg)?,
            "rescue" if is_block => block.rescue = tasks(Some(v), reg)?,
            "always" if is_block => block.always = tasks(Some(v), reg)?,
            "rescue" | "always" => {
                return Err(at(pos, InputKind::WithoutBlock { key: key.into() }))
            }
            // Joined to the module's own arguments below.
            "args" if !is_block => {}
            _ if escalation(&mut t.escalate, key, v)? => {}
            _ => match reg.find(key) {
                Some(def) => {
                    if let Some((first, _)) = &t.module {
                        return Err(at(
                            pos,
                            InputKind::TwoModules {
                                first: first.clone(),
                                second: key.into(),
                            },
                        ));
                    }
                    let v = &with_args(def.name(), v, extra_args)?;
                    let module =
                        deferred::parse_or_defer(def, v).map_err(|e| bad_args(e, key, v))?;
                    t.module = Some((key.to_owned(), module));
                }
                None if UNSUPPORTED_TASK_KEYS.contains(&key) => {
                    return Err(at(pos, InputKind::Unsupported { key: key.into() }))
                }
                None => return Err(at(pos, unknown_task_key(key, t.module.is_none(), reg))),
            },
        }
        t.keys.push((key.to_owned(), pos));
    }
    if let Some(&(_, pos, _)) = entries.first() {
        t.pos = pos;
    }
    if is_block {
        if let Some((other, pos, _)) = entries.iter().find(|(k, _, _)| !BLOCK_KEYS.contains(k)) {
            return Err(at(
                *pos,
                InputKind::BlockWith {
                    key: (*other).to_owned(),
                    takes: strings(&BLOCK_KEYS[3..]),
                },
            ));
        }
        t.block = Some(block);
    } else if t.role.is_some() {
        if let Some((other, pos, _)) = entries.iter().find(|(k, _, _)| {
            let k = keyword(k);
            k != "import_role" && k != "name" && !ROLE_KEYS.contains(&k)
        }) {
            return Err(at(*pos, role_with(other, true)));
        }
    } else if t.import.is_some() {
        let beside = ["import_tasks", "name", "when", "tags", "vars"];
        if let Some((other, pos, _)) = entries
            .iter()
            .find(|(k, _, _)| !beside.contains(&keyword(k)))
        {
            return Err(at(
                *pos,
                InputKind::ImportTasksWith {
                    key: (*other).to_owned(),
                },
            ));
        }
    } else if t.module.is_none() {
        return Err(at(
            t.pos,
            InputKind::NoModule {
                modules: module_names(reg),
            },
        ));
    }
    Ok(t)
}

/// A task keyword that Ansible also takes by its collection name
/// (`ansible.builtin.import_tasks`), as its bare name.
fn keyword(key: &str) -> &str {
    match key {
        "ansible.builtin.import_tasks" | "ansible.legacy.import_tasks" => "import_tasks",
        "ansible.builtin.import_role" | "ansible.legacy.import_role" => "import_role",
        _ => key,
    }
}

/// An entry of `roles:`: a role's name, or a mapping with `role` (or
/// `name`), the keywords its tasks inherit and, as in Ansible, any other
/// key as a role parameter (`- {role: consul, consul_port: 80}`); read as
/// the `import_role` it stands for, its parameters added to its `vars:`.
/// A key that looks like a misspelt keyword (`whne`) is an error rather
/// than a parameter.
fn role_entry(node: &Node, reg: Registry) -> Res<RawTask> {
    let key = |pos| Node {
        kind: Kind::Scalar {
            text: "import_role".into(),
            plain: true,
        },
        pos,
    };
    let Some(entries) = node.entries() else {
        let map = Kind::Map(vec![(key(node.pos), node.clone())]);
        return task(
            &Node {
                kind: map,
                pos: node.pos,
            },
            reg,
        );
    };
    let name_key = match entries.iter().any(|(k, _)| k.text() == Some("role")) {
        true => "role",
        false => "name",
    };
    let mut out = Vec::new();
    let mut params = Vec::new();
    for (k, v) in entries {
        match k.text() {
            Some(text) if text == name_key => out.insert(0, (key(k.pos), v.clone())),
            Some(text) if ROLE_KEYS.contains(&text) => out.push((k.clone(), v.clone())),
            Some(text) if is_param(text) => params.push((k.clone(), v.clone())),
            other => return Err(at(k.pos, role_with(other.unwrap_or("?"), false))),
        }
    }
    if let Some((first, _)) = params.first() {
        let pos = first.pos;
        match out.iter_mut().find(|(k, _)| k.text() == Some("vars")) {
            Some((
                _,
                Node {
                    kind: Kind::Map(vars),
                    ..
                },
            )) => {
                vars.retain(|(k, _)| !params.iter().any(|(p, _)| p.text() == k.text()));
                vars.extend(params);
            }
            Some((_, other)) => {
                return Err(at(
                    other.pos,
                    InputKind::Invalid {
                        field: Some("vars".into()),
                        message: "a role entry's `vars` must be a mapping".into(),
                        hint: None,
                    },
                ))
            }
            None => {
                let vars = Node {
                    kind: Kind::Scalar {
                        text: "vars".into(),
                        plain: true,
                    },
                    pos,
                };
                out.push((
                    vars,
                    Node {
                        kind: Kind::Map(params),
                        pos,
                    },
                ));
            }
        }
    }
    if out
        .first()
        .is_none_or(|(k, _)| k.text() != Some("import_role"))
    {
        return Err(at(
            node.pos,
            InputKind::MissingArgument {
                module: None,
                argument: "role".into(),
            },
        ));
    }
    task(
        &Node {
            kind: Kind::Map(out),
            pos: node.pos,
        },
        reg,
    )
}

/// A module's arguments with the task's `args:` (Ansible's way of giving
/// `creates`, `chdir` and the like beside a free-form command) joined in:
/// the module's own keys win; a free-form `command`/`shell` line becomes
/// its `cmd`, and another module's line of `key=value` words its mapping.
fn with_args(module: &str, node: &Node, args: Option<&Node>) -> Res<Node> {
    let scalar = |text: &str, plain: bool| Node {
        kind: Kind::Scalar {
            text: text.into(),
            plain,
        },
        pos: node.pos,
    };
    // `MODULE: key=value ...` is that mapping, values as strings.
    let pairs = match &node.kind {
        Kind::Scalar { text, .. } if !matches!(module, "command" | "shell") => {
            crate::modules::command::key_values(text)
        }
        _ => None,
    };
    let mapped;
    let node = match pairs {
        Some(pairs) => {
            mapped = Node {
                kind: Kind::Map(
                    pairs
                        .iter()
                        .map(|(k, v)| (scalar(k, true), scalar(v, false)))
                        .collect(),
                ),
                pos: node.pos,
            };
            &mapped
        }
        None => node,
    };
    let Some(args) = args else {
        return Ok(node.clone());
    };
    let invalid = |pos, message: String| {
        at(
            pos,
            InputKind::Invalid {
                field: Some("args".into()),
                message,
                hint: None,
            },
        )
    };
    let Some(extra) = args.entries() else {
        return Err(invalid(args.pos, "`args` must be a mapping".into()));
    };
    let mut joined = match &node.kind {
        // `- shell:` with every argument under `args:`
        _ if node.is_null() => Vec::new(),
        Kind::Map(own) => own.clone(),
        Kind::Scalar { text, .. } if matches!(module, "command" | "shell") => {
            // the line's own `creates=`-style words, as without `args`
            let line = crate::modules::command::inline_options(text).map_err(|e| match e {
                crate::modules::BadArgs::Invalid { message, .. } => invalid(node.pos, message),
                crate::modules::BadArgs::De(_) => invalid(node.pos, "a bad command line".into()),
            })?;
            let cmd = match line.cmd.as_deref() {
                Some(cmd) if cmd != text => scalar(cmd, false),
                _ => node.clone(),
            };
            let mut own = vec![(scalar("cmd", true), cmd)];
            let options = [
                ("creates", line.creates),
                ("removes", line.removes),
                ("chdir", line.chdir),
                ("stdin", line.stdin),
            ];
            for (key, value) in options {
                if let Some(value) = value {
                    own.push((scalar(key, true), scalar(&value, false)));
                }
            }
            own
        }
        _ => {
            return Err(invalid(
                args.pos,
                format!("`args` goes with `{module}` written as a mapping of its arguments"),
            ))
        }
    };
    for (k, v) in extra {
        if !joined.iter().any(|(own, _)| own.text() == k.text()) {
            joined.push((k.clone(), v.clone()));
        }
    }
    Ok(Node {
        kind: Kind::Map(joined),
        pos: node.pos,
    })
}

/// Whether `key` of a role entry is a role parameter: a variable name
/// that is not a near miss of a keyword the entry takes.
fn is_param(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && closest(key, ROLE_KEYS.iter().copied().chain(["role", "name"])).is_none()
}

/// A key a role entry or `import_role` does not take.
fn role_with(key: &str, import: bool) -> InputKind {
    let takes = match import {
        true => ["name"]
            .iter()
            .chain(ROLE_KEYS)
            .copied()
            .collect::<Vec<_>>(),
        false => ROLE_KEYS.to_vec(),
    };
    InputKind::RoleWith {
        import,
        key: key.to_owned(),
        suggestion: closest(key, takes.iter().copied()).map(str::to_owned),
        takes: strings(&takes),
    }
}

fn is_loop_key(key: &str) -> bool {
    key == "loop" || key.starts_with("with_")
}

/// `environment:`: variable names to values (templates); names must be
/// ones a shell can export.
fn environment(key: &str, node: &Node) -> Res<Vars> {
    let vars = value::<VarMap>(key, node)?.0;
    let shell_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if let Some(bad) = vars.keys().find(|k| !shell_name(k)) {
        let pos = node
            .entries()
            .and_then(|e| e.iter().find(|(k, _)| k.text() == Some(bad)))
            .map_or(node.pos, |(k, _)| k.pos);
        return Err(at(
            pos,
            InputKind::Invalid {
                field: Some(key.into()),
                message: format!("`{bad}` is not an environment variable name"),
                hint: Some("use letters, digits and `_`, not starting with a digit".into()),
            },
        ));
    }
    Ok(vars)
}

/// `local_action: MODULE ARGS` (free-form) or `local_action: {module: NAME,
/// ARG: ...}`: the module's name and its arguments as a node.
fn local_action(node: &Node) -> Res<(String, Node)> {
    if let Some(text) = node.text().filter(|_| node.entries().is_none()) {
        let text = text.trim();
        let (name, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        if name.is_empty() {
            return Err(wrong_type(
                node,
                "`MODULE ARGS`, or a mapping with `module`",
                Some("local_action"),
            ));
        }
        return Ok((name.to_owned(), node.with_text(rest.trim())));
    }
    let module = node
        .entries()
        .and_then(|e| e.iter().find(|(k, _)| k.text() == Some("module")))
        .and_then(|(_, v)| v.text())
        .ok_or_else(|| {
            wrong_type(
                node,
                "`MODULE ARGS`, or a mapping with `module`",
                Some("local_action"),
            )
        })?;
    Ok((module.to_owned(), node.without_key("module")))
}

/// The registry's canonical module names.
fn module_names(reg: Registry) -> Vec<String> {
    reg.all().map(|m| m.name().to_owned()).collect()
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// A key that is neither a task keyword nor a module, with the nearest of
/// either (keeping an `ansible.builtin.` prefix).
fn unknown_task_key(key: &str, no_module_yet: bool, reg: Registry) -> InputKind {
    let prefix = ["ansible.builtin.", "ansible.legacy."]
        .into_iter()
        .find(|p| key.starts_with(p));
    let word = prefix.map_or(key, |p| &key[p.len()..]);
    let candidates = TASK_KEYS.iter().copied().chain(reg.names());
    let suggestion = closest(word, candidates).map(|c| format!("{}{c}", prefix.unwrap_or("")));
    InputKind::UnknownTaskKey {
        key: key.to_owned(),
        suggestion,
        maybe_module: no_module_yet && !key.contains(' '),
        modules: module_names(reg),
        keywords: strings(TASK_KEYS),
    }
}

/// A module's refusal of its arguments, located: at the bad argument, or
/// at the arguments for a problem with them together.
fn bad_args(e: BadArgs, key: &str, args: &Node) -> Located {
    match e {
        BadArgs::De(e) => {
            let (pos, kind) = e.into_input(args.pos, Some(key));
            at(pos, kind)
        }
        BadArgs::Invalid { message, hint } => at(
            args.pos,
            InputKind::Invalid {
                field: Some(key.to_owned()),
                message,
                hint,
            },
        ),
    }
}

/// A `become*` keyword of a play, block or task into `into`; false for any
/// other key.
pub(super) fn escalation(into: &mut Keywords, key: &str, v: &Node) -> Res<bool> {
    match key {
        "become" => into.enabled = Some(value::<Flag>(key, v)?.0),
        "become_user" => into.user = Some(value::<Text>(key, v)?.0),
        "become_flags" => into.flags = Some(value::<Text>(key, v)?.0),
        "become_method" => {
            let name = value::<Text>(key, v)?.0;
            let method = Method::parse(&name).ok_or_else(|| {
                at(
                    v.pos,
                    InputKind::Invalid {
                        field: Some(key.to_owned()),
                        message: format!("`{name}` is not a become method arpanet knows"),
                        hint: Some(format!(
                            "use one of {}",
                            Method::NAMES
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    },
                )
            })?;
            into.method = Some(method);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Split `tags: a, b` as Ansible does.
fn split_tags(list: Vec<String>) -> Vec<String> {
    list.iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}
