//! The filters and tests of Ansible's templates that minijinja does not
//! have, with Ansible's meaning, so that playbooks written for Ansible
//! render the same here.

use base64::Engine as _;
use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::ErrorKind;

/// Add Ansible's filters and tests that minijinja lacks.
pub(super) fn add(env: &mut minijinja::Environment<'static>) {
    add_filters(env);
    add_tests(env);
}

fn add_filters(env: &mut minijinja::Environment<'static>) {
    env.add_filter("d", minijinja::filters::default);
    env.add_filter("bool", to_bool);
    env.add_filter("to_json", to_json);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_yaml);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("quote", quote);
    env.add_filter("mandatory", mandatory);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("ternary", ternary);
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("flatten", flatten);
    env.add_filter("difference", |a: Value, b: Value| {
        set_op(a, b, SetOp::Difference)
    });
    env.add_filter("intersect", |a: Value, b: Value| {
        set_op(a, b, SetOp::Intersect)
    });
    env.add_filter("union", |a: Value, b: Value| set_op(a, b, SetOp::Union));
    env.add_filter("symmetric_difference", |a: Value, b: Value| {
        set_op(a, b, SetOp::Symmetric)
    });
    env.add_filter("extract", extract);
    env.add_filter("splitext", splitext);
    env.add_filter("path_join", path_join);
    env.add_filter("type_debug", type_debug);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("from_yaml_all", from_yaml_all);
    env.add_filter("hash", |v: &str, kind: Option<&str>| {
        digest(v, kind.unwrap_or("sha1"))
    });
    env.add_filter("checksum", |v: &str| digest(v, "sha1"));
    env.add_filter("sha1", |v: &str| digest(v, "sha1"));
    env.add_filter("md5", |v: &str| digest(v, "md5"));
    super::regex::add_filters(env);
}

fn add_tests(env: &mut minijinja::Environment<'static>) {
    env.add_test("succeeded", |v: &Value| {
        result_flag(v, "failed").map(|f| !f)
    });
    env.add_test("success", |v: &Value| result_flag(v, "failed").map(|f| !f));
    env.add_test("failed", |v: &Value| result_flag(v, "failed"));
    env.add_test("failure", |v: &Value| result_flag(v, "failed"));
    env.add_test("changed", |v: &Value| result_flag(v, "changed"));
    env.add_test("skipped", |v: &Value| result_flag(v, "skipped"));
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("subset", |a: Value, b: Value| contains_all(&b, &a));
    env.add_test("superset", |a: Value, b: Value| contains_all(&a, &b));
    env.add_test("contains", |seq: Value, item: Value| match seq.as_str() {
        Some(text) => Ok(text.contains(&*item.to_string())),
        None => Ok::<_, minijinja::Error>(seq.try_iter()?.any(|x| x == item)),
    });
    env.add_test("truthy", |v: Value| v.is_true());
    // Jinja's: anything with a length and items by index (a string too).
    env.add_test("sequence", |v: Value| {
        matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::String | ValueKind::Map
        )
    });
    env.add_test("falsy", |v: Value| !v.is_true());
    // On the machine running arpanet, as Ansible's path tests.
    env.add_test("exists", |p: &str| std::fs::metadata(p).is_ok());
    env.add_test("file", |p: &str| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file())
    });
    env.add_test("directory", |p: &str| {
        std::fs::metadata(p).is_ok_and(|m| m.is_dir())
    });
    env.add_test("link", |p: &str| {
        std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
    });
    env.add_test("abs", |p: &str| p.starts_with('/'));
    super::regex::add_tests(env);
}

pub(super) fn invalid(msg: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// `key` of a registered result (`failed`, `changed`, `skipped`); false when
/// the result lacks it.
fn result_flag(value: &Value, key: &str) -> Result<bool, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "the test needs a registered result, got an undefined value",
        ));
    }
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "the test needs a registered result (a mapping), got {}",
            value.kind()
        )));
    }
    let flag = value.get_attr(key)?;
    Ok(!flag.is_undefined() && flag.is_true())
}

/// Ansible's `bool` filter: booleans, the yes/no words of
/// [`crate::truth::parse_bool`] in any case, and the numbers 1 and 0;
/// anything else is false.
fn to_bool(value: &Value) -> bool {
    if value.is_undefined() || value.is_none() {
        return false;
    }
    serde_json::to_value(value)
        .ok()
        .and_then(|v| crate::truth::as_bool(&v))
        .unwrap_or(false)
}

