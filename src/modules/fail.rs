//! `fail`: stop the host here with a message, as Ansible's does. Decided on
//! the machine running arpanet, without contacting the host; usually
//! guarded by `when`.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::Text;
use crate::yaml::Node;

/// Ansible's message when `msg` is not given.
const DEFAULT_MSG: &str = "Failed as requested from task";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fail {
    pub msg: String,
}

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailMap {
    msg: Option<Text>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "fail"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        // `fail:` alone (no arguments) is the usual spelling.
        let msg = match node.scalar() {
            Some(crate::yaml::Scalar::Null) => None,
            _ => args_map::<FailMap>(node, "a mapping with `msg`")?.msg,
        };
        Ok(Arc::new(Fail {
            msg: msg.map_or_else(|| DEFAULT_MSG.to_owned(), |t| t.0),
        }))
    }
}

impl Module for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }

    fn summary(&self) -> String {
        self.msg.clone()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.msg]
    }

    fn local(&self) -> bool {
        true
    }

    /// The same in check mode.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move { Ok(Outcome::fail(ctx.render(&self.msg)?)) })
    }
}
