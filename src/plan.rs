//! Pure decisions about a run, made before any host is contacted: which
//! hosts a play targets, how they split into `serial` batches, which tasks
//! the tag filters keep. No I/O, so all of it is unit-tested.

use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::playbook::{Playbook, Serial};

/// Hosts a play targets: its `hosts:` pattern, narrowed by `--limit`.
/// A pattern that matches nothing yields no hosts (the caller warns).
pub fn play_hosts(
    inventory: &Inventory,
    pattern: &str,
    limit: Option<&str>,
) -> Result<Vec<String>> {
    let Ok(hosts) = inventory.select(pattern) else {
        return Ok(Vec::new());
    };
    match limit {
        None => Ok(hosts),
        Some(limit) => {
            let allowed: std::collections::HashSet<String> =
                inventory.select(limit)?.into_iter().collect();
            Ok(hosts.into_iter().filter(|h| allowed.contains(h)).collect())
        }
    }
}

/// Split hosts into consecutive `serial` batches, as Ansible does: each
/// size in turn, the last one repeating; a percentage is of all the play's
/// hosts, rounded down but at least one; a size of 0 (or no `serial`) takes
/// every host left.
pub fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    let mut batches = Vec::new();
    let mut rest = hosts;
    let mut sizes = serial.iter();
    let mut size = 0;
    while !rest.is_empty() {
        if let Some(next) = sizes.next() {
            size = match next {
                Serial::Count(n) => *n,
                Serial::Percent(p) => ((hosts.len() as f64 * p / 100.0) as usize).max(1),
                // The executor renders templates before it asks for batches.
                Serial::Template(_) => 0,
            };
        }
        let take = if size == 0 {
            rest.len()
        } else {
            size.min(rest.len())
        };
        let (batch, left) = rest.split_at(take);
        batches.push(batch.to_vec());
        rest = left;
    }
    batches
}

/// Whether a task with `task_tags` runs under `--tags` / `--skip-tags`,
/// with Ansible's special tags: `always` runs unless skipped by name,
/// `never` only when asked for by name.
pub fn tags_allow(task_tags: &[String], only: &[String], skip: &[String]) -> bool {
    let has = |t: &str| task_tags.iter().any(|x| x == t);
    if task_tags.iter().any(|t| skip.contains(t))
        || skip.iter().any(|s| s == "all") && !has("always")
    {
        return false;
    }
    if has("always") {
        return true;
    }
    if has("never")
        && !task_tags.iter().any(|t| t != "never" && only.contains(t))
        && !only.iter().any(|t| t == "never")
    {
        return false;
    }
    if only.is_empty() || only.iter().any(|t| t == "all") {
        return true;
    }
    if only.iter().any(|t| t == "tagged") && !task_tags.is_empty() {
        return true;
    }
    if only.iter().any(|t| t == "untagged") && task_tags.is_empty() {
        return true;
    }
    task_tags.iter().any(|t| only.contains(t))
}

/// Whether the task `name` is where `--start-at-task PATTERN` starts: the
/// same name, or a match of it as a shell glob (`*`, `?`, `[...]`), as
/// Ansible's `fnmatch`.
pub fn start_matches(name: &str, pattern: &str) -> bool {
    if name == pattern {
        return true;
    }
    let mut re = String::from("^(?s:");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let class: String = chars.by_ref().take_while(|c| *c != ']').collect();
                let class = match class.strip_prefix('!') {
                    Some(rest) => format!("^{rest}"),
                    None => class,
                };
                re.push('[');
                re.push_str(&class.replace('\\', "\\\\"));
                re.push(']');
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push_str(")$");
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(name))
}

/// `--start-at-task PATTERN` must name a task of the run (checked before
/// any host is contacted, where Ansible only says so at the end).
pub fn check_start_at_task(playbooks: &[Playbook], pattern: &str) -> Result<()> {
    let names: Vec<&str> = playbooks
        .iter()
        .flat_map(|p| &p.plays)
        .flat_map(|p| p.task_list())
        .map(|t| t.name.as_str())
        .collect();
    if names.iter().any(|n| start_matches(n, pattern)) {
        return Ok(());
    }
    let err = Error::usage(format!("no task matches `--start-at-task` `{pattern}`"));
    Err(
        match crate::suggest::closest(pattern, names.iter().copied()) {
            Some(near) => err.with_hint(format!("did you mean `{near}`?")),
            None => err.with_hint("`--list-tasks` shows the tasks of the run"),
        },
    )
}

