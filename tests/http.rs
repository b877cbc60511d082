//! The wire protocol, checked with a plain HTTPS client where kubectl hides the details:
//! authentication, negotiation, discovery and OpenAPI caching, paging, tables, errors, HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{Server, app};

const APPS: &str = "/apis/admission.example.com/v1/namespaces/default/apps";
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

#[tokio::test]
async fn credentials_are_required_except_for_probes() {
    let s = Server::start();
    let r = s.request_as(None, "GET", APPS, &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    assert_eq!(
        s.request_as(Some("wrong"), "GET", "/apis", &[], "")
            .await
            .status,
        401
    );
    let ok = s.request_as(None, "GET", "/healthz", &[], "").await;
    assert_eq!((ok.status, &ok.body[..]), (200, &b"ok"[..]));
    let verbose = s.request_as(None, "GET", "/readyz?verbose", &[], "").await;
    assert!(String::from_utf8_lossy(&verbose.body).contains("[+]ping ok"));
    // Readiness holds until every watch cache has synced.
    let mut synced = String::new();
    for _ in 0..100 {
        let r = s
            .request_as(None, "GET", "/readyz/watch-caches-synced", &[], "")
            .await;
        synced = String::from_utf8_lossy(&r.body).into_owned();
        if r.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(synced, "ok");
    assert_eq!(
        s.request_as(None, "GET", "/livez/ping", &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn discovery_negotiation_etag_and_304() {
    let s = Server::start();
    let legacy = s
        .request("GET", "/apis", &[("accept", "application/json")], "")
        .await;
    assert_eq!(legacy.json()["kind"], "APIGroupList");
    let agg = s
        .request("GET", "/apis", &[("accept", AGGREGATED)], "")
        .await;
    assert_eq!(agg.status, 200);
    assert_eq!(
        agg.header("content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    assert_eq!(agg.header("vary"), Some("Accept"));
    let body = agg.json();
    assert_eq!(body["apiVersion"], "apidiscovery.k8s.io/v2");
    assert_eq!(
        body["items"][0]["versions"][0]["resources"][0]["resource"],
        "apps"
    );
    let etag = agg.header("etag").unwrap().to_string();
    let again = s
        .request(
            "GET",
            "/apis",
            &[("accept", AGGREGATED), ("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let beta = s
        .request(
            "GET",
            "/apis",
            &[(
                "accept",
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            )],
            "",
        )
        .await;
    assert_eq!(beta.json()["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let refused = s
        .request("GET", "/apis", &[("accept", "text/plain")], "")
        .await;
    assert_eq!(refused.status, 406);
    assert_eq!(refused.json()["reason"], "NotAcceptable");
    let group = s
        .request("GET", "/apis/admission.example.com", &[], "")
        .await
        .json();
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "admission.example.com/v1"
    );
    let list = s
        .request("GET", "/apis/admission.example.com/v1", &[], "")
        .await
        .json();
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "apps",
            "apps/status",
            "apps/scale",
            "namespacereservations",
            "namespacereservations/status",
            "validatingadmissionreviews",
            "mutatingadmissionreviews"
        ]
    );
    let other = s
        .request("GET", "/apis/other.example.com/v1/things", &[], "")
        .await;
    assert_eq!(other.status, 404);
    assert_eq!(&other.body[..], b"404 page not found\n");
}

#[tokio::test]
async fn openapi_documents_are_hashed_and_cached() {
    let s = Server::start();
    let root = s.request("GET", "/openapi/v3", &[], "").await.json();
    let url = root["paths"]["apis/admission.example.com/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (path, hash) = url.split_once("?hash=").unwrap();
    assert_eq!(path, "/openapi/v3/apis/admission.example.com/v1");
    let doc = s.request("GET", &url, &[], "").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("etag"), Some(format!("\"{hash}\"").as_str()));
    assert_eq!(doc.header("cache-control"), Some("public, immutable"));
    let schemas = &doc.json()["components"]["schemas"];
    assert_eq!(
        schemas["com.example.admission.v1.App"]["properties"]["spec"]["properties"]["replicas"]["maximum"],
        10
    );
    let cached = s
        .request(
            "GET",
            path,
            &[("if-none-match", &format!("\"{hash}\""))],
            "",
        )
        .await;
    assert_eq!(cached.status, 304);
    let moved = s
        .request("GET", &format!("{path}?hash=0000"), &[], "")
        .await;
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some(url.as_str()));
    let v2 = s
        .request("GET", "/openapi/v2", &[("accept", "application/json")], "")
        .await;
    assert_eq!(v2.json()["swagger"], "2.0");
    let etag = v2.header("etag").unwrap().to_string();
    assert_eq!(
        s.request("GET", "/openapi/v2", &[("if-none-match", &etag)], "")
            .await
            .status,
        304
    );
    // kube-openapi also serves protobuf, which this server does not: an `Accept` that takes
    // only that is a bare 406 (kubectl then reports it rather than misreading JSON as
    // protobuf); the v3 index is JSON whatever the `Accept`.
    const PROTO_V2: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    const PROTO_V3: &str = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf";
    for http2 in [false, true] {
        for (path, accept, code) in [
            ("/openapi/v2", PROTO_V2, 406),
            ("/openapi/v2", "text/html", 406),
            ("/openapi/v2", &format!("{PROTO_V2}, application/json"), 200),
            ("/openapi/v2", "application/*;q=0.5", 200),
            ("/openapi/v2", "*/*", 200),
            (path, PROTO_V3, 406),
            (path, &format!("{PROTO_V3},application/json;q=0.9"), 200),
            ("/openapi/v3", PROTO_V3, 200),
            // Read as goautoneg reads it: a lone `*`, wildcard types, case-sensitive names.
            ("/openapi/v2", "*", 200),
            ("/openapi/v2", "*/json", 200),
            ("/openapi/v2", "APPLICATION/JSON", 406),
            ("/openapi/v2", ",", 406),
            // No readable range at all: kube-openapi's v3 handler answers an empty 200.
            (path, ",", 200),
        ] {
            let r = s
                .request_over(http2, "GET", path, &[("accept", accept)], "")
                .await;
            assert_eq!(r.status, code, "{path} {accept} over h2={http2}");
            if code == 406 {
                assert!(r.body.is_empty());
            }
        }
    }
}

#[tokio::test]
async fn paging_is_a_consistent_snapshot() {
    let s = Server::start();
    for i in 0..7 {
        s.create_app(&format!("a{i}"), json!({})).await;
    }
    let first = s
        .request("GET", &format!("{APPS}?limit=3"), &[], "")
        .await
        .json();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert_eq!(first["metadata"]["remainingItemCount"], 4);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // Changes after the first page do not show in the next pages.
    let patch = s
        .request(
            "PATCH",
            &format!("{APPS}/a5"),
            &[("content-type", "application/merge-patch+json")],
            r#"{"spec":{"replicas":9}}"#,
        )
        .await;
    assert_eq!(patch.status, 200);
    assert_eq!(
        s.request("DELETE", &format!("{APPS}/a6"), &[], "")
            .await
            .status,
        200
    );
    let second = s
        .request("GET", &format!("{APPS}?limit=3&continue={token}"), &[], "")
        .await
        .json();
    let names: Vec<&str> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a3", "a4", "a5"]);
    assert_eq!(second["items"][2]["spec"]["replicas"], 1);
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    let token = second["metadata"]["continue"].as_str().unwrap().to_string();
    let third = s
        .request("GET", &format!("{APPS}?limit=3&continue={token}"), &[], "")
        .await
        .json();
    assert_eq!(third["items"][0]["metadata"]["name"], "a6");
    // The last page: `continue` is empty, as kube-apiserver serves a custom resource list.
    assert_eq!(third["metadata"]["continue"], "");
    let bad = s
        .request("GET", &format!("{APPS}?limit=3&continue=garbage"), &[], "")
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid continue token")
    );
    let both = s
        .request(
            "GET",
            &format!("{APPS}?limit=3&continue={token}&resourceVersion=5"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        both.json()["message"],
        "specifying resource version is not allowed when using continue"
    );
}

#[tokio::test]
async fn tables_and_metadata_views() {
    let s = Server::start();
    s.create_app("web", json!({"tier": "web"})).await;
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let t = s
        .request("GET", APPS, &[("accept", table_accept)], "")
        .await
        .json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 5);
    assert_eq!(t["rows"][0]["cells"][0], "web");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let none = s
        .request(
            "GET",
            &format!("{APPS}?includeObject=None"),
            &[("accept", table_accept)],
            "",
        )
        .await
        .json();
    assert!(none["rows"][0].get("object").is_none());
    let object = s
        .request(
            "GET",
            &format!("{APPS}/web?includeObject=Object"),
            &[("accept", table_accept)],
            "",
        )
        .await
        .json();
    assert_eq!(object["rows"][0]["object"]["kind"], "App");
    let bad = s
        .request(
            "GET",
            &format!("{APPS}?includeObject=All"),
            &[("accept", table_accept)],
            "",
        )
        .await;
    assert_eq!(bad.status, 422);
    let meta = s
        .request(
            "GET",
            APPS,
            &[(
                "accept",
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            )],
            "",
        )
        .await
        .json();
    assert_eq!(meta["kind"], "PartialObjectMetadataList");
    assert_eq!(meta["items"][0]["metadata"]["labels"]["tier"], "web");
    let yaml = s
        .request(
            "GET",
            &format!("{APPS}/web"),
            &[("accept", "application/yaml")],
            "",
        )
        .await;
    assert_eq!(yaml.header("content-type"), Some("application/yaml"));
    assert!(String::from_utf8_lossy(&yaml.body).contains("kind: App"));
    let proto = s
        .request(
            "GET",
            APPS,
            &[("accept", "application/vnd.kubernetes.protobuf")],
            "",
        )
        .await;
    assert_eq!(proto.status, 406);
}

#[tokio::test]
async fn bad_requests_get_clear_statuses() {
    let s = Server::start();
    // method, path, headers, body, expected code, expected reason
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a str)>,
        String,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("POST", APPS.to_string(), vec![("content-type", "application/json")], "{not json".into(), 400, "BadRequest"),
        ("POST", APPS.to_string(), vec![("content-type", "application/json")], "[1,2]".into(), 400, "BadRequest"),
        ("POST", APPS.to_string(), vec![("content-type", "application/json")], json!({"apiVersion": "v1", "kind": "App", "metadata": {"name": "x"}}).to_string(), 400, "BadRequest"),
        ("POST", APPS.to_string(), vec![("content-type", "application/json")], json!({"apiVersion": "admission.example.com/v1", "metadata": {"name": "x"}}).to_string(), 400, "BadRequest"),
        ("POST", APPS.to_string(), vec![("content-type", "application/json")], json!({"apiVersion": "admission.example.com/v1", "kind": "Other", "metadata": {"name": "x"}}).to_string(), 422, "Invalid"),
        ("POST", APPS.to_string(), vec![("content-type", "text/plain")], "x".into(), 415, "UnsupportedMediaType"),
        // What Go's mime.ParseMediaType refuses is no media type at all, not JSON.
        ("POST", APPS.to_string(), vec![("content-type", ";;;/")], app("ct1", "default", 1, &[]), 415, "UnsupportedMediaType"),
        ("POST", APPS.to_string(), vec![("content-type", "application/json;;")], app("ct2", "default", 1, &[]), 415, "UnsupportedMediaType"),
        ("POST", APPS.to_string(), vec![("content-type", "application/json; charset")], app("ct3", "default", 1, &[]), 415, "UnsupportedMediaType"),
        ("PATCH", format!("{APPS}/x"), vec![("content-type", "/merge-patch+json")], "{}".into(), 415, "UnsupportedMediaType"),
        ("POST", APPS.to_string(), vec![("content-type", "application/json")], json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "x", "namespace": "elsewhere"}}).to_string(), 400, "BadRequest"),
        ("PUT", APPS.to_string(), vec![], "{}".into(), 400, "BadRequest"),
        ("GET", "/apis/admission.example.com/v1/namespaces/default/apps/x/bogus".to_string(), vec![], String::new(), 404, "NotFound"),
        ("GET", format!("{APPS}?limit=abc"), vec![], String::new(), 400, "BadRequest"),
        ("GET", format!("{APPS}?resourceVersion=abc"), vec![], String::new(), 400, "BadRequest"),
        ("GET", format!("{APPS}?sendInitialEvents=true"), vec![], String::new(), 422, "Invalid"),
        ("POST", format!("{APPS}?dryRun=Maybe"), vec![("content-type", "application/json")], "{}".into(), 422, "Invalid"),
        ("PUT", format!("{APPS}/nope"), vec![("content-type", "application/json")], json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "nope", "resourceVersion": "2"}}).to_string(), 404, "NotFound"),
        ("DELETE", format!("{APPS}/nope"), vec![], String::new(), 404, "NotFound"),
        ("DELETE", format!("{APPS}?propagationPolicy=Sideways"), vec![], String::new(), 422, "Invalid"),
    ];
    for http2 in [false, true] {
        for (method, path, headers, body, code, reason) in &cases {
            let r = s
                .send_on(http2, Some(&s.token), method, path, headers, body.clone())
                .await;
            assert_eq!(
                r.status,
                *code,
                "{method} {path} {body}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let status = r.json();
            assert_eq!(status["kind"], "Status", "{method} {path}");
            assert_eq!(status["reason"], *reason, "{method} {path}: {status}");
        }
    }
    // YAML bodies are converted as sigs.k8s.io/yaml converts them: flow nesting past 128 is
    // refused before parsing (its cost grows with the depth), NaN and infinities are not JSON.
    let yaml = [("content-type", "application/yaml")];
    let apply = [("content-type", "application/apply-patch+yaml")];
    let deep = format!(
        "apiVersion: admission.example.com/v1\nkind: App\nmetadata: {{name: deep}}\nspec: {}",
        "[".repeat(200_000)
    );
    let nan = "apiVersion: admission.example.com/v1\nkind: App\nmetadata: {name: nan}\nspec: {replicas: .nan, version: v1.0.0}\n";
    for http2 in [false, true] {
        for (method, path, headers, body, message) in [
            (
                "POST",
                APPS.to_string(),
                &yaml,
                deep.clone(),
                "error converting YAML to JSON: yaml: exceeded max depth of 128",
            ),
            (
                "PATCH",
                format!("{APPS}/deep?fieldManager=m"),
                &apply,
                deep.clone(),
                "error converting YAML to JSON: yaml: exceeded max depth of 128",
            ),
            (
                "POST",
                APPS.to_string(),
                &yaml,
                nan.to_string(),
                "error converting YAML to JSON: json: unsupported value: NaN",
            ),
            (
                "PATCH",
                format!("{APPS}/nan?fieldManager=m"),
                &apply,
                nan.to_string(),
                "error converting YAML to JSON: json: unsupported value: NaN",
            ),
        ] {
            let r = s
                .send_on(http2, Some(&s.token), method, &path, headers, body)
                .await;
            assert_eq!(r.status, 400, "{method} {path}: {}", support::text(&r.body));
            let status = r.json();
            assert_eq!(status["reason"], "BadRequest");
            assert!(
                status["message"].as_str().unwrap().contains(message),
                "{method} {path}: {status}"
            );
        }
    }
    let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(4 * 1024 * 1024));
    let r = s
        .request("POST", APPS, &[("content-type", "application/json")], &huge)
        .await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn updates_without_a_resource_version_and_preconditions() {
    let s = Server::start();
    let created = s.create_app("web", json!({})).await;
    let mut body = created.clone();
    body["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let r = s
        .request(
            "PUT",
            &format!("{APPS}/web"),
            &[("content-type", "application/json")],
            &body.to_string(),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "apps.admission.example.com \"web\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
    );
    let wrong_uid =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-it"}});
    let r = s
        .request(
            "DELETE",
            &format!("{APPS}/web"),
            &[("content-type", "application/json")],
            &wrong_uid.to_string(),
        )
        .await;
    assert_eq!(r.status, 409);
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("Operation cannot be fulfilled on App.admission.example.com \"web\": the UID in the precondition (not-it) does not match the UID in record ({uid}). The object might have been deleted and then recreated"),
            "reason": "Conflict", "details": {"name": "web", "group": "admission.example.com", "kind": "App"}, "code": 409})
    );
    let orphan = s
        .request(
            "DELETE",
            &format!("{APPS}/web?propagationPolicy=Orphan"),
            &[],
            "",
        )
        .await;
    assert_eq!(orphan.status, 200);
    assert_eq!(orphan.json()["metadata"]["finalizers"], json!(["orphan"]));
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn() {
    let s = Server::start();
    let req = http::Request::builder()
        .uri(format!("{}/apis/admission.example.com/v1", s.base))
        .header("authorization", format!("Bearer {}", s.token))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = s.client(true).request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let resp = s.request("GET", "/apis", &[], "").await;
    assert_eq!(resp.version, http::Version::HTTP_11);
}