fn to_json(value: &Value, _kwargs: Kwargs) -> Result<String, minijinja::Error> {
    serde_json::to_string(value).map_err(|e| invalid(format!("cannot convert to JSON: {e}")))
}

fn to_nice_json(value: &Value, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let indent = " ".repeat(indent.unwrap_or(4));
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut ser)
        .map_err(|e| invalid(format!("cannot convert to JSON: {e}")))?;
    kwargs.assert_all_used()?;
    String::from_utf8(out).map_err(|e| invalid(e.to_string()))
}

fn from_json(value: &str) -> Result<Value, minijinja::Error> {
    let parsed: serde_json::Value =
        serde_json::from_str(value).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    Ok(Value::from_serialize(&parsed))
}

fn to_yaml(value: &Value, _kwargs: Kwargs) -> Result<String, minijinja::Error> {
    serde_norway::to_string(value).map_err(|e| invalid(format!("cannot convert to YAML: {e}")))
}

fn b64encode(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
}

fn b64decode(value: &str) -> Result<String, minijinja::Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim().as_bytes())
        .map_err(|e| invalid(format!("invalid base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| invalid("base64 data is not UTF-8 text"))
}

fn quote(value: &Value) -> String {
    match value.as_str() {
        Some(s) => crate::transport::quote(s),
        None => crate::transport::quote(&value.to_string()),
    }
}

fn mandatory(value: Value, msg: Option<String>) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        let msg = msg.unwrap_or_else(|| "mandatory variable not defined".to_owned());
        Err(minijinja::Error::new(ErrorKind::UndefinedError, msg))
    } else {
        Ok(value)
    }
}

/// As Python's `os.path.basename`: the part after the last `/`.
fn basename(path: &str) -> String {
    path.rsplit_once('/')
        .map_or(path, |(_, base)| base)
        .to_owned()
}

/// As Python's `os.path.dirname`: the part before the last `/`.
fn dirname(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".to_owned(),
        Some((dir, _)) => dir.to_owned(),
        None => String::new(),
    }
}

fn ternary(
    value: &Value,
    if_true: Value,
    if_false: Value,
    rest: Rest<Value>,
) -> Result<Value, minijinja::Error> {
    if rest.len() > 1 {
        return Err(minijinja::Error::from(ErrorKind::TooManyArguments));
    }
    if value.is_none() {
        if let Some(if_none) = rest.first() {
            return Ok(if_none.clone());
        }
    }
    Ok(if value.is_true() { if_true } else { if_false })
}

/// A mapping as `(key, value)` pairs, or why it is not one.
fn mapping(value: &Value, filter: &str) -> Result<Vec<(Value, Value)>, minijinja::Error> {
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!(
            "{filter} expects a mapping, got {}",
            value.kind()
        )));
    }
    value
        .try_iter()?
        .map(|key| Ok((key.clone(), value.get_item(&key)?)))
        .collect()
}

/// Ansible's `combine`: the mappings merged left to right, later keys
/// winning; with `recursive=true` mappings inside merge too, and
/// `list_merge` says what two lists at one key become (`replace`, the
/// default, `keep`, `append`, `prepend`, `append_rp`, `prepend_rp`).
fn combine(first: Value, rest: Rest<Value>, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let recursive: Option<bool> = kwargs.get("recursive")?;
    let list_merge: Option<String> = kwargs.get("list_merge")?;
    kwargs.assert_all_used()?;
    let list_merge = list_merge.unwrap_or_else(|| "replace".into());
    let known = [
        "replace",
        "keep",
        "append",
        "prepend",
        "append_rp",
        "prepend_rp",
    ];
    if !known.contains(&list_merge.as_str()) {
        return Err(invalid(format!(
            "combine: list_merge is `{list_merge}`; it is one of {}",
            known.join(", ")
        )));
    }
    // `[a, b] | combine` and `a | combine([b, c])` merge a list's mappings.
    let mut all = Vec::new();
    for value in std::iter::once(first).chain(rest.iter().cloned()) {
        match value.kind() {
            ValueKind::Seq => all.extend(value.try_iter()?),
            _ => all.push(value),
        }
    }
    let mut out = serde_json::Map::new();
    for value in &all {
        let serde_json::Value::Object(map) = json(value, "combine")? else {
            return Err(invalid(format!(
                "combine expects mappings, got {}",
                value.kind()
            )));
        };
        merge_into(&mut out, map, recursive.unwrap_or(false), &list_merge);
    }
    Ok(Value::from_serialize(&out))
}

