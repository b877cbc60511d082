//! Replays what kube-apiserver 1.36 answered for our two kinds served as CRDs
//! (`tests/fixtures/kube-1.36/crd-oracle/`) against the real binary with the team's replay tool
//! (`tests/tools/replay-crd-oracle.py`, needs python3 and PyYAML).
//!
//! Two differences are by design, and the test pins that they are the only ones and exactly
//! what they are:
//! - the group's APIResourceList (fixture 14) also lists the two AdmissionReview resources
//!   DESIGN.md adds, which a CRD-served group cannot have; without them the list is the oracle's;
//! - the seed's invalid App (fixture 02) also gets kube-apiserver's placeholder for the CEL rules
//!   it could not run (`<nil>: Invalid value: null: some validation rules were not checked ...`):
//!   the App schema now carries `x-kubernetes-validations`, which the CRD of that capture did
//!   not, and apiextensions-apiserver adds that cause whenever a schema with rules meets a
//!   blocking failure (`hasBlockingErr` in `pkg/registry/customresource/strategy.go`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Server, fixture, text};

const DISCOVERY: &str = "14-discovery-resourcelist";
const SEED: &str = "02-create-seed-invalid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_oracle_replay_differs_only_by_the_admission_review_resources_and_the_rules_placeholder()
 {
    let s = Server::start();
    let tool =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/replay-crd-oracle.py");
    let out = std::process::Command::new("python3")
        .arg(tool)
        .arg(&s.kubeconfig)
        .arg("--show")
        .output()
        .expect("python3 runs (install python3 and PyYAML: see .ci/run)");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "replay failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let differing: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("DIFF "))
        .collect();
    assert_eq!(differing, [SEED, DISCOVERY], "\n{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("14 compared, 2 differ"),
        "\n{stdout}"
    );

    // 02: the oracle's causes, in its message's order, then the placeholder, last, as
    // kube-apiserver appends it.
    let oracle = fixture(&format!("crd-oracle/{SEED}.json"));
    let mut body = oracle["request"]["body"].clone();
    body["metadata"]["name"] = json!("bad2");
    let ours = s
        .post_json(
            "/apis/admission.example.com/v1/namespaces/difftest/apps",
            &body,
        )
        .await;
    assert_eq!(ours.status, 422);
    let ours = ours.json();
    let placeholder = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
    let mut want = oracle["response"]["body"].clone();
    want["details"]["name"] = json!("bad2");
    want["details"]["causes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: null: {placeholder}"), "field": "<nil>"}));
    let message = want["message"]
        .as_str()
        .unwrap()
        .replace("\"bad\"", "\"bad2\"");
    want["message"] = json!(format!(
        "{}, <nil>: Invalid value: null: {placeholder}]",
        message.strip_suffix(']').unwrap()
    ));
    assert_eq!(ours, want);

    let oracle = fixture(&format!("crd-oracle/{DISCOVERY}.json"));
    let canon = |list: &Value| -> Vec<Value> {
        let mut items: Vec<Value> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("storageVersionHash");
                r
            })
            .collect();
        items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        items
    };
    let ours = s
        .request("GET", "/apis/admission.example.com/v1", &[], "")
        .await
        .json();
    let (reviews, rest): (Vec<Value>, Vec<Value>) = canon(&ours)
        .into_iter()
        .partition(|r| r["kind"] == "AdmissionReview");
    assert_eq!(rest, canon(&oracle["response"]["body"]));
    let mut without = ours.clone();
    without["resources"] = json!(rest);
    let mut expected = oracle["response"]["body"].clone();
    expected["resources"] = json!(canon(&oracle["response"]["body"]));
    assert_eq!(without, expected);
    assert_eq!(
        reviews,
        [
            json!({"name": "mutatingadmissionreviews", "singularName": "mutatingadmissionreview", "namespaced": false, "kind": "AdmissionReview", "verbs": ["create"]}),
            json!({"name": "validatingadmissionreviews", "singularName": "validatingadmissionreview", "namespaced": false, "kind": "AdmissionReview", "verbs": ["create"]}),
        ]
    );
}
