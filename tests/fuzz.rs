//! Property tests of every parser that takes request input — label and field selectors, query
//! parameters, JSON / merge / strategic-merge patches, server-side apply bodies, create bodies
//! and AdmissionReviews — through the whole request pipeline (no socket, an in-memory store):
//! whatever the input, no panic, no 5xx, and every refusal is a 4xx `Status` whose `code` is
//! the HTTP status. Each property runs a bounded number of cases, so CI time stays small.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use admission_apiserver::server::{build_state, pipeline};
use axum::body::Body;
use clap::Parser;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-admin";
const APPS: &str = "/apis/admission.example.com/v1/namespaces/default/apps";

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap().keep();
        let cli = admission_apiserver::config::Cli::parse_from([
            "admission-apiserver",
            "serve",
            "--data-dir",
            dir.to_str().unwrap(),
        ]);
        let admission_apiserver::config::Command::Serve(options) = cli.command else {
            unreachable!("parsed from serve");
        };
        let config = options.validate().unwrap();
        let app = runtime.block_on(async {
            let store: Arc<dyn storage::Store> = Arc::new(storage::MemoryStore::new(
                storage::index::IndexOptions::default(),
                Arc::new(admission_apiserver::registry::codec::StorageCodec::new(
                    admission_apiserver::kinds::load().unwrap(),
                )),
            ));
            let state = build_state(
                store,
                admission_apiserver::auth::Auth::standalone(Some(TOKEN.into())),
                admission_apiserver::metrics::Metrics::new(),
                admission_apiserver::server::Checks::default(),
                admission_apiserver::admission::events::Recorder::log_only(),
                None,
                &config,
            )
            .await
            .unwrap();
            pipeline::app(state)
        });
        let h = Harness { runtime, app };
        let body = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "target", "labels": {"tier": "web"}},
            "spec": {"version": "v1.0.0", "replicas": 1, "selector": {"matchLabels": {"a": "b"}}}});
        let (code, _) = h.send(
            "POST",
            APPS,
            "application/json",
            body.to_string().into_bytes(),
        );
        assert_eq!(code, 201);
        h
    })
}

impl Harness {
    fn send(&self, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Body::from(body))
            .unwrap();
        self.runtime.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            let code = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (code, bytes.to_vec())
        })
    }
}

/// The 500s kube-apiserver itself answers to bad input: plain errors of its storage layer and
/// of the field manager's typed conversion, which it renders with no reason.
fn kube_answers_500(body: &[u8]) -> bool {
    let Ok(status) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let message = status["message"].as_str().unwrap_or("");
    status.get("reason").is_none()
        && (message == "resourceVersion should not be set on objects to be created"
            || message.starts_with("failed to create typed patch object ("))
}

/// The property every answer has: no 5xx but those kube-apiserver gives; a refusal is a Status
/// carrying its code.
fn check(code: u16, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        code < 500 || (code == 500 && kube_answers_500(body)),
        "{code}: {}",
        String::from_utf8_lossy(body)
    );
    if code >= 400 {
        let status: Value = serde_json::from_slice(body).map_err(|e| {
            TestCaseError::fail(format!(
                "{code} body is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            ))
        })?;
        prop_assert_eq!(&status["kind"], "Status");
        prop_assert_eq!(&status["status"], "Failure");
        prop_assert_eq!(status["code"].as_u64(), Some(u64::from(code)));
        prop_assert!(status["message"].is_string());
    }
    Ok(())
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Text made mostly of the characters selector grammars care about.
fn selector_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r"[a-z0-9./_\-]{0,6}( ?(=|==|!=|,|!| in | notin |\(|\)|<|>|\.|/|\x00|é|\\)? ?[a-zA-Z0-9._\-]{0,8}){0,6}",
    )
    .unwrap()
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z/~0-9.\\-]{0,10}".prop_map(Value::from),
        Just(json!("v1.0.0")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("op".to_string()),
                    Just("path".to_string()),
                    Just("value".to_string()),
                    Just("from".to_string()),
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("replicas".to_string()),
                    Just("name".to_string()),
                    Just("apiVersion".to_string()),
                    Just("kind".to_string()),
                    Just("$patch".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON Patch operations over the App's paths.
fn json_patch() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        Just("add"),
        Just("remove"),
        Just("replace"),
        Just("move"),
        Just("copy"),
        Just("test"),
        "[a-z]{0,5}".prop_map(|s| Box::leak(s.into_boxed_str()) as &str),
    ];
    let path = prop_oneof![
        Just("/spec/replicas".to_string()),
        Just("/spec/version".to_string()),
        Just("/metadata/name".to_string()),
        Just("/metadata/labels/x".to_string()),
        Just("/metadata/resourceVersion".to_string()),
        Just("/spec/selector/matchLabels/a".to_string()),
        Just("/status".to_string()),
        "(/[a-z~01\\-]{0,5}){0,4}",
    ];
    prop::collection::vec((op, path.clone(), path, json_value()), 0..4).prop_map(|ops| {
        Value::Array(
            ops.into_iter()
                .map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}))
                .collect(),
        )
    })
}

fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        "[\\[\\]{}:,\"a-z0-9 \\n-]{0,64}".prop_map(String::into_bytes),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn label_selectors(selector in selector_text()) {
        let h = harness();
        let (code, body) = h.send("GET", &format!("{APPS}?labelSelector={}", encode(&selector)), "application/json", Vec::new());
        check(code, &body)?;
    }

    #[test]
    fn field_selectors(selector in selector_text(), field in prop_oneof![Just("metadata.name"), Just("metadata.namespace"), Just("spec.x"), Just("")]) {
        let h = harness();
        let text = format!("{field}{selector}");
        let (code, body) = h.send("GET", &format!("{APPS}?fieldSelector={}", encode(&text)), "application/json", Vec::new());
        check(code, &body)?;
    }

    #[test]
    fn query_parameters(
        params in prop::collection::vec((
            prop_oneof![
                Just("limit"), Just("continue"), Just("resourceVersion"), Just("resourceVersionMatch"),
                Just("timeoutSeconds"), Just("timeout"), Just("fieldManager"), Just("fieldValidation"),
                Just("dryRun"), Just("propagationPolicy"), Just("gracePeriodSeconds"), Just("pretty"),
                Just("allowWatchBookmarks"), Just("sendInitialEvents"), Just("orphanDependents"),
            ],
            "[a-zA-Z0-9=%+\\-.]{0,12}",
        ), 0..5),
        method in prop_oneof![Just("GET"), Just("DELETE"), Just("POST")],
        target in prop_oneof![Just(""), Just("/target"), Just("/missing")],
    ) {
        let h = harness();
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let uri = format!("{APPS}{}?{}", if method == "POST" { "" } else { target }, query.join("&"));
        // Deletions of the shared object are made dry runs so the other properties keep it.
        let uri = if method == "DELETE" { format!("{uri}&dryRun=All") } else { uri };
        let body = if method == "POST" {
            json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"generateName": "q-"},
                "spec": {"version": "v1.0.0", "replicas": 1}}).to_string().into_bytes()
        } else {
            Vec::new()
        };
        let (code, body) = h.send(method, &uri, "application/json", body);
        check(code, &body)?;
    }

    #[test]
    fn json_patches(patch in json_patch(), raw in raw_bytes(), use_raw in any::<bool>()) {
        let h = harness();
        let body = if use_raw { raw } else { patch.to_string().into_bytes() };
        let (code, body) = h.send("PATCH", &format!("{APPS}/target?dryRun=All"), "application/json-patch+json", body);
        check(code, &body)?;
    }

    #[test]
    fn merge_patches(
        patch in json_value(),
        raw in raw_bytes(),
        use_raw in any::<bool>(),
        content_type in prop_oneof![Just("application/merge-patch+json"), Just("application/strategic-merge-patch+json")],
        subresource in prop_oneof![Just(""), Just("/status"), Just("/scale")],
    ) {
        let h = harness();
        let body = if use_raw { raw } else { json!({"spec": patch}).to_string().into_bytes() };
        let (code, body) = h.send("PATCH", &format!("{APPS}/target{subresource}?dryRun=All"), content_type, body);
        check(code, &body)?;
    }

    #[test]
    fn apply_bodies(spec in json_value(), metadata in json_value(), raw in raw_bytes(), use_raw in any::<bool>(), force in any::<bool>()) {
        let h = harness();
        let body = if use_raw {
            raw
        } else {
            json!({"apiVersion": "admission.example.com/v1", "kind": "App",
                "metadata": {"name": "target", "labels": metadata}, "spec": spec}).to_string().into_bytes()
        };
        let uri = format!("{APPS}/target?dryRun=All&fieldManager=fuzz&force={force}");
        let (code, body) = h.send("PATCH", &uri, "application/apply-patch+yaml", body);
        check(code, &body)?;
    }

    #[test]
    fn create_bodies(spec in json_value(), metadata in json_value(), raw in raw_bytes(), use_raw in any::<bool>(), yaml in any::<bool>()) {
        let h = harness();
        let body = if use_raw {
            raw
        } else {
            json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": metadata, "spec": spec})
                .to_string()
                .into_bytes()
        };
        let content_type = if yaml { "application/yaml" } else { "application/json" };
        let (code, body) = h.send("POST", &format!("{APPS}?dryRun=All"), content_type, body);
        check(code, &body)?;
    }

    #[test]
    fn admission_reviews(
        request in json_value(),
        field in prop_oneof![Just("uid"), Just("kind"), Just("resource"), Just("operation"), Just("userInfo"), Just("object"), Just("name"), Just("namespace")],
        value in json_value(),
        version in prop_oneof![Just("admission.k8s.io/v1"), Just("admission.k8s.io/v1beta1"), Just("v1"), Just("")],
        endpoint in prop_oneof![Just("validatingadmissionreviews"), Just("mutatingadmissionreviews")],
        raw in raw_bytes(),
        shape in 0..3u8,
    ) {
        let h = harness();
        let mut valid = json!({"apiVersion": version, "kind": "AdmissionReview", "request": {
            "uid": "00000000-0000-4000-8000-000000000001",
            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "name": "team-a", "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "bob", "groups": ["system:authenticated"]},
            "object": {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "team-a"}}}});
        let body = match shape {
            0 => {
                valid["request"][field] = value;
                valid.to_string().into_bytes()
            }
            1 => json!({"apiVersion": version, "kind": "AdmissionReview", "request": request}).to_string().into_bytes(),
            _ => raw,
        };
        let (code, body) = h.send("POST", &format!("/apis/admission.example.com/v1/{endpoint}"), "application/json", body);
        check(code, &body)?;
    }
}

