//! `docker_image`: pull an image onto the host's Docker engine (through the
//! `docker` CLI over the SSH connection) unless it is there; `force: yes`
//! pulls anyway, and `changed` says whether the image ID moved.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::templated::{get_or_default, Templated, YesNo};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::json_strings;
use crate::transport::quote;
use crate::yaml::Node;

/// `docker_image` arguments; each may be a template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImageArgs {
    pub name: Templated<String>,
    pub force: Option<Templated<YesNo>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DockerImage(pub ImageArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "docker_image"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["community.docker.docker_image"]
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(DockerImage(args_map(
            node,
            "a mapping with `name`",
        )?)))
    }
}

impl Module for DockerImage {
    fn name(&self) -> &'static str {
        "docker_image"
    }

    fn summary(&self) -> String {
        self.0.name.raw().as_str().unwrap_or_default().to_owned()
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        json_strings(self.0.name.raw(), &mut out);
        if let Some(force) = &self.0.force {
            json_strings(force.raw(), &mut out);
        }
        out
    }

    /// In check mode a missing image is reported as changed, not pulled.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

async fn run(args: &ImageArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let name = args.name.get("name", ctx)?;
    let force = get_or_default(&args.force, "force", ctx)?.0;
    let q = quote(&name);
    if !force {
        let present = ctx
            .exec(
                &format!("docker image inspect --format '{{{{.Id}}}}' {q}"),
                None,
            )
            .await?;
        if present.success() {
            return Ok(Outcome::ok());
        }
    }
    if ctx.check {
        return Ok(Outcome::changed(true));
    }
    let before = ctx
        .framed_exec(&format!(
            "docker image inspect --format '{{{{.Id}}}}' {q} 2>/dev/null || true"
        ))
        .await?;
    let pull = format!("docker pull --quiet {q}");
    let out = match ctx.framed_script(&pull).await {
        Ok(out) => out,
        Err(failed) => return Ok(failed),
    };
    let after = ctx
        .framed_exec(&format!("docker image inspect --format '{{{{.Id}}}}' {q}"))
        .await?;
    let mut outcome = Outcome::changed(before.stdout.trim() != after.stdout.trim());
    outcome.stdout = out.stdout;
    Ok(outcome)
}
