//! The value types of playbook keys and module arguments: scalars read as
//! written (`0644` stays a string), Ansible's yes/no words, numbers with a
//! unit, conditions, file modes. Each checks its value where it is read, so
//! a bad one is reported at its own line and column.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::Serial;
use crate::vars::Vars;

/// Any scalar, as written: `8500`, `0644` and `yes` are the strings they look
/// like (so `mode: 0644` is `"0644"`, never the YAML 1.1 octal number).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text(pub String);

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
            (self.parse)(v.trim()).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    deserializer.deserialize_str(V { expected, parse })
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "true or false (or yes/no)", crate::truth::parse_bool).map(Flag)
    }
}

/// The most attempts `retries` may ask for: more would only hang the run.
pub(crate) const MAX_COUNT: u32 = 10_000;

/// A count of attempts, from 0 to [`MAX_COUNT`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Count(pub u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a whole number from 0 to 10000", |s| {
            s.parse().ok().filter(|n| *n <= MAX_COUNT)
        })
        .map(Count)
    }
}

/// The longest wait a playbook may ask for (a week): longer is a typo, and
/// a bound keeps every duration representable.
pub(crate) const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// A number of seconds from 0 to [`MAX_SECONDS`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seconds(pub f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a number of seconds from 0 to 604800 (a week)", |s| {
            s.parse::<f64>()
                .ok()
                .filter(|n| (0.0..=MAX_SECONDS).contains(n))
        })
        .map(Seconds)
    }
}

/// A whole number of seconds from 0 to [`MAX_SECONDS`] (a task's `timeout:`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WholeSeconds(pub u32);

impl<'de> Deserialize<'de> for WholeSeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(
            d,
            "a whole number of seconds from 0 to 604800 (a week)",
            |s| {
                s.parse::<u32>()
                    .ok()
                    .filter(|n| f64::from(*n) <= MAX_SECONDS)
            },
        )
        .map(WholeSeconds)
    }
}

/// A percentage: `30`, `30%` or `12.5`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a percentage from 0 to 100", parse_percent).map(Percent)
    }
}

fn parse_percent(s: &str) -> Option<f64> {
    let n: f64 = s.strip_suffix('%').unwrap_or(s).trim().parse().ok()?;
    (0.0..=100.0).contains(&n).then_some(n)
}

/// One `serial:` size: a host count or `"30%"`; `0` means all hosts left.
pub(crate) struct SerialValue(pub Serial);

/// What `serial` takes, said when it gets something else.
pub(crate) const SERIAL_EXPECTED: &str = "a number of hosts or a percentage such as `30%`";

impl<'de> Deserialize<'de> for SerialValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, SERIAL_EXPECTED, |s| {
            if s.contains("{{") {
                return Some(Serial::Template(s.to_owned()));
            }
            parse_serial(s)
        })
        .map(SerialValue)
    }
}

/// A `serial` size as written or rendered: `3` or `"30%"`.
pub(crate) fn parse_serial(s: &str) -> Option<Serial> {
    let s = s.trim();
    if s.ends_with('%') {
        return parse_percent(s).filter(|p| *p > 0.0).map(Serial::Percent);
    }
    s.parse::<usize>().ok().map(Serial::Count)
}

/// A variable name, as `register:` takes.
pub(crate) struct Ident(pub String);

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
pub(crate) struct List(pub Vec<String>);

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
pub(crate) struct Cond(pub Vec<String>);

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
pub(crate) struct VarMap(pub Vars);

impl<'de> Deserialize<'de> for VarMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<Vars>::deserialize(d).map(|v| VarMap(v.unwrap_or_default()))
    }
}

pub(crate) fn text(t: Option<Text>) -> Option<String> {
    t.map(|t| t.0)
}

/// A file mode: octal digits (`0644`, `644`, `0o644` all become `"0644"`),
/// a symbolic mode (`u+x`, `u=rw,g=r`) or a template. Checked in the
/// visitor so an error points at the value.
pub(crate) struct Mode(pub String);

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

pub(crate) fn normalize_mode(m: &str) -> Option<String> {
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

/// Every string inside a JSON value (each may be a template).
pub(crate) fn json_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}
