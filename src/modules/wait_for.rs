//! `wait_for`: wait until a TCP port answers (or stops answering), or a file
//! appears, as seen from the host. Ports are probed by opening a forwarded
//! channel over the existing SSH connection, so the host needs no `nc` or
//! bash-only tricks.

use std::time::{Duration, Instant};

use super::{Context, Outcome};
use crate::error::{Error, Result};
use crate::playbook::{PortState, WaitForArgs};
use crate::transport::quote;

const POLL: Duration = Duration::from_millis(250);

pub async fn run(args: &WaitForArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let host = ctx.render(&args.host)?;
    let port = match ctx.render_opt(args.port.as_ref())? {
        Some(p) => Some(p.trim().parse::<u16>().map_err(|_| {
            Error::input(
                ctx.location.clone(),
                format!("`port` must be a number from 1 to 65535, got `{p}`"),
            )
        })?),
        None => None,
    };
    let path = ctx.render_opt(args.path.as_ref())?;
    if port.is_none() && path.is_none() {
        return Err(Error::input(
            ctx.location.clone(),
            "`wait_for` needs a `port` or a `path`",
        ));
    }
    if ctx.check {
        return Ok(Outcome::skipped("wait_for does not wait in check mode"));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.delay.max(0.0))).await;
    let want_up = args.state == PortState::Started;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.max(0.0));
    loop {
        let up = match (port, &path) {
            (Some(port), _) => probe(ctx, &host, port).await?,
            (None, Some(path)) => ctx
                .exec(&format!("test -e {}", quote(path)), None)
                .await?
                .success(),
            (None, None) => unreachable!("checked above"),
        };
        if up == want_up {
            return Ok(Outcome::ok());
        }
        if Instant::now() >= deadline {
            let what = match (port, &path) {
                (Some(port), _) => format!("port {host}:{port}"),
                (None, Some(path)) => format!("`{path}`"),
                (None, None) => unreachable!(),
            };
            let state = if want_up {
                "to answer"
            } else {
                "to stop answering"
            };
            return Ok(Outcome::fail(format!(
                "timed out after {}s waiting for {what} {state}",
                args.timeout
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// True when a channel to `host:port` opens and stays open; the SSH
/// connection itself failing is passed up.
async fn probe(ctx: &Context<'_>, host: &str, port: u16) -> Result<bool> {
    match ctx.transport.forward(host, port).await {
        Ok(_stream) => Ok(true),
        Err(err @ Error::Unreachable { .. }) => Err(err),
        Err(_) => Ok(false),
    }
}
