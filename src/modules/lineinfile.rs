//! `lineinfile`: make sure one line is in a text file (replacing the line
//! `regexp` or `search_string` finds, else inserting it after or before a
//! line `insertafter`/`insertbefore` finds, `BOF`/`EOF`), or that no line
//! matches (`state: absent`). The edit follows Ansible's `lineinfile`
//! line for line, so a playbook lands the same file; regular expressions
//! are Rust's (no look-around or backreferences in the pattern), matched
//! against each line without its newline, which is how Python's `$` sees
//! it. `backrefs` takes Python's `\1` and `\g<name>`.
//!
//! The file is read in one round trip and the edit made here; a changed
//! file is written with the atomic, verified write of `file.rs` (a second
//! trip), with `--diff` from the text already read.

use std::sync::Arc;

use futures::future::BoxFuture;
use regex::Regex;
use serde::Deserialize;

use super::file::{put, read_text, Wanted, Write};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{text, Flag, Mode, Text};
use crate::template::is_template;
use crate::yaml::Node;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    #[default]
    Present,
    Absent,
}

/// Where a new line goes when nothing matched.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Insert {
    After(String),
    Before(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LineArgs {
    pub path: String,
    pub regexp: Option<String>,
    pub search_string: Option<String>,
    pub line: Option<String>,
    pub state: State,
    pub backrefs: bool,
    pub insert: Option<Insert>,
    pub firstmatch: bool,
    pub create: bool,
    pub backup: bool,
    pub validate: Option<String>,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LineInFile(pub LineArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineMap {
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    path: Text,
    #[serde(alias = "regex")]
    regexp: Option<Text>,
    search_string: Option<Text>,
    #[serde(alias = "value")]
    line: Option<Text>,
    state: Option<State>,
    backrefs: Option<Flag>,
    insertafter: Option<Text>,
    insertbefore: Option<Text>,
    firstmatch: Option<Flag>,
    create: Option<Flag>,
    backup: Option<Flag>,
    validate: Option<Text>,
    mode: Option<Mode>,
    owner: Option<Text>,
    group: Option<Text>,
}

/// `pattern` compiled, or why not (checked at load unless a template).
pub(super) fn compile(pattern: &str, name: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| {
        let why = e.to_string();
        let why = why.lines().last().unwrap_or_default().trim();
        let why = why.strip_prefix("error: ").unwrap_or(why);
        format!("`{name}` is not a regular expression arpanet understands: {why}")
    })
}

/// A pattern argument checked at load: compiled unless a template or an
/// anchor word (`BOF`, `EOF`).
pub(super) fn check_pattern(pattern: Option<&str>, name: &str) -> Result<(), BadArgs> {
    match pattern {
        Some(p) if !is_template(p) && !matches!(p, "BOF" | "EOF") => {
            compile(p, name).map(|_| ()).map_err(|m| {
                BadArgs::invalid(m).with_hint(
                    "Rust's regex syntax is Python's without look-around and backreferences",
                )
            })
        }
        _ => Ok(()),
    }
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "lineinfile"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: LineMap = args_map(node, "a mapping with `path`")?;
        let state = m.state.unwrap_or_default();
        let args = LineArgs {
            path: m.path.0,
            regexp: text(m.regexp),
            search_string: text(m.search_string),
            line: text(m.line),
            state,
            backrefs: m.backrefs.is_some_and(|f| f.0),
            insert: match (text(m.insertafter), text(m.insertbefore)) {
                (Some(_), Some(_)) => {
                    return Err(BadArgs::invalid(
                        "give only one of `insertafter` and `insertbefore`",
                    ))
                }
                (Some(a), None) => Some(Insert::After(a)),
                (None, Some(b)) => Some(Insert::Before(b)),
                (None, None) => None,
            },
            firstmatch: m.firstmatch.is_some_and(|f| f.0),
            create: m.create.is_some_and(|f| f.0),
            backup: m.backup.is_some_and(|f| f.0),
            validate: text(m.validate),
            mode: m.mode.map(|m| m.0),
            owner: text(m.owner),
            group: text(m.group),
        };
        if args.regexp.is_some() && args.search_string.is_some() {
            return Err(BadArgs::invalid(
                "give only one of `regexp` and `search_string`",
            ));
        }
        if args.backrefs && args.regexp.is_none() {
            return Err(BadArgs::invalid("`backrefs` needs `regexp`"));
        }
        match state {
            State::Present if args.line.is_none() => {
                return Err(BadArgs::invalid("`state: present` needs `line`"))
            }
            State::Absent
                if args.line.is_none() && args.regexp.is_none() && args.search_string.is_none() =>
            {
                return Err(BadArgs::invalid(
                    "`state: absent` needs one of `line`, `regexp` and `search_string`",
                ))
            }
            _ => {}
        }
        if let Some(v) = &args.validate {
            if !v.contains("%s") {
                return Err(BadArgs::invalid(format!(
                    "`validate` must contain `%s` (the new file's path), got `{v}`"
                )));
            }
        }
        check_pattern(args.regexp.as_deref(), "regexp")?;
        match &args.insert {
            Some(Insert::After(p)) => check_pattern(Some(p), "insertafter")?,
            Some(Insert::Before(p)) => check_pattern(Some(p), "insertbefore")?,
            None => {}
        }
        Ok(Arc::new(LineInFile(args)))
    }
}

impl Module for LineInFile {
    fn name(&self) -> &'static str {
        "lineinfile"
    }

    fn summary(&self) -> String {
        self.0.path.clone()
    }

    fn templates(&self) -> Vec<&str> {
        let a = &self.0;
        let mut out = vec![a.path.as_str()];
        for s in [
            &a.regexp,
            &a.search_string,
            &a.line,
            &a.validate,
            &a.mode,
            &a.owner,
            &a.group,
        ] {
            out.extend(s.as_deref());
        }
        match &a.insert {
            Some(Insert::After(p) | Insert::Before(p)) => out.push(p),
            None => {}
        }
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

/// The arguments rendered for one host, patterns compiled.
pub(crate) struct Edit {
    pub regexp: Option<Regex>,
    pub search_string: Option<String>,
    pub line: String,
    pub backrefs: bool,
    /// The insertion pattern: after (true) or before (false) its line.
    pub insert: Option<(bool, Option<Regex>)>,
    pub firstmatch: bool,
}

async fn run(args: &LineArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let path = ctx.render(&args.path)?;
    let opt = |s: &Option<String>| ctx.render_opt(s.as_ref());
    let pattern = |p: Option<String>, name: &str| -> Result<Option<Regex>, String> {
        p.map(|p| compile(&p, name)).transpose()
    };
    let insert = match &args.insert {
        Some(Insert::After(p)) => Some((true, ctx.render(p)?)),
        Some(Insert::Before(p)) => Some((false, ctx.render(p)?)),
        None => None,
    };
    let anchor = insert.as_ref().map(|(_, p)| p.clone());
    let edit = Edit {
        regexp: match pattern(opt(&args.regexp)?, "regexp") {
            Ok(r) => r,
            Err(message) => return Ok(Outcome::fail(message)),
        },
        search_string: opt(&args.search_string)?,
        line: opt(&args.line)?.unwrap_or_default(),
        backrefs: args.backrefs,
        insert: match insert {
            None => None,
            Some((after, p)) if p == "EOF" || p == "BOF" => Some((after, None)),
            Some((after, p)) => {
                let name = if after { "insertafter" } else { "insertbefore" };
                match pattern(Some(p), name) {
                    Ok(r) => Some((after, r)),
                    Err(message) => return Ok(Outcome::fail(message)),
                }
            }
        },
        firstmatch: args.firstmatch,
    };
    let old = match read_text(ctx, &path).await {
        Ok(old) => old,
        Err(failed) => return Ok(failed),
    };
    let (new, msg) = match (&old, args.state) {
        (None, State::Absent) => {
            return Ok(Outcome::ok()
                .with("msg", "file not present")
                .with("found", 0));
        }
        (None, State::Present) if !args.create => {
            return Ok(Outcome::fail(format!(
                "`{path}` does not exist (`create: true` makes it)"
            )));
        }
        (_, State::Present) => {
            let (new, msg) = present(old.as_deref().unwrap_or(""), &edit, anchor.as_deref());
            (new, msg.to_owned())
        }
        (Some(text), State::Absent) => {
            let (new, found) = absent(text, &edit);
            (new, format!("{found} line(s) removed"))
        }
    };
    let changed = old.as_deref() != Some(new.as_str());
    let has_meta = args.mode.is_some() || args.owner.is_some() || args.group.is_some();
    if !changed && !has_meta {
        return Ok(Outcome::ok().with("msg", ""));
    }
    let wanted = Wanted::new(
        args.mode.as_ref(),
        args.owner.as_ref(),
        args.group.as_ref(),
        ctx,
    )?;
    let validate = opt(&args.validate)?;
    let how = Write {
        wanted: &wanted,
        backup: args.backup,
        parents: true,
        validate: validate.as_deref(),
    };
    let outcome = put(ctx, &path, new.as_bytes(), &how, Some(old.as_deref())).await?;
    let msg = if outcome.changed && !changed {
        "ownership, perms or SE linux context changed".to_owned()
    } else if changed {
        msg
    } else {
        String::new()
    };
    Ok(outcome.with("msg", msg))
}

/// `text` split after each `\n`, each line keeping its end (Python's
/// `readlines`).
pub(crate) fn lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_owned).collect()
}

