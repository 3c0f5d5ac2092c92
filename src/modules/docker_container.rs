//! `docker_container`: a container on the host's Docker engine, through the
//! `docker` CLI over the SSH connection.
//!
//! A container's desired state (image, command, ports, volumes, env, ...) is
//! hashed into a label on the container. The module compares that label and
//! the image ID the container runs with `docker inspect`, and leaves the
//! container alone, starts it, creates it or recreates it accordingly; it
//! never decides "already running" by grepping `docker ps`.
//!
//! A second label keeps the spec's shape without env values (image,
//! command, env names, ports, volumes), so `--diff` can say what changed
//! old → new. Env values may be secrets: they reach the host only inside
//! the `docker run` command, and any command or output this module reports
//! (a failure, the command `-v` shows) shows them as `KEY=***`.

use std::collections::BTreeMap;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::templated::{get_or_default, OptText, Strings, Templated, TextMap, Words, YesNo};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, Result};
use crate::playbook::values::json_strings;
use crate::transport::quote;
use crate::yaml::Node;

/// The label holding the hash of a container's spec.
pub const SPEC_LABEL: &str = "arpanet.spec";
/// The label marking containers arpanet manages.
pub const MANAGED_LABEL: &str = "arpanet.managed";
/// The label holding the spec's [`Shape`], as JSON.
pub const SHAPE_LABEL: &str = "arpanet.shape";
/// What an env value is shown as.
const HIDDEN: &str = "***";

/// `docker_container` arguments; each may be a template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContainerArgs {
    pub name: Templated<String>,
    pub image: Option<Templated<OptText>>,
    pub command: Option<Templated<Words>>,
    pub args: Option<Templated<Words>>,
    pub entrypoint: Option<Templated<OptText>>,
    pub network_mode: Option<Templated<OptText>>,
    pub ports: Option<Templated<Strings>>,
    pub volumes: Option<Templated<Strings>>,
    pub env: Option<Templated<TextMap>>,
    pub labels: Option<Templated<TextMap>>,
    pub privileged: Option<Templated<YesNo>>,
    pub cap_add: Option<Templated<Strings>>,
    pub restart: Option<Templated<OptText>>,
    pub healthcheck: Option<Templated<OptText>>,
    pub state: Option<Templated<ContainerState>>,
}

impl ContainerArgs {
    /// Every argument as written, by name.
    fn raw(&self) -> Vec<&serde_json::Value> {
        let mut out = vec![self.name.raw()];
        let optional = [
            self.image.as_ref().map(Templated::raw),
            self.command.as_ref().map(Templated::raw),
            self.args.as_ref().map(Templated::raw),
            self.entrypoint.as_ref().map(Templated::raw),
            self.network_mode.as_ref().map(Templated::raw),
            self.ports.as_ref().map(Templated::raw),
            self.volumes.as_ref().map(Templated::raw),
            self.env.as_ref().map(Templated::raw),
            self.labels.as_ref().map(Templated::raw),
            self.privileged.as_ref().map(Templated::raw),
            self.cap_add.as_ref().map(Templated::raw),
            self.restart.as_ref().map(Templated::raw),
            self.healthcheck.as_ref().map(Templated::raw),
            self.state.as_ref().map(Templated::raw),
        ];
        out.extend(optional.into_iter().flatten());
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DockerContainer(pub ContainerArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "docker_container"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["community.docker.docker_container"]
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(DockerContainer(args_map(
            node,
            "a mapping with `name`",
        )?)))
    }
}

impl Module for DockerContainer {
    fn name(&self) -> &'static str {
        "docker_container"
    }

    fn summary(&self) -> String {
        self.0.name.raw().as_str().unwrap_or_default().to_owned()
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.0
            .raw()
            .into_iter()
            .for_each(|v| json_strings(v, &mut out));
        out
    }

    /// In check mode it inspects the container and reports what it would
    /// do (create, recreate, start, stop, remove) without doing it.
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(container(&self.0, ctx))
    }
}

/// The arguments rendered for one host.
struct Rendered {
    name: String,
    image: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
    entrypoint: Option<String>,
    network_mode: Option<String>,
    ports: Vec<String>,
    volumes: Vec<String>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    privileged: bool,
    cap_add: Vec<String>,
    restart: Option<String>,
    healthcheck: Option<String>,
    state: ContainerState,
}

