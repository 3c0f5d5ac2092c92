//! Host patterns for `--limit` and a play's `hosts:`, as Ansible's
//! inventory manager reads them.
//!
//! Splitting: a pattern with a comma is split on commas only; one without
//! is a single term if it reads as one address (so `2001:db8::1`,
//! `host:22` and `web[1:3]` stay whole), otherwise split on `:` and
//! whitespace outside `[…]`. A term is a group or host name, `all`, a glob
//! (`*`, `?`, `[abc]`, `[!a-c]`) or `~REGEX` (matched from the start of the
//! name), optionally prefixed by `&` (intersect) or `!` (exclude), and a
//! term that is not a regex may end in a subscript picking from its hosts:
//! `servers[0]`, `servers[-1]`, `servers[1:2]` (inclusive), `servers[1:]`,
//! and the old `servers[1-2]`. `@FILE` stands for the lines of a file (a
//! retry file: host names, one per line).
//!
//! A term matches the groups it names (all their hosts, in the group's
//! order) and, when no group matched or it is a glob, regex or contains a
//! `.`, the hosts it names. A term that is exactly a host name is that host,
//! even when a group has the same name.
//!
//! Like Ansible, terms are not applied strictly left to right: first the
//! plain terms are united, in the order given, then every `&term`
//! intersects, then every `!term` excludes; with only `&`/`!` terms the
//! start is `all`. So `!node3:servers` is `servers` without `node3`. Hosts
//! come out in that order (`web:db` is web's hosts, then db's). A pattern
//! that selects no host is an error (Ansible warns and runs nothing).

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
    let mut terms = Vec::new();
    for t in split(pattern) {
        match t.strip_prefix('@') {
            Some(file) => terms.extend(limit_file(file)?),
            None => terms.push(t),
        }
    }
    if terms.is_empty() {
        return Err(Error::from(UsageKind::EmptyPattern {
            pattern: pattern.into(),
        }));
    }
    let mut plain = Vec::new();
    let mut and = Vec::new();
    let mut not = Vec::new();
    for t in &terms {
        match t.as_bytes()[0] {
            b'&' => and.push(t.as_str()),
            b'!' => not.push(t.as_str()),
            _ => plain.push(t.as_str()),
        }
    }
    if plain.is_empty() {
        plain.push("all");
    }
    let mut selected: Vec<String> = Vec::new();
    let mut have: HashSet<String> = HashSet::new();
    let mut missed: Vec<&str> = Vec::new();
    for t in plain.iter().chain(&and).chain(&not) {
        if inv.host(t).is_some() {
            if have.insert((*t).to_owned()) {
                selected.push((*t).to_owned());
            }
            continue;
        }
        let hosts = matches(inv, t, pattern)?;
        match t.as_bytes()[0] {
            b'!' => {
                let out: HashSet<&String> = hosts.iter().collect();
                selected.retain(|h| !out.contains(h));
            }
            b'&' => {
                let keep: HashSet<&String> = hosts.iter().collect();
                selected.retain(|h| keep.contains(h));
            }
            _ => {
                if hosts.is_empty() {
                    missed.push(t);
                }
                for h in hosts {
                    if have.insert(h.clone()) {
                        selected.push(h);
                    }
                }
            }
        }
        have = selected.iter().cloned().collect();
    }
    if selected.is_empty() {
        return Err(no_match(inv, pattern, &missed));
    }
    Ok(selected)
}

/// Refuse a `--limit` with a plain name (no glob, regex or subscript)
/// that is no host or group: where other terms select hosts, it would
/// drop out unseen, and an exclusion with a typo (`all:!nod1`) would run
/// on the very host it meant to spare.
pub(super) fn check_limit(inv: &Inventory, limit: &str) -> Result<()> {
    let terms = split(limit);
    if let [only] = terms.as_slice() {
        if !only.starts_with(['!', '&']) {
            // alone, it selects nothing: `select` says so, listing the groups
            return Ok(());
        }
    }
    for term in terms {
        if term.starts_with('@') {
            continue;
        }
        let name = term.trim_start_matches(['&', '!']);
        if name.is_empty() || name.contains(['*', '?', '[', '~']) || name == "all" {
            continue;
        }
        if inv.host(name).is_some() || inv.groups.iter().any(|g| g.name == name) {
            continue;
        }
        let names = inv
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .chain(inv.hosts.iter().map(|h| h.name.as_str()));
        return Err(Error::from(UsageKind::UnknownLimitName {
            name: name.into(),
            limit: limit.into(),
            suggestion: suggest(name, names).map(str::to_owned),
        }));
    }
    Ok(())
}

/// The terms of a `@FILE` limit: its lines, trimmed, blank ones skipped.
fn limit_file(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::from(UsageKind::LimitFile {
            path: path.into(),
            message: e.to_string(),
        })
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
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

/// Split a pattern into terms as Ansible's `split_host_pattern` does.
fn split(pattern: &str) -> Vec<String> {
    let terms: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_owned).collect()
    } else if super::is_host_address(pattern.trim()) {
        vec![pattern.to_owned()]
    } else {
        // runs of characters other than whitespace, `:`, `[` and `]`, or
        // complete `[…]` groups
        let chars: Vec<char> = pattern.chars().collect();
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '[' {
                if let Some(close) = chars[i + 1..].iter().position(|&c| c == ']') {
                    cur.extend(&chars[i..=i + 1 + close]);
                    i += close + 2;
                    continue;
                }
            }
            if c.is_whitespace() || matches!(c, ':' | '[' | ']') {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
            i += 1;
        }
        out.push(cur);
        out
    };
    terms
        .into_iter()
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