/// True when the hosts of a batch that failed (not unreachable, not under
/// `ignore_errors`) are more than `max_fail_percentage` of the batch: the
/// check Ansible makes after every task and handler, in its arithmetic.
pub fn over_failure_budget(failed: usize, batch: usize, max_fail_percentage: Option<f64>) -> bool {
    match max_fail_percentage {
        Some(max) if batch > 0 => failed as f64 / batch as f64 > max / 100.0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn serial_batches_by_count_percent_and_list() {
        use Serial::{Count, Percent};
        let sizes = |n: usize, s: &[Serial]| {
            batches(&names(n), s)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(batches(&names(5), &[]), vec![names(5)]);
        assert_eq!(batches(&names(3), &[Count(1)])[1], ["h2"]);
        assert_eq!(sizes(5, &[Count(2)]), [2, 2, 1]);
        assert_eq!(sizes(5, &[Count(0)]), [5]);
        assert_eq!(sizes(5, &[Percent(40.0)]), [2, 2, 1]);
        assert_eq!(sizes(5, &[Percent(10.0)]), [1, 1, 1, 1, 1]);
        assert_eq!(sizes(5, &[Count(9)]), [5]);
        // percentages are of every host of the play, the last size repeats
        assert_eq!(
            sizes(10, &[Count(1), Count(3), Percent(50.0)]),
            [1, 3, 5, 1]
        );
        assert_eq!(sizes(9, &[Count(1), Count(2)]), [1, 2, 2, 2, 2]);
        assert_eq!(sizes(6, &[Count(1), Count(0)]), [1, 5]);
        assert!(batches(&[], &[Count(1)]).is_empty());
    }

    #[test]
    fn tag_filters_follow_ansible() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(tags_allow(&t(&[]), &[], &[]));
        assert!(tags_allow(&t(&["a"]), &t(&["a"]), &[]));
        assert!(!tags_allow(&t(&["b"]), &t(&["a"]), &[]));
        assert!(!tags_allow(&t(&[]), &t(&["a"]), &[]));
        assert!(!tags_allow(&t(&["a"]), &[], &t(&["a"])));
        assert!(tags_allow(&t(&["always"]), &t(&["a"]), &[]));
        assert!(!tags_allow(&t(&["always"]), &[], &t(&["always"])));
        assert!(!tags_allow(&t(&["never", "debug"]), &[], &[]));
        assert!(tags_allow(&t(&["never", "debug"]), &t(&["debug"]), &[]));
        assert!(tags_allow(&t(&["x"]), &t(&["tagged"]), &[]));
        assert!(tags_allow(&t(&[]), &t(&["untagged"]), &[]));
    }

    #[test]
    fn start_at_task_takes_the_name_or_a_glob() {
        assert!(start_matches("write the motd", "write the motd"));
        assert!(start_matches("write the motd", "write*"));
        assert!(start_matches("db1 check", "db? check"));
        assert!(start_matches("db1 check", "db[0-9] check"));
        assert!(!start_matches("db1 check", "db[!0-9] check"));
        assert!(!start_matches("write the motd", "write"));
        assert!(!start_matches("a.b", "a?c"));
        assert!(
            start_matches("a(b)", "a(b)"),
            "regex characters are literal"
        );
    }

    #[test]
    fn a_batch_is_over_budget_when_its_failures_pass_the_percentage() {
        assert!(!over_failure_budget(1, 4, Some(25.0)));
        assert!(over_failure_budget(2, 4, Some(25.0)));
        assert!(over_failure_budget(1, 4, Some(0.0)));
        assert!(!over_failure_budget(0, 4, Some(0.0)));
        assert!(!over_failure_budget(3, 10, Some(30.0)));
        assert!(!over_failure_budget(4, 4, Some(100.0)));
        assert!(!over_failure_budget(4, 4, None));
    }
}
