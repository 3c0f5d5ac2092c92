//! `service`: start, stop, restart or enable a service through systemctl
//! where systemd runs, else through `service`. Only actions that change the
//! service's state count as `changed`.

use super::{Context, Outcome};
use crate::error::Result;
use crate::playbook::{ServiceArgs, ServiceState};
use crate::transport::quote;

/// Printed by the script for each action it took (or would take).
const CHANGED: &str = "ARPANET-CHANGED";

pub async fn run(args: &ServiceArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let name = ctx.render(&args.name)?;
    let script = script(&quote(&name), args, ctx.check);
    match ctx.script(&script, None).await {
        Ok(out) => Ok(Outcome::changed(out.stdout.lines().any(|l| l == CHANGED))),
        Err(failed) => Ok(failed),
    }
}

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
                "{} || true",
                act(format!("update-rc.d {n} defaults >/dev/null"))
            ));
        } else {
            systemd.push(format!(
                "! systemctl is-enabled --quiet {n} || {}",
                act(format!("systemctl disable --quiet {n}"))
            ));
            sysv.push(format!(
                "{} || true",
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
        "set -e; if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then {}; else {}; fi",
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
