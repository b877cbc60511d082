//! get and list, with kube-apiserver's resourceVersion, paging and continue-token semantics.

use super::{Call, respond};
use crate::api::error::{ApiError, ApiResult};
use crate::api::negotiation::{Output, Target, negotiate};
use crate::api::query::{ListOptions, VersionMatch};
use crate::api::render::{self, IncludeObject};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::registry::codec;
use crate::server::state::AppState;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use storage::{KeyValue, ReadAt};

/// GET of one object (or its status).
pub async fn get(state: &AppState, call: &Call) -> ApiResult<Response> {
    let output = negotiate(call.header("accept"), Target::Object)?;
    let include = IncludeObject::parse(call.query.first("includeObject"))?;
    let at = get_freshness(call.query.first("resourceVersion").unwrap_or(""))?;
    let kv = state
        .registry
        .get(&call.resource, &call.info.namespace, &call.info.name, at)
        .await?;
    let served = codec::serve(&call.resource, call.version, &kv.value)?;
    Ok(respond(
        StatusCode::OK,
        render::object(&call.resource, &served, output, include)?,
        &[],
    ))
}

/// A resourceVersion as kube-apiserver parses one (400 when malformed); `""` and `"0"` are 0.
pub fn parse_resource_version(raw: &str) -> ApiResult<u64> {
    if raw.is_empty() || raw == "0" {
        return Ok(0);
    }
    raw.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resource version: resourceVersion: Invalid value: {}: strconv.ParseUint: parsing {}: invalid syntax",
            crate::field_error::go_quote(raw),
            crate::field_error::go_quote(raw)
        ))
    })
}

/// How fresh a GET must be (`GetOptions.resourceVersion`): none is a consistent read, `0` is
/// any, anything else is not older than it.
pub fn get_freshness(resource_version: &str) -> ApiResult<ReadAt> {
    Ok(match resource_version {
        "" => ReadAt::Latest,
        "0" => ReadAt::Any,
        rv => ReadAt::NotOlderThan(parse_resource_version(rv)?),
    })
}

/// How fresh a LIST must be, from `resourceVersion`, `resourceVersionMatch` and `limit`
/// (k8s.io/apiserver's `ListOptions` semantics): none is a consistent read; `0` is any (unless
/// `Exact`); otherwise `Exact` or `NotOlderThan`, and a limited list with no match asked is
/// `Exact`, as paging needs.
pub fn list_freshness(options: &ListOptions) -> ApiResult<ReadAt> {
    let rv = parse_resource_version(&options.resource_version)?;
    if options.resource_version.is_empty() {
        return Ok(ReadAt::Latest);
    }
    Ok(match options.version_match {
        VersionMatch::Exact => ReadAt::Exact(rv),
        VersionMatch::NotOlderThan if rv == 0 => ReadAt::Any,
        VersionMatch::NotOlderThan => ReadAt::NotOlderThan(rv),
        _ if rv == 0 => ReadAt::Any,
        _ if options.limit > 0 => ReadAt::Exact(rv),
        _ => ReadAt::NotOlderThan(rv),
    })
}

/// The continue token format of kube-apiserver's storage layer.
#[derive(serde::Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

/// Encodes where the next page starts: the revision of the snapshot (-1: the newest) and the
/// key to continue after, relative to the listed prefix.
pub fn encode_continue(revision: i64, last_key: &str, prefix: &str) -> String {
    let relative = last_key.strip_prefix(prefix).unwrap_or(last_key);
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv: revision,
        start: format!("{relative}\u{0}"),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// Decodes a continue token into (revision, absolute key to continue after); 400 when invalid.
pub fn decode_continue(token: &str, prefix: &str) -> ApiResult<(i64, String)> {
    let invalid = |why: String| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid{why}"
        ))
    };
    let data = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| invalid(format!(": {e}")))?;
    let token: ContinueToken =
        serde_json::from_slice(&data).map_err(|e| invalid(format!(": {e}")))?;
    if token.v != "meta.k8s.io/v1" {
        return Err(invalid(format!(
            ": server does not recognize this encoded version {:?}",
            token.v
        )));
    }
    if token.rv == 0 {
        return Err(invalid(
            ": incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
        ));
    }
    if token.start.is_empty() {
        return Err(invalid(
            ": encoded start key empty (version meta.k8s.io/v1)".into(),
        ));
    }
    let start = token.start.trim_end_matches('\u{0}');
    // The key must stay inside the listed prefix (no path traversal).
    if start.split('/').any(|p| p == ".." || p == ".")
        || start.starts_with('/')
        || start.contains("//")
    {
        return Err(invalid(format!(": {}", token.start)));
    }
    // Items strictly after `start`; the NUL in the token means "after this key".
    Ok((token.rv, format!("{prefix}{start}")))
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    metadata: HeadMeta<'a>,
}

#[derive(Deserialize, Default)]
struct HeadMeta<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Cow<'a, str>,
    #[serde(borrow, default)]
    labels: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

/// Whether a stored object passes label and field selectors (reads only its metadata).
pub fn selected(bytes: &[u8], labels: &LabelSelector, fields: &FieldSelector) -> bool {
    if labels.is_empty() && fields.is_empty() {
        return true;
    }
    let Ok(head) = serde_json::from_slice::<Head<'_>>(bytes) else {
        return false;
    };
    let map: BTreeMap<&str, &str> = head
        .metadata
        .labels
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    labels.matches(&map)
        && fields.matches(|f| match f {
            "metadata.name" => head.metadata.name.to_string(),
            "metadata.namespace" => head.metadata.namespace.to_string(),
            _ => String::new(),
        })
}

