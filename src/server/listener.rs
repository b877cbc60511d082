//! Accepting connections: TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, the peer's identity as a
//! request extension, and graceful shutdown of every open connection.
//!
//! Transport limits are those of a k8s.io/apiserver server (`SecureServingInfo.Serve` over Go's
//! `net/http`): 1 MiB of request headers on HTTP/1.1 (431 beyond) and the same advertised as
//! HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, 100 concurrent HTTP/2 streams per connection (or
//! `--http2-max-streams-per-connection`), 256 KiB HTTP/2 stream windows, and 32 s
//! to send a TLS handshake and request headers. Request bodies an early answer leaves unread are
//! read and discarded, within bounds ([`super::unread_body`]).

use super::unread_body;
use crate::auth::trust::ClientChain;
use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// What the connection tells about the client, attached to each of its requests.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// The client certificate chain, if the client presented one (the handshake proved it holds
    /// the key; which CA vouches for it is decided per request).
    pub client_chain: Option<Arc<ClientChain>>,
}

/// Request header bytes accepted (Go's `http.DefaultMaxHeaderBytes`, which k8s.io/apiserver sets
/// explicitly as `MaxHeaderBytes: 1 << 20`).
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// The HTTP/1.1 read buffer bound: the header bytes plus the 4 KiB of slack Go's server grants
/// (`initialReadLimitSize`). A request whose head does not fit gets 431.
const HTTP1_MAX_BUFFER: usize = MAX_HEADER_BYTES + 4096;

/// Header fields accepted in one HTTP/1.1 request. Go counts bytes only; hyper also needs a
/// count, and prepares room for that many fields on every request it parses (48 bytes each),
/// so a large count costs every HTTP/1.1 request. 256 fields is far beyond what clients send
/// directly; kube-apiserver's aggregator, which relays one `X-Remote-Group` per group, speaks
/// HTTP/2, where only the header list's size is limited.
const HTTP1_MAX_HEADERS: usize = 256;

/// `SETTINGS_MAX_HEADER_LIST_SIZE` advertised on HTTP/2: Go's `http2.Server.maxHeaderListSize`
/// (`MaxHeaderBytes` plus 10 typical fields × 32 bytes of per-field overhead).
pub const HTTP2_MAX_HEADER_LIST_SIZE: u32 = (MAX_HEADER_BYTES + 10 * 32) as u32;

/// HTTP/2 streams a client may have open on one connection when not configured: k8s.io/apiserver's
/// default (`http2.Server.MaxConcurrentStreams = 100`).
pub const DEFAULT_HTTP2_MAX_STREAMS: u32 = 100;

/// HTTP/2 per-stream receive window (k8s.io/apiserver's `resourceBody99Percentile`); the
/// connection window is this times the stream limit. Unlike k8s.io/apiserver, the largest frame
/// read stays HTTP/2's default 16 KiB: the h2 crate allows a header block only
/// (header list size / frame size) × 1.25 CONTINUATION frames, so a larger frame size would
/// refuse 1 MiB of headers from clients that send 16 KiB frames (curl, and Go's client before it
/// has the server's SETTINGS).
const HTTP2_STREAM_WINDOW: u32 = 256 * 1024;

/// Time to complete the TLS handshake and, on HTTP/1.1, to send request headers
/// (k8s.io/apiserver's `ReadHeaderTimeout`, "just shy of requestTimeoutUpperBound").
pub const READ_HEADER_TIMEOUT: Duration = Duration::from_secs(32);

/// Transport settings that can be configured.
#[derive(Clone, Copy, Debug)]
pub struct Transport {
    /// HTTP/2 streams a client may have open on one connection.
    pub http2_max_streams: u32,
}

impl Default for Transport {
    fn default() -> Transport {
        Transport {
            http2_max_streams: DEFAULT_HTTP2_MAX_STREAMS,
        }
    }
}

/// HTTP/1.1 connections with Go's limits.
fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_buf_size(HTTP1_MAX_BUFFER + 64 * 1024)
        .max_header_size(HTTP1_MAX_BUFFER)
        .max_headers(HTTP1_MAX_HEADERS)
        .header_read_timeout(READ_HEADER_TIMEOUT);
    builder
}

/// HTTP/2 connections with k8s.io/apiserver's settings.
fn http2_builder(transport: Transport) -> http2::Builder<TokioExecutor> {
    let streams = transport.http2_max_streams.max(1);
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(Some(streams))
        .max_header_list_size(HTTP2_MAX_HEADER_LIST_SIZE)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_STREAM_WINDOW.saturating_mul(streams))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// Runs one connection until it ends, or until the server stops: then it finishes the requests
/// in flight and closes.
async fn drive<C, E>(
    conn: C,
    graceful: fn(Pin<&mut C>),
    mut stop: watch::Receiver<bool>,
    remote: SocketAddr,
) where
    C: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%remote, error = %err, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            graceful(conn.as_mut());
            let _ = conn.await;
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets open
/// requests finish (up to `drain_timeout`; long-running watches are told to end).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    transport: Transport,
    shutdown: impl std::future::Future<Output = ()>,
    drain_timeout: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let (stop_tx, stop_rx) = watch::channel(false);
    let http1 = http1_builder();
    let http2 = http2_builder(transport);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(c) => c,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let app = app.clone();
                let (http1, http2) = (http1.clone(), http2.clone());
                let stop = stop_rx.clone();
                tasks.spawn(async move {
                    let tls = match tokio::time::timeout(READ_HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(err)) => {
                            tracing::debug!(%remote, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    let client_chain = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| ClientChain::new(c.iter().map(|d| d.clone().into_owned()).collect()))
                        .map(Arc::new);
                    let info = ConnInfo { remote, client_chain };
                    let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(info.clone());
                        let http2 = req.version() == http::Version::HTTP_2;
                        let (parts, body) = req.into_parts();
                        let (body, unread) = unread_body::split(body);
                        let req = http::Request::from_parts(parts, axum::body::Body::new(body));
                        let answered = app.clone().oneshot(req);
                        async move {
                            let response = answered.await?;
                            let unread = if http2 { unread_body::settle(unread).await } else { unread };
                            Ok::<_, std::convert::Infallible>(
                                response.map(|b| unread_body::ResponseBody::new(b, unread, http2)),
                            )
                        }
                    });
                    // HTTP/2 only when negotiated by ALPN, as Go's server does.
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        // Many streams share the connection: their frames go out together.
                        let io = super::coalesce::Coalesce::new(tls);
                        let conn = http2.serve_connection(TokioIo::new(io), service);
                        drive(conn, |c| c.graceful_shutdown(), stop, remote).await;
                    } else {
                        let conn = http1.serve_connection(TokioIo::new(tls), service).with_upgrades();
                        drive(conn, |c| c.graceful_shutdown(), stop, remote).await;
                    }
                });
            }
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
        tasks.abort_all();
    }
}
