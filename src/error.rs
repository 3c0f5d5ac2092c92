//! Every way arpanet can fail, with the message a person reads and the exit
//! code the shell sees. Bad input carries its file, line and column so the
//! operator can jump straight to the mistake; host faults carry the host and
//! a hint where the cause is known.

use std::fmt;
use std::path::PathBuf;

/// Exit codes, as `ansible-playbook` uses them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const HOST_FAILED: i32 = 2;
    pub const HOST_UNREACHABLE: i32 = 4;
    pub const BAD_INPUT: i32 = 5;
}

/// Where in an input file a problem sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    /// The offending source line, if it could be read.
    pub snippet: Option<String>,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
            snippet: None,
        }
    }

    /// Fill `snippet` with the line from `source`.
    pub fn with_source(mut self, source: &str) -> Self {
        if self.line > 0 {
            self.snippet = source.lines().nth(self.line - 1).map(str::to_owned);
        }
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input at a known place in a file (inventory, playbook, vars,
    /// template).
    #[error("{}", located(.location, .message, .hint.as_deref()))]
    Input {
        location: Location,
        message: String,
        hint: Option<String>,
    },

    /// Bad command-line options or input that has no file position.
    #[error("{message}{}", hint_suffix(.hint.as_deref()))]
    Usage {
        message: String,
        hint: Option<String>,
    },

    /// A local file could not be read or written.
    #[error("cannot {action} `{}`: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A host could not be reached or authenticated.
    #[error("{host}: {message}{}", hint_suffix(.hint.as_deref()))]
    Unreachable {
        host: String,
        message: String,
        hint: Option<String>,
    },

    /// A remote operation failed on a reachable host (channel error, transfer).
    #[error("{host}: {message}")]
    Remote { host: String, message: String },

    /// The local lab could not be built or run.
    #[error("lab: {message}{}", hint_suffix(.hint.as_deref()))]
    Lab {
        message: String,
        hint: Option<String>,
    },

    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input { .. } | Error::Usage { .. } => exit::BAD_INPUT,
            // An inventory, playbook or vars file that cannot be read.
            Error::Io { action: "read", .. } => exit::BAD_INPUT,
            Error::Unreachable { .. } => exit::HOST_UNREACHABLE,
            Error::Remote { .. } => exit::HOST_FAILED,
            Error::Io { .. } | Error::Lab { .. } | Error::Internal(_) => exit::ERROR,
        }
    }

    pub fn input(location: Location, message: impl Into<String>) -> Self {
        Error::Input {
            location,
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Attach or replace the hint of an input, usage, unreachable or lab error.
    pub fn with_hint(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            Error::Input { hint, .. }
            | Error::Usage { hint, .. }
            | Error::Unreachable { hint, .. }
            | Error::Lab { hint, .. } => *hint = Some(text.into()),
            _ => {}
        }
        self
    }
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

fn located(location: &Location, message: &str, hint: Option<&str>) -> String {
    let mut out = format!("{location}: {message}");
    if let Some(snippet) = &location.snippet {
        let number = location.line.to_string();
        let pad = " ".repeat(number.len());
        out.push_str(&format!("\n{pad} |\n{number} | {snippet}"));
        if location.column > 0 {
            let caret_pad: String = snippet
                .chars()
                .take(location.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n{pad} | {caret_pad}^"));
        }
    }
    out.push_str(&hint_suffix(hint));
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_error_shows_file_line_and_caret() {
        let loc = Location::new("site.yml", 2, 5).with_source("- hosts: all\n    nmae: x\n");
        let err = Error::input(loc, "unknown field `nmae`").with_hint("did you mean `name`?");
        let text = err.to_string();
        assert!(
            text.starts_with("site.yml:2:5: unknown field `nmae`"),
            "{text}"
        );
        assert!(text.contains("2 |     nmae: x"), "{text}");
        assert!(text.contains("  |     ^"), "{text}");
        assert!(text.ends_with("hint: did you mean `name`?"), "{text}");
        assert_eq!(err.exit_code(), exit::BAD_INPUT);
    }
}
