//! Runs playbooks: plays in order; within a play, `serial` batches; within a
//! batch, each task on every active host in parallel (at most `forks` at
//! once) before the next task starts, as Ansible's linear strategy does.
//! A `block` runs its body, then its `rescue` on the hosts that failed in
//! it, then its `always` on every host that entered; an `include_tasks`
//! reads its file per host and runs it on the hosts that named it
//! (`tests/fixtures/flow/` holds ansible-playbook's recorded ordering).
//! A host that fails leaves the play while the others go on; a host that
//! cannot be reached is dropped for the rest of the run. Handlers run once,
//! at the end of each batch, on the hosts that notified them. When a batch's
//! failures pass `max_fail_percentage`, or all of its hosts are lost, the
//! run stops there, as ansible-playbook 2.19 does (`tests/fixtures/serial/`
//! holds its recorded behaviour, which the tests below replay).
//!
//! Time limits live here too: each attempt of a task may take its
//! `timeout:` (else `--task-timeout`) before it is dropped and fails, and an
//! [`Interrupt`] (Ctrl-C) drops every task in flight and starts nothing new.
//! Dropping a task's future is how both stop it: the transport kills the
//! remote command of an exec that is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::error::{Error, InputKind, Result};
use crate::escalation::{self, Become, Escalated};
use crate::interrupt::Interrupt;
use crate::modules::include_role::IncludeRole;
use crate::modules::include_tasks::IncludeTasks;
use crate::modules::meta::Meta;
use crate::modules::{self, Context, Outcome};
use crate::plan;
use crate::playbook::{Block, LoopKind, Play, Playbook, Serial, Step, Task};
use crate::report::{Event, Failure, HostResult, Reporter, Status};
use crate::scope::{self, HostVars, Scope};
use crate::template::Engine;
use crate::transport::local::LocalShell;
use crate::transport::{Connector, Pipe, Sink, Target, Transport};
use crate::vars::Vars;

/// What the executor knows about one host across the whole run.
struct HostState {
    name: String,
    /// How to reach the host in this play: [`HostState::base`] under the
    /// play's `remote_user` and `connection`.
    target: Target,
    /// How the inventory and the command line say to reach it.
    base: Target,
    connection: Option<Arc<dyn Transport>>,
    /// The current play's variables and the facts, asked of the scope.
    vars: HostVars,
    /// Left the run: unreachable, or failed in an earlier play.
    gone: bool,
    /// Failed in the current play.
    failed: bool,
    /// The failure does not count against `max_fail_percentage`: a rescue
    /// will run, or `any_errors_fatal` failed this host for another's
    /// failure (and, as Ansible, the recap does not count it).
    uncounted: bool,
    /// The last task that failed here and its result, for a rescue's
    /// `ansible_failed_task` and `ansible_failed_result`.
    last_failure: Option<(String, Value)>,
    notified: BTreeSet<String>,
    /// The facts the task under way set here (a `run_once` hands them on).
    set_now: Vars,
    /// A `meta: end_host`, `end_batch` or `end_play` ended the current
    /// play here: no more of its tasks or handlers.
    ended: bool,
}

/// What the product holds while a run changes hosts (the cluster's lock):
/// taken once, just before the run first reaches a host, so the checks that
/// run on this machine (the built-in playbooks' preflight) come first and a
/// run that never reaches a host takes nothing. Whoever made it releases it
/// when the run ends. A refusal stops the run with its error.
pub(crate) trait Guard: Send + Sync {
    /// Warnings and `-v` details go to `reporter`.
    fn take<'a>(&'a self, reporter: &'a Reporter) -> BoxFuture<'a, Result<()>>;
    fn release(&self) -> BoxFuture<'_, ()>;
}

pub struct Executor {
    scope: Arc<Scope>,
    engine: Engine,
    connector: Arc<dyn Connector>,
    reporter: Reporter,
    settings: Settings,
    hosts: BTreeMap<String, HostState>,
    /// Every host's connection settings, for `delegate_to`.
    targets: BTreeMap<String, Target>,
    /// Connections opened for `delegate_to`, by host, kept for the run.
    delegated: Delegated,
    /// The handlers of roles an `include_role` brought into the batch.
    role_handlers: Vec<Task>,
    interrupt: Interrupt,
    /// `--start-at-task` has found its task (or was not given).
    started: bool,
    /// `--step` is still asking (answering `c` stops it).
    step: bool,
    /// Taken before the first task that reaches a host (see [`Guard`]).
    guard: Option<Arc<dyn Guard>>,
    guarded: bool,
    /// The guard's refusal, which ends the run.
    refused: Option<Error>,
    /// The hosts the current play targets (`ansible_play_hosts_all`).
    play_hosts: Vec<String>,
    /// A `meta: end_play` ended the current play: no batch after it.
    play_ended: bool,
}

type Delegated = tokio::sync::Mutex<BTreeMap<String, Arc<dyn Transport>>>;

/// Where a list of steps runs: its playbook, play and `serial` batch.
#[derive(Clone, Copy)]
struct At<'p> {
    playbook: &'p Playbook,
    play: &'p Play,
    batch: &'p [String],
}

impl Executor {
    /// `targets` holds every host any play may reach, resolved up front so
    /// that bad connection variables are reported before anything runs.
    pub(crate) fn new(
        scope: Arc<Scope>,
        engine: Engine,
        connector: Arc<dyn Connector>,
        reporter: Reporter,
        settings: Settings,
        targets: Vec<Target>,
    ) -> Self {
        let hosts = targets
            .iter()
            .map(|target| {
                let state = HostState {
                    name: target.name.clone(),
                    target: target.clone(),
                    base: target.clone(),
                    connection: None,
                    vars: HostVars::default(),
                    gone: false,
                    failed: false,
                    uncounted: false,
                    last_failure: None,
                    notified: BTreeSet::new(),
                    set_now: Vars::new(),
                    ended: false,
                };
                (state.name.clone(), state)
            })
            .collect();
        Executor {
            scope,
            engine,
            connector,
            reporter,
            started: settings.start_at_task.is_none(),
            step: settings.step,
            settings,
            role_handlers: Vec::new(),
            hosts,
            targets: targets.into_iter().map(|t| (t.name.clone(), t)).collect(),
            delegated: Delegated::default(),
            interrupt: Interrupt::default(),
            guard: None,
            guarded: false,
            play_ended: false,
            refused: None,
            play_hosts: Vec::new(),
        }
    }

    /// Take `guard` before the run first reaches a host.
    pub(crate) fn with_guard(mut self, guard: Option<Arc<dyn Guard>>) -> Self {
        self.guard = guard;
        self
    }

    /// Hosts outside the plays that tasks may delegate to.
    pub(crate) fn delegate_to(&mut self, targets: impl IntoIterator<Item = Target>) {
        for target in targets {
            self.targets.entry(target.name.clone()).or_insert(target);
        }
    }

    /// What stops this executor's run early (Ctrl-C).
    pub(crate) fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// Run every play of every playbook, in order.
    pub async fn run(&mut self, playbooks: &[Playbook]) -> Result<()> {
        let result = self.run_plays(playbooks).await;
        self.close().await;
        match self.refused.take() {
            Some(refusal) => Err(refusal),
            None => result,
        }
    }

