//! The request pipeline, in kube-apiserver's filter order (`DefaultBuildHandlerChain`, outermost
//! first):
//!
//! 1. audit ID (`WithAuditInit`): the aggregator's `Audit-Id` or a new one, echoed back;
//! 2. panic recovery (`WithPanicRecovery`): a panic is a 500 `Status`, never a dropped stream;
//! 3. request info and receipt time (`WithRequestInfo`), metrics and one log line per request;
//! 4. deadline (`WithRequestDeadline`): `--request-timeout`, shortened by `timeout`; a
//!    malformed `timeout` is a 400;
//! 5. timeout (`WithTimeoutForNonLongRunningRequests`): past the deadline, 504 `Timeout`; a
//!    write under way finishes in the background, a read is cancelled;
//! 6. authentication (`WithAuthentication`): 401, audited as kube's failed-authentication audit;
//! 7. audit (`WithAudit`): events at RequestReceived, ResponseStarted (long-running),
//!    ResponseComplete or Panic;
//! 8. in-flight limit (`WithMaxInFlightLimit`): 429 with `Retry-After: 1`;
//! 9. authorization (`WithAuthorization`): 403, decision and reason as audit annotations;
//! 10. the handler.
//!
//! Long-running requests (watches) skip 4, 5 and 8. [`app`] is the whole HTTP application, so
//! tests can drive it without a socket.

use super::deadline;
use super::inflight::{self, Admission, Slot};
use super::listener::ConnInfo;
use super::state::AppState;
use crate::api::error::ApiError;
use crate::api::handlers;
use crate::api::nonresource;
use crate::api::query::Query;
use crate::api::request_info::RequestInfo;
use crate::audit::{Record, RequestMeta, Stage, response_status};
use crate::auth::review::{Attributes, Decision};
use crate::auth::{self, User, is_always_allowed_path};
use crate::metrics::{CodeLabel, RequestLabels, verb_label};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::HeaderValue;
use http::request::Parts;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The HTTP application over shared state.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// The response header carrying the audit ID.
const AUDIT_ID: &str = "audit-id";

/// Audit annotations the authorization filter adds (kube's `decisionAnnotationKey`, ...).
const DECISION: &str = "authorization.k8s.io/decision";
const REASON: &str = "authorization.k8s.io/reason";

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

/// A request as the inner filters see it.
struct Call {
    parts: Parts,
    body: Body,
    info: RequestInfo,
    query: Query,
    long_running: bool,
    audit_id: String,
    received: jiff::Timestamp,
    /// When a non-long-running request runs out of time.
    deadline: Option<tokio::time::Instant>,
}

/// Stages 1 and 2.
async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let audit_id = request
        .headers()
        .get("audit-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut response = match AssertUnwindSafe(observe(state, request, audit_id.clone()))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(_) => {
            ApiError::internal("the server panicked while handling the request").into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&audit_id) {
        response.headers_mut().insert(AUDIT_ID, v);
    }
    response
}

