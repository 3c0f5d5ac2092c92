//! The Python methods Ansible's templates call on strings, mappings and
//! lists (`name.split('.')[0]`, `path.startswith('/')`, `d.items()`,
//! `d.get('k', 1)`): Jinja in Ansible runs on Python objects, so playbooks
//! use them freely, and minijinja has none of them. Each keeps Python's
//! meaning; a method not here is refused naming the type and the method.

use minijinja::value::{from_args, Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

/// minijinja's hook for a method it does not know.
pub(super) fn call(
    _: &State<'_, '_>,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let found = match value.kind() {
        ValueKind::String => value
            .as_str()
            .and_then(|s| string(s, method, args).transpose()),
        ValueKind::Map => map(value, method, args).transpose(),
        ValueKind::Seq => list(value, method, args).transpose(),
        _ => None,
    };
    found.unwrap_or_else(|| {
        Err(Error::new(
            ErrorKind::UnknownMethod,
            format!("{} has no method named {method}", value.kind()),
        ))
    })
}

/// `str` methods; `None` for one that is not.
fn string(s: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    let text = |t: &str| Ok(Some(Value::from(t)));
    match method {
        "upper" => no_args(args).and(text(&s.to_uppercase())),
        "lower" => no_args(args).and(text(&s.to_lowercase())),
        "capitalize" => {
            no_args(args)?;
            let mut chars = s.chars();
            let out = match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            };
            text(&out)
        }
        "title" => {
            no_args(args)?;
            let mut out = String::with_capacity(s.len());
            let mut after_letter = false;
            for c in s.chars() {
                match after_letter {
                    true => out.extend(c.to_lowercase()),
                    false => out.extend(c.to_uppercase()),
                }
                after_letter = c.is_alphabetic();
            }
            text(&out)
        }
        "strip" | "lstrip" | "rstrip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            let strip = |c: char| match chars {
                Some(set) => set.contains(c),
                None => c.is_whitespace(),
            };
            text(match method {
                "strip" => s.trim_matches(strip),
                "lstrip" => s.trim_start_matches(strip),
                _ => s.trim_end_matches(strip),
            })
        }
        "split" | "rsplit" => {
            let (sep, most, kwargs): (Option<Value>, Option<i64>, Kwargs) = from_args(args)?;
            let sep = match sep {
                Some(sep) => Some(sep),
                None => kwargs.get::<Option<Value>>("sep")?,
            };
            let most = match most {
                Some(most) => Some(most),
                None => kwargs.get::<Option<i64>>("maxsplit")?,
            };
            kwargs.assert_all_used()?;
            let sep = sep.filter(|v| !v.is_none());
            let sep = match &sep {
                Some(v) => Some(v.as_str().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        "the separator must be a string",
                    )
                })?),
                None => None,
            };
            let most = most.and_then(|n| usize::try_from(n).ok());
            Ok(Some(Value::from(split(s, sep, most, method == "rsplit")?)))
        }
        "splitlines" => {
            no_args(args)?;
            Ok(Some(Value::from(
                s.lines().map(Value::from).collect::<Vec<_>>(),
            )))
        }
        "startswith" | "endswith" => {
            let (what,): (Value,) = from_args(args)?;
            let test = |p: &str| match method {
                "startswith" => s.starts_with(p),
                _ => s.ends_with(p),
            };
            let yes = match what.as_str() {
                Some(p) => test(p),
                None => strings_of(&what, method)?.iter().any(|p| test(p)),
            };
            Ok(Some(Value::from(yes)))
        }
        "replace" => {
            let (old, new, count): (&str, &str, Option<i64>) = from_args(args)?;
            text(&match count.and_then(|n| usize::try_from(n).ok()) {
                Some(n) => s.replacen(old, new, n),
                None => s.replace(old, new),
            })
        }
        "join" => {
            let (items,): (Value,) = from_args(args)?;
            let parts: Vec<String> = items
                .try_iter()?
                .map(|item| match item.as_str() {
                    Some(part) => Ok(part.to_owned()),
                    None => Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("join expects strings, got {}", item.kind()),
                    )),
                })
                .collect::<Result<_, _>>()?;
            text(&parts.join(s))
        }
        "find" | "rfind" | "index" | "rindex" => {
            let (sub,): (&str,) = from_args(args)?;
            let at = match method {
                "find" | "index" => s.find(sub),
                _ => s.rfind(sub),
            };
            match (at, method) {
                (Some(at), _) => Ok(Some(Value::from(s[..at].chars().count()))),
                (None, "find" | "rfind") => Ok(Some(Value::from(-1))),
                (None, _) => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("substring `{sub}` not found"),
                )),
            }
        }
        "count" => {
            let (sub,): (&str,) = from_args(args)?;
            let n = match sub.is_empty() {
                true => s.chars().count() + 1,
                false => s.matches(sub).count(),
            };
            Ok(Some(Value::from(n)))
        }
        "isdigit" | "isalpha" | "isalnum" | "isspace" | "islower" | "isupper" => {
            no_args(args)?;
            let all = |f: fn(&char) -> bool| !s.is_empty() && s.chars().all(|c| f(&c));
            let cased = |f: fn(char) -> bool| {
                s.chars().any(char::is_alphabetic) && s.chars().filter(|c| c.is_alphabetic()).all(f)
            };
            Ok(Some(Value::from(match method {
                "isdigit" => all(char::is_ascii_digit),
                "isalpha" => all(|c| c.is_alphabetic()),
                "isalnum" => all(|c| c.is_alphanumeric()),
                "isspace" => all(|c| c.is_whitespace()),
                "islower" => cased(char::is_lowercase),
                _ => cased(char::is_uppercase),
            })))
        }
        "zfill" => {
            let (width,): (usize,) = from_args(args)?;
            let len = s.chars().count();
            let (sign, digits) = match s.strip_prefix(['-', '+']) {
                Some(rest) => (&s[..1], rest),
                None => ("", s),
            };
            let pad = "0".repeat(width.saturating_sub(len));
            text(&format!("{sign}{pad}{digits}"))
        }
        "format" => text(&format(s, args)?),
        _ => Ok(None),
    }
}