    async fn run_plays(&mut self, playbooks: &[Playbook]) -> Result<()> {
        for playbook in playbooks {
            for play in &playbook.plays {
                if !self.run_play(playbook, play).await? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn close(&mut self) {
        let mut closing: Vec<Arc<dyn Transport>> = self
            .hosts
            .values_mut()
            .filter_map(|h| h.connection.take())
            .collect();
        closing.extend(std::mem::take(&mut *self.delegated.lock().await).into_values());
        futures::future::join_all(closing.iter().map(|c| c.close())).await;
    }

    /// Returns false when the run must stop (see `run_batch`).
    async fn run_play(&mut self, playbook: &Playbook, play: &Play) -> Result<bool> {
        let selected = plan::play_hosts(
            self.scope.inventory(),
            &play.hosts,
            self.settings.limit.as_deref(),
        )?;
        let any_selected = !selected.is_empty();
        let hosts: Vec<String> = selected
            .into_iter()
            .filter(|h| self.hosts.get(h).is_some_and(|s| !s.gone))
            .collect();
        if hosts.is_empty() {
            self.reporter.send(Event::PlayStart {
                play: play.name.clone(),
                hosts: Vec::new(),
            });
            let matched = !plan::play_hosts(self.scope.inventory(), &play.hosts, None)?.is_empty();
            let why = if matched && any_selected {
                "every host of it failed or was unreachable earlier"
            } else if matched && self.settings.limit.is_some() {
                // as asked, not a pattern gone wrong
                "`--limit` leaves out every host of it"
            } else {
                "no hosts matched it"
            };
            self.reporter.warn(format!(
                "`{}`: {why}; skipping play `{}`",
                play.hosts, play.name
            ));
            return Ok(true);
        }
        // before the play's vars, which may read them
        self.play_globals(playbook, play, &hosts);
        self.resolve_play_vars(play, &hosts)?;
        let serial = self.render_serial(play, &hosts[0])?;
        let mut sections = play.sections().map(|steps| self.tagged(play, steps));
        if let (Some(start), false) = (&self.settings.start_at_task, self.started) {
            // `--start-at-task`: nothing before the first match, in any
            // play or section (a block keeps what follows it).
            let found = std::cell::Cell::new(false);
            for steps in &mut sections {
                *steps = Step::filter(steps, &|t: &Task| {
                    found.set(found.get() || plan::start_matches(&t.name, start));
                    found.get()
                });
            }
            self.started = found.get();
        }
        self.play_ended = false;
        for state in self.hosts.values_mut() {
            state.ended = false;
        }
        for batch in plan::batches(&hosts, &serial) {
            if self.play_ended {
                break;
            }
            self.reporter.send(Event::PlayStart {
                play: play.name.clone(),
                hosts: batch.clone(),
            });
            let at = At {
                playbook,
                play,
                batch: &batch,
            };
            if let Some(stop) = self.run_batch(at, &sections).await {
                if self.refused.is_none() {
                    self.reporter.send(stop);
                }
                return Ok(false);
            }
            if self.interrupt.is_set() {
                return Ok(false);
            }
        }
        for state in self.hosts.values_mut() {
            if state.failed {
                state.gone = true;
            }
        }
        Ok(true)
    }

    /// The magic variables a play's tasks read alike on every host, as
    /// engine globals (one value, not one copy per host): `playbook_dir`,
    /// `ansible_play_name`, `ansible_play_hosts_all`, `ansible_limit` (with
    /// `--limit`), `ansible_run_tags` and `ansible_skip_tags`.
    fn play_globals(&mut self, playbook: &Playbook, play: &Play, hosts: &[String]) {
        let dir = std::path::absolute(&playbook.dir).unwrap_or_else(|_| playbook.dir.clone());
        self.engine
            .set_global("playbook_dir", &dir.display().to_string());
        self.engine.set_global("ansible_play_name", &play.name);
        self.engine.set_global("ansible_play_hosts_all", &hosts);
        if let Some(limit) = &self.settings.limit {
            self.engine.set_global("ansible_limit", limit);
        }
        let run_tags = match self.settings.tags.is_empty() {
            true => vec!["all".to_owned()],
            false => self.settings.tags.clone(),
        };
        self.engine.set_global("ansible_run_tags", &run_tags);
        self.engine
            .set_global("ansible_skip_tags", &self.settings.skip_tags);
        // until a task narrows them to its batch and the hosts left
        for name in ["ansible_play_hosts", "ansible_play_batch", "play_hosts"] {
            self.engine.set_global(name, &hosts);
        }
        self.play_hosts = hosts.to_vec();
    }

    /// `steps` without the tasks the tag filters leave out.
    fn tagged(&self, play: &Play, steps: &[Step]) -> Vec<Step> {
        Step::filter(steps, &|t: &Task| {
            let tags: Vec<String> = play.tags.iter().chain(&t.tags).cloned().collect();
            plan::tags_allow(&tags, &self.settings.tags, &self.settings.skip_tags)
        })
    }

    /// One `serial` batch: each section of the play (`pre_tasks`, roles
    /// and `tasks`, `post_tasks`), then the handlers notified in it.
    /// Returns the event that ends the run when, as in Ansible, the batch's
    /// failed hosts pass `max_fail_percentage` (checked after each task and
    /// handler, so the batch stops right there), a task under
    /// `any_errors_fatal` failed, or every host of the batch failed or was
    /// unreachable.
    async fn run_batch(&mut self, at: At<'_>, sections: &[Vec<Step>]) -> Option<Event> {
        let batch = at.batch;
        self.role_handlers.clear();
        for steps in sections {
            if let Some(stop) = self.run_steps(at, steps, batch, false).await {
                return Some(stop);
            }
            if let Some(stop) = self.flush_handlers(at).await {
                return Some(stop);
            }
        }
        let lost = batch.iter().filter(|h| {
            let state = &self.hosts[*h];
            state.failed || state.gone
        });
        (lost.count() == batch.len()).then(|| Event::PlayAborted {
            play: at.play.name.clone(),
            reason: "every host in the batch failed or was unreachable".to_owned(),
            max_fail_percentage: None,
        })
    }

    /// `--step`: ask on the terminal whether to run `task`, as
    /// ansible-playbook does: `y` runs it, `c` runs it and every task
    /// after without asking, anything else (Enter) skips it.
    async fn take_step(&mut self, task: &Task, handler: bool) -> bool {
        use std::io::{BufRead, Write};
        self.reporter.flush();
        let kind = if handler { "HANDLER" } else { "TASK" };
        let question = format!(
            "Perform task: {kind}: {} (N)o/(y)es/(c)ontinue: ",
            task.name
        );
        let answer = tokio::task::spawn_blocking(move || {
            let mut err = std::io::stderr();
            let _ = write!(err, "{question}");
            let _ = err.flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            line.trim().to_lowercase()
        })
        .await
        .unwrap_or_default();
        match answer.as_str() {
            "y" | "yes" => true,
            "c" | "continue" => {
                self.step = false;
                true
            }
            _ => false,
        }
    }

    /// The play's `serial` with templates rendered with `host`'s play
    /// variables (batch sizes are the play's, so the first host's).
    fn render_serial(&mut self, play: &Play, host: &str) -> Result<Vec<Serial>> {
        let mut out = Vec::with_capacity(play.serial.len());
        for size in &play.serial {
            let Serial::Template(source) = size else {
                out.push(size.clone());
                continue;
            };
            let state = self
                .hosts
                .get_mut(host)
                .ok_or_else(|| Error::Internal(format!("unknown host {host}")))?;
            let vars = self
                .scope
                .for_task(&self.engine, &mut state.vars, None, &play.location);
            let text = self.engine.render_str(source, &vars, &play.location)?;
            let rendered = crate::playbook::values::parse_serial(&text).ok_or_else(|| {
                Error::input(
                    play.location.clone(),
                    InputKind::BadValue {
                        field: Some("serial".into()),
                        found: format!("`{}` (from `{source}`)", text.trim()),
                        expected: crate::playbook::values::SERIAL_EXPECTED.into(),
                    },
                )
            })?;
            out.push(rendered);
        }
        Ok(out)
    }

    /// Run the handlers notified on the batch's hosts, each once, in the
    /// order they are defined (the play's, its roles', then those of roles
    /// included since), and forget the notifications.
    async fn flush_handlers(&mut self, at: At<'_>) -> Option<Event> {
        self.flush_handlers_of(at, at.batch).await
    }

    /// [`Self::flush_handlers`] for `among` (hosts of the batch) only.
    async fn flush_handlers_of(&mut self, at: At<'_>, among: &[String]) -> Option<Event> {
        let handlers: Vec<Task> = at
            .play
            .handlers
            .iter()
            .chain(&self.role_handlers)
            .cloned()
            .collect();
        for task in &handlers {
            if self.interrupt.is_set() {
                return None;
            }
            let mut hosts = self.active(among);
            hosts.retain(|h| task.names().any(|n| self.hosts[h].notified.contains(n)));
            if hosts.is_empty() {
                continue;
            }
            // Its own names now; a `listen` topic once every handler
            // listening to it had its turn.
            for host in &hosts {
                if let Some(state) = self.hosts.get_mut(host) {
                    for name in task.titles() {
                        state.notified.remove(name);
                    }
                }
            }
            if self.step && !self.take_step(task, true).await {
                continue;
            }
            self.run_task(at, task, &hosts, true, false).await;
            if let Some(stop) = self.after_task(at, task, &hosts) {
                return Some(stop);
            }
        }
        for host in among {
            if let Some(state) = self.hosts.get_mut(host) {
                for topic in handlers.iter().flat_map(|h| &h.listen) {
                    state.notified.remove(topic);
                }
            }
        }
        None
    }

    /// Every host's variables for `play`, from the scope.
    fn resolve_play_vars(&mut self, play: &Play, hosts: &[String]) -> Result<()> {
        let mut resolved = self.scope.play(
            &mut self.engine,
            &play.vars,
            &play.role_layers,
            &play.location,
        );
        for name in hosts {
            let state = self
                .hosts
                .get_mut(name)
                .ok_or_else(|| Error::Internal(format!("unknown host {name}")))?;
            state
                .vars
                .enter_play(resolved.remove(name).unwrap_or_default());
            state.failed = false;
            state.notified.clear();
            let target = play_target(&self.engine, play, state)?;
            if target != state.target {
                // Another user or way in: a connection of its own.
                state.connection = None;
                state.target = target;
            }
        }
        Ok(())
    }

    /// Run `steps` on those of `hosts` still in the play, each step on all
    /// of them before the next. A block runs its body, then its rescue on
    /// the hosts that failed in the body, then its always on every host
    /// that entered. `rescuable`: a block around these steps has a rescue,
    /// so a failure here is rescued rather than counted.
    fn run_steps<'a>(
        &'a mut self,
        at: At<'a>,
        steps: &'a [Step],
        hosts: &'a [String],
        rescuable: bool,
    ) -> futures::future::LocalBoxFuture<'a, Option<Event>> {
        Box::pin(async move {
            for step in steps {
                if self.interrupt.is_set() {
                    return None;
                }
                let active = self.active(hosts);
                if active.is_empty() {
                    return None;
                }
                let stop = match step {
                    Step::Block(block) => self.run_block(at, block, &active, rescuable).await,
                    Step::Task(task) if task.module.downcast::<Meta>().is_some() => {
                        self.run_meta(at, task, &active, rescuable).await
                    }
                    Step::Task(task)
                        if task.module.downcast::<IncludeTasks>().is_some()
                            || task.module.downcast::<IncludeRole>().is_some() =>
                    {
                        self.run_include(at, task, &active, rescuable).await
                    }
                    Step::Task(task) if self.step && !self.take_step(task, false).await => None,
                    Step::Task(task) => {
                        self.run_task(at, task, &active, false, rescuable).await;
                        self.after_task(at, task, &active)
                    }
                };
                if stop.is_some() {
                    return stop;
                }
            }
            None
        })
    }

    /// A `meta` task (see `modules/meta.rs`), on the hosts whose `when`
    /// holds: it runs nothing on them, it changes what runs next. As in
    /// Ansible, `end_play` and `end_batch` act for the whole batch, so
    /// their `when` is asked of its first host only.
    async fn run_meta(
        &mut self,
        at: At<'_>,
        task: &Task,
        hosts: &[String],
        rescuable: bool,
    ) -> Option<Event> {
        let meta = *task.module.downcast::<Meta>()?;
        let asked = match meta {
            Meta::EndPlay | Meta::EndBatch => &hosts[..hosts.len().min(1)],
            _ => hosts,
        };
        let mut chosen = Vec::new();
        for host in asked {
            let Some(state) = self.hosts.get_mut(host) else {
                continue;
            };
            let holds = match task.when.is_empty() {
                true => Ok(true),
                false => {
                    let vars = task_vars(
                        &self.scope,
                        &self.engine,
                        &self.settings,
                        at.play,
                        task,
                        state,
                    );
                    self.engine
                        .eval_condition(&task.when, &vars, &task.location)
                }
            };
            match holds {
                Ok(true) => chosen.push(host.clone()),
                Ok(false) => {}
                Err(e) => {
                    let failure = Outcome::from_error(e).failure.unwrap_or_default();
                    self.include_failed(host, task, rescuable, failure);
                }
            }
        }
        let ending: Vec<String> = match meta {
            Meta::Noop => Vec::new(),
            Meta::FlushHandlers => return self.flush_handlers_of(at, &chosen).await,
            Meta::EndHost => chosen,
            Meta::EndBatch if !chosen.is_empty() => at.batch.to_vec(),
            Meta::EndPlay if !chosen.is_empty() => {
                self.play_ended = true;
                at.batch.to_vec()
            }
            Meta::EndBatch | Meta::EndPlay => Vec::new(),
        };
        for host in ending {
            if let Some(state) = self.hosts.get_mut(&host) {
                state.ended = true;
                state.notified.clear();
                if self.settings.verbose >= 1 {
                    self.reporter.send(Event::Detail {
                        host: host.clone(),
                        text: format!("`{}` ends the play here", task.name),
                    });
                }
            }
        }
        None
    }

    async fn run_block(
        &mut self,
        at: At<'_>,
        block: &Block,
        entered: &[String],
        rescuable: bool,
    ) -> Option<Event> {
        let has_rescue = !block.rescue.is_empty();
        let stop = self
            .run_steps(at, &block.body, entered, rescuable || has_rescue)
            .await;
        if stop.is_some() {
            return stop;
        }
        let failed_in = |hosts: &BTreeMap<String, HostState>| -> Vec<String> {
            entered
                .iter()
                .filter(|h| hosts.get(*h).is_some_and(|s| s.failed && !s.gone))
                .cloned()
                .collect()
        };
        if has_rescue {
            let failing = failed_in(&self.hosts);
            for host in &failing {
                let Some(state) = self.hosts.get_mut(host) else {
                    continue;
                };
                state.failed = false;
                state.uncounted = false;
                if let Some((task, result)) = state.last_failure.take() {
                    let task = json!({ "name": task });
                    self.engine.record_fact(host, "ansible_failed_task", &task);
                    self.engine
                        .record_fact(host, "ansible_failed_result", &result);
                    state.vars.register("ansible_failed_task", task);
                    state.vars.register("ansible_failed_result", result);
                }
            }
            if !failing.is_empty() {
                let stop = self.run_steps(at, &block.rescue, &failing, rescuable).await;
                if stop.is_some() {
                    return stop;
                }
            }
        }
        if block.always.is_empty() {
            return None;
        }
        // Hosts that failed still run `always`, and stay failed after it.
        let failed: Vec<(String, bool)> = failed_in(&self.hosts)
            .into_iter()
            .map(|h| {
                let state = self.hosts.get_mut(&h).expect("a host of the batch");
                state.failed = false;
                (h, std::mem::take(&mut state.uncounted))
            })
            .collect();
        let stop = self.run_steps(at, &block.always, entered, rescuable).await;
        for (host, was_uncounted) in failed {
            if let Some(state) = self.hosts.get_mut(&host) {
                state.uncounted |= was_uncounted && !state.failed;
                state.failed = true;
            }
        }
        stop
    }

    /// An `include_tasks` (or `include_role`) on `hosts`: each host (and
    /// loop item) names its file (or role), reported as included (or
    /// skipped, or failed); then hosts that name the same file with the
    /// same values run its tasks together, the files in the order first
    /// named, as Ansible does.
    async fn run_include(
        &mut self,
        at: At<'_>,
        task: &Task,
        hosts: &[String],
        rescuable: bool,
    ) -> Option<Event> {
        self.reporter.send(Event::TaskStart {
            task: task.name.clone(),
            hosts: hosts.len(),
            names: hosts.to_vec(),
        });
        let role = task.module.downcast::<IncludeRole>().map(|i| &i.role);
        let name = match role {
            Some(role) => &role.name,
            None => &task.module.downcast::<IncludeTasks>()?.file,
        };
        let mut groups: Vec<(String, Vars, Vec<String>)> = Vec::new();
        for host in hosts {
            let Some(state) = self.hosts.get_mut(host) else {
                continue;
            };
            let files = match expand(
                &self.scope,
                &self.engine,
                &self.settings,
                at.play,
                task,
                name,
                state,
            ) {
                Ok(files) => files,
                Err(e) => {
                    let failure = Outcome::from_error(e).failure.unwrap_or_default();
                    self.include_failed(host, task, rescuable, failure);
                    continue;
                }
            };
            if files.is_empty() {
                self.reporter.send(Event::Host(HostResult {
                    host: host.clone(),
                    task: task.name.clone(),
                    status: Status::Skipped,
                    elapsed: 0.0,
                    ignored: false,
                    rescued: false,
                    message: Some("condition was false".into()),
                    failure: None,
                    diff: None,
                }));
            }
            for (file, params, item) in files {
                self.reporter.send(Event::Included {
                    host: host.clone(),
                    task: task.name.clone(),
                    file: file.clone(),
                    item,
                });
                match groups
                    .iter_mut()
                    .find(|(f, p, _)| *f == file && *p == params)
                {
                    Some((_, _, members)) => members.push(host.clone()),
                    None => groups.push((file, params, vec![host.clone()])),
                }
            }
        }
        if let Some(stop) = self.after_task(at, task, hosts) {
            return Some(stop);
        }
        for (file, params, members) in groups {
            let handlers: Vec<&str> = at
                .play
                .handlers
                .iter()
                .chain(&self.role_handlers)
                .flat_map(Task::names)
                .collect();
            let loaded = match role {
                Some(role) => {
                    let role = crate::playbook::RoleRef {
                        name: file.clone(),
                        ..role.clone()
                    };
                    at.playbook
                        .include_role(&self.engine, &role, &params, &task.location, &handlers)
                        .map(|(steps, handlers)| {
                            self.role_handlers.extend(handlers);
                            steps
                        })
                }
                None => at.playbook.include(
                    &self.engine,
                    &file,
                    &task.location,
                    &handlers,
                    task.role.clone(),
                ),
            };
            let steps = match loaded {
                Ok(mut steps) => {
                    let engine = &self.engine;
                    steps
                        .iter_mut()
                        .for_each(|s| pass_on(engine, s, task, &params));
                    self.tagged(at.play, &steps)
                }
                Err(e) => {
                    let failure = Outcome::from_error(e).failure.unwrap_or_default();
                    for host in &members {
                        self.include_failed(host, task, rescuable, failure.clone());
                    }
                    if let Some(stop) = self.after_task(at, task, &members) {
                        return Some(stop);
                    }
                    continue;
                }
            };
            if let Some(stop) = self.run_steps(at, &steps, &members, rescuable).await {
                return Some(stop);
            }
        }
        None
    }

    /// An `include_tasks` that failed on `host` before its file ran.
    fn include_failed(&mut self, host: &str, task: &Task, rescuable: bool, failure: Failure) {
        let Some(state) = self.hosts.get_mut(host) else {
            return;
        };
        let ignored = task.ignore_errors;
        let rescued = rescuable && !ignored;
        if !ignored {
            state.failed = true;
            state.uncounted = rescued;
            let result = json!({ "failed": true, "msg": failure.message });
            state.last_failure = Some((task.name.clone(), result));
        }
        self.reporter.send(Event::Host(HostResult {
            host: host.to_owned(),
            task: task.name.clone(),
            status: Status::Failed,
            elapsed: 0.0,
            ignored,
            rescued,
            message: None,
            failure: Some(failure),
            diff: None,
        }));
    }

    /// After a task ran on `hosts`: the event that stops the run, if its
    /// failures end it. Under `any_errors_fatal` a failure fails every host
    /// of the task, uncounted, as Ansible does: a waiting rescue catches
    /// them, `always` still runs, and the play ends when none is left. The
    /// batch stops once its counted failures pass `max_fail_percentage`.
    fn after_task(&mut self, at: At<'_>, task: &Task, hosts: &[String]) -> Option<Event> {
        if self.refused.is_some() {
            // Not shown: `run` returns the refusal.
            return Some(Event::PlayAborted {
                play: at.play.name.clone(),
                reason: "refused by its guard".into(),
                max_fail_percentage: None,
            });
        }
        if self.interrupt.is_set() {
            // Interrupted hosts are not failures that stop the play.
            return None;
        }
        let play = at.play;
        let failed_here: Vec<&String> = hosts
            .iter()
            .filter(|h| self.hosts.get(*h).is_some_and(|s| s.failed && !s.gone))
            .collect();
        if (task.any_errors_fatal || play.any_errors_fatal) && !failed_here.is_empty() {
            let first = failed_here[0].clone();
            let fatal = hosts.iter().filter(|h| !self.hosts[*h].failed).count();
            for host in hosts {
                if let Some(state) = self.hosts.get_mut(host).filter(|s| !s.gone && !s.failed) {
                    state.failed = true;
                    state.uncounted = true;
                }
            }
            if fatal > 0 {
                self.reporter.warn(format!(
                    "`{}` failed on `{first}` under any_errors_fatal: the play ends on every host",
                    task.name
                ));
            }
        }
        let batch = at.batch;
        let failed = batch
            .iter()
            .filter(|h| self.hosts[*h].failed && !self.hosts[*h].uncounted)
            .count();
        if plan::over_failure_budget(failed, batch.len(), play.max_fail_percentage) {
            let max = play.max_fail_percentage.unwrap_or_default();
            return Some(Event::PlayAborted {
                play: play.name.clone(),
                reason: format!(
                    "{failed} of {} hosts in the batch failed, over max_fail_percentage {max}",
                    batch.len()
                ),
                max_fail_percentage: Some(max),
            });
        }
        None
    }

    fn active(&self, batch: &[String]) -> Vec<String> {
        batch
            .iter()
            .filter(|h| {
                self.hosts
                    .get(*h)
                    .is_some_and(|s| !s.gone && !s.failed && !s.ended)
            })
            .cloned()
            .collect()
    }

    /// Announce one task (or handler) and run it on `hosts` in parallel,
    /// at most `forks` at once.
    async fn run_task(
        &mut self,
        at: At<'_>,
        task: &Task,
        hosts: &[String],
        handler: bool,
        rescuable: bool,
    ) {
        if !task.module.local() && !self.guarded {
            self.guarded = true;
            if let Some(guard) = &self.guard {
                if let Err(refusal) = guard.take(&self.reporter).await {
                    self.refused = Some(refusal);
                }
            }
        }
        if self.refused.is_some() {
            return;
        }
        let (name, count) = (task.name.clone(), hosts.len());
        self.reporter.send(if handler {
            Event::HandlerStart {
                task: name,
                hosts: count,
                names: hosts.to_vec(),
            }
        } else {
            Event::TaskStart {
                task: name,
                hosts: count,
                names: hosts.to_vec(),
            }
        });
        if task.module.reads_terminal() {
            self.reporter.flush();
        }
        // The hosts still in the play, and those of this task's batch.
        let active: Vec<&String> = self
            .play_hosts
            .iter()
            .filter(|h| self.hosts.get(*h).is_some_and(|s| !s.gone && !s.failed))
            .collect();
        self.engine.set_global("ansible_play_hosts", &active);
        self.engine.set_global("ansible_play_batch", &hosts);
        self.engine.set_global("play_hosts", &hosts);
        let shared = Shared {
            engine: &self.engine,
            scope: &self.scope,
            connector: self.connector.as_ref(),
            reporter: &self.reporter,
            settings: &self.settings,
            playbook: at.playbook,
            interrupt: &self.interrupt,
            targets: &self.targets,
            delegated: &self.delegated,
            play: at.play,
            rescuable,
        };
        if !task.run_once || handler {
            let states = self
                .hosts
                .iter_mut()
                .filter(|(name, _)| hosts.contains(name))
                .map(|(_, s)| s);
            futures::stream::iter(states.map(|state| run_on_host(&shared, task, state)))
                .buffer_unordered(self.settings.forks.max(1))
                .collect::<Vec<_>>()
                .await;
            return;
        }
        // run_once: the first host that can be reached runs it (an
        // unreachable one hands it on), and, as in Ansible, its result,
        // failure included, applies to every host of the batch.
        let mut ran = None;
        for host in hosts {
            let Some(state) = self.hosts.get_mut(host) else {
                continue;
            };
            state.set_now.clear();
            let registered = run_on_host(&shared, task, state).await;
            if !state.gone {
                // What a `set_fact` set there (nothing when it was
                // skipped), set on every host.
                let facts = std::mem::take(&mut state.set_now);
                ran = Some((state.name.clone(), state.failed, registered, facts));
                break;
            }
        }
        let Some((first, failed, registered, facts)) = ran else {
            return;
        };
        for host in hosts.iter().filter(|h| **h != first) {
            let Some(state) = self.hosts.get_mut(host).filter(|s| !s.gone) else {
                continue;
            };
            if let (Some(name), Some(value)) = (&task.register, &registered) {
                self.engine.record_fact(host, name, value);
                state.vars.register(name, value.clone());
            }
            if !facts.is_empty() && !failed {
                for (name, value) in &facts {
                    self.engine.record_fact(host, name, value);
                }
                state.vars.set_facts(facts.clone());
            }
            if failed {
                state.failed = true;
                state.uncounted = rescuable;
                self.reporter.send(Event::Host(HostResult {
                    host: host.clone(),
                    task: task.name.clone(),
                    status: Status::Failed,
                    elapsed: 0.0,
                    ignored: false,
                    rescued: rescuable,
                    message: None,
                    failure: Some(Failure {
                        message: format!("this run_once task failed on `{first}`"),
                        ..Failure::default()
                    }),
                    diff: None,
                }));
            }
        }
    }
}

/// The parts of the executor every host job reads.
struct Shared<'a> {
    engine: &'a Engine,
    scope: &'a Scope,
    connector: &'a dyn Connector,
    reporter: &'a Reporter,
    settings: &'a Settings,
    playbook: &'a Playbook,
    interrupt: &'a Interrupt,
    targets: &'a BTreeMap<String, Target>,
    delegated: &'a Delegated,
    /// The play: its `environment`, its vars for a role's tasks.
    play: &'a Play,
    /// A rescue waits for this task's failures.
    rescuable: bool,
}

