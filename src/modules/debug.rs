//! `debug`: show a message, or a variable's value, for each host. Runs on
//! the machine running arpanet, without contacting the host.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::Text;
use crate::yaml::Node;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DebugArgs {
    Msg(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Debug(pub DebugArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DebugMap {
    msg: Option<Text>,
    var: Option<Text>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "debug"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: DebugMap = args_map(node, "a mapping with `msg` or `var`")?;
        let args = match (m.msg, m.var) {
            (Some(msg), None) => DebugArgs::Msg(msg.0),
            (None, Some(var)) => DebugArgs::Var(var.0),
            _ => return Err(BadArgs::invalid("give exactly one of `msg` and `var`")),
        };
        Ok(Arc::new(Debug(args)))
    }
}

impl Module for Debug {
    fn name(&self) -> &'static str {
        "debug"
    }

    fn summary(&self) -> String {
        match &self.0 {
            DebugArgs::Msg(s) | DebugArgs::Var(s) => s.clone(),
        }
    }

    fn templates(&self) -> Vec<&str> {
        match &self.0 {
            DebugArgs::Msg(s) => vec![s],
            DebugArgs::Var(_) => Vec::new(),
        }
    }

    fn expressions(&self) -> Vec<&str> {
        match &self.0 {
            DebugArgs::Msg(_) => Vec::new(),
            DebugArgs::Var(var) => vec![var],
        }
    }

    fn local(&self) -> bool {
        true
    }

    /// The same in check mode: it changes nothing.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let msg = match &self.0 {
                DebugArgs::Msg(text) => ctx.render(text)?,
                DebugArgs::Var(name) => {
                    let value = ctx.engine.render_str(
                        &format!("{{{{ {name} | tojson }}}}"),
                        ctx.vars,
                        ctx.location,
                    )?;
                    format!("{name} = {value}")
                }
            };
            Ok(Outcome {
                msg: Some(msg),
                ..Outcome::ok()
            })
        })
    }
}
