//! The one API error type. Every failure a client can see becomes a Kubernetes `Status`, worded
//! as kube-apiserver words it (`k8s.io/apimachinery/pkg/api/errors`), in exactly one place:
//! [`ApiError::into_response`]. Storage errors are translated in [`ApiError::from_storage`].
//! Field errors themselves ([`FieldError`]) live in the leaf module [`crate::field_error`].

use crate::field_error::{FieldError, aggregate, go_quote};
use crate::kinds::Kind;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};

/// An error answered to the client as a `Status`. Boxed, so results stay small on the
/// happy path.
#[derive(Clone, Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Clone, Debug)]
struct Inner {
    status: Status,
    retry_after: Option<u32>,
    /// Answered as plain text (Go's `http.Error`) instead of a `Status`: what kube-apiserver's
    /// mux and filters answer before a request reaches an API handler.
    text: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code(),
            self.0.status.reason.as_deref().unwrap_or(""),
            self.0.status.message.as_deref().unwrap_or("")
        )
    }
}

impl std::error::Error for ApiError {}

/// Group and plural resource, as Go's `schema.GroupResource` prints it (`apps.admission.example.com`).
fn qualified(kind: &Kind) -> String {
    format!("{}.{}", kind.plural, kind.group)
}

fn details(kind: &Kind, name: &str) -> StatusDetails {
    StatusDetails {
        group: Some(kind.group.to_string()),
        kind: Some(kind.plural.to_string()),
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        ..Default::default()
    }
}

impl ApiError {
    fn new(code: u16, reason: &str, message: String, details: Option<StatusDetails>) -> ApiError {
        ApiError(Box::new(Inner {
            status: Status {
                status: Some("Failure".into()),
                code: Some(code.into()),
                reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
                message: Some(message),
                details,
                metadata: ListMeta::default(),
            },
            retry_after: None,
            text: None,
        }))
    }

    /// An answer in Go's `http.Error` form: `text/plain`, the message and a newline.
    fn plain(code: u16, text: String) -> ApiError {
        let mut e = ApiError::new(code, "", text.clone(), None);
        e.0.text = Some(text);
        e
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.0.status.code.unwrap_or(500) as u16
    }

    /// The `Status` reason (`NotFound`, `Conflict`, ...).
    pub fn reason(&self) -> &str {
        self.0.status.reason.as_deref().unwrap_or("")
    }

    /// The human message.
    pub fn message(&self) -> &str {
        self.0.status.message.as_deref().unwrap_or("")
    }

    /// The `Status` object itself (watch `ERROR` events carry it).
    pub fn status(&self) -> &Status {
        &self.0.status
    }

