//! `meta`: Ansible's actions on the run itself rather than on a host:
//! `flush_handlers` (run the handlers notified so far, now),
//! `end_host` (this host does nothing more in the play), `end_batch`
//! (the hosts of this `serial` batch do nothing more), `end_play` (no
//! host does anything more in the play; later plays run), and `noop`.
//! Like `include_tasks` it is a module so it reads like one; the
//! executor acts on it instead of running it.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, Result};
use crate::playbook::values::Text;
use crate::yaml::Node;

/// What a `meta` task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meta {
    FlushHandlers,
    EndHost,
    EndBatch,
    EndPlay,
    Noop,
}

const ACTIONS: &[(&str, Meta)] = &[
    ("flush_handlers", Meta::FlushHandlers),
    ("end_host", Meta::EndHost),
    ("end_batch", Meta::EndBatch),
    ("end_play", Meta::EndPlay),
    ("noop", Meta::Noop),
];

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "meta"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let action = node.to::<Text>()?.0;
        let action = action.trim();
        match ACTIONS.iter().find(|(name, _)| *name == action) {
            Some((_, meta)) => Ok(Arc::new(*meta)),
            None => {
                let names: Vec<String> = ACTIONS.iter().map(|(n, _)| format!("`{n}`")).collect();
                Err(BadArgs::invalid(format!(
                    "`meta: {action}` is not an action arpanet has; it has {}",
                    names.join(", ")
                )))
            }
        }
    }
}

impl Module for Meta {
    fn name(&self) -> &'static str {
        "meta"
    }

    fn summary(&self) -> String {
        ACTIONS
            .iter()
            .find(|(_, m)| m == self)
            .map_or_else(String::new, |(name, _)| (*name).to_owned())
    }

    fn templates(&self) -> Vec<&str> {
        Vec::new()
    }

    fn local(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, _: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async {
            Err(Error::Internal(
                "a `meta` task is acted on by the executor, never run".into(),
            ))
        })
    }
}
