//! The storage contract, run against every backend. A new backend is added with one line at the
//! bottom; it is conformant when this whole file passes for it. The etcd backend runs against a
//! real one-member etcd per test (`ETCD_BIN`, else `etcd` on the PATH).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::etcd::testing::EtcdCluster;
use storage::etcd::{EtcdOptions, EtcdStore};
use storage::index::IndexOptions;
use storage::{
    EventKind, ListOptions, MemoryStore, ReadAt, SledOptions, SledStore, Store, Versioner,
    WatchStart,
};

/// Stamps `@<revision>` onto a value (replacing an earlier stamp), so every read shows which
/// revision its value was served at.
struct AtRevision;

impl Versioner for AtRevision {
    fn stamp(&self, _key: &str, value: &[u8], revision: u64) -> Bytes {
        let text = String::from_utf8_lossy(value);
        let base = text.split('@').next().unwrap_or("");
        Bytes::from(format!("{base}@{revision}"))
    }
}

/// A store under test plus whatever must live as long as it (a temporary directory, an etcd).
struct Subject {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    etcd: Option<EtcdCluster>,
}

impl Subject {
    /// Makes every revision up to `revision` unavailable to lists and watches: the embedded
    /// backends have forgotten it once it left the history window; etcd is compacted.
    async fn forget(&self, revision: u64) {
        if let Some(etcd) = &self.etcd {
            let mut client = etcd_client::Client::connect(etcd.endpoints(), None)
                .await
                .unwrap();
            client.compact(revision as i64, None).await.unwrap();
        }
    }
}

/// A history of `history` events, and reads that wait half a second for a future revision.
fn options(history: usize) -> IndexOptions {
    IndexOptions {
        history,
        freshness_wait: std::time::Duration::from_millis(500),
        ..IndexOptions::default()
    }
}

async fn memory(history: usize) -> Subject {
    Subject {
        store: Arc::new(MemoryStore::new(options(history), Arc::new(AtRevision))),
        _dir: None,
        etcd: None,
    }
}

async fn sled(history: usize) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(
        dir.path(),
        SledOptions {
            index: options(history),
            ..SledOptions::default()
        },
        Arc::new(AtRevision),
    )
    .unwrap();
    Subject {
        store: Arc::new(store),
        _dir: Some(dir),
        etcd: None,
    }
}

