//! Running the server: open the store, build the shared state, prepare TLS, serve until a
//! signal asks to stop.

pub mod bootstrap;
pub mod coalesce;
pub mod deadline;
pub mod inflight;
pub mod listener;
pub mod pipeline;
pub mod state;
pub mod tls;
pub mod unread_body;

use crate::admission::Admission;
use crate::admission::events::Recorder;
use crate::admission::policy::Reservations;
use crate::api::discovery::Discovery;
use crate::api::openapi::OpenApi;
use crate::audit;
use crate::auth::Auth;
use crate::config::Config;
use crate::config::StorageBackend;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::watch_cache::WatchCache;
use anyhow::{Context, Result, anyhow};
use state::AppState;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use storage::etcd::{EtcdOptions, EtcdStore};
use storage::index::IndexOptions;
use storage::{SledOptions, SledStore};

/// Events a watcher may have queued before it counts as too slow and is closed.
const WATCHER_QUEUE: usize = 1024;

/// Builds the shared state over an open store (starts the watch fan-out of every resource).
pub async fn build_state(
    store: Arc<dyn storage::Store>,
    auth: Auth,
    metrics: Metrics,
    checks: Checks,
    recorder: Recorder,
    auditor: Option<Arc<crate::audit::Auditor>>,
    config: &Config,
) -> Result<Arc<AppState>> {
    let resources = crate::kinds::load().map_err(|e| anyhow!(e))?;
    let discovery = Discovery::new(&resources, &crate::admission::DISCOVERY);
    let reservations = Arc::new(Reservations::default());
    let reserved = resources
        .iter()
        .find(|r| {
            std::ptr::eq(
                r.kind,
                &crate::kinds::namespace_reservation::NAMESPACE_RESERVATION,
            )
        })
        .ok_or_else(|| anyhow!("NamespaceReservation is not served"))?;
    tokio::spawn(
        reservations
            .clone()
            .follow(store.clone(), crate::registry::prefix(reserved, "")),
    );
    let mut readiness = checks.ready;
    readiness.push(("namespace-reservations-synced", reservations.loaded.clone()));
    let openapi = OpenApi::new(&resources).map_err(|e| anyhow!(e))?;
    let limiter = inflight::Limiter::new(
        config.max_requests_inflight,
        config.max_mutating_requests_inflight,
    );
    tokio::spawn(
        limiter
            .clone()
            .maintain_watermarks(metrics.inflight.clone()),
    );
    let mut watch_caches = Vec::new();
    for r in &resources {
        let cache = WatchCache::start(store.clone(), r, config.watch_history, WATCHER_QUEUE);
        watch_caches.push((r.kind.plural, cache));
    }
    // Ready once every resource's watch fan-out is subscribed (on etcd: once its watch cache
    // has listed), as an informer-sync check: before that, reads and watches get 429s.
    let synced = Arc::new(AtomicBool::new(false));
    readiness.push(("watch-caches-synced", synced.clone()));
    let caches: Vec<Arc<WatchCache>> = watch_caches.iter().map(|(_, c)| c.clone()).collect();
    tokio::spawn(async move {
        for cache in &caches {
            cache.wait_ready().await;
        }
        synced.store(true, Ordering::Release);
    });
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Ok(Arc::new(AppState {
        health_checks: checks.health,
        heavy_lists: Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1))),
        registry: Registry::new(store),
        resources,
        discovery,
        openapi,
        auth,
        metrics,
        readiness,
        min_request_timeout: config.min_request_timeout,
        bookmark_interval: config.bookmark_interval,
        watch_caches,
        admission: Admission {
            reservations,
            recorder,
        },
        limiter,
        request_timeout: config.request_timeout,
        auditor,
    }))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The named checks of `/healthz`, `/livez` and `/readyz`.
#[derive(Default)]
pub struct Checks {
    /// In all three (kube-apiserver's `AddHealthChecks`): `etcd`.
    pub health: Readiness,
    /// In `/readyz` only: `etcd-readiness`, `shutdown`, what must be loaded before serving.
    pub ready: Readiness,
}