fn merge_into(
    out: &mut serde_json::Map<String, serde_json::Value>,
    over: serde_json::Map<String, serde_json::Value>,
    recursive: bool,
    list_merge: &str,
) {
    use serde_json::Value as J;
    for (key, new) in over {
        let merged = match (out.remove(&key), new) {
            (Some(J::Object(mut old)), J::Object(new)) if recursive => {
                merge_into(&mut old, new, recursive, list_merge);
                J::Object(old)
            }
            (Some(J::Array(old)), J::Array(new)) => J::Array(merge_lists(old, new, list_merge)),
            (_, new) => new,
        };
        out.insert(key, merged);
    }
}

fn merge_lists(
    old: Vec<serde_json::Value>,
    new: Vec<serde_json::Value>,
    how: &str,
) -> Vec<serde_json::Value> {
    let without = |list: Vec<serde_json::Value>, other: &[serde_json::Value]| {
        list.into_iter()
            .filter(|x| !other.contains(x))
            .collect::<Vec<_>>()
    };
    match how {
        "keep" => old,
        "append" => old.into_iter().chain(new).collect(),
        "prepend" => new.into_iter().chain(old).collect(),
        "append_rp" => without(old, &new).into_iter().chain(new).collect(),
        "prepend_rp" => {
            let old = without(old, &new);
            new.into_iter().chain(old).collect()
        }
        _ => new,
    }
}

fn json(value: &Value, filter: &str) -> Result<serde_json::Value, minijinja::Error> {
    serde_json::to_value(value).map_err(|e| invalid(format!("{filter}: {e}")))
}

/// `{a: 1}` → `[{key: a, value: 1}]`.
fn dict2items(value: &Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let key_name: Option<String> = kwargs.get("key_name")?;
    let value_name: Option<String> = kwargs.get("value_name")?;
    kwargs.assert_all_used()?;
    let (key_name, value_name) = (
        key_name.unwrap_or_else(|| "key".into()),
        value_name.unwrap_or_else(|| "value".into()),
    );
    let items: Vec<Value> = mapping(value, "dict2items")?
        .into_iter()
        .map(|(k, v)| Value::from_iter([(key_name.clone(), k), (value_name.clone(), v)]))
        .collect();
    Ok(Value::from(items))
}

/// `[{key: a, value: 1}]` → `{a: 1}`.
fn items2dict(value: &Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let key_name: Option<String> = kwargs.get("key_name")?;
    let value_name: Option<String> = kwargs.get("value_name")?;
    kwargs.assert_all_used()?;
    let key_name = key_name.unwrap_or_else(|| "key".into());
    let value_name = value_name.unwrap_or_else(|| "value".into());
    let mut out = Vec::new();
    for item in value.try_iter()? {
        let field = |name: &str| -> Result<Value, minijinja::Error> {
            let v = item.get_attr(name)?;
            match v.is_undefined() {
                true => Err(invalid(format!(
                    "items2dict: an item has no `{name}`: {item}"
                ))),
                false => Ok(v),
            }
        };
        out.push((field(&key_name)?, field(&value_name)?));
    }
    Ok(Value::from_iter(out))
}

/// Lists inside the list spliced in, to `levels` deep (all by default);
/// `none` items (and the strings `None` and `null`, as Ansible) dropped
/// unless `skip_nulls=false`.
fn flatten(
    value: &Value,
    levels: Option<usize>,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    let skip_nulls: Option<bool> = kwargs.get("skip_nulls")?;
    let levels = match levels {
        Some(levels) => Some(levels),
        None => kwargs.get("levels")?,
    };
    kwargs.assert_all_used()?;
    fn walk(
        value: &Value,
        depth: Option<usize>,
        skip: bool,
        out: &mut Vec<Value>,
    ) -> Result<(), minijinja::Error> {
        for item in value.try_iter()? {
            if item.kind() == ValueKind::Seq && depth != Some(0) {
                walk(&item, depth.map(|d| d - 1), skip, out)?;
            } else if !(skip && (item.is_none() || matches!(item.as_str(), Some("None" | "null"))))
            {
                out.push(item);
            }
        }
        Ok(())
    }
    if value.kind() != ValueKind::Seq {
        return Err(invalid(format!(
            "flatten expects a list, got {}",
            value.kind()
        )));
    }
    let mut out = Vec::new();
    walk(value, levels, skip_nulls.unwrap_or(true), &mut out)?;
    Ok(Value::from(out))
}

