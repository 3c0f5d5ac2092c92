//! `lookup()` and `query()` (`q()`) with the plugins playbooks use most,
//! run on this machine as in Ansible: `env` (a variable of arpanet's own
//! environment), `file` (a file's text: beside a role's `files/`, the
//! playbook's `files/` and the playbook, or an absolute path), `pipe` (a
//! command's output, through `sh -c`), `vars` (variables by a computed
//! name), `lines` (a command's output, line by line), and `items`/`list`.
//! `lookup` joins several results with commas unless `wantlist=true`;
//! `query` always gives the list. A plugin not here is refused by name.

use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Environment, Error, ErrorKind, State};

const PLUGINS: &[&str] = &["env", "file", "pipe", "vars", "lines", "items", "list"];

pub(super) fn add(env: &mut Environment<'static>) {
    env.add_function(
        "lookup",
        |state: &State<'_, '_>, name: &str, terms: Rest<Value>, kwargs: Kwargs| {
            let wantlist: Option<bool> = kwargs.get("wantlist")?;
            let found = run(state, name, &terms, &kwargs)?;
            kwargs.assert_all_used()?;
            if wantlist == Some(true) {
                return Ok(Value::from(found));
            }
            // None as a null, one as itself, several as text joined with
            // commas.
            Ok(match found.len() {
                0 => Value::from(()),
                1 => found.into_iter().next().unwrap_or_default(),
                _ => Value::from(
                    found
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            })
        },
    );
    let query = |state: &State<'_, '_>, name: &str, terms: Rest<Value>, kwargs: Kwargs| {
        let found = run(state, name, &terms, &kwargs)?;
        kwargs.assert_all_used()?;
        Ok::<_, Error>(Value::from(found))
    };
    env.add_function("query", query);
    env.add_function("q", query);
}

fn run(
    state: &State<'_, '_>,
    name: &str,
    terms: &[Value],
    kwargs: &Kwargs,
) -> Result<Vec<Value>, Error> {
    let name = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    let errors: Option<String> = kwargs.get("errors")?;
    let lenient = matches!(errors.as_deref(), Some("ignore" | "warn"));
    let texts = || -> Result<Vec<String>, Error> {
        terms
            .iter()
            .map(|t| match t.as_str() {
                Some(s) => Ok(s.to_owned()),
                None => Err(bad(format!(
                    "lookup('{name}') takes strings, got {}",
                    t.kind()
                ))),
            })
            .collect()
    };
    match name {
        "env" => {
            let default: Option<Value> = kwargs.get("default")?;
            texts()?
                .iter()
                .map(|var| match std::env::var(var) {
                    Ok(value) => Ok(Value::from(value)),
                    Err(_) => Ok(default.clone().unwrap_or_else(|| Value::from(""))),
                })
                .collect()
        }
        "file" => {
            let rstrip: Option<bool> = kwargs.get("rstrip")?;
            let lstrip: Option<bool> = kwargs.get("lstrip")?;
            let mut out = Vec::new();
            for term in texts()? {
                match find_file(state, &term).and_then(|p| std::fs::read_to_string(p).ok()) {
                    Some(mut text) => {
                        if rstrip.unwrap_or(true) {
                            text.truncate(text.trim_end().len());
                        }
                        if lstrip.unwrap_or(false) {
                            text = text.trim_start().to_owned();
                        }
                        out.push(Value::from(text));
                    }
                    None if lenient => {}
                    None => {
                        return Err(bad(format!(
                            "lookup('file'): no file `{term}` (looked in the role's and the \
                             playbook's `files/` and beside the playbook)"
                        )))
                    }
                }
            }
            Ok(out)
        }
        "pipe" | "lines" => {
            let mut out = Vec::new();
            // In the playbook's directory, as Ansible runs them.
            let dir = state
                .lookup("playbook_dir")
                .and_then(|v| v.as_str().map(PathBuf::from))
                .filter(|d| d.is_dir());
            for command in texts()? {
                let mut sh = std::process::Command::new("sh");
                if let Some(dir) = &dir {
                    sh.current_dir(dir);
                }
                let done = sh
                    .arg("-c")
                    .arg(&command)
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| bad(format!("lookup('{name}'): cannot run `sh`: {e}")))?;
                if !done.status.success() && !lenient {
                    return Err(bad(format!(
                        "lookup('{name}'): `{command}` failed ({})",
                        done.status
                    )));
                }
                let text = String::from_utf8_lossy(&done.stdout);
                match name {
                    "pipe" => out.push(Value::from(text.trim_end_matches('\n'))),
                    _ => out.extend(text.lines().map(Value::from)),
                }
            }
            Ok(out)
        }
        "vars" => {
            let default: Option<Value> = kwargs.get("default")?;
            let mut out = Vec::new();
            for var in texts()? {
                match state.lookup(&var).filter(|v| !v.is_undefined()) {
                    Some(value) => out.push(value),
                    None => match &default {
                        Some(default) => out.push(default.clone()),
                        None => {
                            return Err(Error::new(
                                ErrorKind::UndefinedError,
                                format!("lookup('vars'): `{var}` is undefined"),
                            ))
                        }
                    },
                }
            }
            Ok(out)
        }
        // Each term, a list spliced in one level (`items`) or as it is.
        "items" => {
            let mut out = Vec::new();
            for term in terms {
                match term.kind() {
                    minijinja::value::ValueKind::Seq => out.extend(term.try_iter()?),
                    _ => out.push(term.clone()),
                }
            }
            Ok(out)
        }
        "list" => Ok(terms.to_vec()),
        other => Err(Error::new(
            ErrorKind::UnknownFunction,
            format!(
                "lookup plugin `{other}` is not one arpanet has (it has {})",
                PLUGINS.join(", ")
            ),
        )),
    }
}

/// Where `lookup('file', name)` finds `name`: itself when absolute, else
/// in the task's role's `files/`, the playbook's `files/`, beside the
/// playbook, then in the working directory.
fn find_file(state: &State<'_, '_>, name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.is_file().then(|| path.to_path_buf());
    }
    let dir = |var: &str| {
        state
            .lookup(var)
            .and_then(|v| v.as_str().map(PathBuf::from))
    };
    let mut places = Vec::new();
    if let Some(role) = dir("role_path") {
        places.push(role.join("files").join(name));
        places.push(role.join(name));
    }
    if let Some(playbook) = dir("playbook_dir") {
        places.push(playbook.join("files").join(name));
        places.push(playbook.join(name));
    }
    places.push(path.to_path_buf());
    places.into_iter().find(|p| p.is_file())
}

fn bad(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}