    /// 404 for a named object.
    pub fn not_found(kind: &Kind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {} not found", qualified(kind), go_quote(name)),
            Some(details(kind, name)),
        )
    }

    /// 404 for a path kube-apiserver routes nowhere (a resource or version this server does not
    /// serve, a scope the resource does not have): its mux's `http.NotFound`,
    /// `404 page not found` as plain text.
    pub fn page_not_found() -> ApiError {
        ApiError::plain(404, "404 page not found".into())
    }

    /// 500 for a resource path kube-apiserver's `WithRequestInfo` filter cannot parse (a verb
    /// prefix with nothing after it, `/apis/<group>/<version>/watch`), answered as plain text
    /// before authentication. `request_uri` is the path and query as sent.
    pub fn request_info_failed(request_uri: &str, why: &str) -> ApiError {
        let text = format!(
            "Internal Server Error: {}: failed to create RequestInfo: {why}",
            go_quote(request_uri)
        )
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
        ApiError::plain(500, text)
    }

    /// 404 for a path a k8s.io/apiserver (go-restful) route tree does not have.
    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(StatusDetails::default()),
        )
    }

    /// 409 for a create of an existing name.
    pub fn already_exists(kind: &Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {} already exists", qualified(kind), go_quote(name)),
            Some(details(kind, name)),
        )
    }

    /// 409 for a write that lost an optimistic-concurrency race or failed a precondition.
    pub fn conflict(kind: &Kind, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {}: {why}",
                qualified(kind),
                go_quote(name)
            ),
            Some(details(kind, name)),
        )
    }

    /// 409 for a `DeleteOptions` precondition that does not hold, worded as
    /// `rest.BeforeDelete` words it: about the Kind (`App.admission.example.com`), not the
    /// resource.
    pub fn delete_precondition(kind: &Kind, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}.{} {}: {why}",
                kind.kind,
                kind.group,
                go_quote(name)
            ),
            Some(StatusDetails {
                group: Some(kind.group.to_string()),
                kind: Some(kind.kind.to_string()),
                name: Some(name.to_string()).filter(|n| !n.is_empty()),
                ..Default::default()
            }),
        )
    }

    /// 409 for an update whose body names another uid than the stored object's: the storage
    /// layer's precondition failure (`storage.Preconditions.Check`, a `StorageError` for the
    /// object's etcd key) as `InterpretUpdateError` wraps it.
    pub fn update_precondition(kind: &Kind, name: &str, key: &str, why: &str) -> ApiError {
        ApiError::conflict(
            kind,
            name,
            &format!(
                "StorageError: invalid object, Code: 4, Key: /registry/{}/{key}, ResourceVersion: 0, AdditionalErrorMsg: {why}",
                kind.group
            ),
        )
    }

    /// 409 for a stale resourceVersion, in kube-apiserver's words.
    pub fn stale(kind: &Kind, name: &str) -> ApiError {
        ApiError::conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 of a server-side apply that conflicts with other managers.
    pub fn apply_conflict(message: String, causes: Vec<StatusCause>) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            message,
            Some(StatusDetails {
                causes: Some(causes),
                ..Default::default()
            }),
        )
    }

    /// 422 with one cause per field error (`errors.NewInvalid`).
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> ApiError {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let message = if errors.is_empty() {
            format!("{qualified_kind} {} is invalid", go_quote(name))
        } else {
            format!(
                "{qualified_kind} {} is invalid: {}",
                go_quote(name),
                aggregate(errors)
            )
        };
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: Some(e.reason.to_string()),
                message: Some(e.body.clone()),
                field: Some(e.field.clone()),
            })
            .collect();
        ApiError::new(
            422,
            "Invalid",
            message,
            Some(StatusDetails {
                group: Some(group.to_string()).filter(|g| !g.is_empty()),
                kind: Some(kind.to_string()).filter(|k| !k.is_empty()),
                name: Some(name.to_string()).filter(|n| !n.is_empty()),
                causes: Some(causes),
                ..Default::default()
            }),
        )
    }

    /// 422 for an object of one of our kinds.
    pub fn invalid_object(kind: &Kind, name: &str, errors: &[FieldError]) -> ApiError {
        ApiError::invalid(kind.group, kind.kind, name, errors)
    }

    /// 422 without details, as `errors.NewGenericServerResponse(422, ...)` words it (a JSON
    /// patch that does not apply): kube-apiserver does not pass the cause on.
    pub fn invalid_generic() -> ApiError {
        ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request".into(),
            Some(StatusDetails::default()),
        )
    }

    /// 500 for an error that is not an API error, as `ErrorToAPIStatus` renders one: the text,
    /// no reason, no details (e.g. the storage layer's "resourceVersion should not be set on
    /// objects to be created").
    pub fn unknown(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "", message.into(), None)
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message.into(), None)
    }

    /// 401.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    /// 403 (`errors.NewForbidden`).
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
        let gr = match (resource.is_empty(), group.is_empty()) {
            (true, _) => String::new(),
            (false, true) => resource.to_string(),
            (false, false) => format!("{resource}.{group}"),
        };
        let message = if gr.is_empty() {
            format!("forbidden: {why}")
        } else if name.is_empty() {
            format!("{gr} is forbidden: {why}")
        } else {
            format!("{gr} {} is forbidden: {why}", go_quote(name))
        };
        ApiError::new(
            403,
            "Forbidden",
            message,
            Some(StatusDetails {
                group: Some(group.to_string()).filter(|g| !g.is_empty()),
                kind: Some(resource.to_string()).filter(|r| !r.is_empty()),
                name: Some(name.to_string()).filter(|n| !n.is_empty()),
                ..Default::default()
            }),
        )
    }

    /// 405 (go-restful's answer for a method a path does not serve).
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(StatusDetails::default()),
        )
    }

    /// 405 for a verb a resource does not support (`errors.NewMethodNotSupported`).
    pub fn method_not_supported(group: &str, resource: &str, action: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{action} is not supported on resources of kind \"{resource}.{group}\""),
            Some(StatusDetails {
                group: Some(group.to_string()),
                kind: Some(resource.to_string()),
                ..Default::default()
            }),
        )
    }

    /// 406 when no acceptable media type can be served.
    pub fn not_acceptable(accepted: &[&str]) -> ApiError {
        ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// 415 when the body's media type is not one we decode.
    pub fn unsupported_media_type(accepted: &[&str]) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            None,
        )
    }

    /// 410 `Expired` (a resourceVersion or continue token outside the history window).
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message.into(), None)
    }

    /// 413 for a body over the limit.
    pub fn too_large(message: &str) -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: {message}"),
            None,
        )
    }

    /// 429 when the server sheds load.
    pub fn too_many_requests(message: &str, retry_after: u32) -> ApiError {
        let mut e = ApiError::new(
            429,
            "TooManyRequests",
            format!("Too many requests: {message}"),
            Some(StatusDetails {
                retry_after_seconds: Some(retry_after as i32),
                ..Default::default()
            }),
        );
        e.0.retry_after = Some(retry_after);
        e
    }

    /// 504 (`errors.NewTimeoutError`); a zero `retry_after` is left out of the details and
    /// headers, as Go's `omitempty` and kube's writer leave it out.
    pub fn timeout(message: &str, retry_after: u32) -> ApiError {
        let mut e = ApiError::new(
            504,
            "Timeout",
            format!("Timeout: {message}"),
            Some(StatusDetails {
                retry_after_seconds: (retry_after > 0).then_some(retry_after as i32),
                ..Default::default()
            }),
        );
        e.0.retry_after = (retry_after > 0).then_some(retry_after);
        e
    }

    /// 504 for a read at a resourceVersion the store has not reached in time
    /// (`storage.NewTooLargeResourceVersionError`): client-go's reflector recognises it by the
    /// `ResourceVersionTooLarge` cause.
    pub fn too_large_resource_version(requested: u64, current: u64) -> ApiError {
        let mut e = ApiError::timeout(
            &format!("Too large resource version: {requested}, current: {current}"),
            1,
        );
        if let Some(details) = e.0.status.details.as_mut() {
            details.causes = Some(vec![StatusCause {
                reason: Some("ResourceVersionTooLarge".into()),
                message: Some("Too large resource version".into()),
                field: None,
            }]);
        }
        e
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message.into(), None)
    }

    /// 500. The cause is logged; the client gets kube-apiserver's generic wording.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        let message = cause.to_string();
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    message: Some(message),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        )
    }

    /// Sets `metadata.continue` (an inconsistent-continue token on a 410).
    pub fn with_continue(mut self, token: String) -> ApiError {
        self.0.status.metadata.continue_ = Some(token);
        self
    }

    /// Asks the client to retry after `seconds` (`Retry-After` and `details.retryAfterSeconds`).
    pub fn with_retry_after(mut self, seconds: u32) -> ApiError {
        self.0
            .status
            .details
            .get_or_insert_with(Default::default)
            .retry_after_seconds = Some(seconds as i32);
        self.0.retry_after = Some(seconds);
        self
    }

    /// Sets the `uid` in the details.
    pub fn with_uid(mut self, uid: Option<String>) -> ApiError {
        if let Some(d) = self.0.status.details.as_mut() {
            d.uid = uid;
        }
        self
    }

    /// Translates a storage error about an object of `kind` named `name`.
    pub fn from_storage(kind: &Kind, name: &str, err: storage::Error) -> ApiError {
        match err {
            storage::Error::NotFound(_) => ApiError::not_found(kind, name),
            storage::Error::AlreadyExists(_) => ApiError::already_exists(kind, name),
            storage::Error::Conflict { .. } => ApiError::stale(kind, name),
            storage::Error::TooOld { requested, oldest } => {
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            storage::Error::Lagged => ApiError::expired("the watch fell behind; please re-list"),
            storage::Error::FutureRevision { requested, current } => {
                ApiError::too_large_resource_version(requested, current)
            }
            // The store cannot reach a quorum now, or is (re)initializing: retry shortly.
            storage::Error::Unavailable(why) => ApiError::unavailable(why).with_retry_after(1),
            // The outcome of a write that timed out is unknown: no Retry-After, which would make
            // client-go send it again (a second object for a generateName create).
            storage::Error::Timeout(why) => ApiError::timeout(&why, 0),
            storage::Error::Initializing(why) => {
                tracing::info!(reason = %why, "storage is initializing");
                ApiError::too_many_requests("storage is (re)initializing", 1)
            }
            storage::Error::Backend(why) => ApiError::internal(why),
        }
    }

    /// The `Status` as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&StatusBody(&self.0.status)).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// Serializes a `Status` with `kind` and `apiVersion` (k8s-openapi leaves them to the caller).
pub struct StatusBody<'a>(pub &'a Status);

impl serde::Serialize for StatusBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("kind".into(), "Status".into());
            obj.insert("apiVersion".into(), "v1".into());
        }
        value.serialize(serializer)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(text) = self.0.text {
            let mut response = (code, format!("{text}\n")).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            headers.insert(
                header::HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            );
            return response;
        }
        let mut response = (code, self.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        if let Some(seconds) = self.0.retry_after
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_json_has_kind_and_api_version() {
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::bad_request("nope").to_json()).unwrap();
        assert_eq!(
            body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nope","reason":"BadRequest","code":400})
        );
    }
}
