//! `arpanet restart SERVICE...`: a rolling restart of managed containers
//! through the built-in `restart` playbook, so it takes the roll every
//! change takes (nodes in batches of `roll_serial`, Consul servers one at a
//! time with the leader last, the gates before and after each), holding the
//! cluster lock as every changing run does. The names are checked against
//! the inventory's before any host is contacted.

use super::connect_options;
use crate::cli::RestartArgs;
use crate::cluster::{self, deployed, logs};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::playbook;
use crate::session::Session;

/// The variable naming the containers for `playbooks/restart.yml`.
const SERVICES_VAR: &str = "restart_services";

/// The name that restarts the Docker daemon rather than a container.
const DOCKER: &str = "docker";

pub(crate) fn run(args: RestartArgs) -> Result<i32> {
    let mut connect = connect_options(&args.connect)?;
    let services = unique(&args.services);
    check_names(&connect, &services)?;
    // The tasks run with the deployed record's values, as `upgrade` does.
    let before = deployed::read_for_run(&connect)?;
    connect.provided = before.layer();
    let named = serde_json::json!({ SERVICES_VAR: services }).to_string();
    connect.extra_vars.insert(0, named);
    let restart = playbook::resolve("restart", cluster::builtin::BUILTINS)?;
    let settings = Settings {
        forks: connect.forks,
        limit: args.connect.limit.clone(),
        task_timeout: super::task_timeout(args.task_timeout),
        show_output: args.connect.verbose > 1,
        verbose: args.connect.verbose,
        ..Settings::default()
    };
    let result = super::run_changing(&connect, &args.connect, settings, restart);
    Ok(result?.code)
}

fn unique(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// Every name must be a container the selected hosts' variables say
/// arpanet manages (Consul's agent, a `stack` entry), or the daemon.
fn check_names(connect: &crate::config::ConnectOptions, services: &[String]) -> Result<()> {
    let session = Session::open(connect)?;
    crate::cluster::settings::check(&session)?;
    let mut known: Vec<String> = vec![DOCKER.to_owned()];
    for host in session.hosts("all")? {
        for name in logs::declared(&host) {
            if !known.contains(&name) {
                known.push(name);
            }
        }
    }
    for name in services {
        if !known.contains(name) {
            let hint = crate::suggest::did_you_mean(name, known.iter().map(String::as_str))
                .unwrap_or_else(|| {
                    let all: Vec<String> = known.iter().map(|n| format!("`{n}`")).collect();
                    format!("the managed containers are {}", all.join(", "))
                });
            return Err(
                Error::usage(format!("no managed container is called `{name}`")).with_hint(hint),
            );
        }
    }
    Ok(())
}
