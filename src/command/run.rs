//! `arpanet run PLAYBOOK...`: built-in playbook names or paths, run against
//! the inventory.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{confirm, connect_options, output};
use crate::cli::RunArgs;
use crate::cluster::{self, deployed};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::listing;
use crate::playbook;
use crate::runner;

pub(crate) fn run(args: RunArgs) -> Result<i32> {
    let listing = args.list_hosts || args.list_tasks || args.list_tags || args.syntax_check;
    if let Some(what) = destructive(&args)?.filter(|_| !listing) {
        if !args.check && !args.yes {
            confirm(&what)?;
        }
    }
    let lock = lock_mode(&args)?;
    let verbose = args.connect.verbose > 0;
    let playbooks = args
        .playbooks
        .iter()
        .map(|p| playbook::resolve(p, crate::cluster::builtin::BUILTINS))
        .collect::<Result<Vec<_>>>()?;
    if listing {
        return list(&args, &playbooks);
    }
    if args.step && !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "`--step` asks before each task, and stdin is not a terminal to ask on",
        )
        .with_hint("run from a terminal, or without `--step`"));
    }
    let retry_file = retry_file(&args);
    let mut connect = connect_options(&args.connect)?;
    connect.playbook_dirs = args
        .playbooks
        .iter()
        .zip(&playbooks)
        .filter(|(arg, _)| !playbook::resolves_to_builtin(arg, crate::cluster::builtin::BUILTINS))
        .map(|(_, p)| p.dir.clone())
        .collect();
    let names = |list: &[&str]| args.playbooks.iter().any(|p| list.contains(&p.as_str()));
    let (stack, docker) = (names(STACK_PLAYBOOKS), names(DOCKER_PLAYBOOKS));
    let consul = names(CONSUL_PLAYBOOKS);
    if stack || docker || consul {
        let session = crate::session::Session::open(&connect)?;
        cluster::address::check_bridge(&session)?;
        cluster::settings::check(&session)?;
        if docker {
            cluster::docker_api::check(&session)?;
        }
        connect.resolved_ips = cluster::address::resolve(&connect, true)?;
        if stack {
            for warning in cluster::stack::check(&session)? {
                eprintln!("[WARNING]: {warning}");
            }
        }
    } else {
        // A user playbook reading `arpanet_ip` sees the address too, where
        // the name resolves.
        connect.resolved_ips = cluster::address::resolve(&connect, false)?;
    }
    let settings = Settings {
        forks: connect.forks,
        limit: connect.limit.clone(),
        task_timeout: super::task_timeout(args.task_timeout),
        check: args.check,
        diff: args.diff,
        tags: args.tags,
        skip_tags: args.skip_tags,
        // `-v` shows each command sent, `-vv` also what it printed.
        show_output: args.connect.verbose > 1,
        verbose: args.connect.verbose,
        start_at_task: args.start_at_task.clone(),
        step: args.step,
        ..Settings::default()
    };
    let mut connect = connect;
    let recorded = args
        .playbooks
        .iter()
        .filter(|p| READS_RECORD.contains(&p.as_str()))
        .cloned()
        .collect::<Vec<_>>();
    let before = match recorded.is_empty() {
        true => None,
        false => Some(deployed::read_for_run(&connect)?),
    };
    if let Some(before) = &before {
        connect.provided = before.layer();
        for line in &before.overridden {
            eprintln!("note: {line}");
        }
    }
    // The record is what the whole cluster runs: a run on part of it (some
    // hosts, some tasks) does not change it.
    let partial = connect.limit.is_some()
        || !settings.tags.is_empty()
        || !settings.skip_tags.is_empty()
        || args.start_at_task.is_some()
        || args.step;
    // A `bootstrap` with nothing to change asks each node one question
    // (once there is a cluster to ask); one that ran in full stamps them.
    let fast = !args.check
        && !args.diff
        && !partial
        && cluster::unchanged::eligible(&args.playbooks, &playbooks);
    if fast && before.as_ref().is_some_and(|b| b.cluster) {
        let format = output(&args.connect).format;
        if let cluster::unchanged::Outcome::Unchanged(code) =
            cluster::unchanged::check(&connect, &playbooks[0], format, verbose)?
        {
            return Ok(code);
        }
    }
    let result = runner::run_playbooks(
        &connect,
        output(&args.connect),
        settings,
        &playbooks,
        &|session, connector| match lock {
            Some(mode) => cluster::lock::for_run(session, connector, mode, verbose),
            None => Ok(None),
        },
    );
    // What `cluster_secrets` made in scratch copies under `--check`.
    cluster::secrets::discard_scratch();
    let finished = result?;
    // Said again under the recap: a value that replaced a deployed one
    // (the inventory pinning an image an upgrade moved on) is easy to miss
    // a thousand lines up.
    if let Some(before) = &before {
        for line in &before.overridden {
            eprintln!("note: {line}");
        }
    }
    if let (Some(path), false) = (retry_file, finished.retry.is_empty()) {
        write_retry_file(&path, &finished.retry);
    }
    let changes_cluster = recorded.iter().any(|p| p != "pull");
    if let (0, false, true, Some(before)) = (finished.code, args.check, changes_cluster, &before) {
        if partial {
            eprintln!("note: not recorded as deployed: `--limit`, `--tags`, `--skip-tags`, `--start-at-task` or `--step` changed part of the cluster; run without them to record");
            return Ok(finished.code);
        }
        let run = deployed::RunInfo {
            playbooks: recorded,
            command: deployed::command_line(std::env::args()),
            rollback_of: None,
        };
        let recorded = deployed::record(&connect, before, run)?;
        super::history::announce(recorded.as_ref());
        if fast {
            // The stamps are of what the next run reads: the record as
            // it is now.
            if let Some(record) = recorded {
                connect.provided = record.raw;
            }
            cluster::unchanged::stamp(&connect, &playbooks[0]);
        }
    }
    Ok(finished.code)
}

