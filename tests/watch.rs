//! Watch and list as client-go, kube-rs and kube-controller-manager use them: resume, 410,
//! bookmarks, streaming lists, timeouts, metadata-only and table watches, HTTP/2, ordering,
//! and the resourceVersion/continue semantics of lists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Server, text};

const APPS: &str = "/apis/admission.example.com/v1/namespaces/default/apps";
const SECOND: Duration = Duration::from_secs(1);

async fn patch(s: &Server, name: &str, body: &str) -> Value {
    let r = s
        .request(
            "PATCH",
            &format!("{APPS}/{name}"),
            &[("content-type", "application/merge-patch+json")],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn resume_from_a_resource_version_in_order() {
    let s = Server::start();
    let a = s.create_app("a", json!({})).await;
    s.create_app("b", json!({})).await;
    let mut w = s
        .watch(
            &format!("{APPS}?watch=true&resourceVersion={}", rv(&a)),
            &[],
            false,
        )
        .await;
    assert_eq!(w.status, 200);
    // As kube-apiserver answers a JSON watch (crd-oracle-versions-cel/16).
    assert_eq!(w.headers.get("content-type").unwrap(), "application/json");
    let e = w.next(5 * SECOND).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    patch(&s, "a", r#"{"spec":{"replicas":2}}"#).await;
    let e = w.next(5 * SECOND).await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["spec"]["replicas"].as_i64()),
        (Some("MODIFIED"), Some(2))
    );
    let before = s.request("GET", APPS, &[], "").await.json();
    let r = s.request("DELETE", &format!("{APPS}/a"), &[], "").await;
    assert_eq!(r.status, 200);
    let e = w.next(5 * SECOND).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["metadata"]["name"], "a");
    assert!(
        rv(&e["object"])
            > before["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
    );
}

#[tokio::test]
async fn too_old_resource_version_is_an_error_event_410() {
    let s = Server::start_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &["--watch-history", "3"],
    );
    for i in 0..8 {
        s.create_app(&format!("o{i}"), json!({})).await;
    }
    let mut w = s
        .watch(&format!("{APPS}?watch=true&resourceVersion=2"), &[], false)
        .await;
    assert_eq!(w.status, 200);
    let e = w.next(5 * SECOND).await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["kind"], "Status");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(
        e["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 2 (")
    );
    assert!(w.ends_within(5 * SECOND).await);

    // A list at an exact revision outside the window is 410 too; inside it, it is a snapshot.
    let latest = s.request("GET", APPS, &[], "").await.json();
    let old = s
        .request(
            "GET",
            &format!("{APPS}?resourceVersion=2&resourceVersionMatch=Exact"),
            &[],
            "",
        )
        .await;
    assert_eq!(old.status, 410);
    assert_eq!(
        old.json()["message"],
        "The resourceVersion for the provided list is too old."
    );
    let at = latest["metadata"]["resourceVersion"].as_str().unwrap();
    s.create_app("later", json!({})).await;
    let exact = s
        .request(
            "GET",
            &format!("{APPS}?resourceVersion={at}&resourceVersionMatch=Exact"),
            &[],
            "",
        )
        .await
        .json();
    assert_eq!(exact["items"].as_array().unwrap().len(), 8);
    assert_eq!(exact["metadata"]["resourceVersion"], at);
    let any = s
        .request("GET", &format!("{APPS}?resourceVersion=0"), &[], "")
        .await
        .json();
    assert_eq!(any["items"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn expired_continue_tokens_get_an_inconsistent_continue() {
    let s = Server::start_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &["--watch-history", "3"],
    );
    for i in 0..6 {
        s.create_app(&format!("p{i}"), json!({})).await;
    }
    let first = s
        .request("GET", &format!("{APPS}?limit=2"), &[], "")
        .await
        .json();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    for i in 0..5 {
        patch(&s, "p5", &format!(r#"{{"spec":{{"replicas":{}}}}}"#, i + 2)).await;
    }
    let expired = s
        .request("GET", &format!("{APPS}?limit=2&continue={token}"), &[], "")
        .await;
    assert_eq!(expired.status, 410);
    let status = expired.json();
    assert_eq!(status["reason"], "Expired");
    assert!(status["message"].as_str().unwrap().starts_with(
        "The provided continue parameter is too old to display a consistent list result."
    ));
    let inconsistent = status["metadata"]["continue"].as_str().unwrap();
    let rest = s
        .request(
            "GET",
            &format!("{APPS}?limit=10&continue={inconsistent}"),
            &[],
            "",
        )
        .await
        .json();
    let names: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p2", "p3", "p4", "p5"]);
    assert_eq!(rest["items"][3]["spec"]["replicas"], 6);
}

#[tokio::test]
async fn bookmarks_streaming_lists_and_timeouts() {
    let s = Server::start_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &["--watch-bookmark-interval", "1"],
    );
    s.create_app("s1", json!({})).await;
    let s2 = s.create_app("s2", json!({})).await;
    let mut w = s
        .watch(&format!("{APPS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=3"), &[], false)
        .await;
    let e1 = w.next(5 * SECOND).await.unwrap();
    let e2 = w.next(5 * SECOND).await.unwrap();
    assert_eq!(
        (e1["type"].as_str(), e2["type"].as_str()),
        (Some("ADDED"), Some("ADDED"))
    );
    let end = w.next(5 * SECOND).await.unwrap();
    assert_eq!(
        end,
        json!({"type": "BOOKMARK", "object": {"kind": "App", "apiVersion": "admission.example.com/v1",
            "metadata": {"resourceVersion": s2["metadata"]["resourceVersion"], "annotations": {"k8s.io/initial-events-end": "true"}}}})
    );
    let started = Instant::now();
    let periodic = w.next(5 * SECOND).await.unwrap();
    assert_eq!(periodic["type"], "BOOKMARK");
    assert!(periodic["object"]["metadata"].get("annotations").is_none());
    assert!(w.ends_within(5 * SECOND).await);
    let lasted = started.elapsed();
    assert!(lasted < Duration::from_millis(3500), "{lasted:?}");

    // The combinations kube-apiserver forbids.
    let bad = s
        .request(
            "GET",
            &format!("{APPS}?watch=true&sendInitialEvents=true"),
            &[],
            "",
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(
        bad.json()["message"]
            .as_str()
            .unwrap()
            .contains("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
    );
    let bad = s
        .request("GET", &format!("{APPS}?sendInitialEvents=true"), &[], "")
        .await
        .json();
    let fixture = support::fixture("crd-oracle/20-streaming-list-bad-combination.json");
    assert_eq!(bad, fixture["events"][0]["body"]);
}

#[tokio::test]
async fn server_chosen_timeout_ends_idle_watches() {
    let s = Server::start_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &["--min-request-timeout", "1"],
    );
    let started = Instant::now();
    let mut w = s
        .watch(&format!("{APPS}?watch=true&resourceVersion=0"), &[], false)
        .await;
    assert!(w.ends_within(5 * SECOND).await);
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_millis(900) && lasted < Duration::from_millis(2600),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn metadata_and_table_watches() {
    let s = Server::start();
    s.create_app("s1", json!({"tier": "web"})).await;
    s.create_app("s2", json!({})).await;
    let mut meta = s
        .watch(
            &format!("{APPS}?watch=true&resourceVersion=0&timeoutSeconds=5"),
            &[(
                "accept",
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            )],
            false,
        )
        .await;
    let e = meta.next(5 * SECOND).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(e["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(e["object"]["metadata"]["labels"]["tier"], "web");
    assert!(e["object"].get("spec").is_none());

    let mut table = s
        .watch(
            &format!("{APPS}?watch=true&resourceVersion=0&timeoutSeconds=5"),
            &[(
                "accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )],
            false,
        )
        .await;
    let first = table.next(5 * SECOND).await.unwrap();
    let second = table.next(5 * SECOND).await.unwrap();
    assert_eq!(first["object"]["kind"], "Table");
    assert_eq!(
        first["object"]["columnDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(first["object"]["rows"][0]["cells"][0], "s1");
    assert!(second["object"]["columnDefinitions"].is_null());
    assert_eq!(second["object"]["rows"][0]["cells"][0], "s2");
    patch(&s, "s2", r#"{"spec":{"replicas":4}}"#).await;
    let modified = table.next(5 * SECOND).await.unwrap();
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["rows"][0]["cells"][2], 4);
}

#[tokio::test]
async fn selectors_turn_transitions_into_added_and_deleted() {
    let s = Server::start();
    let a = s.create_app("a", json!({"tier": "web"})).await;
    let mut w = s
        .watch(
            &format!(
                "{APPS}?watch=true&resourceVersion={}&labelSelector=tier%3Dweb",
                rv(&a)
            ),
            &[],
            false,
        )
        .await;
    patch(&s, "a", r#"{"metadata":{"labels":{"tier":"db"}}}"#).await;
    let e = w.next(5 * SECOND).await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["metadata"]["labels"]["tier"], "db");
    s.create_app("ignored", json!({"tier": "db"})).await;
    patch(&s, "a", r#"{"metadata":{"labels":{"tier":"web"}}}"#).await;
    let e = w.next(5 * SECOND).await.unwrap();
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["metadata"]["name"], "a");
}

#[tokio::test]
async fn watches_over_http2_never_miss_or_reorder() {
    let s = Arc::new(Server::start());
    let start = s.request("GET", APPS, &[], "").await.json();
    let from = start["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watches = Vec::new();
    for http2 in [true, false] {
        watches.push(
            s.watch(
                &format!("{APPS}?watch=true&resourceVersion={from}"),
                &[],
                http2,
            )
            .await,
        );
    }
    assert_eq!(watches[0].version, http::Version::HTTP_2);
    let mut writers = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                s.create_app(&format!("w{w}-{i}"), json!({})).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    for watch in &mut watches {
        let mut last = 0;
        for _ in 0..200 {
            let e = watch.next(10 * SECOND).await.expect("every event arrives");
            assert_eq!(e["type"], "ADDED");
            let r = rv(&e["object"]);
            assert!(r > last, "events out of order: {r} after {last}");
            last = r;
        }
    }
}

#[test]
fn kubectl_wait_for_delete() {
    let s = Server::start();
    s.create(&support::app("gone", "default", 1, &[]));
    let held = "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: held\n  finalizers: [\"example.com/hold\"]\nspec:\n  version: v1.0.0\n  replicas: 1\n";
    s.create(held);
    s.kubectl_ok(&["delete", "app", "held", "--wait=false"]);
    let wait = s
        .kubectl_cmd(&["wait", "--for=delete", "app/held", "--timeout=30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.kubectl_ok(&[
        "patch",
        "app",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let out = wait.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("app.admission.example.com/held condition met"),
        "{}",
        text(&out.stdout)
    );
    let out = s.kubectl_ok(&["delete", "app", "gone", "--wait=true"]);
    assert!(out.contains("deleted"));
}

/// Creates an App in a namespace over HTTPS; returns its resourceVersion.
async fn create_in(s: &Server, namespace: &str, name: &str, labels: Value) -> u64 {
    let body = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
        "metadata": {"name": name, "labels": labels}, "spec": {"version": "v1.0.0", "replicas": 1}});
    let r = s
        .post_json(
            &format!("/apis/admission.example.com/v1/namespaces/{namespace}/apps"),
            &body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", text(&r.body));
    rv(&r.json())
}

/// Patches an App's replicas; returns the new resourceVersion.
async fn scale_to(s: &Server, namespace: &str, name: &str, replicas: u32) -> u64 {
    let r = s
        .request(
            "PATCH",
            &format!("/apis/admission.example.com/v1/namespaces/{namespace}/apps/{name}"),
            &[("content-type", "application/merge-patch+json")],
            &format!(r#"{{"spec":{{"replicas":{replicas}}}}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", text(&r.body));
    rv(&r.json())
}

/// Reads events until a BOOKMARK at `at_least` or later; fails on any other event.
async fn bookmark_reaching(w: &mut support::WatchStream, at_least: u64, what: &str) -> u64 {
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        let e = w
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
            .unwrap_or_else(|| panic!("{what}: no bookmark at {at_least} or later"));
        assert_eq!(e["type"], "BOOKMARK", "{what}: {e}");
        let at = rv(&e["object"]);
        if at >= at_least {
            return at;
        }
    }
}

/// A watcher that sees none of the writes still gets bookmarks at the resource's current
/// revision, for every kind of filter and for streaming lists, over HTTP/1.1 and HTTP/2; and a
/// client resuming from such a bookmark is not sent back to re-list (410) once the history
/// window has moved past where its filter last matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_watches_get_bookmarks_at_the_current_revision() {
    let s = Server::start_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &["--watch-bookmark-interval", "1", "--watch-history", "4"],
    );
    let seen = create_in(&s, "ns-a", "a", json!({"tier": "web"})).await;
    create_in(&s, "ns-b", "b", json!({"tier": "db"})).await;
    let ns_a = "/apis/admission.example.com/v1/namespaces/ns-a/apps";
    let all = "/apis/admission.example.com/v1/apps";
    let filters = [
        ("namespace", format!("{ns_a}?watch=true")),
        (
            "label selector",
            format!("{all}?watch=true&labelSelector=tier%3Dweb"),
        ),
        (
            "field selector",
            format!("{all}?watch=true&fieldSelector=metadata.name%3Da"),
        ),
    ];
    for (i, (what, path)) in filters.iter().enumerate() {
        let http2 = i % 2 == 0;
        // The last change this watcher sees.
        let seen = if i == 0 {
            seen
        } else {
            let r = s
                .request(
                    "PATCH",
                    &format!("{ns_a}/a"),
                    &[("content-type", "application/merge-patch+json")],
                    &format!(r#"{{"metadata":{{"annotations":{{"round":"{i}"}}}}}}"#),
                )
                .await;
            rv(&r.json())
        };
        let mut w = s
            .watch(
                &format!(
                    "{path}&allowWatchBookmarks=true&resourceVersion={seen}&timeoutSeconds=60"
                ),
                &[],
                http2,
            )
            .await;
        assert_eq!(w.status, 200);
        let mut last = 0;
        for replicas in 2..7 {
            last = scale_to(&s, "ns-b", "b", replicas).await;
        }
        let at = bookmark_reaching(&mut w, last, what).await;
        // The window (4 events) has moved past `seen`: resuming there is 410, resuming from
        // the bookmark is not.
        let mut stale = s
            .watch(&format!("{path}&resourceVersion={seen}"), &[], http2)
            .await;
        let e = stale.next(5 * SECOND).await.unwrap();
        assert_eq!(
            (e["type"].as_str(), e["object"]["code"].as_i64()),
            (Some("ERROR"), Some(410)),
            "{what}"
        );
        let mut resumed = s
            .watch(
                &format!("{path}&allowWatchBookmarks=true&resourceVersion={at}&timeoutSeconds=60"),
                &[],
                http2,
            )
            .await;
        let e = resumed.next(5 * SECOND).await.unwrap();
        assert_eq!(e["type"], "BOOKMARK", "{what}: resumed from {at}: {e}");
    }

    // A streaming list (sendInitialEvents) with a selector: the initial-events-end bookmark,
    // then bookmarks that follow writes it does not see.
    let mut w = s
        .watch(
            &format!("{all}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=tier%3Dweb&timeoutSeconds=60"),
            &[],
            true,
        )
        .await;
    let added = w.next(5 * SECOND).await.unwrap();
    assert_eq!(added["object"]["metadata"]["name"], "a");
    let end = w.next(5 * SECOND).await.unwrap();
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let mut last = 0;
    for replicas in 2..7 {
        last = scale_to(&s, "ns-b", "b", replicas).await;
    }
    bookmark_reaching(&mut w, last, "streaming list").await;
}

/// Bookmarks and events of one watch never go back in revision, and no event comes after a
/// bookmark at or past its revision (a client resuming from the bookmark would miss it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_never_pass_an_event_still_to_be_sent() {
    let s = Arc::new(Server::start_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &["--watch-bookmark-interval", "1"],
    ));
    let from = create_in(&s, "ns-a", "seed", json!({})).await;
    let mut watches = Vec::new();
    for (path, http2) in [
        ("/apis/admission.example.com/v1/apps?watch=true", false),
        (
            "/apis/admission.example.com/v1/namespaces/ns-a/apps?watch=true",
            true,
        ),
        (
            "/apis/admission.example.com/v1/apps?watch=true&labelSelector=odd%3Dtrue",
            true,
        ),
    ] {
        watches.push(
            s.watch(
                &format!(
                    "{path}&allowWatchBookmarks=true&resourceVersion={from}&timeoutSeconds=60"
                ),
                &[],
                http2,
            )
            .await,
        );
    }
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            // Writes for a few bookmark intervals.
            while started.elapsed() < Duration::from_secs(4) {
                let namespace = if w % 2 == 0 { "ns-a" } else { "ns-b" };
                let labels = json!({"odd": (i % 2 == 1).to_string()});
                create_in(&s, namespace, &format!("w{w}-{i}"), labels).await;
                i += 1;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let last = create_in(&s, "ns-b", "last", json!({})).await;
    for (i, watch) in watches.iter_mut().enumerate() {
        let (mut previous, mut bookmarks) = (from, 0);
        loop {
            let e = watch
                .next(10 * SECOND)
                .await
                .expect("events and bookmarks arrive");
            let at = rv(&e["object"]);
            match e["type"].as_str() {
                Some("BOOKMARK") => {
                    assert!(at >= previous, "watch {i}: bookmark {at} after {previous}");
                    bookmarks += 1;
                    if at >= last {
                        break;
                    }
                }
                Some("ADDED") => assert!(at > previous, "watch {i}: event {at} after {previous}"),
                other => panic!("watch {i}: {other:?}"),
            }
            previous = at;
        }
        assert!(bookmarks >= 2, "watch {i}: {bookmarks} bookmarks");
    }
}

/// As kube-apiserver's cacher: one bookmark 2 s before the deadline, none when the watch is
/// shorter than that or did not ask for bookmarks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookmark_comes_before_the_deadline() {
    let s = Server::start();
    let seen = create_in(&s, "default", "a", json!({})).await;
    for (query, bookmarks) in [
        ("allowWatchBookmarks=true&timeoutSeconds=5", 1),
        ("allowWatchBookmarks=true&timeoutSeconds=2", 0),
        ("timeoutSeconds=5", 0),
    ] {
        for http2 in [false, true] {
            let mut w = s
                .watch(
                    &format!("{APPS}?watch=true&resourceVersion={seen}&{query}"),
                    &[],
                    http2,
                )
                .await;
            let mut got = Vec::new();
            while let Some(e) = w.next(10 * SECOND).await {
                got.push(e);
            }
            assert!(w.ends_within(SECOND).await, "{query}");
            assert_eq!(got.len(), bookmarks, "{query}: {got:?}");
            for e in got {
                assert_eq!(e["type"], "BOOKMARK");
                assert!(rv(&e["object"]) >= seen);
            }
        }
    }
}

/// `timeoutSeconds` below zero: 200 and the stream ends at once, even where there are initial
/// events to send; zero is the server's choice, as when absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_positive_timeouts() {
    let s = Server::start();
    create_in(&s, "default", "a", json!({})).await;
    for http2 in [false, true] {
        let mut w = s
            .watch(
                &format!("{APPS}?watch=true&resourceVersion=0&timeoutSeconds=-1"),
                &[],
                http2,
            )
            .await;
        assert_eq!(w.status, 200);
        assert_eq!(w.headers.get("content-type").unwrap(), "application/json");
        assert!(w.next(10 * SECOND).await.is_none(), "no event at all");
        let mut open = s
            .watch(
                &format!("{APPS}?watch=true&resourceVersion=0&timeoutSeconds=0"),
                &[],
                http2,
            )
            .await;
        let e = open.next(5 * SECOND).await.expect("an initial event");
        assert_eq!(e["type"], "ADDED");
    }
}
