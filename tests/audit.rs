//! The audit log of the real binary in delegated mode: `audit.k8s.io/v1` Event lines per stage
//! (a watch writes RequestReceived, ResponseStarted and ResponseComplete), levels and omitted
//! stages from the policy, the aggregator's `Audit-Id`, source IPs from `X-Forwarded-For`, the
//! user, response statuses, and the authorization decision and reason annotations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/peer.rs"]
mod peer;
mod support;

use peer::{ADMIN, Cluster, GROUP, JANE, cluster, identity};
use serde_json::{Value, json};
use std::time::Duration;

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/readyz*", "/healthz*", "/livez*", "/metrics"]
- level: RequestResponse
  verbs: ["create"]
  resources:
  - group: admission.example.com
    resources: ["apps"]
- level: Metadata
  userGroups: ["dev"]
  verbs: ["get"]
  omitStages: ["RequestReceived"]
- level: Metadata
"#;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The events of one audit ID, waiting until `stages` of them are written.
async fn events_of(path: &std::path::Path, id: &str, stages: usize) -> Vec<Value> {
    for _ in 0..400 {
        let found: Vec<Value> = lines(path)
            .into_iter()
            .filter(|e| e["auditID"] == id)
            .collect();
        if found.len() >= stages {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {stages} events for {id}: {:#?}", lines(path));
}

fn stages(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect()
}

async fn audited_cluster() -> (Cluster, std::path::PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let log = dir.join("logs/audit.log");
    let c = cluster(&[
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        log.to_str().unwrap(),
    ])
    .await;
    (c, log, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_audited_as_kube_apiserver_audits_them() {
    let (c, log, _dir) = audited_cluster().await;
    let apps = format!("{GROUP}/namespaces/ext-demo/apps");

    // An admin create through the aggregator: its Audit-Id, X-Forwarded-For, RequestResponse.
    let body = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
        "metadata": {"name": "demo"}, "spec": {"version": "v1.0.0", "replicas": 1}});
    let headers = [
        identity("kubelab-admin", ADMIN),
        vec![
            ("content-type", "application/json"),
            ("audit-id", "0d4cd1ab-aaaa-4bbb-8ccc-000000000001"),
            ("x-forwarded-for", "192.0.2.10"),
            ("user-agent", "kubectl/v1.36.0 (linux/amd64) kubernetes/abc"),
        ],
    ]
    .concat();
    let r = c.proxied("POST", &apps, &headers, &body.to_string()).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("audit-id"),
        Some("0d4cd1ab-aaaa-4bbb-8ccc-000000000001")
    );
    let events = events_of(&log, "0d4cd1ab-aaaa-4bbb-8ccc-000000000001", 2).await;
    assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
    let done = &events[1];
    assert_eq!(done["kind"], "Event");
    assert_eq!(done["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(done["level"], "RequestResponse");
    assert_eq!(done["verb"], "create");
    assert_eq!(done["requestURI"], apps);
    assert_eq!(
        done["user"],
        json!({"username": "kubelab-admin", "groups": ["system:masters", "system:authenticated"]})
    );
    assert_eq!(done["sourceIPs"], json!(["192.0.2.10", "127.0.0.1"]));
    assert_eq!(
        done["userAgent"],
        "kubectl/v1.36.0 (linux/amd64) kubernetes/abc"
    );
    assert_eq!(
        done["objectRef"],
        json!({"resource": "apps", "namespace": "ext-demo", "apiGroup": "admission.example.com", "apiVersion": "v1"})
    );
    assert_eq!(done["responseStatus"], json!({"metadata": {}, "code": 201}));
    assert_eq!(done["requestObject"], body);
    assert_eq!(done["responseObject"]["metadata"]["name"], "demo");
    assert_eq!(
        done["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(
        done["requestReceivedTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        events[0]["stageTimestamp"],
        events[0]["requestReceivedTimestamp"]
    );
    assert!(events[0].get("responseStatus").is_none());

    // jane's get: Metadata without RequestReceived (omitted), the SubjectAccessReview's reason.
    let headers = [identity("jane", JANE), vec![("audit-id", "jane-get")]].concat();
    assert_eq!(
        c.proxied("GET", &format!("{apps}/demo"), &headers, "")
            .await
            .status,
        200
    );
    let events = events_of(&log, "jane-get", 1).await;
    assert_eq!(stages(&events), ["ResponseComplete"]);
    assert_eq!(events[0]["level"], "Metadata");
    assert!(events[0].get("requestObject").is_none() && events[0].get("responseObject").is_none());
    assert_eq!(
        events[0]["annotations"],
        json!({"authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"admission-example-apps-reader-dev\""})
    );
    assert_eq!(
        events[0]["objectRef"],
        json!({"resource": "apps", "namespace": "ext-demo", "name": "demo", "apiGroup": "admission.example.com", "apiVersion": "v1"})
    );

    // A forbidden delete: decision forbid, the 403 Status in responseStatus.
    let headers = [identity("jane", JANE), vec![("audit-id", "jane-delete")]].concat();
    let r = c
        .proxied("DELETE", &format!("{apps}/demo"), &headers, "")
        .await;
    assert_eq!(r.status, 403);
    let events = events_of(&log, "jane-delete", 2).await;
    let done = &events[1];
    assert_eq!(
        done["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(done["responseStatus"]["code"], 403);
    assert_eq!(done["responseStatus"]["reason"], "Forbidden");
    assert_eq!(done["responseStatus"]["status"], "Failure");
    assert_eq!(done["responseStatus"]["message"], r.json()["message"]);

    // A rejected credential: one ResponseStarted event with the 401, no user.
    let r = c
        .server
        .send(
            None,
            Some("garbage"),
            "GET",
            &format!("{apps}?x=1"),
            &[("audit-id", "bad-token")],
            "",
        )
        .await;
    assert_eq!(r.status, 401);
    let events = events_of(&log, "bad-token", 1).await;
    assert_eq!(stages(&events), ["ResponseStarted"]);
    assert_eq!(events[0]["user"], json!({}));
    assert_eq!(
        events[0]["responseStatus"],
        json!({"metadata": {}, "code": 401})
    );

    // Health probes are not audited (level None); requests without Audit-Id get a new one.
    let r = c.server.send(None, None, "GET", "/readyz", &[], "").await;
    assert_eq!(r.status, 200);
    let id = r.header("audit-id").unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(lines(&log).iter().all(|e| e["auditID"] != id.as_str()));
    let text = support::text(
        &c.proxied("GET", "/metrics", &identity("kubelab-admin", ADMIN), "")
            .await
            .body,
    );
    assert!(text.contains("apiserver_audit_event_total "), "{text}");
    assert!(
        text.contains("apiserver_audit_level_total{level=\"None\"}"),
        "{text}"
    );
    assert!(
        text.contains("apiserver_audit_error_total{plugin=\"buffered\"} 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_is_audited_when_it_starts_and_when_it_ends() {
    let (c, log, _dir) = audited_cluster().await;
    c.create_app("demo", "ext-demo").await;
    for (http2, id) in [(false, "watch-h1"), (true, "watch-h2")] {
        let (cert, key) = &c.proxy_cert;
        let headers = [identity("jane", JANE), vec![("audit-id", id)]].concat();
        let path = format!(
            "{GROUP}/namespaces/ext-demo/apps?watch=true&labelSelector=tier%3Dweb&timeoutSeconds=1"
        );
        let mut w = c
            .server
            .send_stream(http2, Some((cert, key)), &path, &headers)
            .await;
        assert_eq!(w.status, 200);
        // Written once the response started, before the stream ends.
        let started = events_of(&log, id, 2).await;
        assert_eq!(stages(&started), ["RequestReceived", "ResponseStarted"]);
        assert_eq!(
            started[1]["responseStatus"],
            json!({"metadata": {}, "code": 200})
        );
        assert_eq!(started[1]["verb"], "watch");
        assert!(w.ends_within(Duration::from_secs(20)).await);
        let all = events_of(&log, id, 3).await;
        assert_eq!(
            stages(&all),
            ["RequestReceived", "ResponseStarted", "ResponseComplete"]
        );
        assert_eq!(
            all[2]["responseStatus"],
            json!({"metadata": {}, "code": 200})
        );
    }
}

#[test]
fn a_bad_policy_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::binary())
        .args(["serve", "--secure-port", "0", "--data-dir"])
        .arg(dir.path())
        .arg("--audit-policy-file")
        .arg(&policy)
        .args(["--audit-log-path", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = support::text(&out.stderr);
    assert!(err.contains("loaded illegal policy with 0 rules"), "{err}");
}