#[derive(Clone, Copy)]
enum SetOp {
    Difference,
    Intersect,
    Union,
    Symmetric,
}

/// Ansible's set filters: items in order of first appearance, each once.
fn set_op(a: Value, b: Value, op: SetOp) -> Result<Value, minijinja::Error> {
    let a: Vec<Value> = a.try_iter()?.collect();
    let b: Vec<Value> = b.try_iter()?.collect();
    let candidates: Vec<&Value> = match op {
        SetOp::Difference => a.iter().filter(|x| !b.contains(x)).collect(),
        SetOp::Intersect => a.iter().filter(|x| b.contains(x)).collect(),
        SetOp::Union => a.iter().chain(&b).collect(),
        SetOp::Symmetric => a
            .iter()
            .filter(|x| !b.contains(x))
            .chain(b.iter().filter(|x| !a.contains(x)))
            .collect(),
    };
    let mut out: Vec<Value> = Vec::new();
    for item in candidates {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    Ok(Value::from(out))
}

/// `groups.web | map('extract', hostvars, 'ansible_host')`: `container[key]`,
/// then each of `more` (a key or a list of keys) inside it.
fn extract(key: Value, container: Value, more: Option<Value>) -> Result<Value, minijinja::Error> {
    let mut found = container.get_item(&key)?;
    let path: Vec<Value> = match more {
        None => Vec::new(),
        Some(m) if m.kind() == ValueKind::Seq => m.try_iter()?.collect(),
        Some(m) => vec![m],
    };
    for step in path {
        found = found.get_item(&step)?;
    }
    if found.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            format!("extract: nothing at `{key}`"),
        ));
    }
    Ok(found)
}

/// As Python's `os.path.splitext`: `[root, ext]`, the extension with its dot.
fn splitext(path: &str) -> Value {
    let base_at = path.rfind('/').map_or(0, |i| i + 1);
    let base = &path[base_at..];
    let dot = base
        .trim_start_matches('.')
        .rfind('.')
        .map(|i| i + (base.len() - base.trim_start_matches('.').len()));
    match dot {
        Some(at) => Value::from(vec![path[..base_at + at].to_owned(), base[at..].to_owned()]),
        None => Value::from(vec![path.to_owned(), String::new()]),
    }
}

/// As Python's `os.path.join` of a list: an absolute part starts over.
fn path_join(parts: Value) -> Result<String, minijinja::Error> {
    if let Some(path) = parts.as_str() {
        return Ok(path.to_owned());
    }
    let mut out = String::new();
    for part in parts.try_iter()? {
        let part = part
            .as_str()
            .map_or_else(|| part.to_string(), str::to_owned);
        if part.starts_with('/') || out.is_empty() {
            out = part;
        } else {
            if !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(&part);
        }
    }
    Ok(out)
}

/// The Python type name Ansible would show.
fn type_debug(value: &Value) -> &'static str {
    match value.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// YAML 1.1, as Ansible reads it (`yes` is true).
fn from_yaml(text: &str) -> Result<Value, minijinja::Error> {
    let (doc, _) =
        crate::yaml::parse_yaml11(text).map_err(|e| invalid(format!("invalid YAML: {e}")))?;
    let parsed: serde_json::Value = match doc {
        None => serde_json::Value::Null,
        Some(node) => node
            .to()
            .map_err(|e| invalid(format!("invalid YAML: {e}")))?,
    };
    Ok(Value::from_serialize(&parsed))
}

fn from_yaml_all(text: &str) -> Result<Value, minijinja::Error> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let parsed: serde_json::Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| invalid(format!("invalid YAML: {e}")))?;
        docs.push(parsed);
    }
    Ok(Value::from_serialize(&docs))
}

