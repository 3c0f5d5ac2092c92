//! Output lines from many hosts, interleaved as they arrive (`exec`,
//! `logs`): each line is prefixed with where it came from, the prefixes
//! padded to one width so the text lines up, and each source coloured
//! differently on a terminal (as `docker compose logs` does), so a reader
//! can follow one host in the mix. Without colour the text is the same.

use crate::transport::Pipe;

/// Colours given to sources in turn: green, yellow, blue, magenta, cyan,
/// and their bright forms.
const PALETTE: [&str; 10] = [
    "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m", "\x1b[92m", "\x1b[93m", "\x1b[94m",
    "\x1b[95m", "\x1b[96m",
];

/// The mark between the prefix and a line: `|` for stdout, `!` for stderr.
pub(crate) fn mark(pipe: Pipe) -> char {
    match pipe {
        Pipe::Stdout => '|',
        Pipe::Stderr => '!',
    }
}

/// How lines of a known set of sources are prefixed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefixes {
    sources: Vec<String>,
    width: usize,
    colour: bool,
}

impl Prefixes {
    /// Prefixes for `sources` (in order: each gets the next colour),
    /// coloured when `colour`.
    pub(crate) fn new(sources: Vec<String>, colour: bool) -> Prefixes {
        let width = sources.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        Prefixes {
            sources,
            width,
            colour,
        }
    }

    /// `SOURCE | text` (`!` for stderr), the source padded and coloured.
    pub(crate) fn line(&self, source: &str, pipe: Pipe, text: &str) -> String {
        let padded = format!("{source:<width$}", width = self.width);
        let mark = mark(pipe);
        match self.colour {
            false => format!("{padded} {mark} {text}"),
            true => {
                let at = self.sources.iter().position(|s| s == source).unwrap_or(0);
                let colour = PALETTE[at % PALETTE.len()];
                let mark = match pipe {
                    Pipe::Stdout => mark.to_string(),
                    Pipe::Stderr => format!("\x1b[31m{mark}\x1b[0m"),
                };
                format!("{colour}{padded}\x1b[0m {mark} {text}")
            }
        }
    }
}

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset.
pub(crate) fn colour_on_stdout() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

#[cfg(test)]
mod tests {
    use super::Prefixes;
    use crate::transport::Pipe;

    #[test]
    fn prefixes_line_up_and_mark_stderr() {
        let plain = Prefixes::new(vec!["node1".into(), "db".into()], false);
        assert_eq!(plain.line("db", Pipe::Stdout, "up"), "db    | up");
        assert_eq!(plain.line("node1", Pipe::Stderr, "oops"), "node1 ! oops");
        let coloured = Prefixes::new(vec!["node1".into(), "db".into()], true);
        assert_eq!(
            coloured.line("db", Pipe::Stdout, "up"),
            "\x1b[33mdb   \x1b[0m | up"
        );
        assert!(coloured
            .line("node1", Pipe::Stderr, "oops")
            .starts_with("\x1b[32mnode1\x1b[0m \x1b[31m!\x1b[0m"));
    }
}
