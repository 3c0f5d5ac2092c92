//! `systemd` (also `systemd_service`): a unit's state, whether it starts at
//! boot, whether it is masked, and `daemon_reload`/`daemon_reexec`, judged
//! and applied in one script through `systemctl` alone, as Ansible's
//! `systemd_service` does: `enabled` from `systemctl is-enabled`, the state
//! from `ActiveState`, masking from `is-enabled` saying `masked`. Only the
//! actions that change something count as `changed`; a daemon reload alone
//! does not. In check mode it judges and runs nothing (no reload either).
//! `service` is the init-agnostic module (`service.rs`).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::service::ServiceState;
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{text, Flag, Text};
use crate::transport::quote;
use crate::yaml::Node;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    #[default]
    System,
    User,
    Global,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SystemdArgs {
    pub name: Option<String>,
    pub state: Option<ServiceState>,
    pub enabled: Option<bool>,
    pub masked: Option<bool>,
    pub daemon_reload: bool,
    pub daemon_reexec: bool,
    pub scope: Scope,
    pub no_block: bool,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Systemd(pub SystemdArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemdMap {
    #[serde(alias = "service", alias = "unit")]
    name: Option<Text>,
    state: Option<ServiceState>,
    enabled: Option<Flag>,
    masked: Option<Flag>,
    #[serde(alias = "daemon-reload")]
    daemon_reload: Option<Flag>,
    #[serde(alias = "daemon-reexec")]
    daemon_reexec: Option<Flag>,
    scope: Option<Scope>,
    no_block: Option<Flag>,
    force: Option<Flag>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["systemd_service"]
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: SystemdMap = args_map(node, "a mapping with `name` or `daemon_reload`")?;
        let flag = |f: Option<Flag>| f.is_some_and(|f| f.0);
        let args = SystemdArgs {
            name: text(m.name),
            state: m.state,
            enabled: m.enabled.map(|f| f.0),
            masked: m.masked.map(|f| f.0),
            daemon_reload: flag(m.daemon_reload),
            daemon_reexec: flag(m.daemon_reexec),
            scope: m.scope.unwrap_or_default(),
            no_block: flag(m.no_block),
            force: flag(m.force),
        };
        let acts_on_unit = args.state.is_some() || args.enabled.is_some() || args.masked.is_some();
        if !acts_on_unit && !args.daemon_reload && !args.daemon_reexec {
            return Err(BadArgs::invalid(
                "give at least one of `state`, `enabled`, `masked`, `daemon_reload` and `daemon_reexec`",
            ));
        }
        if acts_on_unit && args.name.is_none() {
            return Err(BadArgs::invalid(
                "`state`, `enabled` and `masked` need `name` (the unit)",
            ));
        }
        if let Some(name) = &args.name {
            if name.contains(['*', '?', '[']) && !name.contains("{{") {
                return Err(BadArgs::invalid(format!(
                    "`name` `{name}` is a glob pattern; give one unit"
                )));
            }
        }
        Ok(Arc::new(Systemd(args)))
    }
}

impl Module for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn summary(&self) -> String {
        self.0
            .name
            .clone()
            .unwrap_or_else(|| "daemon_reload".into())
    }

    fn templates(&self) -> Vec<&str> {
        self.0.name.iter().map(String::as_str).collect()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

async fn run(args: &SystemdArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let name = args.name.as_deref().map(|n| ctx.render(n)).transpose()?;
    let script = script(args, name.as_deref(), ctx.check);
    let out = match ctx.framed_script(&script).await {
        Ok(out) => out,
        Err(failed) => return Ok(failed),
    };
    let mut outcome = Outcome::ok();
    for line in out.stdout.lines() {
        match line.split_once(' ') {
            Some(("changed", _)) => outcome.changed = true,
            Some(("enabled", v)) => outcome = outcome.with("enabled", v == "true"),
            _ => {}
        }
    }
    if let Some(name) = name {
        outcome = outcome.with("name", name);
    }
    if let Some(state) = args.state {
        // As Ansible reports it: restarted and reloaded units are started.
        let state = match state {
            ServiceState::Stopped => "stopped",
            _ => "started",
        };
        outcome = outcome.with("state", state);
    }
    Ok(outcome)
}

/// The whole task as one script. It prints `changed ACTION` for each
/// action taken (or, in check mode, due) and `enabled BOOL` as the unit
/// ends up; `n` holds the unit.
pub(crate) fn script(args: &SystemdArgs, name: Option<&str>, check: bool) -> String {
    let mut sc = "systemctl".to_owned();
    match args.scope {
        Scope::System => {}
        Scope::User => sc.push_str(" --user"),
        Scope::Global => sc.push_str(" --global"),
    }
    if args.no_block {
        sc.push_str(" --no-block");
    }
    if args.force {
        sc.push_str(" --force");
    }
    let act = |action: &str| {
        let run = if check {
            String::new()
        } else {
            format!("{sc} {action} \"$n\"; ")
        };
        format!("{{ {run}echo 'changed {action}'; }}")
    };
    let mut s = vec![
        "set -e".to_owned(),
        "LC_ALL=C".to_owned(),
        "export LC_ALL".to_owned(),
    ];
    if !check {
        if args.daemon_reload {
            s.push(format!("{sc} daemon-reload"));
        }
        if args.daemon_reexec {
            s.push(format!("{sc} daemon-reexec"));
        }
    }
    let Some(name) = name else {
        return s.join("; ");
    };
    s.push(format!("n={}", quote(name)));
    if let Some(masked) = args.masked {
        let test = if masked { "!=" } else { "=" };
        let action = if masked { "mask" } else { "unmask" };
        s.push(format!(
            "m=$({sc} is-enabled \"$n\" 2>/dev/null || true); if [ \"$m\" {test} masked ]; then {}; fi",
            act(action)
        ));
    }
    if let Some(enabled) = args.enabled {
        // As Ansible: enabled when `is-enabled` succeeds, except for states
        // that only look enabled.
        s.push(format!(
            "e=false; if o=$({sc} is-enabled \"$n\" -l 2>/dev/null); then \
             case \"$o\" in enabled-runtime|indirect|alias) ;; *) e=true;; esac; fi"
        ));
        let (test, action) = if enabled {
            ("= false", "enable")
        } else {
            ("= true", "disable")
        };
        s.push(format!(
            "if [ \"$e\" {test} ]; then {}; e={enabled}; fi; echo \"enabled $e\"",
            act(action)
        ));
    }
    if let Some(state) = args.state {
        s.push(format!(
            "a=$({sc} show -p ActiveState --value \"$n\" 2>/dev/null || true); \
             case \"$a\" in active|activating) r=true;; *) r=false;; esac"
        ));
        s.push(match state {
            ServiceState::Started => format!("if [ $r = false ]; then {}; fi", act("start")),
            ServiceState::Stopped => format!(
                "if [ $r = true ] || [ \"$a\" = deactivating ]; then {}; fi",
                act("stop")
            ),
            ServiceState::Restarted => format!(
                "if [ $r = false ]; then {}; else {}; fi",
                act("start"),
                act("restart")
            ),
            ServiceState::Reloaded => format!(
                "if [ $r = false ]; then {}; else {}; fi",
                act("start"),
                act("reload")
            ),
        });
    }
    s.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SystemdArgs {
        SystemdArgs::default()
    }

    #[test]
    fn daemon_reload_alone_runs_first_and_not_in_check_mode() {
        let a = SystemdArgs {
            daemon_reload: true,
            ..args()
        };
        assert_eq!(
            script(&a, None, false),
            "set -e; LC_ALL=C; export LC_ALL; systemctl daemon-reload"
        );
        assert!(!script(&a, None, true).contains("daemon-reload"));
        let with_unit = SystemdArgs {
            daemon_reload: true,
            state: Some(ServiceState::Restarted),
            scope: Scope::User,
            ..args()
        };
        let s = script(&with_unit, Some("app"), false);
        assert!(
            s.find("systemctl --user daemon-reload").unwrap()
                < s.find("systemctl --user restart").unwrap(),
            "{s}"
        );
    }

    #[test]
    fn mask_and_enable_act_only_on_a_difference() {
        let a = SystemdArgs {
            masked: Some(true),
            enabled: Some(false),
            ..args()
        };
        let s = script(&a, Some("cups"), false);
        assert!(
            s.contains(
                "if [ \"$m\" != masked ]; then { systemctl mask \"$n\"; echo 'changed mask'; }; fi"
            ),
            "{s}"
        );
        assert!(
            s.contains("if [ \"$e\" = true ]; then { systemctl disable \"$n\"; echo 'changed disable'; }; e=false; fi"),
            "{s}"
        );
        let c = script(&a, Some("cups"), true);
        assert!(!c.contains("systemctl mask"), "{c}");
        assert!(c.contains("echo 'changed mask'"), "{c}");
    }
}
