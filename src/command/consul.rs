//! `arpanet consul [--] ARGS`: the consul CLI in a node's container (see
//! `cluster::consul_exec`). Without `--`, an argument that is also an
//! arpanet option (`members -i inv`) is refused: whose it is cannot be told.

use clap::CommandFactory;

use super::{connect_options, output_format};
use crate::cli::{Cli, ConsulArgs};
use crate::cluster::consul_exec;
use crate::error::{Error, Result};

pub(crate) fn run(args: ConsulArgs) -> Result<i32> {
    let separated = std::env::args().skip(1).any(|a| a == "--");
    if !separated {
        if let Some(err) = ambiguous(&args.args) {
            return Err(err);
        }
    }
    consul_exec::consul_cli(
        &connect_options(&args.connect)?,
        &args.args,
        args.connect.verbose > 0,
        output_format(args.connect.output),
    )
}

/// The error for consul arguments given without `--` that hold an arpanet
/// option (`-i`, `--limit=x`, `-vv`; not consul's `-detailed`).
fn ambiguous(args: &[String]) -> Option<Error> {
    let command = Cli::command();
    let consul = command.find_subcommand("consul")?;
    let option = |token: &str| {
        consul.get_arguments().find(|a| {
            if let Some(long) = token.strip_prefix("--") {
                a.get_long() == Some(long.split('=').next().unwrap_or(long))
            } else if let Some(short) = token.strip_prefix('-') {
                let mut chars = short.chars();
                let first = chars.next();
                // `-v`, `-vv`: a short option alone or repeated.
                first.is_some() && chars.all(|c| Some(c) == first) && a.get_short() == first
            } else {
                false
            }
        })
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        match option(token) {
            Some(arg) => {
                ours.push(token.clone());
                if arg.get_action().takes_values() && !token.contains('=') {
                    ours.extend(tokens.next().cloned());
                }
            }
            None => theirs.push(token.clone()),
        }
    }
    let first = ours.first()?;
    Some(
        Error::usage(format!(
            "`{first}` among the consul CLI's arguments is also an arpanet option"
        ))
        .with_hint(format!(
            "put arpanet's options before the consul CLI's arguments, or the consul CLI's after \
             `--`: `arpanet consul {} -- {}` (or `arpanet consul -- {}` to pass them all to consul)",
            ours.join(" "),
            theirs.join(" "),
            args.join(" ")
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn consul_arguments_that_are_arpanet_options_are_refused_with_both_forms() {
        assert!(ambiguous(&words("members -detailed")).is_none());
        assert!(ambiguous(&words("kv get -recurse x")).is_none());
        let err = ambiguous(&words("members -i inv.ini -vv"))
            .unwrap()
            .to_string();
        assert!(
            err.contains("`-i` among the consul CLI's arguments"),
            "{err}"
        );
        assert!(
            err.contains("`arpanet consul -i inv.ini -vv -- members`"),
            "{err}"
        );
        assert!(
            err.contains("`arpanet consul -- members -i inv.ini -vv`"),
            "{err}"
        );
        let err = ambiguous(&words("members --limit=node2"))
            .unwrap()
            .to_string();
        assert!(
            err.contains("`arpanet consul --limit=node2 -- members`"),
            "{err}"
        );
    }
}
