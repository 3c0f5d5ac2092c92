//! The INI inventory dialect, as Ansible's `ini` plugin reads it.
//!
//! - `[group]` starts a list of host lines; hosts before any section are
//!   ungrouped. A host line is `NAME[:PORT] [key=value ...]`; `NAME` may hold
//!   ranges (`node[1:3]`, `node[01:10]`, `db-[a:c]`), be an IPv6 address
//!   (`2001:db8::1`, or `[2001:db8::1]:2222` with a port), and `:PORT`
//!   becomes `ansible_port`.
//! - A host line is split like a POSIX shell line (Python's `shlex`): quotes
//!   group and are removed, `\` escapes, and `#` outside quotes ends the line
//!   even inside a word (`a=x#y` is `a=x`). Unlike Ansible, unquoted `[…]`
//!   and `{…}` also group, so `l=[1, 2]` is accepted rather than an error.
//! - `[group:vars]` holds `key=value` lines: the value is the rest of the
//!   line, comments included (`a=b # c` is `b # c`, as in Ansible);
//!   `[group:children]` holds group names. Any other suffix is an error, as
//!   are `[g:vars]` for a group never declared and `[p:children]` naming a
//!   group that no `[g]` or `[g:children]` section declares (both Ansible
//!   errors). `#` and `;` start comment lines.
//! - A key set twice on one host line or in one vars section, and a host
//!   listed twice in one group, are accepted as Ansible accepts them (the
//!   last value wins; the host keeps its first place), with a warning.
//!
//! Values, in host lines and `:vars` alike, are typed as Ansible types them:
//! Python's `ast.literal_eval` of the text (after the shell-like splitting
//! for host lines), the text itself when that fails (see `literal`). So
//! `port="22"` is the number 22 (the quotes belong to the line), `"'22'"`
//! the string, `devices="['/dev/sda']"` a list, `1.10` the float 1.1,
//! `True`/`None` a bool and null, while `yes`, `true` and `0644` stay text.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{
    expand_ranges, literal, located, parse_address, valid_group_name, Builder, ALL, UNGROUPED,
};
use crate::error::{InputKind, InputWarning, KeyValueIn, Result};
use crate::vars::{self, check_connection, Vars, Word};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Hosts,
    Vars,
    Children,
}

/// A group named before it was declared, to check at the end.
struct Pending {
    line: usize,
    column: usize,
    kind: InputKind,
}

