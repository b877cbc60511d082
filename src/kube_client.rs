//! A small client of kube-apiserver, for what a delegating extension server asks of it:
//! TokenReviews, SubjectAccessReviews, the `extension-apiserver-authentication` ConfigMap, and
//! Events. Configured from a kubeconfig file or from the in-cluster service account.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How the client proves who it is.
#[derive(Clone)]
enum Credential {
    None,
    Token(String),
    /// Re-read on every request: projected service-account tokens rotate.
    TokenFile(PathBuf),
}

/// A client of one kube-apiserver.
#[derive(Clone)]
pub struct KubeClient {
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    server: Arc<str>,
    credential: Credential,
    timeout: Duration,
}

/// A response read in full.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<Named<ClusterEntry>>,
    #[serde(default)]
    users: Vec<Named<UserEntry>>,
    #[serde(default)]
    contexts: Vec<Named<ContextEntry>>,
    #[serde(rename = "current-context", default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Deserialize, Default)]
struct ClusterEntry {
    server: String,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<PathBuf>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
}

#[derive(Deserialize, Default)]
struct UserEntry {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(rename = "client-certificate")]
    client_certificate: Option<PathBuf>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<PathBuf>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
}

#[derive(Deserialize)]
struct ContextEntry {
    cluster: String,
    #[serde(default)]
    user: String,
}

/// The standard in-cluster service account directory.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn decode_b64(data: &str, what: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .with_context(|| format!("{what} is not base64"))
}

fn relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

