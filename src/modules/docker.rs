//! `docker_image` and `docker_container`: images and containers on the
//! host's Docker engine, through the `docker` CLI over the SSH connection.
//!
//! A container's desired state (image, command, ports, volumes, env, ...) is
//! hashed into a label on the container. The module compares that label and
//! the image ID the container runs with `docker inspect`, and leaves the
//! container alone, starts it, creates it or recreates it accordingly; it
//! never decides "already running" by grepping `docker ps`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use super::{render_value, Context, Outcome};
use crate::error::{Error, Result};
use crate::transport::quote;
use crate::vars::Vars;

/// The label holding the hash of a container's spec.
pub const SPEC_LABEL: &str = "arpanet.spec";
/// The label marking containers arpanet manages.
pub const MANAGED_LABEL: &str = "arpanet.managed";

/// `docker_image` arguments, once rendered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageArgs {
    name: String,
    #[serde(default, deserialize_with = "flag")]
    force: bool,
}

/// `docker_container` arguments, once rendered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerArgs {
    name: String,
    image: Option<String>,
    #[serde(default, deserialize_with = "words")]
    command: Vec<String>,
    #[serde(default, deserialize_with = "words")]
    args: Vec<String>,
    #[serde(default, deserialize_with = "opt_text")]
    entrypoint: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    network_mode: Option<String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default, deserialize_with = "text_map")]
    env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "text_map")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "flag")]
    privileged: bool,
    #[serde(default)]
    cap_add: Vec<String>,
    #[serde(default, deserialize_with = "opt_text")]
    restart: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    healthcheck: Option<String>,
    #[serde(default)]
    state: ContainerState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ContainerState {
    #[default]
    Started,
    Stopped,
    Absent,
}

/// Render a module's argument map and give it its type.
fn typed<T: for<'de> Deserialize<'de>>(args: &Vars, ctx: &Context<'_>) -> Result<T> {
    let rendered = render_value(&serde_json::Value::Object(args.clone()), ctx)?;
    serde_json::from_value(rendered).map_err(|e| {
        Error::input(
            ctx.location.clone(),
            format!("after templating, the arguments are wrong: {e}"),
        )
    })
}

/// A yes/no argument, in Ansible's words (`true`, `"yes"`, `"y"`, ...).
fn flag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    match value {
        serde_json::Value::String(ref s) if s.is_empty() => Ok(false),
        _ => crate::truth::as_bool(&value)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a boolean, got `{value}`"))),
    }
}

fn scalar_text(value: serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// A string (empty means unset), number or null.
fn opt_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(scalar_text(serde_json::Value::deserialize(d)?).filter(|s| !s.is_empty()))
}

/// A map whose values may be numbers or bools, as text.
fn text_map<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, scalar_text(v).unwrap_or_default()))
        .collect())
}

/// A command line (split like a shell would) or a list of words.
fn words<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::String(line) => {
            super::command::split_words(&line).map_err(serde::de::Error::custom)
        }
        serde_json::Value::Array(items) => Ok(items.into_iter().filter_map(scalar_text).collect()),
        other => Err(serde::de::Error::custom(format!(
            "expected a command line or a list, got `{other}`"
        ))),
    }
}

pub async fn image(args: &Vars, ctx: &Context<'_>) -> Result<Outcome> {
    let args: ImageArgs = typed(args, ctx)?;
    let name = args.name;
    let q = quote(&name);
    if !args.force {
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
        .exec(
            &format!("docker image inspect --format '{{{{.Id}}}}' {q} 2>/dev/null || true"),
            None,
        )
        .await?;
    let pull = format!("docker pull --quiet {q}");
    let out = match ctx.script(&pull, None).await {
        Ok(out) => out,
        Err(failed) => return Ok(failed),
    };
    let after = ctx
        .exec(
            &format!("docker image inspect --format '{{{{.Id}}}}' {q}"),
            None,
        )
        .await?;
    let mut outcome = Outcome::changed(before.stdout.trim() != after.stdout.trim());
    outcome.stdout = out.stdout;
    Ok(outcome)
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
        let mut args: Vec<String> = vec!["docker".into(), "run".into(), "-d".into()];
        let mut opt = |flag: &str, value: &str| {
            args.push(flag.to_owned());
            args.push(value.to_owned());
        };
        opt("--name", &self.name);
        opt("--restart", &self.restart);
        opt("--label", &format!("{MANAGED_LABEL}=true"));
        opt("--label", &format!("{SPEC_LABEL}={}", self.hash()));
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

fn spec(args: ContainerArgs, ctx: &Context<'_>) -> Result<Spec> {
    let image = args.image.ok_or_else(|| {
        Error::input(
            ctx.location.clone(),
            "`docker_container` needs `image` to start a container",
        )
    })?;
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
}

fn parse_inspect(line: &str) -> Option<Existing> {
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
    })
}

pub async fn container(args: &Vars, ctx: &Context<'_>) -> Result<Outcome> {
    let args: ContainerArgs = typed(args, ctx)?;
    let name = args.name.clone();
    let q = quote(&name);
    let inspect = format!(
        "docker container inspect --format '{{{{.State.Running}}}} {{{{.Image}}}} {{{{index .Config.Labels \"{SPEC_LABEL}\"}}}}' {q} 2>/dev/null || echo missing"
    );
    let out = match ctx.script(&inspect, None).await {
        Ok(out) => out,
        Err(failed) => return Ok(failed),
    };
    let existing = parse_inspect(out.stdout.trim()).filter(|_| out.stdout.trim() != "missing");
    let state = args.state;
    let (actions, msg) = match state {
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
                .exec(
                    &format!(
                        "docker image inspect --format '{{{{.Id}}}}' {} 2>/dev/null",
                        quote(&spec.image)
                    ),
                    None,
                )
                .await?;
            let wanted_image = image_id.stdout.trim().to_owned();
            let run = format!("{} >/dev/null", spec.run_command());
            match existing {
                None => (vec![run], "created"),
                Some(e)
                    if e.spec_hash != spec.hash()
                        || (!wanted_image.is_empty() && e.image_id != wanted_image) =>
                {
                    (
                        vec![format!("docker rm -f {q} >/dev/null"), run],
                        "recreated",
                    )
                }
                Some(e) if !e.running => (vec![format!("docker start {q} >/dev/null")], "started"),
                Some(_) => return Ok(Outcome::ok()),
            }
        }
    };
    let mut outcome = Outcome {
        changed: true,
        msg: Some(format!("{name}: {msg}")),
        ..Outcome::ok()
    };
    if ctx.check {
        return Ok(outcome);
    }
    let script = format!("set -e; {}", actions.join("; "));
    if let Err(failed) = ctx.script(&script, None).await {
        return Ok(failed);
    }
    outcome.stdout = msg.to_owned();
    Ok(outcome)
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
    fn inspect_output_parses_with_and_without_the_label() {
        assert_eq!(
            parse_inspect("true sha256:abc 0123"),
            Some(Existing {
                running: true,
                image_id: "sha256:abc".into(),
                spec_hash: "0123".into()
            })
        );
        assert_eq!(
            parse_inspect("false sha256:abc <no value>").map(|e| e.spec_hash),
            Some(String::new())
        );
    }
}
