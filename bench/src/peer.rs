//! A minimal kube-apiserver stand-in for the overload benchmark: over HTTPS on loopback it
//! authenticates every bearer token as a plain user (`bench`, group `system:authenticated`,
//! never `system:masters`) and allows every SubjectAccessReview, so the server's in-flight
//! limits apply to the load (the standalone admin is in `system:masters`, which is never shed).

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls_pki_types::pem::PemObject;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A running stand-in.
pub struct Peer {
    url: String,
    ca_pem: String,
}

async fn answer(req: http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut review: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let (code, status) = if path.ends_with("/tokenreviews") {
        (
            201,
            serde_json::json!({"authenticated": true,
            "user": {"username": "bench", "groups": ["system:authenticated"]}}),
        )
    } else if path.ends_with("/subjectaccessreviews") {
        (201, serde_json::json!({"allowed": true, "reason": "bench"}))
    } else {
        (404, serde_json::Value::Null)
    };
    review["status"] = status;
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .unwrap_or_default()
}

impl Peer {
    /// Starts the stand-in on a free loopback port.
    pub async fn start() -> Result<Peer> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        params.is_ca = rcgen::IsCa::NoCa;
        let cert = params.self_signed(&key)?;
        let certs = vec![cert.der().clone()];
        let private =
            rustls_pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, private)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(|req| async move {
                        Ok::<_, Infallible>(answer(req).await)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(Peer {
            url,
            ca_pem: cert.pem(),
        })
    }

    /// Writes a kubeconfig for the stand-in into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> Result<PathBuf> {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let path = dir.join("peer.kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: peer\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: bench\n  user:\n    token: bench\ncontexts:\n- name: peer\n  context:\n    cluster: peer\n    user: bench\ncurrent-context: peer\n",
                self.url
            ),
        )?;
        Ok(path)
    }
}
