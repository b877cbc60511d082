//! Authentication and authorization.
//!
//! - Standalone mode: the only credential is the admin bearer token written at first start; its
//!   holder is in `system:masters` and may do everything.
//! - Delegated mode (in a cluster, behind kube-apiserver's aggregator): the chain of
//!   k8s.io/apiserver's delegating authenticator — front-proxy request headers over a client
//!   certificate from the request-header CA ([`trust`]), x509 client certificates from the client
//!   CA, bearer tokens through `TokenReview` ([`review`]), anonymous if allowed — and every request
//!   authorized by `SubjectAccessReview`, except the always-allowed health paths and
//!   `system:masters`. The CA bundles and header names follow the
//!   `kube-system/extension-apiserver-authentication` ConfigMap ([`config_map`]).

pub mod config_map;
pub mod review;
pub mod trust;

use crate::api::error::ApiError;
use crate::api::query::Query;
use crate::api::request_info::RequestInfo;
use crate::api::selectors::{FieldSelector, LabelSelector, Op};
use crate::server::listener::ConnInfo;
use http::HeaderMap;
use review::{Attributes, Decision, SarAuthorizer, TokenReviewer};
use serde_json::{Value, json};
use std::sync::Arc;
use trust::SharedTrust;

/// An authenticated user, as Kubernetes `user.Info` describes one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    /// User name.
    pub name: String,
    /// User uid (may be empty).
    pub uid: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
    /// Extra attributes (`authentication.kubernetes.io/credential-id`, ...).
    pub extra: Vec<(String, Vec<String>)>,
}

impl User {
    /// Whether the user is in `system:masters` (always allowed).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    fn authenticated(mut self) -> User {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".into());
        }
        self
    }

    /// The anonymous user.
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }
    }
}

/// The standalone admin's name.
pub const ADMIN_USER: &str = "admin";

/// Paths anyone may read, in every mode (probes carry no credentials).
pub fn is_always_allowed_path(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Delegated-mode settings and clients.
pub struct Delegated {
    /// CA bundles and front-proxy headers, shared with the TLS layer.
    pub trust: Arc<SharedTrust>,
    /// Bearer tokens (none: tokens are not accepted).
    pub tokens: Option<TokenReviewer>,
    /// SubjectAccessReviews (none: only `system:masters` and the health paths are allowed).
    pub authorizer: Option<SarAuthorizer>,
    /// Whether requests without credentials proceed as `system:anonymous`.
    pub anonymous: bool,
}

/// Authentication and authorization of a server.
pub enum Auth {
    /// Standalone: the admin token.
    Standalone {
        /// The admin token (`None`: nobody authenticates).
        admin_token: Option<String>,
    },
    /// Behind kube-apiserver.
    Delegated(Box<Delegated>),
}

/// Front-proxy identity from request headers (`X-Remote-User` etc.).
fn from_request_headers(headers: &HeaderMap, settings: &trust::RequestHeader) -> Option<User> {
    let first = |names: &[String]| -> String {
        names
            .iter()
            .find_map(|n| {
                headers
                    .get(n.as_str())
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| !v.is_empty())
            })
            .unwrap_or("")
            .to_string()
    };
    let name = first(&settings.username_headers);
    if name.is_empty() {
        return None;
    }
    let mut groups = Vec::new();
    for h in &settings.group_headers {
        for v in headers.get_all(h.as_str()) {
            if let Ok(v) = v.to_str() {
                groups.push(v.to_string());
            }
        }
    }
    let mut extra: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers {
        let lower = name.as_str().to_ascii_lowercase();
        for prefix in &settings.extra_prefixes {
            let p = prefix.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix(&p) {
                let key = percent_encoding::percent_decode_str(rest)
                    .decode_utf8_lossy()
                    .to_lowercase();
                if let Ok(v) = value.to_str() {
                    match extra.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, vs)) => vs.push(v.to_string()),
                        None => extra.push((key, vec![v.to_string()])),
                    }
                }
            }
        }
    }
    Some(User {
        name,
        uid: first(&settings.uid_headers),
        groups,
        extra,
    })
}

/// Label selector requirements in the authorization API's form.
fn label_requirements(selector: &LabelSelector) -> Vec<Value> {
    selector
        .requirements
        .iter()
        .filter_map(|r| {
            let op = match r.op {
                Op::In => "In",
                Op::NotIn => "NotIn",
                Op::Exists => "Exists",
                Op::DoesNotExist => "DoesNotExist",
                Op::GreaterThan | Op::LessThan => return None,
            };
            let mut req = json!({"key": r.key, "operator": op});
            if !r.values.is_empty() && matches!(r.op, Op::In | Op::NotIn) {
                req["values"] = json!(r.values);
            }
            Some(req)
        })
        .collect()
}

