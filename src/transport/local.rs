//! This machine as a [`Transport`]: what `delegate_to: localhost` and
//! `local_action` run on when the inventory has no `localhost`, as
//! Ansible's implicit localhost does, without SSH. Commands run through
//! `sh -c` as the user running arpanet; a dropped exec kills its shell.

use std::process::Stdio;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Capped, Gate, Gated, Output, Stream, Transport};
use crate::error::{Error, Result};

pub(crate) struct LocalShell;

impl Transport for LocalShell {
    fn exec_gated<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a [u8]>,
        _: &'a Gate<'a>,
    ) -> BoxFuture<'a, Result<Gated>> {
        Box::pin(async {
            Err(Error::usage(
                "`become` on this machine (a local connection) is not something arpanet does \
                 yet: run arpanet as the user the task needs, or reach the host over SSH",
            ))
        })
    }

    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output>> {
        Box::pin(async move {
            let failed = |e: std::io::Error| Error::Internal(format!("cannot run `sh` here: {e}"));
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .stdin(match stdin {
                    Some(_) => Stdio::piped(),
                    None => Stdio::null(),
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(failed)?;
            let input = child.stdin.take();
            let feed = async move {
                if let (Some(mut pipe), Some(bytes)) = (input, stdin) {
                    // A command that exits without reading its input is fine.
                    let _ = pipe.write_all(bytes).await;
                }
            };
            let stdout = child.stdout.take().map(read_capped);
            let stderr = child.stderr.take().map(read_capped);
            let ((), out, err) =
                tokio::join!(feed, async move { maybe(stdout).await }, async move {
                    maybe(stderr).await
                },);
            let status = child.wait().await.map_err(failed)?;
            let status = match status.code() {
                Some(code) => code as u32,
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    status.signal().map_or(255, |s| 128 + s as u32)
                }
            };
            Ok(Output {
                stdout: out,
                stderr: err,
                status,
            })
        })
    }

    fn forward<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(|e| Error::Internal(format!("cannot connect to {host}:{port}: {e}")))?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn details(&self) -> Option<String> {
        Some("this machine, without SSH".into())
    }
}

async fn maybe(read: Option<impl std::future::Future<Output = String>>) -> String {
    match read {
        Some(read) => read.await,
        None => String::new(),
    }
}

/// Everything `reader` gives until EOF, capped as remote output is.
async fn read_capped(mut reader: impl AsyncRead + Unpin) -> String {
    let mut capped = Capped::default();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        capped.push(&buf[..n]);
    }
    capped.into_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_through_sh_with_stdin_and_reports_the_exit_status() {
        let out = LocalShell
            .exec(
                "read line; echo \"got $line\"; echo err >&2; exit 3",
                Some(b"hi\n"),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout, "got hi\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status, 3);
        let out = LocalShell.exec("kill -TERM $$", None).await.unwrap();
        assert_eq!(out.status, 128 + 15);
    }
}