/// Run one task on one host, report it, and return the registered value.
async fn run_on_host(shared: &Shared<'_>, task: &Task, state: &mut HostState) -> Option<Value> {
    if shared.interrupt.is_set() {
        return None;
    }
    let started = Instant::now();
    let result = tokio::select! {
        result = attempt(shared, task, state) => result,
        () = shared.interrupt.wait() => Ok(Outcome::fail(
            "interrupted by Ctrl-C; what the task ran on the host was stopped",
        )),
    };
    let elapsed = crate::report::round(started.elapsed());
    let mut outcome = result.unwrap_or_else(Outcome::from_error);
    if let Some(failure) = &mut outcome.failure {
        if let Some(hint) = shared
            .scope
            .explain(shared.engine, &state.vars, &failure.message)
        {
            failure.hint = Some(hint);
        }
    }
    let status = if outcome.unreachable.is_some() {
        Status::Unreachable
    } else {
        status_of(&outcome)
    };
    let ignored = status == Status::Failed && task.ignore_errors;
    let rescued = status == Status::Failed && !ignored && shared.rescuable;
    // A task held in check mode (`check_mode: true`) in a run that is not
    // `--check` is a probe: it changed nothing, so it is shown and counted
    // as ok and notifies no handler, while `register` keeps what it would
    // change (`is changed`) for the tasks after it to decide on.
    let probe =
        status == Status::Changed && task.check_mode == Some(true) && !shared.settings.check;
    match status {
        Status::Changed if probe => {}
        Status::Unreachable => state.gone = true,
        Status::Failed if !ignored => {
            state.failed = true;
            state.uncounted = rescued;
            let result = registered_value(&outcome, status);
            state.last_failure = Some((task.name.clone(), result));
        }
        Status::Changed => state.notified.extend(task.notify.iter().cloned()),
        _ => {}
    }
    let registered = task.register.as_ref().map(|name| {
        let value = registered_value(&outcome, status);
        shared.engine.record_fact(&state.name, name, &value);
        state.vars.register(name, value.clone());
        value
    });
    let mut event = HostResult {
        host: state.name.clone(),
        task: task.name.clone(),
        status: if probe { Status::Ok } else { status },
        elapsed,
        ignored,
        rescued,
        message: outcome
            .skipped
            .clone()
            .or_else(|| outcome.msg.clone())
            .or_else(|| {
                (shared.settings.show_output && !outcome.stdout.is_empty())
                    .then(|| outcome.stdout.clone())
            }),
        failure: outcome.failure,
        diff: outcome.diff.filter(|_| shared.settings.diff),
    };
    if probe {
        event.message = Some(match event.message.take() {
            Some(what) if shared.settings.verbose > 0 => format!("would change: {what}"),
            _ => "would change (check mode)".into(),
        });
    }
    if task.no_log {
        hide(&mut event);
    }
    shared.reporter.send(Event::Host(event));
    registered
}

/// Everything up to the outcome: variables, the connection, then the module
/// once, or once per item of `loop`.
async fn attempt(shared: &Shared<'_>, task: &Task, state: &mut HostState) -> Result<Outcome> {
    state.set_now.clear();
    let mut vars = task_vars(
        shared.scope,
        shared.engine,
        shared.settings,
        shared.play,
        task,
        state,
    );
    let Some(items) = loop_items(shared.scope, shared.engine, task, &vars)? else {
        return once(shared, task, state, &vars).await;
    };
    if items.is_empty() {
        return Ok(Outcome::skipped("no items to loop over"));
    }
    let mut total = Outcome::default();
    let mut results = Vec::new();
    let mut messages = Vec::new();
    let mut all_skipped = true;
    let pause = task.loop_control.pause.map(Duration::from_secs_f64);
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
        bind_item(task, &mut vars, index, &item);
        let outcome = once(shared, task, state, &vars).await?;
        // The next item sees the facts this one set (`acc: "{{ acc |
        // default([]) + [item] }}"` gathers every item), as in Ansible.
        for (name, value) in &state.set_now {
            shared.scope.add_fact(&mut vars, name, value.clone());
        }
        let label = match &task.loop_control.label {
            Some(label) => shared.engine.render_str(label, &vars, &task.location)?,
            None => item_label(&item),
        };
        let status = status_of(&outcome);
        let mut value = registered_value(&outcome, status);
        if let Value::Object(map) = &mut value {
            map.insert("item".into(), item);
        }
        results.push(value);
        all_skipped &= outcome.skipped.is_some();
        total.changed |= outcome.changed;
        messages.push(match &outcome.msg {
            Some(msg) if msg.starts_with(&format!("{label}:")) => msg.clone(),
            Some(msg) => format!("{label}: {msg}"),
            None => format!("{label}: {}", status.label()),
        });
        if total.failure.is_none() {
            if let Some(mut failure) = outcome.failure {
                failure.message = format!("item `{label}`: {}", failure.message);
                total.failure = Some(failure);
            }
        }
        if let Some(diff) = outcome.diff {
            total.diff = Some(total.diff.unwrap_or_default() + &diff);
        }
    }
    if all_skipped {
        total.skipped = Some("every item was skipped".into());
    }
    total.msg = Some(messages.join("\n"));
    total.results = Some(results);
    Ok(total)
}

