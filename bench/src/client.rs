//! An HTTPS client trusting the server's CA, over HTTP/1.1 (one connection per in-flight request)
//! or HTTP/2 (streams multiplexed on few connections).

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    inner: Legacy<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: Arc<str>,
    auth: Arc<str>,
}

/// The TLS configuration trusting a CA.
pub fn tls_config(ca_pem: &str) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.context("CA certificate")?)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

impl Client {
    /// A client; `http2` multiplexes requests on shared connections.
    pub fn new(base: &str, token: &str, ca_pem: &str, http2: bool) -> Result<Client> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_pem)?)
            .https_only();
        // Go's clients (kube-apiserver's webhook client among them) disable Nagle's algorithm;
        // so does this one, or a request split in two writes waits for a delayed ACK.
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = if http2 {
            builder.enable_http2().wrap_connector(tcp)
        } else {
            builder.enable_http1().wrap_connector(tcp)
        };
        let mut b = Legacy::builder(TokioExecutor::new());
        b.pool_max_idle_per_host(100_000);
        if http2 {
            b.http2_only(true);
        }
        Ok(Client {
            inner: b.build(connector),
            base: base.into(),
            auth: format!("Bearer {token}").into(),
        })
    }

    /// Sends a request; returns status and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(u16, Bytes)> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", &*self.auth)
            .header("accept", "application/json");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self.inner.request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends a request; returns status, the `Retry-After` header and body.
    pub async fn send_full(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(u16, Option<String>, Bytes)> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", &*self.auth)
            .header("accept", "application/json");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self.inner.request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, retry_after, body))
    }

    /// Opens a streaming GET (a watch); returns the response.
    pub async fn stream(&self, path: &str) -> Result<http::Response<hyper::body::Incoming>> {
        let req = http::Request::builder()
            .uri(format!("{}{path}", self.base))
            .header("authorization", &*self.auth)
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))?;
        Ok(self.inner.request(req).await?)
    }
}