/// `--list-hosts`, `--list-tasks`, `--list-tags`, `--syntax-check`: print
/// and stop, contacting no host (see `listing`).
fn list(args: &RunArgs, playbooks: &[playbook::Playbook]) -> Result<i32> {
    // `--syntax-check` wins, as in ansible-playbook: it lists nothing.
    let lists = match args.syntax_check {
        true => listing::Lists::default(),
        false => listing::Lists {
            hosts: args.list_hosts,
            tasks: args.list_tasks,
            tags: args.list_tags,
        },
    };
    let filters = listing::Filters {
        only: &args.tags,
        skip: &args.skip_tags,
    };
    // The inventory only for what needs it: a syntax check needs none.
    let mut inventory = None;
    let mut limit = None;
    let mut rendered = None;
    if !args.syntax_check {
        let connect = connect_options(&args.connect)?;
        let (_, loaded, scope) = super::load_scope(&connect.inventory, &connect.extra_vars)?;
        if let Some(limit) = &connect.limit {
            loaded.select_limit(limit)?;
        }
        rendered = crate::runner::render_play_hosts(playbooks, &scope)?;
        inventory = Some(loaded);
        limit = connect.limit;
    }
    let hosts = |pattern: &str| match &inventory {
        Some(inventory) => crate::plan::play_hosts(inventory, pattern, limit.as_deref()),
        None => Ok(Vec::new()),
    };
    let mut out = String::new();
    let playbooks = rendered.as_deref().unwrap_or(playbooks);
    for (name, playbook) in args.playbooks.iter().zip(playbooks) {
        out.push_str(&listing::playbook(name, playbook, &hosts, lists, &filters)?);
    }
    print!("{out}");
    Ok(0)
}

