//! Running the server: open the store, build the shared state, prepare TLS, serve until a
//! signal asks to stop.

pub mod bootstrap;
pub mod listener;
pub mod pipeline;
pub mod state;
pub mod tls;

use crate::api::discovery::Discovery;
use crate::api::openapi::OpenApi;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::registry::Registry;
use crate::watch_cache::WatchCache;
use anyhow::{Context, Result, anyhow};
use state::AppState;
use std::sync::Arc;
use storage::index::IndexOptions;
use storage::{SledOptions, SledStore};

/// Events a watcher may have queued before it counts as too slow and is closed.
const WATCHER_QUEUE: usize = 1024;

/// Builds the shared state over an open store (starts the watch fan-out of every resource).
pub async fn build_state(
    store: Arc<dyn storage::Store>,
    authenticator: Authenticator,
    config: &Config,
) -> Result<Arc<AppState>> {
    let resources = crate::kinds::load().map_err(|e| anyhow!(e))?;
    let discovery = Discovery::new(&resources, &[]);
    let openapi = OpenApi::new(&resources).map_err(|e| anyhow!(e))?;
    let mut watch_caches = Vec::new();
    for r in &resources {
        let cache = WatchCache::start(store.clone(), r, config.watch_history, WATCHER_QUEUE)
            .await
            .context("cannot start the watch cache")?;
        watch_caches.push((r.kind.plural, cache));
    }
    Ok(Arc::new(AppState {
        registry: Registry::new(store),
        resources,
        discovery,
        openapi,
        authenticator,
        min_request_timeout: config.min_request_timeout,
        bookmark_interval: config.bookmark_interval,
        watch_caches,
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

/// Serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<()> {
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
    let tls = tls::server_config(&cert_file, &key_file, &[])?;

    let store_dir = config.data_dir.join("store");
    let history = config.watch_history;
    let store = tokio::task::spawn_blocking(move || {
        SledStore::open(
            &store_dir,
            SledOptions {
                index: IndexOptions {
                    history,
                    ..IndexOptions::default()
                },
                ..SledOptions::default()
            },
        )
    })
    .await?
    .context("cannot open the store")?;
    let store: Arc<dyn storage::Store> = Arc::new(store);

    let state = build_state(
        store,
        Authenticator::new(Some(credentials.admin_token.clone())),
        &config,
    )
    .await?;
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
    let kubeconfig = bootstrap::write_kubeconfig(
        &config.data_dir,
        &server,
        ca_pem.as_deref(),
        &credentials.admin_token,
    )?;
    tracing::info!(address = %addr, kubeconfig = %kubeconfig.display(), "serving");
    println!("admission-apiserver serving on {server}");
    println!("kubeconfig: {}", kubeconfig.display());
    let stopping = state.clone();
    let shutdown = async move {
        shutdown_signal().await;
        stopping.stop_watches();
    };
    listener::serve(listener, tls, pipeline::app(state), shutdown).await;
    Ok(())
}
