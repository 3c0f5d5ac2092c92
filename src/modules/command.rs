//! `command`: run a program on the host, each word quoted so the remote
//! shell interprets nothing (`argv:` gives the words as a list). `shell`
//! (in `shell.rs`) shares the arguments and the running.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, free_form, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{text, Text};
use crate::transport::quote;
use crate::yaml::Node;

/// `command` and `shell`. `command: echo hi` sets `cmd`; `argv:` a list.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CommandArgs {
    pub cmd: Option<String>,
    /// `command` only: each item is one argument, quoted for the remote shell.
    pub argv: Option<Vec<String>>,
    pub chdir: Option<String>,
    /// Skip when this path exists.
    pub creates: Option<String>,
    /// Skip unless this path exists.
    pub removes: Option<String>,
    pub stdin: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command(pub CommandArgs);

pub(super) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "command"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let args = parse_args(
            node,
            false,
            "a command line, or a mapping with `cmd` or `argv`",
        )?;
        Ok(Arc::new(Command(args)))
    }
}

impl Module for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn summary(&self) -> String {
        self.0.summary()
    }

    fn templates(&self) -> Vec<&str> {
        self.0.templates()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, false, ctx))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandMap {
    cmd: Option<Text>,
    argv: Option<Vec<Text>>,
    chdir: Option<Text>,
    creates: Option<Text>,
    removes: Option<Text>,
    stdin: Option<Text>,
}

/// The arguments of `command` or (`shell`) `shell`: a free-form command
/// line, or a mapping.
pub(super) fn parse_args(
    node: &Node,
    shell: bool,
    expecting: &'static str,
) -> Result<CommandArgs, BadArgs> {
    if let Some(cmd) = free_form(node) {
        return inline_options(&cmd);
    }
    let m: CommandMap = args_map(node, expecting)?;
    let args = CommandArgs {
        cmd: text(m.cmd),
        argv: m.argv.map(|v| v.into_iter().map(|t| t.0).collect()),
        chdir: text(m.chdir),
        creates: text(m.creates),
        removes: text(m.removes),
        stdin: text(m.stdin),
    };
    match (&args.cmd, &args.argv) {
        (Some(_), Some(_)) => Err(BadArgs::invalid("give either `cmd` or `argv`, not both")),
        (None, None) if shell => Err(BadArgs::invalid("missing argument `cmd`")),
        (None, None) => Err(BadArgs::invalid("missing argument `cmd` (or `argv`)")),
        (None, Some(_)) if shell => Err(BadArgs::invalid("`argv` is only for `command`")
            .with_hint("use `command` with `argv`, or `cmd` with `shell`")),
        (None, Some(argv)) if argv.is_empty() => Err(BadArgs::invalid("`argv` is empty")),
        _ => Ok(args),
    }
}

/// The options a free-form command line may carry as `KEY=VALUE` words,
/// as in Ansible (`command: make install creates=/usr/local/bin/tool`).
const INLINE: [&str; 4] = ["creates", "removes", "chdir", "stdin"];

/// Options Ansible also reads there that arpanet does not take.
const INLINE_UNSUPPORTED: [&str; 4] = [
    "executable",
    "warn",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// A free-form command line with its `KEY=VALUE` option words taken out
/// (see [`INLINE`]); a value may be quoted. Words are split as a shell
/// would (quotes, and `{{ }}` / `{% %}` kept whole); what is left of the
/// line stays as written, so a multi-line script keeps its lines.
pub(crate) fn inline_options(line: &str) -> Result<CommandArgs, BadArgs> {
    let mut args = CommandArgs::default();
    let mut cmd = String::with_capacity(line.len());
    let mut kept = 0;
    for (start, end) in words(line) {
        let word = &line[start..end];
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        if INLINE_UNSUPPORTED.contains(&key) {
            return Err(
                BadArgs::invalid(format!("`{key}=` is not an option arpanet takes"))
                    .with_hint(format!("remove it; the options are {}", INLINE.join(", "))),
            );
        }
        let slot = match key {
            "creates" => &mut args.creates,
            "removes" => &mut args.removes,
            "chdir" => &mut args.chdir,
            "stdin" => &mut args.stdin,
            _ => continue,
        };
        *slot = Some(unquote(value));
        cmd.push_str(&line[kept..start]);
        kept = end;
    }
    if kept == 0 {
        // no option: the line exactly as written
        args.cmd = Some(line.to_owned());
        return Ok(args);
    }
    cmd.push_str(&line[kept..]);
    let cmd = cmd.trim();
    if cmd.is_empty() {
        return Err(BadArgs::invalid(format!(
            "no command besides the options ({})",
            INLINE.join(", ")
        )));
    }
    args.cmd = Some(cmd.to_owned());
    Ok(args)
}

/// The byte spans of `line`'s words: runs outside whitespace, where quotes
/// and template tags hold whitespace in.
fn words(line: &str) -> Vec<(usize, usize)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut quote = None;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) if b == q => quote = None,
                Some(b'"') if b == b'\\' => i += 1,
                Some(_) => {}
                None if b == b'\'' || b == b'"' => quote = Some(b),
                None if b == b'\\' => i += 1,
                None if b == b'{' && matches!(bytes.get(i + 1), Some(b'{' | b'%')) => {
                    let close = if bytes[i + 1] == b'{' { "}}" } else { "%}" };
                    i = line[i..].find(close).map_or(bytes.len(), |at| i + at + 1);
                }
                None if b.is_ascii_whitespace() => break,
                None => {}
            }
            i += 1;
        }
        out.push((start, i.min(bytes.len())));
    }
    out
}

