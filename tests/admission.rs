//! The admission webhook backend over HTTPS: the captured AdmissionReviews replayed, the
//! reservation policy driven by NamespaceReservations made with kubectl, and the Events of
//! denials written to a kube-apiserver stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/peer.rs"]
mod peer;
mod support;

use base64::Engine;
use peer::{ADMIN, GROUP, cluster, identity};
use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, fixture};

const VALIDATING: &str = "/apis/admission.example.com/v1/validatingadmissionreviews";
const MUTATING: &str = "/apis/admission.example.com/v1/mutatingadmissionreviews";

/// Posts a review as the admin; the status and the answer.
async fn post(s: &Server, path: &str, review: &Value) -> (u16, Value) {
    let r = s.post_json(path, review).await;
    (r.status, r.json())
}

fn reservation(name: &str, users: &[&str], groups: &[&str]) -> String {
    format!(
        "apiVersion: admission.example.com/v1\nkind: NamespaceReservation\nmetadata:\n  name: {name}\nspec:\n  owners:\n    users: {users:?}\n    groups: {groups:?}\n"
    )
}

/// The review of `namespace`'s creation by `user`, built from the captured v1 one.
fn namespace_review(
    version: &str,
    namespace: &str,
    user: &str,
    groups: &[&str],
    dry_run: bool,
) -> Value {
    let mut r = fixture("admissionreview-v1-namespace-create.json")["request"]["body"].clone();
    r["apiVersion"] = json!(version);
    r["request"]["uid"] = json!(format!("uid-{namespace}-{user}"));
    r["request"]["name"] = json!(namespace);
    r["request"]["namespace"] = json!(namespace);
    r["request"]["object"]["metadata"]["name"] = json!(namespace);
    r["request"]["object"]["metadata"]["labels"] =
        json!({"kubernetes.io/metadata.name": namespace});
    r["request"]["userInfo"] = json!({"username": user, "groups": groups});
    r["request"]["dryRun"] = json!(dry_run);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_reviews_are_answered_in_their_version() {
    let s = Server::start();
    // Nothing reserved: every captured review is allowed, answered exactly as captured.
    for name in [
        "admissionreview-v1-namespace-create.json",
        "admissionreview-v1beta1-namespace-create.json",
        "admissionreview-v1-dryrun.json",
    ] {
        let f = fixture(name);
        let (code, answer) = post(&s, VALIDATING, &f["request"]["body"]).await;
        assert_eq!(code, 200, "{name}");
        assert_eq!(
            answer, f["response_sent_by_extension_server"]["body"],
            "{name}"
        );
        let (code, answer) = post(&s, MUTATING, &f["request"]["body"]).await;
        assert_eq!(code, 200, "{name}");
        assert_eq!(
            answer, f["response_sent_by_extension_server"]["body"],
            "{name}: nothing to patch"
        );
    }
    let dry = fixture("admissionreview-v1-dryrun.json");
    let (_, answer) = post(&s, VALIDATING, &dry["v1beta1_variant_body"]).await;
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(
        answer["response"]["uid"],
        dry["v1beta1_variant_body"]["request"]["uid"]
    );

    // Reserved for someone else: denied in both versions, dry run or not, as captured.
    s.create(&reservation("reserved-test", &["alice"], &["team-a"]));
    s.create(&reservation("reserved-test2", &["alice"], &[]));
    s.create(&reservation("denied-test", &["alice"], &[]));
    let denied = fixture("webhook-denied-status.json");
    for body in [
        &fixture("admissionreview-v1-namespace-create.json")["request"]["body"],
        &fixture("admissionreview-v1beta1-namespace-create.json")["request"]["body"],
        &dry["request"]["body"],
        &denied["admission_request_v1"],
    ] {
        let (code, answer) = post(&s, VALIDATING, body).await;
        assert_eq!(code, 200);
        assert_eq!(answer["apiVersion"], body["apiVersion"]);
        assert_eq!(answer["kind"], "AdmissionReview");
        let response = &answer["response"];
        assert_eq!(response["uid"], body["request"]["uid"]);
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 403);
        assert_eq!(response["status"]["reason"], "Forbidden");
        let ns = body["request"]["name"].as_str().unwrap();
        let owners = if ns == "reserved-test" {
            "users alice and groups team-a"
        } else {
            "users alice"
        };
        assert_eq!(
            response["status"]["message"],
            format!(
                "namespace name '{ns}' is reserved by NamespaceReservation \"{ns}\" for {owners}"
            )
        );
        assert!(
            response.get("patch").is_none(),
            "a validating review never patches"
        );
    }
    // The captured denial's shape (for denied-test) is exactly what was sent then, up to the
    // owners now named.
    let (_, answer) = post(&s, VALIDATING, &denied["admission_request_v1"]).await;
    let mut expected = denied["extension_server_response_v1"].clone();
    expected["response"]["status"]["message"] = json!(
        "namespace name 'denied-test' is reserved by NamespaceReservation \"denied-test\" for users alice"
    );
    assert_eq!(answer, expected);

    // The mutating capture (kubelab-admin, in system:masters): an owner's namespace is labelled.
    s.create(&reservation("mutated-test", &[], &["system:masters"]));
    let m = fixture("admissionreview-v1-mutating-jsonpatch.json");
    let (code, answer) = post(&s, MUTATING, &m["request"]["body"]).await;
    assert_eq!(code, 200);
    let response = &answer["response"];
    assert_eq!(response["uid"], m["request"]["body"]["request"]["uid"]);
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([{"op": "add", "path": "/metadata/labels/admission.example.com~1reservation", "value": "mutated-test"}])
    );
    // The patch applies to the object under review, as kube-apiserver applies it.
    let mut object = m["request"]["body"]["request"]["object"].clone();
    json_patch::patch(
        &mut object,
        &serde_json::from_value::<json_patch::Patch>(patch).unwrap(),
    )
    .unwrap();
    assert_eq!(
        object["metadata"]["labels"]["admission.example.com/reservation"],
        "mutated-test"
    );
    assert_eq!(
        response["warnings"],
        json!([
            "admission.example.com: label admission.example.com/reservation=mutated-test was added"
        ])
    );
    assert_eq!(
        response["auditAnnotations"],
        json!({"reservation": "mutated-test"})
    );
    // And the owner passes validation.
    let (_, answer) = post(&s, VALIDATING, &m["request"]["body"]).await;
    assert_eq!(answer["response"]["allowed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_resources_are_create_only_and_check_their_input() {
    let s = Server::start();
    let resources = s.kubectl_ok(&[
        "api-resources",
        "--api-group",
        "admission.example.com",
        "-o",
        "wide",
    ]);
    for name in ["validatingadmissionreviews", "mutatingadmissionreviews"] {
        let line = resources
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{resources}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols[1..5],
            [
                "admission.example.com/v1",
                "false",
                "AdmissionReview",
                "create"
            ],
            "{line}"
        );
    }

    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let r = s
            .request(
                method,
                VALIDATING,
                &[("content-type", "application/json")],
                "{}",
            )
            .await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.json()["reason"], "MethodNotAllowed");
    }
    let r = s
        .request("GET", &format!("{VALIDATING}/some-name"), &[], "")
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .request(
            "POST",
            "/apis/admission.example.com/v1/namespaces/x/validatingadmissionreviews",
            &[],
            "{}",
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .request(
            "POST",
            VALIDATING,
            &[("content-type", "application/vnd.kubernetes.protobuf")],
            "{}",
        )
        .await;
    // A media type the server's codecs take, but the body is no protobuf message.
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "the object provided is unrecognized (must be of type AdmissionReview): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({})"
    );
    let r = s
        .request("POST", VALIDATING, &[("content-type", "text/plain")], "{}")
        .await;
    assert_eq!(r.status, 415);

    let good = namespace_review("admission.k8s.io/v1", "x", "bob", &[], false);
    let mut no_uid = good.clone();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut wrong_version = good.clone();
    wrong_version["apiVersion"] = json!("admission.k8s.io/v2");
    for (path, body) in [
        (VALIDATING, "{not json".to_string()),
        (MUTATING, "[]".to_string()),
        (VALIDATING, no_uid.to_string()),
        (MUTATING, wrong_version.to_string()),
        (
            VALIDATING,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).to_string(),
        ),
    ] {
        let r = s
            .request("POST", path, &[("content-type", "application/json")], &body)
            .await;
        assert_eq!(r.status, 400, "{body}");
        let status = r.json();
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str()),
            (Some("Status"), Some("BadRequest")),
            "{body}"
        );
    }

    // Requests the policy does not judge are allowed untouched.
    s.create(&reservation("kept", &["alice"], &[]));
    let mut pod = namespace_review("admission.k8s.io/v1", "kept", "bob", &[], false);
    pod["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    pod["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
    let mut delete = namespace_review("admission.k8s.io/v1", "kept", "bob", &[], false);
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["object"] = Value::Null;
    for review in [pod, delete] {
        for path in [VALIDATING, MUTATING] {
            let (code, answer) = post(&s, path, &review).await;
            assert_eq!(code, 200);
            assert_eq!(
                answer,
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": review["request"]["uid"], "allowed": true}})
            );
        }
    }
}

