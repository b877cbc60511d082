//! What kube-apiserver 1.36 answered for App served as a CRD with two versions (v1 and the
//! deprecated v1beta1), a defaulted `spec.replicas` and the immutable-selector CEL rules
//! (`tests/fixtures/kube-1.36/crd-oracle-versions-cel/`), replayed against the real binary over
//! HTTP/1.1 and HTTP/2, and the kubectl captures replayed with kubectl. uids, timestamps and
//! resourceVersions are masked; nothing else is, except where a test says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{Response, Server, fixture, fixtures, text};

const DIR: &str = "crd-oracle-versions-cel";

fn oracle(name: &str) -> Value {
    fixture(&format!("{DIR}/{name}.json"))
}

/// Masks what differs between two servers by nature (uids, timestamps, resourceVersions) and
/// orders managedFields entries without their (masked) times.
fn mask(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "uid" | "creationTimestamp" | "resourceVersion" | "time" if x.is_string() => {
                        *x = json!("<masked>")
                    }
                    _ => mask(x),
                }
            }
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                entries.sort_by_key(|e| {
                    ["operation", "manager", "apiVersion", "subresource"]
                        .map(|k| e[k].as_str().unwrap_or("").to_string())
                });
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

fn masked(mut v: Value) -> Value {
    mask(&mut v);
    v
}

