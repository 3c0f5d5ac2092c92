//! Deserializing playbook YAML into the typed model, with positions.
//!
//! Plays and tasks are mappings with a variable key (the module), so they
//! have hand-written visitors; module arguments are derived structs with
//! `deny_unknown_fields`. Nothing here walks a raw YAML value by key.
//!
//! Positions. `serde_norway` stamps an error raised inside a `Deserialize`
//! impl with the position of the YAML node being deserialized when it was
//! raised (the key for a bad key, the value for a bad value, the start of a
//! mapping for a missing field). We rely on that for every error, and check
//! keys as they are read so a bad key is reported at the key itself.
//!
//! A successful parse carries no positions, yet a task must know its line.
//! So each mapping key is read through [`KeyProbe`], which records the key
//! and then fails on purpose: the failure comes back stamped with the key's
//! line and column, which we read from its message and keep; the key's event
//! has been consumed by then, exactly as on success, so the mapping goes on
//! to its value. The tests in `playbook/tests.rs` pin this behaviour down.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{
    AssertArgs, CommandArgs, DebugArgs, FileArgs, FileContentArgs, FileState, Module, PortState,
    Serial, ServiceArgs, ServiceState, WaitForArgs,
};
use crate::suggest::closest;
use crate::vars::Vars;

/// Separates a message from its hint inside a serde error message.
pub(super) const HINT_SEP: char = '\u{1f}';
/// The message of a key probe's deliberate failure.
const PROBE: &str = "\u{1}arpanet key probe\u{1}";

/// A 1-based line and column in the playbook text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A serde error whose message carries a hint for [`super::yaml_error`].
fn hinted<E: de::Error>(message: impl fmt::Display, hint: Option<String>) -> E {
    match hint {
        Some(hint) => E::custom(format!("{message}{HINT_SEP}{hint}")),
        None => E::custom(message),
    }
}

/// `serde_norway` renders a positioned error as `... at line L column C`;
/// a position of line 1 column 1 is left out.
fn pos_from_message(message: &str) -> Pos {
    let parsed = message.rsplit_once(" at line ").and_then(|(_, tail)| {
        let (line, column) = tail.split_once(" column ")?;
        Some(Pos {
            line: line.trim().parse().ok()?,
            column: column.trim().parse().ok()?,
        })
    });
    parsed.unwrap_or(Pos { line: 1, column: 1 })
}

// ---------------------------------------------------------------------------
// Keys

/// Play keys; `gather_facts` is accepted and ignored.
pub(super) const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "serial",
    "max_fail_percentage",
    "vars",
    "tags",
    "tasks",
    "handlers",
    "gather_facts",
    "import_playbook",
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
    "ignore_errors",
    "run_once",
    "changed_when",
    "failed_when",
    "no_log",
    "vars",
    "loop",
    "with_items",
    "check_mode",
    "import_tasks",
];

/// Module names as written, canonical first.
pub(super) const MODULES: &[&str] = &[
    "command",
    "shell",
    "template",
    "copy",
    "file",
    "service",
    "wait_for",
    "debug",
    "set_fact",
    "docker_image",
    "docker_container",
    "systemd",
    "cluster_secrets",
];

/// Ansible keys people will try that arpanet does not implement.
const UNSUPPORTED_PLAY_KEYS: &[&str] = &[
    "roles",
    "pre_tasks",
    "post_tasks",
    "become",
    "become_user",
    "remote_user",
    "vars_files",
    "vars_prompt",
    "environment",
    "connection",
    "strategy",
    "any_errors_fatal",
];
const UNSUPPORTED_TASK_KEYS: &[&str] = &[
    "with_dict",
    "loop_control",
    "become",
    "become_user",
    "delegate_to",
    "environment",
    "args",
    "async",
    "poll",
    "block",
    "rescue",
    "always",
    "listen",
    "include_tasks",
    "include_role",
    "import_role",
];