fn field_requirements(selector: &FieldSelector) -> Vec<Value> {
    selector
        .terms
        .iter()
        .map(|t| json!({"key": t.field, "operator": if t.negated { "NotIn" } else { "In" }, "values": [t.value]}))
        .collect()
}

/// The authorization attributes of a request.
pub fn attributes(info: &RequestInfo, query: &Query) -> Attributes {
    let mut attrs = Attributes {
        resource_request: info.is_resource_request,
        verb: info.verb.clone(),
        path: info.path.clone(),
        group: info.api_group.clone(),
        version: info.api_version.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        name: info.name.clone(),
        ..Default::default()
    };
    if matches!(info.verb.as_str(), "list" | "watch" | "deletecollection") {
        if let Some(raw) = query.first("labelSelector")
            && let Ok(s) = LabelSelector::parse(raw)
        {
            attrs.label_requirements = label_requirements(&s);
        }
        if let Some(raw) = query.first("fieldSelector")
            && let Ok(s) = FieldSelector::parse(raw, crate::api::query::SELECTABLE_FIELDS)
        {
            attrs.field_requirements = field_requirements(&s);
        }
    }
    attrs
}

/// The 403 kube-apiserver answers for a denied request.
pub fn forbidden(user: &User, attrs: &Attributes, reason: &str) -> ApiError {
    let what = if !attrs.resource_request {
        format!(
            "User {:?} cannot {} path {:?}",
            user.name, attrs.verb, attrs.path
        )
    } else {
        let resource = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        if attrs.namespace.is_empty() {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                user.name, attrs.verb, resource, attrs.group
            )
        } else {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                user.name, attrs.verb, resource, attrs.group, attrs.namespace
            )
        }
    };
    let why = if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    };
    let resource = if attrs.resource_request {
        attrs.resource.as_str()
    } else {
        ""
    };
    ApiError::forbidden(&attrs.group, resource, &attrs.name, &why)
}

impl Auth {
    /// Standalone authentication with the admin token.
    pub fn standalone(admin_token: Option<String>) -> Auth {
        Auth::Standalone { admin_token }
    }

    /// The user making a request; `Ok(None)` means no credential at all and no anonymous
    /// access (401), `Err` a credential that could not be checked (401 too).
    pub async fn authenticate(&self, headers: &HeaderMap, conn: Option<&ConnInfo>) -> Option<User> {
        match self {
            Auth::Standalone { admin_token } => {
                let token = bearer(headers)?;
                let expected = admin_token.as_deref()?;
                constant_time_eq(token.as_bytes(), expected.as_bytes()).then(|| User {
                    name: ADMIN_USER.into(),
                    uid: String::new(),
                    groups: vec!["system:masters".into(), "system:authenticated".into()],
                    extra: Vec::new(),
                })
            }
            Auth::Delegated(d) => d.authenticate(headers, conn).await,
        }
    }

    /// Whether `user` may make the request.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        if !attrs.resource_request && is_always_allowed_path(&attrs.path) {
            return Decision::Allow(String::new());
        }
        match self {
            Auth::Standalone { .. } if user.is_master() => Decision::Allow(String::new()),
            Auth::Standalone { .. } => Decision::Deny(String::new()),
            Auth::Delegated(_) if user.is_master() => Decision::Allow(String::new()),
            Auth::Delegated(d) => match &d.authorizer {
                Some(a) => a.authorize(user, attrs).await,
                None => Decision::Deny("no authorizer is configured".into()),
            },
        }
    }
}

