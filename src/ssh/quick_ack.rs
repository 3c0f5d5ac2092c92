//! The TCP stream to a host, acknowledging what it receives at once and
//! reading it in blocks.
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
//!
//! russh reads each packet in two exact reads (its length, then the rest),
//! and a task's answer is two or three small packets: unbuffered, that was
//! five `recvfrom` and four `setsockopt` per host and task. Reads smaller
//! than [`BLOCK`] are served from one block read ahead (4 KiB per host,
//! allocated on the first read); larger ones go straight to the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What one read from the socket asks for, at least.
const BLOCK: usize = 4096;

/// A TCP stream that acknowledges received data without delay.
pub(super) struct QuickAck {
    stream: TcpStream,
    /// Read ahead: `ahead[start..end]` is not handed out yet.
    ahead: Box<[u8]>,
    start: usize,
    end: usize,
}

impl QuickAck {
    pub(super) fn new(stream: TcpStream) -> QuickAck {
        QuickAck {
            stream,
            ahead: Box::default(),
            start: 0,
            end: 0,
        }
    }
}

/// Read from `stream` into `buf`, acknowledging at once what came.
fn poll_acked(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    let polled = Pin::new(&mut *stream).poll_read(cx, buf);
    if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
        acknowledge(stream);
    }
    polled
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start == this.end {
            if buf.remaining() >= BLOCK {
                return poll_acked(&mut this.stream, cx, buf);
            }
            if this.ahead.is_empty() {
                this.ahead = vec![0; BLOCK].into_boxed_slice();
            }
            let mut block = ReadBuf::new(&mut this.ahead);
            std::task::ready!(poll_acked(&mut this.stream, cx, &mut block))?;
            (this.start, this.end) = (0, block.filled().len());
        }
        let n = buf.remaining().min(this.end - this.start);
        buf.put_slice(&this.ahead[this.start..this.start + n]);
        this.start += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Send a pending acknowledgement now (a failure only costs the delay).
#[cfg(target_os = "linux")]
fn acknowledge(stream: &TcpStream) {
    let _ = rustix::net::sockopt::set_tcp_quickack(stream, true);
}

#[cfg(not(target_os = "linux"))]
fn acknowledge(_stream: &TcpStream) {}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Reads of every size, small ones served from the block read ahead
    /// and large ones straight from the socket, return the bytes sent, in
    /// order, and then the end of the stream.
    #[tokio::test]
    async fn reads_small_and_large_return_every_byte_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let data = sent.clone();
        let writer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // Uneven writes, so reads end anywhere in a block.
            for chunk in data.chunks(1_337) {
                socket.write_all(chunk).await.unwrap();
            }
        });
        let mut stream = QuickAck::new(TcpStream::connect(addr).await.unwrap());
        let mut got = Vec::new();
        let sizes = [4, 60, 1, 9_000, 4, 3, 70_000, 17, 4_096, 4_095];
        for size in sizes.iter().cycle() {
            let mut part = vec![0; (*size).min(sent.len() - got.len())];
            if part.is_empty() {
                break;
            }
            stream.read_exact(&mut part).await.unwrap();
            got.extend_from_slice(&part);
        }
        writer.await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "the bytes read differ from the bytes sent");
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{} bytes after the end", rest.len());
    }
}
