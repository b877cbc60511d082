//! Request bodies that a handler leaves unread (every early answer: 401, 403, 404, 405, 406,
//! 413, 415, 400, ...) are read and discarded *after* the response is sent, up to a bound.
//!
//! Without this, an HTTP/2 stream answered before the client finished uploading is reset as
//! soon as the body is dropped; depending on timing, clients (curl, nghttp2) then report a stream
//! error instead of the answer. Over HTTP/1.1 a body left in the socket would cost the
//! keep-alive connection. Go's server reads up to 256 KiB of an unread body after the handler
//! returns (`maxPostHandlerReadBytes` in `net/http`); so do we, for both protocols. A body
//! larger than that ends the stream with `RST_STREAM(NO_ERROR)` after the complete response
//! (RFC 9113 §8.1), or closes the HTTP/1.1 connection, as Go's server does.

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most bytes of an unread request body read and discarded after an early answer (Go's
/// `maxPostHandlerReadBytes`).
pub const MAX_DRAINED_BYTES: usize = 256 * 1024;

/// How long the rest of an unread body may take to arrive before the stream is given up.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The request body handed to the application. When it is dropped before its end, the
/// underlying body goes back to the response side, which drains it once the response is sent.
pub struct RequestBody {
    inner: Option<Incoming>,
    finished: bool,
    unread: Option<oneshot::Sender<Incoming>>,
}

/// The response body handed to the server: the application's body, plus the request body to
/// drain when the response has been sent.
pub struct ResponseBody<B> {
    inner: B,
    unread: Option<oneshot::Receiver<Incoming>>,
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
    /// Wraps a response body with the request body guard from [`split`].
    pub fn new(inner: B, unread: oneshot::Receiver<Incoming>) -> ResponseBody<B> {
        ResponseBody {
            inner,
            unread: Some(unread),
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
    /// failed): only now may the request body be drained and dropped.
    fn drop(&mut self) {
        let Some(mut unread) = self.unread.take() else {
            return;
        };
        match unread.try_recv() {
            Ok(body) => {
                tokio::spawn(drain(body));
            }
            // The request body was read to its end (or never existed).
            Err(oneshot::error::TryRecvError::Closed) => {}
            // Something still holds the request body: drain it when it lets go.
            Err(oneshot::error::TryRecvError::Empty) => {
                tokio::spawn(async move {
                    if let Ok(body) = unread.await {
                        drain(body).await;
                    }
                });
            }
        }
    }
}

/// Reads and discards what is left of a body, up to [`MAX_DRAINED_BYTES`] and
/// [`DRAIN_TIMEOUT`], then drops it.
async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    let mut read = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read += data.len();
                if read > MAX_DRAINED_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}