impl Delegated {
    /// k8s.io/apiserver's union of authenticators: the first that recognises the request wins;
    /// a credential that fails (a certificate of an unknown CA or an unlisted front proxy, a
    /// rejected token) makes the request unauthorized even when anonymous requests are allowed.
    async fn authenticate(&self, headers: &HeaderMap, conn: Option<&ConnInfo>) -> Option<User> {
        let trust = self.trust.get();
        let mut failed = false;
        if let Some(chain) = conn.and_then(|c| c.client_chain.as_deref()) {
            let verdict = chain.verdict(&trust);
            let (cn, orgs) = chain.subject.clone().unwrap_or_default();
            if trust.request_header.is_some() {
                if !verdict.front_proxy {
                    failed = true;
                } else {
                    let names = &trust.headers.allowed_names;
                    if names.is_empty() || names.contains(&cn) {
                        if let Some(user) = from_request_headers(headers, &trust.headers) {
                            return Some(user.authenticated());
                        }
                    } else {
                        tracing::info!(cn = %cn, "front-proxy certificate with a name not in the allowed names");
                        failed = true;
                    }
                }
            }
            if trust.client.is_some() {
                if !verdict.client {
                    failed = true;
                } else if !cn.is_empty() {
                    let user = User {
                        name: cn,
                        groups: orgs,
                        ..Default::default()
                    };
                    return Some(user.authenticated());
                }
            }
        }
        if let (Some(token), Some(reviewer)) = (bearer(headers), &self.tokens) {
            match reviewer.review(token).await {
                Ok(Some(user)) => return Some(user.authenticated()),
                Ok(None) => failed = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot review a bearer token");
                    failed = true;
                }
            }
        }
        (self.anonymous && !failed).then(User::anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[tokio::test]
    async fn only_the_admin_token_authenticates_standalone() {
        let a = Auth::standalone(Some("s3cret".into()));
        assert!(
            a.authenticate(&headers(&[("authorization", "Bearer s3cret")]), None)
                .await
                .unwrap()
                .is_master()
        );
        assert!(
            a.authenticate(&headers(&[("authorization", "bearer s3cret")]), None)
                .await
                .is_some()
        );
        assert!(
            a.authenticate(&headers(&[("authorization", "Bearer s3cre")]), None)
                .await
                .is_none()
        );
        assert!(
            a.authenticate(&headers(&[("authorization", "Basic s3cret")]), None)
                .await
                .is_none()
        );
        assert!(a.authenticate(&HeaderMap::new(), None).await.is_none());
    }

    #[test]
    fn front_proxy_headers_as_the_aggregator_sends_them() {
        let h = headers(&[
            (
                "X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id",
                "X509SHA256=7b7b",
            ),
            ("X-Remote-Group", "system:masters"),
            ("X-Remote-Group", "system:authenticated"),
            ("X-Remote-User", "kubelab-admin"),
            ("X-Remote-Uid", "u-1"),
        ]);
        let user = from_request_headers(&h, &trust::RequestHeader::default()).unwrap();
        assert_eq!(user.name, "kubelab-admin");
        assert_eq!(user.uid, "u-1");
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
        assert_eq!(
            user.extra,
            [(
                "authentication.kubernetes.io/credential-id".to_string(),
                vec!["X509SHA256=7b7b".to_string()]
            )]
        );
        assert!(
            from_request_headers(
                &headers(&[("X-Remote-Group", "g")]),
                &trust::RequestHeader::default()
            )
            .is_none()
        );
    }

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let jane = User {
            name: "jane".into(),
            ..Default::default()
        };
        let attrs = Attributes {
            resource_request: true,
            verb: "update".into(),
            group: "admission.example.com".into(),
            resource: "apps".into(),
            subresource: "scale".into(),
            namespace: "ext-demo".into(),
            name: "demo".into(),
            ..Default::default()
        };
        let e = forbidden(&jane, &attrs, "");
        assert_eq!(e.code(), 403);
        assert_eq!(
            e.message(),
            "apps.admission.example.com \"demo\" is forbidden: User \"jane\" cannot update resource \"apps/scale\" in API group \"admission.example.com\" in the namespace \"ext-demo\""
        );
        let metrics = Attributes {
            verb: "get".into(),
            path: "/metrics".into(),
            ..Default::default()
        };
        assert_eq!(
            forbidden(&jane, &metrics, "").message(),
            "forbidden: User \"jane\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn selectors_become_requirements() {
        let info = RequestInfo::new(
            &http::Method::GET,
            "/apis/admission.example.com/v1/namespaces/ext-demo/apps",
            &Query::parse(""),
        );
        let q = Query::parse(
            "labelSelector=tier%20in%20(web,api)&fieldSelector=metadata.namespace%3Dext-demo",
        );
        let attrs = attributes(&info, &q);
        assert_eq!(
            attrs.label_requirements,
            [json!({"key": "tier", "operator": "In", "values": ["api", "web"]})]
        );
        assert_eq!(
            attrs.field_requirements,
            [json!({"key": "metadata.namespace", "operator": "In", "values": ["ext-demo"]})]
        );
    }
}
