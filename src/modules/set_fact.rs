//! `set_fact`: set variables on the host for the rest of the run, rendered
//! with its variables. Runs on the machine running arpanet.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{json_strings, VarMap};
use crate::vars::Vars;
use crate::yaml::Node;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SetFact(pub Vars);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "set_fact"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let VarMap(vars) = args_map(&crate::yaml::yaml11(node), "a mapping of variables")?;
        if vars.is_empty() {
            return Err(BadArgs::invalid("`set_fact` needs at least one variable"));
        }
        Ok(Arc::new(SetFact(vars)))
    }
}

impl Module for SetFact {
    fn name(&self) -> &'static str {
        "set_fact"
    }

    fn summary(&self) -> String {
        self.0.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.0.values().for_each(|v| json_strings(v, &mut out));
        out
    }

    fn local(&self) -> bool {
        true
    }

    fn defines(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// The same in check mode: facts are set, as Ansible does.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let mut facts = Vars::new();
            for (key, value) in &self.0 {
                facts.insert(
                    key.clone(),
                    ctx.engine.render_json(value, ctx.vars, ctx.location)?,
                );
            }
            Ok(Outcome {
                facts: Some(facts),
                ..Outcome::ok()
            })
        })
    }
}
