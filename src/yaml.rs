//! YAML read into a small tree of located nodes.
//!
//! Every input file arpanet reads (playbooks, task files, YAML inventories,
//! vars files) is parsed here once, by `saphyr-parser`, into [`Node`]s that
//! each know their line and column. The typed models are then built from
//! the tree: by plain functions where keys decide what follows (plays,
//! tasks), or through serde ([`Node`] is a `serde::Deserializer`) for fixed
//! shapes such as module arguments. Either way an error knows exactly where
//! it is, from the parser's own positions; no error text is ever parsed.
//!
//! Scalars resolve as `serde_norway` (YAML 1.2 core schema) resolves them,
//! so values keep the types they had: `8500` is a number, `yes` and `0644`
//! are strings, `~` and an empty value are null. Quoted and block scalars
//! are always strings. Asking for a string (`deserialize_str`) gives the
//! scalar as written, whatever it would resolve to.

use std::fmt;
use std::sync::LazyLock;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

use std::path::Path;

use crate::error::{Error, InputError, InputKind, Location};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess};

/// A 1-based line and column in a YAML text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `text` as written; `plain` when unquoted and untagged (so it may
    /// resolve to null, a bool or a number).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; repeated keys are kept (callers decide).
    Map(Vec<(Node, Node)>),
}

/// What a plain scalar means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(&'a str),
}

/// The YAML text does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ScanError> for SyntaxError {
    fn from(e: ScanError) -> Self {
        let m = e.marker();
        SyntaxError {
            pos: Pos {
                line: m.line(),
                column: m.col() + 1,
            },
            message: e.info().to_owned(),
        }
    }
}

/// How deeply collections may nest. Real playbooks and vars stay far below;
/// the limit keeps a hostile file from exhausting the stack of everything
/// that walks the tree (deserializing, rendering, dropping it).
pub(crate) const MAX_DEPTH: usize = 128;

/// How many nodes aliases may copy in one file, so a few lines of nested
/// anchors (a "billion laughs") cannot expand without bound.
pub(crate) const MAX_ALIAS_NODES: usize = 100_000;

/// Parse the single document of `text`; `None` when it holds none.
/// Anchors are resolved: an alias is a copy of the node it names.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut events = Parser::new_from_str(text);
    // Each anchor with its node and how many nodes that node holds.
    let mut anchors: Vec<(usize, Node, usize)> = Vec::new();
    let mut copied = 0usize;
    // Containers being filled, innermost last: the node, its anchor, and for
    // a mapping a key waiting for its value.
    let mut stack: Vec<(Node, usize, Option<Node>)> = Vec::new();
    let mut document: Option<Node> = None;
    let mut documents = 0;
    while let Some(next) = events.next_event() {
        let (event, span) = next?;
        let pos = Pos::of(&span);
        let (node, anchor) = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        pos,
                        message: "more than one YAML document (`---`) in one file".into(),
                    });
                }
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        pos,
                        message: format!("nested more than {MAX_DEPTH} levels deep"),
                    });
                }
                let kind = match event {
                    Event::SequenceStart(..) => Kind::Seq(Vec::new()),
                    _ => Kind::Map(Vec::new()),
                };
                stack.push((Node::new(kind, pos), anchor, None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some((node, anchor, _)) => (node, anchor),
                None => continue,
            },
            Event::Scalar(value, style, anchor, tag) => {
                let is_str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
                let empty = span.start.index() == span.end.index();
                let text = if empty && style == ScalarStyle::Plain {
                    String::new()
                } else {
                    value.into_owned()
                };
                let plain = style == ScalarStyle::Plain && !is_str_tag;
                (Node::new(Kind::Scalar { text, plain }, pos), anchor)
            }
            Event::Alias(id) => {
                let found = anchors.iter().rev().find(|(a, _, _)| *a == id);
                match found {
                    Some((_, node, size)) => {
                        copied += size;
                        if copied > MAX_ALIAS_NODES {
                            return Err(SyntaxError {
                                pos,
                                message: format!(
                                    "aliases expand to more than {MAX_ALIAS_NODES} values"
                                ),
                            });
                        }
                        if stack.len() + node.depth() > MAX_DEPTH {
                            return Err(SyntaxError {
                                pos,
                                message: format!("nested more than {MAX_DEPTH} levels deep"),
                            });
                        }
                        (node.clone(), 0)
                    }
                    None => {
                        return Err(SyntaxError {
                            pos,
                            message: "alias names no anchor".into(),
                        })
                    }
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
        };
        if anchor != 0 {
            anchors.push((anchor, node.clone(), node.size()));
        }
        match stack.last_mut() {
            None => document = Some(node),
            Some((parent, _, pending)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(entries) => match pending.take() {
                    Some(key) => entries.push((key, node)),
                    None => *pending = Some(node),
                },
                Kind::Scalar { .. } => unreachable!("scalars hold no nodes"),
            },
        }
    }
    Ok(document)
}

