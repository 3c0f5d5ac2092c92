//! `template`: render a template file (`src`, found beside the playbook or in its
//! `templates/` folder) with the host's variables and write it to `dest`.
//! The writing (compare by hash, atomic rename, metadata) is in `file.rs`.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::file::{content, FileContentArgs};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{text, Flag, Mode, Text};
use crate::yaml::Node;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateMap {
    src: Text,
    dest: Text,
    mode: Option<Mode>,
    owner: Option<Text>,
    group: Option<Text>,
    backup: Option<Flag>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template(pub FileContentArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "template"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: TemplateMap = args_map(node, "a mapping with `src` and `dest`")?;
        Ok(Arc::new(Template(FileContentArgs {
            src: Some(m.src.0),
            content: None,
            dest: m.dest.0,
            mode: m.mode.map(|m| m.0),
            owner: text(m.owner),
            group: text(m.group),
            backup: m.backup.is_some_and(|f| f.0),
        })))
    }
}

impl Module for Template {
    fn name(&self) -> &'static str {
        "template"
    }

    fn summary(&self) -> String {
        self.0.dest.clone()
    }

    fn templates(&self) -> Vec<&str> {
        self.0.templates()
    }

    fn template_file(&self) -> Option<&str> {
        self.0.src.as_deref()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(content(&self.0, true, ctx))
    }
}