/// Where a run that leaves failed or unreachable hosts lists them, as
/// Ansible's `retry_files_enabled` did: `NAME.retry` beside the (first)
/// playbook, in the current directory for a built-in one, or in
/// `ARPANET_RETRY_FILES_SAVE_PATH`. On unless `--no-retry-file` or
/// `ARPANET_RETRY_FILES_ENABLED=false`: an operator whose fleet run failed
/// on some hosts wants to re-run just those. Not under `--check`, which
/// changes nothing here either.
fn retry_file(args: &RunArgs) -> Option<PathBuf> {
    let enabled = std::env::var("ARPANET_RETRY_FILES_ENABLED")
        .ok()
        .and_then(|v| crate::truth::parse_bool(&v))
        .unwrap_or(true);
    if args.no_retry_file || !enabled || args.check {
        return None;
    }
    let first = Path::new(args.playbooks.first()?);
    let stem = first.file_stem()?.to_string_lossy().into_owned();
    let dir = match std::env::var_os("ARPANET_RETRY_FILES_SAVE_PATH") {
        Some(dir) => PathBuf::from(dir),
        None if first.is_file() => first.parent().map(Path::to_path_buf).unwrap_or_default(),
        None => PathBuf::new(),
    };
    Some(dir.join(format!("{stem}.retry")))
}

/// Write the retry file; a failure to write it is a warning, not a change
/// of the run's exit code.
fn write_retry_file(path: &Path, hosts: &[String]) {
    let text: String = hosts.iter().map(|h| format!("{h}\n")).collect();
    let shown = path.display();
    match std::fs::write(path, text) {
        Ok(()) => eprintln!("retry the failed and unreachable hosts with `--limit @{shown}`"),
        Err(e) => eprintln!("warning: cannot write the retry file `{shown}`: {e}"),
    }
}

/// Whether the run takes the cluster's lock: every run but `info` alone and
/// user playbooks with `--no-lock`; a `--check` run only looks (see
/// `cluster::lock`).
fn lock_mode(args: &RunArgs) -> Result<Option<cluster::lock::Mode>> {
    let builtin = |p: &String| cluster::builtin::BUILTINS.names.contains(&p.as_str());
    if args.no_lock {
        if let Some(name) = args.playbooks.iter().find(|p| builtin(p) && *p != "info") {
            return Err(Error::usage(format!(
                "`--no-lock` is for user playbooks: the built-in `{name}` changes the cluster \
                 and always takes its lock"
            ))
            .with_hint(
                "`arpanet lock status` shows who holds it; `arpanet lock release` frees it",
            ));
        }
        return Ok(None);
    }
    if args.playbooks.iter().all(|p| p == "info") {
        return Ok(None);
    }
    Ok(Some(cluster::lock::Mode::changing(args.check)))
}

/// The built-in playbooks that read `stack`: its entries are checked
/// before any host is contacted.
const STACK_PLAYBOOKS: &[&str] = &["stack", "bootstrap", "upgrade"];

/// The built-in playbooks that render the Docker daemon's options, whose
/// `docker_opts_extra` is checked first (see `cluster::docker_api`).
const DOCKER_PLAYBOOKS: &[&str] = &["setup", "bootstrap"];

/// The built-in playbooks that start Consul agents. For these, Docker's
/// and the stack's, each agent node's `arpanet_ip` is resolved first where
/// it is a host name (see `cluster::address`).
const CONSUL_PLAYBOOKS: &[&str] = &["bootstrap", "consul", "upgrade"];

/// The built-in playbooks that run with the cluster's deployed record as
/// their layer over the defaults; all but `pull` record after a success.
const READS_RECORD: &[&str] = &["bootstrap", "consul", "stack", "upgrade", "pull"];

/// What a run would destroy beyond recovery, if anything: `stop` with
/// `purge` set by `-e` deletes Consul's data (the whole KV store).
fn destructive(args: &RunArgs) -> Result<Option<String>> {
    if !args.playbooks.iter().any(|p| p == "stop") {
        return Ok(None);
    }
    let mut purge = false;
    for arg in &args.connect.extra_vars {
        if let Some(value) = crate::vars::parse_extra(arg)?.get("purge") {
            purge = crate::truth::as_bool(value).unwrap_or(false);
        }
    }
    Ok(purge.then(|| {
        "`stop -e purge=true` deletes Consul's data, the whole KV store, on every selected node"
            .to_owned()
    }))
}
