//! `blockinfile`: keep a block of lines between two marker lines in a text
//! file (inserted, updated in place, or removed with `state: absent`),
//! following Ansible's `blockinfile` step for step: the same markers
//! (`# {mark} ANSIBLE MANAGED BLOCK`), the same placement (`insertafter`
//! defaults to `EOF`; a pattern takes its last match; `(?m)` patterns match
//! across lines), `prepend_newline`/`append_newline`. Read in one round
//! trip, edited here, written with `file.rs`'s atomic write.

use std::sync::Arc;

use futures::future::BoxFuture;
use regex::Regex;
use serde::Deserialize;

use super::file::{put, read_text, Wanted, Write};
use super::lineinfile::{check_pattern, compile, State};
use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{text, Flag, Mode, Text};
use crate::yaml::Node;

const MARKER: &str = "# {mark} ANSIBLE MANAGED BLOCK";

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BlockArgs {
    pub path: String,
    pub block: String,
    pub marker: String,
    pub marker_begin: String,
    pub marker_end: String,
    pub state: State,
    /// `insertafter` (true) or `insertbefore` (false) and its pattern.
    pub insert: Option<(bool, String)>,
    pub create: bool,
    pub backup: bool,
    pub validate: Option<String>,
    pub prepend_newline: bool,
    pub append_newline: bool,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockInFile(pub BlockArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockMap {
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    path: Text,
    #[serde(alias = "content")]
    block: Option<Text>,
    marker: Option<Text>,
    marker_begin: Option<Text>,
    marker_end: Option<Text>,
    state: Option<State>,
    insertafter: Option<Text>,
    insertbefore: Option<Text>,
    create: Option<Flag>,
    backup: Option<Flag>,
    validate: Option<Text>,
    prepend_newline: Option<Flag>,
    append_newline: Option<Flag>,
    mode: Option<Mode>,
    owner: Option<Text>,
    group: Option<Text>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "blockinfile"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: BlockMap = args_map(node, "a mapping with `path` and `block`")?;
        let insert = match (text(m.insertafter), text(m.insertbefore)) {
            (Some(_), Some(_)) => {
                return Err(BadArgs::invalid(
                    "give only one of `insertafter` and `insertbefore`",
                ))
            }
            (Some(a), None) => Some((true, a)),
            (None, Some(b)) => Some((false, b)),
            (None, None) => None,
        };
        if let Some((after, p)) = &insert {
            let name = if *after {
                "insertafter"
            } else {
                "insertbefore"
            };
            check_pattern(Some(p), name)?;
        }
        let marker = text(m.marker).unwrap_or_else(|| MARKER.to_owned());
        if !marker.contains("{mark}") {
            return Err(BadArgs::invalid(format!(
                "`marker` must contain `{{mark}}`, got `{marker}`"
            ))
            .with_hint("without it the begin and end markers are the same line"));
        }
        let validate = text(m.validate);
        if let Some(v) = &validate {
            if !v.contains("%s") {
                return Err(BadArgs::invalid(format!(
                    "`validate` must contain `%s` (the new file's path), got `{v}`"
                )));
            }
        }
        Ok(Arc::new(BlockInFile(BlockArgs {
            path: m.path.0,
            block: text(m.block).unwrap_or_default(),
            marker,
            marker_begin: text(m.marker_begin).unwrap_or_else(|| "BEGIN".into()),
            marker_end: text(m.marker_end).unwrap_or_else(|| "END".into()),
            state: m.state.unwrap_or_default(),
            insert,
            create: m.create.is_some_and(|f| f.0),
            backup: m.backup.is_some_and(|f| f.0),
            validate,
            prepend_newline: m.prepend_newline.is_some_and(|f| f.0),
            append_newline: m.append_newline.is_some_and(|f| f.0),
            mode: m.mode.map(|m| m.0),
            owner: text(m.owner),
            group: text(m.group),
        })))
    }
}

impl Module for BlockInFile {
    fn name(&self) -> &'static str {
        "blockinfile"
    }

    fn summary(&self) -> String {
        self.0.path.clone()
    }

    fn templates(&self) -> Vec<&str> {
        let a = &self.0;
        let mut out = vec![
            a.path.as_str(),
            &a.block,
            &a.marker,
            &a.marker_begin,
            &a.marker_end,
        ];
        for s in [&a.validate, &a.mode, &a.owner, &a.group] {
            out.extend(s.as_deref());
        }
        out.extend(a.insert.as_ref().map(|(_, p)| p.as_str()));
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

/// One host's edit, rendered.
pub(crate) struct Edit {
    pub block: String,
    pub begin: String,
    pub end: String,
    pub present: bool,
    /// After (true) or before its pattern; `None` pattern: `EOF`/`BOF`.
    pub insert: (bool, Option<Regex>),
    pub prepend_newline: bool,
    pub append_newline: bool,
}

async fn run(args: &BlockArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let path = ctx.render(&args.path)?;
    let marker = ctx.render(&args.marker)?;
    let insert = match &args.insert {
        None => (true, None),
        Some((after, p)) => {
            let p = ctx.render(p)?;
            let anchor = if *after { "EOF" } else { "BOF" };
            if p == anchor {
                (*after, None)
            } else {
                let name = if *after {
                    "insertafter"
                } else {
                    "insertbefore"
                };
                match compile(&p, name) {
                    Ok(r) => (*after, Some(r)),
                    Err(m) => return Ok(Outcome::fail(m)),
                }
            }
        }
    };
    let edit = Edit {
        block: ctx.render(&args.block)?,
        begin: marker.replace("{mark}", &ctx.render(&args.marker_begin)?),
        end: marker.replace("{mark}", &ctx.render(&args.marker_end)?),
        present: args.state == State::Present,
        insert,
        prepend_newline: args.prepend_newline,
        append_newline: args.append_newline,
    };
    let old = match read_text(ctx, &path).await {
        Ok(old) => old,
        Err(failed) => return Ok(failed),
    };
    if old.is_none() {
        if !edit.present {
            return Ok(Outcome::ok().with("msg", format!("File {path} not present")));
        }
        if !args.create {
            return Ok(Outcome::fail(format!(
                "`{path}` does not exist (`create: true` makes it)"
            )));
        }
    }
    let new = apply(old.as_deref().unwrap_or(""), &edit);
    let changed = old.as_deref() != Some(new.as_str());
    let msg = match () {
        _ if !changed => "",
        _ if old.is_none() => "File created",
        _ if !edit.present || edit.block.is_empty() => "Block removed",
        _ => "Block inserted",
    };
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
    let validate = ctx.render_opt(args.validate.as_ref())?;
    let how = Write {
        wanted: &wanted,
        backup: args.backup,
        parents: true,
        validate: validate.as_deref(),
    };
    let outcome = put(ctx, &path, new.as_bytes(), &how, Some(old.as_deref())).await?;
    let msg = match (outcome.changed, changed) {
        (true, false) => "ownership, perms or SE linux context changed",
        _ => msg,
    };
    Ok(outcome.with("msg", msg))
}

/// Python's `bytes.splitlines(True)`: lines ending at `\n`, `\r\n` or `\r`,
/// each with its end.
fn split_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => i + 1,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(text[start..end].to_owned());
        start = end;
        i = end;
    }
    if start < text.len() {
        out.push(text[start..].to_owned());
    }
    out
}

