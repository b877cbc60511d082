//! What a request is about, derived from its method, path and query exactly as kube-apiserver's
//! `RequestInfoFactory` derives it: authorization (SubjectAccessReview attributes), routing and
//! request metrics all read it.

use super::query::Query;

/// The parsed request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether the path addresses an API resource (`/apis/<group>/<version>/...`).
    pub is_resource_request: bool,
    /// The URL path.
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for
    /// non-resource requests the lower-cased HTTP method.
    pub verb: String,
    /// `apis` or `api`.
    pub api_prefix: String,
    /// API group.
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace, if any.
    pub namespace: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`, `scale`).
    pub subresource: String,
    /// Object name, if any (also taken from a `metadata.name=` field selector on lists).
    pub name: String,
    /// Path parts after the namespace.
    pub parts: Vec<String>,
    /// Why kube-apiserver's `RequestInfoFactory` could not resolve the path (a verb prefix with
    /// nothing after it): its filter answers 500 before authentication.
    pub unresolved: Option<&'static str>,
}

fn parse_bool(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

impl RequestInfo {
    /// Derives the request info of a request.
    pub fn new(method: &http::Method, path: &str, query: &Query) -> RequestInfo {
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: method.as_str().to_ascii_lowercase(),
            ..Default::default()
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if parts.len() < 3 || (parts[0] != "apis" && parts[0] != "api") {
            return info;
        }
        info.api_prefix = parts[0].to_string();
        let mut rest = &parts[1..];
        if info.api_prefix == "apis" {
            if rest.len() < 3 {
                return info;
            }
            info.api_group = rest[0].to_string();
            rest = &rest[1..];
        }
        info.is_resource_request = true;
        info.api_version = rest[0].to_string();
        rest = &rest[1..];
        if rest[0] == "watch" || rest[0] == "proxy" {
            if rest.len() < 2 {
                info.unresolved = Some("unable to determine kind and namespace from url");
                return info;
            }
            info.verb = rest[0].to_string();
            rest = &rest[1..];
        } else {
            info.verb = match *method {
                http::Method::POST => "create",
                http::Method::GET | http::Method::HEAD => "get",
                http::Method::PUT => "update",
                http::Method::PATCH => "patch",
                http::Method::DELETE => "delete",
                _ => "",
            }
            .to_string();
        }
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].to_string();
            if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
                rest = &rest[2..];
            }
        }
        info.parts = rest.iter().map(|s| s.to_string()).collect();
        if info.parts.len() >= 3 && info.verb != "proxy" {
            info.subresource = info.parts[2].clone();
        }
        if info.parts.len() >= 2 {
            info.name = info.parts[1].clone();
        }
        if !info.parts.is_empty() {
            info.resource = info.parts[0].clone();
        }
        if info.name.is_empty() && info.verb == "get" {
            let watch = query.first("watch").is_some_and(parse_bool);
            info.verb = if watch { "watch" } else { "list" }.to_string();
            if let Some(selector) = query.first("fieldSelector")
                && let Ok(parsed) = super::selectors::FieldSelector::parse(
                    selector,
                    &["metadata.name", "metadata.namespace"],
                )
                && let Some(name) = parsed.exact("metadata.name")
                && crate::object::names::path_segment_name(name).is_empty()
            {
                info.name = name.to_string();
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn info(method: Method, uri: &str) -> RequestInfo {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        RequestInfo::new(&method, path, &Query::parse(query))
    }

    #[test]
    fn request_info_table() {
        let g = "admission.example.com";
        let cases: Vec<(Method, &str, &str, &str, &str, &str, &str)> = vec![
            // method, uri, verb, namespace, resource, name, subresource
            (
                Method::GET,
                "/apis/admission.example.com/v1/namespaces/d/apps",
                "list",
                "d",
                "apps",
                "",
                "",
            ),
            (
                Method::GET,
                "/apis/admission.example.com/v1/namespaces/d/apps?watch=true",
                "watch",
                "d",
                "apps",
                "",
                "",
            ),
            (
                Method::GET,
                "/apis/admission.example.com/v1/namespaces/d/apps?watch=0",
                "list",
                "d",
                "apps",
                "",
                "",
            ),
            (
                Method::GET,
                "/apis/admission.example.com/v1/apps",
                "list",
                "",
                "apps",
                "",
                "",
            ),
            (
                Method::GET,
                "/apis/admission.example.com/v1/namespaces/d/apps/web",
                "get",
                "d",
                "apps",
                "web",
                "",
            ),
            (
                Method::PUT,
                "/apis/admission.example.com/v1/namespaces/d/apps/web/status",
                "update",
                "d",
                "apps",
                "web",
                "status",
            ),
            (
                Method::PATCH,
                "/apis/admission.example.com/v1/namespaces/d/apps/web/scale",
                "patch",
                "d",
                "apps",
                "web",
                "scale",
            ),
            (
                Method::POST,
                "/apis/admission.example.com/v1/namespaces/d/apps",
                "create",
                "d",
                "apps",
                "",
                "",
            ),
            (
                Method::DELETE,
                "/apis/admission.example.com/v1/namespaces/d/apps",
                "deletecollection",
                "d",
                "apps",
                "",
                "",
            ),
            (
                Method::DELETE,
                "/apis/admission.example.com/v1/namespacereservations/x",
                "delete",
                "",
                "namespacereservations",
                "x",
                "",
            ),
            (
                Method::GET,
                "/apis/admission.example.com/v1/watch/namespaces/d/apps",
                "watch",
                "d",
                "apps",
                "",
                "",
            ),
            (
                Method::GET,
                "/apis/admission.example.com/v1/namespaces/d/apps?fieldSelector=metadata.name%3Dweb",
                "list",
                "d",
                "apps",
                "web",
                "",
            ),
        ];
        for (method, uri, verb, ns, resource, name, sub) in cases {
            let i = info(method, uri);
            assert!(i.is_resource_request, "{uri}");
            assert_eq!(i.api_group, g, "{uri}");
            assert_eq!(
                (
                    i.verb.as_str(),
                    i.namespace.as_str(),
                    i.resource.as_str(),
                    i.name.as_str(),
                    i.subresource.as_str()
                ),
                (verb, ns, resource, name, sub),
                "{uri}"
            );
        }
    }

    #[test]
    fn non_resource_paths() {
        for uri in [
            "/apis",
            "/apis/admission.example.com",
            "/apis/admission.example.com/v1",
            "/healthz",
            "/openapi/v2",
        ] {
            let i = info(Method::GET, uri);
            assert!(!i.is_resource_request, "{uri}");
            assert_eq!(i.verb, "get");
        }
    }
}
