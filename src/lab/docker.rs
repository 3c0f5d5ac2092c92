//! The `docker` command line, run as a child process. Every failure becomes
//! an `Error::Lab` naming the command and carrying the end of its stderr.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// How many lines of a failed command's stderr an error shows.
const STDERR_TAIL: usize = 12;

pub const START_DOCKERD_HINT: &str = "start a Docker engine, e.g. `scripts/lib.sh`'s \
     `ensure_dockerd`, or by hand: `dockerd --pidfile /run/arpanet-dockerd.pid \
     >/var/log/arpanet-dockerd.log 2>&1 &`";

/// The local Docker engine, reached through the `docker` CLI.
#[derive(Debug, Clone, Default)]
pub struct Docker;

impl Docker {
    /// Run `docker ARGS`; its trimmed stdout on success.
    pub fn out<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        self.out_with_input(args, None)
    }

    /// Run `docker ARGS` with `input` on its stdin.
    pub fn out_with_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: Option<&[u8]>,
    ) -> Result<String> {
        let output = self.raw(args, input)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(failed(&describe(args), &output))
        }
    }

    /// Run `docker ARGS`, ignoring its output.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<()> {
        self.out(args).map(drop)
    }

    /// Whether `docker ARGS` succeeds; output is discarded.
    pub fn succeeds<S: AsRef<OsStr>>(&self, args: &[S]) -> bool {
        self.raw(args, None)
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Run `docker ARGS` and hand back whatever it did, success or not.
    pub fn raw<S: AsRef<OsStr>>(&self, args: &[S], input: Option<&[u8]>) -> Result<Output> {
        let mut command = Command::new("docker");
        command.args(args);
        command.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| spawn_error("docker", &e))?;
        if let Some(bytes) = input {
            if let Some(mut stdin) = child.stdin.take() {
                // A child that exits early closes the pipe; its exit status
                // tells the story, so a write error here is not the cause.
                let _ = stdin.write_all(bytes);
            }
        }
        child
            .wait_with_output()
            .map_err(|e| lab_error(format!("waiting for `{}` failed: {e}", describe(args))))
    }

    /// The server version, or a clear error when the engine does not answer.
    pub fn engine_version(&self) -> Result<String> {
        let output = self.raw(&["version", "--format", "{{.Server.Version}}"], None)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned());
        }
        Err(Error::Lab {
            message: format!(
                "the Docker engine does not answer: {}",
                tail(&String::from_utf8_lossy(&output.stderr), 3)
            ),
            hint: Some(START_DOCKERD_HINT.into()),
        })
    }

    pub fn image_exists(&self, reference: &str) -> bool {
        self.succeeds(&["image", "inspect", "--format", "{{.Id}}", reference])
    }

    /// A label of an image, `None` when the image or the label is missing.
    pub fn image_label(&self, reference: &str, label: &str) -> Option<String> {
        let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
        self.out(&["image", "inspect", "--format", &format, reference])
            .ok()
            .filter(|v| !v.is_empty() && v != "<no value>")
    }
}

/// Quote a command line for a message.
pub fn describe<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut text = String::from("docker");
    for arg in args {
        let arg = arg.as_ref().to_string_lossy();
        text.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
            text.push_str(&format!("'{}'", arg.replace('\'', "'\\''")));
        } else {
            text.push_str(&arg);
        }
    }
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" ...");
    }
    text
}

/// The last `lines` non-empty lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn lab_error(message: impl Into<String>) -> Error {
    Error::Lab {
        message: message.into(),
        hint: None,
    }
}

fn failed(command: &str, output: &Output) -> Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output
        .status
        .code()
        .map_or_else(|| "a signal".to_owned(), |c| format!("exit code {c}"));
    let hint = if stderr.contains("Cannot connect to the Docker daemon")
        || stderr.contains("Is the docker daemon running")
    {
        Some(START_DOCKERD_HINT.to_owned())
    } else if stderr.contains("Pool overlaps") {
        Some(
            "another network uses that address range; pick another with `--subnet` \
             (or `ARPANET_LAB_SUBNET`)"
                .to_owned(),
        )
    } else {
        None
    };
    Error::Lab {
        message: format!(
            "`{command}` failed with {code}:\n{}",
            indent(&tail(&stderr, STDERR_TAIL))
        ),
        hint,
    }
}

pub fn spawn_error(program: &str, err: &std::io::Error) -> Error {
    let hint = match (program, err.kind()) {
        ("docker", std::io::ErrorKind::NotFound) => {
            Some("install Docker: `apt-get install -y docker.io`".to_owned())
        }
        ("mmdebstrap", std::io::ErrorKind::NotFound) => {
            Some("install it: `apt-get install -y mmdebstrap`".to_owned())
        }
        ("ssh-keygen", std::io::ErrorKind::NotFound) => {
            Some("install it: `apt-get install -y openssh-client`".to_owned())
        }
        _ => None,
    };
    Error::Lab {
        message: format!("cannot run `{program}`: {err}"),
        hint,
    }
}

pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_arguments_with_spaces() {
        assert_eq!(
            describe(&["run", "--device-cgroup-rule", "a *:* rwm"]),
            "docker run --device-cgroup-rule 'a *:* rwm'"
        );
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail("", 2), "");
    }
}
