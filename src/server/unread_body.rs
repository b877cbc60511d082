//! Request bodies that a handler leaves unread (every early answer: 401, 403, 404, 405, 406,
//! 413, 415, 400, ...), handled so that clients get the answer and a cleanly ended stream.
//!
//! - **HTTP/1.1**: the rest of the body is read and discarded *after* the response, up to
//!   256 KiB (Go's `maxPostHandlerReadBytes` in `net/http`), so the keep-alive connection
//!   survives; a larger body closes the connection, as Go's server does.
//! - **HTTP/2**: a client that sees a complete answer before it has finished uploading stops
//!   uploading, and curl then ends its side with an empty `END_STREAM` frame, short of the
//!   declared content-length: the h2 library resets that stream with `PROTOCOL_ERROR`, and the
//!   client reports a stream error instead of the answer. So the rest of the body (up to
//!   256 KiB, for at most a second) is read and discarded *before* the answer is sent
//!   ([`settle`]); the exchange then ends like any other. A body that does not end within those
//!   bounds is dropped once the answer has been sent, which ends the stream with
//!   `RST_STREAM(NO_ERROR)`, what Go's HTTP/2 server sends after a complete response to a
//!   request still uploading (RFC 9113 §8.1). Dropping it before the answer is sent would reset
//!   the stream with `CANCEL` and lose the answer.

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most bytes of an unread request body read and discarded after an early answer (Go's
/// `maxPostHandlerReadBytes`).
pub const MAX_DRAINED_BYTES: usize = 256 * 1024;

/// How long the rest of an unread HTTP/1 body may take to arrive, after the answer, before the
/// connection is given up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an HTTP/2 answer waits for the rest of an unread body ([`settle`]).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);

/// The request body handed to the application. When it is dropped before its end, the
/// underlying body goes back to the response side, which drains it once the response is sent.
pub struct RequestBody {
    inner: Option<Incoming>,
    finished: bool,
    unread: Option<oneshot::Sender<Incoming>>,
}

/// The response body handed to the server: the application's body, plus the request body to
/// let go of when the response has been sent.
pub struct ResponseBody<B> {
    inner: B,
    unread: Option<oneshot::Receiver<Incoming>>,
    /// HTTP/2: the unread body is dropped, not drained.
    http2: bool,
}

/// Splits a connection's request body into the application's side and the guard that the
/// response must carry ([`ResponseBody::new`]).
pub fn split(body: Incoming) -> (RequestBody, oneshot::Receiver<Incoming>) {
    let (tx, rx) = oneshot::channel();
    let finished = body.is_end_stream();
    (
        RequestBody {
            inner: Some(body),
            finished,
            unread: Some(tx),
        },
        rx,
    )
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(Body::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let (Some(body), Some(tx)) = (self.inner.take(), self.unread.take())
            && !self.finished
            && !body.is_end_stream()
        {
            let _ = tx.send(body);
        }
    }
}

impl<B> ResponseBody<B> {
    /// Wraps a response body with the request body guard from [`split`], for a request over
    /// HTTP/2 (`http2`) or HTTP/1.
    pub fn new(inner: B, unread: oneshot::Receiver<Incoming>, http2: bool) -> ResponseBody<B> {
        ResponseBody {
            inner,
            unread: Some(unread),
            http2,
        }
    }
}

impl<B: Body + Unpin> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ResponseBody<B> {
    /// The server drops the response body once it has sent all of it (or the connection
    /// failed): only now may the request body be let go of.
    fn drop(&mut self) {
        let Some(mut unread) = self.unread.take() else {
            return;
        };
        let http2 = self.http2;
        match unread.try_recv() {
            // HTTP/2: dropped, the stream ends with `RST_STREAM(NO_ERROR)`.
            Ok(body) if http2 => drop(body),
            Ok(mut body) => {
                tokio::spawn(async move { discard(&mut body, DRAIN_TIMEOUT).await });
            }
            // The request body was read to its end (or never existed).
            Err(oneshot::error::TryRecvError::Closed) => {}
            // Something still holds the request body: let go of it when it does.
            Err(oneshot::error::TryRecvError::Empty) => {
                tokio::spawn(async move {
                    if let Ok(mut body) = unread.await
                        && !http2
                    {
                        discard(&mut body, DRAIN_TIMEOUT).await;
                    }
                });
            }
        }
    }
}

/// Over HTTP/2, before an answer is sent: reads and discards the rest of a request body the
/// handler let go of unread, up to [`MAX_DRAINED_BYTES`] and [`SETTLE_TIMEOUT`], so that the
/// client has finished uploading when it sees the answer. Returns the guard for
/// [`ResponseBody::new`], holding the body if it did not end within those bounds.
pub async fn settle(mut unread: oneshot::Receiver<Incoming>) -> oneshot::Receiver<Incoming> {
    let Ok(mut body) = unread.try_recv() else {
        // Read to its end, or still held by the handler (a streamed answer).
        return unread;
    };
    let (tx, rx) = oneshot::channel();
    if !discard(&mut body, SETTLE_TIMEOUT).await {
        let _ = tx.send(body);
    }
    rx
}

/// Reads and discards what is left of a body, up to [`MAX_DRAINED_BYTES`] and `limit`;
/// whether it ended within them.
async fn discard(body: &mut Incoming, limit: Duration) -> bool {
    use http_body_util::BodyExt;
    let mut read = 0usize;
    let ended = tokio::time::timeout(limit, async {
        loop {
            match body.frame().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    read += frame.data_ref().map_or(0, Bytes::len);
                    if read > MAX_DRAINED_BYTES {
                        return false;
                    }
                }
            }
        }
    })
    .await;
    ended.unwrap_or(false)
}
