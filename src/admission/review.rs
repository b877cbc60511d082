//! `AdmissionReview` on the wire, `admission.k8s.io/v1` and `v1beta1` alike (the two have the
//! same shape): the request kube-apiserver posts, read without copying the parts the policy does
//! not look at, and the answer, rendered in the version asked.

use crate::api::error::{ApiError, ApiResult};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The AdmissionReview versions answered.
pub const VERSIONS: [&str; 2] = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow, default)]
    api_version: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    request: Option<Request<'a>>,
}

/// `request.resource` / `request.kind`: group, version and resource or kind.
#[derive(Debug, Default, Deserialize)]
pub struct GroupVersionResource<'a> {
    /// API group (`""` for the core group).
    #[serde(borrow, default)]
    pub group: Cow<'a, str>,
    /// Version.
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    /// Plural resource name.
    #[serde(borrow, default)]
    pub resource: Cow<'a, str>,
}

/// `request.userInfo`, the part the policy needs.
#[derive(Debug, Default, Deserialize)]
pub struct UserInfo<'a> {
    /// User name.
    #[serde(borrow, default)]
    pub username: Cow<'a, str>,
    /// Groups.
    #[serde(borrow, default)]
    pub groups: Vec<Cow<'a, str>>,
}

/// `metadata` of the object under review, the part the policy needs.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata<'a> {
    /// Name.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// Labels (`None`: the object has no `labels` map).
    #[serde(borrow, default)]
    pub labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

/// The object under review.
#[derive(Debug, Default, Deserialize)]
pub struct Object<'a> {
    /// Its metadata.
    #[serde(borrow, default)]
    pub metadata: Metadata<'a>,
}

/// `request` of an AdmissionReview.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    /// Identifies this review; echoed in the answer.
    #[serde(borrow, default)]
    pub uid: Cow<'a, str>,
    /// The resource acted on.
    #[serde(borrow, default)]
    pub resource: GroupVersionResource<'a>,
    /// Subresource, if any.
    #[serde(borrow, default)]
    pub sub_resource: Cow<'a, str>,
    /// Name of the object (may be empty on create with generateName).
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    #[serde(borrow, default)]
    pub operation: Cow<'a, str>,
    /// Who asked.
    #[serde(borrow, default)]
    pub user_info: UserInfo<'a>,
    /// The object as it would be stored (`None` for DELETE).
    #[serde(borrow, default)]
    pub object: Option<Object<'a>>,
    /// Set when the request will not be persisted: no side effects then.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl Request<'_> {
    /// The name of the object: `request.name`, else the object's `metadata.name`.
    pub fn object_name(&self) -> &str {
        if !self.name.is_empty() {
            return &self.name;
        }
        self.object.as_ref().map_or("", |o| &o.metadata.name)
    }

    /// Whether nothing will be persisted.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run == Some(true)
    }
}

/// A posted review: its version and request.
#[derive(Debug)]
pub struct Review<'a> {
    /// `admission.k8s.io/v1` or `v1beta1`: the answer uses the same.
    pub api_version: &'static str,
    /// The request.
    pub request: Request<'a>,
}

fn unrecognized(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type AdmissionReview): {why}"
    ))
}

/// Parses a posted AdmissionReview; anything that is not one of the answered versions with a
/// request and a uid is a 400.
pub fn parse(body: &[u8]) -> ApiResult<Review<'_>> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| unrecognized(format!("couldn't get version/kind; json parse error: {e}")))?;
    let api_version = match VERSIONS.iter().find(|v| **v == envelope.api_version) {
        Some(v) => *v,
        None if envelope.api_version.is_empty() => {
            return Err(ApiError::bad_request(
                "Object 'apiVersion' is missing in the AdmissionReview",
            ));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "AdmissionReview version {:?} is not supported: send {} or {}",
                envelope.api_version, VERSIONS[0], VERSIONS[1]
            )));
        }
    };
    if envelope.kind != "AdmissionReview" {
        return Err(unrecognized(format!(
            "kind {:?} is not AdmissionReview",
            envelope.kind
        )));
    }
    let Some(request) = envelope.request else {
        return Err(ApiError::bad_request("AdmissionReview has no request"));
    };
    if request.uid.is_empty() {
        return Err(ApiError::bad_request(
            "AdmissionReview request.uid is required",
        ));
    }
    Ok(Review {
        api_version,
        request,
    })
}