/// The request of a fixture, sent as captured (a JSON body re-serialized, a YAML body as text),
/// to `path` (the fixture's unless a resourceVersion in it had to be ours).
async fn send(s: &Server, http2: bool, fx: &Value, path: &str, body: &Value) -> Response {
    let rq = &fx["request"];
    let body = match body {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    // The capture's client, hence its field manager.
    let mut headers = vec![
        ("accept", rq["accept"].as_str().unwrap()),
        ("user-agent", "Python-urllib/3.11"),
    ];
    if let Some(ct) = rq["contentType"].as_str() {
        headers.push(("content-type", ct));
    }
    s.request_over(http2, rq["method"].as_str().unwrap(), path, &headers, &body)
        .await
}

/// The `Warning` headers of a response, in order.
fn warnings(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Code and the fixture's headers (Content-Type, and Warning exactly when the fixture has one)
/// are the fixture's; returns the body.
fn assert_head(name: &str, got: &Response, fx: &Value) -> Value {
    let want = &fx["response"];
    assert_eq!(got.status, want["code"], "{name}: {}", text(&got.body));
    assert_eq!(
        got.header("content-type"),
        want["headers"]["Content-Type"].as_str(),
        "{name}"
    );
    let want_warnings: Vec<String> = want["headers"]["Warning"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    assert_eq!(warnings(&got.headers), want_warnings, "{name}");
    got.json()
}

/// Replays the HTTP fixtures in order. Returns the server, in the state the capture left its
/// namespace, for the kubectl captures that follow.
async fn replay(http2: bool) -> Server {
    let s = Server::start();
    let mut selector_rv = String::new();
    let mut cel2_rv = String::new();
    for name in [
        "01-post-v1-cel1-replicas-defaulted",
        "02-get-v1-cel1",
        "03-patch-merge-cel1-set-selector",
        "04-patch-merge-cel1-change-selector-immutable",
        "05-patch-merge-cel1-remove-selector",
        "06-put-cel1-changed-selector",
        "07-apply-cel1-changed-selector",
        "08-post-v1beta1-cel2-deprecated",
        "09-get-cel2-via-v1",
        "10-get-cel2-via-v1beta1",
        "11-list-v1",
        "12-list-v1beta1",
        "13-get-apigroup",
    ] {
        let fx = oracle(name);
        let path = fx["request"]["path"].as_str().unwrap();
        let mut body = fx["request"]["body"].clone();
        if name.starts_with("06-") {
            // The resourceVersion current at this point, as the capture sent kube's.
            body["metadata"]["resourceVersion"] = json!(selector_rv);
        }
        let got = send(&s, http2, &fx, path, &body).await;
        let got = assert_head(name, &got, &fx);
        assert_eq!(
            masked(got.clone()),
            masked(fx["response"]["body"].clone()),
            "{name}"
        );
        let rv = got["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if name.starts_with("03-") {
            selector_rv = rv.to_string();
        }
        if name.starts_with("08-") {
            cel2_rv = rv.to_string();
        }
    }

    // 14: kube served the App CRD alone; this server also serves NamespaceReservation in
    // v1beta1, with the same entries as in v1. Without them the list is the oracle's.
    let fx = oracle("14-get-v1beta1-apiresourcelist");
    let got = send(
        &s,
        http2,
        &fx,
        "/apis/admission.example.com/v1beta1",
        &Value::Null,
    )
    .await;
    let mut list = assert_head("14", &got, &fx);
    let (apps, reservations): (Vec<Value>, Vec<Value>) = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .partition(|r| r["kind"] != "NamespaceReservation");
    list["resources"] = json!(apps);
    assert_eq!(list, fx["response"]["body"], "14");
    let v1 = s
        .request_over(http2, "GET", "/apis/admission.example.com/v1", &[], "")
        .await
        .json();
    let in_v1: Vec<Value> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "NamespaceReservation")
        .cloned()
        .collect();
    assert_eq!(reservations, in_v1);
    assert_eq!(
        reservations.len(),
        2,
        "namespacereservations and its status"
    );

    // 15: the same, in aggregated discovery; the AdmissionReview endpoints are in v1 only.
    let fx = oracle("15-get-aggregated-discovery-group-entry");
    let got = send(&s, http2, &fx, "/apis", &Value::Null).await;
    let body = assert_head("15", &got, &fx);
    let mut item = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "admission.example.com")
        .unwrap()
        .clone();
    item["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("creationTimestamp");
    let mut others = Vec::new();
    for v in item["versions"].as_array_mut().unwrap() {
        let version = v["version"].as_str().unwrap().to_string();
        let resources = v["resources"].as_array_mut().unwrap();
        others.push((
            version,
            resources
                .iter()
                .filter(|r| r["resource"] != "apps")
                .map(|r| r["resource"].as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
        ));
        resources.retain(|r| r["resource"] == "apps");
    }
    assert_eq!(item, fx["response"]["body"]["items"][0], "15");
    assert_eq!(
        others,
        [
            (
                "v1".to_string(),
                vec![
                    "namespacereservations".to_string(),
                    "validatingadmissionreviews".into(),
                    "mutatingadmissionreviews".into()
                ]
            ),
            (
                "v1beta1".to_string(),
                vec!["namespacereservations".to_string()]
            ),
        ]
    );

    // 16 + 17: a v1beta1 watch from cel2's creation sees the v1 patch, in v1beta1.
    let watch_fx = oracle("16-watch-v1beta1-from-cel2-rv");
    let patch_fx = oracle("17-patch-merge-cel2-via-v1-during-watch");
    let path = watch_fx["request"]["path"].as_str().unwrap().replace(
        "resourceVersion=150400",
        &format!("resourceVersion={cel2_rv}"),
    );
    let mut watch = s
        .watch(&path, &[("accept", "application/json")], http2)
        .await;
    assert_eq!(watch.status, 200);
    assert_eq!(
        watch.headers.get("content-type").unwrap(),
        "application/json",
        "kube-apiserver answers a JSON watch as application/json"
    );
    assert_eq!(
        warnings(&watch.headers),
        [watch_fx["response"]["headers"]["Warning"].as_str().unwrap()]
    );
    let got = send(
        &s,
        http2,
        &patch_fx,
        patch_fx["request"]["path"].as_str().unwrap(),
        &patch_fx["request"]["body"],
    )
    .await;
    let got = assert_head("17", &got, &patch_fx);
    assert_eq!(
        masked(got),
        masked(patch_fx["response"]["body"].clone()),
        "17"
    );
    let mut events = Vec::new();
    while let Some(e) = watch.next(Duration::from_secs(10)).await {
        events.push(e);
    }
    assert_eq!(
        masked(json!(events)),
        masked(watch_fx["response"]["body"].clone()),
        "16"
    );

    for name in ["18-post-v1-cel3", "19-get-cel3-scale-via-v1beta1"] {
        let fx = oracle(name);
        let path = fx["request"]["path"].as_str().unwrap();
        let got = send(&s, http2, &fx, path, &fx["request"]["body"]).await;
        let got = assert_head(name, &got, &fx);
        assert_eq!(
            masked(got),
            masked(fx["response"]["body"].clone()),
            "{name}"
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fixtures_replay_over_http1() {
    replay(false).await;
}

/// A kubectl capture: the command, the file it created (if any), exit code, stdout, stderr.
struct Capture {
    command: Vec<String>,
    file: Option<(String, String)>,
    code: i32,
    stdout: String,
    stderr: String,
}

fn capture(name: &str) -> Capture {
    let raw = std::fs::read_to_string(fixtures().join(format!("{DIR}/{name}.txt"))).unwrap();
    let mut file = None;
    let mut command = Vec::new();
    let (mut code, mut stdout, mut stderr) = (0, String::new(), String::new());
    let mut lines = raw.lines().peekable();
    let mut section = "";
    while let Some(line) = lines.next() {
        if let Some(cat) = line.strip_prefix("$ cat ") {
            let mut content = String::new();
            while let Some(l) = lines.next_if(|l| !l.starts_with("$ ")) {
                content.push_str(l);
                content.push('\n');
            }
            file = Some((cat.to_string(), content));
        } else if let Some(cmd) = line.strip_prefix("$ kubectl ") {
            command = cmd.split(' ').map(str::to_string).collect();
        } else if let Some(c) = line.strip_prefix("# exit code: ") {
            code = c.parse().unwrap();
        } else if line == "# stdout:" {
            section = "stdout";
        } else if line == "# stderr:" {
            section = "stderr";
        } else if section == "stdout" {
            stdout.push_str(line);
            stdout.push('\n');
        } else if section == "stderr" {
            stderr.push_str(line);
            stderr.push('\n');
        }
    }
    Capture {
        command,
        file,
        code,
        stdout,
        stderr,
    }
}

/// Runs a capture's command against the server; returns (code, stdout, stderr).
fn run(s: &Server, c: &Capture) -> (i32, String, String) {
    let work = tempfile::tempdir().unwrap();
    if let Some((name, content)) = &c.file {
        std::fs::write(work.path().join(name), content).unwrap();
    }
    let args: Vec<&str> = c.command.iter().map(String::as_str).collect();
    let out = s
        .kubectl_cmd(&args)
        .current_dir(work.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Blank lines and trailing spaces aside (the capture's framing adds some).
fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `kubectl explain` with each description (lines indented by four spaces) as one placeholder:
/// the oracle's CRD had no descriptions, this server's schema has them.
fn without_descriptions(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in s.lines() {
        if l.starts_with("    ") {
            if out.last().map(String::as_str) != Some("    <description>") {
                out.push("    <description>".into());
            }
        } else if !l.trim().is_empty() {
            out.push(l.trim_end().to_string());
        }
    }
    out
}

/// A `kubectl get` table with the AGE column masked.
fn without_ages(s: &str) -> Vec<String> {
    lines(s)
        .into_iter()
        .map(|l| match l.rsplit_once(' ') {
            Some((rest, _)) => format!("{} <age>", rest.trim_end()),
            None => l,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fixtures_replay_over_http2_then_kubectl_captures() {
    let s = replay(true).await;

    let c = capture("20-kubectl-explain-as-briefed");
    let (code, stdout, stderr) = run(&s, &c);
    assert_eq!(code, c.code);
    assert_eq!(lines(&stdout), lines(&c.stdout));
    assert_eq!(lines(&stderr), lines(&c.stderr));

    let c = capture("21-kubectl-explain-apps-spec-v1beta1");
    let (code, stdout, stderr) = run(&s, &c);
    assert_eq!(code, c.code, "{stderr}");
    assert_eq!(
        without_descriptions(&stdout),
        without_descriptions(&c.stdout)
    );
    assert!(
        stdout.contains("Replicas is the desired number"),
        "{stdout}"
    );
    assert_eq!(lines(&stderr), lines(&c.stderr));

    let c = capture("22-kubectl-get-apps-v1beta1");
    let (code, stdout, stderr) = run(&s, &c);
    assert_eq!(code, c.code, "{stderr}");
    assert_eq!(without_ages(&stdout), without_ages(&c.stdout));
    assert_eq!(lines(&stderr), lines(&c.stderr));

    let c = capture("23-kubectl-create-v1beta1");
    let (code, stdout, stderr) = run(&s, &c);
    assert_eq!(code, c.code, "{stderr}");
    assert_eq!(lines(&stdout), lines(&c.stdout));
    assert_eq!(lines(&stderr), lines(&c.stderr));
    // Stored as v1, served in each version.
    let got = s.kubectl_ok(&[
        "get",
        "app",
        "cel4",
        "-n",
        "difftest",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let obj: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(obj["apiVersion"], "admission.example.com/v1");
    assert_eq!(obj["spec"], json!({"replicas": 1, "version": "v1.0.1"}));
    assert_eq!(
        obj["metadata"]["managedFields"][0]["apiVersion"],
        "admission.example.com/v1beta1"
    );
}

const APPS_V1: &str = "/apis/admission.example.com/v1/namespaces/ns/apps";
const APPS_BETA: &str = "/apis/admission.example.com/v1beta1/namespaces/ns/apps";
const APP_WARNING: &str =
    "299 - \"admission.example.com/v1beta1 App is deprecated; use admission.example.com/v1 App\"";
const NSRES_WARNING: &str = "299 - \"admission.example.com/v1beta1 NamespaceReservation is deprecated; use admission.example.com/v1 NamespaceReservation\"";

fn beta_app(name: &str, labels: Value) -> String {
    json!({"apiVersion": "admission.example.com/v1beta1", "kind": "App",
        "metadata": {"name": name, "labels": labels}, "spec": {"version": "v1.0.0"}})
    .to_string()
}

/// A request of the warning table: method, path, headers, body, code, deprecation warning.
type Case<'a> = (
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    String,
    u16,
    Option<&'a str>,
);

/// Every answer about a kind in v1beta1 carries that kind's deprecation warning, once and
/// first, errors included; nothing in v1 does; the webhook endpoints are not in v1beta1.
async fn warnings_everywhere(http2: bool) {
    let s = Server::start();
    let json_ct = ("content-type", "application/json");
    let merge = ("content-type", "application/merge-patch+json");
    let table = (
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            APPS_BETA.into(),
            vec![json_ct],
            beta_app("w1", json!({"t": "a"})),
            201,
            Some(APP_WARNING),
        ),
        (
            "GET",
            format!("{APPS_BETA}/w1"),
            vec![],
            String::new(),
            200,
            Some(APP_WARNING),
        ),
        (
            "GET",
            format!("{APPS_BETA}/missing"),
            vec![],
            String::new(),
            404,
            Some(APP_WARNING),
        ),
        (
            "GET",
            format!("{APPS_BETA}?labelSelector=t%3Da"),
            vec![table],
            String::new(),
            200,
            Some(APP_WARNING),
        ),
        // Unknown fields warn too, after the deprecation.
        (
            "PATCH",
            format!("{APPS_BETA}/w1"),
            vec![merge],
            r#"{"spec":{"bogus":1}}"#.into(),
            200,
            Some(APP_WARNING),
        ),
        (
            "PATCH",
            format!("{APPS_BETA}/w1/status"),
            vec![merge],
            r#"{"status":{"replicas":2}}"#.into(),
            200,
            Some(APP_WARNING),
        ),
        (
            "PATCH",
            format!("{APPS_BETA}/w1/scale"),
            vec![merge],
            r#"{"spec":{"replicas":3}}"#.into(),
            200,
            Some(APP_WARNING),
        ),
        (
            "PATCH",
            format!("{APPS_BETA}/w1/scale"),
            vec![merge],
            r#"{"spec":{"replicas":30}}"#.into(),
            422,
            Some(APP_WARNING),
        ),
        (
            "GET",
            format!("{APPS_V1}/w1"),
            vec![],
            String::new(),
            200,
            None,
        ),
        (
            "GET",
            format!("{APPS_V1}/missing"),
            vec![],
            String::new(),
            404,
            None,
        ),
        (
            "POST",
            "/apis/admission.example.com/v1beta1/namespacereservations".into(),
            vec![json_ct],
            json!({"apiVersion": "admission.example.com/v1beta1", "kind": "NamespaceReservation",
                "metadata": {"name": "team"}, "spec": {"owners": {"users": ["alice"]}}})
            .to_string(),
            201,
            Some(NSRES_WARNING),
        ),
        (
            "GET",
            "/apis/admission.example.com/v1beta1/namespacereservations".into(),
            vec![],
            String::new(),
            200,
            Some(NSRES_WARNING),
        ),
        (
            "DELETE",
            "/apis/admission.example.com/v1beta1/namespacereservations/team".into(),
            vec![],
            String::new(),
            200,
            Some(NSRES_WARNING),
        ),
        (
            "POST",
            "/apis/admission.example.com/v1beta1/validatingadmissionreviews".into(),
            vec![json_ct],
            "{}".into(),
            404,
            None,
        ),
        (
            "GET",
            "/apis/admission.example.com/v1beta1/namespaces/ns/nothings".into(),
            vec![],
            String::new(),
            404,
            None,
        ),
        (
            "GET",
            "/apis/admission.example.com/v2/namespaces/ns/apps".into(),
            vec![],
            String::new(),
            404,
            None,
        ),
    ];
    for (method, path, headers, body, code, warning) in cases {
        let r = s.request_over(http2, method, &path, &headers, &body).await;
        assert_eq!(r.status, code, "{method} {path}: {}", text(&r.body));
        let got = warnings(&r.headers);
        match warning {
            Some(w) => assert_eq!(got.first().map(String::as_str), Some(w), "{method} {path}"),
            None => assert!(got.is_empty(), "{method} {path}: {got:?}"),
        }
        assert_eq!(
            got.iter().filter(|g| g.contains("deprecated")).count(),
            usize::from(warning.is_some()),
            "{method} {path}"
        );
        if path.ends_with("/w1") && method == "PATCH" {
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[1], "299 - \"unknown field \\\"spec.bogus\\\"\"");
        }
        if path.contains("apps?labelSelector") {
            let t = r.json();
            assert_eq!(t["kind"], "Table");
            assert_eq!(
                t["rows"][0]["cells"].as_array().unwrap()[..4],
                [json!("w1"), json!("v1.0.0"), json!(1), Value::Null]
            );
        }
    }
    // A watch through v1beta1 (with a label selector) warns and shows v1beta1 objects,
    // bookmarks included; one through v1 shows v1 objects.
    let mut beta = s
        .watch(
            &format!("{APPS_BETA}?watch=true&labelSelector=t%3Db&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
            &[],
            http2,
        )
        .await;
    assert_eq!(warnings(&beta.headers), [APP_WARNING]);
    let mut v1 = s
        .watch(
            &format!("{APPS_V1}?watch=true&labelSelector=t%3Db"),
            &[],
            http2,
        )
        .await;
    assert!(warnings(&v1.headers).is_empty());
    let bookmark = beta.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(
        bookmark["object"]["apiVersion"],
        "admission.example.com/v1beta1"
    );
    let r = s
        .request_over(
            http2,
            "POST",
            APPS_V1,
            &[json_ct],
            &json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "w2", "labels": {"t": "b"}}, "spec": {"version": "v1.0.0"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 201);
    for (w, version) in [(&mut beta, "v1beta1"), (&mut v1, "v1")] {
        let e = w.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(e["type"], "ADDED");
        assert_eq!(e["object"]["metadata"]["name"], "w2");
        assert_eq!(
            e["object"]["apiVersion"],
            format!("admission.example.com/{version}")
        );
        assert_eq!(e["object"]["spec"]["replicas"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecation_warnings_on_every_v1beta1_request_over_http1() {
    warnings_everywhere(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecation_warnings_on_every_v1beta1_request_over_http2() {
    warnings_everywhere(true).await;
}

/// Objects written through either version are stored once, as v1, and recorded in
/// managedFields in the version each manager wrote in; bodies in the other version are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_either_version_store_one_object() {
    let s = Server::start();
    let json_ct = ("content-type", "application/json");
    let r = s
        .request(
            "POST",
            APPS_BETA,
            &[json_ct, ("user-agent", "beta-client/1")],
            &beta_app("a", json!({})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", text(&r.body));
    // PUT through v1 with a v1 body, then a JSON patch and an apply through v1beta1.
    let mut current = s
        .request("GET", &format!("{APPS_V1}/a"), &[], "")
        .await
        .json();
    assert_eq!(current["apiVersion"], "admission.example.com/v1");
    current["spec"]["replicas"] = json!(4);
    current["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    let r = s
        .request(
            "PUT",
            &format!("{APPS_V1}/a"),
            &[json_ct, ("user-agent", "v1-client/1")],
            &current.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r.body));
    let r = s
        .request(
            "PATCH",
            &format!("{APPS_BETA}/a"),
            &[("content-type", "application/json-patch+json"), ("user-agent", "beta-client/1")],
            r#"[{"op": "test", "path": "/apiVersion", "value": "admission.example.com/v1beta1"}, {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r.body));
    assert_eq!(r.json()["apiVersion"], "admission.example.com/v1beta1");
    let r = s
        .request(
            "PATCH",
            &format!("{APPS_BETA}/a?fieldManager=applier&force=true"),
            &[("content-type", "application/apply-patch+yaml")],
            "apiVersion: admission.example.com/v1beta1\nkind: App\nmetadata:\n  name: a\nspec:\n  version: v1.0.1\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r.body));
    let obj = s
        .request("GET", &format!("{APPS_V1}/a"), &[], "")
        .await
        .json();
    assert_eq!(obj["spec"], json!({"replicas": 4, "version": "v1.0.1"}));
    let entries: Vec<(String, String, String)> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
                e["apiVersion"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let beta = "admission.example.com/v1beta1".to_string();
    let v1 = "admission.example.com/v1".to_string();
    assert_eq!(
        entries,
        [
            ("applier".into(), "Apply".into(), beta.clone()),
            ("beta-client".into(), "Update".into(), beta.clone()),
            ("v1-client".into(), "Update".into(), v1.clone()),
        ]
    );
    // One object, listed through both versions, each in its version.
    for (path, version) in [(APPS_V1, &v1), (APPS_BETA, &beta)] {
        let list = s.request("GET", path, &[], "").await.json();
        assert_eq!(&list["apiVersion"], version);
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(&list["items"][0]["apiVersion"], version);
    }
    // A body must be in the version of its URL.
    let r = s
        .request("POST", APPS_BETA, &[json_ct], &json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "b"}}).to_string())
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "the API version in the data (admission.example.com/v1) does not match the expected API version (admission.example.com/v1beta1)"
    );
    let r = s
        .request(
            "PATCH",
            &format!("{APPS_BETA}/a?fieldManager=applier"),
            &[("content-type", "application/apply-patch+yaml")],
            "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: a\n",
        )
        .await;
    assert_eq!(r.status, 400, "{}", text(&r.body));
}

/// `spec.replicas` defaults to 1 on every write (create, update, patch, apply) and is never
/// created without a `spec`; an apply does not own the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_default_on_every_write() {
    let s = Server::start();
    let json_ct = ("content-type", "application/json");
    let r = s
        .request("POST", APPS_V1, &[json_ct], &json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "nospec"}}).to_string())
        .await;
    assert_eq!(r.status, 201);
    assert!(r.json().get("spec").is_none(), "no parent, no default");
    s.create_app("d", json!({})).await;
    let patch = |body: &'static str, ct: &'static str| {
        let s = &s;
        async move {
            let r = s
                .request(
                    "PATCH",
                    &format!(
                        "/apis/admission.example.com/v1/namespaces/default/apps/d{}",
                        if ct.contains("apply") {
                            "?fieldManager=ap&force=true"
                        } else {
                            ""
                        }
                    ),
                    &[("content-type", ct)],
                    body,
                )
                .await;
            assert_eq!(r.status, 200, "{body}: {}", text(&r.body));
            r.json()
        }
    };
    let obj = patch(r#"{"spec":{"replicas":5}}"#, "application/merge-patch+json").await;
    assert_eq!(obj["spec"]["replicas"], 5);
    let obj = patch(
        r#"{"spec":{"replicas":null}}"#,
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(obj["spec"]["replicas"], 1, "removed: defaulted again");
    let obj = patch(
        r#"[{"op":"remove","path":"/spec/replicas"}]"#,
        "application/json-patch+json",
    )
    .await;
    assert_eq!(obj["spec"]["replicas"], 1);
    let obj = patch(
        "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: d\nspec:\n  version: v1.0.1\n",
        "application/apply-patch+yaml",
    )
    .await;
    assert_eq!(obj["spec"], json!({"replicas": 1, "version": "v1.0.1"}));
    let applier = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "ap")
        .unwrap()
        .clone();
    assert_eq!(applier["fieldsV1"], json!({"f:spec": {"f:version": {}}}));
    // PUT without replicas.
    let mut current = obj.clone();
    current["spec"].as_object_mut().unwrap().remove("replicas");
    let r = s
        .request(
            "PUT",
            "/apis/admission.example.com/v1/namespaces/default/apps/d",
            &[json_ct],
            &current.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r.body));
    assert_eq!(r.json()["spec"]["replicas"], 1);
    // Server-side apply creating an object: defaulted, and the default is not the applier's.
    let r = s
        .request(
            "PATCH",
            "/apis/admission.example.com/v1/namespaces/default/apps/fresh?fieldManager=ap",
            &[("content-type", "application/apply-patch+yaml")],
            "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: fresh\nspec:\n  version: v1.0.0\n",
        )
        .await;
    assert_eq!(r.status, 201, "{}", text(&r.body));
    let obj = r.json();
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(
        obj["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:version": {}}})
    );
}

/// An object stored before the default existed (written straight into the store, as an older
/// server left it) is served with the default: get, list, Table, scale, watch, in both
/// versions; an update keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_stored_without_the_default_are_read_with_it() {
    use storage::Store;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    {
        let store =
            storage::SledStore::open(&dir.path().join("store"), storage::SledOptions::default())
                .unwrap();
        let legacy = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "old", "namespace": "ns", "uid": "4c4b4a49-0000-4000-8000-000000000001",
                "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1, "labels": {"era": "old"}},
            "spec": {"version": "v1.0.0"}});
        store
            .create(
                "apps/ns/old",
                Box::new(move |rev| {
                    let mut obj = legacy;
                    obj["metadata"]["resourceVersion"] = json!(rev.to_string());
                    serde_json::to_vec(&obj).unwrap()
                }),
            )
            .await
            .unwrap();
    }
    let s = Server::start_with(dir, &[]);
    for (path, version) in [(APPS_V1, "v1"), (APPS_BETA, "v1beta1")] {
        let obj = s
            .request("GET", &format!("{path}/old"), &[], "")
            .await
            .json();
        assert_eq!(obj["spec"]["replicas"], 1, "{version}");
        assert_eq!(
            obj["apiVersion"],
            format!("admission.example.com/{version}")
        );
        let list = s.request("GET", path, &[], "").await.json();
        assert_eq!(list["items"][0]["spec"]["replicas"], 1, "{version}");
        let scale = s
            .request("GET", &format!("{path}/old/scale"), &[], "")
            .await
            .json();
        assert_eq!(scale["spec"]["replicas"], 1, "{version}");
        let mut w = s
            .watch(
                &format!("{path}?watch=true&labelSelector=era%3Dold"),
                &[],
                false,
            )
            .await;
        let e = w.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(e["object"]["spec"]["replicas"], 1, "{version}");
        let mut t = s
            .watch(
                &format!("{path}?watch=true"),
                &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
                true,
            )
            .await;
        let e = t.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(e["object"]["rows"][0]["cells"][2], 1, "{version} DESIRED");
    }
    let out = s.kubectl_ok(&["get", "apps", "-n", "ns"]);
    assert!(
        out.lines().nth(1).unwrap().split_whitespace().nth(2) == Some("1"),
        "{out}"
    );
    // A label change (no spec in the patch) stores the default with it.
    let r = s
        .request(
            "PATCH",
            &format!("{APPS_V1}/old"),
            &[("content-type", "application/merge-patch+json")],
            r#"{"metadata":{"labels":{"era":"new"}}}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let obj = r.json();
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(
        obj["metadata"]["generation"], 1,
        "defaulting is not a spec change"
    );
}

/// The selector rules hold on every write path and in both versions, dry runs included; writes
/// that leave the selector alone (status, scale) pass them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_rules_on_every_write_path() {
    let s = Server::start();
    let json_ct = ("content-type", "application/json");
    let r = s
        .request("POST", APPS_BETA, &[json_ct], &json!({"apiVersion": "admission.example.com/v1beta1", "kind": "App",
            "metadata": {"name": "sel"}, "spec": {"version": "v1.0.0", "selector": {"matchLabels": {"app": "a"}}}}).to_string())
        .await;
    assert_eq!(r.status, 201, "{}", text(&r.body));
    let immutable = "App.admission.example.com \"sel\" is invalid: spec.selector: Invalid value: selector is immutable";
    let removed = "App.admission.example.com \"sel\" is invalid: spec: Invalid value: selector cannot be removed once set";
    let current = r.json();
    let mut changed = current.clone();
    changed["spec"]["selector"]["matchLabels"]["app"] = json!("b");
    let mut without = current.clone();
    without["spec"].as_object_mut().unwrap().remove("selector");
    let cases: Vec<(&str, String, &str, String, &str)> = vec![
        ("PUT", format!("{APPS_BETA}/sel"), "application/json", changed.to_string(), immutable),
        ("PUT", format!("{APPS_BETA}/sel?dryRun=All"), "application/json", without.to_string(), removed),
        ("PATCH", format!("{APPS_V1}/sel"), "application/json-patch+json", r#"[{"op":"replace","path":"/spec/selector/matchLabels","value":{"app":"c"}}]"#.into(), immutable),
        ("PATCH", format!("{APPS_V1}/sel"), "application/json-patch+json", r#"[{"op":"remove","path":"/spec/selector"}]"#.into(), removed),
        ("PATCH", format!("{APPS_BETA}/sel"), "application/merge-patch+json", r#"{"spec":{"selector":{"matchLabels":{"other":"x"}}}}"#.into(), immutable),
        (
            "PATCH",
            format!("{APPS_BETA}/sel?fieldManager=mine&force=true"),
            "application/apply-patch+yaml",
            "apiVersion: admission.example.com/v1beta1\nkind: App\nmetadata:\n  name: sel\nspec:\n  selector:\n    matchLabels:\n      app: d\n".into(),
            immutable,
        ),
    ];
    for (method, path, ct, body, message) in cases {
        for http2 in [false, true] {
            let r = s
                .request_over(http2, method, &path, &[("content-type", ct)], &body)
                .await;
            assert_eq!(r.status, 422, "{method} {path}: {}", text(&r.body));
            let status = r.json();
            assert_eq!(status["reason"], "Invalid");
            assert_eq!(status["message"], message, "{method} {path} {body}");
            assert_eq!(status["details"]["causes"].as_array().unwrap().len(), 1);
        }
    }
    // Status and scale writes keep the selector: the rules pass.
    let r = s
        .request(
            "PATCH",
            &format!("{APPS_BETA}/sel/status"),
            &[("content-type", "application/merge-patch+json")],
            r#"{"status":{"replicas":1,"selector":"app=a"}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r.body));
    let r = s
        .request(
            "PATCH",
            &format!("{APPS_V1}/sel/scale"),
            &[("content-type", "application/merge-patch+json")],
            r#"{"spec":{"replicas":4}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r.body));
    assert_eq!(r.json()["status"]["selector"], "app=a");
    // The same through kubectl, which shows the message as kube-apiserver's.
    let err = s.kubectl_err(&[
        "patch",
        "app",
        "sel",
        "-n",
        "ns",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"selector":null}}"#,
    ]);
    assert!(
        err.contains(
            "The App \"sel\" is invalid: spec: Invalid value: selector cannot be removed once set"
        ),
        "{err}"
    );
    let obj = s
        .request("GET", &format!("{APPS_V1}/sel"), &[], "")
        .await
        .json();
    assert_eq!(
        obj["spec"]["selector"],
        json!({"matchLabels": {"app": "a"}})
    );
    assert_eq!(obj["spec"]["replicas"], 4);
    // An object created without a selector may get one once, then not lose it.
    s.create_app("later", json!({})).await;
    let later = "/apis/admission.example.com/v1/namespaces/default/apps/later";
    let set = s
        .request(
            "PATCH",
            later,
            &[("content-type", "application/merge-patch+json")],
            r#"{"spec":{"selector":{"matchLabels":{"k":"v"}}}}"#,
        )
        .await;
    assert_eq!(set.status, 200);
    let again = s
        .request(
            "PATCH",
            later,
            &[("content-type", "application/merge-patch+json")],
            r#"{"spec":{"selector":{"matchLabels":{"k":"w"}}}}"#,
        )
        .await;
    assert_eq!(again.status, 422);
}

/// `kubectl explain` shows both versions of the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explains_both_versions() {
    let s = Server::start();
    for version in ["v1", "v1beta1"] {
        let out = s.kubectl_ok(&[
            "explain",
            "apps.spec.selector",
            &format!("--api-version=admission.example.com/{version}"),
        ]);
        assert!(out.contains(&format!("VERSION:    {version}")), "{out}");
        assert!(out.contains("immutable once"), "{out}");
        assert!(out.contains("matchLabels\t<map[string]string>"), "{out}");
    }
    let out = s.kubectl_ok(&[
        "explain",
        "namespacereservations",
        "--api-version=admission.example.com/v1beta1",
    ]);
    assert!(out.contains("VERSION:    v1beta1"), "{out}");
}