/// The harness reaches the parsers: known-bad inputs of each kind are refused with a 4xx
/// Status, and good ones pass.
#[test]
fn known_inputs_reach_the_parsers() {
    let h = harness();
    let cases: Vec<(&str, String, &str, Vec<u8>, u16)> = vec![
        (
            "GET",
            format!("{APPS}?labelSelector={}", encode("tier in (web")),
            "application/json",
            vec![],
            400,
        ),
        (
            "GET",
            format!("{APPS}?labelSelector={}", encode("tier in (web)")),
            "application/json",
            vec![],
            200,
        ),
        (
            "GET",
            format!("{APPS}?fieldSelector={}", encode("spec.x=1")),
            "application/json",
            vec![],
            400,
        ),
        (
            "GET",
            format!("{APPS}?limit=abc"),
            "application/json",
            vec![],
            400,
        ),
        (
            "GET",
            format!("{APPS}?timeout=abc"),
            "application/json",
            vec![],
            400,
        ),
        (
            "PATCH",
            format!("{APPS}/target?dryRun=All"),
            "application/json-patch+json",
            b"{".to_vec(),
            400,
        ),
        (
            "PATCH",
            format!("{APPS}/target?dryRun=All"),
            "application/merge-patch+json",
            b"[1]".to_vec(),
            400,
        ),
        (
            "PATCH",
            format!("{APPS}/target?dryRun=All"),
            "application/merge-patch+json",
            br#"{"spec":{"replicas":2}}"#.to_vec(),
            200,
        ),
        (
            "PATCH",
            format!("{APPS}/target?dryRun=All&fieldManager=f"),
            "application/apply-patch+yaml",
            b"- a".to_vec(),
            400,
        ),
        (
            "POST",
            "/apis/admission.example.com/v1/validatingadmissionreviews".into(),
            "application/json",
            b"{}".to_vec(),
            400,
        ),
    ];
    for (method, uri, content_type, body, expected) in cases {
        let (code, answer) = h.send(method, &uri, content_type, body);
        assert_eq!(
            code,
            expected,
            "{method} {uri}: {}",
            String::from_utf8_lossy(&answer)
        );
        check(code, &answer).unwrap();
    }
}
