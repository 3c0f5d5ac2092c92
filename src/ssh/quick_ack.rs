//! The TCP stream to a host, acknowledging what it receives at once.
//!
//! sshd leaves Nagle's algorithm on for sessions without a terminal, so
//! when it writes two packets back to back (after the login it sends a
//! host-keys notice, then confirms our channel; later a command's stdout,
//! then its stderr), the second waits until the first is acknowledged.
//! Linux delays that acknowledgement up to 40 ms when the receiver has
//! nothing of its own to send, and arpanet has nothing to send while it
//! waits for the confirmation or the output. Measured on one host: a run
//! of one task took 80 ms, 42 of them in that wait.
//!
//! So after each read with data, [`QuickAck`] sets `TCP_QUICKACK`, which
//! sends an acknowledgement still pending right away (the kernel clears the
//! flag again by itself). One system call per read, on Linux only.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that acknowledges received data without delay.
pub(super) struct QuickAck(pub(super) TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            acknowledge(&self.0);
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Send a pending acknowledgement now (a failure only costs the delay).
#[cfg(target_os = "linux")]
fn acknowledge(stream: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_quickack(stream, true);
}

#[cfg(not(target_os = "linux"))]
fn acknowledge(_stream: &TcpStream) {}
