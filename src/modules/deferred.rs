//! Arguments that can only be read once their templates are rendered.
//!
//! Modules read their arguments when the playbook loads, so a mistake is
//! found before any host is contacted. But an Ansible playbook may template
//! any argument (`state: "{{ probe_state }}"`, `mode: "{{ file_mode }}"`),
//! and where a module reads such a one as a fixed kind of value (a state, a
//! number) it cannot judge the text `{{ ... }}`. Such a task is kept as
//! [`Deferred`]: the templates are still checked at load, and on each host
//! the arguments are rendered with that host's variables and read then, as
//! Ansible does. Arguments whose fault is not in a templated value stay
//! load-time errors.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, InputKind, Result};
use crate::template::is_template;
use crate::yaml::{Kind, Node, Pos};

/// A task whose module reads its arguments per host, after rendering.
pub(crate) struct Deferred {
    def: &'static dyn ModuleDef,
    args: Node,
    templates: Vec<String>,
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deferred")
            .field("module", &self.def.name())
            .field("args", &self.args)
            .finish()
    }
}

/// `def`'s arguments `args`, which it refused with `error`: deferred to run
/// time when the fault lies in a templated value, else `error` again.
pub(crate) fn parse_or_defer(
    def: &'static dyn ModuleDef,
    args: &Node,
) -> std::result::Result<Arc<dyn Module>, BadArgs> {
    let error = match def.parse(args) {
        Ok(module) => return Ok(module),
        Err(error) => error,
    };
    let mut templated = Vec::new();
    templated_scalars(args, &mut templated);
    let in_a_template = match &error {
        BadArgs::De(e) => {
            let pos = e.clone().into_input(args.pos, None).0;
            templated.iter().any(|(at, _)| *at == pos)
        }
        BadArgs::Invalid { message, .. } => message.contains("{{") || message.contains("{%"),
    };
    if !in_a_template {
        return Err(error);
    }
    Ok(Arc::new(Deferred {
        def,
        args: args.clone(),
        templates: templated.into_iter().map(|(_, text)| text).collect(),
    }))
}

/// Every scalar of `node` that is a template, with where it is.
fn templated_scalars(node: &Node, out: &mut Vec<(Pos, String)>) {
    match &node.kind {
        Kind::Scalar { text, .. } if is_template(text) => out.push((node.pos, text.clone())),
        Kind::Scalar { .. } => {}
        Kind::Seq(items) => items.iter().for_each(|n| templated_scalars(n, out)),
        Kind::Map(entries) => entries.iter().for_each(|(_, v)| templated_scalars(v, out)),
    }
}

/// `value` as a YAML node at `pos`: strings quoted, so that a rendered
/// `"5"` stays text unless the template produced the number 5.
fn node_of(value: &Value, pos: Pos) -> Node {
    let scalar = |text: String, plain| Node {
        kind: Kind::Scalar { text, plain },
        pos,
    };
    match value {
        Value::Null => scalar("null".into(), true),
        Value::Bool(b) => scalar(b.to_string(), true),
        Value::Number(n) => scalar(n.to_string(), true),
        Value::String(s) => scalar(s.clone(), false),
        Value::Array(items) => Node {
            kind: Kind::Seq(items.iter().map(|v| node_of(v, pos)).collect()),
            pos,
        },
        Value::Object(map) => Node {
            kind: Kind::Map(
                map.iter()
                    .map(|(k, v)| (scalar(k.clone(), true), node_of(v, pos)))
                    .collect(),
            ),
            pos,
        },
    }
}

impl Deferred {
    /// The module with this host's arguments.
    fn resolve(&self, ctx: &Context<'_>) -> Result<Arc<dyn Module>> {
        let raw: Value = self
            .args
            .to()
            .map_err(|e| Error::Internal(format!("deferred arguments: {e}")))?;
        let mut rendered = ctx.engine.render_json(&raw, ctx.vars, ctx.location)?;
        crate::template::strip_omitted(&mut rendered);
        let problem = match self.def.parse(&node_of(&rendered, self.args.pos)) {
            Ok(module) => return Ok(module),
            Err(BadArgs::De(e)) => e.into_input(self.args.pos, None).1.to_string(),
            Err(BadArgs::Invalid { message, .. }) => message,
        };
        Err(Error::input(
            ctx.location.clone(),
            InputKind::RenderedWrongType {
                argument: self.def.name().into(),
                problem,
            },
        ))
    }
}

impl Module for Deferred {
    fn name(&self) -> &'static str {
        self.def.name()
    }

    fn summary(&self) -> String {
        let main = ["name", "cmd", "path", "dest", "src"]
            .iter()
            .find_map(|key| {
                self.args
                    .entries()?
                    .iter()
                    .find(|(k, _)| k.text() == Some(key))
                    .and_then(|(_, v)| v.text().map(str::to_owned))
            });
        main.unwrap_or_default()
    }

    fn templates(&self) -> Vec<&str> {
        self.templates.iter().map(String::as_str).collect()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let module = self.resolve(ctx)?;
            module.run(ctx).await
        })
    }
}
