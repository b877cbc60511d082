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
    /// Large lists streaming at once: at most half the cores' worth, so that they cannot take
    /// every core from the rest (the seats kube's priority and fairness gives a large list).
    pub heavy_lists: Arc<tokio::sync::Semaphore>,
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
    /// Checks of /healthz, /livez and /readyz alike (name, passing): `etcd` on etcd.
    pub health_checks: Vec<(&'static str, Arc<std::sync::atomic::AtomicBool>)>,
    /// Checks of /readyz only (name, passing).
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
}
