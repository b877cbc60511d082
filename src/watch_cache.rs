//! Watch fan-out: one storage subscription per resource feeds a bounded history window and the
//! bounded queue of every watcher of that resource.
//!
//! The dispatcher never waits for a watcher: when a watcher's queue is full it is closed (its
//! client re-watches, and re-lists if its resourceVersion has left the window), so a slow client
//! cannot slow writers or other watchers. JSON frames of an event are rendered once and shared
//! by every watcher that sends them.

use crate::kinds::Resource;
use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use storage::{Event, Revision, Store, Update, WatchStart};
use tokio::sync::mpsc;

/// An event with its shared renderings.
pub struct CachedEvent {
    /// The storage event.
    pub event: Event,
    /// `{"type":"ADDED|MODIFIED","object":<new>}` and `{"type":"DELETED","object":<old at the
    /// deletion's revision>}` in each served version (indexed like `crate::kinds::VERSIONS`),
    /// rendered on first use.
    frames: [[OnceLock<Bytes>; 3]; VERSION_COUNT],
}

/// How many versions frames are kept for.
const VERSION_COUNT: usize = crate::kinds::VERSIONS.len();

/// Which frame of an event a watcher sends (selector transitions can change it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `ADDED` with the new object.
    Added,
    /// `MODIFIED` with the new object.
    Modified,
    /// `DELETED` with the last state.
    Deleted,
}

impl Frame {
    /// The watch event type.
    pub fn name(self) -> &'static str {
        match self {
            Frame::Added => "ADDED",
            Frame::Modified => "MODIFIED",
            Frame::Deleted => "DELETED",
        }
    }
}

/// Wraps an object in a JSON watch event line.
pub fn frame(event_type: &str, object: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(object.len() + 32);
    out.put_slice(b"{\"type\":\"");
    out.put_slice(event_type.as_bytes());
    out.put_slice(b"\",\"object\":");
    out.put_slice(object);
    out.put_slice(b"}\n");
    out.freeze()
}

impl CachedEvent {
    fn new(event: Event) -> CachedEvent {
        CachedEvent {
            event,
            frames: Default::default(),
        }
    }

    /// The object this event shows: the new value, or for a deletion the last value at the
    /// deletion's revision.
    pub fn object(&self) -> Option<Bytes> {
        if let Some(now) = &self.event.value {
            return Some(now.clone());
        }
        let prev = self.event.prev.as_ref()?;
        crate::object::versioner::stamp(&prev.value, self.event.revision)
    }

    /// The JSON watch event line for a frame in a served version (its index in
    /// `crate::kinds::VERSIONS`), shared by every watcher of that version; `serve` turns the
    /// stored object into the object served (defaults, conversion).
    pub fn json_frame(
        &self,
        f: Frame,
        version: usize,
        serve: &dyn Fn(&Bytes) -> Option<Bytes>,
    ) -> Option<Bytes> {
        let slot = &self.frames.get(version)?[f as usize];
        if let Some(b) = slot.get() {
            return Some(b.clone());
        }
        let rendered = frame(f.name(), &serve(&self.object()?)?);
        Some(slot.get_or_init(|| rendered).clone())
    }
}

/// Why a watcher's stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// It fell behind (queue full): the client should re-watch.
    TooSlow,
    /// The server is shutting down or the cache restarted.
    Stopped,
}

/// A registered watcher's end of the fan-out.
pub struct Subscription {
    /// Events after the start revision, in order.
    pub events: mpsc::Receiver<Arc<CachedEvent>>,
    id: u64,
    cache: Arc<WatchCache>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cache.inner.lock().watchers.remove(&self.id);
    }
}

struct Watcher {
    /// Only keys under this prefix (a namespace), or all.
    prefix: String,
    /// Only events after this revision.
    after: Revision,
    tx: mpsc::Sender<Arc<CachedEvent>>,
}

struct Inner {
    watchers: HashMap<u64, Watcher>,
    next_id: u64,
    history: VecDeque<Arc<CachedEvent>>,
    /// Newest revision dispatched.
    revision: Revision,
    /// Watchers may start from any revision >= this.
    oldest: Revision,
    /// Set when the server stops: no new watchers.
    stopped: bool,
    /// Set once the storage subscription is in place (cleared while it is re-established).
    ready: bool,
}

/// The fan-out of one resource.
pub struct WatchCache {
    prefix: String,
    history: usize,
    queue: usize,
    inner: Mutex<Inner>,
    /// Mirrors `Inner::ready` for those waiting on it.
    ready: tokio::sync::watch::Sender<bool>,
}