impl ContainerArgs {
    fn render(&self, ctx: &Context<'_>) -> Result<Rendered> {
        Ok(Rendered {
            name: self.name.get("name", ctx)?,
            image: get_or_default(&self.image, "image", ctx)?.0,
            command: get_or_default(&self.command, "command", ctx)?.0,
            args: get_or_default(&self.args, "args", ctx)?.0,
            entrypoint: get_or_default(&self.entrypoint, "entrypoint", ctx)?.0,
            network_mode: get_or_default(&self.network_mode, "network_mode", ctx)?.0,
            ports: get_or_default(&self.ports, "ports", ctx)?.0,
            volumes: get_or_default(&self.volumes, "volumes", ctx)?.0,
            env: get_or_default(&self.env, "env", ctx)?.0,
            labels: get_or_default(&self.labels, "labels", ctx)?.0,
            privileged: get_or_default(&self.privileged, "privileged", ctx)?.0,
            cap_add: get_or_default(&self.cap_add, "cap_add", ctx)?.0,
            restart: get_or_default(&self.restart, "restart", ctx)?.0,
            healthcheck: get_or_default(&self.healthcheck, "healthcheck", ctx)?.0,
            state: get_or_default(&self.state, "state", ctx)?,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ContainerState {
    #[default]
    Started,
    Stopped,
    Absent,
}

/// The rendered desired state; its JSON is what the spec label hashes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub entrypoint: Option<String>,
    pub network_mode: Option<String>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub restart: String,
    pub healthcheck: Option<String>,
}

impl Spec {
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..12])
    }

    /// `docker run -d` with every option of the spec, quoted.
    pub fn run_command(&self) -> String {
        self.command_line(false)
    }

    /// [`Spec::run_command`] as it may be shown: env values as `***`.
    fn shown_command(&self) -> String {
        self.command_line(true)
    }

    /// What `--diff` compares: the spec without env values.
    fn shape(&self) -> Shape {
        Shape {
            image: self.image.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.keys().cloned().collect(),
            ports: self.ports.clone(),
            volumes: self.volumes.clone(),
            network_mode: self.network_mode.clone(),
        }
    }

    /// The env values long enough to be told apart in output, to scrub.
    fn secrets(&self) -> Vec<&str> {
        self.env
            .values()
            .map(String::as_str)
            .filter(|v| v.len() >= 4)
            .collect()
    }

    fn command_line(&self, hide_env: bool) -> String {
        let mut args: Vec<String> = vec!["docker".into(), "run".into(), "-d".into()];
        let mut opt = |flag: &str, value: &str| {
            args.push(flag.to_owned());
            args.push(value.to_owned());
        };
        opt("--name", &self.name);
        opt("--restart", &self.restart);
        opt("--label", &format!("{MANAGED_LABEL}=true"));
        opt("--label", &format!("{SPEC_LABEL}={}", self.hash()));
        let shape = serde_json::to_string(&self.shape()).unwrap_or_default();
        opt("--label", &format!("{SHAPE_LABEL}={shape}"));
        for (k, v) in &self.labels {
            opt("--label", &format!("{k}={v}"));
        }
        if let Some(net) = &self.network_mode {
            opt("--network", net);
        }
        for p in &self.ports {
            opt("--publish", p);
        }
        for v in &self.volumes {
            opt("--volume", v);
        }
        for (k, v) in &self.env {
            let v = if hide_env { HIDDEN } else { v };
            opt("--env", &format!("{k}={v}"));
        }
        for c in &self.cap_add {
            opt("--cap-add", c);
        }
        if let Some(entry) = &self.entrypoint {
            opt("--entrypoint", entry);
        }
        if let Some(check) = &self.healthcheck {
            opt("--health-cmd", check);
            opt("--health-interval", "5s");
        }
        if self.privileged {
            args.push("--privileged".into());
        }
        args.push(self.image.clone());
        args.extend(self.command.iter().cloned());
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    }
}

/// A spec without env values: what a container's `--diff` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
struct Shape {
    image: String,
    command: Vec<String>,
    entrypoint: Option<String>,
    /// Names only.
    env: Vec<String>,
    ports: Vec<String>,
    volumes: Vec<String>,
    network_mode: Option<String>,
}

/// What differs between the running container (its shape, if labelled)
/// and `new`, one `NAME: FIELD: old → new` line each.
fn shape_diff(name: &str, old: Option<&Shape>, new: &Shape) -> String {
    let Some(old) = old else {
        return format!(
            "{name}: recorded by an older arpanet; now image {}\n",
            new.image
        );
    };
    let words = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join(" ")
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
    let mut out = String::new();
    let mut line = |field: &str, a: String, b: String| {
        if a != b {
            out.push_str(&format!("{name}: {field}: {a} → {b}\n"));
        }
    };
    line("image", old.image.clone(), new.image.clone());
    line("command", words(&old.command), words(&new.command));
    line("entrypoint", opt(&old.entrypoint), opt(&new.entrypoint));
    line("ports", words(&old.ports), words(&new.ports));
    line("volumes", words(&old.volumes), words(&new.volumes));
    line("network", opt(&old.network_mode), opt(&new.network_mode));
    if old.env != new.env {
        let added: Vec<String> = new
            .env
            .iter()
            .filter(|k| !old.env.contains(k))
            .map(|k| format!("+{k}"))
            .collect();
        let removed: Vec<String> = old
            .env
            .iter()
            .filter(|k| !new.env.contains(k))
            .map(|k| format!("-{k}"))
            .collect();
        out.push_str(&format!(
            "{name}: env: {}\n",
            [removed, added].concat().join(" ")
        ));
    }
    if out.is_empty() {
        out = format!("{name}: env values or other settings changed\n");
    }
    out
}

