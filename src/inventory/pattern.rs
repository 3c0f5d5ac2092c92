//! Host patterns for `--limit` and a play's `hosts:`, as Ansible reads them.
//!
//! A pattern is terms separated by `,` or `:` (colons inside `[…]` do not
//! separate). A term is a group or host name, `all`, or a glob (`*`, `?`,
//! `[abc]`, `[!a-c]`) matched against group names (all their hosts) and host
//! names; a name that is a group means the group, otherwise a host. A term may
//! end in a subscript picking from its hosts: `servers[0]`, `servers[-1]`,
//! `servers[1:2]` (inclusive), `servers[1:]`.
//!
//! Like Ansible, terms are not applied strictly left to right: first the
//! plain terms are united, then every `&term` intersects, then every `!term`
//! excludes; with only `&`/`!` terms the start is `all`. So
//! `!node3:servers` is `servers` without `node3`. The result is in inventory
//! order. Regex terms (`~…`) are not supported.

use std::collections::HashSet;

use super::{suggest, Inventory};
use crate::error::{Error, Result, UsageKind};

/// The longest pattern accepted: far beyond any host name (253), short
/// enough that globbing stays fast whatever the pattern.
const MAX_PATTERN: usize = 1024;

pub(super) fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>> {
    if pattern.len() > MAX_PATTERN {
        let start: String = pattern.chars().take(40).collect();
        return Err(Error::from(UsageKind::PatternTooLong {
            start,
            max: MAX_PATTERN,
        }));
    }
    let terms = split(pattern);
    if terms.is_empty() {
        return Err(Error::from(UsageKind::EmptyPattern {
            pattern: pattern.into(),
        }));
    }
    let mut plain = Vec::new();
    let mut and = Vec::new();
    let mut not = Vec::new();
    for t in &terms {
        if let Some(rest) = t.strip_prefix('&') {
            and.push(rest);
        } else if let Some(rest) = t.strip_prefix('!') {
            not.push(rest);
        } else {
            plain.push(t.as_str());
        }
    }
    if plain.is_empty() {
        plain.push("all");
    }
    let mut selected: HashSet<String> = HashSet::new();
    let mut missed: Vec<&str> = Vec::new();
    for t in &plain {
        let hosts = matches(inv, t, pattern)?;
        if hosts.is_empty() {
            missed.push(t);
        }
        selected.extend(hosts);
    }
    for t in &and {
        let hosts: HashSet<String> = matches(inv, t, pattern)?.into_iter().collect();
        selected.retain(|h| hosts.contains(h));
    }
    for t in &not {
        for h in matches(inv, t, pattern)? {
            selected.remove(&h);
        }
    }
    let out: Vec<String> = inv
        .hosts
        .iter()
        .filter(|h| selected.contains(&h.name))
        .map(|h| h.name.clone())
        .collect();
    if out.is_empty() {
        return Err(no_match(inv, pattern, &missed));
    }
    Ok(out)
}

fn no_match(inv: &Inventory, pattern: &str, missed: &[&str]) -> Error {
    let names = || {
        inv.groups
            .iter()
            .map(|g| g.name.as_str())
            .chain(inv.hosts.iter().map(|h| h.name.as_str()))
    };
    let suggestion = missed
        .iter()
        .find_map(|m| suggest(split_subscript(m).0, names()))
        .map(str::to_owned);
    let groups: Vec<String> = inv
        .groups
        .iter()
        .filter(|g| g.name != "ungrouped" || !g.hosts.is_empty())
        .take(8)
        .map(|g| g.name.clone())
        .collect();
    let more = inv.groups.len().saturating_sub(groups.len() + 1);
    Error::from(UsageKind::NoMatch {
        pattern: pattern.into(),
        suggestion,
        inventory: inv.source.display().to_string(),
        groups,
        more,
    })
}