pub(super) fn parse(b: &mut Builder, file: &Path, text: &str) -> Result<()> {
    let err = |line: usize, column: usize, kind: InputKind| located(file, text, line, column, kind);
    // Groups that exist, as Ansible counts them: from earlier sources, or
    // named by any section header so far.
    let mut known: HashSet<String> = b.groups.iter().map(|g| g.name.clone()).collect();
    // Groups declared by `[g]` or `[g:children]` (or an earlier source).
    let mut declared = known.clone();
    let mut pending: Vec<(String, Pending)> = Vec::new();
    let mut kind = Kind::Hosts;
    let mut group = UNGROUPED;
    // Keys set in the current vars section, with their line.
    let mut section_keys: HashMap<String, usize> = HashMap::new();

    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }

        if line.starts_with('[') && !bracketed_host(line) {
            let Some(close) = line.find(']') else {
                return Err(err(lineno, indent + 1, InputKind::UnclosedSection));
            };
            let rest = line[close + 1..].trim();
            if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with(';') {
                return Err(err(
                    lineno,
                    indent + line[..close + 1].chars().count() + 1,
                    InputKind::AfterSectionHeader { text: rest.into() },
                ));
            }
            let inner = &line[1..close];
            let (name, suffix) = match inner.split_once(':') {
                Some((n, s)) => (n, Some(s)),
                None => (inner, None),
            };
            if !valid_group_name(name) {
                let kind = InputKind::BadGroupName { name: name.into() };
                return Err(err(lineno, indent + 2, kind));
            }
            kind = match suffix {
                None | Some("hosts") => Kind::Hosts,
                Some("vars") => Kind::Vars,
                Some("children") => Kind::Children,
                Some(other) => {
                    return Err(err(
                        lineno,
                        indent + name.chars().count() + 3,
                        InputKind::UnknownSectionType {
                            suffix: other.into(),
                            section: inner.into(),
                            group: name.into(),
                        },
                    ))
                }
            };
            group = b.group(name);
            section_keys.clear();
            if kind == Kind::Vars {
                if !known.contains(name) {
                    pending.push((
                        name.to_owned(),
                        Pending {
                            line: lineno,
                            column: indent + 2,
                            kind: InputKind::VarsOfUndeclaredGroup { group: name.into() },
                        },
                    ));
                }
            } else {
                declared.insert(name.to_owned());
            }
            known.insert(name.to_owned());
            continue;
        }

        match kind {
            Kind::Hosts => {
                let words = shell_words(raw).map_err(|(col, kind)| err(lineno, col, kind))?;
                let Some((first, rest)) = words.split_first() else {
                    continue;
                };
                if first.text.contains('=') {
                    let kind = InputKind::VariableNotHost {
                        variable: first.text.clone(),
                        group: b.groups[group].name.clone(),
                    };
                    return Err(err(lineno, first.column, kind));
                }
                let (entry, port) =
                    parse_address(&first.text).map_err(|kind| err(lineno, first.column, kind))?;
                if port.is_none() && entry.ends_with(':') {
                    let kind = InputKind::HostEndsInColon { name: entry.into() };
                    return Err(err(lineno, first.column, kind));
                }
                let names = expand_ranges(entry).map_err(|(kind, at)| {
                    err(lineno, first.column + entry[..at].chars().count(), kind)
                })?;
                if let Some(bad) = names
                    .iter()
                    .find(|n| n.is_empty() || n.contains([',', '=']))
                {
                    let kind = InputKind::BadHostName { name: bad.clone() };
                    return Err(err(lineno, first.column, kind));
                }
                let mut line_vars = Vars::new();
                if let Some(port) = port {
                    line_vars.insert("ansible_port".into(), port.into());
                }
                for w in rest {
                    let Some((key, value)) = w.text.split_once('=') else {
                        let kind = InputKind::NotKeyValue {
                            found: w.text.clone(),
                            within: KeyValueIn::HostLine,
                        };
                        return Err(err(lineno, w.column, kind));
                    };
                    if key.is_empty() || key.contains(char::is_whitespace) {
                        let kind = InputKind::BadVariableName {
                            name: key.into(),
                            within: KeyValueIn::HostLine,
                        };
                        return Err(err(lineno, w.column, kind));
                    }
                    let value = literal::eval(value);
                    check_connection(key, &value).map_err(|kind| err(lineno, w.column, kind))?;
                    if line_vars.insert(key.to_owned(), value).is_some() && key != "ansible_port" {
                        b.warn(file, lineno, InputWarning::SetTwice { key: key.into() });
                    }
                }
                vars::add_aliases(&mut line_vars);
                for name in names {
                    if !b.add_host(group, &name) {
                        let warning = InputWarning::HostListedTwice {
                            host: name.clone(),
                            group: b.groups[group].name.clone(),
                        };
                        b.warn(file, lineno, warning);
                    }
                    let h = b.host(&name);
                    vars::merge(&mut b.hosts[h].vars, &line_vars);
                }
            }
            Kind::Vars => {
                let Some((key, value)) = line.split_once('=') else {
                    let kind = InputKind::NotKeyValue {
                        found: line.into(),
                        within: KeyValueIn::VarsSection,
                    };
                    return Err(err(lineno, indent + 1, kind));
                };
                let key = key.trim();
                if key.is_empty() || key.contains(char::is_whitespace) {
                    let kind = InputKind::BadVariableName {
                        name: key.into(),
                        within: KeyValueIn::VarsSection,
                    };
                    return Err(err(lineno, indent + 1, kind));
                }
                if section_keys.insert(key.to_owned(), lineno).is_some() {
                    b.warn(file, lineno, InputWarning::SetTwice { key: key.into() });
                }
                let value_column = indent + line[..line.len() - value.len()].chars().count() + 1;
                let value = literal::eval(value.trim());
                check_connection(key, &value).map_err(|kind| err(lineno, value_column, kind))?;
                let mut one = Vars::new();
                one.insert(key.to_owned(), value);
                vars::add_aliases(&mut one);
                vars::merge(&mut b.groups[group].vars, &one);
            }
            Kind::Children => {
                let words = vars::words(raw).map_err(|(col, kind)| err(lineno, col, kind))?;
                let Some((child, rest)) = words.split_first() else {
                    continue;
                };
                if let Some(extra) = rest.first() {
                    let kind = InputKind::AfterChildGroup {
                        text: extra.text.clone(),
                    };
                    return Err(err(lineno, extra.column, kind));
                }
                if !valid_group_name(&child.text) {
                    let kind = InputKind::BadGroupName {
                        name: child.text.clone(),
                    };
                    return Err(err(lineno, child.column, kind));
                }
                if child.text == "all" {
                    let kind = InputKind::AllAsChild { parent: None };
                    return Err(err(lineno, child.column, kind));
                }
                if !known.contains(&child.text) {
                    let parent = &b.groups[group].name;
                    pending.push((
                        child.text.clone(),
                        Pending {
                            line: lineno,
                            column: child.column,
                            kind: InputKind::UndefinedChildGroup {
                                parent: parent.clone(),
                                child: child.text.clone(),
                            },
                        },
                    ));
                }
                let c = b.group(&child.text);
                b.add_child(group, c)
                    .map_err(|kind| err(lineno, child.column, kind))?;
            }
        }
    }
    debug_assert_eq!(b.find_group("all"), Some(ALL));

    if let Some((_, p)) = pending
        .into_iter()
        .filter(|(name, _)| !declared.contains(name))
        .min_by_key(|(_, p)| p.line)
    {
        return Err(err(p.line, p.column, p.kind));
    }
    Ok(())
}

