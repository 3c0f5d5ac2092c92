//! `service`: start, stop, restart or enable a service through systemctl
//! where systemd runs, else through `service`. Only actions that change the
//! service's state count as `changed`. `systemd` (masking, scopes) is its
//! own module (`systemd.rs`).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{Flag, Text};
use crate::transport::quote;
use crate::yaml::Node;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServiceState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ServiceArgs {
    pub name: String,
    pub state: Option<ServiceState>,
    pub enabled: Option<bool>,
    pub daemon_reload: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Service(pub ServiceArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceMap {
    name: Text,
    state: Option<ServiceState>,
    enabled: Option<Flag>,
    daemon_reload: Option<Flag>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "service"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: ServiceMap = args_map(node, "a mapping with `name`")?;
        if m.state.is_none() && m.enabled.is_none() && m.daemon_reload.is_none() {
            return Err(BadArgs::invalid(
                "give at least one of `state`, `enabled` and `daemon_reload`",
            ));
        }
        Ok(Arc::new(Service(ServiceArgs {
            name: m.name.0,
            state: m.state,
            enabled: m.enabled.map(|f| f.0),
            daemon_reload: m.daemon_reload.is_some_and(|f| f.0),
        })))
    }
}

impl Module for Service {
    fn name(&self) -> &'static str {
        "service"
    }

    fn summary(&self) -> String {
        self.0.name.clone()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.0.name]
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

/// Printed by the script for each action it took (or would take).
const CHANGED: &str = "ARPANET-CHANGED";

async fn run(args: &ServiceArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let name = ctx.render(&args.name)?;
    let script = script(&quote(&name), args, ctx.check);
    match ctx.framed_script(&script).await {
        Ok(out) => Ok(Outcome::changed(out.stdout.lines().any(|l| l == CHANGED))),
        Err(failed) => Ok(failed),
    }
}

/// Whether a SysV service `n` (a shell variable of the script) starts at
/// boot: a start link in one of the multi-user runlevels, which is what
/// `update-rc.d NAME enable` makes and `disable` turns into a kill link.
const SYSV_ENABLED: &str = "ls /etc/rc[2345].d/S[0-9][0-9]\"$n\" >/dev/null 2>&1";

/// One shell script that checks and acts; in check mode it only reports.
fn script(n: &str, args: &ServiceArgs, check: bool) -> String {
    let act = |cmd: String| {
        if check {
            format!("echo {CHANGED}")
        } else {
            format!("{{ {cmd} && echo {CHANGED}; }}")
        }
    };
    let mut systemd = Vec::new();
    let mut sysv = Vec::new();
    if args.daemon_reload && !check {
        systemd.push("systemctl daemon-reload".to_owned());
    }
    if let Some(enabled) = args.enabled {
        if enabled {
            systemd.push(format!(
                "systemctl is-enabled --quiet {n} || {}",
                act(format!("systemctl enable --quiet {n}"))
            ));
            sysv.push(format!(
                "{SYSV_ENABLED} || {}",
                act(format!(
                    "update-rc.d {n} defaults >/dev/null && update-rc.d {n} enable >/dev/null"
                ))
            ));
        } else {
            systemd.push(format!(
                "! systemctl is-enabled --quiet {n} || {}",
                act(format!("systemctl disable --quiet {n}"))
            ));
            sysv.push(format!(
                "! {SYSV_ENABLED} || {}",
                act(format!("update-rc.d {n} disable >/dev/null"))
            ));
        }
    }
    match args.state {
        Some(ServiceState::Started) => {
            systemd.push(format!(
                "systemctl is-active --quiet {n} || {}",
                act(format!("systemctl start {n}"))
            ));
            sysv.push(format!(
                "service {n} status >/dev/null 2>&1 || {}",
                act(format!("service {n} start"))
            ));
        }
        Some(ServiceState::Stopped) => {
            systemd.push(format!(
                "! systemctl is-active --quiet {n} || {}",
                act(format!("systemctl stop {n}"))
            ));
            sysv.push(format!(
                "! service {n} status >/dev/null 2>&1 || {}",
                act(format!("service {n} stop"))
            ));
        }
        Some(ServiceState::Restarted) => {
            systemd.push(act(format!("systemctl restart {n}")));
            sysv.push(act(format!("service {n} restart")));
        }
        Some(ServiceState::Reloaded) => {
            systemd.push(act(format!("systemctl reload-or-restart {n}")));
            sysv.push(act(format!("service {n} reload")));
        }
        None => {}
    }
    format!(
        "set -e; n={n}; if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then {}; else {}; fi",
        join(&systemd),
        join(&sysv)
    )
}

fn join(cmds: &[String]) -> String {
    if cmds.is_empty() {
        ":".into()
    } else {
        cmds.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_only_acts_when_inactive_and_check_mode_only_reports() {
        let args = ServiceArgs {
            name: "docker".into(),
            state: Some(ServiceState::Started),
            ..ServiceArgs::default()
        };
        let s = script("docker", &args, false);
        assert!(s.contains("systemctl is-active --quiet docker || { systemctl start docker && echo ARPANET-CHANGED; }"), "{s}");
        let c = script("docker", &args, true);
        assert!(!c.contains("systemctl start"), "{c}");
        assert!(c.contains("|| echo ARPANET-CHANGED"), "{c}");
    }
}
