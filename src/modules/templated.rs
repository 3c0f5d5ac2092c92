//! Arguments that are typed at load time yet may be templates.
//!
//! A Docker argument such as `ports: "{{ consul_ports }}"` is a template
//! that renders to a list. [`Templated<T>`] keeps the value as written and,
//! when it holds no template, checks at load time that it is a `T` (so a
//! wrong literal is reported at its line and column); on each host the
//! value is rendered and typed as `T`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::Context;
use crate::error::{Error, Result};
use crate::template::has_template;

/// A `T`, or a value with templates that renders to one.
pub(crate) struct Templated<T> {
    raw: Value,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Templated<T> {
    fn clone(&self) -> Self {
        Templated {
            raw: self.raw.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> PartialEq for Templated<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<T> fmt::Debug for Templated<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Templated<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        if !has_template(&raw) {
            T::deserialize(&raw).map_err(D::Error::custom)?;
        }
        Ok(Templated {
            raw,
            _type: PhantomData,
        })
    }
}

impl<T: DeserializeOwned> Templated<T> {
    /// The value as written (its strings may be templates).
    pub(crate) fn raw(&self) -> &Value {
        &self.raw
    }

    /// The value for one host: rendered with its variables, then typed.
    /// `name` is the argument's name, for the error.
    pub(crate) fn get(&self, name: &str, ctx: &Context<'_>) -> Result<T> {
        let mut rendered = self.rendered(ctx)?;
        crate::template::strip_omitted(&mut rendered);
        self.typed(rendered, name, ctx)
    }

    fn rendered(&self, ctx: &Context<'_>) -> Result<Value> {
        Ok(match has_template(&self.raw) {
            true => ctx.engine.render_json(&self.raw, ctx.vars, ctx.location)?,
            false => self.raw.clone(),
        })
    }

    fn typed(&self, rendered: Value, name: &str, ctx: &Context<'_>) -> Result<T> {
        T::deserialize(&rendered).map_err(|e| {
            Error::input(
                ctx.location.clone(),
                crate::error::InputKind::RenderedWrongType {
                    argument: name.into(),
                    problem: e.to_string(),
                },
            )
        })
    }
}

/// An optional argument for one host (absent is `T::default()`).
pub(crate) fn get_or_default<T: DeserializeOwned + Default>(
    arg: &Option<Templated<T>>,
    name: &str,
    ctx: &Context<'_>,
) -> Result<T> {
    let Some(arg) = arg else {
        return Ok(T::default());
    };
    match arg.rendered(ctx)? {
        // `"{{ x | default(omit) }}"`: as if not given
        Value::String(s) if s == crate::template::OMIT => Ok(T::default()),
        mut rendered => {
            crate::template::strip_omitted(&mut rendered);
            arg.typed(rendered, name, ctx)
        }
    }
}

/// A yes/no argument, in Ansible's words (`true`, `"yes"`, `"y"`, ...);
/// empty is no.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct YesNo(pub bool);

impl<'de> Deserialize<'de> for YesNo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        match value {
            Value::String(ref s) if s.is_empty() => Ok(YesNo(false)),
            Value::Null => Ok(YesNo(false)),
            _ => crate::truth::as_bool(&value)
                .map(YesNo)
                .ok_or_else(|| D::Error::custom(format!("expected a boolean, got `{value}`"))),
        }
    }
}

fn scalar_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// A string (empty means unset), number or null.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OptText(pub Option<String>);

impl<'de> Deserialize<'de> for OptText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(OptText(scalar_text(value).filter(|s| !s.is_empty())))
    }
}

/// A mapping whose values may be numbers or bools, as text.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TextMap(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for TextMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
        Ok(TextMap(
            map.into_iter()
                .map(|(k, v)| (k, scalar_text(v).unwrap_or_default()))
                .collect(),
        ))
    }
}

/// A list of strings (null is empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Strings(pub Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Strings(
            Option::<Vec<String>>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

/// A command line (split like a shell would) or a list of words.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Words(pub Vec<String>);

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Words(Vec::new())),
            Value::String(line) => super::command::split_words(&line)
                .map(Words)
                .map_err(D::Error::custom),
            Value::Array(items) => Ok(Words(items.into_iter().filter_map(scalar_text).collect())),
            other => Err(D::Error::custom(format!(
                "expected a command line or a list, got `{other}`"
            ))),
        }
    }
}
