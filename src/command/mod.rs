//! The CLI boundary: one file per command. Each turns its clap arguments
//! (`crate::cli`) into plain settings and calls the engine (`runner`,
//! `inventory`, `template`) or the product (`cluster`, `lab`). clap types
//! stop here: nothing below this layer imports `cli`.

pub(crate) mod consul;
pub(crate) mod exec;
pub(crate) mod history;
pub(crate) mod inventory;
pub(crate) mod kv;
pub(crate) mod lab;
pub(crate) mod legacy;
pub(crate) mod lock;
pub(crate) mod logs;
pub(crate) mod render;
pub(crate) mod restart;
pub(crate) mod rollback;
pub(crate) mod rotate;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod ui;

use crate::cli::{
    BecomeMethodArg, ConnectArgs, HostKeyCheckingArg, OutputFormat as OutputArg, SessionArg,
};
use crate::config::ConnectOptions;
use crate::error::{Error, Result};
use crate::escalation::{Defaults, Method, Secret, PASSWORD_ENV};
use crate::inventory::Inventory;
use crate::report::OutputFormat;
use crate::runner::Output;
use crate::scope::Scope;
use crate::transport::{HostKeyChecking, SessionMode};

/// Hosts in flight at once when neither `--forks` nor the project file
/// says.
const DEFAULT_FORKS: usize = 20;

/// The options every command that reaches hosts shares: the flags, else
/// the project file's defaults (see `project`), else arpanet's.
fn connect_options(args: &ConnectArgs) -> Result<ConnectOptions> {
    let project = crate::project::Project::here()?;
    Ok(ConnectOptions {
        inventory: project.inventory(&args.inventory)?,
        limit: args.limit.clone(),
        extra_vars: args.extra_vars.clone(),
        forks: args.forks.or(project.forks).unwrap_or(DEFAULT_FORKS),
        user: args.user.clone().or(project.user),
        private_key: args.private_key.clone().or(project.private_key),
        known_hosts: args.known_hosts.clone().or(project.known_hosts),
        host_key_checking: match args.host_key_checking {
            HostKeyCheckingArg::Strict => HostKeyChecking::Strict,
            HostKeyCheckingArg::AcceptNew => HostKeyChecking::AcceptNew,
            HostKeyCheckingArg::Off => HostKeyChecking::Off,
        },
        timeout: args.timeout,
        defaults: crate::cluster::builtin::BUILTINS.defaults,
        escalation: escalation(args)?,
        provided: crate::vars::Vars::new(),
        session: match args.session {
            SessionArg::Persistent => SessionMode::Persistent,
            SessionArg::Exec => SessionMode::Exec,
        },
        resolved_ips: Vec::new(),
        playbook_dirs: Vec::new(),
    })
}