#[tokio::test]
async fn deletecollection_honours_selectors() {
    let s = Server::start();
    s.create_app("a", json!({"tier": "web"})).await;
    s.create_app("b", json!({"tier": "db"})).await;
    let r = s
        .request(
            "DELETE",
            &format!("{APPS}?labelSelector=tier%3Dweb"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let deleted = r.json();
    assert_eq!(deleted["kind"], "AppList");
    assert_eq!(deleted["items"][0]["metadata"]["name"], "a");
    let left = s.request("GET", APPS, &[], "").await.json();
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    let _ = app("unused", "default", 1, &[]);
}

/// A list larger than a page streams (chunked on HTTP/1.1) and is still one JSON list: every
/// object once, in key order, with the list's metadata; the same over HTTP/2, and the same as
/// the paged reading of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lists_stream_whole() {
    let s = Server::start();
    let path = "/apis/admission.example.com/v1/namespaces/big/apps";
    for batch in 0..22 {
        futures::future::join_all((0..50).map(|j| {
            let s = &s;
            async move {
                let i = batch * 50 + j;
                let body = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
                    "metadata": {"name": format!("a{i:04}")}, "spec": {"version": "v1.0.0"}});
                let r = s.post_json(path, &body).await;
                assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            }
        }))
        .await;
    }
    for http2 in [false, true] {
        let r = s.send_on(http2, Some(&s.token), "GET", path, &[], "").await;
        assert_eq!(r.status, 200);
        if !http2 {
            assert_eq!(r.header("transfer-encoding"), Some("chunked"), "streamed");
        }
        let list = r.json();
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..1100).map(|i| format!("a{i:04}")).collect();
        assert_eq!(names, want);
        assert_eq!(list["kind"], "AppList");
        assert_eq!(list["metadata"]["continue"], "");
        assert!(list["metadata"]["resourceVersion"].is_string());
        assert_eq!(list["items"][0]["spec"]["replicas"], 1);
    }
}