/// Whether a line starting with `[` is a host (`[2001:db8::1]:2222 …`)
/// rather than a section header.
fn bracketed_host(line: &str) -> bool {
    let Some(close) = line.find(']') else {
        return false;
    };
    let rest = &line[close + 1..];
    let port_len = rest
        .strip_prefix(':')
        .map_or(0, |p| p.bytes().take_while(u8::is_ascii_digit).count());
    port_len > 0
        && rest[1 + port_len..]
            .chars()
            .next()
            .is_none_or(char::is_whitespace)
}

/// Split a host line as Python's `shlex.split(line, comments=True)` does
/// (POSIX rules), except that unquoted `[…]` and `{…}` group. On error, the
/// 1-based column and what is wrong.
fn shell_words(line: &str) -> std::result::Result<Vec<Word>, (usize, InputKind)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let mut word = Word {
            text: String::new(),
            column: i + 1,
            quoted: false,
        };
        let mut depth = 0usize;
        let mut comment = false;
        while i < chars.len() && (depth > 0 || !chars[i].is_whitespace()) {
            let c = chars[i];
            match c {
                '#' => {
                    comment = true;
                    break;
                }
                '\'' | '"' => {
                    word.quoted = true;
                    let open = i;
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => {
                                let kind = InputKind::UnterminatedQuote {
                                    quote: c,
                                    within: None,
                                };
                                return Err((open + 1, kind));
                            }
                            Some(&q) if q == c => break,
                            // in double quotes `\` escapes only `"` and `\`
                            Some('\\')
                                if c == '"' && matches!(chars.get(i + 1), Some('"' | '\\')) =>
                            {
                                word.text.push(chars[i + 1]);
                                i += 1;
                            }
                            Some(&other) => word.text.push(other),
                        }
                        i += 1;
                    }
                }
                '\\' if i + 1 < chars.len() => {
                    word.text.push(chars[i + 1]);
                    i += 1;
                }
                '[' | '{' => {
                    depth += 1;
                    word.text.push(c);
                }
                ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    word.text.push(c);
                }
                _ => word.text.push(c),
            }
            i += 1;
        }
        out.push(word);
        if comment {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        shell_words(line)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn host_lines_split_like_shlex() {
        assert_eq!(
            texts(r#"h a="x y" b='q' c=x#y d=1"#),
            ["h", "a=x y", "b=q", "c=x"]
        );
        assert_eq!(
            texts(r#"h e="a\\nb" f="a\"b" g='a\b'"#),
            ["h", r"e=a\nb", r#"f=a"b"#, r"g=a\b"]
        );
        assert_eq!(texts("h l=[1, 2] # c"), ["h", "l=[1, 2]"]);
        assert_eq!(texts(r#"h s="'x'"z"#), ["h", "s='x'z"]);
        assert_eq!(shell_words("h a='x").unwrap_err().0, 5);
    }
}
