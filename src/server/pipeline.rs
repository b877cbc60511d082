//! The request pipeline, in kube-apiserver's order (`DefaultBuildHandlerChain`):
//! panic recovery → request info and tracing → authentication → authorization → handler.
//! [`app`] is the whole HTTP application, so tests can drive it without a socket.

use super::state::AppState;
use crate::api::error::ApiError;
use crate::api::handlers;
use crate::api::nonresource;
use crate::api::query::Query;
use crate::api::request_info::RequestInfo;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

/// The HTTP application over shared state.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Paths anyone may read without credentials: probes carry none.
fn is_public(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query().unwrap_or(""));
    let info = RequestInfo::new(&parts.method, parts.uri.path(), &query);
    let verb = info.verb.clone();
    let resource = info.resource.clone();
    let namespace = info.namespace.clone();
    let name = info.name.clone();
    let path = parts.uri.path().to_string();

    let work = async {
        let user = match state.authenticator.authenticate(&parts.headers) {
            Some(user) => Some(user),
            None if is_public(&path) => None,
            None => return (None, ApiError::unauthorized().into_response()),
        };
        // Standalone mode: the only authenticated user is the admin, allowed everything.
        let response = if info.is_resource_request {
            handlers::dispatch(&state, info, query, parts.headers, parts.method, body).await
        } else {
            nonresource::serve(&state, &parts.method, &path, &query, &parts.headers)
        };
        (user, response)
    };
    let (user, response) = match AssertUnwindSafe(work).catch_unwind().await {
        Ok(done) => done,
        Err(_) => (
            None,
            ApiError::internal("the server panicked while handling the request").into_response(),
        ),
    };
    tracing::info!(
        verb = %verb,
        resource = %resource,
        namespace = %namespace,
        name = %name,
        path = %path,
        user = user.as_ref().map(|u| u.name.as_str()).unwrap_or(""),
        code = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