/// Split on `,` and `:` outside brackets, trimming and dropping empty terms.
fn split(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in pattern.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' | ':' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

#[derive(Debug, PartialEq)]
enum Subscript {
    Index(i64),
    /// Inclusive; `None` end means to the last host.
    Range(usize, Option<usize>),
}

/// `servers[0]` → (`servers`, Index(0)). As in Ansible, a trailing `[N]` or
/// `[N:M]` is always a subscript; other brackets (`node[!2]`, `node[1-3]`)
/// stay in the name as glob character classes.
fn split_subscript(term: &str) -> (&str, Option<Subscript>) {
    let Some(body) = term.strip_suffix(']') else {
        return (term, None);
    };
    let Some(open) = body.rfind('[') else {
        return (term, None);
    };
    let (name, inner) = (&body[..open], &body[open + 1..]);
    if name.is_empty() {
        return (term, None);
    }
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((a, b)) = inner.split_once(':') {
        if number(a) && (b.is_empty() || number(b)) {
            let start = a.parse().unwrap_or(usize::MAX);
            let end = if b.is_empty() { None } else { b.parse().ok() };
            return (name, Some(Subscript::Range(start, end)));
        }
    } else if number(inner.strip_prefix('-').unwrap_or(inner)) {
        if let Ok(i) = inner.parse() {
            return (name, Some(Subscript::Index(i)));
        }
    }
    (term, None)
}

/// The hosts one term names, in the order Ansible enumerates them (matching
/// groups' hosts, then matching hosts), subscript applied.
fn matches(inv: &Inventory, term: &str, pattern: &str) -> Result<Vec<String>> {
    if term.starts_with('~') {
        return Err(Error::from(UsageKind::RegexPattern {
            term: term.into(),
            pattern: pattern.into(),
        }));
    }
    let (name, subscript) = split_subscript(term);
    let glob = name.contains(['*', '?', '[']);
    let name_matches = |candidate: &str| {
        if glob {
            glob_match(name, candidate)
        } else {
            name == candidate
        }
    };
    let mut hosts: Vec<String> = Vec::new();
    let push = |h: String, hosts: &mut Vec<String>| {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    let mut any_group = false;
    for g in inv.groups.iter().filter(|g| name_matches(&g.name)) {
        any_group = true;
        for h in inv.group_hosts(&g.name) {
            push(h, &mut hosts);
        }
    }
    if !any_group || glob {
        for h in inv.hosts.iter().filter(|h| name_matches(&h.name)) {
            push(h.name.clone(), &mut hosts);
        }
    }
    Ok(match subscript {
        None => hosts,
        Some(Subscript::Index(i)) => {
            let i = if i < 0 { hosts.len() as i64 + i } else { i };
            usize::try_from(i)
                .ok()
                .and_then(|i| hosts.get(i).cloned())
                .into_iter()
                .collect()
        }
        Some(Subscript::Range(start, end)) => {
            let end = end.unwrap_or(usize::MAX).min(hosts.len().saturating_sub(1));
            if start > end || start >= hosts.len() {
                Vec::new()
            } else {
                hosts[start..=end].to_vec()
            }
        }
    })
}

/// fnmatch-style glob: `*`, `?`, `[abc]`, `[a-z]`, `[!abc]`; case-sensitive.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts just after '['; returns (matched, length including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    // One pattern element at `p[pi..]` against `c`: whether it matches and
    // its length; `None` for `*`.
    let one = |p: &[char], c: char| -> Option<(bool, usize)> {
        match p[0] {
            '*' => None,
            '?' => Some((true, 1)),
            '[' => Some(match class(&p[1..], c) {
                Some((matched, len)) => (matched, 1 + len),
                // an unclosed `[` is a literal
                None => (c == '[', 1),
            }),
            other => Some((other == c, 1)),
        }
    };
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative, backtracking only to the last `*`: linear in practice and
    // never deep, whatever the pattern.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match one(&p[pi..], t[ti]) {
                None => {
                    star = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                Some((true, len)) => {
                    pi += len;
                    ti += 1;
                    continue;
                }
                Some((false, _)) => {}
            }
        }
        match star {
            Some((after, from)) => {
                pi = after;
                ti = from + 1;
                star = Some((after, from + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("web*", "web1"));
        assert!(glob_match("web*", "web"));
        assert!(!glob_match("web*", "db1"));
        assert!(glob_match("node?", "node4"));
        assert!(!glob_match("node?", "node10"));
        assert!(glob_match("node[12]", "node2"));
        assert!(!glob_match("node[12]", "node3"));
        assert!(glob_match("node[1-3]", "node3"));
        assert!(glob_match("node[!1-3]", "node4"));
        assert!(glob_match("*a*b", "xxaxxb") && !glob_match("*a*b", "xxaxxbx"));
        assert!(glob_match("n[0", "n[0") && glob_match("**", ""));
        // backtracking is bounded: this took exponential time before
        let name = "a".repeat(60);
        assert!(!glob_match(&format!("{}*b", "*a".repeat(30)), &name));
        assert!(glob_match("*", "anything.example.com"));
        assert!(glob_match("*.example.com", "a.example.com"));
    }

    #[test]
    fn splitting_keeps_brackets() {
        assert_eq!(split("a:b,c"), ["a", "b", "c"]);
        assert_eq!(split("servers[0:1]:!x"), ["servers[0:1]", "!x"]);
        assert_eq!(split(" a , :&b "), ["a", "&b"]);
    }

    #[test]
    fn subscripts() {
        assert_eq!(split_subscript("s[0]"), ("s", Some(Subscript::Index(0))));
        assert_eq!(split_subscript("s[-1]"), ("s", Some(Subscript::Index(-1))));
        assert_eq!(
            split_subscript("s[1:2]"),
            ("s", Some(Subscript::Range(1, Some(2))))
        );
        assert_eq!(
            split_subscript("s[1:]"),
            ("s", Some(Subscript::Range(1, None)))
        );
        assert_eq!(split_subscript("node[12]").1, Some(Subscript::Index(12)));
        assert_eq!(split_subscript("node[ab]"), ("node[ab]", None));
    }
}
