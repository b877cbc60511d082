//! The request pipeline, in kube-apiserver's order (`DefaultBuildHandlerChain`):
//! panic recovery → request info → in-flight accounting → authentication → authorization →
//! handler, with metrics and a structured log line per request.
//! [`app`] is the whole HTTP application, so tests can drive it without a socket.

use super::listener::ConnInfo;
use super::state::AppState;
use crate::api::error::ApiError;
use crate::api::handlers;
use crate::api::nonresource;
use crate::api::query::Query;
use crate::api::request_info::RequestInfo;
use crate::auth::review::Decision;
use crate::auth::{self, User, is_always_allowed_path};
use crate::metrics::{CodeLabel, InflightLabels, RequestLabels, verb_label};
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

/// Decrements the in-flight gauge when the request is done.
struct Inflight(prometheus_client::metrics::gauge::Gauge);

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn scope(info: &RequestInfo) -> &'static str {
    if !info.is_resource_request {
        ""
    } else if !info.name.is_empty() {
        "resource"
    } else if !info.namespace.is_empty() {
        "namespace"
    } else {
        "cluster"
    }
}

async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let conn = parts.extensions.get::<ConnInfo>().cloned();
    let query = Query::parse(parts.uri.query().unwrap_or(""));
    let info = RequestInfo::new(&parts.method, parts.uri.path(), &query);
    let path = parts.uri.path().to_string();
    let read_only = matches!(parts.method, http::Method::GET | http::Method::HEAD);
    let gauge = state
        .metrics
        .inflight
        .get_or_create(&InflightLabels {
            request_kind: if read_only { "readOnly" } else { "mutating" }.into(),
        })
        .clone();
    gauge.inc();
    let _inflight = Inflight(gauge);
    let apply = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/apply-patch"));
    let labels = RequestLabels {
        verb: verb_label(parts.method.as_str(), &info.verb, apply),
        group: info.api_group.clone(),
        version: info.api_version.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        scope: scope(&info).into(),
        component: "apiserver".into(),
    };
    let verb = info.verb.clone();

    let work = async {
        if let Some(why) = info.unresolved {
            let uri = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or(&path);
            let response = ApiError::request_info_failed(uri, &format!("{why}, {uri}"));
            return (None, response.into_response());
        }
        let user = match state.auth.authenticate(&parts.headers, conn.as_ref()).await {
            Some(user) => user,
            None if is_always_allowed_path(&path) => User::anonymous(),
            None => return (None, ApiError::unauthorized().into_response()),
        };
        let attrs = auth::attributes(&info, &query);
        match state.auth.authorize(&user, &attrs).await {
            Decision::Allow => {}
            Decision::Deny(reason) => {
                return (
                    Some(user.clone()),
                    auth::forbidden(&user, &attrs, &reason).into_response(),
                );
            }
            Decision::Error(e) => {
                let uri = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or(&path);
                let message = format!("cannot authorize {uri:?}: {e}");
                return (Some(user), ApiError::internal(message).into_response());
            }
        }
        let response = if info.is_resource_request {
            handlers::dispatch(&state, info, query, parts.headers, parts.method, body).await
        } else {
            nonresource::serve(&state, &parts.method, &path, &query, &parts.headers)
        };
        (Some(user), response)
    };
    let (user, response) = match AssertUnwindSafe(work).catch_unwind().await {
        Ok(done) => done,
        Err(_) => (
            None,
            ApiError::internal("the server panicked while handling the request").into_response(),
        ),
    };
    let code = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .requests
        .get_or_create(&(
            labels.clone(),
            CodeLabel {
                code: code.to_string(),
            },
        ))
        .inc();
    if verb != "watch" {
        state
            .metrics
            .durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
    tracing::info!(
        verb = %verb,
        resource = %labels.resource,
        subresource = %labels.subresource,
        path = %path,
        user = user.as_ref().map(|u| u.name.as_str()).unwrap_or(""),
        code,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}
