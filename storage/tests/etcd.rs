//! What only the etcd backend promises, against real etcd members on loopback: several stores
//! on one etcd behave as one; compaction turns old revisions into "too old"; the loss of the
//! only member, or of the leader of three, loses no acknowledged write and the watch caches
//! carry on without starting over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::etcd::compactor::{self, Round};
use storage::etcd::testing::EtcdCluster;
use storage::etcd::{EtcdOptions, EtcdStore};
use storage::index::IndexOptions;
use storage::versioner::Unversioned;
use storage::{Error, ListOptions, ReadAt, Store, Update, WatchStart};

async fn store(cluster: &EtcdCluster, history: usize) -> EtcdStore {
    store_waiting(cluster, history, Duration::from_secs(3)).await
}

/// A store whose reads wait up to `wait` for its caches to catch up.
async fn store_waiting(cluster: &EtcdCluster, history: usize, wait: Duration) -> EtcdStore {
    store_paging(cluster, history, wait, EtcdOptions::default().list_page).await
}

/// A store reading lists from etcd `list_page` keys per request.
async fn store_paging(
    cluster: &EtcdCluster,
    history: usize,
    wait: Duration,
    list_page: usize,
) -> EtcdStore {
    let store = EtcdStore::connect(
        EtcdOptions {
            endpoints: cluster.endpoints(),
            prefix: "/test".into(),
            compaction_interval: None,
            resources: vec!["a/".into(), "b/".into()],
            index: IndexOptions {
                history,
                freshness_wait: wait,
                ..IndexOptions::default()
            },
            request_timeout: Duration::from_secs(2),
            list_page,
            ..EtcdOptions::default()
        },
        Arc::new(Unversioned),
    )
    .await
    .unwrap();
    store.ready(Duration::from_secs(30)).await.unwrap();
    store
}

fn v(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

fn list(prefix: &str, at: ReadAt) -> ListOptions {
    ListOptions {
        prefix: prefix.into(),
        at,
        ..Default::default()
    }
}

/// Two stores on one etcd are two replicas: a write through one is seen by a consistent read,
/// a watch and a guarded write of the other, and a page's revision and continue key carry over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_revisions_reads_and_conflicts() {
    let cluster = EtcdCluster::start(1).await;
    let (one, two) = (store(&cluster, 100).await, store(&cluster, 100).await);
    let mut watch = two.watch("a/", WatchStart::Now).await.unwrap();
    let created = one.create("a/x", v("1")).await.unwrap();
    // Read-your-writes on the other replica, at once.
    let seen = two.get("a/x", ReadAt::Latest).await.unwrap().unwrap();
    assert_eq!(seen.revision, created.revision);
    // Its watch gets the write, in order.
    let e = watch.next_event().await.unwrap().unwrap();
    assert_eq!((e.key.as_ref(), e.revision), ("a/x", created.revision));
    // A stale guarded write on the second replica is a conflict.
    let updated = one.update("a/x", created.revision, v("2")).await.unwrap();
    let err = two
        .update("a/x", created.revision, v("3"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { actual, .. } if actual == updated.revision),
        "{err}"
    );
    // A page listed on one replica continues on the other at the same revision.
    for i in 0..5 {
        one.create(&format!("a/p{i}"), v("p")).await.unwrap();
    }
    let first = one
        .list(
            ListOptions {
                limit: Some(2),
                ..list("a/", ReadAt::Latest)
            },
            None,
        )
        .await
        .unwrap();
    one.create("a/p00", v("later")).await.unwrap();
    let rest = two
        .list(
            ListOptions {
                start_after: first.continue_after.clone(),
                ..list("a/", ReadAt::Exact(first.revision))
            },
            None,
        )
        .await
        .unwrap();
    let keys: Vec<_> = first
        .items
        .iter()
        .chain(&rest.items)
        .map(|kv| kv.key.to_string())
        .collect();
    assert_eq!(keys, ["a/p0", "a/p1", "a/p2", "a/p3", "a/p4", "a/x"]);
    assert_eq!(first.remaining, Some(4));
    assert_eq!(rest.revision, first.revision);
}

