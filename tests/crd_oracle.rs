//! Replays what kube-apiserver 1.36 answered for our two kinds served as CRDs
//! (`tests/fixtures/kube-1.36/crd-oracle/`) against the real binary with the team's replay tool
//! (`tests/tools/replay-crd-oracle.py`, needs python3 and PyYAML).
//!
//! One difference is by design: the group's APIResourceList (fixture 14) also lists the two
//! AdmissionReview resources DESIGN.md adds, which a CRD-served group cannot have. The test pins
//! that this is the only difference and that, without those two entries, the list is the
//! oracle's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Server, fixture, text};

const DISCOVERY: &str = "14-discovery-resourcelist";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_oracle_replay_differs_only_by_the_admission_review_resources() {
    let s = Server::start();
    // Fixture 11 shows AGE 0s for an object created a moment before: start the replay at the
    // top of a second, so creation and listing do not fall either side of a second boundary.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(
        1000 - into_second,
    )))
    .await;
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
    assert_eq!(differing, [DISCOVERY], "\n{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("14 compared, 1 differ"),
        "\n{stdout}"
    );

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
