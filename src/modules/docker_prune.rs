//! `docker_prune`: remove the containers arpanet manages that are no longer
//! wanted.
//!
//! `docker_container` labels every container it makes `arpanet.managed=true`;
//! a service dropped from (or renamed in) `stack` would otherwise keep
//! running forever, because nothing names it any more. This task lists the
//! managed containers (optionally only those with one more label, such as
//! `arpanet.role=stack`) and removes every one whose name is not in `keep`.
//! Containers without the managed label are never touched.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::docker_container::MANAGED_LABEL;
use super::templated::{get_or_default, OptText, Strings, Templated};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::json_strings;
use crate::transport::quote;
use crate::yaml::Node;

/// `docker_prune` arguments; each may be a template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PruneArgs {
    /// Only managed containers that also carry this `KEY=VALUE` label.
    pub label: Option<Templated<OptText>>,
    /// Names to leave alone; every other matching container is removed.
    pub keep: Option<Templated<Strings>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DockerPrune(pub PruneArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "docker_prune"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        if node.is_null() {
            return Ok(Arc::new(DockerPrune(PruneArgs {
                label: None,
                keep: None,
            })));
        }
        Ok(Arc::new(DockerPrune(args_map(
            node,
            "a mapping with `label` and `keep`",
        )?)))
    }
}

impl Module for DockerPrune {
    fn name(&self) -> &'static str {
        "docker_prune"
    }

    fn summary(&self) -> String {
        self.0
            .label
            .as_ref()
            .and_then(|l| l.raw().as_str())
            .unwrap_or(MANAGED_LABEL)
            .to_owned()
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for raw in [
            self.0.label.as_ref().map(Templated::raw),
            self.0.keep.as_ref().map(Templated::raw),
        ]
        .into_iter()
        .flatten()
        {
            json_strings(raw, &mut out);
        }
        out
    }

    /// In check mode it lists what it would remove and removes nothing.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(prune(&self.0, ctx))
    }
}

/// The `docker ps` that lists the candidates, one `NAME IMAGE` per line.
fn list_command(label: Option<&str>) -> String {
    let mut filters = format!("--filter {}", quote(&format!("label={MANAGED_LABEL}=true")));
    if let Some(label) = label {
        filters.push_str(&format!(" --filter {}", quote(&format!("label={label}"))));
    }
    format!("docker ps -a {filters} --format '{{{{.Names}}}} {{{{.Image}}}}'")
}

/// The `(name, image)` pairs of `listing` not in `keep`, by name.
fn unwanted<'a>(listing: &'a str, keep: &[String]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?, parts.next().unwrap_or_default()))
        })
        .filter(|(name, _)| !keep.iter().any(|k| k == name))
        .collect();
    out.sort_unstable();
    out
}

async fn prune(args: &PruneArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let label = get_or_default(&args.label, "label", ctx)?.0;
    let keep = get_or_default(&args.keep, "keep", ctx)?.0;
    let listing = match ctx.framed_script(&list_command(label.as_deref())).await {
        Ok(out) => out.stdout,
        Err(failed) => return Ok(failed),
    };
    let gone = unwanted(&listing, &keep);
    if gone.is_empty() {
        return Ok(Outcome::ok());
    }
    let names: Vec<&str> = gone.iter().map(|(name, _)| *name).collect();
    let mut outcome = Outcome {
        changed: true,
        msg: Some(format!("removed: {}", names.join(", "))),
        diff: Some(
            gone.iter()
                .map(|(name, image)| format!("- container {name} ({image})\n"))
                .collect(),
        ),
        ..Outcome::ok()
    };
    if ctx.check {
        return Ok(outcome);
    }
    let quoted: Vec<String> = names.iter().map(|n| quote(n)).collect();
    let script = format!("docker rm -f {} >/dev/null", quoted.join(" "));
    if let Err(failed) = ctx.script(&script, None).await {
        return Ok(failed);
    }
    outcome.stdout = names.join("\n");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_managed_containers_with_the_label_are_listed() {
        assert_eq!(
            list_command(Some("arpanet.role=stack")),
            "docker ps -a --filter label=arpanet.managed=true --filter label=arpanet.role=stack --format '{{.Names}} {{.Image}}'"
        );
        assert!(!list_command(None).contains("role"));
    }

    #[test]
    fn containers_named_in_keep_stay() {
        let listing = "web2 busybox\ncadvisor gcr.io/cadvisor:1\nweb busybox\n";
        let keep = vec!["cadvisor".to_owned(), "web2".to_owned()];
        assert_eq!(unwanted(listing, &keep), [("web", "busybox")]);
        assert_eq!(unwanted(listing, &[]).len(), 3);
        assert!(unwanted("", &[]).is_empty());
    }
}
