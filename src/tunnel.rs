//! A local port forwarded over a host's connection, as `ssh -L
//! 127.0.0.1:PORT:HOST:PORT` does: every connection accepted here gets its
//! own channel to `HOST:PORT` as seen from the host (`Transport::forward`),
//! so a browser's many parallel requests each travel on their own.
//!
//! The listener is bound to 127.0.0.1 only: whoever reaches it reaches the
//! remote port with the SSH user's rights, so it must not be open to the
//! network. A connection lost under the tunnel is made again (once per
//! failed channel), so a tunnel left open across a node's sshd restart
//! carries on.

use std::future::Future;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, Result};
use crate::transport::{Connector, Target, Transport};

/// A bound local port, not yet serving.
pub(crate) struct Tunnel {
    listener: std::net::TcpListener,
}

/// Where a tunnel's channels go: one host's connection (made again when it
/// is lost) and the address to reach from there.
pub(crate) struct Remote<'a> {
    pub(crate) connector: &'a dyn Connector,
    pub(crate) target: &'a Target,
    pub(crate) connection: tokio::sync::Mutex<Arc<dyn Transport>>,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Name each connection on stderr.
    pub(crate) verbose: bool,
}

impl Tunnel {
    /// Listen on `127.0.0.1:port` (0: a free port).
    pub(crate) fn bind(port: u16) -> std::io::Result<Tunnel> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        Ok(Tunnel { listener })
    }

    /// The local port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Carry every connection to `remote` until `stop` resolves; the open
    /// ones are then dropped (their channels closed).
    pub(crate) async fn serve(
        self,
        remote: &Remote<'_>,
        stop: impl Future<Output = ()>,
    ) -> Result<()> {
        let listener = TcpListener::from_std(self.listener)
            .map_err(|e| Error::Internal(format!("cannot listen on the local port: {e}")))?;
        let mut open = FuturesUnordered::new();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => open.push(remote.carry(socket, peer)),
                    Err(e) => {
                        // Out of file descriptors, most likely: let some close.
                        eprintln!("warning: cannot accept a connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                Some(()) = open.next(), if !open.is_empty() => {}
            }
        }
    }
}

impl Remote<'_> {
    /// Copy between `socket` and a new channel until both sides are done.
    async fn carry(&self, mut socket: TcpStream, peer: std::net::SocketAddr) {
        let mut channel = match self.channel().await {
            Ok(channel) => channel,
            Err(err) => {
                eprintln!("warning: {err}");
                return;
            }
        };
        if self.verbose {
            eprintln!(
                "{}: connection from {peer} forwarded to {}:{}",
                self.target.name, self.host, self.port
            );
        }
        // Either side may simply go away (a browser closing a tab).
        let _ = tokio::io::copy_bidirectional(&mut socket, &mut channel).await;
    }

    /// A new channel to the remote address; the connection is made again
    /// first when it was lost.
    async fn channel(&self) -> Result<Box<dyn crate::transport::Stream>> {
        let connection = self.connection.lock().await.clone();
        match connection.forward(&self.host, self.port).await {
            Err(Error::Unreachable { .. }) => {
                let mut current = self.connection.lock().await;
                // Another channel may have made it again meanwhile.
                if Arc::ptr_eq(&current, &connection) {
                    eprintln!("{}: connection lost; connecting again", self.target.name);
                    *current = self.connector.reconnect(self.target).await?;
                }
                current.forward(&self.host, self.port).await
            }
            other => other,
        }
    }

    /// Close the connection.
    pub(crate) async fn close(&self) {
        let connection = self.connection.lock().await.clone();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), connection.close()).await;
    }
}