/// The files an `include_tasks` brings in on one host, each with the values
/// its tasks get (the include's rendered `vars`, the loop variable) and the
/// loop item's label: one per item whose `when` holds, none when skipped.
fn expand(
    scope: &Scope,
    engine: &Engine,
    settings: &Settings,
    play: &Play,
    task: &Task,
    name: &str,
    state: &mut HostState,
) -> Result<Vec<(String, Vars, Option<String>)>> {
    let mut vars = task_vars(scope, engine, settings, play, task, state);
    // The file and the values passed on, when the `when` (which sees the
    // task's vars) holds.
    let rendered = |vars: &Vars| -> Result<Option<(String, Vars)>> {
        let (with, _) = scope.with_task_vars(engine, vars, &task.vars, &task.location);
        if !task.when.is_empty() && !engine.eval_condition(&task.when, &with, &task.location)? {
            return Ok(None);
        }
        let file = engine.render_str(name, &with, &task.location)?;
        let params = task
            .vars
            .keys()
            .filter_map(|k| with.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        Ok(Some((file.trim().to_owned(), params)))
    };
    let Some(items) = loop_items(scope, engine, task, &vars)? else {
        return Ok(rendered(&vars)?
            .map(|(file, params)| (file, params, None))
            .into_iter()
            .collect());
    };
    let control = &task.loop_control;
    let mut out = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        bind_item(task, &mut vars, index, &item);
        let Some((file, mut params)) = rendered(&vars)? else {
            continue;
        };
        let label = match &control.label {
            Some(label) => engine.render_str(label, &vars, &task.location)?,
            None => item_label(&item),
        };
        params.insert(control.loop_var.clone(), item);
        if let Some(name) = &control.index_var {
            params.insert(name.clone(), index.into());
        }
        out.push((file, params, Some(label)));
    }
    Ok(out)
}

/// What an included task takes from the `include_tasks` that brought it
/// in: its values (`params`, above the task's own vars), environment,
/// `any_errors_fatal` and become settings. Its `when` and `tags` are the
/// include's own, as in Ansible. A templated task name is rendered with
/// those values when they are all it needs (`step {{ thing }}`).
fn pass_on(engine: &Engine, step: &mut Step, include: &Task, params: &Vars) {
    let task = match step {
        Step::Task(task) => task,
        Step::Block(b) => {
            for list in [&mut b.body, &mut b.rescue, &mut b.always] {
                list.iter_mut()
                    .for_each(|s| pass_on(engine, s, include, params));
            }
            return;
        }
    };
    if crate::template::is_template(&task.name) {
        if let Ok(name) = engine.render_str(&task.name, params, &task.location) {
            task.name = name;
        }
    }
    for (key, value) in params.iter().chain(&include.params) {
        task.params
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    for (key, value) in &include.environment {
        task.environment
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    task.any_errors_fatal |= include.any_errors_fatal;
    task.escalate = task.escalate.under(&include.escalate);
}

/// What a task sees on a host before its own `vars`: the scope's view (as
/// the tasks of its role see it, with `role_name` and `role_path`), with
/// what an `include_tasks` passed on top, and whether the run is a
/// `--check` / `--diff` one (`ansible_check_mode`, `ansible_diff_mode`:
/// the run's flags, whatever a task's own `check_mode` says).
fn task_vars(
    scope: &Scope,
    engine: &Engine,
    settings: &Settings,
    play: &Play,
    task: &Task,
    host: &mut HostState,
) -> Vars {
    let role = task.role.as_deref();
    if let Some(role) = role.filter(|r| !host.vars.has_role(r.id)) {
        let mut layers = play.role_layers.clone();
        layers.add(&role.layers);
        let resolved = scope.in_role(engine, &host.name, &play.vars, &layers, &task.location);
        host.vars.enter_role(role.id, resolved);
    }
    let mut vars = scope.for_task(engine, &mut host.vars, role.map(|r| r.id), &task.location);
    vars.insert("ansible_check_mode".into(), settings.check.into());
    vars.insert("ansible_diff_mode".into(), settings.diff.into());
    if let Some(role) = role {
        scope.add_fact(&mut vars, "role_name", role.name.clone().into());
        let path = role.dir.display().to_string();
        scope.add_fact(&mut vars, "role_path", path.into());
    }
    for (name, value) in &task.params {
        scope.add_fact(&mut vars, name, value.clone());
    }
    vars
}

/// The items of the task's loop, rendered with `vars` and the task's own
/// vars (those that render without the loop variable), and shaped by its
/// kind (`with_dict`, `with_indexed_items`...); `None` without a loop, or
/// when a `when` that does not name the loop variable is false.
fn loop_items(
    scope: &Scope,
    engine: &Engine,
    task: &Task,
    vars: &Vars,
) -> Result<Option<Vec<Value>>> {
    let Some(items) = &task.loop_items else {
        return Ok(None);
    };
    let (with, _) = scope.with_task_vars(engine, vars, &task.vars, &task.location);
    let vars = &with;
    if !task.when.is_empty()
        && !scope::mentions(&task.when, &task.loop_control.loop_var)
        && !engine.eval_condition(&task.when, vars, &task.location)?
    {
        return Ok(None);
    }
    let gave = |value: &Value| {
        Error::input(
            task.location.clone(),
            InputKind::LoopGave {
                value: value.to_string(),
            },
        )
    };
    let items = match engine.render_json(items, vars, &task.location)? {
        Value::String(s) if s.trim().is_empty() => return Ok(Some(Vec::new())),
        Value::Object(map) if task.loop_kind == LoopKind::Dict => map
            .into_iter()
            .map(|(key, value)| json!({ "key": key, "value": value }))
            .collect(),
        Value::Array(items) if task.loop_kind != LoopKind::Dict => items,
        // `with_items: "a,b"` loops once, over the string, as in Ansible
        // (`loop:` wants a list).
        scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_))
            if task.loop_kind == LoopKind::Items =>
        {
            vec![scalar]
        }
        other => return Err(gave(&other)),
    };
    Ok(Some(match task.loop_kind {
        LoopKind::Items => items
            .into_iter()
            .flat_map(|item| match item {
                Value::Array(inner) => inner,
                other => vec![other],
            })
            .collect(),
        LoopKind::Indexed => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| json!([i, item]))
            .collect(),
        LoopKind::List | LoopKind::Dict => items,
    }))
}

/// Bind one loop item (and its index, with `index_var`) for the task.
fn bind_item(task: &Task, vars: &mut Vars, index: usize, item: &Value) {
    let control = &task.loop_control;
    vars.insert(control.loop_var.clone(), item.clone());
    if let Some(name) = &control.index_var {
        vars.insert(name.clone(), index.into());
    }
}

/// How a loop item is named in output: a string as itself; a mapping by its
/// `name` or `image` field, else as `key=value` pairs (never raw JSON).
fn item_label(item: &Value) -> String {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match item {
        Value::Object(map) => ["name", "image"]
            .iter()
            .find_map(|key| map.get(*key).filter(|v| !v.is_object() && !v.is_array()))
            .map(scalar)
            .unwrap_or_else(|| {
                map.iter()
                    .map(|(k, v)| format!("{k}={}", scalar(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        other => scalar(other),
    }
}

/// One run of the module: the task's vars, `when` (which sees them, as in
/// Ansible), the connection, retries with `until`, then `changed_when`
/// and `failed_when`.
async fn once(
    shared: &Shared<'_>,
    task: &Task,
    state: &mut HostState,
    vars: &Vars,
) -> Result<Outcome> {
    let (mut vars, unrendered) =
        shared
            .scope
            .with_task_vars(shared.engine, vars, &task.vars, &task.location);
    state.vars.set_task_unrendered(unrendered);
    if !task.when.is_empty()
        && !shared
            .engine
            .eval_condition(&task.when, &vars, &task.location)?
    {
        return Ok(Outcome::skipped("condition was false"));
    }
    let connection: Arc<dyn Transport> = if task.module.local() {
        Arc::new(Local)
    } else {
        let mut here = false;
        let conn = match &task.delegate_to {
            None => connect(shared, state).await?,
            Some(to) => {
                let to = shared.engine.render_str(to, &vars, &task.location)?;
                here = runs_here(shared, state, to.trim());
                match delegate(shared, state, to.trim()).await? {
                    Ok(conn) => conn,
                    Err(refused) => return Ok(refused),
                }
            }
        };
        // On this machine, tasks run as the operator who runs arpanet.
        let how = match here {
            true => None,
            false => escalation::resolve(
                &shared.settings.escalation,
                &task.escalate,
                &vars,
                shared.engine,
                &task.location,
            )?,
        };
        let shown_as = how.as_ref().map(Become::describe).unwrap_or_default();
        let conn = Escalated::wrap(conn, how, &state.name);
        // The exports go inside the escalation: sudo resets the environment.
        let exports = exports(shared, task, &vars)?;
        let conn: Arc<dyn Transport> = match exports.is_empty() {
            true => conn,
            false => Arc::new(WithEnv {
                inner: conn,
                exports,
            }),
        };
        // A `no_log` task's commands are not shown at all: any of them may
        // carry what the task hides.
        match shared.settings.verbose >= 1 && !task.no_log {
            true => Arc::new(Shown {
                inner: conn,
                host: state.name.clone(),
                shown_as,
                ends: shared.settings.verbose >= 3,
                reporter: shared.reporter.clone(),
            }),
            false => conn,
        }
    };
    let attempts = if task.until.is_empty() {
        1
    } else {
        1 + task.retries.unwrap_or(3)
    };
    let delay = Duration::from_secs_f64(task.delay.unwrap_or(5.0).max(0.0));
    let limit = match task.timeout {
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds.into())),
        None => shared.settings.task_timeout,
    };
    let mut outcome = Outcome::default();
    let live = {
        let reporter = shared.reporter.clone();
        let host = state.name.clone();
        move |pipe: Pipe, line: &str| {
            reporter.send(Event::Output {
                host: host.clone(),
                stream: pipe,
                line: line.to_owned(),
            })
        }
    };
    let live: Option<&Sink<'_>> = shared.settings.live.then_some(&live);
    for n in 1..=attempts {
        let peers = TaskPeers {
            shared,
            task,
            vars: &vars,
        };
        let mut ctx = context(
            shared,
            task,
            &state.name,
            connection.as_ref(),
            &vars,
            &peers,
        );
        ctx.live = live;
        let run = modules::run(task.module.as_ref(), &ctx);
        outcome = match limit {
            None => run.await,
            // As in Ansible, a timed-out attempt fails the task: no retry,
            // no `failed_when`.
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(outcome) => outcome,
                Err(_) => return Ok(timed_out(limit)),
            },
        };
        if let Some(err) = outcome.unreachable.take() {
            return Err(err);
        }
        if let Some(facts) = outcome.facts.take() {
            for (name, value) in &facts {
                shared.scope.add_fact(vars.to_mut(), name, value.clone());
                shared.engine.record_fact(&state.name, name, value);
            }
            state.set_now.extend(facts.clone());
            state.vars.set_facts(facts);
        }
        if let Some(name) = &task.register {
            let value = registered_value(&outcome, status_of(&outcome));
            shared.scope.add_fact(vars.to_mut(), name, value);
        }
        if task.until.is_empty() || outcome.skipped.is_some() {
            break;
        }
        if shared
            .engine
            .eval_condition(&task.until, &vars, &task.location)?
        {
            break;
        }
        if n == attempts {
            let failure = outcome.failure.get_or_insert_with(Failure::default);
            failure.message = format!(
                "`until` still false after {attempts} attempts; {}",
                failure.message
            )
            .trim_end_matches("; ")
            .to_owned();
        } else {
            tokio::time::sleep(delay).await;
        }
    }
    let overridden = !task.changed_when.is_empty() || !task.failed_when.is_empty();
    if outcome.skipped.is_none() && overridden {
        apply_overrides(shared, task, vars.to_mut(), &mut outcome)?;
    }
    Ok(outcome)
}

/// The failure of an attempt stopped after `limit`.
fn timed_out(limit: Duration) -> Outcome {
    let seconds = limit.as_secs();
    Outcome {
        failure: Some(Failure {
            message: format!("timed out after {seconds} s"),
            hint: Some(format!(
                "the task may run {seconds} s (its `timeout:`, else `--task-timeout`); \
                 what it ran on the host was stopped"
            )),
            ..Failure::default()
        }),
        ..Outcome::default()
    }
}

/// `changed_when` and `failed_when`, evaluated with the result registered.
fn apply_overrides(
    shared: &Shared<'_>,
    task: &Task,
    vars: &mut Vars,
    outcome: &mut Outcome,
) -> Result<()> {
    let engine = shared.engine;
    if task.changed_when.is_empty() && task.failed_when.is_empty() {
        return Ok(());
    }
    if !task.changed_when.is_empty() {
        outcome.changed = engine.eval_condition(&task.changed_when, vars, &task.location)?;
        if let Some(name) = &task.register {
            let value = registered_value(outcome, status_of(outcome));
            shared.scope.add_fact(vars, name, value);
        }
    }
    if !task.failed_when.is_empty() {
        let failed = engine.eval_condition(&task.failed_when, vars, &task.location)?;
        match (failed, outcome.failure.is_some()) {
            (true, false) => {
                outcome.failure = Some(Failure {
                    message: format!("failed_when `{}` is true", task.failed_when.join(" and ")),
                    rc: outcome.rc,
                    stderr: modules::tail(&outcome.stderr, 10),
                    ..Failure::default()
                });
            }
            (false, true) => outcome.failure = None,
            _ => {}
        }
    }
    Ok(())
}

fn context<'a>(
    shared: &'a Shared<'_>,
    task: &'a Task,
    host: &'a str,
    transport: &'a dyn Transport,
    vars: &'a Vars,
    peers: &'a dyn modules::Peers,
) -> Context<'a> {
    Context {
        host,
        transport,
        engine: shared.engine,
        vars,
        playbook: shared.playbook,
        role: task.role.as_deref().map(|r| r.dir.as_path()),
        location: &task.location,
        check: task.check_mode.unwrap_or(shared.settings.check),
        diff: shared.settings.diff,
        live: None,
        peers,
    }
}