/// A reservation made with kubectl changes the next decision as soon as its watch event is out,
/// and deleting it (or changing its owners) changes it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_follow_reservations_made_with_kubectl() {
    let s = Server::start();
    let bob = namespace_review("admission.k8s.io/v1", "payments", "bob", &["dev"], false);
    assert_eq!(
        post(&s, VALIDATING, &bob).await.1["response"]["allowed"],
        true
    );

    let mut watch = s
        .watch(
            "/apis/admission.example.com/v1/namespacereservations?watch=true",
            &[],
            false,
        )
        .await;
    tokio::task::block_in_place(|| s.create(&reservation("payments", &["alice"], &[])));
    let added = watch.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(added["type"], "ADDED");
    assert_eq!(
        post(&s, VALIDATING, &bob).await.1["response"]["allowed"],
        false
    );

    tokio::task::block_in_place(|| {
        s.kubectl_ok(&[
            "patch",
            "namespacereservation",
            "payments",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"owners":{"groups":["dev"]}}}"#,
        ])
    });
    assert_eq!(
        watch.next(Duration::from_secs(10)).await.unwrap()["type"],
        "MODIFIED"
    );
    assert_eq!(
        post(&s, VALIDATING, &bob).await.1["response"]["allowed"],
        true,
        "bob is in dev"
    );
    let carol = namespace_review("admission.k8s.io/v1beta1", "payments", "carol", &[], false);
    assert_eq!(
        post(&s, VALIDATING, &carol).await.1["response"]["allowed"],
        false
    );

    tokio::task::block_in_place(|| s.kubectl_ok(&["delete", "namespacereservation", "payments"]));
    assert_eq!(
        watch.next(Duration::from_secs(10)).await.unwrap()["type"],
        "DELETED"
    );
    assert_eq!(
        post(&s, VALIDATING, &carol).await.1["response"]["allowed"],
        true
    );

    // With the reservation gone, a namespace claiming it loses the label.
    let mut claim = namespace_review("admission.k8s.io/v1", "payments", "carol", &[], false);
    claim["request"]["object"]["metadata"]["labels"]["admission.example.com/reservation"] =
        json!("payments");
    let answer = post(&s, MUTATING, &claim).await.1;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&patch).unwrap(),
        json!([{"op": "remove", "path": "/metadata/labels/admission.example.com~1reservation"}])
    );

    // The policy survives a restart: it is rebuilt from the store.
    tokio::task::block_in_place(|| s.create(&reservation("ledger", &["alice"], &[])));
    let mut s = s;
    s.stop(false);
    let s = Server::start_with(s.dir.clone(), &[]);
    let review = namespace_review("admission.k8s.io/v1", "ledger", "bob", &[], false);
    assert_eq!(
        post(&s, VALIDATING, &review).await.1["response"]["allowed"],
        false
    );
}

