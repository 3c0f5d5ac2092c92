//! The engine's entry point: load the inventory and variables, resolve every
//! host a playbook may reach (so bad connection variables are reported
//! before anything runs), then run the playbooks through the executor and
//! print the recap. `run` and `exec` both end here; the engine writes
//! nothing on this machine unless a task asks it to. Ctrl-C during the run
//! stops it with a recap (see `interrupt`).

use std::sync::Arc;

use crate::config::{ConnectOptions, Settings};
use crate::error::{Error, Result};
use crate::executor::{Executor, Guard};
use crate::playbook::Playbook;
use crate::report::{Finished, OutputFormat, Printer};
use crate::session::{self, Session};
use crate::template::Engine;
use crate::transport::{Connector, HostKeyChecking};

/// How a run is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub format: OutputFormat,
    /// `-v` count.
    pub verbose: u8,
    /// Print streamed output lines under each host's result rather than
    /// as they arrive (`exec --group`).
    pub group: bool,
}

/// Makes the product's [`Guard`] for one run (the cluster's lock) from the
/// run's session; `None` when the run needs none.
pub(crate) type MakeGuard<'a> =
    &'a dyn Fn(&Session, Arc<dyn Connector>) -> Result<Option<Arc<dyn Guard>>>;

/// The playbooks with each templated `hosts:` rendered (`hosts: "{{ target
/// }}"` with `-e target=db`), as Ansible renders it before the play: with
/// the play's `vars`, `-e` above them, and `groups`. `None` when no play's
/// pattern is a template. A pattern that does not render is bad input.
pub(crate) fn render_play_hosts(
    playbooks: &[Playbook],
    scope: &crate::scope::Scope,
) -> Result<Option<Vec<Playbook>>> {
    let templated = |p: &Playbook| {
        p.plays
            .iter()
            .any(|play| crate::template::is_template(&play.hosts))
    };
    if !playbooks.iter().any(templated) {
        return Ok(None);
    }
    let mut engine = Engine::new();
    scope.share_groups(&mut engine);
    let mut out = playbooks.to_vec();
    for play in out.iter_mut().flat_map(|p| p.plays.iter_mut()) {
        if !crate::template::is_template(&play.hosts) {
            continue;
        }
        let mut vars = play.vars.clone();
        let extra = || scope.extra().iter().map(|(k, v)| (k.clone(), v.clone()));
        vars.extend(extra());
        // Play vars made of others (`target: "{{ env }}_web"`), rendered
        // where they can be without a host.
        for _ in 0..2 {
            for (key, value) in &play.vars {
                if crate::template::has_template(value) && !scope.extra().contains_key(key) {
                    if let Ok(done) = engine.render_json(value, &vars, &play.location) {
                        vars.insert(key.clone(), done);
                    }
                }
            }
        }
        let pattern = engine.render_str(&play.hosts, &vars, &play.location)?;
        if play.name == play.hosts {
            // an unnamed play goes by its pattern
            play.name = pattern.trim().to_owned();
        }
        play.hosts = pattern.trim().to_owned();
    }
    Ok(Some(out))
}

/// No guard.
pub(crate) fn unguarded(_: &Session, _: Arc<dyn Connector>) -> Result<Option<Arc<dyn Guard>>> {
    Ok(None)
}

/// Run `playbooks` against the hosts of `connect`, holding what `guard`
/// makes from the first task that reaches a host to the end; returns the
/// exit code the recap implies and the hosts to retry. Once per process:
/// the run's idle connections close when the process exits (see
/// [`leave_to_exit`]).
pub(crate) fn run_playbooks(
    connect: &ConnectOptions,
    output: Output,
    settings: Settings,
    playbooks: &[Playbook],
    guard: MakeGuard<'_>,
) -> Result<Finished> {
    let session = Session::open(connect)?;
    let known = session.scope.names();
    let engine = Engine::new();
    let candidates: Vec<String> = known.iter().cloned().collect();
    Playbook::check_names(
        playbooks,
        &|name| known.contains(name) || engine.is_global(name),
        &candidates,
    )?;
    if let Some(start) = &settings.start_at_task {
        crate::plan::check_start_at_task(playbooks, start)?;
    }
    let rendered = render_play_hosts(playbooks, &session.scope)?;
    let playbooks = rendered.as_deref().unwrap_or(playbooks);
    let targets = session.targets_of(
        playbooks
            .iter()
            .flat_map(|p| &p.plays)
            .map(|p| p.hosts.as_str()),
    )?;
    let delegates = match delegates_elsewhere(playbooks) {
        true => {
            let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
            session.delegation_targets(&names)
        }
        false => Vec::new(),
    };
    // One connector for the run and its guard, so jump hosts are shared.
    let connector: Arc<dyn Connector> = Arc::new(session.connector());
    let guard = guard(&session, Arc::clone(&connector))?;
    let printer = Printer::start(output.format, output.verbose, output.group);
    for warning in &session.inventory.warnings {
        printer.reporter().warn(warning.clone());
    }
    for warning in session.defaults.ssh_warnings() {
        printer.reporter().warn(warning);
    }
    if session.defaults.host_key_checking == HostKeyChecking::Off {
        printer
            .reporter()
            .warn("host key checking is off: any machine can pose as your hosts");
    }
    let runtime = session::runtime()?;
    let settings = Settings {
        escalation: connect.escalation.clone(),
        ..settings
    };
    let mut executor = Executor::new(
        session.scope.clone(),
        Engine::new(),
        connector,
        printer.reporter(),
        settings,
        targets,
    )
    .with_guard(guard.clone());
    executor.delegate_to(delegates);
    let interrupt = executor.interrupt();
    let result = runtime.block_on(async {
        interrupt
            .on_ctrl_c()
            .map_err(|e| Error::Internal(format!("cannot listen for Ctrl-C: {e}")))?;
        let result = executor.run(playbooks).await;
        // On success, failure and a first Ctrl-C alike.
        if let Some(guard) = &guard {
            guard.release().await;
        }
        result
    });
    let finished = printer.finish(interrupt.is_set());
    leave_to_exit(runtime, executor);
    result.map(|()| finished)
}

/// Keep a finished run's runtime and executor, and so its connections,
/// until the process exits, where the kernel closes every socket at once.
/// Nothing is left to do on them: `Executor::run` has ended each host's
/// shell and waited for the kill of any command it abandoned. Closing them
/// one by one here instead wakes each host's sshd in turn, whose teardown
/// takes the core from under the next close: on local hosts a run's output
/// ended 9.6 ms before the process did, against 5.8 ms this way (medians
/// of 20 interleaved runs of 10 hosts; see `bench/README.md`). One run per
/// process, so this keeps at most one.
fn leave_to_exit(runtime: tokio::runtime::Runtime, executor: Executor) {
    std::mem::forget((runtime, executor));
}

/// Whether a task delegates to a host other than `localhost`, which may be
/// outside the plays' hosts (and `--limit`), as Ansible allows.
fn delegates_elsewhere(playbooks: &[Playbook]) -> bool {
    let local = ["localhost", "127.0.0.1", "::1"];
    playbooks
        .iter()
        .flat_map(|p| &p.plays)
        .flat_map(|p| p.task_list())
        .filter_map(|t| t.delegate_to.as_deref())
        .any(|to| !local.contains(&to))
        || playbooks.iter().any(|p| p.dynamic)
        || playbooks
            .iter()
            .flat_map(|p| &p.plays)
            .flat_map(|p| p.task_list())
            .any(|t| t.module.reaches_peers())
}