/// A key given twice in one mapping, at the second one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Duplicate {
    pub key: String,
    pub pos: Pos,
}

/// Parse `text` as Ansible (PyYAML, YAML 1.1) reads inventories and vars
/// files: `yes`/`no`/`on`/`off` are booleans, `0644` is octal, `1_000` and
/// `1:30` (base 60) are numbers, `0o644` and `1e3` are strings, `<<` merge
/// keys are applied, and a key given twice keeps its last value (each
/// repeat is returned, for a warning). Mapping keys are left as written.
pub(crate) fn parse_yaml11(text: &str) -> Result<(Option<Node>, Vec<Duplicate>), SyntaxError> {
    let mut doc = parse(text)?;
    let mut duplicates = Vec::new();
    if let Some(node) = doc.as_mut() {
        to_yaml11(node, &mut duplicates);
    }
    Ok((doc, duplicates))
}

/// `node` with its plain scalars read as YAML 1.1 reads them (`no` is
/// false, `0644` is 420, `1:30` is 90) and `<<` merges done: how Ansible
/// reads the variables a playbook sets.
pub(crate) fn yaml11(node: &Node) -> Node {
    let mut node = node.clone();
    to_yaml11(&mut node, &mut Vec::new());
    node
}

fn to_yaml11(node: &mut Node, duplicates: &mut Vec<Duplicate>) {
    match &mut node.kind {
        Kind::Scalar { text, plain } => {
            if *plain {
                match resolve11(text) {
                    Some(canonical) => *text = canonical,
                    None => *plain = false,
                }
            }
        }
        Kind::Seq(items) => items.iter_mut().for_each(|i| to_yaml11(i, duplicates)),
        Kind::Map(entries) => {
            let mut own: Vec<(Node, Node)> = Vec::new();
            let mut merged: Vec<(Node, Node)> = Vec::new();
            for (key, mut value) in std::mem::take(entries) {
                to_yaml11(&mut value, duplicates);
                let is_merge =
                    matches!(&key.kind, Kind::Scalar { text, plain: true } if text == "<<");
                if is_merge {
                    let sources: Vec<Node> = match value.kind {
                        Kind::Map(_) => vec![value],
                        Kind::Seq(items) => items,
                        _ => vec![],
                    };
                    for source in sources {
                        if let Kind::Map(from) = source.kind {
                            for (k, v) in from {
                                // earlier merge sources win over later ones
                                if !merged.iter().any(|(m, _)| m.text() == k.text()) {
                                    merged.push((k, v));
                                }
                            }
                        }
                    }
                    continue;
                }
                if let Some(i) = own
                    .iter()
                    .position(|(k, _)| k.text().is_some() && k.text() == key.text())
                {
                    duplicates.push(Duplicate {
                        key: key.text().unwrap_or_default().to_owned(),
                        pos: key.pos,
                    });
                    own.remove(i);
                }
                own.push((key, value));
            }
            merged.retain(|(k, _)| !own.iter().any(|(o, _)| o.text() == k.text()));
            merged.extend(own);
            *entries = merged;
        }
    }
}