/// `text` with every secret in it shown as `***`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .fold(text.to_owned(), |t, s| t.replace(s, HIDDEN))
}

/// A failed outcome of a command that carried env values, made safe to
/// show: the command as `shown`, every other text scrubbed.
fn scrubbed(mut failed: Outcome, shown: &str, secrets: &[&str]) -> Outcome {
    failed.stdout = scrub(&failed.stdout, secrets);
    failed.stderr = scrub(&failed.stderr, secrets);
    if let Some(f) = &mut failed.failure {
        f.message = scrub(&f.message, secrets);
        f.command = f.command.as_ref().map(|_| shown.to_owned());
        f.stderr = f.stderr.as_deref().map(|e| scrub(e, secrets));
    }
    failed
}

fn spec(args: Rendered, ctx: &Context<'_>) -> Result<Spec> {
    let image = args
        .image
        .ok_or_else(|| Error::input(ctx.location.clone(), crate::error::InputKind::NoImage))?;
    let mut command = args.command;
    command.extend(args.args);
    Ok(Spec {
        name: args.name,
        image,
        command,
        entrypoint: args.entrypoint,
        network_mode: args.network_mode,
        ports: args.ports,
        volumes: args.volumes,
        env: args.env,
        labels: args.labels,
        privileged: args.privileged,
        cap_add: args.cap_add,
        restart: args.restart.unwrap_or_else(|| "unless-stopped".to_owned()),
        healthcheck: args.healthcheck,
    })
}

/// What `docker inspect` says about the existing container.
#[derive(Debug, PartialEq, Eq)]
struct Existing {
    running: bool,
    spec_hash: String,
    image_id: String,
    shape: Option<Shape>,
}

/// The inspect output: `RUNNING IMAGE-ID SPEC-HASH` on the first line, the
/// shape label's JSON on the second.
fn parse_inspect(text: &str) -> Option<Existing> {
    let (line, shape) = text.split_once('\n').unwrap_or((text, ""));
    let shape = serde_json::from_str(shape.trim()).ok();
    let mut parts = line.split_whitespace();
    let running = parts.next()? == "true";
    let image_id = parts.next()?.to_owned();
    let spec_hash = parts
        .next()
        .unwrap_or_default()
        .trim_start_matches("<no")
        .to_owned();
    Some(Existing {
        running,
        spec_hash,
        image_id,
        shape,
    })
}