/// Python's `str.split` / `str.rsplit`: on runs of whitespace (leading
/// and trailing dropped) without a separator, else on each separator.
fn split(
    s: &str,
    sep: Option<&str>,
    most: Option<usize>,
    from_end: bool,
) -> Result<Vec<Value>, Error> {
    let parts: Vec<&str> = match sep {
        Some("") => {
            return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
        }
        Some(sep) => match (most, from_end) {
            (Some(n), false) => s.splitn(n + 1, sep).collect(),
            (Some(n), true) => {
                let mut parts: Vec<&str> = s.rsplitn(n + 1, sep).collect();
                parts.reverse();
                parts
            }
            (None, _) => s.split(sep).collect(),
        },
        None => {
            let words: Vec<&str> = s.split_whitespace().collect();
            match most {
                Some(n) if words.len() > n => whitespace_split(s, n, from_end),
                _ => words,
            }
        }
    };
    Ok(parts.into_iter().map(Value::from).collect())
}

/// Whitespace split with at most `n` splits: the rest keeps its inner
/// whitespace, as Python leaves it.
fn whitespace_split(s: &str, n: usize, from_end: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    if from_end {
        let mut rest = s.trim_end();
        for _ in 0..n {
            match rest.rfind(char::is_whitespace) {
                Some(at) => {
                    let space = rest[at..].chars().next().map_or(1, char::len_utf8);
                    parts.push(&rest[at + space..]);
                    rest = rest[..at].trim_end();
                }
                None => break,
            }
        }
        parts.push(rest);
        parts.reverse();
    } else {
        let mut rest = s.trim_start();
        for _ in 0..n {
            match rest.find(char::is_whitespace) {
                Some(at) => {
                    parts.push(&rest[..at]);
                    rest = rest[at..].trim_start();
                }
                None => break,
            }
        }
        parts.push(rest);
    }
    parts
}

