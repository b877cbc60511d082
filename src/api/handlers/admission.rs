//! `POST` of an AdmissionReview to `validatingadmissionreviews` or `mutatingadmissionreviews`:
//! cluster-scoped, create only, answered with the review (200) and never stored.

use crate::admission::Webhook;
use crate::api::error::{ApiError, ApiResult};
use crate::api::negotiation::{BodyFormat, body_format};
use crate::api::render::Body as Rendered;
use crate::api::request_info::RequestInfo;
use crate::server::state::AppState;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, header};

/// Answers a posted review.
pub async fn review(
    state: &AppState,
    info: &RequestInfo,
    headers: &HeaderMap,
    method: &Method,
    body: Body,
    webhook: Webhook,
) -> ApiResult<Response> {
    if !info.namespace.is_empty() || !info.name.is_empty() || !info.subresource.is_empty() {
        return Err(ApiError::path_not_found());
    }
    if method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if body_format(content_type)? != BodyFormat::Json {
        return Err(ApiError::unsupported_media_type(&["application/json"]));
    }
    let body = super::read_body(body).await?;
    let answer = state.admission.review(webhook, &body)?;
    let rendered = Rendered {
        content_type: "application/json",
        bytes: answer.into(),
    };
    Ok(super::respond(StatusCode::OK, rendered, &[]))
}