async fn container(args: &ContainerArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let args = args.render(ctx)?;
    let name = args.name.clone();
    let q = quote(&name);
    let inspect = format!(
        "docker container inspect --format '{{{{.State.Running}}}} {{{{.Image}}}} {{{{index .Config.Labels \"{SPEC_LABEL}\"}}}}
{{{{index .Config.Labels \"{SHAPE_LABEL}\"}}}}' {q} 2>/dev/null || echo missing"
    );
    let out = match ctx.framed_script(&inspect).await {
        Ok(out) => out,
        Err(failed) => return Ok(failed),
    };
    let existing = parse_inspect(out.stdout.trim()).filter(|_| out.stdout.trim() != "missing");
    let mut diff = None;
    // The `docker run` as shown, and the env values to scrub, when the
    // action carries them.
    let mut shown: Option<(String, Spec)> = None;
    let (actions, msg) = match args.state {
        ContainerState::Absent => match existing {
            None => return Ok(Outcome::ok()),
            Some(_) => (vec![format!("docker rm -f {q} >/dev/null")], "removed"),
        },
        ContainerState::Stopped => match existing {
            Some(e) if e.running => (vec![format!("docker stop {q} >/dev/null")], "stopped"),
            _ => return Ok(Outcome::ok()),
        },
        ContainerState::Started => {
            let spec = spec(args, ctx)?;
            let image_id = ctx
                .framed_exec(&format!(
                    "docker image inspect --format '{{{{.Id}}}}' {} 2>/dev/null",
                    quote(&spec.image)
                ))
                .await?;
            let wanted_image = image_id.stdout.trim().to_owned();
            let run = format!("{} >/dev/null", spec.run_command());
            let rm = format!("docker rm -f {q} >/dev/null");
            let plan = match existing {
                None => (vec![run], "created"),
                Some(e) if e.spec_hash != spec.hash() => {
                    diff = Some(shape_diff(&name, e.shape.as_ref(), &spec.shape()));
                    (vec![rm, run], "recreated")
                }
                Some(e) if !wanted_image.is_empty() && e.image_id != wanted_image => {
                    diff = Some(format!(
                        "{name}: image {}: {} → {}\n",
                        spec.image,
                        short_id(&e.image_id),
                        short_id(&wanted_image)
                    ));
                    (vec![rm, run], "recreated")
                }
                Some(e) if !e.running => (vec![format!("docker start {q} >/dev/null")], "started"),
                Some(_) => return Ok(Outcome::ok()),
            };
            shown = Some((spec.shown_command(), spec));
            plan
        }
    };
    let mut outcome = Outcome {
        changed: true,
        msg: Some(format!("{name}: {msg}")),
        diff,
        ..Outcome::ok()
    };
    if ctx.check {
        return Ok(outcome);
    }
    let script = format!("set -e; {}", actions.join("; "));
    // The script as `-v` shows it and a failure names it.
    let visible = match &shown {
        Some((command, spec)) => script.replace(&spec.run_command(), command),
        None => script.clone(),
    };
    if let Err(failed) = ctx.masked_script(&script, &visible, None).await {
        return Ok(match &shown {
            Some((_, spec)) => scrubbed(failed, &visible, &spec.secrets()),
            None => failed,
        });
    }
    outcome.stdout = msg.to_owned();
    Ok(outcome)
}

/// An image ID as `docker images` shows it: 12 hex digits.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "consul".into(),
            image: "reg:5000/consul:1.8".into(),
            command: vec!["agent".into(), "-server".into()],
            entrypoint: None,
            network_mode: Some("host".into()),
            ports: vec![],
            volumes: vec!["/mnt/arpanet-consul:/data".into()],
            env: BTreeMap::from([("A".into(), "b c".into())]),
            labels: BTreeMap::new(),
            privileged: false,
            cap_add: vec![],
            restart: "unless-stopped".into(),
            healthcheck: None,
        }
    }

    #[test]
    fn the_spec_hash_changes_with_any_field() {
        let a = spec();
        let mut b = spec();
        assert_eq!(a.hash(), b.hash());
        b.command.push("-ui".into());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn run_command_quotes_values_and_carries_the_labels() {
        let cmd = spec().run_command();
        assert!(cmd.starts_with("docker run -d --name consul --restart unless-stopped --label arpanet.managed=true --label arpanet.spec="), "{cmd}");
        assert!(cmd.contains("--env 'A=b c'"), "{cmd}");
        assert!(cmd.ends_with("reg:5000/consul:1.8 agent -server"), "{cmd}");
    }

    #[test]
    fn env_values_are_hidden_from_the_shown_command_and_failures() {
        let secret = format!("pw-{}", std::process::id());
        let mut s = spec();
        s.env.insert("DB_PASSWORD".into(), secret.clone());
        assert!(s.run_command().contains(&secret));
        let shown = s.shown_command();
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains("--env 'DB_PASSWORD=***'"), "{shown}");
        let out = crate::transport::Output {
            status: 125,
            stdout: String::new(),
            stderr: format!("docker: bad value {secret}\n"),
        };
        let failed = scrubbed(
            Outcome::failed_command(&s.run_command(), &out),
            &shown,
            &s.secrets(),
        );
        let text = format!("{failed:?}");
        assert!(!text.contains(&secret), "{text}");
        assert!(text.contains("DB_PASSWORD=***"), "{text}");
    }

    #[test]
    fn the_diff_names_what_changed_old_to_new_without_env_values() {
        let old = spec();
        let mut new = spec();
        new.image = "reg:5000/consul:1.9".into();
        new.env = BTreeMap::from([("TOKEN".into(), "s3cret-value".into())]);
        let diff = shape_diff("consul", Some(&old.shape()), &new.shape());
        assert_eq!(
            diff,
            "consul: image: reg:5000/consul:1.8 → reg:5000/consul:1.9\nconsul: env: -A +TOKEN\n"
        );
        let mut quiet = spec();
        quiet.env.insert("A".into(), "other".into());
        assert!(shape_diff("consul", Some(&old.shape()), &quiet.shape()).contains("env values"));
    }

    #[test]
    fn inspect_output_parses_with_and_without_the_label() {
        assert_eq!(
            parse_inspect("true sha256:abc 0123"),
            Some(Existing {
                running: true,
                image_id: "sha256:abc".into(),
                spec_hash: "0123".into(),
                shape: None,
            })
        );
        assert_eq!(
            parse_inspect("false sha256:abc <no value>\n<no value>").map(|e| e.spec_hash),
            Some(String::new())
        );
        let shape = serde_json::to_string(&spec().shape()).unwrap();
        let parsed = parse_inspect(&format!("true sha256:abc 0123\n{shape}")).unwrap();
        assert_eq!(parsed.shape, Some(spec().shape()));
    }
}