/// Named health or readiness checks: (name, passing).
pub type Readiness = Vec<(&'static str, Arc<std::sync::atomic::AtomicBool>)>;

/// The store-level key prefix of every served resource: one watch cache each on etcd.
fn resource_prefixes() -> Vec<String> {
    crate::kinds::ALL
        .iter()
        .map(|k| format!("{}/", k.plural))
        .collect()
}

/// Opens the configured store, with the health checks it brings (for healthz, livez and
/// readyz): sled under the data directory, or etcd with its `etcd` check.
async fn open_store(
    config: &Config,
    metrics: &mut Metrics,
) -> Result<(Arc<dyn storage::Store>, Readiness)> {
    let resources = crate::kinds::load().map_err(|e| anyhow!(e))?;
    let versioner = Arc::new(crate::registry::codec::StorageCodec::new(resources));
    let index = IndexOptions {
        history: config.watch_history,
        ..IndexOptions::default()
    };
    match &config.storage {
        StorageBackend::Sled => {
            let store_dir = config.data_dir.join("store");
            let store = tokio::task::spawn_blocking(move || {
                SledStore::open(
                    &store_dir,
                    SledOptions {
                        index,
                        ..SledOptions::default()
                    },
                    versioner,
                )
            })
            .await?
            .context("cannot open the store")?;
            Ok((Arc::new(store), Vec::new()))
        }
        StorageBackend::Etcd(etcd) => {
            tracing::info!(servers = ?etcd.servers, prefix = %etcd.prefix, "storing objects in etcd");
            let store = EtcdStore::connect(
                EtcdOptions {
                    endpoints: etcd.servers.clone(),
                    prefix: etcd.prefix.clone(),
                    tls: etcd.tls.clone(),
                    compaction_interval: etcd.compaction_interval,
                    resources: resource_prefixes(),
                    index,
                    ..EtcdOptions::default()
                },
                versioner,
            )
            .await
            .context("cannot set up the etcd client")?;
            let store = Arc::new(store);
            metrics.register_collector(Box::new(crate::metrics::ConsistentReads {
                store: store.clone(),
                group: crate::kinds::GROUP,
            }));
            let store: Arc<dyn storage::Store> = store;
            let healthy = follow_health(store.clone());
            Ok((store, vec![("etcd", healthy)]))
        }
    }
}

/// kube-apiserver's `etcd` check: a quorum read every second (at most 2 s each); the flag says
/// whether the last one succeeded. Transitions are logged.
fn follow_health(store: Arc<dyn storage::Store>) -> Arc<AtomicBool> {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    tokio::spawn(async move {
        loop {
            let result = store.check_health().await;
            let was = flag.swap(result.is_ok(), Ordering::AcqRel);
            match (&result, was) {
                (Err(e), true) => tracing::warn!(error = %e, "etcd check failing"),
                (Err(e), false) => tracing::debug!(error = %e, "etcd check still failing"),
                (Ok(()), false) => tracing::info!("etcd check passing"),
                (Ok(()), true) => {}
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    healthy
}

/// The delegated authenticator and authorizer, the TLS client verifier they share, and the
/// readiness check of the ConfigMap they follow.
async fn delegated_auth(
    d: &crate::config::Delegation,
    metrics: &Metrics,
) -> Result<(
    Auth,
    Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    Readiness,
)> {
    use crate::auth::config_map::ConfigMapWatcher;
    use crate::auth::review::{SarAuthorizer, TokenReviewer};
    use crate::auth::trust::{RequestClientCert, SharedTrust};
    use crate::kube_client::KubeClient;
    async fn client(path: &Option<std::path::PathBuf>) -> Result<Option<KubeClient>> {
        match path {
            Some(p) => KubeClient::from_kubeconfig(p).await.map(Some),
            None => KubeClient::in_cluster(),
        }
    }
    let authentication = client(&d.authentication).await?;
    let authorization = client(&d.authorization).await?;
    if authentication.is_none() {
        tracing::warn!("no authentication kubeconfig: bearer tokens are not accepted");
    }
    if authorization.is_none() {
        tracing::warn!("no authorization kubeconfig: only system:masters may do anything");
    }
    let trust = Arc::new(SharedTrust::default());
    trust.set(d.overrides.trust().map_err(|e| anyhow!(e))?);
    let mut readiness: Readiness = Vec::new();
    if let (Some(c), false) = (&authentication, d.skip_lookup) {
        let watcher = ConfigMapWatcher::new(c.clone(), d.overrides.clone(), trust.clone());
        if let Err(e) = watcher.load().await {
            tracing::warn!(error = %e, "extension-apiserver-authentication not read yet; retrying in the background");
        }
        readiness.push(("extension-apiserver-authentication", watcher.loaded.clone()));
        tokio::spawn(watcher.run());
    }
    let auth = Auth::Delegated(Box::new(crate::auth::Delegated {
        trust: trust.clone(),
        tokens: authentication.map(|c| {
            TokenReviewer::new(
                c,
                d.audiences.clone(),
                d.token_ttl,
                metrics.token_reviews.clone(),
            )
        }),
        authorizer: authorization
            .map(|c| SarAuthorizer::new(c, d.authorization_ttl, metrics.access_reviews.clone())),
        anonymous: d.anonymous,
    }));
    let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> =
        Arc::new(RequestClientCert::default());
    Ok((auth, Some(verifier), readiness))
}

/// The kube-apiserver client Events go through: `--kubeconfig`, else in-cluster, else the
/// authentication kubeconfig.
async fn events_client(
    d: &crate::config::Delegation,
) -> Result<Option<crate::kube_client::KubeClient>> {
    use crate::kube_client::KubeClient;
    if let Some(p) = &d.kubeconfig {
        return KubeClient::from_kubeconfig(p).await.map(Some);
    }
    if let Some(c) = KubeClient::in_cluster()? {
        return Ok(Some(c));
    }
    match &d.authentication {
        Some(p) => KubeClient::from_kubeconfig(p).await.map(Some),
        None => Ok(None),
    }
}

/// Who reports Events (`reportingInstance`): the pod's name in a cluster.
fn instance_name() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "admission-apiserver".to_string())
}

/// Raises the open-file limit to its maximum: every watch holds a connection.
fn raise_fd_limit() {
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get()
        && soft < hard
        && rlimit::Resource::NOFILE.set(hard, hard).is_err()
    {
        tracing::warn!(soft, hard, "cannot raise the open-file limit");
    }
}

/// Serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<()> {
    raise_fd_limit();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.clone();
    let extra_hosts = vec![config.listen.ip().to_string()];
    let credentials =
        tokio::task::spawn_blocking(move || bootstrap::ensure(&data_dir, &extra_hosts)).await??;
    let (cert_file, key_file, ca_pem) = match &config.serving {
        Some((c, k)) => (c.clone(), k.clone(), None),
        None => (
            credentials.cert_file.clone(),
            credentials.key_file.clone(),
            Some(credentials.ca_pem.clone()),
        ),
    };
    let cert = tls::ReloadingCert::load(&cert_file, &key_file)?;
    let mut metrics = Metrics::new();
    let (auth, client_verifier, mut readiness) = match &config.delegation {
        None => (
            Auth::standalone(Some(credentials.admin_token.clone())),
            None,
            Vec::new(),
        ),
        Some(d) => delegated_auth(d, &metrics).await?,
    };
    let tls = tls::server_config(cert.clone(), client_verifier)?;
    if config.serving.is_some() {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                let cert = cert.clone();
                let _ = tokio::task::spawn_blocking(move || cert.reload_if_changed()).await;
            }
        });
    }

    let (store, health_checks) = open_store(&config, &mut metrics).await?;
    let closing = store.clone();
    // kube-apiserver's readyz has `etcd-readiness` beside the `etcd` check all three share.
    readiness.extend(
        health_checks
            .iter()
            .filter(|(name, _)| *name == "etcd")
            .map(|(_, ok)| ("etcd-readiness", ok.clone())),
    );

    let standalone = config.delegation.is_none();
    let recorder = match &config.delegation {
        Some(d) => match events_client(d).await? {
            Some(client) => Recorder::start(client, instance_name()),
            None => Recorder::log_only(),
        },
        None => Recorder::log_only(),
    };
    let auditor = match &config.audit {
        Some((policy, options)) => {
            let sink = audit::log::start(options.clone(), metrics.audit_dropped.clone())
                .with_context(|| format!("cannot open the audit log {}", options.path.display()))?;
            Some(Arc::new(audit::Auditor::new(
                policy.clone(),
                sink,
                metrics.audit_events.clone(),
                metrics.audit_levels.clone(),
            )))
        }
        None => None,
    };
    // kube's `shutdown` readiness check: fails from the moment a stop is asked for.
    let serving = Arc::new(AtomicBool::new(true));
    readiness.push(("shutdown", serving.clone()));
    let checks = Checks {
        health: health_checks,
        ready: readiness,
    };
    let state = build_state(store, auth, metrics, checks, recorder, auditor, &config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let server = format!("https://{host}:{}", addr.port());
    tracing::info!(address = %addr, delegated = !standalone, "serving");
    // The kubeconfig is in place before the line that tells scripts the server is up.
    let kubeconfig = if standalone {
        let (dir, url) = (config.data_dir.clone(), server.clone());
        let token = credentials.admin_token.clone();
        let written = tokio::task::spawn_blocking(move || {
            bootstrap::write_kubeconfig(&dir, &url, ca_pem.as_deref(), &token)
        })
        .await??;
        Some(written)
    } else {
        None
    };
    println!("admission-apiserver serving on {server}");
    if let Some(path) = kubeconfig {
        println!("kubeconfig: {}", path.display());
    }
    let stopping = state.clone();
    let delay = config.shutdown_delay;
    // Graceful shutdown as k8s.io/apiserver's: /readyz fails first; the listener stays open and
    // everything is served for `--shutdown-delay-duration` (load balancers take the endpoint
    // out meanwhile); then new connections are refused, watches end cleanly and requests in
    // flight drain (up to the request timeout).
    let shutdown = async move {
        shutdown_signal().await;
        serving.store(false, Ordering::Release);
        tracing::info!(delay = ?delay, "readyz now fails; serving until the shutdown delay has passed");
        tokio::time::sleep(delay).await;
        tracing::info!("shutdown delay passed: no new connections, draining");
        stopping.stop_watches();
    };
    listener::serve(
        listener,
        tls,
        pipeline::app(state),
        config.transport,
        shutdown,
        config.request_timeout,
    )
    .await;
    // Every connection is closed: no write can come. The store makes its next start quick.
    closing.close().await;
    Ok(())
}
