//! `command` and `shell`: run a program on the host. `command` passes each
//! word quoted so the remote shell interprets nothing; `shell` hands the line
//! to the shell as written.

use super::{Context, Outcome};
use crate::error::Result;
use crate::playbook::CommandArgs;
use crate::transport::quote;

pub async fn run(args: &CommandArgs, shell: bool, ctx: &Context<'_>) -> Result<Outcome> {
    let line = command_line(args, shell, ctx)?;
    if let Some(path) = ctx.render_opt(args.creates.as_ref())? {
        if exists(ctx, &path).await? {
            return Ok(Outcome::skipped(format!("`{path}` exists")));
        }
    }
    if let Some(path) = ctx.render_opt(args.removes.as_ref())? {
        if !exists(ctx, &path).await? {
            return Ok(Outcome::skipped(format!("`{path}` does not exist")));
        }
    }
    if ctx.check {
        return Ok(Outcome::skipped("commands do not run in check mode"));
    }
    let stdin = ctx.render_opt(args.stdin.as_ref())?;
    let out = ctx.exec(&line, stdin.as_deref().map(str::as_bytes)).await?;
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
                .map_err(|m| crate::error::Error::input(ctx.location.clone(), m))?;
            words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
        }
        (None, None) => {
            return Err(crate::error::Error::input(
                ctx.location.clone(),
                "the task gives no command to run",
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
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
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
                        None => return Err(format!("unterminated single quote in `{line}`")),
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
                            None => return Err(format!("unterminated double quote in `{line}`")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(format!("unterminated double quote in `{line}`")),
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
    use super::split_words;

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
