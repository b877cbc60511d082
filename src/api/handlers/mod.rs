//! The REST verbs on the group's resources. [`dispatch`] routes a resource request (already
//! authenticated and authorized) to one module per kind of work:
//! - [`read`]: get and list;
//! - [`write`]: create, update, patch, delete, deletecollection;
//! - [`watch`]: watch streams;
//! - [`scale`]: the autoscaling/v1 `Scale` view of a kind with a scale subresource;
//! - [`admission`]: the AdmissionReview endpoints of the webhook backend.

pub mod admission;
pub mod apply;
pub mod patch;
pub mod read;
pub mod scale;
pub mod watch;
pub mod write;

use super::error::{ApiError, ApiResult};
use super::query::Query;
use super::render::Body as Rendered;
use super::request_info::RequestInfo;
use crate::kinds::{GROUP, Resource, ServedVersion};
use crate::registry::WriteOptions;
use crate::server::state::AppState;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use std::sync::Arc;

/// The most bytes a request body may have (kube-apiserver's default, 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every handler needs to know about the request.
pub struct Call {
    /// Parsed path and verb.
    pub info: RequestInfo,
    /// The query string.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// HTTP method.
    pub method: Method,
    /// The request body, read in full (bounded by [`MAX_BODY_BYTES`]).
    pub body: bytes::Bytes,
    /// The resource addressed.
    pub resource: Arc<Resource>,
    /// The version the request names: bodies are read and answered in it.
    pub version: &'static ServedVersion,
}

impl Call {
    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `User-Agent`.
    pub fn user_agent(&self) -> &str {
        self.header("user-agent").unwrap_or("")
    }

    /// The options of a write (`options_kind` names them in errors), recording field ownership
    /// in the request's version.
    pub fn write_options(&self, options_kind: &str, apply: bool) -> ApiResult<WriteOptions> {
        let mut options =
            super::query::write_options(&self.query, options_kind, self.user_agent(), apply)?;
        options.api_version = self.version.group_version();
        Ok(options)
    }
}

/// Reads a body up to the limit (413 beyond it).
pub async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_big {
                ApiError::too_large(&format!("limit is {MAX_BODY_BYTES}"))
            } else {
                ApiError::bad_request(format!("error reading the request body: {e}"))
            }
        })
}

/// A response with a rendered body, status and `Warning` headers.
pub fn respond(code: StatusCode, body: Rendered, warnings: &[String]) -> Response {
    let mut response = (code, body.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(body.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    add_warnings(headers, warnings);
    response
}

/// Adds `Warning: 299 - "<text>"` headers.
pub fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            headers.append(header::WARNING, v);
        }
    }
}

/// Puts a `Warning` before the others a response has (kube-apiserver records a deprecated
/// version's warning before anything the request adds), once.
fn warn_first(headers: &mut HeaderMap, warning: &str) {
    let existing: Vec<HeaderValue> = headers.get_all(header::WARNING).iter().cloned().collect();
    headers.remove(header::WARNING);
    add_warnings(headers, &[warning.to_string()]);
    let first = headers.get(header::WARNING).cloned();
    for v in existing {
        if Some(&v) != first.as_ref() {
            headers.append(header::WARNING, v);
        }
    }
}

/// Routes a resource request of this server's group to its handler. Every answer about a kind
/// in a deprecated version, errors included, carries the deprecation `Warning`.
pub async fn dispatch(
    state: &AppState,
    info: RequestInfo,
    query: Query,
    headers: HeaderMap,
    method: Method,
    body: Body,
) -> Response {
    let mut warning = None;
    let mut response = match route(state, info, query, headers, method, body, &mut warning).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(w) = warning {
        warn_first(response.headers_mut(), &w);
    }
    response
}

async fn route(
    state: &AppState,
    info: RequestInfo,
    query: Query,
    headers: HeaderMap,
    method: Method,
    body: Body,
    warning: &mut Option<String>,
) -> ApiResult<Response> {
    let version = match ServedVersion::named(&info.api_version) {
        Some(v) if info.api_group == GROUP => v,
        _ => return Err(ApiError::path_not_found()),
    };
    // The AdmissionReview endpoints are RPCs of the webhook backend, not versioned objects:
    // they are served where the webhook configurations point, in the storage version only.
    if let Some(webhook) = crate::admission::Webhook::for_resource(&info.resource) {
        if !version.storage {
            return Err(ApiError::path_not_found());
        }
        return admission::review(state, &info, &headers, &method, body, webhook).await;
    }
    let resource = state
        .resources
        .iter()
        .find(|r| r.kind.plural == info.resource)
        .cloned()
        .ok_or_else(ApiError::path_not_found)?;
    *warning = version.deprecation_warning(resource.kind);
    let namespaced = resource.kind.namespaced;
    let named = !info.parts.get(1).is_none_or(|n| n.is_empty());
    // A namespaced kind is reachable without a namespace only to list and watch everything;
    // a cluster-scoped one never under a namespace.
    if info.parts.len() > 3
        || (namespaced && info.namespace.is_empty() && named)
        || (!namespaced && !info.namespace.is_empty())
    {
        return Err(ApiError::path_not_found());
    }
    let subresource = info.subresource.clone();
    match subresource.as_str() {
        "" => {}
        "status" if resource.kind.status_subresource => {}
        "scale" if resource.kind.scale.is_some() => {}
        _ => return Err(ApiError::path_not_found()),
    }
    let allowed = match (named, subresource.is_empty()) {
        (false, _) if namespaced && info.namespace.is_empty() => {
            matches!(method, Method::GET | Method::HEAD)
        }
        (false, _) => matches!(
            method,
            Method::GET | Method::HEAD | Method::POST | Method::DELETE
        ),
        (true, true) => matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::PATCH | Method::DELETE
        ),
        (true, false) => matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::PATCH
        ),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed());
    }
    let body = if matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        read_body(body).await?
    } else {
        bytes::Bytes::new()
    };
    let call = Call {
        info,
        query,
        headers,
        method,
        body,
        resource,
        version,
    };
    match (call.info.verb.as_str(), subresource.as_str()) {
        ("get", "") | ("get", "status") => read::get(state, &call).await,
        ("list", _) => read::list(state, &call).await,
        ("watch", _) => watch::watch(state, &call).await,
        ("create", _) => write::create(state, &call).await,
        ("update", "") => write::update(state, &call).await,
        ("update", "status") => write::update_status(state, &call).await,
        ("patch", "") | ("patch", "status") => write::patch(state, &call).await,
        ("delete", _) => write::delete(state, &call).await,
        ("deletecollection", _) => write::delete_collection(state, &call).await,
        ("get", "scale") => scale::get(state, &call).await,
        ("update", "scale") => scale::update(state, &call).await,
        ("patch", "scale") => scale::patch(state, &call).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}