/// Stages 3 to 5.
async fn observe(state: Arc<AppState>, request: Request, audit_id: String) -> Response {
    let started = Instant::now();
    let received = jiff::Timestamp::now();
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query().unwrap_or(""));
    let info = RequestInfo::new(&parts.method, parts.uri.path(), &query);
    let path = parts.uri.path().to_string();
    // kube-apiserver's request-info filter runs before any other: a path it cannot resolve is
    // answered at once, as plain text.
    if let Some(why) = info.unresolved {
        let uri = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(&path);
        return ApiError::request_info_failed(uri, &format!("{why}, {uri}")).into_response();
    }
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
    let long_running = inflight::is_long_running(&info);
    let mutating = inflight::Kind::of(&info) == inflight::Kind::Mutating;
    let mut call = Call {
        parts,
        body,
        info,
        query,
        long_running,
        audit_id,
        received,
        deadline: None,
    };
    let user_seen: Arc<Mutex<Option<String>>> = Arc::default();
    let record_slot: Arc<Mutex<Option<Arc<Record>>>> = Arc::default();
    let response = if long_running {
        authenticate(state.clone(), call, user_seen.clone(), record_slot.clone()).await
    } else {
        match deadline::request_timeout(&call.query, state.request_timeout) {
            Err(e) => e.into_response(),
            Ok(timeout) => {
                let deadline = tokio::time::Instant::from_std(started) + timeout;
                call.deadline = Some(deadline);
                let mut task = tokio::spawn(authenticate(
                    state.clone(),
                    call,
                    user_seen.clone(),
                    record_slot.clone(),
                ));
                match tokio::time::timeout_at(deadline, &mut task).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(_)) => {
                        ApiError::internal("the server panicked while handling the request")
                            .into_response()
                    }
                    Err(_) => {
                        let error = deadline::timed_out();
                        if let Some(record) = record_slot.lock().take() {
                            record.finish_with(response_status(504, Some(&error.to_json())));
                        }
                        // A write may already be in storage: let it finish, as kube does;
                        // a read has nothing to finish.
                        if !mutating {
                            task.abort();
                        }
                        state
                            .metrics
                            .terminations
                            .get_or_create(&(labels.clone(), CodeLabel { code: "504".into() }))
                            .inc();
                        error.into_response()
                    }
                }
            }
        }
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
    if code == 429 {
        state
            .metrics
            .terminations
            .get_or_create(&(labels.clone(), CodeLabel { code: "429".into() }))
            .inc();
    }
    if verb != "watch" {
        state
            .metrics
            .durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
    let user = user_seen.lock().take().unwrap_or_default();
    tracing::info!(
        verb = %verb,
        resource = %labels.resource,
        subresource = %labels.subresource,
        path = %path,
        user = %user,
        code,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Stage 6, then the rest.
async fn authenticate(
    state: Arc<AppState>,
    call: Call,
    user_seen: Arc<Mutex<Option<String>>>,
    record_slot: Arc<Mutex<Option<Arc<Record>>>>,
) -> Response {
    let conn = call.parts.extensions.get::<ConnInfo>().cloned();
    let attrs = auth::attributes(&call.info, &call.query);
    let uri = call
        .parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| call.info.path.clone());
    let begin = |user: Option<&User>| {
        state.auditor.as_ref().and_then(|a| {
            a.begin(
                user,
                &attrs,
                RequestMeta {
                    audit_id: &call.audit_id,
                    uri: &uri,
                    headers: &call.parts.headers,
                    remote: conn.as_ref().map(|c| c.remote.ip()),
                    received: call.received,
                },
            )
        })
    };
    let user = match state
        .auth
        .authenticate(&call.parts.headers, conn.as_ref())
        .await
    {
        Some(user) => user,
        None if is_always_allowed_path(&call.info.path) => User::anonymous(),
        None => {
            let response = ApiError::unauthorized().into_response();
            // kube's failed-authentication audit: one ResponseStarted event, no user.
            if let Some(record) = begin(None) {
                record.set_status(response_status(401, None));
                record.stage(Stage::ResponseStarted);
                record.finished();
            }
            return response;
        }
    };
    *user_seen.lock() = Some(user.name.clone());
    let record = begin(Some(&user));
    if let Some(r) = &record {
        r.stage(Stage::RequestReceived);
        *record_slot.lock() = Some(r.clone());
    }
    let work = admit(&state, call, &user, &attrs, record.as_ref());
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let error = ApiError::internal("the server panicked while handling the request");
            if let Some(r) = &record {
                r.set_status(serde_json::json!({
                    "metadata": {}, "status": "Failure", "reason": "InternalError",
                    "message": format!("APIServer panic'd: {what}"), "code": 500
                }));
                r.stage(Stage::Panic);
                r.finished();
            }
            error.into_response()
        }
    }
}

