//! `shell`: run a command line through the host's shell, as written (pipes,
//! redirections and variables work). Arguments and running are `command`'s.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::command::{parse_args, run, CommandArgs};
use super::{BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::yaml::Node;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shell(pub CommandArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let args = parse_args(node, true, "a command line, or a mapping with `cmd`")?;
        Ok(Arc::new(Shell(args)))
    }
}

impl Module for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn summary(&self) -> String {
        self.0.summary()
    }

    fn templates(&self) -> Vec<&str> {
        self.0.templates()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, true, ctx))
    }
}