impl KubeClient {
    fn build(
        server: &str,
        ca_pem: Option<Vec<u8>>,
        identity: Option<(Vec<u8>, Vec<u8>)>,
        credential: Credential,
    ) -> Result<KubeClient> {
        let provider = crate::server::tls::provider();
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    roots.add(cert.context("CA certificate")?)?;
                }
            }
            None => {
                let native = rustls_native_roots();
                for cert in native {
                    let _ = roots.add(cert);
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match identity {
            Some((cert, key)) => {
                let certs = CertificateDer::pem_slice_iter(&cert).collect::<Result<Vec<_>, _>>()?;
                let key = PrivateKeyDer::from_pem_slice(&key).context("client key")?;
                builder.with_client_auth_cert(certs, key)?
            }
            None => builder.with_no_client_auth(),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_all_versions()
            .build();
        Ok(KubeClient {
            http: Client::builder(TokioExecutor::new()).build(connector),
            server: server.trim_end_matches('/').into(),
            credential,
            timeout: Duration::from_secs(10),
        })
    }

    /// A client from a kubeconfig file (its current context).
    pub fn from_kubeconfig(path: &Path) -> Result<KubeClient> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: Kubeconfig = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a kubeconfig", path.display()))?;
        let context = config
            .contexts
            .iter()
            .find(|c| c.name == config.current_context)
            .or(config.contexts.first())
            .map(|c| &c.value);
        let cluster = match context {
            Some(c) => config.clusters.iter().find(|x| x.name == c.cluster),
            None => config.clusters.first(),
        }
        .map(|c| &c.value)
        .ok_or_else(|| anyhow!("{}: no cluster", path.display()))?;
        let empty = UserEntry::default();
        let user = match context {
            Some(c) => config
                .users
                .iter()
                .find(|u| u.name == c.user)
                .map(|u| &u.value),
            None => config.users.first().map(|u| &u.value),
        }
        .unwrap_or(&empty);
        if cluster.server.is_empty() {
            bail!("{}: the cluster has no server", path.display());
        }
        let ca = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(d), _) => Some(decode_b64(d, "certificate-authority-data")?),
            (None, Some(p)) => Some(std::fs::read(relative(path, p))?),
            (None, None) => None,
        };
        let cert = match (&user.client_certificate_data, &user.client_certificate) {
            (Some(d), _) => Some(decode_b64(d, "client-certificate-data")?),
            (None, Some(p)) => Some(std::fs::read(relative(path, p))?),
            (None, None) => None,
        };
        let key = match (&user.client_key_data, &user.client_key) {
            (Some(d), _) => Some(decode_b64(d, "client-key-data")?),
            (None, Some(p)) => Some(std::fs::read(relative(path, p))?),
            (None, None) => None,
        };
        let credential = match (&user.token, &user.token_file) {
            (Some(t), _) => Credential::Token(t.clone()),
            (None, Some(f)) => Credential::TokenFile(relative(path, f)),
            (None, None) => Credential::None,
        };
        KubeClient::build(&cluster.server, ca, cert.zip(key), credential)
    }

    /// The in-cluster client, when running in a pod.
    pub fn in_cluster() -> Result<Option<KubeClient>> {
        let (Ok(host), Ok(port)) = (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) else {
            return Ok(None);
        };
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        let token = dir.join("token");
        if !token.exists() {
            return Ok(None);
        }
        let ca = std::fs::read(dir.join("ca.crt")).context("in-cluster CA")?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        KubeClient::build(
            &format!("https://{host}:{port}"),
            Some(ca),
            None,
            Credential::TokenFile(token),
        )
        .map(Some)
    }

    /// The bearer token; a token file is reread every time (kubelet rotates projected tokens).
    async fn bearer(&self) -> Option<String> {
        match &self.credential {
            Credential::None => None,
            Credential::Token(t) => Some(t.clone()),
            Credential::TokenFile(p) => tokio::fs::read_to_string(p)
                .await
                .ok()
                .map(|t| t.trim().to_string()),
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<http::Request<Full<Bytes>>> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.server))
            .header("accept", accept)
            .header(
                "user-agent",
                concat!("admission-apiserver/", env!("CARGO_PKG_VERSION")),
            );
        if !body.is_empty() {
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            req = req.header("content-type", content_type);
        }
        if let Some(t) = self.bearer().await {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Ok(req.body(Full::new(body))?)
    }

    /// Sends one request and reads the reply.
    pub async fn send(&self, method: &str, path: &str, body: Bytes) -> Result<Reply> {
        let req = self.request(method, path, body, "application/json").await?;
        let resp = tokio::time::timeout(self.timeout, self.http.request(req))
            .await
            .map_err(|_| anyhow!("{method} {path}: timed out"))??;
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(self.timeout, resp.into_body().collect())
            .await
            .map_err(|_| anyhow!("{method} {path}: timed out reading the body"))??
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// Posts a JSON object, retrying transport errors, 429s and 5xx with backoff (as
    /// k8s.io/apiserver's webhook clients do: 500 ms, ×1.5, five attempts).
    pub async fn post_with_retry(&self, path: &str, body: &serde_json::Value) -> Result<Reply> {
        let bytes = Bytes::from(serde_json::to_vec(body)?);
        let mut wait = Duration::from_millis(500);
        let mut last = anyhow!("no attempt made");
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(wait).await;
                wait = wait.mul_f64(1.5);
            }
            match self.send("POST", path, bytes.clone()).await {
                Ok(r) if r.status == 429 || r.status >= 500 => {
                    last = anyhow!("{path}: HTTP {}", r.status);
                }
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Opens a streaming GET (a watch).
    pub async fn stream(&self, path: &str) -> Result<http::Response<hyper::body::Incoming>> {
        let req = self
            .request("GET", path, Bytes::new(), "application/json")
            .await?;
        let resp = tokio::time::timeout(self.timeout, self.http.request(req))
            .await
            .map_err(|_| anyhow!("GET {path}: timed out"))??;
        Ok(resp)
    }
}

/// The system's trusted roots, for a kubeconfig without a CA (none are bundled: this reads the
/// usual Debian bundle when present).
fn rustls_native_roots() -> Vec<CertificateDer<'static>> {
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(iter) = CertificateDer::pem_file_iter(path) {
            return iter.filter_map(Result::ok).collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kubeconfigs_are_read_like_kubectl_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let path = dir.path().join("kc");
        std::fs::write(dir.path().join("ca.crt"), ca.cert.pem()).unwrap();
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443/\n    certificate-authority: ca.crt\nusers:\n- name: u\n  user:\n    token: abc\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        )
        .unwrap();
        let client = KubeClient::from_kubeconfig(&path).unwrap();
        assert_eq!(&*client.server, "https://127.0.0.1:6443");
        assert_eq!(client.bearer().await.as_deref(), Some("abc"));
        std::fs::write(&path, "clusters: []\n").unwrap();
        assert!(KubeClient::from_kubeconfig(&path).is_err());
    }
}