/// Stages 8 to 10, with the audit of the response.
async fn admit(
    state: &Arc<AppState>,
    call: Call,
    user: &User,
    attrs: &Attributes,
    record: Option<&Arc<Record>>,
) -> Response {
    let long_running = call.long_running;
    let slot = if long_running {
        None
    } else {
        match state.limiter.admit(&call.info, user) {
            Admission::Admitted(slot) => slot,
            Admission::Rejected(_) => {
                let error = ApiError::too_many_requests("please try again later", 1);
                if let Some(r) = record {
                    r.set_status(response_status(429, None));
                }
                return error.into_response();
            }
        }
    };
    let response = match state.auth.authorize(user, attrs).await {
        Decision::Allow(reason) => {
            if let Some(r) = record {
                r.annotate(DECISION, "allow");
                r.annotate(REASON, &reason);
            }
            serve(state, call, record).await
        }
        Decision::Deny(reason) => {
            if let Some(r) = record {
                r.annotate(DECISION, "forbid");
                r.annotate(REASON, &reason);
            }
            auth::forbidden(user, attrs, &reason).into_response()
        }
        Decision::Error(e) => {
            if let Some(r) = record {
                r.annotate(REASON, "internal error");
            }
            let message = format!("cannot authorize {:?}: {e}", call.parts.uri);
            ApiError::internal(message).into_response()
        }
    };
    finish(response, record, slot, long_running).await
}

/// Stage 10.
async fn serve(state: &Arc<AppState>, call: Call, record: Option<&Arc<Record>>) -> Response {
    // Work that has not started by the deadline is not started (kube's handlers see the
    // request's context already done); work under way finishes.
    if call
        .deadline
        .is_some_and(|d| tokio::time::Instant::now() >= d)
    {
        return deadline::timed_out().into_response();
    }
    let Call {
        parts, info, query, ..
    } = call;
    let mut body = call.body;
    // At the Request level the request object is recorded (writes of resources only).
    if let Some(r) = record
        && r.level() >= crate::audit::Level::Request
        && info.is_resource_request
        && matches!(
            parts.method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        )
    {
        match handlers::read_body(body).await {
            Ok(bytes) => {
                if let Some(object) = as_json(&bytes) {
                    r.request_object(object);
                }
                body = Body::from(bytes);
            }
            Err(e) => return e.into_response(),
        }
    }
    if info.is_resource_request {
        handlers::dispatch(state, info, query, parts.headers, parts.method, body).await
    } else {
        nonresource::serve(state, &parts.method, &info.path, &query, &parts.headers)
    }
}

/// A request or response body as JSON (YAML bodies are converted), if it is one.
fn as_json(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(bytes)
        .ok()
        .or_else(|| crate::api::yaml::to_json(bytes).ok())
        .filter(|v: &serde_json::Value| v.is_object())
}

/// Records the response in the audit event and ties the in-flight slot and the
/// ResponseComplete event to the end of the response body.
async fn finish(
    response: Response,
    record: Option<&Arc<Record>>,
    slot: Option<Slot>,
    long_running: bool,
) -> Response {
    let Some(record) = record else {
        return hold(response, Hold { slot, record: None });
    };
    let code = response.status().as_u16();
    let keep_body =
        code >= 400 || (record.level() >= crate::audit::Level::RequestResponse && !long_running);
    let response = if keep_body && !is_streaming(&response) {
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => {
                record.set_status(response_status(code, Some(&bytes)));
                if code < 400
                    && let Some(object) = as_json(&bytes)
                {
                    record.response_object(object);
                }
                Response::from_parts(parts, Body::from(bytes))
            }
            Err(e) => ApiError::internal(format!("cannot read the response: {e}")).into_response(),
        }
    } else {
        record.set_status(response_status(code, None));
        response
    };
    if long_running {
        record.stage(Stage::ResponseStarted);
    }
    hold(
        response,
        Hold {
            slot,
            record: Some(record.clone()),
        },
    )
}

/// Whether a response streams (a watch): its body is not read for the audit.
fn is_streaming(response: &Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("stream=watch"))
}

/// What a response body keeps until it is sent or dropped: the in-flight slot (kube holds it
/// until `ServeHTTP` returns) and the audit record (its ResponseComplete is written then).
struct Hold {
    slot: Option<Slot>,
    record: Option<Arc<Record>>,
}

/// A response body holding [`Hold`].
struct HeldBody {
    inner: Body,
    _hold: Hold,
}

impl HttpBody for HeldBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn hold(response: Response, hold: Hold) -> Response {
    if hold.slot.is_none() && hold.record.is_none() {
        return response;
    }
    let (parts, inner) = response.into_parts();
    Response::from_parts(parts, Body::new(HeldBody { inner, _hold: hold }))
}
