//! What to type instead, when a command line fails to parse in a way we
//! recognise: the 2014 command names (`arpanet setup`, `arpanet
//! start:consul boot`) name the built-in playbook that does the job now:
//! clap's own tip (a similar subcommand: `status`) would mislead there.
//! (`arpanet consul members` without `--` parses; `command::consul` refuses
//! the lines whose arguments are also arpanet options.)

use clap::CommandFactory;

use crate::cli::Cli;

/// The error and hint for `args` (without the program name), if we know a
/// better one than clap's.
pub(crate) fn advice(args: &[String]) -> Option<(String, String)> {
    let command = Cli::command();
    // The first word that is not an option or its value (`-i X setup`).
    let run = command.find_subcommand("run")?;
    let (_, words) = split_options(run, args);
    let first = words.first()?;
    if command.find_subcommand(first).is_some() {
        return None;
    }
    let playbook = match first.as_str() {
        "start:consul" => Some("consul"),
        "start:stack" => Some("stack"),
        name => crate::cluster::builtin::BUILTINS
            .names
            .iter()
            .copied()
            .find(|n| *n == name),
    };
    let inventory = inventory_flag(args);
    playbook.map(|playbook| {
        (
            format!("`{first}` is not an arpanet command"),
            format!(
                "the built-in playbook `{playbook}` does that job: \
                 `arpanet run{inventory} {playbook}`"
            ),
        )
    })
}

/// ` -i INV` as the user gave it, nothing when the inventory is found
/// without it (`ARPANET_INVENTORY`, a project file), else ` -i INV`.
fn inventory_flag(args: &[String]) -> String {
    let given = args.iter().enumerate().find_map(|(i, a)| {
        if a == "-i" || a == "--inventory" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--inventory=")
                .or_else(|| a.strip_prefix("-i").filter(|v| !v.is_empty()))
                .map(str::to_owned)
        }
    });
    match given {
        Some(path) => format!(" -i {path}"),
        None if crate::project::inventory(&[]).is_ok() => String::new(),
        None => " -i INV".into(),
    }
}

/// `args` split into `command`'s own options (with their values) and the
/// rest, each in order.
fn split_options(command: &clap::Command, args: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        let arg = command.get_arguments().find(|a| {
            if let Some(long) = token.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                a.get_long() == Some(name)
            } else if let Some(short) = token.strip_prefix('-') {
                short.chars().next().is_some() && a.get_short() == short.chars().next()
            } else {
                false
            }
        });
        match arg {
            Some(arg) => {
                ours.push(token.clone());
                let inline = token.contains('=') || (!token.starts_with("--") && token.len() > 2);
                if arg.get_action().takes_values() && !inline {
                    ours.extend(tokens.next().cloned());
                }
            }
            None => theirs.push(token.clone()),
        }
    }
    (ours, theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advise(line: &str) -> Option<String> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        advice(&args).map(|(message, hint)| format!("{message} / {hint}"))
    }

    #[test]
    fn old_command_names_name_the_playbook_that_does_the_job() {
        let setup = advise("-i hosts.ini setup").unwrap();
        assert!(
            setup.contains("`arpanet run -i hosts.ini setup`"),
            "{setup}"
        );
        let boot = advise("start:consul boot --inventory=x.yml").unwrap();
        assert!(boot.contains("`arpanet run -i x.yml consul`"), "{boot}");
        let stack = advise("start:stack -ilab.ini").unwrap();
        assert!(stack.contains("`arpanet run -i lab.ini stack`"), "{stack}");
        assert!(advise("pull").unwrap().contains(" pull`"));
        assert!(advise("info").unwrap().contains(" info`"));
        assert_eq!(advise("run -i x setup"), None);
        assert_eq!(advise("statsu"), None);
    }
}