/// A plain scalar's YAML 1.1 value, written so that the YAML 1.2 rules of
/// [`resolve`] read it back the same; `None` when it is a string.
fn resolve11(text: &str) -> Option<String> {
    static INT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$").expect("regex")
    });
    static FLOAT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$").expect("regex")
    });
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some("null".into()),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Some("true".into())
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Some("false".into())
        }
        _ => {}
    }
    let sign_split = |t: &str| -> (bool, String) {
        let clean = t.replace('_', "");
        match clean.strip_prefix('-') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, clean.strip_prefix('+').unwrap_or(&clean).to_owned()),
        }
    };
    let base60 = |digits: &str| -> f64 {
        digits.split(':').fold(0.0, |acc, part| {
            acc * 60.0 + part.parse::<f64>().unwrap_or(0.0)
        })
    };
    if INT.is_match(text) {
        let (negative, digits) = sign_split(text);
        let value: Option<i128> = if digits == "0" {
            Some(0)
        } else if let Some(b) = digits.strip_prefix("0b") {
            i128::from_str_radix(b, 2).ok()
        } else if let Some(h) = digits.strip_prefix("0x") {
            i128::from_str_radix(h, 16).ok()
        } else if digits.contains(':') {
            Some(base60(&digits) as i128)
        } else if digits.starts_with('0') {
            i128::from_str_radix(&digits, 8).ok()
        } else {
            digits.parse().ok()
        };
        let value = value?;
        return Some(if negative { -value } else { value }.to_string());
    }
    if FLOAT.is_match(text) {
        let (negative, digits) = sign_split(text);
        let lower = digits.to_ascii_lowercase();
        let value = if lower == ".inf" {
            return Some(if negative { "-.inf" } else { ".inf" }.into());
        } else if lower == ".nan" {
            return Some(".nan".into());
        } else if digits.contains(':') {
            base60(&digits)
        } else {
            digits.parse::<f64>().ok()?
        };
        let value = if negative { -value } else { value };
        return Some(format!("{value:?}"));
    }
    None
}

/// Read `file`'s `text` as a `T`; an empty document reads as null. Errors
/// are located input errors.
pub(crate) fn load<T: de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, Error> {
    let null = Node::new(
        Kind::Scalar {
            text: String::new(),
            plain: true,
        },
        Pos { line: 1, column: 1 },
    );
    let doc = parse(text).map_err(|e| syntax_error(file, text, e))?;
    let node = doc.as_ref().unwrap_or(&null);
    node.to::<T>().map_err(|e| {
        let (pos, kind) = e.into_input(node.pos, None);
        input_error(file, text, pos, kind)
    })
}

/// A syntax error in `file` as bad input.
pub(crate) fn syntax_error(file: &Path, text: &str, e: SyntaxError) -> Error {
    let kind = InputKind::InvalidYaml { message: e.message };
    input_error(file, text, e.pos, kind)
}

/// Bad input at `pos` in `file`, showing its line.
pub(crate) fn input_error(file: &Path, text: &str, pos: Pos, kind: InputKind) -> Error {
    let location = Location::new(file, pos.line, pos.column).with_source(text);
    InputError::new(location, kind).into()
}

impl Node {
    fn new(kind: Kind, pos: Pos) -> Self {
        Node { kind, pos }
    }

    /// How many nodes this one holds, itself included.
    fn size(&self) -> usize {
        1 + match &self.kind {
            Kind::Scalar { .. } => 0,
            Kind::Seq(items) => items.iter().map(Node::size).sum(),
            Kind::Map(entries) => entries.iter().map(|(k, v)| k.size() + v.size()).sum(),
        }
    }

    /// How many collections deep this node goes (a scalar is 0).
    fn depth(&self) -> usize {
        match &self.kind {
            Kind::Scalar { .. } => 0,
            Kind::Seq(items) => 1 + items.iter().map(Node::depth).max().unwrap_or(0),
            Kind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
        }
    }

