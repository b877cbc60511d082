//! Write validation and error shapes as kube-apiserver answers them for the same kinds served
//! as CRDs: resourceVersion on create, managedFields in an apply, field selectors per kind and
//! scope, the too-large-resourceVersion 504, precondition failures, JSON patch failures, body
//! decoding (strict and not), list metadata, and 406/415.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Server, text};

const G: &str = "/apis/admission.example.com/v1";
const APPS: &str = "/apis/admission.example.com/v1/namespaces/default/apps";
const NSRES: &str = "/apis/admission.example.com/v1/namespacereservations";

fn status(code: u16, reason: Option<&str>, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "code": code});
    if let Some(r) = reason {
        s["reason"] = json!(r);
    }
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn app(name: &str, extra_meta: Value) -> Value {
    let mut metadata = json!({"name": name});
    if let Value::Object(m) = extra_meta {
        metadata.as_object_mut().unwrap().extend(m);
    }
    json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": metadata,
        "spec": {"version": "v1.0.0", "replicas": 1}})
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_with_a_resource_version_is_the_storage_layer_s_500() {
    let s = Server::start();
    for (i, http2) in [false, true].into_iter().enumerate() {
        for rv in ["5", "007"] {
            let name = format!("rv{i}-{}", rv.len());
            let body = app(&name, json!({"resourceVersion": rv}));
            let r = s
                .send_on(
                    http2,
                    Some(&s.token),
                    "POST",
                    APPS,
                    &[JSON],
                    body.to_string(),
                )
                .await;
            assert_eq!(r.status, 500);
            assert_eq!(
                r.json(),
                status(
                    500,
                    None,
                    "resourceVersion should not be set on objects to be created",
                    None
                )
            );
            let get = s.request("GET", &format!("{APPS}/{name}"), &[], "").await;
            assert_eq!(get.status, 404, "nothing was stored");
        }
    }
    // What the storage layer cannot parse, or zero, is not a resourceVersion it refuses; a dry
    // run never reaches it.
    for (name, rv, query) in [
        ("zero", "0", ""),
        ("text", "abc", ""),
        ("dry", "5", "?dryRun=All"),
    ] {
        let r = s
            .post_json(
                &format!("{APPS}{query}"),
                &app(name, json!({"resourceVersion": rv})),
            )
            .await;
        assert_eq!(r.status, 201, "{rv}{query}: {}", text(&r.body));
    }
    // A validation failure comes first.
    let mut bad = app("bad", json!({"resourceVersion": "5"}));
    bad["spec"]["replicas"] = json!(50);
    assert_eq!(s.post_json(APPS, &bad).await.status, 422);
    // kubectl shows the message (`kubectl create` itself clears resourceVersion: post as is).
    let manifest = app("kc", json!({"resourceVersion": "12"})).to_string();
    let out = s.kubectl_stdin(&["create", "--raw", APPS, "-f", "-"], &manifest);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("resourceVersion should not be set on objects to be created"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_refuses_managed_fields_and_undeclared_fields() {
    let s = Server::start();
    s.create(&support::app("ssa", "default", 1, &[("tier", "web")]));
    let before = s
        .request("GET", &format!("{APPS}/ssa"), &[], "")
        .await
        .json();
    // `kubectl get --show-managed-fields | kubectl apply --server-side`: refused, nothing written.
    let live = s.kubectl_ok(&["get", "app", "ssa", "-o", "json", "--show-managed-fields"]);
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &live);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("metadata.managedFields must be nil"),
        "{}",
        text(&out.stderr)
    );
    let after = s
        .request("GET", &format!("{APPS}/ssa"), &[], "")
        .await
        .json();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    let apply = ("content-type", "application/apply-patch+yaml");
    for http2 in [false, true] {
        for managed in ["[]", r#"[{"manager":"x","operation":"Apply"}]"#] {
            let config = format!(
                r#"{{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{{"name":"fresh","managedFields":{managed}}},"spec":{{"version":"v1.0.0"}}}}"#
            );
            let r = s
                .send_on(
                    http2,
                    Some(&s.token),
                    "PATCH",
                    &format!("{APPS}/fresh?fieldManager=me"),
                    &[apply],
                    config,
                )
                .await;
            assert_eq!(
                r.json(),
                status(
                    400,
                    Some("BadRequest"),
                    "metadata.managedFields must be nil",
                    None
                )
            );
        }
        let get = s.request("GET", &format!("{APPS}/fresh"), &[], "").await;
        assert_eq!(get.status, 404);
    }
    // A field the schema does not declare fails the typed conversion of the field manager.
    let config = r#"{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{"name":"ssa","namespace":"default"},"spec":{"colour":"red"}}"#;
    for validation in ["Ignore", "Warn", "Strict"] {
        let r = s
            .request(
                "PATCH",
                &format!("{APPS}/ssa?fieldManager=me&fieldValidation={validation}"),
                &[apply],
                config,
            )
            .await;
        assert_eq!(
            r.json(),
            status(
                500,
                None,
                "failed to create typed patch object (default/ssa; admission.example.com/v1, Kind=App): .spec.colour: field not declared in schema",
                None
            ),
            "{validation}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_are_checked_per_kind_and_scope() {
    let s = Server::start();
    let refused = |field: &str| {
        status(
            400,
            Some("BadRequest"),
            &format!("field label not supported: {field}"),
            None,
        )
    };
    for (method, path) in [
        (
            "GET",
            format!("{NSRES}?fieldSelector=metadata.namespace%3Dx"),
        ),
        (
            "GET",
            format!("{NSRES}?watch=true&fieldSelector=metadata.namespace%3Dx"),
        ),
        (
            "DELETE",
            format!("{NSRES}?fieldSelector=metadata.namespace%3Dx"),
        ),
        (
            "GET",
            format!("{G}/watch/namespacereservations?fieldSelector=metadata.namespace%3Dx"),
        ),
    ] {
        for http2 in [false, true] {
            let r = s
                .send_on(http2, Some(&s.token), method, &path, &[], "")
                .await;
            assert_eq!(r.json(), refused("metadata.namespace"), "{method} {path}");
        }
    }
    for path in [
        format!("{APPS}?fieldSelector=spec.replicas%3D1"),
        format!("{G}/apps?fieldSelector=status.replicas%3D1"),
        format!("{NSRES}?fieldSelector=spec.owners%3Dx"),
    ] {
        let r = s.request("GET", &path, &[], "").await;
        let field = path
            .split("fieldSelector=")
            .nth(1)
            .unwrap()
            .split("%3D")
            .next()
            .unwrap();
        assert_eq!(r.json(), refused(field), "{path}");
    }
    for path in [
        format!("{APPS}?fieldSelector=metadata.namespace%3Ddefault"),
        format!("{G}/apps?fieldSelector=metadata.namespace!%3Dx,metadata.name%3Dy"),
        format!("{NSRES}?fieldSelector=metadata.name%3Dx"),
    ] {
        assert_eq!(s.request("GET", &path, &[], "").await.status, 200, "{path}");
    }
    // A malformed selector is refused as such, a bad combination of options first.
    let r = s
        .request(
            "GET",
            &format!("{NSRES}?fieldSelector=metadata.namespace"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .request(
            "GET",
            &format!("{NSRES}?fieldSelector=metadata.namespace%3Dx&sendInitialEvents=true"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_resource_version_is_a_504_with_the_too_large_cause() {
    let s = Server::start();
    let list = s.request("GET", APPS, &[], "").await.json();
    let current: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let future = current + 1000;
    for (path, http2) in [
        (format!("{APPS}?resourceVersion={future}"), false),
        (
            format!("{APPS}?resourceVersion={future}&resourceVersionMatch=NotOlderThan"),
            true,
        ),
        (
            format!(
                "{APPS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion={future}"
            ),
            true,
        ),
    ] {
        let r = s
            .send_on(http2, Some(&s.token), "GET", &path, &[], "")
            .await;
        assert_eq!(r.header("retry-after"), Some("1"), "{path}");
        let body = r.json();
        let message = body["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with(&format!(
                "Timeout: Too large resource version: {future}, current: "
            )),
            "{message}"
        );
        assert_eq!(
            body,
            status(
                504,
                Some("Timeout"),
                &message,
                Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})
                )
            ),
            "{path}"
        );
    }
}

/// A DeleteOptions body that Go cannot decode (a field of the wrong type, another kind) is a
/// 400 with the decoder's words, and nothing is deleted: no dry run or precondition is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ill_typed_delete_options_delete_nothing() {
    let s = Server::start();
    s.create_app("keep", json!({})).await;
    let cases = [
        (
            json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": "All"}),
            "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string",
        ),
        (
            json!({"dryRun": true}),
            "json: cannot unmarshal bool into Go struct field DeleteOptions.dryRun of type []string",
        ),
        (
            json!({"dryRun": ["All", 1]}),
            "json: cannot unmarshal number into Go struct field DeleteOptions.dryRun of type string",
        ),
        (
            json!({"preconditions": {"resourceVersion": 1}}),
            "json: cannot unmarshal number into Go struct field Preconditions.preconditions.resourceVersion of type string",
        ),
        (
            json!({"preconditions": {"uid": ["nope"]}}),
            "json: cannot unmarshal array into Go struct field Preconditions.preconditions.uid of type types.UID",
        ),
        (
            json!({"preconditions": "x"}),
            "json: cannot unmarshal string into Go struct field DeleteOptions.preconditions of type v1.Preconditions",
        ),
        (
            json!({"gracePeriodSeconds": 1.5}),
            "json: cannot unmarshal number 1.5 into Go struct field DeleteOptions.gracePeriodSeconds of type int64",
        ),
        (
            json!({"propagationPolicy": {}}),
            "json: cannot unmarshal object into Go struct field DeleteOptions.propagationPolicy of type v1.DeletionPropagation",
        ),
        (
            json!({"kind": "Pod", "apiVersion": "v1"}),
            "no kind \"Pod\" is registered for version \"v1\" in scheme \"k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme/register.go:27\"",
        ),
    ];
    for http2 in [false, true] {
        for (body, message) in &cases {
            for path in [
                format!("{APPS}/keep"),
                format!("{APPS}?fieldSelector=metadata.name%3Dkeep"),
            ] {
                let r = s
                    .send_on(
                        http2,
                        Some(&s.token),
                        "DELETE",
                        &path,
                        &[JSON],
                        body.to_string(),
                    )
                    .await;
                assert_eq!(
                    r.json(),
                    status(400, Some("BadRequest"), message, None),
                    "{path} {body}"
                );
            }
        }
    }
    let r = s.request("GET", &format!("{APPS}/keep"), &[], "").await;
    assert_eq!(r.status, 200, "still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precondition_failures_are_worded_as_kube_words_them() {
    let s = Server::start();
    let created = s.create_app("p1", json!({})).await;
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let delete_details = json!({"name": "p1", "group": "admission.example.com", "kind": "App"});
    let cases = [
        (
            json!({"uid": "not-it"}),
            format!(
                "Operation cannot be fulfilled on App.admission.example.com \"p1\": the UID in the precondition (not-it) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
            ),
        ),
        (
            json!({"resourceVersion": "1"}),
            format!(
                "Operation cannot be fulfilled on App.admission.example.com \"p1\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({rv}). The object might have been modified"
            ),
        ),
    ];
    for http2 in [false, true] {
        for (preconditions, message) in &cases {
            let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions});
            let r = s
                .send_on(
                    http2,
                    Some(&s.token),
                    "DELETE",
                    &format!("{APPS}/p1"),
                    &[JSON],
                    body.to_string(),
                )
                .await;
            assert_eq!(
                r.json(),
                status(409, Some("Conflict"), message, Some(delete_details.clone()))
            );
        }
    }
    // A PUT naming another uid fails the storage layer's precondition (before the
    // resourceVersion is compared), worded as the storage error it is.
    let mut put = created.clone();
    put["metadata"]["uid"] = json!("other-uid");
    put["metadata"]["resourceVersion"] = json!("1");
    let r = s
        .request("PUT", &format!("{APPS}/p1"), &[JSON], &put.to_string())
        .await;
    assert_eq!(
        r.json(),
        status(
            409,
            Some("Conflict"),
            &format!(
                "Operation cannot be fulfilled on apps.admission.example.com \"p1\": StorageError: invalid object, Code: 4, Key: /registry/admission.example.com/apps/default/p1, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: other-uid, UID in object meta: {uid}"
            ),
            Some(json!({"name": "p1", "group": "admission.example.com", "kind": "apps"}))
        )
    );
    // The object is still there.
    assert_eq!(
        s.request("GET", &format!("{APPS}/p1"), &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_failures_are_the_generic_422() {
    let s = Server::start();
    s.create_app("jp", json!({})).await;
    let generic = status(
        422,
        Some("Invalid"),
        "the server rejected our request due to an error in our request",
        Some(json!({})),
    );
    let patch = ("content-type", "application/json-patch+json");
    for suffix in ["", "/status", "/scale"] {
        for body in [
            r#"[{"op":"test","path":"/metadata/name","value":"other"}]"#,
            r#"[{"op":"remove","path":"/spec/nope"}]"#,
            r#"[{"op":"replace","path":"/nope/deeper","value":1}]"#,
            r#"[{"op":"move","from":"/nope","path":"/x"}]"#,
            r#"[{"op":"copy","from":"/nope","path":"/x"}]"#,
            r#"[{"op":"bogus","path":"/x"}]"#,
            r#"[{"op":"add"}]"#,
            r#"[null]"#,
        ] {
            for http2 in [false, true] {
                let r = s
                    .send_on(
                        http2,
                        Some(&s.token),
                        "PATCH",
                        &format!("{APPS}/jp{suffix}"),
                        &[patch],
                        body,
                    )
                    .await;
                assert_eq!(r.json(), generic, "{suffix} {body}");
            }
        }
    }
    // Copies add up to at most 3 MiB per patch (kube's JSONPatchMaxCopyBytes): 20 doublings of
    // a 100-byte value would be 100 MiB, each further one twice that. A patch within the limit
    // applies.
    let mut ops =
        vec![json!({"op": "add", "path": "/spec/scratch", "value": {"a": "x".repeat(100)}})];
    for i in 0..20 {
        ops.push(
            json!({"op": "copy", "from": "/spec/scratch", "path": format!("/spec/scratch/b{i}")}),
        );
    }
    for http2 in [false, true] {
        let r = s
            .send_on(
                http2,
                Some(&s.token),
                "PATCH",
                &format!("{APPS}/jp"),
                &[patch],
                json!(ops).to_string(),
            )
            .await;
        assert_eq!(r.json(), generic, "copies past the limit");
    }
    let r = s
        .request(
            "PATCH",
            &format!("{APPS}/jp"),
            &[patch],
            &json!(
                [
                    &ops[..4],
                    &[json!({"op": "remove", "path": "/spec/scratch"})]
                ]
                .concat()
            )
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", support::text(&r.body));
    // What is not a JSON patch at all, before the object is looked up.
    let r = s
        .request("PATCH", &format!("{APPS}/missing"), &[patch], "not json")
        .await;
    assert_eq!(
        r.json(),
        status(400, Some("BadRequest"), "invalid JSON patch", None)
    );
    let r = s
        .request("PATCH", &format!("{APPS}/jp"), &[patch], r#"{"op":"add"}"#)
        .await;
    assert_eq!(
        r.json(),
        status(
            400,
            Some("BadRequest"),
            "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
            None
        )
    );
    let merge = ("content-type", "application/merge-patch+json");
    let r = s
        .request("PATCH", &format!("{APPS}/jp"), &[merge], "null")
        .await;
    assert_eq!(
        r.json(),
        status(400, Some("BadRequest"), "Invalid JSON Patch", None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_decoding_errors_name_the_kind_and_version() {
    let s = Server::start();
    let mut colourful = app("c1", json!({}));
    colourful["spec"]["colour"] = json!("red");
    let strict = r#"App in version "v1" cannot be handled as a App: strict decoding error: unknown field "spec.colour""#;
    for http2 in [false, true] {
        let r = s
            .send_on(
                http2,
                Some(&s.token),
                "POST",
                &format!("{APPS}?fieldValidation=Strict"),
                &[JSON],
                colourful.to_string(),
            )
            .await;
        assert_eq!(r.json(), status(400, Some("BadRequest"), strict, None));
    }
    // The default warns and drops the field.
    let r = s.post_json(APPS, &colourful).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("warning"),
        Some(r#"299 - "unknown field \"spec.colour\"""#)
    );
    assert!(r.json()["spec"].get("colour").is_none());
    // PUT of the object and of its status decode the same way.
    let mut put = r.json();
    put["spec"]["colour"] = json!("blue");
    for suffix in ["", "/status"] {
        let r = s
            .request(
                "PUT",
                &format!("{APPS}/c1{suffix}?fieldValidation=Strict"),
                &[JSON],
                &put.to_string(),
            )
            .await;
        assert_eq!(
            r.json(),
            status(400, Some("BadRequest"), strict, None),
            "{suffix}"
        );
    }
    // Duplicate fields too.
    let duplicated = r#"{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{"name":"d1"},"spec":{"version":"v1.0.0","replicas":1,"replicas":2}}"#;
    let r = s
        .request(
            "POST",
            &format!("{APPS}?fieldValidation=Strict"),
            &[JSON],
            duplicated,
        )
        .await;
    assert_eq!(
        r.json()["message"],
        r#"App in version "v1" cannot be handled as a App: strict decoding error: duplicate field "spec.replicas""#
    );
    let r = s.request("POST", APPS, &[JSON], duplicated).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("warning"),
        Some(r#"299 - "duplicate field \"spec.replicas\"""#)
    );
    assert_eq!(r.json()["spec"]["replicas"], 2);
    // A merge patch that adds an unknown field: the patched object is what is invalid.
    let merge = ("content-type", "application/merge-patch+json");
    let r = s
        .request(
            "PATCH",
            &format!("{APPS}/c1?fieldValidation=Strict"),
            &[merge],
            r#"{"spec":{"colour":"green"}}"#,
        )
        .await;
    assert_eq!(r.status, 422);
    let body = r.json();
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with(r#" "" is invalid: patch: Invalid value: "{\"apiVersion\":\"admission.example.com/v1\","#), "{message}");
    assert!(
        message.ends_with(r#"": strict decoding error: unknown field "spec.colour""#),
        "{message}"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "patch");
    // kubectl reports the server's words.
    let manifest = "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: kc\nspec:\n  version: v1.0.0\n  colour: red\n";
    let out = s.kubectl_stdin(&["create", "--validate=strict", "-f", "-"], manifest);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(r#"App in version "v1" cannot be handled as a App: strict decoding error: unknown field "spec.colour""#),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_cannot_be_decoded_get_kube_s_words() {
    let s = Server::start();
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "application/json",
            "{not json",
            "the object provided is unrecognized (must be of type App): couldn't get version/kind; json parse error: invalid character 'n' looking for beginning of object key string ({not json)",
        ),
        (
            "application/json",
            "",
            "the object provided is unrecognized (must be of type App): couldn't get version/kind; json parse error: unexpected end of JSON input (<empty>)",
        ),
        (
            "application/json",
            "[1,2]",
            r#"the object provided is unrecognized (must be of type App): couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" } (5b312c325d)"#,
        ),
        (
            "application/json",
            r#"{"apiVersion":5,"kind":"App"}"#,
            r#"the object provided is unrecognized (must be of type App): couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .apiVersion of type string ({"apiVersion":5,"kind":"App"})"#,
        ),
        (
            "application/json",
            r#"{"apiVersion":"admission.example.com/v1","metadata":{"name":"x"}}"#,
            r#"the object provided is unrecognized (must be of type App): Object 'Kind' is missing in '{"apiVersion":"admission.example.com/v1","metadata":{"name":"x"}}' ({"apiVersion":"admission.examp ...)"#,
        ),
        (
            "application/json",
            r#"{"kind":"App","metadata":{"name":"x"}}"#,
            "the API version in the data () does not match the expected API version (admission.example.com/v1)",
        ),
        (
            "application/json",
            r#"{"apiVersion":"v1","kind":"App","metadata":{"name":"x"}}"#,
            "the API version in the data (v1) does not match the expected API version (admission.example.com/v1)",
        ),
        (
            "application/vnd.kubernetes.protobuf",
            "not protobuf",
            "the object provided is unrecognized (must be of type App): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (6e6f742070726f746f627566)",
        ),
    ];
    for (content_type, body, message) in cases {
        for http2 in [false, true] {
            let r = s
                .send_on(
                    http2,
                    Some(&s.token),
                    "POST",
                    APPS,
                    &[("content-type", content_type)],
                    body,
                )
                .await;
            assert_eq!(
                r.json(),
                status(400, Some("BadRequest"), message, None),
                "{body}"
            );
        }
    }
    let r = s
        .request(
            "POST",
            APPS,
            &[("content-type", "application/yaml")],
            "a: [b\n",
        )
        .await;
    assert_eq!(r.status, 400);
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("the object provided is unrecognized (must be of type App): error converting YAML to JSON: yaml: "),
        "{message}"
    );
    // DeleteOptions decode with the serializer's words, without the object framing.
    let r = s
        .request("DELETE", &format!("{APPS}/x"), &[JSON], "{bad")
        .await;
    assert_eq!(
        r.json(),
        status(
            400,
            Some("BadRequest"),
            "couldn't get version/kind; json parse error: invalid character 'b' looking for beginning of object key string",
            None
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_always_have_a_continue_field_as_crd_lists_do() {
    let s = Server::start();
    s.create_app("l1", json!({"tier": "web"})).await;
    let list = s.request("GET", APPS, &[], "").await.json();
    assert_eq!(list["metadata"]["continue"], "");
    let empty = s
        .request("GET", &format!("{G}/namespaces/none/apps"), &[], "")
        .await
        .json();
    assert_eq!(empty["metadata"]["continue"], "");
    let yaml = s
        .request("GET", APPS, &[("accept", "application/yaml")], "")
        .await;
    assert!(
        text(&yaml.body).contains("continue: ''"),
        "{}",
        text(&yaml.body)
    );
    // Typed list metadata omits it, as kube-apiserver's Table and metadata lists do.
    for accept in [
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    ] {
        let typed = s
            .request("GET", APPS, &[("accept", accept)], "")
            .await
            .json();
        assert!(
            typed["metadata"].get("continue").is_none(),
            "{accept}: {typed}"
        );
    }
    let deleted = s
        .request(
            "DELETE",
            &format!("{APPS}?labelSelector=tier%3Dweb"),
            &[],
            "",
        )
        .await
        .json();
    assert_eq!(deleted["metadata"]["continue"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_types_are_listed_as_kube_lists_them() {
    let s = Server::start();
    s.create_app("m1", json!({})).await;
    let not_acceptable = status(
        406,
        Some("NotAcceptable"),
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        None,
    );
    for (path, accept) in [
        (format!("{APPS}/m1"), "application/vnd.kubernetes.protobuf"),
        (APPS.to_string(), "text/html"),
        (format!("{APPS}?watch=true"), "application/yaml"),
        ("/apis".to_string(), "text/plain"),
    ] {
        let r = s.request("GET", &path, &[("accept", accept)], "").await;
        assert_eq!(r.json(), not_acceptable, "{path} {accept}");
    }
    let unsupported = status(
        415,
        Some("UnsupportedMediaType"),
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        None,
    );
    let r = s
        .request("POST", APPS, &[("content-type", "text/plain")], "x")
        .await;
    assert_eq!(r.json(), unsupported);
    let r = s
        .request(
            "PUT",
            &format!("{APPS}/m1"),
            &[("content-type", "text/plain")],
            "x",
        )
        .await;
    assert_eq!(r.json(), unsupported);
    let r = s
        .request(
            "DELETE",
            &format!("{APPS}/m1"),
            &[("content-type", "text/plain")],
            "x",
        )
        .await;
    assert_eq!(r.json(), unsupported);
    let fixture = support::fixture("crd-oracle/06-patch-strategic-merge.json");
    let r = s
        .request(
            "PATCH",
            &format!("{APPS}/m1"),
            &[("content-type", "application/strategic-merge-patch+json")],
            r#"{"spec":{"replicas":2}}"#,
        )
        .await;
    assert_eq!(r.json(), fixture["response"]["body"]);
}