/// The module a task key names (`ansible.builtin.X` and `systemd` included).
pub(super) fn module_kind(key: &str) -> Option<&'static str> {
    let bare = key.strip_prefix("ansible.builtin.").unwrap_or(key);
    Some(match bare {
        "command" => "command",
        "shell" => "shell",
        "template" => "template",
        "copy" => "copy",
        "file" => "file",
        "service" | "systemd" => "service",
        "wait_for" => "wait_for",
        "debug" => "debug",
        "set_fact" => "set_fact",
        "assert" => "assert",
        "docker_image" | "community.docker.docker_image" => "docker_image",
        "docker_container" | "community.docker.docker_container" => "docker_container",
        "cluster_secrets" => "cluster_secrets",
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Keys {
    Play,
    Task,
}

impl Keys {
    /// Reject a key that does not belong, repeats, or is a second module.
    fn check<E: de::Error>(
        self,
        key: &str,
        seen: &[(String, Pos)],
        module: Option<&str>,
    ) -> Result<(), E> {
        if seen.iter().any(|(k, _)| k == key) {
            return Err(E::custom(format!("duplicate key `{key}`")));
        }
        match self {
            Keys::Play => {
                if PLAY_KEYS.contains(&key) {
                    return Ok(());
                }
                if UNSUPPORTED_PLAY_KEYS.contains(&key) {
                    return Err(E::custom(format!(
                        "`{key}` is not supported by arpanet playbooks"
                    )));
                }
                let hint = match closest(key, PLAY_KEYS.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None if module_kind(key).is_some() || TASK_KEYS.contains(&key) => {
                        "tasks go in a list under `tasks:`".to_owned()
                    }
                    None => format!("a play takes {}", list(PLAY_KEYS)),
                };
                Err(hinted(format!("unknown key `{key}` in play"), Some(hint)))
            }
            Keys::Task => {
                if TASK_KEYS.contains(&key) {
                    return Ok(());
                }
                if module_kind(key).is_some() {
                    return match module {
                        Some(first) => Err(hinted(
                            format!("a task takes one module, found `{first}` and `{key}`"),
                            Some("split it into two tasks".to_owned()),
                        )),
                        None => Ok(()),
                    };
                }
                if UNSUPPORTED_TASK_KEYS.contains(&key) {
                    return Err(E::custom(format!(
                        "`{key}` is not supported by arpanet playbooks"
                    )));
                }
                let bare = key.strip_prefix("ansible.builtin.");
                let candidates = TASK_KEYS.iter().chain(MODULES).copied();
                let hint = match closest(bare.unwrap_or(key), candidates) {
                    Some(c) if bare.is_some() => format!("did you mean `ansible.builtin.{c}`?"),
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!(
                        "a task takes one module ({}) and keywords ({})",
                        list(&MODULES[..9]),
                        list(TASK_KEYS)
                    ),
                };
                let what = if module.is_none() && !key.contains(' ') {
                    "unknown module or key"
                } else {
                    "unknown key"
                };
                Err(hinted(format!("{what} `{key}` in task"), Some(hint)))
            }
        }
    }
}

fn list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads one mapping key, checks it, and learns its position (see the
/// module documentation).
struct KeyProbe<'a> {
    keys: Keys,
    seen: &'a [(String, Pos)],
    module: Option<&'a str>,
    slot: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        self.keys.check(key, self.seen, self.module)?;
        *self.slot = Some(key.to_owned());
        Err(E::custom(PROBE))
    }
}

/// The next key of `map` and its position, or `None` at the end.
fn next_key<'de, A: MapAccess<'de>>(
    map: &mut A,
    keys: Keys,
    seen: &[(String, Pos)],
    module: Option<&str>,
) -> Result<Option<(String, Pos)>, A::Error> {
    let mut slot = None;
    let probe = KeyProbe {
        keys,
        seen,
        module,
        slot: &mut slot,
    };
    match map.next_key_seed(probe) {
        Ok(None) => Ok(None),
        Ok(Some(())) => Err(de::Error::custom(
            "internal error: the key probe did not fire",
        )),
        Err(err) => match slot {
            Some(key) => Ok(Some((key, pos_from_message(&err.to_string())))),
            None => Err(err),
        },
    }
}

// ---------------------------------------------------------------------------
// Scalars

/// Any scalar, as written: `8500`, `0644` and `yes` are the strings they look
/// like (so `mode: 0644` is `"0644"`, never the YAML 1.1 octal number).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// Parse a scalar's text with `parse`; a failure names what was expected.
/// The parse runs inside the visitor so the error gets the value's position.
fn parse_scalar<'de, D, T>(
    deserializer: D,
    expected: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T> {
        expected: &'static str,
        parse: fn(&str) -> Option<T>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expected)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v.trim())
                .ok_or_else(|| E::custom(format!("expected {}, found `{v}`", self.expected)))
        }
    }
    deserializer.deserialize_str(V { expected, parse })
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "true or false (or yes/no)", crate::truth::parse_bool).map(Flag)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Count(pub u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a whole number", |s| s.parse().ok()).map(Count)
    }
}