    /// The scalar's text as written, for a scalar.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What a scalar means (quoted scalars are strings).
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => Some(resolve(text)),
            Kind::Scalar { text, plain: false } => Some(Scalar::Str(text)),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.scalar() == Some(Scalar::Null)
    }

    /// The entries of a mapping.
    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn items(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// What this node is, in serde's words (for "invalid type" errors).
    pub fn unexpected(&self) -> de::Unexpected<'_> {
        match &self.kind {
            Kind::Seq(_) => de::Unexpected::Seq,
            Kind::Map(_) => de::Unexpected::Map,
            Kind::Scalar { .. } => match self.scalar() {
                Some(Scalar::Null) => de::Unexpected::Unit,
                Some(Scalar::Bool(b)) => de::Unexpected::Bool(b),
                Some(Scalar::Unsigned(n)) => de::Unexpected::Unsigned(n),
                Some(Scalar::Signed(n)) => de::Unexpected::Signed(n),
                Some(Scalar::Float(n)) => de::Unexpected::Float(n),
                Some(Scalar::Str(s)) => de::Unexpected::Str(s),
                None => de::Unexpected::Other("value"),
            },
        }
    }

    /// A string scalar holding `text`, at this node's position (the
    /// arguments of `local_action: MODULE ARGS`).
    pub(crate) fn with_text(&self, text: &str) -> Node {
        let kind = Kind::Scalar {
            text: text.to_owned(),
            plain: false,
        };
        Node::new(kind, self.pos)
    }

    /// This mapping without the entries under `key` (a clone otherwise).
    pub(crate) fn without_key(&self, key: &str) -> Node {
        match &self.kind {
            Kind::Map(entries) => {
                let kept = entries.iter().filter(|(k, _)| k.text() != Some(key));
                Node::new(Kind::Map(kept.cloned().collect()), self.pos)
            }
            _ => self.clone(),
        }
    }

    /// Deserialize `T` from this node.
    pub fn to<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T, DeError> {
        T::deserialize(self)
    }
}

/// A plain scalar's meaning, by `serde_norway`'s rules.
fn resolve(text: &str) -> Scalar<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        _ => {}
    }
    // Leading zeros followed by digits make a string in YAML 1.2 (`0644`).
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let leading_zero = unsigned.len() > 1
        && unsigned.starts_with('0')
        && unsigned[1..].bytes().all(|b| b.is_ascii_digit());
    let negative = text.starts_with('-');
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = unsigned.strip_prefix(prefix) {
            if digits.starts_with(['+', '-']) {
                return Scalar::Str(text);
            }
            if let Ok(n) = u64::from_str_radix(digits, radix) {
                return match negative {
                    false => Scalar::Unsigned(n),
                    true => i64::try_from(n)
                        .map(|n| Scalar::Signed(-n))
                        .unwrap_or(Scalar::Str(text)),
                };
            }
        }
    }
    if leading_zero {
        return Scalar::Str(text);
    }
    if !unsigned.starts_with(['+', '-']) {
        if negative {
            if let Ok(n) = text.parse::<i64>() {
                return Scalar::Signed(n);
            }
        } else if let Ok(n) = unsigned.parse::<u64>() {
            return Scalar::Unsigned(n);
        }
    }
    match unsigned {
        ".inf" | ".Inf" | ".INF" if negative => return Scalar::Float(f64::NEG_INFINITY),
        ".inf" | ".Inf" | ".INF" => return Scalar::Float(f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if unsigned == text => return Scalar::Float(f64::NAN),
        _ => {}
    }
    let float_text = text.strip_prefix('+').unwrap_or(text);
    if !float_text.starts_with(['+']) && !float_text.starts_with("-+") {
        if let Ok(f) = float_text.parse::<f64>() {
            if f.is_finite() {
                return Scalar::Float(f);
            }
        }
    }
    Scalar::Str(text)
}

// ---------------------------------------------------------------------------
// Errors from deserializing a node

/// A step from a node to one inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// Why a node did not deserialize, and where: the position of the node the
/// error was raised in, and the path from the node deserialized to it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeError {
    pub pos: Option<Pos>,
    /// Innermost step last.
    pub path: Vec<Step>,
    pub kind: DeKind,
}