/// Whether `re` was written with the multi-line flag (`(?m)`), which makes
/// Ansible match it against the whole file.
fn multiline(re: &Regex) -> bool {
    let s = re.as_str();
    s.strip_prefix("(?")
        .and_then(|rest| rest.split([')', ':']).next())
        .is_some_and(|flags| flags.split('-').next().unwrap_or_default().contains('m'))
}

/// Ansible's edit of `original` (empty for a missing file).
pub(crate) fn apply(original: &str, edit: &Edit) -> String {
    let mut lines = split_lines(original);
    let marker0 = format!("{}\n", edit.begin);
    let marker1 = format!("{}\n", edit.end);
    let blocklines: Vec<String> = if edit.present && !edit.block.is_empty() {
        let mut block = edit.block.clone();
        if !block.ends_with('\n') {
            block.push('\n');
        }
        std::iter::once(marker0.clone())
            .chain(split_lines(&block))
            .chain(std::iter::once(marker1.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let (mut n0, mut n1) = (None, None);
    for (i, line) in lines.iter().enumerate() {
        if *line == marker0 {
            n0 = Some(i);
        }
        if *line == marker1 {
            n1 = Some(i);
        }
    }
    let (after, re) = (&edit.insert.0, &edit.insert.1);
    let mut at = match (n0, n1) {
        (Some(a), Some(b)) if a < b => {
            lines.drain(a..=b);
            a
        }
        (Some(a), Some(b)) => {
            lines.drain(b..=a);
            b
        }
        _ => match re {
            Some(re) if multiline(re) => match re.find(original) {
                Some(m) if *after => original[..m.end()].matches('\n').count(),
                Some(m) => original[..m.start()].matches('\n').count(),
                None => lines.len(),
            },
            Some(re) => {
                let last = lines
                    .iter()
                    .rposition(|l| re.is_match(l.strip_suffix('\n').unwrap_or(l)));
                match last {
                    None => lines.len(),
                    Some(i) if *after => i + 1,
                    Some(i) => i,
                }
            }
            None if !*after => 0,
            None => lines.len(),
        },
    };
    if at > 0 && !lines[at - 1].ends_with('\n') {
        lines[at - 1].push('\n');
    }
    if edit.prepend_newline && edit.present && at != 0 && lines[at - 1] != "\n" {
        lines.insert(at, "\n".into());
        at += 1;
    }
    let count = blocklines.len();
    lines.splice(at..at, blocklines);
    if edit.append_newline && edit.present {
        let after_block = at + count;
        if after_block < lines.len() && lines[after_block] != "\n" {
            lines.insert(after_block, "\n".into());
        }
    }
    lines.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(block: &str, present: bool, insert: (bool, Option<&str>)) -> Edit {
        Edit {
            block: block.into(),
            begin: "# BEGIN ANSIBLE MANAGED BLOCK".into(),
            end: "# END ANSIBLE MANAGED BLOCK".into(),
            present,
            insert: (insert.0, insert.1.map(|p| Regex::new(p).unwrap())),
            prepend_newline: false,
            append_newline: false,
        }
    }

    const B: &str = "# BEGIN ANSIBLE MANAGED BLOCK\n";
    const E: &str = "# END ANSIBLE MANAGED BLOCK\n";

    #[test]
    fn inserts_at_the_end_then_updates_in_place_then_removes() {
        let first = apply("a\nb", &edit("x\ny", true, (true, None)));
        assert_eq!(first, format!("a\nb\n{B}x\ny\n{E}"));
        assert_eq!(apply(&first, &edit("x\ny", true, (true, None))), first);
        let moved = format!("{B}old\n{E}tail\n");
        assert_eq!(
            apply(&moved, &edit("new", true, (true, None))),
            format!("{B}new\n{E}tail\n"),
            "a block stays where it is"
        );
        assert_eq!(apply(&first, &edit("x", false, (true, None))), "a\nb\n");
        assert_eq!(
            apply(&first, &edit("", true, (true, None))),
            "a\nb\n",
            "an empty block removes"
        );
    }

    #[test]
    fn places_after_the_last_match_or_before_it_or_at_the_top() {
        let text = "[s]\nk\n[s]\nj\n";
        assert_eq!(
            apply(text, &edit("x", true, (true, Some(r"^\[s\]")))),
            format!("[s]\nk\n[s]\n{B}x\n{E}j\n")
        );
        assert_eq!(
            apply(text, &edit("x", true, (false, Some(r"^\[s\]")))),
            format!("[s]\nk\n{B}x\n{E}[s]\nj\n")
        );
        assert_eq!(
            apply(text, &edit("x", true, (false, None))),
            format!("{B}x\n{E}{text}")
        );
        assert_eq!(
            apply("a\nb\n", &edit("x", true, (true, Some("(?m)^a\nb\n")))),
            format!("a\nb\n{B}x\n{E}"),
            "multi-line patterns match the whole file"
        );
    }
}
