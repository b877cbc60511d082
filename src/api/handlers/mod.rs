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
use super::negotiation::{Target, body_format, negotiate, patch_type};
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

/// What a request asks of a served kind: the verbs kube-apiserver's `crdHandler` dispatches
/// (`serveResource`, `serveStatus`, `serveScale`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// GET of one object (or its status or scale).
    Get,
    /// GET of a collection.
    List,
    /// A watch (`?watch=true` or the `/watch/` path prefix).
    Watch,
    /// POST (to the collection or, as kube-apiserver allows, to an object's path).
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

/// The operation a request asks for, or how kube-apiserver refuses it: `404 page not found`
/// for a scope the kind does not have, 405 for a verb the (sub)resource does not take, and a
/// `NotFound` Status for a subresource the kind does not have.
pub fn operation(resource: &Resource, info: &RequestInfo) -> ApiResult<Operation> {
    let kind = resource.kind;
    let namespaced_request = !info.namespace.is_empty();
    if !kind.namespaced && namespaced_request {
        return Err(ApiError::page_not_found());
    }
    if kind.namespaced && !namespaced_request && !matches!(info.verb.as_str(), "list" | "watch") {
        return Err(ApiError::page_not_found());
    }
    let unsupported = || ApiError::method_not_supported(kind.group, kind.plural, &info.verb);
    let subresource = info.subresource.as_str();
    let has_subresource = match subresource {
        "" => true,
        "status" => kind.status_subresource,
        "scale" => kind.scale.is_some(),
        _ => false,
    };
    if !has_subresource {
        return Err(ApiError::not_found(kind, &info.name));
    }
    let op = match info.verb.as_str() {
        "get" => Operation::Get,
        "update" => Operation::Update,
        "patch" => Operation::Patch,
        _ if !subresource.is_empty() => return Err(unsupported()),
        "list" => Operation::List,
        "watch" => Operation::Watch,
        "create" => Operation::Create,
        "delete" => Operation::Delete,
        "deletecollection" => Operation::DeleteCollection,
        _ => return Err(unsupported()),
    };
    Ok(op)
}

/// The requests a handler may refuse before reading the body, in the order kube-apiserver's
/// handler for the operation checks them (`pkg/endpoints/handlers`): the name, the response
/// media type (406) and, for a create or a patch, the body's media type (415).
fn refuse_early(op: Operation, info: &RequestInfo, headers: &HeaderMap) -> ApiResult<()> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let named = || {
        if info.name.is_empty() {
            Err(ApiError::bad_request("name must be provided"))
        } else {
            Ok(())
        }
    };
    match op {
        Operation::Get | Operation::Update | Operation::Delete => {
            named()?;
            negotiate(accept, Target::Object)?;
        }
        Operation::List | Operation::DeleteCollection => {
            negotiate(accept, Target::List)?;
        }
        Operation::Watch => {
            negotiate(accept, Target::Watch)?;
        }
        Operation::Create => {
            negotiate(accept, Target::Object)?;
            body_format(content_type)?;
        }
        Operation::Patch => {
            patch_type(content_type)?;
            named()?;
            negotiate(accept, Target::Object)?;
        }
    }
    Ok(())
}

/// Routes a resource request of this server's group to its handler. Every answer about a kind
/// in a deprecated version, errors included, carries the deprecation `Warning`.
pub async fn dispatch(
    state: &Arc<AppState>,
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

#[allow(clippy::too_many_arguments)]
async fn route(
    state: &Arc<AppState>,
    info: RequestInfo,
    query: Query,
    headers: HeaderMap,
    method: Method,
    body: Body,
    warning: &mut Option<String>,
) -> ApiResult<Response> {
    // Groups and versions this server does not serve are routed nowhere, as in kube-apiserver.
    let version = match ServedVersion::named(&info.api_version) {
        Some(v) if info.api_group == GROUP => v,
        _ => return Err(ApiError::page_not_found()),
    };
    // The AdmissionReview endpoints are RPCs of the webhook backend, not versioned objects:
    // they are served where the webhook configurations point, in the storage version only.
    if let Some(webhook) = crate::admission::Webhook::for_resource(&info.resource) {
        if !version.storage {
            return Err(ApiError::page_not_found());
        }
        return admission::review(state, &info, &headers, &method, body, webhook).await;
    }
    let resource = state
        .resources
        .iter()
        .find(|r| r.kind.plural == info.resource)
        .cloned()
        .ok_or_else(ApiError::page_not_found)?;
    *warning = version.deprecation_warning(resource.kind);
    let op = operation(&resource, &info)?;
    refuse_early(op, &info, &headers)?;
    let body = match op {
        Operation::Create | Operation::Update | Operation::Patch | Operation::Delete => {
            read_body(body).await?
        }
        // The list options are checked before the body is read.
        Operation::DeleteCollection => {
            crate::api::query::ListOptions::parse(&query, &resource)?;
            read_body(body).await?
        }
        Operation::Get | Operation::List | Operation::Watch => bytes::Bytes::new(),
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
    if call.body.len() > OFFLOADED_BODY_BYTES {
        // Decoding, validating and encoding a large body takes CPU in proportion to it: it runs
        // on a thread of its own, as kube-apiserver gives every request a goroutine, so that the
        // async workers keep answering everyone else meanwhile.
        let (state, runtime) = (state.clone(), tokio::runtime::Handle::current());
        return match tokio::task::spawn_blocking(move || {
            runtime.block_on(handle(&state, op, &call))
        })
        .await
        {
            Ok(answer) => answer,
            // A panic goes on to the pipeline's recovery, as it would have here.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ApiError::unavailable("the server is shutting down")),
        };
    }
    handle(state, op, &call).await
}

/// Bodies larger than this (bytes) are handled off the async workers.
const OFFLOADED_BODY_BYTES: usize = 64 * 1024;

/// Runs the handler of an operation.
async fn handle(state: &AppState, op: Operation, call: &Call) -> ApiResult<Response> {
    match (op, call.info.subresource.as_str()) {
        (Operation::Get, "scale") => scale::get(state, call).await,
        (Operation::Get, _) => read::get(state, call).await,
        (Operation::List, _) => read::list(state, call).await,
        (Operation::Watch, _) => watch::watch(state, call).await,
        (Operation::Create, _) => write::create(state, call).await,
        (Operation::Update, "scale") => scale::update(state, call).await,
        (Operation::Update, "status") => write::update_status(state, call).await,
        (Operation::Update, _) => write::update(state, call).await,
        (Operation::Patch, "scale") => scale::patch(state, call).await,
        (Operation::Patch, _) => write::patch(state, call).await,
        (Operation::Delete, _) => write::delete(state, call).await,
        (Operation::DeleteCollection, _) => write::delete_collection(state, call).await,
    }
}
