//! Ctrl-C during a run. The first SIGINT asks the run to stop: the executor
//! starts nothing new, drops the tasks in flight (which kills their remote
//! commands, see `ssh.rs`), reports them, and the recap is printed marked
//! interrupted with exit code 130 (128 + SIGINT, what shells report; Ansible
//! uses 99). A second SIGINT exits at once with 130, leaving whatever is
//! still running on the hosts.
//!
//! Without this, SIGINT's default action kills arpanet mid-task: no recap,
//! and the remote commands run on.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::exit;

/// A stop request shared by every job of a run; cheap to clone.
#[derive(Clone)]
pub(crate) struct Interrupt {
    flag: Arc<watch::Sender<bool>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            flag: Arc::new(watch::channel(false).0),
        }
    }
}

impl Interrupt {
    /// Ask the run to stop.
    pub(crate) fn trigger(&self) {
        self.flag.send_replace(true);
    }

    pub(crate) fn is_set(&self) -> bool {
        *self.flag.borrow()
    }

    /// Resolves once the run has been asked to stop.
    pub(crate) async fn wait(&self) {
        let mut rx = self.flag.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|set| *set).await;
    }

    /// Listen for SIGINT on the current runtime: the first triggers this
    /// interrupt, the second exits the process. Call from inside the
    /// runtime; the listener lives as long as the runtime.
    pub(crate) fn on_ctrl_c(&self) -> std::io::Result<()> {
        let mut signals =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let interrupt = self.clone();
        tokio::spawn(async move {
            if signals.recv().await.is_none() {
                return;
            }
            interrupt.trigger();
            eprintln!(
                "interrupted: stopping the running tasks (press Ctrl-C again to quit at once)"
            );
            if signals.recv().await.is_some() {
                std::process::exit(exit::INTERRUPTED);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Interrupt;

    #[tokio::test]
    async fn waiters_wake_when_triggered_and_later_ones_return_at_once() {
        let interrupt = Interrupt::default();
        assert!(!interrupt.is_set());
        let waiting = tokio::spawn({
            let interrupt = interrupt.clone();
            async move { interrupt.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        interrupt.trigger();
        waiting.await.unwrap();
        assert!(interrupt.is_set());
        interrupt.wait().await;
    }
}