/// The hex digest of `text`'s UTF-8 bytes.
fn digest(text: &str, kind: &str) -> Result<String, minijinja::Error> {
    let bytes = text.as_bytes();
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok(match kind {
        "md5" => hex(&md5::compute(bytes).0),
        "sha1" => hex(&<sha1::Sha1 as sha1::Digest>::digest(bytes)),
        "sha224" => hex(&<sha2::Sha224 as sha2::Digest>::digest(bytes)),
        "sha256" => hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes)),
        "sha384" => hex(&<sha2::Sha384 as sha2::Digest>::digest(bytes)),
        "sha512" => hex(&<sha2::Sha512 as sha2::Digest>::digest(bytes)),
        other => {
            return Err(invalid(format!(
                "hash: `{other}` is not one of md5, sha1, sha224, sha256, sha384, sha512"
            )))
        }
    })
}

/// Whether every item of `part` is in `whole`.
fn contains_all(whole: &Value, part: &Value) -> Result<bool, minijinja::Error> {
    let whole: Vec<Value> = whole.try_iter()?.collect();
    let mut items = part.try_iter()?;
    Ok(items.all(|x| whole.contains(&x)))
}

/// Ansible's `version` test: `v is version('2.9', '>=')`, comparing
/// dotted versions part by part, numbers as numbers (`1.10 > 1.9`);
/// the operator is `<`, `lt`, `<=`, `le`, `>`, `gt`, `>=`, `ge`, `==`,
/// `=`, `eq`, `!=`, `<>`, `ne` (default `==`).
fn version_test(
    value: &Value,
    other: &Value,
    op: Option<&str>,
    kwargs: Kwargs,
) -> Result<bool, minijinja::Error> {
    let strict: Option<bool> = kwargs.get("strict")?;
    let kind: Option<String> = kwargs.get("version_type")?;
    let op: Option<String> = match op {
        Some(op) => Some(op.to_owned()),
        None => kwargs.get("operator")?,
    };
    kwargs.assert_all_used()?;
    // A pre-release (`1.0.0-rc.1`) comes before its release, except in
    // the loose order, where it is a longer version.
    let release_last = match kind.as_deref() {
        None | Some("loose") => strict == Some(true),
        Some("strict" | "semver" | "semantic" | "pep440") => true,
        Some(other) => {
            return Err(invalid(format!(
                "version: version_type `{other}` is not loose, strict, semver or pep440"
            )))
        }
    };
    for v in [value, other] {
        if v.is_undefined() || v.is_none() || v.to_string().trim().is_empty() {
            return Err(invalid(format!("version: `{v}` is not a version")));
        }
    }
    let order = compare_versions(&value.to_string(), &other.to_string(), release_last);
    use std::cmp::Ordering::*;
    Ok(match op.as_deref().unwrap_or("==") {
        "<" | "lt" => order == Less,
        "<=" | "le" => order != Greater,
        ">" | "gt" => order == Greater,
        ">=" | "ge" => order != Less,
        "==" | "=" | "eq" => order == Equal,
        "!=" | "<>" | "ne" => order != Equal,
        other => return Err(invalid(format!("version: `{other}` is not a comparison"))),
    })
}

/// Loose version order: numbers and words in turn, numbers compared as
/// numbers, a number above a word, a longer version above its prefix.
fn compare_versions(a: &str, b: &str, release_last: bool) -> std::cmp::Ordering {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Part {
        Word(String),
        Number(u128),
    }
    let parts = |s: &str| -> Vec<Part> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            let digit = c.is_ascii_digit();
            let len = rest
                .find(|x: char| x.is_ascii_digit() != digit || !x.is_alphanumeric())
                .unwrap_or(rest.len());
            let (token, tail) = rest.split_at(len.max(c.len_utf8()));
            if digit {
                out.push(Part::Number(token.parse().unwrap_or(u128::MAX)));
            } else if c.is_alphanumeric() {
                out.push(Part::Word(token.to_owned()));
            }
            rest = tail;
        }
        out
    };
    let (a, b) = (parts(a), parts(b));
    if release_last {
        // The numbers first; then a version with a word after them (a
        // pre-release) comes before one without.
        let numbers = |p: &[Part]| {
            p.iter()
                .take_while(|x| matches!(x, Part::Number(_)))
                .count()
        };
        let (na, nb) = (numbers(&a), numbers(&b));
        let by_numbers = a[..na].cmp(&b[..nb]);
        if by_numbers != std::cmp::Ordering::Equal {
            return by_numbers;
        }
        return match (na == a.len(), nb == b.len()) {
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => a[na..].cmp(&b[nb..]),
        };
    }
    a.cmp(&b)
}