/// A consistent read of a resource nobody writes still reflects writes to others: the cache
/// catches up through an etcd progress notification, not through an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_reads_catch_up_through_progress_notifications() {
    let cluster = EtcdCluster::start(1).await;
    // Waits long enough that only a stalled machine would send a read to etcd.
    let s = store_waiting(&cluster, 100, Duration::from_secs(20)).await;
    // The etcd the tests run has both progress-notification fixes (3.5.13+).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.serves_consistent_reads_from_cache() {
        assert!(
            Instant::now() < deadline,
            "etcd's version was not detected as 3.5.13+"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut watch = s.watch("a/", WatchStart::Now).await.unwrap();
    let written = s.create("b/elsewhere", v("1")).await.unwrap();
    let page = s.list(list("a/", ReadAt::Latest), None).await.unwrap();
    assert!(page.revision >= written.revision, "{page:?}");
    for i in 0..20 {
        let w = s.create(&format!("b/{i}"), v("x")).await.unwrap();
        let got = s.get("a/none", ReadAt::Latest).await.unwrap();
        assert!(got.is_none());
        let page = s.list(list("a/", ReadAt::Latest), None).await.unwrap();
        assert!(page.revision >= w.revision);
    }
    assert_eq!(s.consistent_reads_from_etcd(), 0, "served from the cache");
    // The watch of `a/` hears of it as progress (what bookmarks carry).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline.into(), watch.next())
            .await
            .expect("a progress notification")
            .unwrap()
            .unwrap();
        match next {
            Update::Progress(r) if r >= written.revision => break,
            Update::Progress(_) => {}
            Update::Event(e) => panic!("no event expected: {e:?}"),
        }
    }
}

