//! `POST` of an AdmissionReview to `validatingadmissionreviews` or `mutatingadmissionreviews`:
//! cluster-scoped, create only, answered with the review (200) and never stored.
//!
//! These resources are served the way a k8s.io/apiserver server serves a create-only REST
//! storage (openshift/generic-admission-server): its go-restful route tree has exactly one
//! route, `POST /apis/<group>/<version>/<resource>`. Another method on that path is 405, any
//! other path under the resource is 404, both as go-restful's generic `Status`.

use crate::admission::Webhook;
use crate::api::error::{ApiError, ApiResult};
use crate::api::negotiation::{BodyFormat, Output, Target, body_format, negotiate};
use crate::api::render::Body as Rendered;
use crate::api::request_info::RequestInfo;
use crate::kinds::{GROUP, VERSION};
use crate::server::state::AppState;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
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
    let route = format!("apis/{GROUP}/{VERSION}/{}", info.resource);
    if info.path.trim_matches('/') != route {
        return Err(ApiError::path_not_found());
    }
    if method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let output = negotiate(accept, Target::Object)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = body_format(content_type)?;
    let body = super::read_body(body).await?;
    let body = match format {
        BodyFormat::Json => body,
        BodyFormat::Yaml => {
            let value: serde_json::Value = crate::api::yaml::to_json(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the object provided is unrecognized (must be of type AdmissionReview): error converting YAML to JSON: {e}"
                ))
            })?;
            Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
        }
        BodyFormat::Protobuf => {
            return Err(ApiError::bad_request(crate::api::decode::protobuf_error(
                "AdmissionReview",
                &body,
            )));
        }
    };
    let answer = state.admission.review(webhook, &body)?;
    let rendered = match output {
        Output::Yaml => {
            let value: serde_json::Value = serde_json::from_slice(&answer)
                .map_err(|e| ApiError::internal(format!("cannot render the review: {e}")))?;
            Rendered {
                content_type: "application/yaml",
                bytes: serde_yaml_ng::to_string(&value)
                    .map(Bytes::from)
                    .map_err(|e| ApiError::internal(format!("cannot render YAML: {e}")))?,
            }
        }
        _ => Rendered {
            content_type: "application/json",
            bytes: answer.into(),
        },
    };
    Ok(super::respond(StatusCode::OK, rendered, &[]))
}