/// `response.status` of a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// HTTP code kube-apiserver answers its client with.
    pub code: u16,
    /// Machine-readable reason.
    pub reason: &'static str,
    /// What the client is told (after kube-apiserver's `admission webhook "<name>" denied the
    /// request: `).
    pub message: String,
}

/// The decision, before rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Denied with this status (`None`: allowed).
    pub denied: Option<Denial>,
    /// RFC 6902 operations to apply (mutating only).
    pub patch: Option<serde_json::Value>,
    /// Shown by kubectl as `Warning: ...`.
    pub warnings: Vec<String>,
    /// Recorded in the audit log, prefixed by kube-apiserver with the webhook's name.
    pub audit_annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a Denial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: WireResponse<'a>,
}

/// Renders the answer to `review` as an AdmissionReview of the same version.
pub fn render(review: &Review<'_>, answer: &Answer) -> ApiResult<Vec<u8>> {
    let patch = match &answer.patch {
        Some(p) => Some(
            base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(p).map_err(ApiError::internal)?),
        ),
        None => None,
    };
    let wire = WireReview {
        api_version: review.api_version,
        kind: "AdmissionReview",
        response: WireResponse {
            uid: &review.request.uid,
            allowed: answer.denied.is_none(),
            status: answer.denied.as_ref(),
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings: &answer.warnings,
            audit_annotations: &answer.audit_annotations,
        },
    };
    serde_json::to_vec(&wire).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use crate::test_support::fixture;

    #[test]
    fn captured_reviews_parse_and_answer_in_their_version() {
        for (name, version) in [
            (
                "admissionreview-v1-namespace-create.json",
                "admission.k8s.io/v1",
            ),
            (
                "admissionreview-v1beta1-namespace-create.json",
                "admission.k8s.io/v1beta1",
            ),
        ] {
            let f = fixture(name);
            let body = serde_json::to_vec(&f["request"]["body"]).unwrap();
            let review = parse(&body).unwrap();
            assert_eq!(review.api_version, version);
            assert_eq!(review.request.operation, "CREATE");
            assert_eq!(review.request.resource.resource, "namespaces");
            assert_eq!(review.request.user_info.username, "kubelab-admin");
            assert!(!review.request.is_dry_run());
            let out: Value =
                serde_json::from_slice(&render(&review, &Answer::default()).unwrap()).unwrap();
            assert_eq!(out, f["response_sent_by_extension_server"]["body"]);
        }
        let dry = fixture("admissionreview-v1-dryrun.json");
        let body = serde_json::to_vec(&dry["request"]["body"]).unwrap();
        assert!(parse(&body).unwrap().request.is_dry_run());
    }

    #[test]
    fn answers_have_the_captured_shape() {
        let f = fixture("webhook-denied-status.json");
        let body = serde_json::to_vec(&f["admission_request_v1"]).unwrap();
        let review = parse(&body).unwrap();
        let expected = &f["extension_server_response_v1"];
        let answer = Answer {
            denied: Some(Denial {
                code: 403,
                reason: "Forbidden",
                message: expected["response"]["status"]["message"]
                    .as_str()
                    .unwrap()
                    .into(),
            }),
            ..Answer::default()
        };
        let out: Value = serde_json::from_slice(&render(&review, &answer).unwrap()).unwrap();
        assert_eq!(&out, expected);

        let m = fixture("admissionreview-v1-mutating-jsonpatch.json");
        let body = serde_json::to_vec(&m["request"]["body"]).unwrap();
        let review = parse(&body).unwrap();
        let sent = &m["response_sent_by_extension_server"]["body"]["response"];
        let answer = Answer {
            patch: Some(m["decoded_patch"].clone()),
            warnings: vec![sent["warnings"][0].as_str().unwrap().into()],
            audit_annotations: [("reserved".to_string(), "true".to_string())].into(),
            ..Answer::default()
        };
        let out: Value = serde_json::from_slice(&render(&review, &answer).unwrap()).unwrap();
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&patch).unwrap(),
            m["decoded_patch"]
        );
        assert_eq!(out["response"]["warnings"], sent["warnings"]);
        assert_eq!(
            out["response"]["auditAnnotations"],
            sent["auditAnnotations"]
        );
    }

    #[test]
    fn malformed_reviews_are_400() {
        for body in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"kind":"AdmissionReview"}"#,
            br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"u"}}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u"}}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#,
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.code(), 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(e.reason(), "BadRequest");
        }
        let ok = json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":null}});
        assert!(parse(&serde_json::to_vec(&ok).unwrap()).is_ok());
    }
}
