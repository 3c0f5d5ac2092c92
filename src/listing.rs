//! What `--list-hosts`, `--list-tasks`, `--list-tags` and `--syntax-check`
//! print: the plays of each playbook, their hosts, tasks and tags, in
//! ansible-playbook's layout (`tests/fixtures/run_controls/` holds its
//! recorded output), so an operator's eye and scripts read both alike.
//! Pure: nothing is contacted.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::error::Result;
use crate::plan;
use crate::playbook::{default_name, Playbook, Step, Task};

/// Which lists to print; none of them is `--syntax-check`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Lists {
    pub hosts: bool,
    pub tasks: bool,
    pub tags: bool,
}

/// The tag filters, as `--tags` and `--skip-tags` gave them.
pub(crate) struct Filters<'a> {
    pub only: &'a [String],
    pub skip: &'a [String],
}

/// The listing of one playbook, named `name` as given on the command line;
/// `hosts` gives the hosts of a play's pattern (under `--limit`).
pub(crate) fn playbook(
    name: &str,
    playbook: &Playbook,
    hosts: &dyn Fn(&str) -> Result<Vec<String>>,
    lists: Lists,
    filters: &Filters<'_>,
) -> Result<String> {
    let mut out = String::new();
    display(&mut out, &format!("\nplaybook: {name}"));
    if !lists.hosts && !lists.tasks && !lists.tags {
        // `--syntax-check`: the playbook loaded, which is all it says.
        return Ok(out);
    }
    // As ansible-playbook: listing tags without a filter lists `never` too.
    let default_only = ["never".to_owned(), "all".to_owned()];
    let only = match lists.tags && filters.only.is_empty() && filters.skip.is_empty() {
        true => &default_only[..],
        false => filters.only,
    };
    for (n, play) in playbook.plays.iter().enumerate() {
        let play_tags: BTreeSet<&str> = play.tags.iter().map(String::as_str).collect();
        let mut msg = format!(
            "\n  play #{} ({}): {}\tTAGS: [{}]",
            n + 1,
            play.hosts,
            play.name,
            play_tags.iter().copied().collect::<Vec<_>>().join(",")
        );
        if lists.hosts {
            let hosts = hosts(&play.hosts)?;
            let _ = write!(
                msg,
                "\n    pattern: ['{}']\n    hosts ({}):",
                play.hosts,
                hosts.len()
            );
            for host in hosts {
                let _ = write!(msg, "\n      {host}");
            }
        }
        display(&mut out, &msg);
        if !lists.tasks && !lists.tags {
            continue;
        }
        let mut tasks = String::new();
        if lists.tasks {
            tasks.push_str("    tasks:\n");
        }
        let mut all_tags = BTreeSet::new();
        for task in play.sections().into_iter().flat_map(body_tasks) {
            let tags: BTreeSet<&str> = play_tags
                .iter()
                .copied()
                .chain(task.tags.iter().map(String::as_str))
                .collect();
            let owned: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            if !plan::tags_allow(&owned, only, filters.skip) {
                continue;
            }
            all_tags.extend(task.tags.iter().map(String::as_str));
            if lists.tasks {
                // An unnamed task shows as its module, as Ansible's do.
                let shown = match task.name == default_name(task.module.as_ref(), task.no_log) {
                    true => task.module.name(),
                    false => task.name.as_str(),
                };
                let tags: Vec<&str> = tags.into_iter().collect();
                let _ = writeln!(tasks, "      {shown}\tTAGS: [{}]", tags.join(", "));
            }
        }
        if lists.tags {
            let tags: BTreeSet<&str> = play_tags.union(&all_tags).copied().collect();
            let tags: Vec<&str> = tags.into_iter().collect();
            let _ = writeln!(tasks, "      TASK TAGS: [{}]", tags.join(", "));
        }
        display(&mut out, &tasks);
    }
    Ok(out)
}

/// The tasks ansible-playbook lists: each block's body, not its `rescue`
/// or `always`; an `include_tasks` as itself (its file is read at run time).
fn body_tasks(steps: &[Step]) -> Vec<&Task> {
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Task(task) => out.push(task),
            Step::Block(block) => out.extend(body_tasks(&block.body)),
        }
    }
    out
}

/// Ansible's `display.display`: the text, and a newline unless it ends
/// with one.
fn display(out: &mut String, text: &str) {
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
}