/// A non-negative number of seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seconds(pub f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a number of seconds", |s| {
            s.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0)
        })
        .map(Seconds)
    }
}

/// A percentage: `30`, `30%` or `12.5`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a percentage from 0 to 100", parse_percent).map(Percent)
    }
}

fn parse_percent(s: &str) -> Option<f64> {
    let n: f64 = s.strip_suffix('%').unwrap_or(s).trim().parse().ok()?;
    (0.0..=100.0).contains(&n).then_some(n)
}

/// `serial:` a host count or `"30%"`; `0` means all hosts at once.
pub(super) struct SerialValue(pub Option<Serial>);

impl<'de> Deserialize<'de> for SerialValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a number of hosts or a percentage such as `30%`", |s| {
            if s.ends_with('%') {
                return parse_percent(s)
                    .filter(|p| *p > 0.0)
                    .map(|p| Some(Serial::Percent(p)));
            }
            match s.parse::<usize>().ok()? {
                0 => Some(None),
                n => Some(Some(Serial::Count(n))),
            }
        })
        .map(SerialValue)
    }
}

/// A variable name, as `register:` takes.
pub(super) struct Ident(pub String);

impl<'de> Deserialize<'de> for Ident {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a variable name (letters, digits and `_`)", |s| {
            let mut chars = s.chars();
            let first = chars.next()?;
            ((first.is_ascii_alphabetic() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then(|| s.to_owned())
        })
        .map(Ident)
    }
}

