//! `arpanet rotate`: a new Consul gossip key for the running cluster (the
//! built-in `rotate` playbook: Consul's keyring install, use, remove
//! through one agent, then each node's copy; no agent restarts);
//! `--tls`, a new Consul CA and certificates in three rolled phases
//! (`rotate-tls`, see `cluster::ca_rotation`); `--certs`, new certificates
//! from the same CA in one roll (`rotate-certs`); `--tokens`, new Consul
//! ACL tokens (management and agents', `rotate-tokens`, see
//! `cluster::acl`); `--docker-tls`, a new CA for Docker's TLS API and
//! new certificates, in one roll of Docker restarts (`rotate-docker-tls`).
//! Each changes what every
//! node trusts or shows, so it asks first (`--yes` without a terminal)
//! and holds the cluster lock as every changing run does.

use super::connect_options;
use crate::cli::RotateArgs;
use crate::cluster::{self, deployed};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::playbook;

pub(crate) fn run(args: RotateArgs) -> Result<i32> {
    let (playbook, what, gives) = match (args.tls, args.certs) {
        _ if args.docker_tls => (
            DOCKER_TLS,
            "`rotate --docker-tls` replaces the CA of Docker's TLS API and the certificates of \
             every node where it is open and of this checkout's client, restarting Docker once \
             on each such node (and so its containers), one batch at a time; Docker API clients \
             then need the new `ca.pem`, `cert.pem` and `key.pem`, and other checkouts must copy \
             `docker-tls/` from this one",
            "a new Docker CA",
        ),
        _ if args.tokens => (
            "rotate-tokens",
            "`rotate --tokens` replaces Consul's management token and every agent's ACL token \
             (the old ones are deleted), restarting each server once, one at a time; other \
             checkouts must then copy `consul-tls/` from this one",
            "new ACL tokens",
        ),
        (true, _) => (
            "rotate-tls",
            "`rotate --tls` replaces the cluster's consul CA and every agent's certificate, \
             restarting each agent three times, one at a time; other checkouts must then copy \
             `consul-tls/` from this one",
            "a new CA",
        ),
        (false, true) => (
            "rotate-certs",
            "`rotate --certs` gives every agent a new certificate, restarting each agent once, \
             one at a time; other checkouts must then copy `consul-tls/hosts/` from this one \
             (or remove theirs to adopt them)",
            "new certificates",
        ),
        (false, false) => (
            "rotate",
            "`rotate` replaces the cluster's gossip key on every node; other checkouts must then \
             copy the new `gossip.key` from this one",
            "a new gossip key",
        ),
    };
    if args.connect.limit.is_some() {
        return Err(Error::usage(format!(
            "`rotate` gives the whole cluster {gives}: `--limit` is refused"
        ))
        .with_hint("every member must trust what the others use, or it is cut off from them"));
    }
    if !args.check && !args.yes {
        super::confirm(what)?;
    }
    let mut connect = connect_options(&args.connect)?;
    // The agents restart advertising each node's `arpanet_ip`.
    connect.resolved_ips = cluster::address::resolve(&connect, true)?;
    // The agents' tasks run as deployed: the record's images and settings.
    let before = deployed::read_for_run(&connect)?;
    connect.provided = before.layer();
    let rotate = playbook::resolve(playbook, cluster::builtin::BUILTINS)?;
    let settings = Settings {
        forks: connect.forks,
        task_timeout: super::task_timeout(args.task_timeout),
        check: args.check,
        show_output: args.connect.verbose > 1,
        verbose: args.connect.verbose,
        ..Settings::default()
    };
    let result = super::run_changing(&connect, &args.connect, settings, rotate)?;
    if playbook == DOCKER_TLS && !args.check {
        finish_docker_tls(&connect, result.code)?;
    }
    Ok(result.code)
}

/// The playbook of `rotate --docker-tls`.
const DOCKER_TLS: &str = "rotate-docker-tls";

/// After `rotate --docker-tls`: when every node took the new CA (the run
/// ended with no host failed or unreachable), the old CA is forgotten;
/// until then this checkout accepts a node still holding it, and the next
/// run carries on with the same new CA.
fn finish_docker_tls(connect: &crate::config::ConnectOptions, code: i32) -> Result<()> {
    let session = crate::session::Session::open(connect)?;
    let Some(dir) = session
        .hosts("all")?
        .into_iter()
        .find_map(|h| h.vars.get("docker_tls_dir")?.as_str().map(str::to_owned))
    else {
        return Ok(());
    };
    let dir = std::path::Path::new(&dir);
    if code != 0 {
        if cluster::ca_rotation::phase(dir)?.is_some() {
            eprintln!(
                "the Docker CA rotation is not finished: nodes not reached keep the old CA; \
                 run `arpanet rotate --docker-tls` again once they answer"
            );
        }
        return Ok(());
    }
    if let Some(done) = cluster::ca_rotation::step(dir, cluster::ca_rotation::Step::Finish, false)?
    {
        eprintln!("every node has the new Docker CA: {done}");
    }
    Ok(())
}
