//! Non-resource paths: discovery, OpenAPI, version and health.

use super::discovery::{DiscoveryFormat, discovery_format};
use super::error::{ApiError, ApiResult};
use super::query::Query;
use crate::kinds::{GROUP, ServedVersion};
use crate::server::state::AppState;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

fn json(bytes: Vec<u8>, cache: &'static str) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

fn not_modified(etag: &str) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn with_etag(mut r: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn aggregated(headers: &HeaderMap, doc: &(Vec<u8>, String), version: usize) -> Response {
    let (bytes, etag) = doc;
    if matches_etag(headers, etag) {
        return not_modified(etag);
    }
    let content_type = if version == 0 {
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    } else {
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    };
    let mut r = (StatusCode::OK, bytes.clone()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    with_etag(r, etag)
}

fn discovery_root(
    headers: &HeaderMap,
    aggregated_docs: &[(Vec<u8>, String); 2],
    legacy: &[u8],
) -> ApiResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match discovery_format(accept) {
        DiscoveryFormat::Aggregated(i) => Ok(aggregated(headers, &aggregated_docs[i], i)),
        DiscoveryFormat::Legacy => Ok(json(legacy.to_vec(), "no-cache, private")),
        DiscoveryFormat::None => Err(ApiError::not_acceptable(crate::api::negotiation::ACCEPTED)),
    }
}

/// What an `Accept` asks of an OpenAPI handler, read as kube-openapi reads it (goautoneg's
/// `ParseAccept`: comma-separated ranges, `type/subtype` trimmed and compared case-sensitively,
/// a lone `*` as `*/*`, parameters and `q` ignored for matching; no header is `*/*`).
#[derive(Debug, PartialEq, Eq)]
enum OpenApiAccept {
    /// A range takes `application/json`.
    Json,
    /// No range could be read at all (kube-openapi's v3 handler then answers an empty 200).
    Nothing,
    /// Ranges, none of which takes JSON (only the protobuf form, which this server lacks).
    Other,
}

fn openapi_accept(headers: &HeaderMap) -> OpenApiAccept {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return OpenApiAccept::Json;
    };
    let accept = String::from_utf8_lossy(accept.as_bytes());
    if accept.is_empty() {
        return OpenApiAccept::Json;
    }
    let mut any = false;
    for clause in accept.split(',') {
        let range = clause.trim_matches(' ').split(';').next().unwrap_or("");
        let parts: Vec<&str> = range.split('/').collect();
        let (kind, subtype) = match parts.as_slice() {
            [kind] if kind.trim_matches(' ') == "*" => ("*", "*"),
            [kind, subtype] => (kind.trim_matches(' '), subtype.trim_matches(' ')),
            _ => continue,
        };
        any = true;
        if (kind == "application" || kind == "*") && (subtype == "json" || subtype == "*") {
            return OpenApiAccept::Json;
        }
    }
    if any {
        OpenApiAccept::Other
    } else {
        OpenApiAccept::Nothing
    }
}

/// kube-openapi's answer to an `Accept` it cannot serve: a bare 406.
fn openapi_not_acceptable() -> Response {
    let mut r = StatusCode::NOT_ACCEPTABLE.into_response();
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

fn openapi(headers: &HeaderMap, bytes: &[u8], hash: &str, immutable: bool) -> Response {
    let etag = format!("\"{hash}\"");
    if matches_etag(headers, &etag) {
        return not_modified(&etag);
    }
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    with_etag(json(bytes.to_vec(), cache), &etag)
}

fn version() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "major": "1",
        "minor": "36",
        "gitVersion": format!("v1.36.0+admission-apiserver-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
    .unwrap_or_default()
}

/// Health checks: `/healthz`, `/livez`, `/readyz`, each with `/ping` and `?verbose`.
pub fn health(state: &AppState, path: &str, query: &Query) -> Option<Response> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    let (base, check) = match trimmed.split_once('/') {
        Some((b, c)) => (b, Some(c)),
        None => (trimmed, None),
    };
    if !["healthz", "livez", "readyz"].contains(&base) {
        return None;
    }
    let mut checks: Vec<(&str, bool)> = vec![("ping", true)];
    for (name, ok) in &state.health_checks {
        checks.push((name, ok.load(std::sync::atomic::Ordering::Acquire)));
    }
    if base == "readyz" {
        for (name, ok) in &state.readiness {
            checks.push((name, ok.load(std::sync::atomic::Ordering::Acquire)));
        }
    }
    let text = |code: StatusCode, body: String| {
        let mut r = (code, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        r
    };
    if let Some(name) = check {
        return Some(match checks.iter().find(|(n, _)| *n == name) {
            Some((_, true)) => text(StatusCode::OK, "ok".into()),
            Some((_, false)) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("[-]{name} failed: reason withheld\n"),
            ),
            None => ApiError::page_not_found().into_response(),
        });
    }
    // `?exclude=<name>` skips a check (kube's probes of a pod use it, e.g. `/livez?exclude=etcd`).
    let excluded: Vec<&str> = query.all("exclude");
    let mut unknown: Vec<&str> = excluded
        .iter()
        .copied()
        .filter(|name| !checks.iter().any(|(n, _)| n == name))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    let healthy = checks
        .iter()
        .all(|(name, ok)| *ok || excluded.contains(name));
    let verbose = query.first("verbose").is_some();
    if verbose || !healthy {
        let mut body = String::new();
        for (name, ok) in &checks {
            body.push_str(&if excluded.contains(name) {
                format!("[+]{name} excluded: ok\n")
            } else if *ok {
                format!("[+]{name} ok\n")
            } else {
                format!("[-]{name} failed: reason withheld\n")
            });
        }
        if !unknown.is_empty() {
            let quoted: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
            body.push_str(&format!(
                "warn: some health checks cannot be excluded: no matches for {}\n",
                quoted.join(",")
            ));
        }
        body.push_str(&format!(
            "{base} check {}\n",
            if healthy { "passed" } else { "failed" }
        ));
        let code = if healthy {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return Some(text(code, body));
    }
    Some(text(StatusCode::OK, "ok".into()))
}

/// Whether a non-resource path is one this server serves; any other is answered as
/// kube-apiserver's mux answers it, `404 page not found`.
fn is_served(path: &str) -> bool {
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let health = trimmed.trim_start_matches('/');
    let health_base = health.split_once('/').map_or(health, |(b, _)| b);
    ["healthz", "livez", "readyz"].contains(&health_base)
        || [
            "/apis",
            "/api",
            "/version",
            "/metrics",
            "/openapi/v2",
            "/openapi/v3",
        ]
        .contains(&trimmed)
        || trimmed == format!("/apis/{GROUP}")
        || [
            format!("/apis/{GROUP}/"),
            format!("/openapi/v3/apis/{GROUP}/"),
        ]
        .iter()
        .any(|prefix| {
            trimmed
                .strip_prefix(prefix.as_str())
                .and_then(ServedVersion::named)
                .is_some()
        })
}

/// Serves a non-resource path (already authenticated and authorized).
pub fn serve(
    state: &AppState,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
) -> Response {
    if !is_served(path) {
        return ApiError::page_not_found().into_response();
    }
    // The health handlers answer whatever the method, as kube-apiserver's do.
    if let Some(r) = health(state, path, query) {
        return r;
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::method_not_allowed().into_response();
    }
    if path == "/metrics" {
        for (plural, cache) in &state.watch_caches {
            state
                .metrics
                .watchers
                .get_or_create(&crate::metrics::WatcherLabels {
                    group: crate::kinds::GROUP.into(),
                    version: crate::kinds::VERSION.into(),
                    kind: (*plural).into(),
                })
                .set(cache.watchers() as i64);
        }
        let mut r = (StatusCode::OK, state.metrics.render()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        return r;
    }
    let d = &state.discovery;
    let o = &state.openapi;
    let group_path = format!("/apis/{GROUP}");
    let version_of = |prefix: &str, p: &str| -> Option<&'static ServedVersion> {
        ServedVersion::named(p.strip_prefix(prefix)?)
    };
    let gv_prefix = format!("{group_path}/");
    let v3_prefix = format!("/openapi/v3/apis/{GROUP}/");
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let result = match trimmed {
        "/apis" => discovery_root(headers, &d.aggregated, &d.group_list),
        "/api" => discovery_root(headers, &d.aggregated_legacy, &d.legacy_versions),
        p if p == group_path => Ok(json(d.group.clone(), "no-cache, private")),
        p if let Some(list) = version_of(&gv_prefix, p).and_then(|v| d.resource_list(v)) => {
            Ok(json(list.to_vec(), "no-cache, private"))
        }
        "/version" => Ok(json(version(), "no-cache, private")),
        "/openapi/v2" if openapi_accept(headers) != OpenApiAccept::Json => {
            Ok(openapi_not_acceptable())
        }
        "/openapi/v2" => Ok(openapi(headers, &o.v2, &o.v2_hash, false)),
        // The v3 index is JSON whatever the `Accept`, as kube-openapi serves it.
        "/openapi/v3" => Ok(openapi(headers, &o.v3_root, &o.v3_root_hash, false)),
        p if let Some(doc) = version_of(&v3_prefix, p).and_then(|v| o.v3_group(v)) => {
            match openapi_accept(headers) {
                OpenApiAccept::Json => {}
                OpenApiAccept::Nothing => return StatusCode::OK.into_response(),
                OpenApiAccept::Other => return openapi_not_acceptable(),
            }
            match query.first("hash") {
                Some(h) if h != doc.hash => {
                    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
                    if let Ok(v) = HeaderValue::from_str(&format!("{p}?hash={}", doc.hash)) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    Ok(r)
                }
                Some(_) => Ok(openapi(headers, &doc.bytes, &doc.hash, true)),
                None => Ok(openapi(headers, &doc.bytes, &doc.hash, false)),
            }
        }
        _ => Err(ApiError::page_not_found()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}
