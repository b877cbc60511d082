//! kube-rs (crates.io `kube`) against the real binary: a watcher and a reflector store stay in
//! sync through inserts, updates, deletes and a forced 410 re-list; a metadata-only watch like
//! the garbage collector's sees every change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::Server;

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("admission.example.com", "v1", "App"),
        "apps",
    )
}

async fn client(s: &Server) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&s.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn app(name: &str, replicas: i64) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "admission.example.com/v1", "kind": "App",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"version": "v1.0.0", "replicas": replicas}
    }))
    .unwrap()
}

/// Waits until the reflector's store holds exactly `want` (name → replicas).
async fn converges(store: &reflector::Store<DynamicObject>, want: &[(&str, i64)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut got: Vec<(String, i64)> = store
            .state()
            .iter()
            .map(|o| {
                (
                    o.metadata.name.clone().unwrap(),
                    o.data["spec"]["replicas"].as_i64().unwrap(),
                )
            })
            .collect();
        got.sort();
        let mut expected: Vec<(String, i64)> =
            want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        expected.sort();
        if got == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "store {got:?} never became {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reflector_stays_in_sync_through_a_forced_relist() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = Server::start_with(dir.clone(), &["--watch-history", "1"]);
    let api: Api<DynamicObject> = Api::namespaced_with(client(&s).await, "default", &resource());
    api.create(&PostParams::default(), &app("a", 1))
        .await
        .unwrap();

    let writer = reflector::store::Writer::new(resource());
    let store = writer.as_reader();
    let inits = Arc::new(AtomicUsize::new(0));
    let counted = inits.clone();
    let stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .map(move |e| {
            if let Ok(watcher::Event::Init) = &e {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            e
        })
        .reflect(writer)
        .for_each(|_| async {});
    let driver = tokio::spawn(stream);

    converges(&store, &[("a", 1)]).await;
    api.create(&PostParams::default(), &app("b", 2))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    converges(&store, &[("a", 3), ("b", 2)]).await;
    api.delete("b", &DeleteParams::default()).await.unwrap();
    converges(&store, &[("a", 3)]).await;
    assert_eq!(inits.load(Ordering::SeqCst), 1);

    // Stop the server; write through another instance on another port (the watcher cannot
    // reach it); bring the server back on its port. The watcher's resourceVersion now predates
    // what the restarted server can replay: it gets a 410 and must re-list.
    let port = s.port();
    s.stop(false);
    let mut elsewhere = Server::start_with(dir.clone(), &["--watch-history", "1"]);
    let other: Api<DynamicObject> =
        Api::namespaced_with(client(&elsewhere).await, "default", &resource());
    other
        .create(&PostParams::default(), &app("c", 4))
        .await
        .unwrap();
    other
        .create(&PostParams::default(), &app("d", 5))
        .await
        .unwrap();
    other
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .unwrap();
    elsewhere.stop(false);
    let s = Server::start_on(dir, port, &["--watch-history", "1"]);
    converges(&store, &[("a", 6), ("c", 4), ("d", 5)]).await;
    assert!(
        inits.load(Ordering::SeqCst) >= 2,
        "the watcher did not re-list"
    );
    let log = s.log();
    assert!(
        log.contains("code=200") && !log.contains("panicked"),
        "{log}"
    );
    driver.abort();
}

#[tokio::test]
async fn metadata_watch_like_the_garbage_collector() {
    let s = Server::start();
    let c = client(&s).await;
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(c.clone(), &resource());
    let namespaced: Api<DynamicObject> = Api::namespaced_with(c, "default", &resource());
    namespaced
        .create(&PostParams::default(), &app("x", 1))
        .await
        .unwrap();
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut created = false;
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await
        else {
            break;
        };
        match event.unwrap() {
            watcher::Event::InitApply(m) | watcher::Event::Apply(m) => {
                seen.push(("apply", m.metadata.name.unwrap()))
            }
            watcher::Event::Delete(m) => seen.push(("delete", m.metadata.name.unwrap())),
            watcher::Event::InitDone if !created => {
                created = true;
                namespaced
                    .create(&PostParams::default(), &app("y", 1))
                    .await
                    .unwrap();
                namespaced
                    .delete("x", &DeleteParams::default())
                    .await
                    .unwrap();
            }
            _ => {}
        }
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ("apply", "x".to_string()),
            ("apply", "y".to_string()),
            ("delete", "x".to_string())
        ]
    );
}