/// `-b`, `--become-user`, `--become-method`, and the password: asked once
/// with `-K`, else `$ARPANET_BECOME_PASS`.
fn escalation(args: &ConnectArgs) -> Result<Defaults> {
    let password = if args.ask_become_pass {
        Some(Secret::new(&ask_password("BECOME password: ")?))
    } else {
        std::env::var(PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .map(|p| Secret::new(&p))
    };
    Ok(Defaults {
        enabled: args.become_,
        user: args.become_user.clone(),
        method: args.become_method.map(|m| match m {
            BecomeMethodArg::Sudo => Method::Sudo,
            BecomeMethodArg::Su => Method::Su,
        }),
        password,
    })
}

/// Read a password on the controlling terminal without echo; refused
/// without one.
fn ask_password(prompt: &str) -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    use std::io::{BufRead, Write};
    let no_terminal = |why: String| {
        Error::usage(format!(
            "-K (--ask-become-pass) needs a terminal to ask on: {why}"
        ))
        .with_hint(format!(
            "without a terminal, give the password in ${PASSWORD_ENV} or the variable \
                 `ansible_become_pass`"
        ))
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| no_terminal(format!("cannot open `/dev/tty`: {e}")))?;
    let saved = tcgetattr(&tty).map_err(|e| no_terminal(format!("`/dev/tty`: {e}")))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    let mut out = &tty;
    let _ = out.write_all(prompt.as_bytes());
    let _ = out.flush();
    tcsetattr(&tty, OptionalActions::Flush, &quiet)
        .map_err(|e| no_terminal(format!("`/dev/tty`: {e}")))?;
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = tcsetattr(&tty, OptionalActions::Flush, &saved);
    read.map_err(|e| Error::Internal(format!("cannot read the become password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The inventory (`-i`, `ARPANET_INVENTORY` or the project file) and its
/// variables over the product's defaults, `~/.arpanetrc` and `-e`, for the
/// commands that read them without connecting.
fn load_scope(
    inventory: &[std::path::PathBuf],
    extra_vars: &[String],
) -> Result<(std::path::PathBuf, std::sync::Arc<Inventory>, Scope)> {
    load_scope_resolved(inventory, extra_vars, &[])
}

/// [`load_scope`] with `arpanet_ip` set to `resolved`'s address for each
/// host named there (see `cluster::address::resolve`).
fn load_scope_resolved(
    inventory: &[std::path::PathBuf],
    extra_vars: &[String],
    resolved: &[(String, String)],
) -> Result<(std::path::PathBuf, std::sync::Arc<Inventory>, Scope)> {
    let paths = crate::project::inventory(inventory)?;
    let mut inventory = Inventory::load_all(&paths)?;
    for (host, ip) in resolved {
        inventory.set_host_var(host, "arpanet_ip", ip.as_str().into());
    }
    let inventory = std::sync::Arc::new(inventory);
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    let path = paths.into_iter().next().unwrap_or_default();
    let scope = Scope::load(
        inventory.clone(),
        crate::cluster::builtin::BUILTINS.defaults,
        crate::config::rc_file().as_deref(),
        extra_vars,
    )?;
    Ok((path, inventory, scope))
}

fn output_format(format: OutputArg) -> OutputFormat {
    match format {
        OutputArg::Human => OutputFormat::Human,
        OutputArg::Json => OutputFormat::Json,
    }
}

/// `--task-timeout`, 0 being no limit.
fn task_timeout(seconds: u64) -> Option<std::time::Duration> {
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

/// Ask on a terminal before doing `what`; refuse without one (`--yes`
/// skips the question).
fn confirm(what: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let refused = |message: String| {
        crate::error::Error::usage(message).with_hint("run again with `--yes` to go ahead")
    };
    if !std::io::stdin().is_terminal() {
        return Err(refused(format!(
            "{what}; not going ahead without a terminal to confirm on"
        )));
    }
    eprint!("{what}. Type `yes` to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| crate::error::Error::Internal(format!("cannot read the answer: {e}")))?;
    if answer.trim() != "yes" {
        return Err(refused(format!("{what}; not confirmed, nothing was done")));
    }
    Ok(())
}

/// Run a built-in `playbook` that changes the cluster (`rollback`,
/// `rotate`), holding the cluster's lock (a `--check` run only looks at
/// it), then drop what `cluster_secrets` made for `--check`.
fn run_changing(
    connect: &ConnectOptions,
    args: &ConnectArgs,
    settings: crate::config::Settings,
    playbook: crate::playbook::Playbook,
) -> Result<crate::report::Finished> {
    let mode = crate::cluster::lock::Mode::changing(settings.check);
    let verbose = args.verbose > 0;
    let result = crate::runner::run_playbooks(
        connect,
        output(args),
        settings,
        &[playbook],
        &|session, connector| crate::cluster::lock::for_run(session, connector, mode, verbose),
    );
    crate::cluster::secrets::discard_scratch();
    result
}

/// How a run is printed.
fn output(args: &ConnectArgs) -> Output {
    Output {
        format: output_format(args.output),
        verbose: args.verbose,
        group: false,
    }
}
