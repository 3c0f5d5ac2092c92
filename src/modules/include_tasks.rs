//! `include_tasks`: a task that stands for the tasks of a file, read when it
//! runs (Ansible's dynamic include). It is a module so it takes every task
//! keyword (`when` judged per host, `loop` with `loop_control`, `vars`) and
//! the `ansible.builtin.` name; the executor expands it instead of running
//! it, so `run` is never called.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, Result};
use crate::playbook::values::Text;
use crate::yaml::Node;

/// The file to include: a template, rendered per host (and loop item).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IncludeTasks {
    pub file: String,
}

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncludeMap {
    file: Text,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "include_tasks"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let file = match node.entries() {
            Some(_) => node.to::<IncludeMap>()?.file.0,
            None => node.to::<Text>()?.0,
        };
        if file.trim().is_empty() {
            return Err(BadArgs::invalid("name the task file to include"));
        }
        Ok(Arc::new(IncludeTasks { file }))
    }
}

impl Module for IncludeTasks {
    fn name(&self) -> &'static str {
        "include_tasks"
    }

    fn summary(&self) -> String {
        self.file.clone()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.file]
    }

    fn local(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, _: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async {
            Err(Error::Internal(
                "an `include_tasks` task is expanded by the executor, never run".into(),
            ))
        })
    }
}