/// Writes whose bodies are large (handled off the async workers) are answered like any other,
/// over both transports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_written() {
    let s = Server::start();
    for (http2, name) in [(false, "big1"), (true, "big2")] {
        let note = "n".repeat(100 * 1024);
        let body = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": name, "annotations": {"note": note}}, "spec": {"version": "v1.0.0"}});
        let json = [("content-type", "application/json")];
        let r = s
            .send_on(http2, Some(&s.token), "POST", APPS, &json, body.to_string())
            .await;
        assert_eq!(r.status, 201, "{}", support::text(&r.body));
        let mut created = r.json();
        assert_eq!(created["metadata"]["annotations"]["note"], note);
        let longer = "m".repeat(200 * 1024);
        created["metadata"]["annotations"]["note"] = json!(longer);
        let path = format!("{APPS}/{name}");
        let r = s
            .send_on(
                http2,
                Some(&s.token),
                "PUT",
                &path,
                &json,
                created.to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", support::text(&r.body));
        let merge = [("content-type", "application/merge-patch+json")];
        // Annotations take 256 KiB in all: this one body replaces one and adds another.
        let shorter = "s".repeat(150 * 1024);
        let patch =
            json!({"metadata": {"annotations": {"note": shorter, "other": "o".repeat(50 * 1024)}}});
        let r = s
            .send_on(
                http2,
                Some(&s.token),
                "PATCH",
                &path,
                &merge,
                patch.to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", support::text(&r.body));
        let r = s
            .send_on(http2, Some(&s.token), "GET", &path, &[], "")
            .await;
        let stored = r.json();
        assert_eq!(stored["metadata"]["annotations"]["note"], shorter);
        assert_eq!(
            stored["metadata"]["annotations"]["other"]
                .as_str()
                .map(str::len),
            Some(50 * 1024)
        );
    }
}

/// Map-list items an applier stops applying go away whole (not as `{}`), as with
/// structured-merge-diff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_map_list_items_dropped_go_whole() {
    let s = Server::start();
    let apply = [("content-type", "application/apply-patch+yaml")];
    for (http2, name) in [(false, "ml1"), (true, "ml2")] {
        s.create(&app(name, "default", 1, &[]));
        let status = format!("{APPS}/{name}/status?fieldManager=ctl");
        let conditions: Vec<_> = (0..3)
            .map(|i| json!({"type": format!("T{i}"), "status": "True"}))
            .collect();
        let mut answers = Vec::new();
        for conditions in [
            json!(conditions),
            json!([{"type": "T1", "status": "False"}]),
        ] {
            let config = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
                "metadata": {"name": name}, "status": {"conditions": conditions}});
            let r = s
                .send_on(
                    http2,
                    Some(&s.token),
                    "PATCH",
                    &status,
                    &apply,
                    config.to_string(),
                )
                .await;
            assert_eq!(r.status, 200, "{}", support::text(&r.body));
            answers.push(r.json());
        }
        assert_eq!(
            answers[1]["status"]["conditions"],
            json!([{"type": "T1", "status": "False"}])
        );
    }
}