/// Denials become a Warning Event on the reservation, counted, through kube-apiserver; dry runs
/// and allowed requests record nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_are_reported_as_events() {
    let c = cluster(&[]).await;
    let admin = identity("kubelab-admin", ADMIN);
    let json_type = [admin.clone(), vec![("content-type", "application/json")]].concat();
    let r = c
        .proxied("POST", &format!("{GROUP}/namespacereservations"), &json_type, &json!({
            "apiVersion": "admission.example.com/v1", "kind": "NamespaceReservation",
            "metadata": {"name": "payments"}, "spec": {"owners": {"users": ["alice"], "groups": ["finance"]}}
        }).to_string())
        .await;
    assert_eq!(r.status, 201, "{}", support::text(&r.body));
    let created = r.json();

    // kube-apiserver calls the webhook as system:apiserver through the front proxy.
    let apiserver = [
        vec![
            ("X-Remote-User", "system:apiserver"),
            ("X-Remote-Group", "system:authenticated"),
            ("X-Remote-Group", "system:masters"),
        ],
        vec![("content-type", "application/json")],
    ]
    .concat();
    let post = |review: Value| {
        let c = &c;
        let apiserver = &apiserver;
        async move {
            let r = c
                .proxied("POST", VALIDATING, apiserver, &review.to_string())
                .await;
            assert_eq!(r.status, 200, "{}", support::text(&r.body));
            r.json()
        }
    };
    // Allowed and dry-run reviews record nothing.
    post(namespace_review(
        "admission.k8s.io/v1",
        "payments",
        "alice",
        &[],
        false,
    ))
    .await;
    let dry = post(namespace_review(
        "admission.k8s.io/v1",
        "payments",
        "bob",
        &[],
        true,
    ))
    .await;
    assert_eq!(dry["response"]["allowed"], false);
    let denied = post(namespace_review(
        "admission.k8s.io/v1",
        "payments",
        "bob",
        &["dev"],
        false,
    ))
    .await;
    assert_eq!(denied["response"]["allowed"], false);

    let events = || c.peer.state.events.lock().clone();
    let mut waited = 0;
    while events().is_empty() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let first = events();
    assert_eq!(first.len(), 1, "{first:#?}");
    let (method, path, event) = &first[0];
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/api/v1/namespaces/default/events")
    );
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "ReservationDenied");
    assert_eq!(event["count"], 1);
    assert_eq!(
        event["involvedObject"],
        json!({
            "apiVersion": "admission.example.com/v1", "kind": "NamespaceReservation", "name": "payments",
            "uid": created["metadata"]["uid"], "resourceVersion": created["metadata"]["resourceVersion"],
        })
    );
    assert_eq!(
        event["message"],
        "User \"bob\" was denied creating namespace \"payments\": reserved for users alice and groups finance"
    );
    assert_eq!(event["metadata"]["namespace"], "default");
    assert!(
        event["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("payments.")
    );
    assert_eq!(event["source"]["component"], "admission-apiserver");
    assert_eq!(event["firstTimestamp"], event["lastTimestamp"]);

    // Repeats are counted on the same Event, not written one by one.
    for _ in 0..4 {
        post(namespace_review(
            "admission.k8s.io/v1beta1",
            "payments",
            "bob",
            &[],
            false,
        ))
        .await;
    }
    let name = event["metadata"]["name"].as_str().unwrap().to_string();
    let mut counted = false;
    for _ in 0..60 {
        let all = events();
        if let Some((m, p, patch)) = all.last()
            && m == "PATCH"
            && patch["count"] == 5
        {
            assert_eq!(p, &format!("/api/v1/namespaces/default/events/{name}"));
            assert!(patch["lastTimestamp"].is_string());
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = events();
    assert!(counted, "{all:#?}");
    assert!(all.len() <= 3, "repeats are coalesced: {all:#?}");
    assert!(all.iter().all(|(_, _, e)| {
        e.get("message")
            .is_none_or(|m| m.as_str().unwrap().contains("bob"))
    }));
}
