//! `package`: Ansible's generic package module. arpanet manages Debian and
//! Ubuntu hosts, so it is `apt` (see `apt.rs`) with `package`'s arguments.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::apt::{AptArgs, PkgState};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{List, Text};
use crate::yaml::Node;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Package(pub AptArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageMap {
    name: List,
    state: Option<PkgState>,
    /// The package manager: `auto` or `apt` (the only one arpanet drives).
    #[serde(rename = "use")]
    manager: Option<Text>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "package"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: PackageMap = args_map(node, "a mapping with `name` and `state`")?;
        if let Some(manager) = m
            .manager
            .filter(|u| !matches!(u.0.as_str(), "auto" | "apt"))
        {
            return Err(BadArgs::invalid(format!(
                "`use: {}` is not supported; arpanet manages packages with `apt`",
                manager.0
            )));
        }
        if m.name.0.is_empty() {
            return Err(BadArgs::invalid("`name` lists no package"));
        }
        Ok(Arc::new(Package(AptArgs {
            names: m.name.0,
            state: m.state.unwrap_or_default(),
            lock_timeout: 60,
            dpkg_options: super::apt::DPKG_OPTIONS.into(),
            ..AptArgs::default()
        })))
    }
}

impl Module for Package {
    fn name(&self) -> &'static str {
        "package"
    }

    fn summary(&self) -> String {
        super::apt::summary(&self.0)
    }

    fn templates(&self) -> Vec<&str> {
        self.0.names.iter().map(String::as_str).collect()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(super::apt::run(&self.0, ctx))
    }
}