/// A task's way to other inventory hosts ([`modules::Peers`]): the run's
/// delegated connections, with the task's escalation as resolved for its
/// own host (as for `delegate_to`).
struct TaskPeers<'a> {
    shared: &'a Shared<'a>,
    task: &'a Task,
    vars: &'a Vars,
}

impl modules::Peers for TaskPeers<'_> {
    fn connect<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Arc<dyn Transport>>> {
        Box::pin(async move {
            let shared = self.shared;
            let target = shared.targets.get(host).ok_or_else(|| {
                Error::usage(format!("`{host}` is no host of this run's inventory"))
            })?;
            let conn = {
                let mut open = shared.delegated.lock().await;
                match open.get(host) {
                    Some(conn) => conn.clone(),
                    None => {
                        let conn = shared.connector.connect(target).await?;
                        open.insert(host.to_owned(), conn.clone());
                        conn
                    }
                }
            };
            let how = escalation::resolve(
                &shared.settings.escalation,
                &self.task.escalate,
                self.vars,
                shared.engine,
                &self.task.location,
            )?;
            Ok(Escalated::wrap(conn, how, host))
        })
    }
}

/// Stands in for the connection of modules that never touch the host.
struct Local;

impl Transport for Local {
    fn exec<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a [u8]>,
    ) -> futures::future::BoxFuture<'a, Result<crate::transport::Output>> {
        Box::pin(async {
            Err(Error::Internal(
                "a local module tried to run a remote command".into(),
            ))
        })
    }

    fn forward<'a>(
        &'a self,
        _: &'a str,
        _: u16,
    ) -> futures::future::BoxFuture<'a, Result<Box<dyn crate::transport::Stream>>> {
        Box::pin(async {
            Err(Error::Internal(
                "a local module tried to open a channel".into(),
            ))
        })
    }

    fn close(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// How `state`'s host is reached in `play`, as in Ansible: the user is
/// the host's `ansible_user` (from the inventory, the play's `vars` or
/// `-e`), else the play's `remote_user`, else the inventory target's (the
/// `ssh` config's, `-u`, this machine's user); likewise
/// `ansible_connection` over the play's `connection`.
fn play_target(engine: &Engine, play: &Play, state: &HostState) -> Result<Target> {
    let mut target = state.base.clone();
    let text = |key: &str| state.vars.get(key).and_then(Value::as_str).map(str::trim);
    match (text("ansible_user"), &play.remote_user) {
        (Some(user), _) => user.clone_into(&mut target.user),
        (None, Some(user)) => {
            let user = match crate::template::is_template(user) {
                true => engine.render_str(user, &state.vars.play_vars(), &play.location)?,
                false => user.clone(),
            };
            target.user = user;
        }
        (None, None) => {}
    }
    match (text("ansible_connection"), play.local) {
        (Some(connection), _) => {
            target.local = matches!(connection, "local" | "ansible.builtin.local")
        }
        (None, Some(local)) => target.local = local,
        (None, None) => {}
    }
    Ok(target)
}

/// The connection a task delegated to `to` runs over: the host's own for
/// itself; another inventory host's, opened on first use with that host's
/// connection settings and kept for the run; this machine for `localhost`
/// when the inventory has no such host (as Ansible's implicit localhost).
/// The task keeps its own host's variables. Anything else fails the task.
async fn delegate(
    shared: &Shared<'_>,
    state: &mut HostState,
    to: &str,
) -> Result<std::result::Result<Arc<dyn Transport>, Outcome>> {
    if to == state.name {
        return connect(shared, state).await.map(Ok);
    }
    if let Some(target) = shared.targets.get(to) {
        let mut open = shared.delegated.lock().await;
        if let Some(conn) = open.get(to) {
            return Ok(Ok(conn.clone()));
        }
        let conn = shared.connector.connect(target).await?;
        open.insert(to.to_owned(), conn.clone());
        return Ok(Ok(conn));
    }
    if runs_here(shared, state, to) {
        return Ok(Ok(Arc::new(LocalShell)));
    }
    let mut refused = Outcome::fail(format!(
        "`delegate_to: {to}` names no host of this run's inventory"
    ));
    if let Some(failure) = &mut refused.failure {
        failure.hint = Some(
            "delegate to an inventory host (its connection settings are used) or to `localhost`"
                .into(),
        );
    }
    Ok(Err(refused))
}

/// Whether `delegate_to: to` runs on this machine: `localhost` (or its
/// addresses) when no inventory host is named so.
fn runs_here(shared: &Shared<'_>, state: &HostState, to: &str) -> bool {
    to != state.name
        && !shared.targets.contains_key(to)
        && matches!(to, "localhost" | "127.0.0.1" | "::1")
}

/// `export NAME=VALUE ...; ` for the play's and the task's `environment`
/// (the task's, with its blocks', above the play's), rendered with `vars`;
/// empty without any.
fn exports(shared: &Shared<'_>, task: &Task, vars: &Vars) -> Result<String> {
    let mut merged: BTreeMap<&String, &Value> = shared.play.environment.iter().collect();
    merged.extend(task.environment.iter());
    let mut words = Vec::new();
    for (name, value) in merged {
        let value = match shared.engine.render_json(value, vars, &task.location)? {
            Value::Null => continue,
            Value::String(s) => s,
            other => other.to_string(),
        };
        words.push(format!("{name}={}", crate::transport::quote(&value)));
    }
    Ok(match words.is_empty() {
        true => String::new(),
        false => format!("export {}; ", words.join(" ")),
    })
}

/// A connection whose commands run with environment variables exported
/// first (`environment:`). It sits under `Shown`, so `-v` shows the
/// module's command without the values.
struct WithEnv {
    inner: Arc<dyn Transport>,
    exports: String,
}

impl Transport for WithEnv {
    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> futures::future::BoxFuture<'a, Result<crate::transport::Output>> {
        Box::pin(async move {
            let command = format!("{}{command}", self.exports);
            self.inner.exec(&command, stdin).await
        })
    }

    fn exec_streamed<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        gate: Option<&'a crate::transport::Gate<'a>>,
        sink: &'a crate::transport::Sink<'a>,
    ) -> futures::future::BoxFuture<'a, Result<crate::transport::Gated>> {
        Box::pin(async move {
            let command = format!("{}{command}", self.exports);
            self.inner.exec_streamed(&command, stdin, gate, sink).await
        })
    }

    fn forward<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> futures::future::BoxFuture<'a, Result<Box<dyn crate::transport::Stream>>> {
        self.inner.forward(host, port)
    }

    fn close(&self) -> futures::future::BoxFuture<'_, ()> {
        self.inner.close()
    }

    fn details(&self) -> Option<String> {
        self.inner.details()
    }
}

/// The host's connection, opened on first use and kept for the run. One
/// found lost since the last task (the host rebooted, sshd restarted, the
/// link dropped) is opened again, with retries for a while (see
/// `Connector::reconnect`); the host counts as unreachable only if it stays
/// away. A task that was running when its connection dropped is not run
/// again: it failed, as in Ansible.
async fn connect(shared: &Shared<'_>, state: &mut HostState) -> Result<Arc<dyn Transport>> {
    let lost = match &state.connection {
        Some(conn) if conn.alive().await => return Ok(conn.clone()),
        Some(conn) => Some(conn.clone()),
        None => None,
    };
    let conn = match lost {
        None => shared.connector.connect(&state.target).await?,
        Some(old) => {
            state.connection = None;
            old.close().await;
            let started = Instant::now();
            let conn = shared.connector.reconnect(&state.target).await?;
            if shared.settings.verbose >= 1 {
                shared.reporter.send(Event::Detail {
                    host: state.name.clone(),
                    text: format!(
                        "the connection was lost since the last task; reconnected in {:.1}s",
                        started.elapsed().as_secs_f64()
                    ),
                });
            }
            conn
        }
    };
    if shared.settings.verbose >= 3 {
        if let Some(details) = conn.details() {
            shared.reporter.send(Event::Detail {
                host: state.name.clone(),
                text: format!("connected: {details}"),
            });
        }
    }
    state.connection = Some(conn.clone());
    Ok(conn)
}

/// A connection that reports each command before sending it (`-v`), with
/// its secrets masked when the module says which they are
/// ([`Transport::exec_masked`]), and with `ends` (`-vvv`) how each ended.
struct Shown {
    inner: Arc<dyn Transport>,
    host: String,
    /// Who the commands run as, when they become another user.
    shown_as: String,
    /// Report each command's exit status and time too.
    ends: bool,
    reporter: Reporter,
}

impl Shown {
    fn sent(&self, command: &str) -> Instant {
        self.reporter.send(Event::Detail {
            host: self.host.clone(),
            text: format!("$ {command}{}", self.shown_as),
        });
        Instant::now()
    }

    fn ended(&self, started: Instant, status: Option<u32>) {
        if !self.ends {
            return;
        }
        let how = match status {
            Some(code) => format!("exit {code}"),
            None => "no exit status (the connection failed)".to_owned(),
        };
        self.reporter.send(Event::Detail {
            host: self.host.clone(),
            text: format!("ended: {how} after {:.2}s", started.elapsed().as_secs_f64()),
        });
    }

    async fn run(
        &self,
        command: &str,
        shown: &str,
        stdin: Option<&[u8]>,
    ) -> Result<crate::transport::Output> {
        let started = self.sent(shown);
        let out = self.inner.exec(command, stdin).await;
        self.ended(started, out.as_ref().ok().map(|o| o.status));
        out
    }
}

impl Transport for Shown {
    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> futures::future::BoxFuture<'a, Result<crate::transport::Output>> {
        Box::pin(self.run(command, command, stdin))
    }

    fn exec_masked<'a>(
        &'a self,
        command: &'a str,
        shown: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> futures::future::BoxFuture<'a, Result<crate::transport::Output>> {
        Box::pin(self.run(command, shown, stdin))
    }

    fn exec_streamed<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        gate: Option<&'a crate::transport::Gate<'a>>,
        sink: &'a crate::transport::Sink<'a>,
    ) -> futures::future::BoxFuture<'a, Result<crate::transport::Gated>> {
        Box::pin(async move {
            let started = self.sent(command);
            let out = self.inner.exec_streamed(command, stdin, gate, sink).await;
            self.ended(started, out.as_ref().ok().map(|o| o.output.status));
            out
        })
    }

    fn forward<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> futures::future::BoxFuture<'a, Result<Box<dyn crate::transport::Stream>>> {
        self.inner.forward(host, port)
    }

    fn close(&self) -> futures::future::BoxFuture<'_, ()> {
        self.inner.close()
    }

    fn details(&self) -> Option<String> {
        self.inner.details()
    }
}