/// `servers[0]` → (`servers`, Index(0)). As in Ansible, a trailing `[N]`,
/// `[N:M]`, `[N:]` or `[N-M]` is always a subscript; other brackets
/// (`node[!2]`, `node[ab]`) stay in the name as glob character classes.
fn split_subscript(term: &str) -> (&str, Option<Subscript>) {
    if term.starts_with('~') {
        return (term, None);
    }
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
    if let Some(sep) = inner.find([':', '-']).filter(|&i| i > 0) {
        let (a, b) = (&inner[..sep], &inner[sep + 1..]);
        if number(a) && (b.is_empty() || number(b)) {
            let start = a.parse().unwrap_or(usize::MAX);
            let end = if b.is_empty() { None } else { b.parse().ok() };
            return (name, Some(Subscript::Range(start, end)));
        }
    }
    if number(inner.strip_prefix('-').unwrap_or(inner)) {
        if let Ok(i) = inner.parse() {
            return (name, Some(Subscript::Index(i)));
        }
    }
    (term, None)
}

/// How one term matches names.
enum Matcher {
    Exact,
    Glob,
    Regex(regex::Regex),
}

/// The hosts one term names, in the order Ansible enumerates them (matching
/// groups' hosts, then matching hosts), subscript applied. `&` and `!` are
/// ignored here.
fn matches(inv: &Inventory, term: &str, pattern: &str) -> Result<Vec<String>> {
    let term = term.strip_prefix(['&', '!']).unwrap_or(term);
    let (name, subscript) = split_subscript(term);
    let matcher = if let Some(re) = name.strip_prefix('~') {
        let re = regex::Regex::new(&format!("^(?:{re})")).map_err(|e| {
            Error::from(UsageKind::RegexPattern {
                term: term.into(),
                pattern: pattern.into(),
                message: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned(),
            })
        })?;
        Matcher::Regex(re)
    } else if name.contains(['*', '?', '[']) {
        Matcher::Glob
    } else {
        Matcher::Exact
    };
    let name_matches = |candidate: &str| match &matcher {
        Matcher::Exact => name == candidate,
        Matcher::Glob => glob_match(name, candidate),
        Matcher::Regex(re) => re.is_match(candidate),
    };
    let mut hosts: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut any_group = false;
    for g in inv.groups.iter().filter(|g| name_matches(&g.name)) {
        any_group = true;
        for h in inv.group_hosts(&g.name) {
            if seen.insert(h.clone()) {
                hosts.push(h);
            }
        }
    }
    let search_hosts = !any_group || !matches!(matcher, Matcher::Exact) || name.contains('.');
    if search_hosts {
        for h in inv.hosts.iter().filter(|h| name_matches(&h.name)) {
            if seen.insert(h.name.clone()) {
                hosts.push(h.name.clone());
            }
        }
    }
    if hosts.is_empty() {
        return Ok(hosts);
    }
    // Ansible refuses the whole pattern when a subscript is out of range
    let out_of_range = || no_match(inv, term, &[]);
    let len = hosts.len();
    let at = |i: i64| -> Result<Vec<String>> {
        let i = if i < 0 { len as i64 + i } else { i };
        usize::try_from(i)
            .ok()
            .and_then(|i| hosts.get(i).cloned())
            .map(|h| vec![h])
            .ok_or_else(out_of_range)
    };
    match subscript {
        None => Ok(hosts),
        Some(Subscript::Index(i)) => at(i),
        // Ansible treats an end of 0 as "no end": `[2:0]` is `[2]`
        Some(Subscript::Range(start, Some(0))) => at(start as i64),
        Some(Subscript::Range(start, end)) => {
            let end = end.unwrap_or(len - 1).saturating_add(1).min(len);
            Ok(if start >= end {
                Vec::new()
            } else {
                hosts[start..end].to_vec()
            })
        }
    }
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
        assert_eq!(split("a:b:c"), ["a", "b", "c"]);
        // with a comma, colons do not separate
        assert_eq!(split("a:b,c"), ["a:b", "c"]);
        assert_eq!(split("servers[0:1]:!x"), ["servers[0:1]", "!x"]);
        assert_eq!(split(" a , &b "), ["a", "&b"]);
        // one address stays whole: IPv6, host:port, ranges
        assert_eq!(split("2001:db8::1"), ["2001:db8::1"]);
        assert_eq!(split("web[1:3]"), ["web[1:3]"]);
        assert_eq!(split("web:22"), ["web:22"]);
        assert_eq!(split("~^(a|b)0[12]$"), ["~^(a|b)0[12]$"]);
        assert_eq!(split("pve*.lan:&proxmox"), ["pve*.lan", "&proxmox"]);
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
        assert_eq!(
            split_subscript("s[1-2]"),
            ("s", Some(Subscript::Range(1, Some(2))))
        );
        assert_eq!(split_subscript("~s[1]"), ("~s[1]", None));
    }
}