/// A string or a list of strings (`notify`, `tags`, `hosts`).
#[derive(Debug, Clone, Default)]
pub(super) struct List(pub Vec<String>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = List;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<List, E> {
                Ok(List(vec![v.to_owned()]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<List, E> {
                Ok(List(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<List, E> {
                Ok(List(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<List, E> {
                Ok(List(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<List, E> {
                Ok(List(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<List, E> {
                Ok(List(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(item)) = seq.next_element()? {
                    out.push(item);
                }
                Ok(List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `when:` and friends: an expression, a bool, or a list of them.
#[derive(Debug, Clone, Default)]
pub(super) struct Cond(pub Vec<String>);

impl<'de> Deserialize<'de> for Cond {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V {
            nested: bool,
        }
        fn expr(s: &str) -> String {
            // A YAML 1.1 boolean word is a boolean here, as in Ansible.
            match crate::truth::parse_bool(s.trim()) {
                Some(b) if !s.trim().chars().all(|c| c.is_ascii_digit()) => b.to_string(),
                _ => s.to_owned(),
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = Cond;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.nested {
                    f.write_str("an expression")
                } else {
                    f.write_str("an expression, a boolean or a list of expressions")
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cond, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("empty condition"));
                }
                Ok(Cond(vec![expr(v)]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cond, E> {
                Ok(Cond(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cond, E> {
                Ok(Cond(vec![v.to_string()]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cond, E> {
                Ok(Cond(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cond, E> {
                Ok(Cond(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Cond, E> {
                Ok(Cond(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cond, A::Error> {
                if self.nested {
                    return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
                }
                let mut out = Vec::new();
                while let Some(item) = seq.next_element_seed(CondItem)? {
                    out.extend(item.0);
                }
                Ok(Cond(out))
            }
        }
        struct CondItem;
        impl<'de> DeserializeSeed<'de> for CondItem {
            type Value = Cond;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cond, D::Error> {
                d.deserialize_any(V { nested: true })
            }
        }
        d.deserialize_any(V { nested: false })
    }
}

/// A mapping of variables (`vars:`, `set_fact:`); empty when null.
pub(super) struct VarMap(pub Vars);

impl<'de> Deserialize<'de> for VarMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<Vars>::deserialize(d).map(|v| VarMap(v.unwrap_or_default()))
    }
}

// ---------------------------------------------------------------------------
// Module arguments

/// Deserialize a module's arguments as the mapping `T` (or, when `free_form`
/// is given, a plain string), then validate them with `finish`. Errors from
/// `finish` point at the arguments.
fn module_args<'de, D, T, R>(
    d: D,
    expecting: &'static str,
    free_form: Option<fn(String) -> R>,
    finish: fn(T) -> Result<R, String>,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T, R> {
        expecting: &'static str,
        free_form: Option<fn(String) -> R>,
        finish: fn(T) -> Result<R, String>,
    }
    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for V<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<R, E> {
            match self.free_form {
                Some(free) if !v.trim().is_empty() => Ok(free(v.to_owned())),
                _ => Err(de::Error::invalid_type(de::Unexpected::Str(v), &self)),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<R, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<R, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
            let args = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
            (self.finish)(args).map_err(|msg| match msg.split_once(HINT_SEP) {
                Some((m, h)) => hinted(m, Some(h.to_owned())),
                None => de::Error::custom(msg),
            })
        }
    }
    d.deserialize_any(V {
        expecting,
        free_form,
        finish,
    })
}

fn text(t: Option<Text>) -> Option<String> {
    t.map(|t| t.0)
}

/// A file mode: octal digits (`0644`, `644`, `0o644` all become `"0644"`),
/// a symbolic mode (`u+x`, `u=rw,g=r`) or a template. Checked in the
/// visitor so an error points at the value.
pub(super) struct Mode(pub String);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(
            d,
            "an octal mode such as `0644` or a symbolic one such as `u+x`",
            normalize_mode,
        )
        .map(Mode)
    }
}

fn normalize_mode(m: &str) -> Option<String> {
    let digits = m.strip_prefix("0o").unwrap_or(m);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let octal = (3..=5).contains(&digits.len()) && !digits.contains(['8', '9']);
        return octal.then(|| match digits.starts_with('0') {
            true => digits.to_owned(),
            false => format!("0{digits}"),
        });
    }
    // `u+x`, `go-w`, `u=rw,g=r`: who, then an operator, then permissions.
    let symbolic = m.split(',').all(|clause| {
        let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        ops.starts_with(['+', '-', '=']) && ops.bytes().all(|b| b"+-=rwxXst".contains(&b))
    });
    (symbolic || crate::template::is_template(m)).then(|| m.to_owned())
}

fn mode(m: Option<Mode>) -> Result<Option<String>, String> {
    Ok(m.map(|m| m.0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandMap {
    cmd: Option<Text>,
    argv: Option<Vec<Text>>,
    chdir: Option<Text>,
    creates: Option<Text>,
    removes: Option<Text>,
    stdin: Option<Text>,
}

fn command_args(m: CommandMap, shell: bool) -> Result<CommandArgs, String> {
    let args = CommandArgs {
        cmd: text(m.cmd),
        argv: m.argv.map(|v| v.into_iter().map(|t| t.0).collect()),
        chdir: text(m.chdir),
        creates: text(m.creates),
        removes: text(m.removes),
        stdin: text(m.stdin),
    };
    match (&args.cmd, &args.argv) {
        (Some(_), Some(_)) => Err("give either `cmd` or `argv`, not both".into()),
        (None, None) if shell => Err("missing argument `cmd`".into()),
        (None, None) => Err("missing argument `cmd` (or `argv`)".into()),
        (None, Some(_)) if shell => Err(format!(
            "`argv` is only for `command`{HINT_SEP}use `command` with `argv`, or `cmd` with `shell`"
        )),
        (None, Some(argv)) if argv.is_empty() => Err("`argv` is empty".into()),
        _ => Ok(args),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateMap {
    src: Text,
    dest: Text,
    mode: Option<Mode>,
    owner: Option<Text>,
    group: Option<Text>,
    backup: Option<Flag>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyMap {
    src: Option<Text>,
    content: Option<Text>,
    dest: Text,
    mode: Option<Mode>,
    owner: Option<Text>,
    group: Option<Text>,
    backup: Option<Flag>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMap {
    #[serde(alias = "dest", alias = "name")]
    path: Text,
    state: Option<FileState>,
    mode: Option<Mode>,
    owner: Option<Text>,
    group: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceMap {
    name: Text,
    state: Option<ServiceState>,
    enabled: Option<Flag>,
    daemon_reload: Option<Flag>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitForMap {
    host: Option<Text>,
    port: Option<Text>,
    path: Option<Text>,
    state: Option<PortState>,
    delay: Option<Seconds>,
    timeout: Option<Seconds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertMap {
    that: Cond,
    fail_msg: Option<Text>,
    msg: Option<Text>,
    success_msg: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DebugMap {
    msg: Option<Text>,
    var: Option<Text>,
}

/// The arguments of module `kind` (canonical name).
pub(super) struct ModuleSeed(pub &'static str);

impl<'de> DeserializeSeed<'de> for ModuleSeed {
    type Value = Module;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Module, D::Error> {
        match self.0 {
            "command" => module_args(
                d,
                "a command line, or a mapping with `cmd` or `argv`",
                Some(|cmd| {
                    Module::Command(CommandArgs {
                        cmd: Some(cmd),
                        ..CommandArgs::default()
                    })
                }),
                |m| command_args(m, false).map(Module::Command),
            ),
            "shell" => module_args(
                d,
                "a command line, or a mapping with `cmd`",
                Some(|cmd| {
                    Module::Shell(CommandArgs {
                        cmd: Some(cmd),
                        ..CommandArgs::default()
                    })
                }),
                |m| command_args(m, true).map(Module::Shell),
            ),
            "template" => module_args(
                d,
                "a mapping with `src` and `dest`",
                None,
                |m: TemplateMap| {
                    Ok(Module::Template(FileContentArgs {
                        src: Some(m.src.0),
                        content: None,
                        dest: m.dest.0,
                        mode: mode(m.mode)?,
                        owner: text(m.owner),
                        group: text(m.group),
                        backup: m.backup.is_some_and(|f| f.0),
                    }))
                },
            ),
            "copy" => module_args(
                d,
                "a mapping with `src` or `content`, and `dest`",
                None,
                |m: CopyMap| {
                    if m.src.is_some() == m.content.is_some() {
                        return Err("give exactly one of `src` and `content`".into());
                    }
                    Ok(Module::Copy(FileContentArgs {
                        src: text(m.src),
                        content: text(m.content),
                        dest: m.dest.0,
                        mode: mode(m.mode)?,
                        owner: text(m.owner),
                        group: text(m.group),
                        backup: m.backup.is_some_and(|f| f.0),
                    }))
                },
            ),
            "file" => module_args(d, "a mapping with `path`", None, |m: FileMap| {
                Ok(Module::File(FileArgs {
                    path: m.path.0,
                    state: m.state.unwrap_or_default(),
                    mode: mode(m.mode)?,
                    owner: text(m.owner),
                    group: text(m.group),
                }))
            }),
            "service" => module_args(d, "a mapping with `name`", None, |m: ServiceMap| {
                if m.state.is_none() && m.enabled.is_none() && m.daemon_reload.is_none() {
                    return Err(
                        "give at least one of `state`, `enabled` and `daemon_reload`".into(),
                    );
                }
                Ok(Module::Service(ServiceArgs {
                    name: m.name.0,
                    state: m.state,
                    enabled: m.enabled.map(|f| f.0),
                    daemon_reload: m.daemon_reload.is_some_and(|f| f.0),
                }))
            }),
            "wait_for" => module_args(
                d,
                "a mapping with `port` or `path`",
                None,
                |m: WaitForMap| {
                    if m.port.is_some() == m.path.is_some() {
                        return Err("give exactly one of `port` and `path`".into());
                    }
                    Ok(Module::WaitFor(WaitForArgs {
                        host: text(m.host).unwrap_or_else(|| "127.0.0.1".to_owned()),
                        port: text(m.port),
                        path: text(m.path),
                        state: m.state.unwrap_or_default(),
                        delay: m.delay.map_or(0.0, |s| s.0),
                        timeout: m.timeout.map_or(300.0, |s| s.0),
                    }))
                },
            ),
            "debug" => module_args(
                d,
                "a mapping with `msg` or `var`",
                None,
                |m: DebugMap| match (m.msg, m.var) {
                    (Some(msg), None) => Ok(Module::Debug(DebugArgs::Msg(msg.0))),
                    (None, Some(var)) => Ok(Module::Debug(DebugArgs::Var(var.0))),
                    _ => Err("give exactly one of `msg` and `var`".into()),
                },
            ),
            "assert" => module_args(d, "a mapping with `that`", None, |m: AssertMap| {
                Ok(Module::Assert(AssertArgs {
                    that: m.that.0,
                    fail_msg: m.fail_msg.or(m.msg).map(|t| t.0),
                    success_msg: m.success_msg.map(|t| t.0),
                }))
            }),
            "set_fact" => module_args(d, "a mapping of variables", None, |m: Vars| {
                if m.is_empty() {
                    return Err("`set_fact` needs at least one variable".into());
                }
                Ok(Module::SetFact(m))
            }),
            "docker_image" => module_args(d, "a mapping with `name`", None, |m: Vars| {
                docker_keys(&m, DOCKER_IMAGE_KEYS, &["name"])?;
                Ok(Module::DockerImage(m))
            }),
            "docker_container" => module_args(d, "a mapping with `name`", None, |m: Vars| {
                docker_keys(&m, DOCKER_CONTAINER_KEYS, &["name"])?;
                Ok(Module::DockerContainer(m))
            }),
            "cluster_secrets" => module_args(
                d,
                "a mapping with `kind` and `dir`",
                None,
                |m: crate::cluster::secrets::SecretsArgs| Ok(Module::ClusterSecrets(m)),
            ),
            other => Err(de::Error::custom(format!(
                "internal error: no parser for module `{other}`"
            ))),
        }
    }
}

// ---------------------------------------------------------------------------
// Tasks and plays

/// A task as parsed, with the positions of its keys.
pub(super) struct RawTask {
    pub name: Option<String>,
    pub module: Module,
    pub when: Vec<String>,
    pub tags: Vec<String>,
    pub notify: Vec<String>,
    pub register: Option<String>,
    pub retries: Option<u32>,
    pub delay: Option<f64>,
    pub until: Vec<String>,
    pub ignore_errors: bool,
    pub run_once: bool,
    pub changed_when: Vec<String>,
    pub failed_when: Vec<String>,
    pub no_log: bool,
    pub vars: Vars,
    pub loop_items: Option<serde_json::Value>,
    pub check_mode: Option<bool>,
    /// `import_tasks: FILE`: this entry stands for that file's tasks.
    pub import: Option<String>,
    /// The first key's position.
    pub pos: Pos,
    /// Each key as written, with its position.
    pub keys: Vec<(String, Pos)>,
}

impl RawTask {
    /// Where `key` sits (the module key for `"module"`), else the task start.
    pub fn key_pos(&self, key: &str) -> Pos {
        let found = if key == "module" {
            self.keys.iter().find(|(k, _)| module_kind(k).is_some())
        } else {
            self.keys.iter().find(|(k, _)| k == key)
        };
        found.map_or(self.pos, |(_, p)| *p)
    }
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

impl<'de> Deserialize<'de> for RawTask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTask;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a task (a mapping with one module, e.g. `command: echo hi`)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTask, A::Error> {
                let mut keys: Vec<(String, Pos)> = Vec::new();
                let mut module: Option<(String, Module)> = None;
                let mut t = RawTask {
                    name: None,
                    module: Module::SetFact(Vars::new()),
                    when: Vec::new(),
                    tags: Vec::new(),
                    notify: Vec::new(),
                    register: None,
                    retries: None,
                    delay: None,
                    until: Vec::new(),
                    ignore_errors: false,
                    run_once: false,
                    changed_when: Vec::new(),
                    failed_when: Vec::new(),
                    no_log: false,
                    vars: Vars::new(),
                    loop_items: None,
                    check_mode: None,
                    import: None,
                    pos: Pos::default(),
                    keys: Vec::new(),
                };
                let module_key = |m: &Option<(String, Module)>| m.as_ref().map(|(k, _)| k.clone());
                while let Some((key, pos)) =
                    next_key(&mut map, Keys::Task, &keys, module_key(&module).as_deref())?
                {
                    match key.as_str() {
                        "name" => t.name = Some(map.next_value::<Text>()?.0),
                        "when" => t.when = map.next_value::<Cond>()?.0,
                        "tags" => t.tags = split_tags(map.next_value::<List>()?.0),
                        "notify" => t.notify = map.next_value::<List>()?.0,
                        "register" => t.register = Some(map.next_value::<Ident>()?.0),
                        "retries" => t.retries = Some(map.next_value::<Count>()?.0),
                        "delay" => t.delay = Some(map.next_value::<Seconds>()?.0),
                        "until" => t.until = map.next_value::<Cond>()?.0,
                        "ignore_errors" => t.ignore_errors = map.next_value::<Flag>()?.0,
                        "run_once" => t.run_once = map.next_value::<Flag>()?.0,
                        "changed_when" => t.changed_when = map.next_value::<Cond>()?.0,
                        "failed_when" => t.failed_when = map.next_value::<Cond>()?.0,
                        "no_log" => t.no_log = map.next_value::<Flag>()?.0,
                        "vars" => t.vars = map.next_value::<VarMap>()?.0,
                        "loop" | "with_items" => {
                            let items: serde_json::Value = map.next_value()?;
                            if !matches!(
                                items,
                                serde_json::Value::Array(_) | serde_json::Value::String(_)
                            ) {
                                return Err(de::Error::custom(format!(
                                    "`{key}` takes a list, or a template that gives one"
                                )));
                            }
                            t.loop_items = Some(items);
                        }
                        "check_mode" => t.check_mode = Some(map.next_value::<Flag>()?.0),
                        "import_tasks" => t.import = Some(map.next_value::<Text>()?.0),
                        _ => {
                            let kind = module_kind(&key).ok_or_else(|| {
                                de::Error::custom(format!("internal error: key `{key}`"))
                            })?;
                            let args = map.next_value_seed(ModuleSeed(kind))?;
                            module = Some((key.clone(), args));
                        }
                    }
                    keys.push((key, pos));
                }
                if t.import.is_some() {
                    if let Some((other, _)) = keys.iter().find(|(k, _)| {
                        !["import_tasks", "name", "when", "tags", "vars"].contains(&k.as_str())
                    }) {
                        return Err(de::Error::custom(format!(
                            "`import_tasks` takes only `when`, `tags` and `vars` beside it, not `{other}`"
                        )));
                    }
                    t.pos = keys.first().map_or(Pos::default(), |(_, p)| *p);
                    t.keys = keys;
                    return Ok(t);
                }
                let Some((_, args)) = module else {
                    return Err(hinted(
                        "task has no module",
                        Some(format!("add one of {}", list(&MODULES[..9]))),
                    ));
                };
                t.module = args;
                t.pos = keys.first().map_or(Pos::default(), |(_, p)| *p);
                t.keys = keys;
                Ok(t)
            }
        }
        d.deserialize_map(V)
    }
}

/// A play as parsed, with the positions of its keys.
pub(super) struct RawPlay {
    pub name: Option<String>,
    pub hosts: String,
    pub serial: Option<Serial>,
    pub max_fail_percentage: Option<f64>,
    pub vars: Vars,
    pub tags: Vec<String>,
    pub tasks: Vec<RawTask>,
    pub handlers: Vec<RawTask>,
    /// `import_playbook: NAME`: this entry stands for another playbook's plays.
    pub import: Option<String>,
    pub pos: Pos,
    pub keys: Vec<(String, Pos)>,
}

impl RawPlay {
    pub fn key_pos(&self, key: &str) -> Pos {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map_or(self.pos, |(_, p)| *p)
    }
}

impl<'de> Deserialize<'de> for RawPlay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPlay;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a play (a mapping with `hosts` and `tasks`)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPlay, A::Error> {
                let mut keys: Vec<(String, Pos)> = Vec::new();
                let mut hosts = None;
                let mut p = RawPlay {
                    name: None,
                    hosts: String::new(),
                    serial: None,
                    max_fail_percentage: None,
                    vars: Vars::new(),
                    tags: Vec::new(),
                    tasks: Vec::new(),
                    handlers: Vec::new(),
                    import: None,
                    pos: Pos::default(),
                    keys: Vec::new(),
                };
                while let Some((key, pos)) = next_key(&mut map, Keys::Play, &keys, None)? {
                    match key.as_str() {
                        "name" => p.name = Some(map.next_value::<Text>()?.0),
                        "hosts" => hosts = Some(map.next_value::<List>()?.0),
                        "serial" => p.serial = map.next_value::<SerialValue>()?.0,
                        "max_fail_percentage" => {
                            p.max_fail_percentage = Some(map.next_value::<Percent>()?.0)
                        }
                        "vars" => p.vars = map.next_value::<VarMap>()?.0,
                        "import_playbook" => p.import = Some(map.next_value::<Text>()?.0),
                        "tags" => p.tags = split_tags(map.next_value::<List>()?.0),
                        "tasks" => {
                            p.tasks = map
                                .next_value::<Option<Vec<RawTask>>>()?
                                .unwrap_or_default()
                        }
                        "handlers" => {
                            p.handlers = map
                                .next_value::<Option<Vec<RawTask>>>()?
                                .unwrap_or_default()
                        }
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                    keys.push((key, pos));
                }
                let hosts: Vec<String> = hosts.unwrap_or_default();
                if p.import.is_some() {
                    if let Some((other, _)) = keys
                        .iter()
                        .find(|(k, _)| k != "import_playbook" && k != "name")
                    {
                        return Err(de::Error::custom(format!(
                            "`import_playbook` stands alone; `{other}` belongs in the imported playbook"
                        )));
                    }
                } else if hosts.iter().all(|h| h.trim().is_empty()) {
                    return Err(hinted(
                        "play has no `hosts`",
                        Some("add `hosts: all`, or a group such as `hosts: servers`".into()),
                    ));
                }
                p.hosts = hosts.join(",");
                p.pos = keys.first().map_or(Pos::default(), |(_, p)| *p);
                p.keys = keys;
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

/// The document: a list of plays.
pub(super) struct PlayList(pub Vec<RawPlay>);

impl<'de> Deserialize<'de> for PlayList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PlayList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of plays (`- hosts: ...`)")
            }
            fn visit_unit<E: de::Error>(self) -> Result<PlayList, E> {
                Ok(PlayList(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<PlayList, E> {
                Ok(PlayList(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PlayList, A::Error> {
                let mut plays = Vec::new();
                while let Some(play) = seq.next_element()? {
                    plays.push(play);
                }
                Ok(PlayList(plays))
            }
        }
        d.deserialize_any(V)
    }
}

/// Arguments of `docker_image`.
const DOCKER_IMAGE_KEYS: &[&str] = &["name", "force"];

/// Arguments of `docker_container`.
const DOCKER_CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "entrypoint",
    "network_mode",
    "ports",
    "volumes",
    "env",
    "labels",
    "privileged",
    "cap_add",
    "restart",
    "healthcheck",
    "state",
];

/// Reject unknown or missing docker module arguments, with a near miss.
fn docker_keys(args: &Vars, known: &[&str], required: &[&str]) -> Result<(), String> {
    for key in args.keys() {
        if !known.contains(&key.as_str()) {
            let mut message = format!("unknown argument `{key}`");
            if let Some(near) = closest(key, known.iter().copied()) {
                message.push(HINT_SEP);
                message.push_str(&format!("did you mean `{near}`?"));
            }
            return Err(message);
        }
    }
    match required.iter().find(|k| !args.contains_key(**k)) {
        Some(missing) => Err(format!("missing argument `{missing}`")),
        None => Ok(()),
    }
}