/// A line without its `\n` (what Python's `$` sees as the end).
fn body(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

fn strip_eol(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Ansible's `present()`: the new text and its message (`line added`,
/// `line replaced`, or empty). `anchor` is `insertafter`/`insertbefore` as
/// written, for `BOF`/`EOF`.
pub(crate) fn present(text: &str, edit: &Edit, anchor: Option<&str>) -> (String, &'static str) {
    let mut lines = lines(text);
    let line = edit.line.as_str();
    let (after, insert_re) = match &edit.insert {
        Some((after, re)) => (*after, re.as_ref()),
        None => (true, None),
    };
    let insertafter = edit.insert.as_ref().filter(|(a, _)| *a).and(anchor);
    let insertbefore = edit.insert.as_ref().filter(|(a, _)| !*a).and(anchor);
    let mut index = [-1isize, -1isize];
    let mut found: Option<regex::Captures<'_>> = None;
    let mut found_string = false;
    let snapshot = lines.clone();
    if let Some(re) = &edit.regexp {
        for (n, cur) in snapshot.iter().enumerate() {
            if let Some(c) = re.captures(body(cur)) {
                index[0] = n as isize;
                found = Some(c);
                if edit.firstmatch {
                    break;
                }
            }
        }
    } else if let Some(s) = &edit.search_string {
        for (n, cur) in snapshot.iter().enumerate() {
            if cur.contains(s.as_str()) {
                index[0] = n as isize;
                found_string = true;
                if edit.firstmatch {
                    break;
                }
            }
        }
    }
    let matched = found.is_some() || found_string;
    if !matched {
        for (n, cur) in snapshot.iter().enumerate() {
            if line == strip_eol(cur) {
                index[0] = n as isize;
            } else if let Some(re) = insert_re {
                if re.is_match(body(cur)) {
                    index[1] = if after { n as isize + 1 } else { n as isize };
                    if edit.firstmatch {
                        break;
                    }
                }
            }
        }
    }
    let ends_open = |lines: &Vec<String>| {
        lines
            .last()
            .is_some_and(|l| !l.ends_with('\n') && !l.ends_with('\r'))
    };
    let with_eol = format!("{line}\n");
    if index[0] != -1 {
        let mut new_line = match (&found, edit.backrefs) {
            (Some(c), true) => expand(c, line),
            _ => line.to_owned(),
        };
        if !new_line.ends_with('\n') {
            new_line.push('\n');
        }
        let i = index[0] as usize;
        if lines[i] != new_line {
            lines[i] = new_line;
            return (lines.concat(), "line replaced");
        }
        return (lines.concat(), "");
    }
    if edit.backrefs {
        // Nothing matched the pattern that fills the backreferences.
        return (lines.concat(), "");
    }
    if insertbefore == Some("BOF") || insertafter == Some("BOF") {
        lines.insert(0, with_eol);
        return (lines.concat(), "line added");
    }
    if insertafter == Some("EOF") || index[1] == -1 {
        if ends_open(&lines) {
            lines.push("\n".into());
        }
        lines.push(with_eol);
        return (lines.concat(), "line added");
    }
    let at = index[1] as usize;
    if insertafter.is_some() {
        if lines.len() == at {
            if strip_eol(&lines[at - 1]) != line {
                // Ansible appends without first ending an open last line.
                lines.push(with_eol);
                return (lines.concat(), "line added");
            }
            return (lines.concat(), "");
        }
        if line != strip_eol(&lines[at]) {
            lines.insert(at, with_eol);
            return (lines.concat(), "line added");
        }
        return (lines.concat(), "");
    }
    lines.insert(at, with_eol);
    (lines.concat(), "line added")
}

/// Ansible's `absent()`: the text without the lines that match, and how
/// many there were.
pub(crate) fn absent(text: &str, edit: &Edit) -> (String, usize) {
    let mut found = 0;
    let kept: Vec<String> = lines(text)
        .into_iter()
        .filter(|cur| {
            let hit = match (&edit.regexp, &edit.search_string) {
                (Some(re), _) => re.is_match(body(cur)),
                (None, Some(s)) => cur.contains(s.as_str()),
                (None, None) => edit.line == strip_eol(cur),
            };
            found += usize::from(hit);
            !hit
        })
        .collect();
    (kept.concat(), found)
}

/// Python's `match.expand(template)`: `\1`, `\g<1>`, `\g<name>` and the
/// escapes `\n`, `\t`, `\\` (also `regex_replace`'s replacement).
pub(crate) fn expand(caps: &regex::Captures<'_>, template: &str) -> String {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let group = |name: &str| -> String {
        match name.parse::<usize>() {
            Ok(n) => caps.get(n),
            Err(_) => caps.name(name),
        }
        .map_or(String::new(), |m| m.as_str().to_owned())
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(d) if d.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    if n.len() == 2 {
                        break;
                    }
                    n.push(d);
                    chars.next();
                }
                out.push_str(&group(&n));
            }
            Some('g') => {
                chars.next();
                if chars.peek() == Some(&'<') {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                    out.push_str(&group(&name));
                } else {
                    out.push_str("\\g");
                }
            }
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            Some('t') => {
                chars.next();
                out.push('\t');
            }
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            _ => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(
        regexp: Option<&str>,
        line: &str,
        insert: Option<(bool, &str)>,
    ) -> (Edit, Option<String>) {
        let insert_re = insert.map(|(after, p)| {
            (
                after,
                (!matches!(p, "BOF" | "EOF")).then(|| Regex::new(p).unwrap()),
            )
        });
        (
            Edit {
                regexp: regexp.map(|r| Regex::new(r).unwrap()),
                search_string: None,
                line: line.into(),
                backrefs: false,
                insert: insert_re,
                firstmatch: false,
            },
            insert.map(|(_, p)| p.to_owned()),
        )
    }

    fn apply(text: &str, regexp: Option<&str>, line: &str, insert: Option<(bool, &str)>) -> String {
        let (e, anchor) = edit(regexp, line, insert);
        present(text, &e, anchor.as_deref()).0
    }

    #[test]
    fn replaces_the_last_match_or_appends() {
        assert_eq!(
            apply("a=1\nb=2\na=3\n", Some("^a="), "a=9", None),
            "a=1\nb=2\na=9\n"
        );
        assert_eq!(apply("x\n", Some("^a="), "a=9", None), "x\na=9\n");
        assert_eq!(
            apply("x", None, "y", None),
            "x\ny\n",
            "an open last line is ended"
        );
        assert_eq!(apply("y\n", None, "y", None), "y\n");
        assert_eq!(apply("", None, "y", None), "y\n");
    }

    #[test]
    fn inserts_after_and_before_matches_and_at_the_ends() {
        let text = "[a]\nk=1\n[b]\nk=2\n";
        assert_eq!(
            apply(text, None, "new", Some((true, r"^\[a\]"))),
            "[a]\nnew\nk=1\n[b]\nk=2\n"
        );
        assert_eq!(
            apply(text, None, "new", Some((false, r"^\[b\]"))),
            "[a]\nk=1\nnew\n[b]\nk=2\n"
        );
        assert_eq!(
            apply(text, None, "new", Some((false, "BOF"))),
            format!("new\n{text}")
        );
        assert_eq!(
            apply(text, None, "new", Some((true, "EOF"))),
            format!("{text}new\n")
        );
        assert_eq!(
            apply(text, None, "new", Some((true, "^nomatch"))),
            format!("{text}new\n"),
            "no match appends"
        );
        assert_eq!(
            apply("[a]\nnew\n", None, "new", Some((true, r"^\[a\]"))),
            "[a]\nnew\n",
            "already there"
        );
    }

    #[test]
    fn backrefs_expand_python_groups_and_leave_the_file_alone_without_a_match() {
        let mut e = edit(Some(r"^(\w+)=(?P<v>.*)$"), r"\1 = \g<v>", None).0;
        e.backrefs = true;
        assert_eq!(present("key=val\n", &e, None).0, "key = val\n");
        assert_eq!(present("# none\n", &e, None), ("# none\n".to_owned(), ""));
    }

    #[test]
    fn absent_removes_every_matching_line() {
        let e = edit(Some("^#"), "", None).0;
        assert_eq!(absent("#a\nb\n#c\n", &e), ("b\n".to_owned(), 2));
    }
}
