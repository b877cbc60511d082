//! `migrate`: a one-replica sled installation moves to etcd with nothing lost: the objects
//! (uids, specs, status, labels) are served by a server on etcd afterwards; running it again is
//! harmless; a different object already in etcd is reported, not overwritten; a running server
//! is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use storage::etcd::testing::EtcdCluster;
use support::{Server, binary};

fn migrate(dir: &std::path::Path, etcd: &EtcdCluster) -> std::process::Output {
    Command::new(binary())
        .args(["migrate", "--data-dir"])
        .arg(dir)
        .args(["--etcd-servers", &etcd.servers_flag()])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_store_moves_to_etcd_with_nothing_lost() {
    let etcd = EtcdCluster::start(1).await;
    let mut sled = Server::start();
    for i in 0..30 {
        sled.create(&support::app(
            &format!("app{i}"),
            &format!("ns{}", i % 3),
            2,
            &[("n", &i.to_string())],
        ));
    }
    sled.kubectl_ok(&[
        "patch",
        "app",
        "app1",
        "-n",
        "ns1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2}}"#,
    ]);
    sled.create("apiVersion: admission.example.com/v1\nkind: NamespaceReservation\nmetadata:\n  name: payments\nspec:\n  owners:\n    users: [alice]\n");
    let before = sled.kubectl_ok(&["get", "apps,namespacereservations", "-A", "-o", "json"]);
    // Refused while the server holds the store.
    let busy = migrate(sled.dir.path(), &etcd);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("is the server still running"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    sled.stop(false);

    let out = migrate(sled.dir.path(), &etcd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "copied 31 objects to etcd (0 were there already)"
    );
    let again = migrate(sled.dir.path(), &etcd);
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "copied 0 objects to etcd (31 were there already)"
    );

    let on_etcd = Server::start_with(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &["--etcd-servers", &etcd.servers_flag()],
    );
    let after = on_etcd.kubectl_ok(&["get", "apps,namespacereservations", "-A", "-o", "json"]);
    let strip = |text: &str| {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        for item in v["items"].as_array_mut().unwrap() {
            item["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("resourceVersion");
        }
        v["items"].clone()
    };
    assert_eq!(strip(&after), strip(&before));
    // The copy is a store like any other: it takes writes.
    on_etcd.create(&support::app("new", "ns0", 1, &[]));

    // A different object under a key etcd already has is reported and left alone.
    drop(on_etcd);
    let mut changed = Server::start_with(sled.dir.clone(), &[]);
    changed.kubectl_ok(&["scale", "app", "app2", "-n", "ns2", "--replicas=5"]);
    changed.stop(false);
    let conflict = migrate(sled.dir.path(), &etcd);
    assert!(!conflict.status.success());
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(err.contains("apps/ns2/app2"), "{err}");
}