/// A module's arguments written as one line of `KEY=VALUE` words, the
/// older form Ansible still reads for any module (`file: path=/srv
/// state=directory`, `debug: msg="hi {{ x }}"`): the pairs, each value
/// without its quotes; `None` unless every word is such a pair.
pub(crate) fn key_values(line: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (start, end) in words(line) {
        let word = decode_escapes(&line[start..end]);
        let (key, value) = word.split_once('=')?;
        let mut chars = key.chars();
        let named = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !named {
            return None;
        }
        pairs.push((key.to_owned(), unquote(value)));
    }
    (!pairs.is_empty()).then_some(pairs)
}

/// The escapes Ansible decodes in a `key=value` word: `\\`, `\'`, `\"`,
/// `\a \b \f \n \r \t \v`, `\xNN`, `\uNNNN` and `\UNNNNNNNN`; any other
/// backslash stays.
fn decode_escapes(word: &str) -> std::borrow::Cow<'_, str> {
    if !word.contains('\\') {
        return std::borrow::Cow::Borrowed(word);
    }
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let simple = match tail.chars().next() {
            Some(c @ ('\\' | '\'' | '"')) => Some(c),
            Some('a') => Some('\u{7}'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('v') => Some('\u{b}'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = &tail[1..];
            continue;
        }
        let hex = |len: usize| {
            tail.get(1..1 + len)
                .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
        };
        let coded = match tail.chars().next() {
            Some('x') => hex(2).map(|c| (c, 3)),
            Some('u') => hex(4).map(|c| (c, 5)),
            Some('U') => hex(8).map(|c| (c, 9)),
            _ => None,
        };
        match coded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('\\');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// A value without the quotes around it.
fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

impl CommandArgs {
    pub(super) fn summary(&self) -> String {
        self.cmd
            .clone()
            .or_else(|| self.argv.as_ref().map(|v| v.join(" ")))
            .unwrap_or_default()
    }

    pub(super) fn templates(&self) -> Vec<&str> {
        let mut out = Vec::new();
        out.extend(self.cmd.as_deref());
        out.extend(self.argv.iter().flatten().map(String::as_str));
        for s in [&self.chdir, &self.creates, &self.removes, &self.stdin] {
            out.extend(s.as_deref());
        }
        out
    }
}

pub(super) async fn run(args: &CommandArgs, shell: bool, ctx: &Context<'_>) -> Result<Outcome> {
    let line = command_line(args, shell, ctx)?;
    let guards = Guards {
        creates: ctx.render_opt(args.creates.as_ref())?,
        removes: ctx.render_opt(args.removes.as_ref())?,
    };
    if ctx.check {
        if let Some(path) = &guards.creates {
            if exists(ctx, path).await? {
                return Ok(guards.skipped(Guard::Creates));
            }
        }
        if let Some(path) = &guards.removes {
            if !exists(ctx, path).await? {
                return Ok(guards.skipped(Guard::Removes));
            }
        }
        return Ok(Outcome::skipped("commands do not run in check mode"));
    }
    let stdin = ctx.render_opt(args.stdin.as_ref())?;
    // `creates` and `removes` are tested in the same command: one round trip.
    let marker = format!("__ARPANET_{:016x}_SKIP__", rand::random::<u64>());
    let script = format!("{}{line}", guards.script(&marker));
    let out = ctx
        .exec_live(&script, stdin.as_deref().map(str::as_bytes))
        .await?;
    if out.success() {
        for guard in [Guard::Creates, Guard::Removes] {
            if out
                .stdout
                .ends_with(&format!("{marker} {}\n", guard.word()))
            {
                return Ok(guards.skipped(guard));
            }
        }
    }
    if !out.success() {
        return Ok(Outcome::failed_command(&line, &out));
    }
    Ok(Outcome {
        changed: true,
        rc: Some(out.status),
        stdout: out.stdout,
        stderr: out.stderr,
        ..Outcome::ok()
    })
}

/// A command's `creates` and `removes` paths, rendered.
struct Guards {
    creates: Option<String>,
    removes: Option<String>,
}

#[derive(Clone, Copy)]
enum Guard {
    Creates,
    Removes,
}

impl Guard {
    fn word(self) -> &'static str {
        match self {
            Guard::Creates => "creates",
            Guard::Removes => "removes",
        }
    }
}

impl Guards {
    /// Shell run before the command that, when a guard says to skip it,
    /// prints `marker` and the guard's word as the last line and exits 0.
    /// The marker is fresh for each run, so no output of the command (nor a
    /// login banner, which comes first) can pose as it.
    fn script(&self, marker: &str) -> String {
        let mut s = String::new();
        if let Some(path) = &self.creates {
            s.push_str(&format!(
                "if [ -e {} ]; then echo '{marker} creates'; exit 0; fi\n",
                quote(path)
            ));
        }
        if let Some(path) = &self.removes {
            s.push_str(&format!(
                "if [ ! -e {} ]; then echo '{marker} removes'; exit 0; fi\n",
                quote(path)
            ));
        }
        s
    }

    fn skipped(&self, guard: Guard) -> Outcome {
        match guard {
            Guard::Creates => Outcome::skipped(format!(
                "`{}` exists",
                self.creates.as_deref().unwrap_or_default()
            )),
            Guard::Removes => Outcome::skipped(format!(
                "`{}` does not exist",
                self.removes.as_deref().unwrap_or_default()
            )),
        }
    }
}

/// The exact line sent to the remote shell.
fn command_line(args: &CommandArgs, shell: bool, ctx: &Context<'_>) -> Result<String> {
    let body = match (&args.argv, &args.cmd) {
        (Some(argv), _) => argv
            .iter()
            .map(|a| ctx.render(a).map(|a| quote(&a)))
            .collect::<Result<Vec<_>>>()?
            .join(" "),
        (None, Some(cmd)) if shell => ctx.render(cmd)?,
        (None, Some(cmd)) => {
            let rendered = ctx.render(cmd)?;
            let words = split_words(&rendered)
                .map_err(|kind| crate::error::Error::input(ctx.location.clone(), kind))?;
            words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
        }
        (None, None) => {
            return Err(crate::error::Error::input(
                ctx.location.clone(),
                crate::error::InputKind::NoCommand,
            ));
        }
    };
    Ok(match ctx.render_opt(args.chdir.as_ref())? {
        Some(dir) => format!("cd {} && {body}", quote(&dir)),
        None => body,
    })
}

async fn exists(ctx: &Context<'_>, path: &str) -> Result<bool> {
    Ok(ctx
        .exec(&format!("test -e {}", quote(path)), None)
        .await?
        .success())
}

/// Split a command string into words the way a POSIX shell would for
/// quoting purposes: single quotes, double quotes and backslashes; no
/// expansion.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, crate::error::InputKind> {
    let unterminated = |quote: char| crate::error::InputKind::UnterminatedQuote {
        quote,
        within: Some(line.to_owned()),
    };
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(unterminated('\'')),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(unterminated('"')),
                        },
                        Some(c) => w.push(c),
                        None => return Err(unterminated('"')),
                    }
                }
            }
            '\\' => {
                if let Some(c) = chars.next() {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::{inline_options, split_words};

    #[test]
    fn option_words_of_a_free_form_line_are_taken_out_as_options() {
        let a = inline_options("make install creates=/usr/bin/tool chdir='/src/my tool'").unwrap();
        assert_eq!(a.cmd.as_deref(), Some("make install"));
        assert_eq!(a.creates.as_deref(), Some("/usr/bin/tool"));
        assert_eq!(a.chdir.as_deref(), Some("/src/my tool"));
        let a = inline_options("removes=\"{{ stamp }}\" rm -f {{ stamp }} x=1").unwrap();
        assert_eq!(a.cmd.as_deref(), Some("rm -f {{ stamp }} x=1"));
        assert_eq!(a.removes.as_deref(), Some("{{ stamp }}"));
        // Quoted or templated, a word is not an option; the lines stay.
        let script = "echo 'creates=/x' {{ 'chdir=/y' }}\n  cd /tmp\n  ls\n";
        let a = inline_options(script).unwrap();
        assert_eq!(a.cmd.as_deref(), Some(script));
        assert_eq!((a.creates, a.chdir), (None, None));
        let a = inline_options("FOO=bar env").unwrap();
        assert_eq!(a.cmd.as_deref(), Some("FOO=bar env"));
        assert!(inline_options("creates=/x").is_err());
        assert!(inline_options("ls executable=/bin/bash").is_err());
    }

    #[test]
    fn words_split_like_a_shell_without_expansion() {
        assert_eq!(
            split_words("echo  hi there").unwrap(),
            ["echo", "hi", "there"]
        );
        assert_eq!(
            split_words(r#"echo 'a b' "c $d" e\ f"#).unwrap(),
            ["echo", "a b", "c $d", "e f"]
        );
        assert_eq!(
            split_words(r#"printf "%s\n" ''"#).unwrap(),
            ["printf", r"%s\n", ""]
        );
        assert!(split_words("echo 'oops").is_err());
    }
}