fn status_of(outcome: &Outcome) -> Status {
    if outcome.skipped.is_some() {
        Status::Skipped
    } else if outcome.failed() {
        Status::Failed
    } else if outcome.changed {
        Status::Changed
    } else {
        Status::Ok
    }
}

/// The value `register:` stores, shaped like Ansible's.
fn registered_value(outcome: &Outcome, status: Status) -> Value {
    let lines = |s: &str| {
        s.lines()
            .map(|l| Value::String(l.to_owned()))
            .collect::<Vec<_>>()
    };
    let mut value = json!({
        "changed": status == Status::Changed,
        "failed": status == Status::Failed,
        "skipped": status == Status::Skipped,
        "stdout": outcome.stdout.trim_end_matches('\n'),
        "stderr": outcome.stderr.trim_end_matches('\n'),
        "stdout_lines": lines(&outcome.stdout),
        "stderr_lines": lines(&outcome.stderr),
    });
    if let Value::Object(map) = &mut value {
        if let Some(rc) = outcome.rc {
            map.insert("rc".into(), rc.into());
        }
        let msg = outcome
            .msg
            .clone()
            .or_else(|| outcome.failure.as_ref().map(|f| f.message.clone()));
        if let Some(msg) = msg {
            map.insert("msg".into(), msg.into());
        }
        if let Some(why) = &outcome.skipped {
            map.insert("skip_reason".into(), why.clone().into());
        }
        if let Some(results) = &outcome.results {
            map.insert("results".into(), Value::Array(results.clone()));
        }
        for (key, v) in &outcome.values {
            map.insert(key.clone(), v.clone());
        }
    }
    value
}

/// `no_log`: keep the status, drop everything that could carry a secret.
fn hide(event: &mut HostResult) {
    const HIDDEN: &str = "output hidden by `no_log: true`";
    if event.message.is_some() {
        event.message = Some(HIDDEN.into());
    }
    event.diff = None;
    if let Some(f) = &mut event.failure {
        *f = Failure {
            message: HIDDEN.into(),
            rc: f.rc,
            ..Failure::default()
        };
    }
}

#[cfg(test)]
mod tests {
    //! The executor's ordering and failure rules, against an in-memory
    //! transport. These say nothing about SSH; `tests/` covers that with sshd.

    use std::path::Path;
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;
    use crate::inventory::Inventory;
    use crate::report::Captured;
    use crate::transport::{HostKeyChecking, Output, Stream};
    use crate::vars::Layers;

    mod flow;
    mod serial;

    #[test]
    fn a_shown_connection_reports_the_masked_command_and_sends_the_real_one() {
        let fake = Fake::default();
        let (reporter, captured) = Reporter::capture();
        let shown = Shown {
            inner: Arc::new(FakeConn {
                host: "h1".into(),
                log: fake.log.clone(),
            }),
            host: "h1".into(),
            shown_as: String::new(),
            ends: true,
            reporter,
        };
        let secret = format!("pw-{}", std::process::id());
        let real = format!("docker run --env DB={secret} img");
        let out = futures::executor::block_on(shown.exec_masked(
            &real,
            "docker run --env DB=*** img",
            None,
        ))
        .unwrap();
        assert_eq!(out.status, 0);
        assert_eq!(fake.commands("h1"), [real]);
        let texts: Vec<String> = captured
            .events()
            .into_iter()
            .map(|e| match e {
                Event::Detail { host, text } => format!("<{host}> {text}"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert_eq!(texts[0], "<h1> $ docker run --env DB=*** img");
        assert!(
            texts[1].starts_with("<h1> ended: exit 0 after "),
            "{texts:?}"
        );
    }

    #[test]
    fn loop_items_are_labelled_readably() {
        use serde_json::json;
        let image = json!({"image": "consul:1.20", "pull": true});
        assert_eq!(item_label(&image), "consul:1.20");
        assert_eq!(item_label(&json!({"name": "web", "image": "x"})), "web");
        assert_eq!(
            item_label(&json!({"port": 80, "proto": "tcp"})),
            "port=80 proto=tcp"
        );
        assert_eq!(item_label(&json!("plain")), "plain");
        assert_eq!(item_label(&json!(3)), "3");
    }

    /// Records every command; `fail` commands exit 1 everywhere, and
    /// `fail@HOST` ones only on that host.
    #[derive(Clone, Default)]
    struct Fake {
        log: Arc<Mutex<Vec<(String, String)>>>,
        down: Vec<String>,
    }

    struct FakeConn {
        host: String,
        log: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl Transport for FakeConn {
        fn exec<'a>(
            &'a self,
            command: &'a str,
            _stdin: Option<&'a [u8]>,
        ) -> BoxFuture<'a, Result<Output>> {
            Box::pin(async move {
                self.log
                    .lock()
                    .unwrap()
                    .push((self.host.clone(), command.to_owned()));
                let fails = command.contains("fail") && !command.contains("fail@")
                    || command.contains(&format!("fail@{}", self.host));
                Ok(Output {
                    stdout: format!("out from {}\n", self.host),
                    stderr: if fails {
                        "it broke\n".into()
                    } else {
                        String::new()
                    },
                    status: u32::from(fails),
                })
            })
        }

        fn forward<'a>(
            &'a self,
            _host: &'a str,
            _port: u16,
        ) -> BoxFuture<'a, Result<Box<dyn Stream>>> {
            Box::pin(async { Err(Error::Internal("no forwarding in the fake".into())) })
        }

        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    impl Connector for Fake {
        fn connect<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Arc<dyn Transport>>> {
            Box::pin(async move {
                if self.down.contains(&target.name) {
                    return Err(Error::Unreachable {
                        host: target.name.clone(),
                        message: "connection refused".into(),
                        hint: None,
                    });
                }
                Ok(Arc::new(FakeConn {
                    host: target.name.clone(),
                    log: self.log.clone(),
                }) as Arc<dyn Transport>)
            })
        }
    }

    impl Fake {
        fn commands(&self, host: &str) -> Vec<String> {
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|(h, _)| h == host)
                .map(|(_, c)| c.clone())
                .collect()
        }
    }

    fn inventory(n: usize) -> Inventory {
        let names: Vec<String> = (1..=n).map(|i| format!("h{i}")).collect();
        inventory_of(&names)
    }