/// A member that stops answering for longer than a watch stream may stay silent (a frozen
/// machine), with reads waiting on the caches meanwhile: once it answers again, the caches
/// serve consistent reads from memory again and a write reaches a watch, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_recover_from_a_frozen_member() {
    let cluster = EtcdCluster::start(1).await;
    let s = store_waiting(&cluster, 100, Duration::from_secs(2)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.serves_consistent_reads_from_cache() {
        assert!(Instant::now() < deadline, "etcd 3.5.13+ detected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.create("a/before", v("1")).await.unwrap();
    cluster.freeze(0, true);
    // Readers wait on the cache and then on etcd, which answers nothing: each is bounded.
    let started = Instant::now();
    let frozen = s.list(list("a/", ReadAt::Latest), None).await;
    assert!(frozen.is_err(), "{frozen:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(11)).await;
    cluster.freeze(0, false);

    // A consistent read once etcd answers again (the cache may not have heard of `a/before`
    // before the freeze), then a watch from what it read: the next event is the next write.
    let deadline = Instant::now() + Duration::from_secs(20);
    let current = loop {
        match s.list(list("a/", ReadAt::Latest), None).await {
            Ok(page) => break page,
            Err(e) => assert!(Instant::now() < deadline, "etcd answers again: {e:?}"),
        }
    };
    assert_eq!(current.items.len(), 1);
    let mut watch = s
        .watch("a/", WatchStart::After(current.revision))
        .await
        .unwrap();
    let written = s.create("a/after", v("2")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline.into(), watch.next()).await {
            Ok(Some(Ok(Update::Event(e)))) => {
                assert_eq!(&*e.key, "a/after");
                break;
            }
            Ok(Some(Ok(Update::Progress(_)))) => {}
            other => panic!("the write reaches the watch: {other:?}"),
        }
    }
    let from_etcd = s.consistent_reads_from_etcd();
    for _ in 0..5 {
        let page = s.list(list("a/", ReadAt::Latest), None).await.unwrap();
        assert!(page.revision >= written.revision);
        assert_eq!(page.items.len(), 2);
    }
    assert_eq!(
        s.consistent_reads_from_etcd(),
        from_etcd,
        "served from the caches again"
    );
}

/// Compaction removes history: a list at a revision older than both the cache window and the
/// compaction is 410 (too old); before compaction etcd still serves it. One replica compacts
/// per round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_makes_old_revisions_too_old_and_one_replica_compacts() {
    let cluster = EtcdCluster::start(1).await;
    let s = store(&cluster, 4).await;
    for i in 0..3 {
        s.create(&format!("a/{i}"), v("old")).await.unwrap();
    }
    let then = s.list(list("a/", ReadAt::Latest), None).await.unwrap();
    for i in 0..3 {
        let kv = s
            .get(&format!("a/{i}"), ReadAt::Latest)
            .await
            .unwrap()
            .unwrap();
        s.update(&kv.key, kv.revision, v("new")).await.unwrap();
        s.create(&format!("a/n{i}"), v("new")).await.unwrap();
    }
    s.list(list("a/", ReadAt::Latest), None).await.unwrap();
    assert!(
        then.revision < s.oldest_revision(),
        "outside the cache window"
    );
    // Served by etcd at that revision, exactly as it was.
    let past = s
        .list(list("a/", ReadAt::Exact(then.revision)), None)
        .await
        .unwrap();
    let values: Vec<_> = past.items.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(values, vec![v("old"); 3]);
    assert_eq!(past.revision, then.revision);

    // Two replicas' compactors: the first round of each only records; then one wins.
    let kv = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap()
        .kv_client();
    let limit = Duration::from_secs(2);
    let (a, won) = compactor::compact(&kv, Round::default(), limit)
        .await
        .unwrap();
    assert_eq!(won, None);
    let (b, lost) = compactor::compact(&kv, Round::default(), limit)
        .await
        .unwrap();
    assert_eq!(lost, None, "the second replica follows the first");
    assert_eq!(b.version, a.version);
    s.create("a/after", v("x")).await.unwrap();
    let (_, compacted) = compactor::compact(&kv, a, limit).await.unwrap();
    assert_eq!(compacted, Some(a.revision));
    let (_, again) = compactor::compact(&kv, b, limit).await.unwrap();
    assert_eq!(again, None, "only one replica compacts per interval");
    let err = s
        .list(list("a/", ReadAt::Exact(then.revision)), None)
        .await
        .unwrap_err();
    assert!(err.is_too_old(), "{err}");
}

/// Lists that read etcd do so a page of keys at a time at one revision: a watch cache's first
/// list, and lists the cache cannot serve (before its window), whole, limited and filtered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_read_etcd_page_by_page_at_one_revision() {
    let cluster = EtcdCluster::start(1).await;
    let writer = store(&cluster, 4).await;
    for i in 0..10 {
        writer
            .create(&format!("a/{i:02}"), v(&format!("v{i}")))
            .await
            .unwrap();
    }
    let then = writer.list(list("a/", ReadAt::Latest), None).await.unwrap();
    // A replica whose cache lists 3 keys per request.
    let s = store_paging(&cluster, 4, Duration::from_secs(3), 3).await;
    let cached = s.list(list("a/", ReadAt::Latest), None).await.unwrap();
    assert_eq!(cached.items, then.items);
    // Moves the cache's window past `then`, and changes what a list at `then` would see.
    for i in 0..5 {
        let kv = s
            .get(&format!("a/{i:02}"), ReadAt::Latest)
            .await
            .unwrap()
            .unwrap();
        s.update(&kv.key, kv.revision, v("changed")).await.unwrap();
    }
    s.list(list("a/", ReadAt::Latest), None).await.unwrap();
    assert!(
        then.revision < s.oldest_revision(),
        "outside the cache window"
    );
    let whole = s
        .list(list("a/", ReadAt::Exact(then.revision)), None)
        .await
        .unwrap();
    assert_eq!(whole.items, then.items);
    assert_eq!((whole.revision, whole.remaining), (then.revision, Some(0)));
    let page = s
        .list(
            ListOptions {
                limit: Some(4),
                ..list("a/", ReadAt::Exact(then.revision))
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items, then.items[..4]);
    assert_eq!(page.continue_after.as_deref(), Some("a/03"));
    assert_eq!(page.remaining, Some(6));
    let odd = |kv: &storage::KeyValue| kv.value.ends_with(b"1") || kv.value.ends_with(b"7");
    let filtered = s
        .list(
            ListOptions {
                limit: Some(1),
                ..list("a/", ReadAt::Exact(then.revision))
            },
            Some(&odd),
        )
        .await
        .unwrap();
    assert_eq!(filtered.items, then.items[1..2]);
    assert_eq!(filtered.continue_after.as_deref(), Some("a/01"));
    let rest = s
        .list(
            ListOptions {
                start_after: Some("a/01".into()),
                ..list("a/", ReadAt::Exact(then.revision))
            },
            Some(&odd),
        )
        .await
        .unwrap();
    assert_eq!(rest.items, then.items[7..8]);
}

/// Writes with retries, recording what was acknowledged; errors must be retryable ones.
async fn write_until(
    s: Arc<EtcdStore>,
    name: &'static str,
    stop: Instant,
) -> BTreeMap<String, u64> {
    let mut acked = BTreeMap::new();
    let mut i = 0;
    while Instant::now() < stop {
        let key = format!("a/{name}-{i:05}");
        match s.create(&key, v(name)).await {
            Ok(kv) => {
                acked.insert(key, kv.revision);
                i += 1;
            }
            Err(Error::AlreadyExists(_)) => {
                // A retried create whose first attempt committed after all: it is there.
                i += 1;
            }
            Err(e @ (Error::Unavailable(_) | Error::Timeout(_))) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("unexpected error while etcd fails over: {e}"),
        }
    }
    acked
}

/// Every acknowledged write is there after the failures, and the watch that ran through them
/// delivered each of them once, in revision order.
async fn check(s: &EtcdStore, acked: &BTreeMap<String, u64>, watched: &[(String, u64)]) {
    for (key, rev) in acked {
        let kv = s
            .get(key, ReadAt::Latest)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {key} was lost"));
        assert_eq!(kv.revision, *rev);
    }
    assert!(
        watched.windows(2).all(|w| w[0].1 < w[1].1),
        "watch events out of order or repeated"
    );
    let delivered: BTreeMap<&str, u64> = watched.iter().map(|(k, r)| (k.as_str(), *r)).collect();
    for (key, rev) in acked {
        assert_eq!(
            delivered.get(key.as_str()),
            Some(rev),
            "the watch missed {key}"
        );
    }
}

async fn collect(mut watch: storage::Watch, until: Instant) -> Vec<(String, u64)> {
    let mut got = Vec::new();
    while let Ok(Some(next)) = tokio::time::timeout_at(until.into(), watch.next()).await {
        match next.expect("the watch never falls behind or starts over") {
            Update::Event(e) => got.push((e.key.to_string(), e.revision)),
            Update::Progress(_) => {}
        }
    }
    got
}

/// The only member is killed and restarted under a write load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_the_only_member_loses_nothing() {
    let mut cluster = EtcdCluster::start(1).await;
    let s = Arc::new(store(&cluster, 100_000).await);
    let watch = s.watch("a/", WatchStart::Now).await.unwrap();
    let stop = Instant::now() + Duration::from_secs(6);
    let writers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|n| tokio::spawn(write_until(s.clone(), n, stop)))
        .collect();
    let watcher = tokio::spawn(collect(watch, stop + Duration::from_secs(8)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kill(0);
    // While it is down, a write fails within the request time limit, retryably.
    let started = Instant::now();
    let err = s.create("a/while-down", v("x")).await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(_) | Error::Timeout(_)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(s.check_health().await.is_err());
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(0);
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(s.check_health().await.is_ok());
    let watched = watcher.await.unwrap();
    check(&s, &acked, &watched).await;
}

/// The leader of three is killed under a write load; a new one is elected and writes resume by
/// themselves. Then another member is killed and brought back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_change_loses_nothing() {
    let mut cluster = EtcdCluster::start(3).await;
    let s = Arc::new(store(&cluster, 100_000).await);
    let other = store(&cluster, 100_000).await;
    let watch = other.watch("a/", WatchStart::Now).await.unwrap();
    let stop = Instant::now() + Duration::from_secs(8);
    let writers: Vec<_> = ["w1", "w2", "w3"]
        .into_iter()
        .map(|n| tokio::spawn(write_until(s.clone(), n, stop)))
        .collect();
    let watcher = tokio::spawn(collect(watch, stop + Duration::from_secs(8)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = cluster.leader().await.expect("a leader");
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let follower = (leader + 1) % 3;
    cluster.kill(follower);
    cluster.restart(follower);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(leader);
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() > 50,
        "writes resumed ({} acknowledged)",
        acked.len()
    );
    let watched = watcher.await.unwrap();
    check(&s, &acked, &watched).await;
    check(&other, &acked, &watched).await;
}