/// `str.format` with `{}`, `{0}` and `{name}` fields and `{{`/`}}`;
/// a format spec (`{:>4}`) is refused rather than ignored.
fn format(s: &str, args: &[Value]) -> Result<String, Error> {
    let (positional, named): (Vec<&Value>, Option<&Value>) = match args.split_last() {
        Some((last, rest)) if last.is_kwargs() => (rest.iter().collect(), Some(last)),
        _ => (args.iter().collect(), None),
    };
    let bad = |why: String| Error::new(ErrorKind::InvalidOperation, why);
    let mut out = String::with_capacity(s.len());
    let mut next = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let Some(len) = s[at + 1..].find('}') else {
                    return Err(bad("a `{` in the format string is not closed".into()));
                };
                let field = &s[at + 1..at + 1 + len];
                // past the field and its `}`
                while chars.peek().is_some_and(|&(i, _)| i <= at + 1 + len) {
                    chars.next();
                }
                if field.contains([':', '!']) {
                    return Err(bad(format!(
                        "format field `{{{field}}}`: specs are not supported"
                    )));
                }
                let value = if field.is_empty() {
                    next += 1;
                    positional.get(next - 1).copied().cloned()
                } else if let Ok(n) = field.parse::<usize>() {
                    positional.get(n).copied().cloned()
                } else {
                    named
                        .and_then(|kw| kw.get_attr(field).ok())
                        .filter(|v| !v.is_undefined())
                };
                let value = value
                    .ok_or_else(|| bad(format!("format field `{{{field}}}` has no argument")))?;
                out.push_str(&python_str(&value));
            }
            '}' => return Err(bad("a single `}` in the format string".into())),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A value as Python's `str()` shows it where it differs from Jinja's:
/// `True`, `False`, `None`.
fn python_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::Bool => match value.is_true() {
            true => "True".into(),
            false => "False".into(),
        },
        ValueKind::None | ValueKind::Undefined => "None".into(),
        _ => value.to_string(),
    }
}

/// `dict` methods.
fn map(value: &Value, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    let keys = || -> Result<Vec<Value>, Error> { Ok(value.try_iter()?.collect()) };
    match method {
        "keys" => no_args(args).and(Ok(Some(Value::from(keys()?)))),
        "values" | "items" => {
            no_args(args)?;
            let mut out = Vec::new();
            for key in keys()? {
                let v = value.get_item(&key)?;
                out.push(match method {
                    "values" => v,
                    _ => Value::from(vec![key, v]),
                });
            }
            Ok(Some(Value::from(out)))
        }
        "get" => {
            let (key, default): (Value, Option<Value>) = from_args(args)?;
            let found = value.get_item(&key)?;
            Ok(Some(match found.is_undefined() {
                true => default.unwrap_or(Value::from(())),
                false => found,
            }))
        }
        "copy" => no_args(args).and(Ok(Some(value.clone()))),
        _ => Ok(None),
    }
}

/// `list` methods that do not change the list.
fn list(value: &Value, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    match method {
        "index" | "count" => {
            let (item,): (Value,) = from_args(args)?;
            let mut items = value.try_iter()?;
            if method == "count" {
                return Ok(Some(Value::from(items.filter(|x| *x == item).count())));
            }
            match items.position(|x| x == item) {
                Some(at) => Ok(Some(Value::from(at))),
                None => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{item} is not in the list"),
                )),
            }
        }
        "copy" => no_args(args).and(Ok(Some(value.clone()))),
        _ => Ok(None),
    }
}

fn no_args(args: &[Value]) -> Result<(), Error> {
    let () = from_args(args)?;
    Ok(())
}

/// The strings of a list (`startswith(('a', 'b'))`).
fn strings_of(value: &Value, method: &str) -> Result<Vec<String>, Error> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{method} expects a string or a list of strings, got {}",
                value.kind()
            ),
        )
    };
    if value.kind() != ValueKind::Seq {
        return Err(bad());
    }
    value
        .try_iter()?
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}
