//! `assert`: every expression of `that` must hold, else the task fails
//! (with `fail_msg`). Checked on the machine running arpanet, without
//! contacting the host.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{text, Cond, Text};
use crate::playbook::Condition;
use crate::yaml::Node;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AssertArgs {
    pub that: Condition,
    pub fail_msg: Option<String>,
    pub success_msg: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Assert(pub AssertArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertMap {
    that: Cond,
    fail_msg: Option<Text>,
    msg: Option<Text>,
    success_msg: Option<Text>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "assert"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: AssertMap = args_map(node, "a mapping with `that`")?;
        Ok(Arc::new(Assert(AssertArgs {
            that: m.that.0,
            fail_msg: text(m.fail_msg.or(m.msg)),
            success_msg: text(m.success_msg),
        })))
    }
}

impl Module for Assert {
    fn name(&self) -> &'static str {
        "assert"
    }

    fn summary(&self) -> String {
        self.0.that.join(" and ")
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        out.extend(self.0.fail_msg.as_deref());
        out.extend(self.0.success_msg.as_deref());
        out
    }

    fn expressions(&self) -> Vec<&str> {
        self.0.that.iter().map(String::as_str).collect()
    }

    fn local(&self) -> bool {
        true
    }

    /// The same in check mode: it changes nothing.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let args = &self.0;
            for expr in &args.that {
                if !ctx
                    .engine
                    .eval_condition(std::slice::from_ref(expr), ctx.vars, ctx.location)?
                {
                    let message = match &args.fail_msg {
                        Some(msg) => ctx.render(msg)?,
                        None => format!("assertion failed: `{expr}`"),
                    };
                    return Ok(Outcome::fail(message));
                }
            }
            let msg = args
                .success_msg
                .as_ref()
                .map(|m| ctx.render(m))
                .transpose()?;
            Ok(Outcome {
                msg,
                ..Outcome::ok()
            })
        })
    }
}