/// An etcd store whose one watch cache holds every key of the suite.
async fn etcd(history: usize) -> Subject {
    let cluster = EtcdCluster::start(1).await;
    let store = EtcdStore::connect(
        EtcdOptions {
            endpoints: cluster.endpoints(),
            prefix: "/conformance".into(),
            compaction_interval: None,
            resources: vec![String::new()],
            index: options(history),
            ..EtcdOptions::default()
        },
        Arc::new(AtRevision),
    )
    .await
    .unwrap();
    store
        .ready(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    Subject {
        store: Arc::new(store),
        _dir: None,
        etcd: Some(cluster),
    }
}

/// The revision a consistent read is served at: every acknowledged write is in it.
async fn consistent_revision(s: &dyn Store) -> u64 {
    s.list(
        ListOptions {
            prefix: "".into(),
            limit: Some(1),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap()
    .revision
}
/// A value; reads show it as `<tag>@<revision>`.
fn val(tag: &str) -> Bytes {
    Bytes::from(tag.to_string())
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

async fn put(s: &dyn Store, key: &str, tag: &str) -> u64 {
    s.create(key, val(tag)).await.unwrap().revision
}

mod cases {
    use super::*;

    pub async fn revisions_increase_and_are_embedded(s: &dyn Store) {
        let a = s.create("a", val("x")).await.unwrap();
        assert_eq!(a.revision, consistent_revision(s).await);
        assert_eq!(text(&a.value), format!("x@{}", a.revision));
        let b = s.create("b", val("y")).await.unwrap();
        assert!(b.revision > a.revision);
        let a2 = s.update("a", a.revision, val("x2")).await.unwrap();
        assert!(a2.revision > b.revision);
        let (_, del) = s.delete("b", b.revision).await.unwrap();
        assert!(del > a2.revision);
        assert_eq!(consistent_revision(s).await, del);
        assert_eq!(s.current_revision(), del);
    }

    pub async fn create_if_absent(s: &dyn Store) {
        put(s, "k", "1").await;
        let err = s.create("k", val("2")).await.unwrap_err();
        assert!(err.is_already_exists(), "{err}");
        assert_eq!(
            text(&s.get("k", ReadAt::Latest).await.unwrap().unwrap().value)[..2],
            *"1@"
        );
    }

    pub async fn get_missing_is_none(s: &dyn Store) {
        assert!(s.get("nope", ReadAt::Latest).await.unwrap().is_none());
    }

    pub async fn guarded_update(s: &dyn Store) {
        let r = put(s, "k", "1").await;
        let err = s.update("k", r + 100, val("2")).await.unwrap_err();
        assert!(err.is_conflict(), "{err}");
        let err = s.update("missing", 1, val("2")).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let kv = s.update("k", r, val("2")).await.unwrap();
        assert_eq!(s.get("k", ReadAt::Latest).await.unwrap().unwrap(), kv);
        // The old revision no longer guards anything.
        assert!(s.update("k", r, val("3")).await.unwrap_err().is_conflict());
    }

    pub async fn guarded_delete(s: &dyn Store) {
        let r = put(s, "k", "1").await;
        assert!(s.delete("k", r + 1).await.unwrap_err().is_conflict());
        assert!(s.delete("missing", 1).await.unwrap_err().is_not_found());
        let (old, rev) = s.delete("k", r).await.unwrap();
        assert_eq!(old.revision, r);
        assert!(rev > r);
        assert!(s.get("k", ReadAt::Latest).await.unwrap().is_none());
        // A deleted key can be created again.
        put(s, "k", "again").await;
    }

    pub async fn list_prefix_pages_and_counts(s: &dyn Store) {
        for i in 0..10 {
            put(s, &format!("p/{i}"), "v").await;
        }
        put(s, "q/0", "other").await;
        put(s, "p", "not-under-p/").await;
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = s
                .list(
                    ListOptions {
                        prefix: "p/".into(),
                        start_after: after.clone(),
                        limit: Some(3),
                        at: ReadAt::Latest,
                    },
                    None,
                )
                .await
                .unwrap();
            pages += 1;
            seen.extend(page.items.iter().map(|kv| kv.key.to_string()));
            match page.continue_after {
                Some(k) => {
                    assert_eq!(page.remaining, Some(10 - seen.len() as u64));
                    after = Some(k)
                }
                None => {
                    assert_eq!(page.remaining, Some(0));
                    break;
                }
            }
        }
        assert_eq!(pages, 4);
        let want: Vec<String> = (0..10).map(|i| format!("p/{i}")).collect();
        assert_eq!(seen, want);
    }

    pub async fn list_is_a_consistent_snapshot(s: &dyn Store) {
        let mut revs = Vec::new();
        for i in 0..6 {
            revs.push(put(s, &format!("p/{i}"), "old").await);
        }
        let first = s
            .list(
                ListOptions {
                    prefix: "p/".into(),
                    limit: Some(2),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let at = first.revision;
        // Change the rest after the first page was served.
        s.update("p/3", revs[3], val("new")).await.unwrap();
        s.delete("p/4", revs[4]).await.unwrap();
        put(s, "p/33", "added").await;
        let rest = s
            .list(
                ListOptions {
                    prefix: "p/".into(),
                    at: ReadAt::Exact(at),
                    start_after: first.continue_after.clone(),
                    limit: None,
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(rest.revision, at);
        let got: Vec<(String, String)> = rest
            .items
            .iter()
            .map(|kv| (kv.key.to_string(), text(&kv.value)))
            .collect();
        let want: Vec<(String, String)> = (2..6)
            .map(|i| (format!("p/{i}"), format!("old@{}", revs[i])))
            .collect();
        assert_eq!(got, want);
        // The newest view sees the changes.
        let now = s
            .list(
                ListOptions {
                    prefix: "p/".into(),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let keys: Vec<_> = now.items.iter().map(|kv| kv.key.to_string()).collect();
        assert_eq!(keys, ["p/0", "p/1", "p/2", "p/3", "p/33", "p/5"]);
    }

    pub async fn list_filter_and_limit(s: &dyn Store) {
        for i in 0..10 {
            put(
                s,
                &format!("f/{i}"),
                if i % 2 == 0 { "even" } else { "odd" },
            )
            .await;
        }
        let even = |kv: &storage::KeyValue| kv.value.starts_with(b"even");
        let page = s
            .list(
                ListOptions {
                    prefix: "f/".into(),
                    limit: Some(2),
                    ..Default::default()
                },
                Some(&even),
            )
            .await
            .unwrap();
        let keys: Vec<_> = page.items.iter().map(|kv| kv.key.to_string()).collect();
        assert_eq!(keys, ["f/0", "f/2"]);
        assert_eq!(page.continue_after.as_deref(), Some("f/2"));
        assert_eq!(page.remaining, None);
    }

    pub async fn list_outside_history(subject: &Subject) {
        let s = &*subject.store;
        // The subject keeps a history of 4 events.
        for i in 0..10 {
            put(s, &format!("h/{i}"), "v").await;
        }
        let now = consistent_revision(s).await;
        subject.forget(now).await;
        let old = ListOptions {
            prefix: "h/".into(),
            at: ReadAt::Exact(2),
            ..Default::default()
        };
        assert!(s.list(old, None).await.unwrap_err().is_too_old());
        let future = ListOptions {
            prefix: "h/".into(),
            at: ReadAt::Exact(s.current_revision() + 5),
            ..Default::default()
        };
        let err = s.list(future, None).await.unwrap_err();
        assert!(
            matches!(err, storage::Error::FutureRevision { .. }),
            "{err}"
        );
        assert_eq!(s.oldest_revision(), now - 4);
    }

    pub async fn watch_from_revision_in_order_with_prev(s: &dyn Store) {
        let start = s.current_revision();
        let r1 = put(s, "w/a", "1").await;
        put(s, "other/x", "1").await;
        let r2 = s.update("w/a", r1, val("2")).await.unwrap().revision;
        let mut watch = s.watch("w/", WatchStart::After(start)).await.unwrap();
        let (_, r3) = s.delete("w/a", r2).await.unwrap();
        let r4 = put(s, "w/b", "3").await;
        let mut got = Vec::new();
        for _ in 0..4 {
            let e = watch.next_event().await.unwrap().unwrap();
            got.push((
                e.kind,
                e.key.to_string(),
                e.revision,
                e.prev.as_ref().map(|p| p.revision),
            ));
        }
        assert_eq!(
            got,
            vec![
                (EventKind::Added, "w/a".into(), r1, None),
                (EventKind::Modified, "w/a".into(), r2, Some(r1)),
                (EventKind::Deleted, "w/a".into(), r3, Some(r2)),
                (EventKind::Added, "w/b".into(), r4, None),
            ]
        );
    }

    pub async fn watch_too_old(s: &dyn Store) {
        for i in 0..10 {
            put(s, &format!("t/{i}"), "v").await;
        }
        let err = s.watch("t/", WatchStart::After(1)).await.unwrap_err();
        assert!(err.is_too_old(), "{err}");
        // The edge of the window still works.
        let oldest = s.oldest_revision();
        assert!(s.watch("t/", WatchStart::After(oldest)).await.is_ok());
    }

    pub async fn watch_snapshot_then_changes(s: &dyn Store) {
        let r = put(s, "s/a", "1").await;
        put(s, "s/b", "1").await;
        let mut watch = s.watch("s/", WatchStart::Snapshot).await.unwrap();
        assert_eq!(watch.start_revision(), s.current_revision());
        let initial: Vec<_> = watch
            .take_initial()
            .iter()
            .map(|kv| kv.key.to_string())
            .collect();
        assert_eq!(initial, ["s/a", "s/b"]);
        let r2 = s.update("s/a", r, val("2")).await.unwrap().revision;
        let e = watch.next_event().await.unwrap().unwrap();
        assert_eq!((e.kind, e.revision), (EventKind::Modified, r2));
    }

    pub async fn watch_now_sees_only_later(s: &dyn Store) {
        put(s, "n/a", "1").await;
        let mut watch = s.watch("n/", WatchStart::Now).await.unwrap();
        assert!(watch.take_initial().is_empty());
        let r = put(s, "n/b", "1").await;
        let e = watch.next_event().await.unwrap().unwrap();
        assert_eq!((e.key.as_ref(), e.revision), ("n/b", r));
    }

    pub async fn list_remaining_is_exact_at_a_past_revision(s: &dyn Store) {
        let mut revs = Vec::new();
        for i in 0..10 {
            revs.push(put(s, &format!("p/{i}"), "v").await);
        }
        put(s, "pz", "outside").await;
        let first = s
            .list(
                ListOptions {
                    prefix: "p/".into(),
                    limit: Some(3),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(first.remaining, Some(7));
        // Changes after the snapshot, on both sides of the continue key.
        s.delete("p/5", revs[5]).await.unwrap();
        s.delete("p/1", revs[1]).await.unwrap();
        put(s, "p/55", "new").await;
        put(s, "p/0a", "new").await;
        s.update("p/7", revs[7], val("changed")).await.unwrap();
        let next = s
            .list(
                ListOptions {
                    prefix: "p/".into(),
                    at: ReadAt::Exact(first.revision),
                    start_after: first.continue_after.clone(),
                    limit: Some(3),
                },
                None,
            )
            .await
            .unwrap();
        let keys: Vec<_> = next.items.iter().map(|kv| kv.key.to_string()).collect();
        assert_eq!(keys, ["p/3", "p/4", "p/5"]);
        assert_eq!(next.remaining, Some(4));
        // The newest state counts what is there now.
        let now = s
            .list(
                ListOptions {
                    prefix: "p/".into(),
                    limit: Some(3),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(now.remaining, Some(7));
    }

    pub async fn reads_wait_for_a_revision_not_reached_yet(s: Arc<dyn Store>) {
        let next = s.current_revision() + 1;
        let reader = {
            let s = s.clone();
            tokio::spawn(async move {
                s.list(
                    ListOptions {
                        prefix: "r/".into(),
                        at: ReadAt::NotOlderThan(next),
                        ..Default::default()
                    },
                    None,
                )
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        put(&*s, "r/a", "v").await;
        let page = reader.await.unwrap().unwrap();
        assert!(page.revision >= next);
        assert_eq!(page.items.len(), 1);
        let got = s.get("r/a", ReadAt::NotOlderThan(next)).await.unwrap();
        assert!(got.is_some());
        // A revision that never comes: "too large" after the wait.
        let far = s.current_revision() + 100;
        let err = s.get("r/a", ReadAt::NotOlderThan(far)).await.unwrap_err();
        assert!(
            matches!(err, storage::Error::FutureRevision { .. }),
            "{err}"
        );
    }

    pub async fn watch_reports_progress_past_other_prefixes(s: &dyn Store) {
        let mut watch = s.watch("w/", WatchStart::Now).await.unwrap();
        let r = put(s, "x/1", "elsewhere").await;
        loop {
            match watch.next().await.unwrap().unwrap() {
                storage::Update::Progress(p) if p >= r => break,
                storage::Update::Progress(_) => continue,
                storage::Update::Event(e) => panic!("unexpected event {e:?}"),
            }
        }
        let r2 = put(s, "w/1", "here").await;
        let e = watch.next_event().await.unwrap().unwrap();
        assert_eq!(e.revision, r2);
    }

    pub async fn concurrent_writers_get_unique_revisions(s: Arc<dyn Store>) {
        let mut tasks = Vec::new();
        for t in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..25 {
                    revs.push(put(&*s, &format!("c/{t}/{i}"), "v").await);
                }
                revs
            }));
        }
        let mut all = BTreeSet::new();
        for t in tasks {
            for r in t.await.unwrap() {
                assert!(all.insert(r), "revision {r} given twice");
            }
        }
        assert_eq!(all.len(), 400);
        assert_eq!(*all.last().unwrap(), consistent_revision(&*s).await);
        let listed = s
            .list(
                ListOptions {
                    prefix: "c/".into(),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 400);
    }
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn revisions_increase_and_are_embedded() {
                cases::revisions_increase_and_are_embedded(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn create_if_absent() {
                cases::create_if_absent(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn get_missing_is_none() {
                cases::get_missing_is_none(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn guarded_update() {
                cases::guarded_update(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn guarded_delete() {
                cases::guarded_delete(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn list_prefix_pages_and_counts() {
                cases::list_prefix_pages_and_counts(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn list_is_a_consistent_snapshot() {
                cases::list_is_a_consistent_snapshot(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn list_filter_and_limit() {
                cases::list_filter_and_limit(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn list_outside_history() {
                cases::list_outside_history(&super::$backend(4).await).await
            }
            #[tokio::test]
            async fn watch_from_revision_in_order_with_prev() {
                cases::watch_from_revision_in_order_with_prev(&*super::$backend(100).await.store)
                    .await
            }
            #[tokio::test]
            async fn watch_too_old() {
                cases::watch_too_old(&*super::$backend(4).await.store).await
            }
            #[tokio::test]
            async fn watch_snapshot_then_changes() {
                cases::watch_snapshot_then_changes(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn watch_now_sees_only_later() {
                cases::watch_now_sees_only_later(&*super::$backend(100).await.store).await
            }
            #[tokio::test]
            async fn list_remaining_is_exact_at_a_past_revision() {
                cases::list_remaining_is_exact_at_a_past_revision(
                    &*super::$backend(100).await.store,
                )
                .await
            }
            #[tokio::test]
            async fn reads_wait_for_a_revision_not_reached_yet() {
                let subject = super::$backend(100).await;
                cases::reads_wait_for_a_revision_not_reached_yet(subject.store.clone()).await
            }
            #[tokio::test]
            async fn watch_reports_progress_past_other_prefixes() {
                cases::watch_reports_progress_past_other_prefixes(
                    &*super::$backend(100).await.store,
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_writers_get_unique_revisions() {
                let subject = super::$backend(1000).await;
                cases::concurrent_writers_get_unique_revisions(subject.store.clone()).await
            }
        }
    };
}

conformance!(memory);
conformance!(sled);
conformance!(etcd);

/// What only a durable backend promises: a reopened store has every value and keeps counting
/// from the revision it stopped at, even when the last writes were deletions.
#[tokio::test]
async fn sled_reopen_keeps_values_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, last) = {
        let s = SledStore::open(dir.path(), SledOptions::default(), Arc::new(AtRevision)).unwrap();
        let kept = s.create("a", val("a")).await.unwrap();
        let b = s.create("b", val("b")).await.unwrap();
        let (_, last) = s.delete("b", b.revision).await.unwrap();
        (kept, last)
    };
    let s = SledStore::open(dir.path(), SledOptions::default(), Arc::new(AtRevision)).unwrap();
    assert_eq!(s.current_revision(), last);
    assert_eq!(s.get("a", ReadAt::Latest).await.unwrap(), Some(kept));
    assert!(s.get("b", ReadAt::Latest).await.unwrap().is_none());
    let next = s.create("c", val("c")).await.unwrap();
    assert_eq!(next.revision, last + 1);
    // History does not survive a restart: older watches must re-list.
    assert!(
        s.watch("", WatchStart::After(1))
            .await
            .unwrap_err()
            .is_too_old()
    );
}

/// A versioner that upper-cases values, under a fingerprint of its own.
struct Shouting;

impl Versioner for Shouting {
    fn stamp(&self, key: &str, value: &[u8], revision: u64) -> Bytes {
        let plain = AtRevision.stamp(key, value, revision);
        Bytes::from(String::from_utf8_lossy(&plain).to_uppercase())
    }
    fn fingerprint(&self) -> String {
        "shouting".into()
    }
}

/// A sled store loaded under another versioner fingerprint stamps its values again, once, and
/// keeps them: loading again under the same fingerprint finds them as they are.
#[tokio::test]
async fn sled_stamps_again_under_a_new_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let s = SledStore::open(dir.path(), SledOptions::default(), Arc::new(AtRevision)).unwrap();
        s.create("k", val("quiet")).await.unwrap()
    };
    assert_eq!(text(&written.value), format!("quiet@{}", written.revision));
    for _ in 0..2 {
        let s = SledStore::open(dir.path(), SledOptions::default(), Arc::new(Shouting)).unwrap();
        let kv = s.get("k", ReadAt::Latest).await.unwrap().unwrap();
        assert_eq!(text(&kv.value), format!("QUIET@{}", written.revision));
        assert_eq!(kv.revision, written.revision);
    }
}

/// A closed store leaves a snapshot that the next start reads instead of scanning sled; a
/// snapshot that writes have passed is ignored.
#[tokio::test]
async fn sled_restarts_from_its_snapshot_and_ignores_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let open =
        || SledStore::open(dir.path(), SledOptions::default(), Arc::new(AtRevision)).unwrap();
    let (a, b) = {
        let s = open();
        let a = s.create("a", val("a")).await.unwrap();
        let b = s.create("b", val("b")).await.unwrap();
        s.close().await;
        assert!(
            s.create("c", val("c"))
                .await
                .unwrap_err()
                .to_string()
                .contains("closed")
        );
        (a, b)
    };
    let snapshot = dir.path().join("snapshot");
    assert!(snapshot.exists(), "close leaves a snapshot");
    let saved = std::fs::read(&snapshot).unwrap();
    let c = {
        let s = open();
        assert!(!snapshot.exists(), "a snapshot is used once");
        assert_eq!(s.get("a", ReadAt::Latest).await.unwrap(), Some(a.clone()));
        assert_eq!(s.get("b", ReadAt::Latest).await.unwrap(), Some(b.clone()));
        s.create("c", val("c")).await.unwrap()
        // Dropped without close: as after a crash, no snapshot.
    };
    std::fs::write(&snapshot, saved).unwrap();
    let s = open();
    assert_eq!(
        s.get("c", ReadAt::Latest).await.unwrap(),
        Some(c.clone()),
        "the stale snapshot is ignored"
    );
    assert_eq!(s.get("a", ReadAt::Latest).await.unwrap(), Some(a));
    assert_eq!(s.current_revision(), c.revision);
}

/// A damaged snapshot is ignored and sled is scanned: one whose bytes changed fails its
/// checksum; one whose checksum holds but whose records do not parse (a length past the end)
/// is dropped while loading. Either way the store opens with its data intact.
#[tokio::test]
async fn sled_ignores_a_damaged_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let open =
        || SledStore::open(dir.path(), SledOptions::default(), Arc::new(AtRevision)).unwrap();
    let a = {
        let s = open();
        let a = s.create("a", val("a")).await.unwrap();
        s.close().await;
        a
    };
    let snapshot = dir.path().join("snapshot");
    let saved = std::fs::read(&snapshot).unwrap();
    // A flipped bit in the value.
    let mut flipped = saved.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&snapshot, &flipped).unwrap();
    {
        let s = open();
        assert_eq!(s.get("a", ReadAt::Latest).await.unwrap(), Some(a.clone()));
        s.close().await;
    }
    // A well-formed header and checksum around a record whose key length overflows.
    let saved = std::fs::read(&snapshot).unwrap();
    let header = 8 + 8 + 4; // magic, revision, fingerprint length (the fingerprint is empty)
    let mut records = Vec::new();
    records.extend_from_slice(&u64::MAX.to_be_bytes());
    records.extend_from_slice(&16u64.to_be_bytes());
    records.extend_from_slice(&[0; 24]);
    let mut forged = saved[..header].to_vec();
    forged.extend_from_slice(&(records.len() as u64).to_be_bytes());
    forged.extend_from_slice(&crc32fast::hash(&records).to_be_bytes());
    forged.extend_from_slice(&records);
    std::fs::write(&snapshot, &forged).unwrap();
    let s = open();
    assert_eq!(s.get("a", ReadAt::Latest).await.unwrap(), Some(a));
    assert!(!snapshot.exists());
}
