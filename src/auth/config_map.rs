//! Follows `kube-system/extension-apiserver-authentication`, the ConfigMap where kube-apiserver
//! publishes its client CA, the front-proxy (request-header) CA, the front proxy's allowed names
//! and header names. Changes apply without a restart; values given by flags win.

use super::trust::{RequestHeader, SharedTrust, Trust};
use crate::kube_client::KubeClient;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const PATH: &str = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication";
const WATCH: &str = "/api/v1/namespaces/kube-system/configmaps?watch=true&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dextension-apiserver-authentication";

/// Settings given by flags; they take precedence over the ConfigMap.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--client-ca-file` contents.
    pub client_ca: Option<String>,
    /// `--requestheader-client-ca-file` contents.
    pub request_header_ca: Option<String>,
    /// `--requestheader-allowed-names`.
    pub allowed_names: Option<Vec<String>>,
    /// `--requestheader-username-headers`.
    pub username_headers: Option<Vec<String>>,
    /// `--requestheader-uid-headers`.
    pub uid_headers: Option<Vec<String>>,
    /// `--requestheader-group-headers`.
    pub group_headers: Option<Vec<String>>,
    /// `--requestheader-extra-headers-prefix`.
    pub extra_prefixes: Option<Vec<String>>,
}

impl Overrides {
    /// The trust settings from the flags alone.
    pub fn trust(&self) -> Result<Trust, String> {
        self.merge(&Value::Null)
    }

    /// Flags over the ConfigMap's `data`.
    pub fn merge(&self, data: &Value) -> Result<Trust, String> {
        let text = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let list = |k: &str| -> Option<Vec<String>> {
            data.get(k)
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        };
        let defaults = RequestHeader::default();
        let headers = RequestHeader {
            allowed_names: self
                .allowed_names
                .clone()
                .or_else(|| list("requestheader-allowed-names"))
                .unwrap_or_default(),
            username_headers: self
                .username_headers
                .clone()
                .or_else(|| list("requestheader-username-headers"))
                .unwrap_or(defaults.username_headers),
            uid_headers: self
                .uid_headers
                .clone()
                .or_else(|| list("requestheader-uid-headers"))
                .unwrap_or(defaults.uid_headers),
            group_headers: self
                .group_headers
                .clone()
                .or_else(|| list("requestheader-group-headers"))
                .unwrap_or(defaults.group_headers),
            extra_prefixes: self
                .extra_prefixes
                .clone()
                .or_else(|| list("requestheader-extra-headers-prefix"))
                .unwrap_or(defaults.extra_prefixes),
        };
        let client = self
            .client_ca
            .clone()
            .unwrap_or_else(|| text("client-ca-file"));
        let request_header = self
            .request_header_ca
            .clone()
            .unwrap_or_else(|| text("requestheader-client-ca-file"));
        Trust::new(&client, &request_header, headers)
    }
}

/// Keeps the shared trust in line with the ConfigMap.
pub struct ConfigMapWatcher {
    client: KubeClient,
    overrides: Overrides,
    trust: Arc<SharedTrust>,
    /// Set once the ConfigMap has been read (a readiness check).
    pub loaded: Arc<AtomicBool>,
}

impl ConfigMapWatcher {
    /// A watcher applying the ConfigMap under the flag overrides.
    pub fn new(
        client: KubeClient,
        overrides: Overrides,
        trust: Arc<SharedTrust>,
    ) -> ConfigMapWatcher {
        ConfigMapWatcher {
            client,
            overrides,
            trust,
            loaded: Arc::new(AtomicBool::new(false)),
        }
    }

    fn apply(&self, config_map: &Value) {
        match self.overrides.merge(&config_map["data"]) {
            Ok(trust) => {
                tracing::info!(
                    client_ca = trust.client.is_some(),
                    request_header_ca = trust.request_header.is_some(),
                    allowed_names = ?trust.headers.allowed_names,
                    "applied extension-apiserver-authentication"
                );
                self.trust.set(trust);
                self.loaded.store(true, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unusable extension-apiserver-authentication")
            }
        }
    }

    /// Reads the ConfigMap once (used at startup, so the first requests see it).
    pub async fn load(&self) -> Result<String, String> {
        let reply = self
            .client
            .send("GET", PATH, bytes::Bytes::new())
            .await
            .map_err(|e| format!("{e:#}"))?;
        if reply.status != 200 {
            return Err(format!(
                "reading the ConfigMap answered HTTP {}",
                reply.status
            ));
        }
        let cm: Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
        self.apply(&cm);
        Ok(cm["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Reads, then watches, for ever; on any failure starts over after a pause.
    pub async fn run(self) {
        loop {
            match self.load().await {
                Ok(rv) => {
                    if let Err(e) = self.watch(&rv).await {
                        tracing::debug!(error = %e, "ConfigMap watch ended");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read extension-apiserver-authentication")
                }
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    async fn watch(&self, rv: &str) -> Result<(), String> {
        let resp = self
            .client
            .stream(&format!("{WATCH}&resourceVersion={rv}"))
            .await
            .map_err(|e| format!("{e:#}"))?;
        if resp.status() != 200 {
            return Err(format!("watch answered HTTP {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            let Ok(data): Result<bytes::Bytes, _> = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=pos).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                match event["type"].as_str() {
                    Some("ADDED" | "MODIFIED") => self.apply(&event["object"]),
                    Some("ERROR") => {
                        return Err(format!("watch error: {}", event["object"]["message"]));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_config_map_configures_the_front_proxy() {
        let cm = crate::test_support::fixture("configmap-extension-apiserver-authentication.json");
        let trust = Overrides::default().merge(&cm["data"]).unwrap();
        assert!(trust.client.is_some() && trust.request_header.is_some());
        assert_eq!(trust.headers.allowed_names, ["front-proxy-client"]);
        assert_eq!(trust.headers.username_headers, ["X-Remote-User"]);
        assert_eq!(trust.headers.group_headers, ["X-Remote-Group"]);
        assert_eq!(trust.headers.extra_prefixes, ["X-Remote-Extra-"]);
        let flags = Overrides {
            allowed_names: Some(vec![]),
            ..Default::default()
        };
        assert!(
            flags
                .merge(&cm["data"])
                .unwrap()
                .headers
                .allowed_names
                .is_empty()
        );
    }
}
