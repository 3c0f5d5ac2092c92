//! Ansible's regular-expression filters (`regex_replace`, `regex_search`,
//! `regex_findall`, `regex_escape`) and tests (`match`, `search`,
//! `regex`). Patterns are Python's `re` syntax as far as Rust's `regex`
//! shares it (groups, named groups `(?P<n>)`, classes, flags); what it
//! lacks (look-around, backreferences in the pattern) is refused with
//! the pattern named. Replacements take Python's `\1`, `\g<1>`, `\g<name>`
//! (as `lineinfile`'s `backrefs` do).

use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Environment, Error, ErrorKind};
use regex::{Regex, RegexBuilder};

pub(super) fn add_filters(env: &mut Environment<'static>) {
    env.add_filter("regex_replace", replace);
    env.add_filter("regex_search", search);
    env.add_filter("regex_findall", findall);
    env.add_filter("regex_escape", escape);
}

pub(super) fn add_tests(env: &mut Environment<'static>) {
    env.add_test("match", |s: &str, p: &str, kw: Kwargs| {
        test(s, p, kw, Some("match"))
    });
    env.add_test("search", |s: &str, p: &str, kw: Kwargs| {
        test(s, p, kw, Some("search"))
    });
    env.add_test("regex", |s: &str, p: &str, kw: Kwargs| test(s, p, kw, None));
}

/// Compile `pattern` with the `ignorecase` and `multiline` keywords.
fn compile(pattern: &str, kwargs: &Kwargs) -> Result<Regex, Error> {
    let ignorecase: Option<bool> = kwargs.get("ignorecase")?;
    let multiline: Option<bool> = kwargs.get("multiline")?;
    // Python's end of text is `\Z`, Rust's `\z`.
    let pattern = pattern.replace(r"\Z", r"\z");
    RegexBuilder::new(&pattern)
        .case_insensitive(ignorecase.unwrap_or(false))
        .multi_line(multiline.unwrap_or(false))
        .build()
        .map_err(|e| {
            let why = e.to_string();
            let why = why.lines().last().unwrap_or_default().trim().to_owned();
            Error::new(
                ErrorKind::InvalidOperation,
                format!("the regular expression `{pattern}` is not valid here: {why}"),
            )
        })
}

fn replace(
    value: &Value,
    pattern: Option<&str>,
    with: Option<&str>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let re = compile(pattern.unwrap_or(""), &kwargs)?;
    let count: Option<usize> = kwargs.get("count")?;
    let mandatory: Option<usize> = kwargs.get("mandatory_count")?;
    kwargs.assert_all_used()?;
    let value = text(value);
    let value = value.as_str();
    // The replacements made: every match, or the first `count`.
    let found = match count.filter(|n| *n > 0) {
        Some(most) => re.find_iter(value).take(most).count(),
        None => re.find_iter(value).count(),
    };
    if let Some(wanted) = mandatory.filter(|n| *n > 0) {
        if found != wanted {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("regex_replace: {found} matches of `{re}`, {wanted} expected"),
            ));
        }
    }
    let with = with.unwrap_or("");
    let expand = |caps: &regex::Captures<'_>| crate::modules::lineinfile::expand(caps, with);
    Ok(re.replacen(value, count.unwrap_or(0), expand).into_owned())
}

/// The first match, or with group arguments (`'\\1'`, `'\\g<name>'`)
/// the list of those groups of it; `none` when nothing matches.
fn search(
    value: &Value,
    pattern: &str,
    groups: Rest<String>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let re = compile(pattern, &kwargs)?;
    kwargs.assert_all_used()?;
    let value = text(value);
    let Some(caps) = re.captures(&value) else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(Value::from(caps.get(0).map_or("", |m| m.as_str())));
    }
    let mut out = Vec::new();
    for group in groups.iter() {
        let found = if let Some(n) = group
            .strip_prefix('\\')
            .and_then(|n| n.parse::<usize>().ok())
        {
            caps.get(n)
        } else if let Some(name) = group.strip_prefix("\\g<").and_then(|g| g.strip_suffix('>')) {
            match name.parse::<usize>() {
                Ok(n) => caps.get(n),
                Err(_) => caps.name(name),
            }
        } else {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("regex_search: `{group}` is not a group (`\\\\1` or `\\\\g<name>`)"),
            ));
        };
        out.push(found.map_or(Value::from(()), |m| Value::from(m.as_str())));
    }
    Ok(Value::from(out))
}

/// Every match; with one group, that group of each; with more, a list of
/// the groups of each.
fn findall(value: &Value, pattern: &str, kwargs: Kwargs) -> Result<Value, Error> {
    let re = compile(pattern, &kwargs)?;
    kwargs.assert_all_used()?;
    let groups = re.captures_len() - 1;
    let value = text(value);
    let text = |m: Option<regex::Match<'_>>| Value::from(m.map_or("", |m| m.as_str()));
    let found: Vec<Value> = re
        .captures_iter(&value)
        .map(|caps| match groups {
            0 => text(caps.get(0)),
            1 => text(caps.get(1)),
            n => Value::from((1..=n).map(|i| text(caps.get(i))).collect::<Vec<_>>()),
        })
        .collect();
    Ok(Value::from(found))
}

/// What a filter works on: a string as it is, anything else as its text
/// (`8080 | regex_replace('80$', '81')`), as Ansible's `to_text`.
fn text(value: &Value) -> String {
    match value.as_str() {
        Some(s) => s.to_owned(),
        None => value.to_string(),
    }
}

/// Python's `re.escape`: its special characters and whitespace behind a
/// backslash.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `match` anchors at the start, `search` finds anywhere; `regex` is
/// `search` unless `match_type` says `match` or `fullmatch`.
fn test(value: &str, pattern: &str, kwargs: Kwargs, kind: Option<&str>) -> Result<bool, Error> {
    let match_type: Option<String> = match kind {
        Some(_) => None,
        None => kwargs.get("match_type")?,
    };
    let pattern = match kind.or(match_type.as_deref()).unwrap_or("search") {
        "match" => format!(r"\A(?:{pattern})"),
        "fullmatch" => format!(r"\A(?:{pattern})\z"),
        "search" => pattern.to_owned(),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("regex: match_type `{other}` is not match, search or fullmatch"),
            ))
        }
    };
    let re = compile(&pattern, &kwargs)?;
    kwargs.assert_all_used()?;
    Ok(re.is_match(value))
}
