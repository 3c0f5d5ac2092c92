//! The local side of an interactive command (`exec -t`, `shell`): the
//! terminal put in raw mode (so every key, Ctrl-C included, goes to the
//! remote program, and the terminal is restored however the session
//! ends), its window size sent at the start and on every resize
//! (SIGWINCH), and stdin forwarded as it is typed.
//!
//! stdin is read on a plain thread with blocking reads: tokio's stdin
//! would keep the runtime from shutting down while a read is pending.

use std::io::{Read, Write};

use rustix::termios::{self, OptionalActions, Termios};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::ssh::{PtyInput, SshTransport};

/// The local terminal in raw mode until dropped.
struct Raw {
    saved: Termios,
}

impl Raw {
    /// Raw mode on stdin, when it is a terminal.
    fn enter() -> Result<Option<Raw>> {
        let stdin = std::io::stdin();
        if !termios::isatty(&stdin) {
            return Ok(None);
        }
        let saved = termios::tcgetattr(&stdin)
            .map_err(|e| Error::Internal(format!("cannot read the terminal's settings: {e}")))?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Flush, &raw)
            .map_err(|e| Error::Internal(format!("cannot put the terminal in raw mode: {e}")))?;
        Ok(Some(Raw { saved }))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Flush, &self.saved);
    }
}

/// The local window's columns and rows (stdout's, else stdin's), 80×24
/// when neither is a terminal.
fn window() -> (u32, u32) {
    let size = termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| termios::tcgetwinsize(std::io::stdin()));
    match size {
        Ok(size) if size.ws_col > 0 && size.ws_row > 0 => {
            (u32::from(size.ws_col), u32::from(size.ws_row))
        }
        _ => (80, 24),
    }
}

/// Run `command` on `conn` interactively on a remote terminal, wired to
/// this one; returns its exit status.
pub(crate) async fn interactive(conn: &SshTransport, command: &str) -> Result<u32> {
    let term = std::env::var("TERM")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "xterm-256color".to_owned());
    let (tx, mut rx) = mpsc::channel(64);
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(|e| Error::Internal(format!("cannot listen for window changes: {e}")))?;
    let resizes = tx.clone();
    let watcher = tokio::spawn(async move {
        while resized.recv().await.is_some() {
            let (cols, rows) = window();
            if resizes.send(PtyInput::Resize(cols, rows)).await.is_err() {
                break;
            }
        }
    });
    let raw = Raw::enter()?;
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            let key = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => PtyInput::Eof,
                Ok(n) => PtyInput::Data(buf[..n].to_vec()),
            };
            let end = key == PtyInput::Eof;
            if tx.blocking_send(key).is_err() || end {
                break;
            }
        }
    });
    let mut stdout = std::io::stdout();
    let mut show = |data: &[u8]| {
        let _ = stdout.write_all(data);
        let _ = stdout.flush();
    };
    let status = conn
        .exec_pty(command, &term, window(), &mut rx, &mut show)
        .await;
    drop(raw);
    watcher.abort();
    status
}