/// Server-side apply of a `Scale` to `/scale`: the applier owns the replica field through the
/// `scale` subresource, conflicts with its other owners unless forced, and is itself an owner
/// the main resource's appliers conflict with; a `Scale` body is checked as the field manager
/// checks an applied configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_of_a_scale() {
    let s = Server::start();
    let apply = [("content-type", "application/apply-patch+yaml")];
    let scale = |name: &str, replicas: u32| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": name}, "spec": {"replicas": replicas}})
        .to_string()
    };
    for (http2, name) in [(false, "sc1"), (true, "sc2")] {
        let send = |method: &'static str, path: String, body: String| {
            let s = &s;
            async move {
                s.send_on(http2, Some(&s.token), method, &path, &apply, body)
                    .await
            }
        };
        let main = format!("{APPS}/{name}?fieldManager=alice");
        let at_scale = |manager: &str, force: bool| {
            format!("{APPS}/{name}/scale?fieldManager={manager}&force={force}")
        };
        let app = |replicas: u32| {
            json!({"apiVersion": "admission.example.com/v1", "kind": "App",
                "metadata": {"name": name}, "spec": {"replicas": replicas, "version": "v1.0.0"}})
            .to_string()
        };
        let r = send("PATCH", main.clone(), app(2)).await;
        assert_eq!(r.status, 201, "{}", support::text(&r.body));

        // alice owns the replicas: an autoscaler applying a Scale conflicts, as kube words it.
        let r = send("PATCH", at_scale("hpa", false), scale(name, 3)).await;
        assert_eq!(r.status, 409, "{}", support::text(&r.body));
        assert_eq!(
            r.json(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas",
                "reason": "Conflict",
                "details": {"causes": [{"reason": "FieldManagerConflict",
                    "message": "conflict with \"alice\"", "field": ".spec.replicas"}]},
                "code": 409})
        );
        // Forced: the Scale comes back; the replicas move to hpa's `scale` entry.
        let r = send("PATCH", at_scale("hpa", true), scale(name, 3)).await;
        assert_eq!(r.status, 200, "{}", support::text(&r.body));
        assert_eq!(r.json()["kind"], "Scale");
        assert_eq!(r.json()["spec"]["replicas"], 3);
        let got = s
            .send_on(
                http2,
                Some(&s.token),
                "GET",
                &format!("{APPS}/{name}"),
                &[],
                String::new(),
            )
            .await
            .json();
        assert_eq!(got["spec"]["replicas"], 3);
        let entries = got["metadata"]["managedFields"].as_array().unwrap().clone();
        let hpa = entries.iter().find(|e| e["manager"] == "hpa").unwrap();
        assert_eq!(hpa["operation"], "Apply");
        assert_eq!(hpa["subresource"], "scale");
        assert_eq!(hpa["apiVersion"], "admission.example.com/v1");
        assert_eq!(hpa["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        let alice = entries.iter().find(|e| e["manager"] == "alice").unwrap();
        assert_eq!(alice["fieldsV1"], json!({"f:spec": {"f:version": {}}}));
        // hpa applies again without force: it owns the field now.
        let r = send("PATCH", at_scale("hpa", false), scale(name, 4)).await;
        assert_eq!(r.status, 200, "{}", support::text(&r.body));
        assert_eq!(r.json()["spec"]["replicas"], 4);
        // And alice, applying replicas to the App again, conflicts with hpa's `scale` entry.
        let r = send("PATCH", main.clone(), app(5)).await;
        assert_eq!(r.status, 409, "{}", support::text(&r.body));
        assert_eq!(
            r.json()["message"],
            "Apply failed with 1 conflict: conflict with \"hpa\" with subresource \"scale\": .spec.replicas"
        );
        // Replica counts the schema refuses are refused through the Scale too.
        let r = send("PATCH", at_scale("hpa", false), scale(name, 11)).await;
        assert_eq!(r.status, 422, "{}", support::text(&r.body));
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("spec.replicas: Invalid value: 11"),
            "{}",
            support::text(&r.body)
        );

        // The Scale's resourceVersion is a precondition, as kube carries it over to the App.
        let stale = format!(
            "apiVersion: autoscaling/v1\nkind: Scale\nmetadata:\n  name: {name}\n  resourceVersion: \"1\"\nspec:\n  replicas: 4\n"
        );
        let r = send("PATCH", at_scale("hpa", true), stale).await;
        assert_eq!(r.status, 409, "{}", support::text(&r.body));
        assert_eq!(r.json()["reason"], "Conflict");
        // Replica counts as the Go int32 they become: 3.0 is 3, null is 0 (refused by the
        // schema); NaN is not JSON at all.
        let r = send(
            "PATCH",
            at_scale("hpa", false),
            format!("apiVersion: autoscaling/v1\nkind: Scale\nmetadata:\n  name: {name}\nspec:\n  replicas: 3.0\n"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", support::text(&r.body));
        assert!(
            support::text(&r.body).contains("\"spec\":{\"replicas\":3}"),
            "{}",
            support::text(&r.body)
        );
        for (replicas, code, message) in [
            (
                "null",
                422,
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            ),
            (
                ".nan",
                400,
                "error encoding patch: error converting YAML to JSON: json: unsupported value: NaN",
            ),
        ] {
            let r = send(
                "PATCH",
                at_scale("hpa", false),
                format!("apiVersion: autoscaling/v1\nkind: Scale\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n"),
            )
            .await;
            assert_eq!(r.status, code, "{replicas}: {}", support::text(&r.body));
            assert!(
                r.json()["message"].as_str().unwrap().contains(message),
                "{replicas}: {}",
                support::text(&r.body)
            );
        }

        // A Scale body checked as the field manager checks an applied configuration.
        for (path, body, code, message) in [
            (
                at_scale("hpa", false),
                app(1),
                400,
                "invalid object type: admission.example.com/v1, Kind=App".to_string(),
            ),
            (
                at_scale("hpa", false),
                json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name},
                    "spec": {"replicas": 1, "paused": true}})
                .to_string(),
                500,
                format!("failed to create typed patch object (/{name}; autoscaling/v1, Kind=Scale): .spec.paused: field not declared in schema"),
            ),
            (
                at_scale("hpa", false),
                json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": name, "managedFields": []}})
                .to_string(),
                400,
                "metadata.managedFields must be nil".to_string(),
            ),
            (
                at_scale("hpa", false),
                scale("other", 1),
                400,
                format!("the name of the object (other) does not match the name on the URL ({name})"),
            ),
            (
                format!("{APPS}/{name}/scale"),
                scale(name, 1),
                422,
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".to_string(),
            ),
        ] {
            let r = send("PATCH", path.clone(), body).await;
            assert_eq!((r.status, r.json()["message"].as_str().unwrap_or("")), (code, message.as_str()), "{path}: {}", support::text(&r.body));
        }
        // An updater's ownership: conflicts name it with its version (never its time).
        let made = format!("made-{name}");
        let r = s
            .send_on(
                http2,
                Some(&s.token),
                "POST",
                &format!("{APPS}?fieldManager=maker"),
                &[("content-type", "application/yaml")],
                support::app(&made, "default", 2, &[]),
            )
            .await;
        assert_eq!(r.status, 201, "{}", support::text(&r.body));
        let r = send(
            "PATCH",
            format!("{APPS}/{made}/scale?fieldManager=hpa"),
            scale(&made, 3),
        )
        .await;
        assert_eq!(r.status, 409, "{}", support::text(&r.body));
        assert_eq!(
            r.json()["message"],
            "Apply failed with 1 conflict: conflict with \"maker\" using admission.example.com/v1: .spec.replicas"
        );
        // A Scale of an App that does not exist is not created; the App is looked for before
        // the body is.
        for body in [scale(&format!("missing-{name}"), 1), "kind: x".to_string()] {
            let r = send(
                "PATCH",
                format!("{APPS}/missing-{name}/scale?fieldManager=hpa"),
                body,
            )
            .await;
            assert_eq!(r.status, 404, "{}", support::text(&r.body));
        }
    }
}
