//! `arpanet status`: one table over the cluster (see `cluster::status`),
//! once or `--watch`ed; `arpanet details`: each node's managed containers
//! (see `cluster::details`); `arpanet services`: Consul's services (see
//! `cluster::catalog`).

use super::{connect_options, output_format};
use crate::cli::{DetailsArgs, ServicesArgs, StatusArgs};
use crate::cluster;
use crate::error::{Error, Result};

pub(crate) fn run(args: StatusArgs) -> Result<i32> {
    let watch = match args.watch {
        false => None,
        true => Some(cluster::status::Watch {
            interval: interval(args.interval)?,
        }),
    };
    cluster::status::status(
        &connect_options(&args.connect)?,
        output_format(args.connect.output),
        args.connect.verbose > 0,
        watch,
    )
}

/// `--interval`: at least 0.5 s (each look connects to every node), at
/// most a day.
fn interval(seconds: f64) -> Result<std::time::Duration> {
    if !(0.5..=86_400.0).contains(&seconds) {
        return Err(
            Error::usage(format!("`--interval {seconds}` is out of range"))
                .with_hint("give seconds between 0.5 and 86400 (default 2)"),
        );
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

pub(crate) fn details(args: DetailsArgs) -> Result<i32> {
    cluster::details::details(
        &connect_options(&args.connect)?,
        output_format(args.connect.output),
    )
}

pub(crate) fn services(args: ServicesArgs) -> Result<i32> {
    cluster::catalog::services(
        &connect_options(&args.connect)?,
        output_format(args.connect.output),
        args.connect.verbose > 0,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_watch_interval_is_bounded() {
        assert_eq!(
            super::interval(2.0).unwrap(),
            std::time::Duration::from_secs(2)
        );
        for bad in [0.0, 0.1, -1.0, 1e9, f64::NAN] {
            let err = super::interval(bad).unwrap_err().to_string();
            assert!(err.contains("`--interval"), "{err}");
        }
    }
}
