//! Talking to kube-apiserver through kube-rs: what a delegating extension server asks of it
//! (TokenReviews, SubjectAccessReviews, the `extension-apiserver-authentication` ConfigMap,
//! Events).
//!
//! Configuration is kube-rs's: a kubeconfig is read as kubectl reads it (its current context;
//! `exec` credential plugins, `auth-provider` (oidc, gcp), client certificates, tokens and token
//! files, `proxy-url`, `tls-server-name`, `insecure-skip-tls-verify`), and in a pod the service
//! account is used, its projected token re-read as the kubelet rotates it. This module only adds
//! raw requests with whole-body answers and the webhook clients' retries.

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::path::Path;
use std::time::Duration;

/// A client of one kube-apiserver.
#[derive(Clone)]
pub struct KubeClient {
    client: kube::Client,
    /// Longest wait for a whole answer (not for watches).
    timeout: Duration,
}

/// A response read in full.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

/// How long one request (connection, answer and body) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl KubeClient {
    fn build(mut config: kube::Config) -> Result<KubeClient> {
        // The retries are ours (`post_with_retry`), as k8s.io/apiserver's webhook clients do them.
        config.default_retry = false;
        let client = kube::Client::try_from(config).context("cannot build the kube client")?;
        Ok(KubeClient {
            client,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// A client from a kubeconfig file (its current context).
    pub async fn from_kubeconfig(path: &Path) -> Result<KubeClient> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .with_context(|| format!("{} is not a usable kubeconfig", path.display()))?;
        KubeClient::build(config)
    }

    /// The in-cluster client (service account token and CA, `KUBERNETES_SERVICE_HOST/PORT`),
    /// when running in a pod.
    pub fn in_cluster() -> Result<Option<KubeClient>> {
        if !crate::config::in_cluster() {
            return Ok(None);
        }
        let config = kube::Config::incluster().context("in-cluster configuration")?;
        KubeClient::build(config).map(Some)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<http::Request<kube::client::Body>> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("admission-apiserver/", env!("CARGO_PKG_VERSION")),
            );
        if !body.is_empty() {
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            req = req.header(http::header::CONTENT_TYPE, content_type);
        }
        Ok(req.body(kube::client::Body::from(body))?)
    }

    /// Sends one request (`path` with its query) and reads the reply, whatever its status.
    pub async fn send(&self, method: &str, path: &str, body: Bytes) -> Result<Reply> {
        let req = self.request(method, path, body)?;
        let exchange = async {
            let resp = self.client.send(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Reply { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| anyhow!("{method} {path}: timed out"))?
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

    /// Opens a streaming GET (a watch); the body is read by the caller.
    pub async fn stream(&self, path: &str) -> Result<http::Response<kube::client::Body>> {
        let req = self.request("GET", path, Bytes::new())?;
        tokio::time::timeout(self.timeout, self.client.send(req))
            .await
            .map_err(|_| anyhow!("GET {path}: timed out"))?
            .map_err(Into::into)
    }
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
        // A relative CA path, a proxy, a TLS server name and an exec plugin all load.
        std::fs::write(
            &path,
            r#"apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: ca.crt
    tls-server-name: api.example
    proxy-url: http://127.0.0.1:3128
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: sh
      args: ["-c", "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'"]
      interactiveMode: Never
contexts:
- name: x
  context:
    cluster: c
    user: u
current-context: x
"#,        )
        .unwrap();
        KubeClient::from_kubeconfig(&path).await.unwrap();
        std::fs::write(&path, "clusters: []\n").unwrap();
        assert!(KubeClient::from_kubeconfig(&path).await.is_err());
        assert!(
            KubeClient::from_kubeconfig(&dir.path().join("absent"))
                .await
                .is_err()
        );
    }
}
