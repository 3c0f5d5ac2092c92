//! `arpanet render --host NAME TEMPLATE`: a template file (or a built-in
//! one) rendered with one host's variables, printed. Contacts no host.
//! The variables are those a play sees (`hostvars`, `groups`,
//! `group_names`), so what a run would send can be previewed.

use std::path::Path;

use crate::cli::RenderArgs;
use crate::error::{exit, Error, Location, Result};
use crate::scope::Resolved;
use crate::template::Engine;
use crate::vars::Vars;

pub(crate) fn run(args: RenderArgs) -> Result<i32> {
    // A run reads a host name in `arpanet_ip` as the address it resolves
    // to: so does the preview, where it resolves.
    let resolved = crate::cluster::address::resolve(&options(&args)?, false)?;
    let (path, inventory, scope) =
        super::load_scope_resolved(&args.inventory, &args.extra_vars, &resolved)?;
    if !inventory.hosts.iter().any(|h| h.name == args.host) {
        return Err(Error::usage(format!(
            "no host `{}` in `{}`",
            args.host,
            path.display()
        )));
    }
    let mut engine = Engine::new();
    let origin = Location::new("<variables>", 0, 0);
    let mut resolve = |play_vars: &Vars| {
        scope
            .play(
                &mut engine,
                play_vars,
                &crate::scope::RoleLayers::default(),
                &origin,
            )
            .remove(&args.host)
            .unwrap_or_default()
    };
    let mut host = resolve(&Vars::new());
    // Read from the node when a playbook runs (tasks/docker-bridge.yml):
    // shown as a placeholder, and said so, unless the inventory sets it.
    let bridge_unset = !host.vars().contains_key("docker_bridge_ip");
    if bridge_unset {
        let mut placeholder = Vars::new();
        placeholder.insert("docker_bridge_ip".into(), BRIDGE_PLACEHOLDER.into());
        host = resolve(&placeholder);
    }
    let vars = &host.vars();
    let path = Path::new(&args.template);
    let text = if path.exists() {
        engine
            .render_file(path, vars)
            .map_err(|e| explain(e, &engine, &host))?
    } else if let Some(source) = crate::cluster::builtin::BUILTINS.template(&args.template) {
        engine
            .render_named(
                &format!("<builtin>/templates/{}", args.template),
                source,
                vars,
            )
            .map_err(|e| explain(e, &engine, &host))?
    } else {
        return Err(Error::usage(format!(
            "no template file `{}`",
            args.template
        )));
    };
    print!("{text}");
    if bridge_unset && text.contains(BRIDGE_PLACEHOLDER) {
        eprintln!(
            "note: {BRIDGE_PLACEHOLDER} stands for the node's Docker bridge address, which a \
             playbook reads from the node (`docker_bridge_ip`); `-e docker_bridge_ip=ADDRESS` \
             previews it with an address"
        );
    }
    Ok(exit::OK)
}

/// The options a run with the same inventory and `-e` would have, as far
/// as resolving `arpanet_ip` reads them.
fn options(args: &RenderArgs) -> Result<crate::config::ConnectOptions> {
    let project = crate::project::Project::here()?;
    Ok(crate::config::ConnectOptions {
        inventory: project.inventory(&args.inventory)?,
        limit: None,
        extra_vars: args.extra_vars.clone(),
        forks: 1,
        user: project.user,
        private_key: None,
        known_hosts: None,
        host_key_checking: crate::transport::HostKeyChecking::Strict,
        timeout: None,
        defaults: crate::cluster::builtin::BUILTINS.defaults,
        escalation: crate::escalation::Defaults::default(),
        provided: Vars::new(),
        session: crate::transport::SessionMode::Persistent,
        resolved_ips: Vec::new(),
        playbook_dirs: Vec::new(),
    })
}

/// What `render` shows for an unset `docker_bridge_ip`.
const BRIDGE_PLACEHOLDER: &str = "<docker0 address>";

/// A variable the template reads that is defined but whose own template
/// did not render: say why, rather than guess at a similar name.
fn explain(err: Error, engine: &Engine, host: &Resolved) -> Error {
    let message = err.to_string();
    let why = host
        .unrendered()
        .find(|key| message.contains(&format!("`{key}`")))
        .and_then(|key| Some((key, host.why(engine, key)?)));
    match why {
        Some((key, why)) => err.with_hint(format!(
            "`{key}` is defined, but its value did not render: {why}"
        )),
        None => err,
    }
}
