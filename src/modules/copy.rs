//! `copy`: write a file (`src`, found beside the playbook or in its `files/`
//! folder) or the text of `content` to `dest`, unrendered except `content`.
//! The writing (compare by hash, atomic rename, metadata) is in `file.rs`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::file::{content, ContentMap, FileContentArgs};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::yaml::Node;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Copy(pub FileContentArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: ContentMap = args_map(node, "a mapping with `src` or `content`, and `dest`")?;
        if m.src.is_some() == m.content.is_some() {
            return Err(BadArgs::invalid("give exactly one of `src` and `content`"));
        }
        Ok(Arc::new(Copy(m.args())))
    }
}

impl Module for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn summary(&self) -> String {
        self.0.dest.clone()
    }

    fn templates(&self) -> Vec<&str> {
        self.0.templates()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(content(&self.0, false, ctx))
    }
}