    fn inventory_of(names: &[String]) -> Inventory {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let lines: String = names.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&path, format!("[web]\n{lines}")).unwrap();
        Inventory::load(&path).unwrap()
    }

    fn target(name: &str) -> Target {
        Target {
            name: name.to_owned(),
            address: name.to_owned(),
            port: 22,
            user: "root".into(),
            identity_files: Vec::new(),
            known_hosts: "/dev/null".into(),
            extra_known_hosts: Vec::new(),
            host_key_checking: HostKeyChecking::Strict,
            host_key_alias: None,
            identities_only: false,
            connect_timeout: Duration::from_secs(1),
            keepalive: Default::default(),
            reconnect: Duration::ZERO,
            proxy: Default::default(),
            session: Default::default(),
            local: false,
        }
    }

    fn run(fake: &Fake, hosts: usize, yaml: &str, settings: Settings) -> (Captured, Fake) {
        run_in(fake, inventory(hosts), yaml, settings)
    }

    fn run_in(
        fake: &Fake,
        inventory: Inventory,
        yaml: &str,
        settings: Settings,
    ) -> (Captured, Fake) {
        run_in_dir(fake, inventory, yaml, Path::new("."), settings)
    }

    /// [`run_in`] with the playbook in `dir` (where its task files are).
    fn run_in_dir(
        fake: &Fake,
        inventory: Inventory,
        yaml: &str,
        dir: &Path,
        settings: Settings,
    ) -> (Captured, Fake) {
        let inventory = Arc::new(inventory);
        let playbook = Playbook::parse(&dir.join("test.yml"), dir, yaml).unwrap();
        let targets = inventory.hosts.iter().map(|h| target(&h.name)).collect();
        let settings = Settings {
            forks: 4,
            ..settings
        };
        let scope = Scope::new(inventory, Layers::default());
        let captured = execute(scope, fake, playbook, settings, targets);
        (captured, fake.clone())
    }

    /// Run `playbook` on `targets` of `scope` through `fake`.
    fn execute(
        scope: Scope,
        fake: &Fake,
        playbook: Playbook,
        settings: Settings,
        targets: Vec<Target>,
    ) -> Captured {
        let (reporter, captured) = Reporter::capture();
        let mut executor = Executor::new(
            Arc::new(scope),
            Engine::new(),
            Arc::new(fake.clone()),
            reporter,
            settings,
            targets,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(executor.run(&[playbook])).unwrap();
        captured
    }

    fn statuses(events: &[Event], task: &str) -> Vec<(String, Status)> {
        let mut out: Vec<(String, Status)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Host(r) if r.task == task => Some((r.host.clone(), r.status)),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn a_failed_host_leaves_the_play_while_the_others_finish_in_order() {
        let yaml = "- hosts: all\n  tasks:\n    - name: one\n      command: echo one fail@h2\n    - name: two\n      command: echo two\n";
        let (captured, fake) = run(&Fake::default(), 3, yaml, Settings::default());
        let events = captured.events();
        assert_eq!(
            statuses(&events, "one"),
            [
                ("h1".into(), Status::Changed),
                ("h2".into(), Status::Failed),
                ("h3".into(), Status::Changed)
            ]
        );
        assert_eq!(
            statuses(&events, "two"),
            [
                ("h1".into(), Status::Changed),
                ("h3".into(), Status::Changed)
            ]
        );
        assert_eq!(fake.commands("h1"), ["echo one fail@h2", "echo two"]);
        assert_eq!(fake.commands("h2"), ["echo one fail@h2"]);
    }

    #[test]
    fn an_unreachable_host_is_reported_once_and_not_tried_again() {
        let fake = Fake {
            down: vec!["h2".into()],
            ..Fake::default()
        };
        let yaml = "- hosts: all\n  tasks:\n    - name: one\n      command: echo one\n- hosts: all\n  tasks:\n    - name: two\n      command: echo two\n";
        let (captured, _) = run(&fake, 2, yaml, Settings::default());
        let events = captured.events();
        assert_eq!(
            statuses(&events, "one"),
            [
                ("h1".into(), Status::Changed),
                ("h2".into(), Status::Unreachable)
            ]
        );
        assert_eq!(statuses(&events, "two"), [("h1".into(), Status::Changed)]);
    }

    #[test]
    fn ansible_check_mode_is_the_runs_check_flag_even_where_a_task_runs_for_real() {
        // A check_mode: false task runs in a --check run, and can still
        // tell the run is one (to forgive what only a real run makes).
        let yaml = "- hosts: all\n  tasks:\n    - name: probe\n      command: echo mode={{ ansible_check_mode }} diff={{ ansible_diff_mode }}\n      check_mode: false\n";
        for (check, diff) in [(true, false), (false, true)] {
            let python = |b: bool| if b { "True" } else { "False" };
            let settings = Settings {
                check,
                diff,
                ..Settings::default()
            };
            let (_, fake) = run(&Fake::default(), 1, yaml, settings);
            let expected = format!("echo mode={} diff={}", python(check), python(diff));
            assert_eq!(fake.commands("h1"), [expected]);
        }
    }

    #[test]
    fn a_check_mode_probe_in_a_real_run_is_ok_notifies_nothing_and_registers_the_change() {
        let yaml = r#"
- hosts: all
  tasks:
    - name: would it change
      check_mode: true
      register: probe
      notify: restart
      changed_when: inventory_hostname == "h1"
      debug:
        msg: a change
    - name: then
      when: probe is changed
      command: echo it would
  handlers:
    - name: restart
      command: echo restarting
"#;
        let (captured, fake) = run(&Fake::default(), 2, yaml, Settings::default());
        let events = captured.events();
        assert_eq!(
            statuses(&events, "would it change"),
            [("h1".into(), Status::Ok), ("h2".into(), Status::Ok)]
        );
        assert_eq!(
            statuses(&events, "then"),
            [
                ("h1".into(), Status::Changed),
                ("h2".into(), Status::Skipped)
            ]
        );
        assert!(statuses(&events, "restart").is_empty());
        assert_eq!(fake.commands("h1"), ["echo it would"]);
        assert!(fake.commands("h2").is_empty());
        // In a --check run it is what the run reports: a change.
        let settings = Settings {
            check: true,
            ..Settings::default()
        };
        let (captured, _) = run(&Fake::default(), 2, yaml, settings);
        assert_eq!(
            statuses(&captured.events(), "would it change"),
            [("h1".into(), Status::Changed), ("h2".into(), Status::Ok)]
        );
    }

    #[test]
    fn handlers_run_once_and_only_where_notified() {
        let yaml = r#"
- hosts: all
  tasks:
    - name: maybe change
      command: echo hi
      changed_when: inventory_hostname == "h1"
      notify: restart
    - name: change again
      command: echo again
      changed_when: inventory_hostname == "h1"
      notify: restart
  handlers:
    - name: restart
      command: echo restarting
"#;
        let (captured, fake) = run(&Fake::default(), 2, yaml, Settings::default());
        assert_eq!(
            statuses(&captured.events(), "restart"),
            [("h1".into(), Status::Changed)]
        );
        assert_eq!(
            fake.commands("h1")
                .iter()
                .filter(|c| c.contains("restarting"))
                .count(),
            1
        );
        assert!(!fake.commands("h2").iter().any(|c| c.contains("restarting")));
    }

    /// The word after `echo` in each command `host` was sent, in order.
    fn echoed(fake: &Fake, host: &str) -> Vec<String> {
        fake.commands(host)
            .iter()
            .filter_map(|c| {
                c.split("echo ")
                    .nth(1)?
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            })
            .collect()
    }

    #[test]
    fn a_conditional_flush_runs_the_handlers_of_the_hosts_it_holds_for() {
        let yaml = r#"
- hosts: all
  handlers:
    - name: h
      command: echo handler
  tasks:
    - command: echo one
      notify: h
    - meta: flush_handlers
      when: inventory_hostname == "h1"
    - command: echo two
"#;
        let (_, fake) = run(&Fake::default(), 2, yaml, Settings::default());
        let said = |host: &str| echoed(&fake, host);
        assert_eq!(said("h1"), ["one", "handler", "two"]);
        assert_eq!(said("h2"), ["one", "two", "handler"]);
    }

    #[test]
    fn a_notified_topic_runs_every_handler_listening_to_it_once() {
        let yaml = r#"
- hosts: all
  tasks:
    - command: echo change
      notify: [restart web, reload]
    - command: echo again
      notify: restart web
  handlers:
    - name: reload
      command: echo reloading
      listen: restart web
    - name: restart app
      command: echo restarting-app
      listen: [restart web]
    - name: unrelated
      command: echo unrelated
"#;
        let (_, fake) = run(&Fake::default(), 1, yaml, Settings::default());
        let count = |word: &str| {
            fake.commands("h1")
                .iter()
                .filter(|c| c.contains(word))
                .count()
        };
        assert_eq!(
            (
                count("reloading"),
                count("restarting-app"),
                count("unrelated")
            ),
            (1, 1, 0)
        );
    }

    #[test]
    fn meta_flushes_handlers_and_ends_a_host_a_batch_or_the_play() {
        let yaml = r#"
- hosts: all
  serial: 2
  handlers:
    - name: h
      command: echo handler
  tasks:
    - command: echo one
      notify: h
    - meta: flush_handlers
    - command: echo two
    - meta: end_host
      when: inventory_hostname == "h1"
    - command: echo three
    - meta: end_play
      when: inventory_hostname == "h3"
    - command: echo four
    - meta: end_play
      when: inventory_hostname == "h2"
    - command: echo four-and-a-half
- hosts: all
  tasks:
    - command: echo five
    - meta: end_batch
    - command: echo six
"#;
        let (_, fake) = run(&Fake::default(), 3, yaml, Settings::default());
        let said = |host: &str| echoed(&fake, host);
        // `end_play`'s `when` is asked of the batch's first host still in
        // it (h2 here): false for h3's, true for h2's.
        assert_eq!(said("h1"), ["one", "handler", "two", "five"]);
        assert_eq!(
            said("h2"),
            ["one", "handler", "two", "three", "four", "five"]
        );
        // `end_play` in the first batch: the second (h3) never starts.
        assert_eq!(said("h3"), ["five"]);
    }

    #[test]
    fn a_batch_over_its_failure_budget_stops_the_run_before_later_batches() {
        let yaml = "- hosts: all\n  serial: 2\n  max_fail_percentage: 0\n  tasks:\n    - name: step\n      command: echo fail@h1\n";
        let (captured, fake) = run(&Fake::default(), 4, yaml, Settings::default());
        let events = captured.events();
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::PlayAborted { .. })));
        assert_eq!(statuses(&events, "step").len(), 2);
        assert!(fake.commands("h3").is_empty() && fake.commands("h4").is_empty());
    }

    #[test]
    fn serial_may_be_a_template_of_the_plays_variables() {
        let yaml = "- hosts: all\n  vars:\n    batch: \"40%\"\n  serial: \"{{ batch }}\"\n  tasks:\n    - command: echo hi\n";
        let (captured, _) = run(&Fake::default(), 5, yaml, Settings::default());
        let batches: Vec<Vec<String>> = captured
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::PlayStart { hosts, .. } => Some(hosts.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            batches,
            vec![vec!["h1", "h2"], vec!["h3", "h4"], vec!["h5"]]
        );
    }

    #[test]
    fn register_when_and_run_once_work_together() {
        let yaml = r#"
- hosts: all
  tasks:
    - name: ask once
      command: echo question
      run_once: true
      register: answer
    - name: use it
      command: echo "{{ answer.stdout }}"
      when: answer.rc == 0
    - name: never
      command: echo no
      when: answer.stdout == "nope"
"#;
        let (captured, fake) = run(&Fake::default(), 3, yaml, Settings::default());
        let events = captured.events();
        assert_eq!(statuses(&events, "ask once").len(), 1);
        assert_eq!(fake.commands("h3"), ["echo 'out from h1'"]);
        assert!(statuses(&events, "never")
            .iter()
            .all(|(_, s)| *s == Status::Skipped));
    }

    #[test]
    fn ignore_errors_keeps_the_host_going_and_no_log_hides_output() {
        let yaml = r#"
- hosts: all
  tasks:
    - name: secret
      shell: echo s3cret; fail
      no_log: true
      ignore_errors: true
    - name: after
      command: echo after
"#;
        let (captured, _) = run(&Fake::default(), 1, yaml, Settings::default());
        let events = captured.events();
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(statuses(&events, "after"), [("h1".into(), Status::Changed)]);
    }

    #[test]
    fn extra_vars_are_templates_too_and_beat_facts() {
        let yaml = r#"
- hosts: all
  vars:
    image: base
  tasks:
    - set_fact:
        pinned: from-fact
    - command: echo "{{ tag }} {{ pinned }}"
"#;
        let fake = Fake::default();
        let inventory = Arc::new(inventory(1));
        let playbook = Playbook::parse(Path::new("test.yml"), Path::new("."), yaml).unwrap();
        let mut layers = Layers::default();
        layers.extra.insert("tag".into(), "{{ image }}:2".into());
        layers.extra.insert("pinned".into(), "from-cli".into());
        on_h1(Scope::new(inventory, layers), &fake, playbook);
        assert_eq!(fake.commands("h1"), ["echo 'base:2 from-cli'"]);
    }

    #[test]
    fn a_skipped_play_says_why_it_has_no_hosts() {
        let yaml = r#"
- hosts: h2
  tasks:
    - command: echo two
- hosts: nosuch
  tasks:
    - command: echo none
"#;
        let settings = Settings {
            limit: Some("h1".into()),
            ..Settings::default()
        };
        let (captured, _) = run(&Fake::default(), 2, yaml, settings);
        let warnings: Vec<String> = captured
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Warning { message } => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(
            warnings,
            [
                "`h2`: `--limit` leaves out every host of it; skipping play `h2`",
                "`nosuch`: no hosts matched it; skipping play `nosuch`"
            ]
        );
    }

    #[test]
    fn with_items_over_a_string_loops_once_over_it() {
        let yaml = r#"
- hosts: all
  tasks:
    - command: echo "{{ item }}"
      with_items: "a,b"
"#;
        let (_, fake) = run(&Fake::default(), 1, yaml, Settings::default());
        assert_eq!(fake.commands("h1"), ["echo a,b"]);
    }

    #[test]
    fn a_looped_set_fact_sees_what_its_earlier_items_set() {
        let yaml = r#"
- hosts: all
  tasks:
    - set_fact:
        acc: "{{ acc | default([]) + [item * 10] }}"
      loop: [1, 2, 3]
    - command: echo "{{ acc | join(',') }}"
"#;
        let fake = Fake::default();
        let inventory = Arc::new(inventory(1));
        let playbook = Playbook::parse(Path::new("test.yml"), Path::new("."), yaml).unwrap();
        on_h1(Scope::new(inventory, Layers::default()), &fake, playbook);
        assert_eq!(fake.commands("h1"), ["echo 10,20,30"]);
    }

    #[test]
    fn hostvars_show_other_hosts_facts_and_registered_results() {
        let yaml = r#"
- hosts: all
  tasks:
    - command: echo hi
      register: said
    - set_fact:
        tok: "t-{{ inventory_hostname }}"
    - command: echo "{{ hostvars['h2'].said.stdout }} {{ hostvars[inventory_hostname].tok }}"
- hosts: h1
  tasks:
    - command: echo "{{ hostvars['h2'].tok }} {{ 'tok' in hostvars['h2'] }}"
"#;
        let (_, fake) = run(&Fake::default(), 2, yaml, Settings::default());
        assert_eq!(
            fake.commands("h1"),
            ["echo hi", "echo 'out from h2 t-h1'", "echo 't-h2 True'"]
        );
        assert_eq!(fake.commands("h2")[1], "echo 'out from h2 t-h2'");
    }

    #[test]
    fn the_plays_magic_variables_name_its_hosts_batch_and_playbook() {
        let yaml = r#"
- hosts: all
  serial: 2
  tasks:
    - command: echo "{{ ansible_play_batch | join(',') }} {{ play_hosts | length }} {{ ansible_play_hosts | length }} {{ ansible_play_hosts_all | join(',') }} {{ ansible_play_name }} {{ playbook_dir is string }} {{ ansible_run_tags | join(',') }}"
"#;
        let (_, fake) = run(&Fake::default(), 3, yaml, Settings::default());
        assert_eq!(
            fake.commands("h1"),
            ["echo 'h1,h2 2 3 h1,h2,h3 all True all'"]
        );
        assert_eq!(fake.commands("h3"), ["echo 'h3 1 3 h1,h2,h3 all True all'"]);
        // Play vars read them too, each play its own.
        let yaml = r#"
- hosts: h1
  tasks:
    - command: echo one
- hosts: all
  vars:
    files: "{{ playbook_dir }}/files"
    count: "{{ ansible_play_hosts_all | length }}"
  tasks:
    - command: echo "{{ count }} {{ files is string }}"
"#;
        let (_, fake) = run(&Fake::default(), 3, yaml, Settings::default());
        assert_eq!(fake.commands("h1"), ["echo one", "echo '3 True'"]);
    }

    #[test]
    fn a_run_once_set_fact_sets_the_fact_on_every_host() {
        let yaml = r#"
- hosts: all
  tasks:
    - set_fact:
        leader: "{{ inventory_hostname }}"
      run_once: true
    - command: echo "{{ leader | default('none') }}"
    - set_fact:
        own: "{{ inventory_hostname }}"
    - set_fact:
        own: nobody
      run_once: true
      when: false
    - command: echo "{{ own }}"
"#;
        let (_, fake) = run(&Fake::default(), 3, yaml, Settings::default());
        for host in ["h1", "h2", "h3"] {
            // a skipped one hands nothing on
            assert_eq!(
                fake.commands(host),
                ["echo h1", format!("echo {host}").as_str()],
                "{host}"
            );
        }
    }

    /// A task's vars are read as Ansible reads them, when used: a block's
    /// (or an import's) var built from a result its first task registers
    /// does not fail that first task, and one that never renders fails
    /// only a task that reads it, saying why.
    #[test]
    fn a_task_var_that_does_not_render_fails_only_a_task_that_reads_it() {
        let yaml = r#"
- hosts: all
  tasks:
    - vars:
        later: "{{ first.stdout | trim }} then"
        never: "{{ nobody.stdout }}"
      block:
        - name: first
          command: echo first
          register: first
        - name: second
          command: echo "{{ later }}"
        - name: third
          command: echo "{{ never }}"
"#;
        let (captured, fake) = run(&Fake::default(), 1, yaml, Settings::default());
        assert_eq!(
            fake.commands("h1"),
            ["echo first", "echo 'out from h1 then'"]
        );
        let events = captured.events();
        assert_eq!(statuses(&events, "third"), [("h1".into(), Status::Failed)]);
        let failure = events
            .iter()
            .find_map(|e| match e {
                Event::Host(r) if r.task == "third" => r.failure.clone(),
                _ => None,
            })
            .unwrap();
        assert!(
            failure.message.contains("undefined variable `never`"),
            "{failure:?}"
        );
        let hint = failure.hint.unwrap_or_default();
        assert!(
            hint.contains("`never` is set for this task, but its value did not render")
                && hint.contains("undefined variable `nobody`"),
            "{hint}"
        );
    }

    /// `when` and `loop` see the task's own vars, as in Ansible.
    #[test]
    fn when_and_loop_see_the_task_s_own_vars() {
        let yaml = r#"
- hosts: all
  tasks:
    - name: off
      command: echo off
      vars:
        enabled: false
      when: enabled
    - name: each
      command: echo "{{ item }}"
      loop: "{{ names }}"
      vars:
        names: [a, b, c]
        left_out: b
      when: item != left_out
"#;
        let (captured, fake) = run(&Fake::default(), 1, yaml, Settings::default());
        assert_eq!(fake.commands("h1"), ["echo a", "echo c"]);
        let events = captured.events();
        assert_eq!(statuses(&events, "off"), [("h1".into(), Status::Skipped)]);
    }

    /// Run `playbook` on the one host `h1` of `scope` through `fake`.
    fn on_h1(scope: Scope, fake: &Fake, playbook: Playbook) -> Captured {
        let settings = Settings {
            forks: 1,
            ..Settings::default()
        };
        execute(scope, fake, playbook, settings, vec![target("h1")])
    }

    /// Runs the built-in `setup` playbook's first task, the one that makes
    /// Docker's TLS certificates, on `h1` with `-e docker_tcp=WORD`; returns
    /// its status and the inventory's directory.
    fn docker_tls_task(word: &str) -> (Status, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "h1 arpanet_ip=10.0.0.1\n").unwrap();
        let inventory = Arc::new(Inventory::load(&path).unwrap());
        let layers = Layers::load(
            crate::cluster::builtin::BUILTINS.defaults,
            None,
            &[format!("docker_tcp={word}")],
        )
        .unwrap();
        let mut setup =
            crate::playbook::resolve("setup", crate::cluster::builtin::BUILTINS).unwrap();
        setup.plays.truncate(1);
        setup.plays[0].tasks.truncate(1);
        setup.plays[0].handlers.clear();
        let task = setup.plays[0].task_list()[0];
        assert_eq!(task.name, "docker TLS certificates");
        assert_eq!(task.when, ["docker_tcp | bool"]);
        // Made here only: the node's copies (read first by the built-in
        // task) are another test's (tests/secrets.rs, over sshd).
        if let Step::Task(task) = &mut setup.plays[0].tasks[0] {
            use crate::cluster::secrets::{ClusterSecrets, SecretsArgs};
            let ClusterSecrets(args) = task.module.downcast::<ClusterSecrets>().unwrap().clone();
            task.module = Arc::new(ClusterSecrets(SecretsArgs {
                node_dir: None,
                ask: None,
                ..args
            }));
        }
        let captured = on_h1(Scope::new(inventory, layers), &Fake::default(), setup);
        let statuses = statuses(&captured.events(), "docker TLS certificates");
        (statuses[0].1, dir)
    }

    /// `-e docker_tcp=y` turns TLS on in the docker template (the `bool`
    /// filter); the task that makes the certificates must agree, for every
    /// yes word and no word of `crate::truth`.
    #[test]
    fn every_yes_word_for_docker_tcp_makes_the_certificates() {
        for word in ["y", "yes", "on", "1", "True", "TRUE"] {
            let (status, dir) = docker_tls_task(word);
            assert_eq!(status, Status::Changed, "docker_tcp={word}");
            let tls = dir.path().join("docker-tls");
            assert!(tls.join("ca.pem").is_file(), "docker_tcp={word}");
            assert!(
                tls.join("hosts/h1/server-cert.pem").is_file(),
                "docker_tcp={word}"
            );
        }
        for word in ["n", "no", "off", "0", "False", "maybe"] {
            let (status, dir) = docker_tls_task(word);
            assert_eq!(status, Status::Skipped, "docker_tcp={word}");
            assert!(!dir.path().join("docker-tls").exists(), "docker_tcp={word}");
        }
        // the template decides the same way
        let template = crate::cluster::builtin::BUILTINS
            .template("docker.default.j2")
            .unwrap();
        let inventory = Arc::new(Inventory::parse(Path::new("hosts"), "h1\n").unwrap());
        for (word, tls) in [("y", true), ("On", true), ("no", false), ("0", false)] {
            let layers = Layers::load(
                crate::cluster::builtin::BUILTINS.defaults,
                None,
                // a run reads the bridge's address from the node first
                &[
                    format!("docker_tcp={word}"),
                    "docker_bridge_ip=172.17.0.1".into(),
                ],
            )
            .unwrap();
            let scope = Scope::new(inventory.clone(), layers);
            let engine = Engine::new();
            let vars = scope.host(&engine, "h1").into_vars();
            let text = engine
                .render_named("docker.default.j2", template, &vars)
                .unwrap();
            assert_eq!(
                text.contains("--tlsverify"),
                tls,
                "docker_tcp={word}:\n{text}"
            );
        }
    }

    #[test]
    fn run_once_moves_on_when_its_first_host_is_unreachable() {
        let fake = Fake {
            down: vec!["h1".into()],
            ..Fake::default()
        };
        let yaml = "- hosts: all\n  tasks:\n    - command: echo once\n      run_once: true\n      register: r\n    - command: echo \"{{ r.rc }}\"\n";
        let (captured, fake) = run(&fake, 3, yaml, Settings::default());
        assert_eq!(fake.commands("h2"), ["echo once", "echo 0"]);
        assert_eq!(fake.commands("h3"), ["echo 0"]);
        assert_eq!(
            statuses(&captured.events(), "command: echo once"),
            [
                ("h1".into(), Status::Unreachable),
                ("h2".into(), Status::Changed)
            ]
        );
    }

    #[test]
    fn loop_forms_bind_their_variable_and_index() {
        let yaml = r#"
- hosts: all
  tasks:
    - command: echo {{ thing }} {{ i }}
      with_items: [[a, b], c]
      loop_control: {loop_var: thing, index_var: i}
    - command: echo {{ item.key }}={{ item.value }}
      with_dict: {x: 1, y: 2}
    - command: echo {{ item.0 }} {{ item.1 }}
      with_indexed_items: [p, q]
"#;
        let (_, fake) = run(&Fake::default(), 1, yaml, Settings::default());
        assert_eq!(
            fake.commands("h1"),
            ["echo a 0", "echo b 1", "echo c 2", "echo x=1", "echo y=2", "echo 0 p", "echo 1 q"]
        );
    }

    #[test]
    fn environment_is_exported_before_the_command_task_over_block_over_play() {
        let yaml = r#"
- hosts: all
  environment: {A: play, B: play}
  tasks:
    - environment: {B: "{{ inventory_hostname }}", C: block}
      block:
        - command: echo one
          environment: {C: "it's"}
    - command: echo two
"#;
        let (_, fake) = run(&Fake::default(), 1, yaml, Settings::default());
        assert_eq!(
            fake.commands("h1"),
            [
                r"export A=play B=h1 C='it'\''s'; echo one",
                "export A=play B=play; echo two"
            ]
        );
    }

    #[test]
    fn delegated_tasks_run_on_the_other_host_with_this_hosts_variables() {
        let yaml = r#"
- hosts: h1
  tasks:
    - command: echo {{ inventory_hostname }}
      delegate_to: "{{ 'h' ~ 2 }}"
    - command: echo nowhere
      delegate_to: h9
"#;
        let (captured, fake) = run(&Fake::default(), 2, yaml, Settings::default());
        assert_eq!(fake.commands("h2"), ["echo h1"]);
        assert!(fake.commands("h1").is_empty());
        let failed = statuses(&captured.events(), "command: echo nowhere");
        assert_eq!(failed, [("h1".into(), Status::Failed)]);
    }

    #[test]
    fn a_rescue_sees_the_failed_result_and_catches_a_missing_include() {
        let yaml = r#"
- hosts: all
  tasks:
    - block:
        - name: boom
          command: echo boom fail@h1
      rescue:
        - command: echo "{{ ansible_failed_task.name }}/{{ ansible_failed_result.rc }}"
    - block:
        - include_tasks: "{{ 'missing' }}.yml"
      rescue:
        - command: echo rescued include
"#;
        let (captured, fake) = run(&Fake::default(), 2, yaml, Settings::default());
        assert_eq!(
            fake.commands("h1"),
            ["echo boom fail@h1", "echo boom/1", "echo rescued include"]
        );
        assert_eq!(
            fake.commands("h2"),
            ["echo boom fail@h1", "echo rescued include"]
        );
        let events = captured.events();
        let include = events.iter().find_map(|e| match e {
            Event::Host(r) if r.task.starts_with("include_tasks") => Some(r.clone()),
            _ => None,
        });
        let include = include.expect("the include failed");
        assert!(include.rescued, "{include:?}");
        let message = include.failure.unwrap().message;
        assert!(
            message.contains("no task file `missing.yml` to include"),
            "{message}"
        );
    }

    #[test]
    fn play_vars_that_need_a_registered_result_render_once_it_exists() {
        let yaml = r#"
- hosts: all
  vars:
    greeting: "hello {{ first.stdout }}"
  tasks:
    - name: first
      command: echo first
      register: first
    - name: use
      command: echo "{{ greeting }}"
"#;
        let (_, fake) = run(&Fake::default(), 1, yaml, Settings::default());
        assert_eq!(
            fake.commands("h1"),
            ["echo first", "echo 'hello out from h1'"]
        );
    }

    /// Records when it is taken (how many commands had run by then) and
    /// released; refuses when told to.
    struct TestGuard {
        fake: Fake,
        refuse: bool,
        taken: Mutex<Vec<usize>>,
        released: Mutex<usize>,
    }

    impl Guard for TestGuard {
        fn take<'a>(&'a self, _: &'a Reporter) -> BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let sent = self.fake.log.lock().unwrap().len();
                self.taken.lock().unwrap().push(sent);
                match self.refuse {
                    true => Err(Error::Locked {
                        message: "held by someone".into(),
                        hint: None,
                    }),
                    false => Ok(()),
                }
            })
        }

        fn release(&self) -> BoxFuture<'_, ()> {
            Box::pin(async move { *self.released.lock().unwrap() += 1 })
        }
    }

    fn guarded(refuse: bool, yaml: &str) -> (Arc<TestGuard>, Fake, Result<()>) {
        guarded_with(refuse, yaml, Settings::default())
    }

    fn guarded_with(
        refuse: bool,
        yaml: &str,
        settings: Settings,
    ) -> (Arc<TestGuard>, Fake, Result<()>) {
        let fake = Fake::default();
        let guard = Arc::new(TestGuard {
            fake: fake.clone(),
            refuse,
            taken: Mutex::default(),
            released: Mutex::default(),
        });
        let inventory = Arc::new(inventory(2));
        let playbook = Playbook::parse(Path::new("test.yml"), Path::new("."), yaml).unwrap();
        let targets = inventory.hosts.iter().map(|h| target(&h.name)).collect();
        let (reporter, _captured) = Reporter::capture();
        let mut executor = Executor::new(
            Arc::new(Scope::new(inventory, Layers::default())),
            Engine::new(),
            Arc::new(fake.clone()),
            reporter,
            settings,
            targets,
        )
        .with_guard(Some(guard.clone() as Arc<dyn Guard>));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(executor.run(&[playbook]));
        (guard, fake, result)
    }

    #[test]
    fn the_guard_is_taken_once_before_the_first_task_that_reaches_a_host() {
        let yaml = r#"
- hosts: all
  tasks:
    - debug: {msg: local}
    - command: echo one
    - command: echo two
"#;
        let (guard, fake, result) = guarded(false, yaml);
        result.unwrap();
        assert_eq!(*guard.taken.lock().unwrap(), [0]);
        assert_eq!(fake.commands("h1"), ["echo one", "echo two"]);
        // The runner releases it, not the executor.
        assert_eq!(*guard.released.lock().unwrap(), 0);

        let (guard, fake, result) = guarded(true, yaml);
        assert!(matches!(result, Err(Error::Locked { .. })), "{result:?}");
        assert_eq!(*guard.taken.lock().unwrap(), [0]);
        assert!(fake.commands("h1").is_empty() && fake.commands("h2").is_empty());

        // A run that never reaches a host takes nothing.
        let (guard, _, result) = guarded(true, "- hosts: all\n  tasks:\n    - debug: {msg: x}\n");
        result.unwrap();
        assert!(guard.taken.lock().unwrap().is_empty());
    }

    #[test]
    fn tasks_skipped_by_start_at_task_take_no_guard() {
        let yaml = r#"
- hosts: all
  tasks:
    - name: remote
      command: echo one
    - name: local
      debug: {msg: x}
"#;
        let start = |name: &str| Settings {
            start_at_task: Some(name.into()),
            ..Settings::default()
        };
        let (guard, fake, result) = guarded_with(false, yaml, start("local"));
        result.unwrap();
        assert!(guard.taken.lock().unwrap().is_empty());
        assert!(fake.commands("h1").is_empty());

        let (guard, fake, result) = guarded_with(false, yaml, start("remote"));
        result.unwrap();
        assert_eq!(*guard.taken.lock().unwrap(), [0]);
        assert_eq!(fake.commands("h1"), ["echo one"]);
    }
}