/// Why a watcher could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The start revision is older than the window.
    TooOld {
        /// Asked for.
        requested: Revision,
        /// Oldest available.
        oldest: Revision,
    },
    /// The server is stopping.
    Stopped,
    /// The storage subscription is not (re)established yet.
    Initializing,
}

impl WatchCache {
    /// Starts the fan-out of a resource's key prefix: a background task subscribes to the store
    /// (retrying while it cannot, e.g. while etcd is unreachable) and dispatches.
    pub fn start(
        store: Arc<dyn Store>,
        resource: &Resource,
        history: usize,
        queue: usize,
    ) -> Arc<WatchCache> {
        let cache = Arc::new(WatchCache {
            prefix: format!("{}/", resource.kind.plural),
            history: history.max(1),
            queue: queue.max(1),
            inner: Mutex::new(Inner {
                watchers: HashMap::new(),
                next_id: 0,
                history: VecDeque::new(),
                revision: 0,
                oldest: 0,
                stopped: false,
                ready: false,
            }),
            ready: tokio::sync::watch::Sender::new(false),
        });
        tokio::spawn(dispatch(cache.clone(), store));
        cache
    }

    /// Registers a watcher of the keys under `prefix` (which must be within this resource) for
    /// the events after `after`.
    pub fn register(
        self: &Arc<Self>,
        prefix: &str,
        after: Revision,
    ) -> Result<Subscription, RegisterError> {
        let mut inner = self.inner.lock();
        if inner.stopped {
            return Err(RegisterError::Stopped);
        }
        if !inner.ready {
            return Err(RegisterError::Initializing);
        }
        if after < inner.oldest {
            return Err(RegisterError::TooOld {
                requested: after,
                oldest: inner.oldest,
            });
        }
        let (tx, rx) = mpsc::channel(self.queue);
        // Replay what the window holds after the start; a watcher too far behind to take
        // the replay is refused like one whose revision left the window.
        // The history is in revision order: skip to the first event after the start.
        let first = inner.history.partition_point(|e| e.event.revision <= after);
        for event in inner.history.range(first..) {
            if !event.event.key.starts_with(prefix) {
                continue;
            }
            if tx.try_send(event.clone()).is_err() {
                return Err(RegisterError::TooOld {
                    requested: after,
                    oldest: inner.oldest,
                });
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.watchers.insert(
            id,
            Watcher {
                prefix: prefix.to_string(),
                after,
                tx,
            },
        );
        Ok(Subscription {
            events: rx,
            id,
            cache: self.clone(),
        })
    }

    /// Returns once watchers can register, i.e. the storage subscription is in place (at once if
    /// it is now).
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// The newest revision dispatched.
    pub fn revision(&self) -> Revision {
        self.inner.lock().revision
    }

    /// Number of open watchers.
    pub fn watchers(&self) -> usize {
        self.inner.lock().watchers.len()
    }

    /// Closes every watcher and refuses new ones (server shutdown).
    pub fn stop(&self) {
        let mut inner = self.inner.lock();
        inner.stopped = true;
        inner.watchers.clear();
    }

    fn publish(&self, event: Arc<CachedEvent>) {
        let mut inner = self.inner.lock();
        inner.revision = event.event.revision;
        inner.history.push_back(event.clone());
        while inner.history.len() > self.history {
            if let Some(old) = inner.history.pop_front() {
                inner.oldest = old.event.revision;
            }
        }
        inner.watchers.retain(|_, w| {
            if event.event.revision <= w.after || !event.event.key.starts_with(&w.prefix) {
                return true;
            }
            match w.tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(prefix = %w.prefix, "closing a watcher that fell behind");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Every change up to `revision` has been dispatched (a progress notification).
    fn advance(&self, revision: Revision) {
        let mut inner = self.inner.lock();
        inner.revision = inner.revision.max(revision);
    }

    /// Starts over at `at` (a new storage subscription): every watcher is closed, the window
    /// begins there.
    fn restart(&self, at: Revision) {
        let mut inner = self.inner.lock();
        inner.watchers.clear();
        inner.history.clear();
        inner.revision = at;
        inner.oldest = at;
        inner.ready = true;
        self.ready.send_replace(true);
    }

    /// The subscription is gone; watchers are closed until it is back.
    fn suspend(&self) {
        let mut inner = self.inner.lock();
        inner.watchers.clear();
        inner.ready = false;
        self.ready.send_replace(false);
    }
}

/// Subscribes to the store and dispatches its events until it closes; re-subscribes (closing
/// every watcher, whose clients watch again) when the subscription fails.
async fn dispatch(cache: Arc<WatchCache>, store: Arc<dyn Store>) {
    const FIRST_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
    let mut retry = FIRST_RETRY;
    loop {
        let mut watch = match store.watch(&cache.prefix, WatchStart::Now).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(prefix = %cache.prefix, error = %e, "cannot watch the store; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(std::time::Duration::from_secs(5));
                continue;
            }
        };
        retry = FIRST_RETRY;
        cache.restart(watch.start_revision());
        loop {
            match watch.next().await {
                Some(Ok(Update::Event(event))) => {
                    cache.publish(Arc::new(CachedEvent::new((*event).clone())))
                }
                Some(Ok(Update::Progress(revision))) => cache.advance(revision),
                Some(Err(err)) => {
                    // The subscription fell behind the store, or the store started over.
                    tracing::warn!(prefix = %cache.prefix, error = %err, "watch cache fell behind; closing its watchers");
                    cache.suspend();
                    break;
                }
                None => {
                    cache.stop();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::MemoryStore;

    fn app() -> Arc<Resource> {
        crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "App")
            .unwrap()
    }

    async fn put(store: &MemoryStore, key: &str) -> Revision {
        store
            .create(key, Bytes::from_static(b"{\"metadata\":{}}"))
            .await
            .unwrap()
            .revision
    }

    async fn started(store: Arc<MemoryStore>, history: usize, queue: usize) -> Arc<WatchCache> {
        let cache = WatchCache::start(store, &app(), history, queue);
        cache.wait_ready().await;
        cache
    }

    async fn settle(cache: &WatchCache, rev: Revision) {
        while cache.revision() < rev {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn watchers_get_their_namespace_in_order_and_replay_history() {
        let store = Arc::new(MemoryStore::default());
        let cache = started(store.clone(), 100, 16).await;
        let start = cache.revision();
        let r1 = put(&store, "apps/a/x").await;
        put(&store, "apps/b/y").await;
        let r3 = put(&store, "apps/a/z").await;
        settle(&cache, r3).await;
        let mut all = cache.register("apps/", start).unwrap();
        let mut ns_a = cache.register("apps/a/", r1).unwrap();
        assert_eq!(
            all.events.recv().await.unwrap().event.key.as_ref(),
            "apps/a/x"
        );
        assert_eq!(
            all.events.recv().await.unwrap().event.key.as_ref(),
            "apps/b/y"
        );
        assert_eq!(ns_a.events.recv().await.unwrap().event.revision, r3);
        let r4 = put(&store, "apps/a/w").await;
        assert_eq!(ns_a.events.recv().await.unwrap().event.revision, r4);
        assert_eq!(cache.watchers(), 2);
        drop(ns_a);
        assert_eq!(cache.watchers(), 1);
    }

    #[tokio::test]
    async fn a_slow_watcher_is_closed_without_slowing_others() {
        let store = Arc::new(MemoryStore::default());
        let cache = started(store.clone(), 100, 4).await;
        let start = cache.revision();
        let mut slow = cache.register("apps/", start).unwrap();
        let mut fast = cache.register("apps/", start).unwrap();
        let mut last = 0;
        for i in 0..10 {
            last = put(&store, &format!("apps/a/{i}")).await;
            let e = fast.events.recv().await.unwrap();
            assert_eq!(e.event.revision, last);
        }
        settle(&cache, last).await;
        // The slow one got its queue's worth, then its channel was closed.
        let mut got = 0;
        while slow.events.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, 4);
        assert_eq!(cache.watchers(), 1);
    }

    #[tokio::test]
    async fn starts_outside_the_window_are_too_old() {
        let store = Arc::new(MemoryStore::default());
        let cache = started(store.clone(), 2, 16).await;
        let first = cache.revision();
        let mut last = 0;
        for i in 0..5 {
            last = put(&store, &format!("apps/a/{i}")).await;
        }
        settle(&cache, last).await;
        assert!(matches!(
            cache.register("apps/", first),
            Err(RegisterError::TooOld { .. })
        ));
        assert!(cache.register("apps/", last - 1).is_ok());
    }

    #[test]
    fn deleted_frames_carry_the_deletion_revision() {
        use serde_json::Value;
        let ev = CachedEvent::new(Event {
            kind: storage::EventKind::Deleted,
            key: Arc::from("apps/a/x"),
            revision: 9,
            value: None,
            prev: Some(storage::KeyValue {
                key: Arc::from("apps/a/x"),
                value: Bytes::from_static(br#"{"metadata":{"name":"x","resourceVersion":"5"}}"#),
                revision: 5,
            }),
        });
        let f: Value = serde_json::from_slice(
            &ev.json_frame(Frame::Deleted, 0, &|b| Some(b.clone()))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(f["type"], "DELETED");
        assert_eq!(f["object"]["metadata"]["resourceVersion"], "9");
    }
}
