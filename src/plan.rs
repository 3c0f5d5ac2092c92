//! Pure decisions about a run, made before any host is contacted: which
//! hosts a play targets, how they split into `serial` batches, which tasks
//! the tag filters keep. No I/O, so all of it is unit-tested.

use crate::error::Result;
use crate::inventory::Inventory;
use crate::playbook::Serial;

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
            let allowed = inventory.select(limit)?;
            Ok(hosts.into_iter().filter(|h| allowed.contains(h)).collect())
        }
    }
}

/// Split hosts into consecutive batches of `serial` size; one batch when
/// unset. A percentage rounds down but never below one host.
pub fn batches(hosts: &[String], serial: Option<&Serial>) -> Vec<Vec<String>> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let size = match serial {
        None => hosts.len(),
        Some(Serial::Count(0)) => hosts.len(),
        Some(Serial::Count(n)) => *n,
        Some(Serial::Percent(p)) => ((hosts.len() as f64 * p / 100.0).floor() as usize).max(1),
    };
    hosts.chunks(size).map(<[String]>::to_vec).collect()
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

/// True when a batch's failures exceed `max_fail_percentage`, or, without
/// one, when every host of a batch failed (Ansible's rule).
pub fn batch_aborts(failed: usize, size: usize, max_fail_percentage: Option<f64>) -> bool {
    if size == 0 {
        return false;
    }
    match max_fail_percentage {
        Some(max) => failed as f64 * 100.0 / size as f64 > max,
        None => failed == size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn serial_batches_by_count_and_percent() {
        let hosts = names(5);
        assert_eq!(batches(&hosts, None), vec![hosts.clone()]);
        let sizes = |s| {
            batches(&hosts, Some(&s))
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(Serial::Count(2)), [2, 2, 1]);
        assert_eq!(sizes(Serial::Percent(40.0)), [2, 2, 1]);
        assert_eq!(sizes(Serial::Percent(10.0)), [1, 1, 1, 1, 1]);
        assert_eq!(sizes(Serial::Count(9)), [5]);
        assert!(batches(&[], Some(&Serial::Count(1))).is_empty());
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
    fn batches_abort_on_their_failure_share() {
        assert!(!batch_aborts(1, 4, Some(25.0)));
        assert!(batch_aborts(2, 4, Some(25.0)));
        assert!(batch_aborts(1, 4, Some(0.0)));
        assert!(!batch_aborts(3, 4, None));
        assert!(batch_aborts(4, 4, None));
    }
}
