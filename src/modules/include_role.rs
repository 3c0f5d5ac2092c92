//! `include_role`: a task that stands for a role's tasks, loaded when it
//! runs (Ansible's dynamic role include). Like `include_tasks` it is a
//! module so it takes every task keyword (`when` per host, `loop`, `vars`
//! given to the role); the executor expands it instead of running it.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, Result};
use crate::playbook::RoleRef;
use crate::yaml::Node;

/// The role to include; its name may be a template, rendered per host
/// (and loop item).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IncludeRole {
    pub role: RoleRef,
}

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "include_role"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let role = RoleRef::parse(node)?;
        if role.name.trim().is_empty() {
            return Err(BadArgs::invalid("name the role to include"));
        }
        Ok(Arc::new(IncludeRole { role }))
    }
}

impl Module for IncludeRole {
    fn name(&self) -> &'static str {
        "include_role"
    }

    fn summary(&self) -> String {
        self.role.name.clone()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.role.name]
    }

    fn local(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, _: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async {
            Err(Error::Internal(
                "an `include_role` task is expanded by the executor, never run".into(),
            ))
        })
    }
}