/// serde's error kinds, kept as data so callers word them (and suggest).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DeKind {
    /// A value of the wrong type: `found` as serde names it (`sequence`,
    /// `string "x"`), `expected` as the visitor describes it.
    InvalidType {
        found: String,
        expected: String,
    },
    /// A value of the right type that is not accepted.
    InvalidValue {
        found: String,
        expected: String,
    },
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    DuplicateField(&'static str),
    /// A message from a `Deserialize` impl.
    Custom(String),
}

impl DeError {
    fn new(kind: DeKind) -> Self {
        DeError {
            pos: None,
            path: Vec::new(),
            kind,
        }
    }

    /// Place an error raised in `node` there (the innermost place wins).
    fn at(mut self, pos: Pos) -> Self {
        self.pos.get_or_insert(pos);
        self
    }

    fn inside(mut self, step: Step) -> Self {
        self.path.insert(0, step);
        self
    }

    /// The error as bad input: its position (`node` when the error has
    /// none) and kind. The value's key is named when the innermost step is
    /// a key, or `field` when the error is in the node itself.
    pub fn into_input(self, node: Pos, field: Option<&str>) -> (Pos, InputKind) {
        let field = match self.path.last() {
            Some(Step::Key(k)) => Some(k.clone()),
            Some(Step::Index(_)) => None,
            None => field.map(str::to_owned),
        };
        let strings = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect();
        let kind = match self.kind {
            DeKind::InvalidType { found, expected } => InputKind::WrongType {
                field,
                found,
                expected,
            },
            DeKind::InvalidValue { found, expected } => InputKind::BadValue {
                field,
                found,
                expected,
            },
            DeKind::UnknownField {
                field: argument,
                expected,
            } => InputKind::UnknownArgument {
                module: field,
                argument,
                expected: strings(expected),
            },
            DeKind::UnknownVariant { variant, expected } => InputKind::UnknownValue {
                field,
                value: variant,
                expected: strings(expected),
            },
            DeKind::MissingField(argument) => InputKind::MissingArgument {
                module: field,
                argument: argument.to_owned(),
            },
            DeKind::DuplicateField(key) => InputKind::DuplicateKey {
                key: key.to_owned(),
            },
            DeKind::Custom(message) => InputKind::Invalid {
                field,
                message,
                hint: None,
            },
        };
        (self.pos.unwrap_or(node), kind)
    }
}

