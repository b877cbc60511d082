//! Coalescing an HTTP/2 connection's writes: one TLS write for the frames of many streams.
//!
//! When an event reaches the watchers of a connection, each watch stream hands its frame to the
//! connection as it runs, and the connection would encrypt and send after every one of them:
//! a TLS record and a system call per frame, which is most of the server's work with thousands
//! of watchers. This writer keeps what the connection writes in memory and answers a flush at
//! once, while the actual write waits for the end of the current scheduler round (`yield_now`):
//! the streams woken in that round add their frames to the same buffer, and the connection's
//! next flush, which the round's end triggers, sends them all in one write. The connection is
//! never made to wait (h2 flushes after every large frame to free its own buffer); the cost
//! is one scheduler round of latency, which is short when the server is idle. The buffer is
//! bounded: a write beyond it goes through at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write goes through without waiting for a flush.
const LIMIT: usize = 256 * 1024;

/// A writer that batches until flushed, and defers the flush by one scheduler round.
pub struct Coalesce<T> {
    inner: T,
    /// What was written and not sent yet, from `sent` on.
    buf: Vec<u8>,
    sent: usize,
    /// The scheduler round held bytes wait for, once a flush started it.
    round: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<T> Coalesce<T> {
    /// Wraps a connection's stream.
    pub fn new(inner: T) -> Coalesce<T> {
        Coalesce {
            inner,
            buf: Vec::new(),
            sent: 0,
            round: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes out everything held.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.buf.len() + data.len() > LIMIT {
            ready!(self.poll_send(cx))?;
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.buf.len() + len > LIMIT {
            ready!(self.poll_send(cx))?;
        }
        for b in bufs {
            self.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.sent < self.buf.len() {
            let round = self
                .round
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            if round.as_mut().poll(cx).is_pending() {
                // Held until the round ends; its end wakes the connection, which flushes again.
                return Poll::Ready(Ok(()));
            }
            self.round = None;
            ready!(self.poll_send(cx))?;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_arrive_whole_and_in_order_after_a_flush() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(client);
        let mut want = Vec::new();
        for i in 0..2_000u32 {
            let chunk = i.to_be_bytes().repeat((i % 97) as usize + 1);
            w.write_all(&chunk).await.unwrap();
            want.extend_from_slice(&chunk);
        }
        w.flush().await.unwrap();
        // A flush holds the bytes until the round ends, then the next flush sends them.
        tokio::task::yield_now().await;
        w.flush().await.unwrap();
        w.write_all(b"tail").await.unwrap();
        want.extend_from_slice(b"tail");
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, want);
    }
}
