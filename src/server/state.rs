//! What every request shares: the registry, the served kinds, the prebuilt discovery and OpenAPI
//! documents, authentication, and serving limits.

use crate::api::discovery::Discovery;
use crate::api::error::{ApiError, ApiResult};
use crate::api::openapi::OpenApi;
use crate::auth::Auth;
use crate::kinds::Resource;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::watch_cache::WatchCache;
use std::sync::Arc;
use std::time::Duration;

/// Shared state of a running server.
pub struct AppState {
    /// Object semantics over the store.
    pub registry: Registry,
    /// The served kinds with their schemas.
    pub resources: Vec<Arc<Resource>>,
    /// Discovery documents.
    pub discovery: Discovery,
    /// OpenAPI documents.
    pub openapi: OpenApi,
    /// Who is calling, and what they may do.
    pub auth: Auth,
    /// Request metrics.
    pub metrics: Metrics,
    /// Readiness checks beyond storage (name, passing).
    pub readiness: Vec<(&'static str, Arc<std::sync::atomic::AtomicBool>)>,
    /// Watches without `timeoutSeconds` end after a random time in [this, 2×this).
    pub min_request_timeout: Duration,
    /// Time between the BOOKMARKs of a watch.
    pub bookmark_interval: Duration,
    /// The watch fan-out of each resource, by plural name.
    pub watch_caches: Vec<(&'static str, Arc<WatchCache>)>,
    /// The admission webhook backend.
    pub admission: crate::admission::Admission,
    /// In-flight limits (`--max-requests-inflight`, `--max-mutating-requests-inflight`).
    pub limiter: Arc<crate::server::inflight::Limiter>,
    /// Time limit of non-long-running requests (`--request-timeout`).
    pub request_timeout: Duration,
    /// The audit policy and log, when auditing is on.
    pub auditor: Option<Arc<crate::audit::Auditor>>,
}

/// How long a read asking for a newer revision than the store has waits for it.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

impl AppState {
    /// The watch fan-out of a resource.
    pub fn watch_cache(&self, resource: &Resource) -> ApiResult<Arc<WatchCache>> {
        self.watch_caches
            .iter()
            .find(|(plural, _)| *plural == resource.kind.plural)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| {
                ApiError::internal(format!("no watch cache for {}", resource.kind.plural))
            })
    }

    /// Ends every watch (the server is stopping) so connections can drain.
    pub fn stop_watches(&self) {
        for (_, cache) in &self.watch_caches {
            cache.stop();
        }
    }

    /// Waits until the store has reached `revision` (a client saw it from another replica or a
    /// moment ago); 504 `Timeout` with the `ResourceVersionTooLarge` cause, like kube-apiserver,
    /// when it does not come.
    pub async fn wait_for_revision(&self, revision: u64) -> ApiResult<()> {
        let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
        loop {
            let current = self.registry.current_revision();
            if current >= revision {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::too_large_resource_version(revision, current));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