impl fmt::Display for DeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |words: &[&str]| {
            words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            DeKind::InvalidType { found, expected } => {
                write!(f, "invalid type: {found}, expected {expected}")
            }
            DeKind::InvalidValue { found, expected } => {
                write!(f, "expected {expected}, found {found}")
            }
            DeKind::UnknownField { field, expected } => match expected.is_empty() {
                true => write!(f, "unknown argument `{field}`, there are none"),
                false => write!(
                    f,
                    "unknown argument `{field}`, expected one of {}",
                    list(expected)
                ),
            },
            DeKind::UnknownVariant { variant, expected } => write!(
                f,
                "unknown value `{variant}`, expected one of {}",
                list(expected)
            ),
            DeKind::MissingField(field) => write!(f, "missing argument `{field}`"),
            DeKind::DuplicateField(field) => write!(f, "duplicate key `{field}`"),
            DeKind::Custom(message) => f.write_str(message),
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for DeError {}

/// serde's `Unexpected` as its `Display` words it, with strings in backticks
/// for "found" values.
fn found(unexp: &de::Unexpected<'_>) -> String {
    match unexp {
        de::Unexpected::Str(s) => format!("`{s}`"),
        de::Unexpected::Unsigned(n) => format!("`{n}`"),
        de::Unexpected::Signed(n) => format!("`{n}`"),
        de::Unexpected::Float(n) => format!("`{n}`"),
        de::Unexpected::Bool(b) => format!("`{b}`"),
        other => other.to_string(),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(DeKind::Custom(msg.to_string()))
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(DeKind::InvalidType {
            found: unexp.to_string(),
            expected: exp.to_string(),
        })
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(DeKind::InvalidValue {
            found: found(&unexp),
            expected: exp.to_string(),
        })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(DeKind::UnknownVariant {
            variant: variant.to_owned(),
            expected,
        })
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(DeKind::UnknownField {
            field: field.to_owned(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(DeKind::MissingField(field))
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::new(DeKind::DuplicateField(field))
    }
}

// ---------------------------------------------------------------------------
// Node as a serde Deserializer

struct Items<'de> {
    items: std::slice::Iter<'de, Node>,
    index: usize,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(node)
            .map(Some)
            .map_err(|e| e.at(node.pos).inside(Step::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'de> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de (Node, Node)>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        seed.deserialize(&entry.0)
            .map(Some)
            .map_err(|e| e.at(entry.0.pos))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without a key"))?;
        let name = key.text().unwrap_or("?").to_owned();
        seed.deserialize(value)
            .map_err(|e| e.at(value.pos).inside(Step::Key(name)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

impl<'de> Deserializer<'de> for &'de Node {
    type Error = DeError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.kind {
            Kind::Seq(items) => visitor.visit_seq(Items {
                items: items.iter(),
                index: 0,
            }),
            Kind::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
            }),
            Kind::Scalar { text, .. } => match self.scalar() {
                Some(Scalar::Null) => visitor.visit_unit(),
                Some(Scalar::Bool(b)) => visitor.visit_bool(b),
                Some(Scalar::Unsigned(n)) => visitor.visit_u64(n),
                Some(Scalar::Signed(n)) => visitor.visit_i64(n),
                Some(Scalar::Float(n)) => visitor.visit_f64(n),
                Some(Scalar::Str(_)) | None => visitor.visit_borrowed_str(text),
            },
        };
        result.map_err(|e: DeError| e.at(self.pos))
    }

    fn deserialize_str<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.kind {
            Kind::Scalar { text, .. } => visitor.visit_borrowed_str(text),
            _ => return self.deserialize_any(visitor),
        }
        .map_err(|e: DeError| e.at(self.pos))
    }

    fn deserialize_string<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.is_null() {
            true => visitor.visit_none(),
            false => visitor.visit_some(self),
        }
        .map_err(|e: DeError| e.at(self.pos))
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: DeError| e.at(self.pos))
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.kind {
            Kind::Scalar { text, .. } => {
                let access: de::value::StrDeserializer<'_, DeError> =
                    text.as_str().into_deserializer();
                visitor.visit_enum(access)
            }
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
        .map_err(|e: DeError| e.at(self.pos))
    }

    fn deserialize_ignored_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> Node {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn deep_nesting_is_refused_at_its_place() {
        let at = |text: &str| parse(text).unwrap_err();
        let block = format!("x:\n  {}a\n", "- ".repeat(50_000));
        let err = at(&block);
        assert!(err.message.contains("nested more than"), "{err}");
        assert_eq!(err.pos.line, 2);
        let flow = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&flow).is_err());
        let fits = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&fits).is_ok());
    }

    #[test]
    fn aliases_cannot_expand_without_bound() {
        // Each level holds ten copies of the last: 10^9 values if expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let copies = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{copies}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err}");
        // a few aliases are fine
        let small = node("a: &a {k: v}\nb: *a\nc: *a\n");
        assert_eq!(small.entries().unwrap()[2].1, small.entries().unwrap()[0].1);
    }

    #[test]
    fn positions_are_the_parsers_own() {
        let doc = node("- hosts: all\n  tasks:\n    - {shell: x}\n");
        let play = &doc.items().unwrap()[0];
        assert_eq!(play.pos, Pos { line: 1, column: 3 });
        let (key, tasks) = &play.entries().unwrap()[1];
        assert_eq!(key.pos, Pos { line: 2, column: 3 });
        let task = &tasks.items().unwrap()[0];
        assert_eq!(task.pos, Pos { line: 3, column: 7 });
        assert_eq!(task.entries().unwrap()[0].0.pos, Pos { line: 3, column: 8 });
    }

    #[test]
    fn scalars_resolve_as_serde_norway_does() {
        let cases = [
            ("~", Scalar::Null),
            ("", Scalar::Null),
            ("True", Scalar::Bool(true)),
            ("yes", Scalar::Str("yes")),
            ("8500", Scalar::Unsigned(8500)),
            ("-3", Scalar::Signed(-3)),
            ("0644", Scalar::Str("0644")),
            ("0o644", Scalar::Unsigned(0o644)),
            ("0x1f", Scalar::Unsigned(31)),
            ("1.10", Scalar::Float(1.1)),
            ("1e3", Scalar::Float(1000.0)),
            ("1.2.3", Scalar::Str("1.2.3")),
            ("inf", Scalar::Str("inf")),
        ];
        for (text, want) in cases {
            assert_eq!(resolve(text), want, "{text}");
        }
        assert_eq!(node("'8500'").scalar(), Some(Scalar::Str("8500")));
        assert_eq!(node("!!str 8500").scalar(), Some(Scalar::Str("8500")));
    }

    #[test]
    fn values_deserialize_with_their_types() {
        let doc = node("a: 1\nb: [x, true]\nc:\nd: &x {e: 0644}\nf: *x\n");
        let v: serde_json::Value = doc.to().unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": ["x", true], "c": null, "d": {"e": "0644"}, "f": {"e": "0644"}})
        );
    }

    #[test]
    fn errors_carry_the_position_and_path_of_the_bad_node() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Args {
            port: u16,
            names: Vec<String>,
        }
        let doc = node("port: 80\nnames:\n  - a\n  - [b]\n");
        let err = doc.to::<Args>().unwrap_err();
        assert_eq!(err.pos, Some(Pos { line: 4, column: 5 }));
        assert_eq!(err.path, [Step::Key("names".into()), Step::Index(1)]);
        assert_eq!(err.to_string(), "invalid type: sequence, expected a string");
        let err = node("port: 80\nnmaes: []\n").to::<Args>().unwrap_err();
        assert_eq!(err.pos, Some(Pos { line: 2, column: 1 }));
        assert!(matches!(err.kind, DeKind::UnknownField { ref field, .. } if field == "nmaes"));
        let err = node("{port: 80}").to::<Args>().unwrap_err();
        assert_eq!(err.kind, DeKind::MissingField("names"));
        assert_eq!(err.pos, Some(Pos { line: 1, column: 1 }));
    }

    #[test]
    fn yaml11_scalars_merge_keys_and_repeated_keys() {
        let (doc, dups) = parse_yaml11(concat!(
            "a: yes\nb: off\nc: 0644\nd: 1_000\ne: 1:30\nf: 0o644\ng: 1e3\nh: 0x1F\n",
            "i: 1_000.5\nj: !!str 123\nk: '0644'\nl: Y\nm: 2024-01-01\nn: ~\no: 09\n",
            "base: &b {x: 1, y: 2}\nmerged: {<<: *b, y: 3}\nmulti: {<<: [*b, {z: 4}]}\n",
            "dup: 1\ndup: 2\n",
        ))
        .unwrap();
        let v: serde_json::Value = doc.unwrap().to().unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "a": true, "b": false, "c": 420, "d": 1000, "e": 90, "f": "0o644", "g": "1e3",
                "h": 31, "i": 1000.5, "j": "123", "k": "0644", "l": "Y", "m": "2024-01-01",
                "n": null, "o": "09", "base": {"x": 1, "y": 2}, "merged": {"x": 1, "y": 3},
                "multi": {"x": 1, "y": 2, "z": 4}, "dup": 2
            })
        );
        assert_eq!(
            dups,
            [Duplicate {
                key: "dup".into(),
                pos: Pos {
                    line: 20,
                    column: 1
                }
            }]
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("- a\nb: c\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert_eq!(parse("# nothing\n").unwrap(), None);
    }
}