/// LIST of a collection.
pub async fn list(state: &AppState, call: &Call) -> ApiResult<Response> {
    let options = ListOptions::parse(&call.query, &call.resource)?.for_name(&call.info.name)?;
    let output = negotiate(call.header("accept"), Target::List)?;
    let include = IncludeObject::parse(call.query.first("includeObject"))?;
    let resource = &call.resource;
    let prefix = crate::registry::prefix(resource, &call.info.namespace);

    let (at, start_after) = if !options.continue_token.is_empty() {
        let (rv, after) = decode_continue(&options.continue_token, &prefix)?;
        if !options.resource_version.is_empty() && options.resource_version != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        // A token of an inconsistent continuation (-1) reads the newest state.
        let at = u64::try_from(rv).map_or(ReadAt::Latest, ReadAt::Exact);
        (at, Some(after))
    } else {
        (list_freshness(&options)?, None)
    };

    let filter = |kv: &KeyValue| selected(&kv.value, &options.labels, &options.fields);
    let has_filter = !options.labels.is_empty() || !options.fields.is_empty();
    let limit = usize::try_from(options.limit).ok().filter(|l| *l > 0);
    // A list that reads a large collection takes one of the few seats large lists share (kube's
    // priority and fairness counts such a list as several requests), before it reads: the rest
    // of the server keeps its cores however many large lists arrive.
    let large = storage::may_be_large(
        limit,
        has_filter,
        state.registry.count(resource, &call.info.namespace),
    );
    let seat = if large {
        Some(
            state
                .heavy_lists
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ApiError::unavailable("the server is shutting down"))?,
        )
    } else {
        None
    };
    let page = state
        .registry
        .list(
            resource,
            &call.info.namespace,
            at,
            start_after.clone(),
            limit,
            if has_filter { Some(&filter) } else { None },
        )
        .await
        .map_err(|e| match e {
            storage::Error::TooOld { .. } if !options.continue_token.is_empty() => {
                let token = encode_continue(-1, start_after.as_deref().unwrap_or(""), &prefix);
                ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.").with_continue(token)
            }
            storage::Error::TooOld { .. } => ApiError::expired("The resourceVersion for the provided list is too old."),
            other => ApiError::from_storage(resource.kind, "", other),
        })?;
    let token = page
        .continue_after
        .as_deref()
        .map(|last| encode_continue(page.revision as i64, last, &prefix));
    let meta = render::list_meta(page.revision, token.as_deref(), page.remaining);
    if output == Output::Json && page.items.len() > storage::LARGE_PAGE {
        // A large JSON list streams, holding its seat until the last chunk is out.
        let (resource, version) = (call.resource.clone(), call.version);
        let chunks = render::json_list_stream(
            &call.resource,
            &call.version.group_version(),
            page.items,
            meta,
            move |stored| codec::serve(&resource, version, stored),
            {
                let limiter = state.limiter.clone();
                move || limiter.mutating_in_flight() > 0
            },
        );
        let chunks = futures_util::StreamExt::map(chunks, move |c| {
            let _held_until_the_last_chunk = &seat;
            c
        });
        return Ok(respond_stream(StatusCode::OK, "application/json", chunks));
    }
    let render = || -> ApiResult<render::Body> {
        let items = page
            .items
            .iter()
            .map(|kv| codec::serve(resource, call.version, &kv.value))
            .collect::<ApiResult<Vec<bytes::Bytes>>>()?;
        render::list(
            resource,
            &call.version.group_version(),
            &items,
            meta,
            output,
            include,
        )
    };
    // A large page is rendered off the request workers' queue: other requests go on meanwhile.
    let body = if page.items.len() > storage::LARGE_PAGE {
        storage::long_running(render)?
    } else {
        render()?
    };
    Ok(respond(StatusCode::OK, body, &[]))
}

/// A response whose body is a stream of chunks.
fn respond_stream(
    code: StatusCode,
    content_type: &'static str,
    chunks: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
) -> Response {
    let mut response = (code, axum::body::Body::from_stream(chunks)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_refuse_traversal() {
        let t = encode_continue(583, "apps/difftest/a1", "apps/difftest/");
        assert_eq!(
            decode_continue(&t, "apps/difftest/").unwrap(),
            (583, "apps/difftest/a1".to_string())
        );
        let evil =
            URL_SAFE_NO_PAD.encode(br#"{"v":"meta.k8s.io/v1","rv":5,"start":"../other/x\u0000"}"#);
        assert_eq!(
            decode_continue(&evil, "apps/difftest/").unwrap_err().code(),
            400
        );
        assert_eq!(decode_continue("!!!", "apps/").unwrap_err().code(), 400);
        let zero = URL_SAFE_NO_PAD.encode(br#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#);
        assert!(
            decode_continue(&zero, "apps/")
                .unwrap_err()
                .message()
                .contains("incorrect encoded start resourceVersion")
        );
    }

    #[test]
    fn selection_reads_only_metadata() {
        let obj =
            br#"{"metadata":{"name":"a","namespace":"d","labels":{"tier":"web"}},"spec":{"x":1}}"#;
        let l = LabelSelector::parse("tier=web").unwrap();
        let f = FieldSelector::parse(
            "metadata.namespace=d",
            &["metadata.name", "metadata.namespace"],
        )
        .unwrap();
        assert!(selected(obj, &l, &f));
        let f2 = FieldSelector::parse("metadata.name!=a", &["metadata.name"]).unwrap();
        assert!(!selected(obj, &l, &f2));
    }
}
