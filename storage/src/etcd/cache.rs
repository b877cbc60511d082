//! The watch cache of one resource: its keys listed once from etcd, then kept current by one
//! etcd watch (k8s.io/apiserver's cacher and reflector).
//!
//! The cache is an [`Index`] like the embedded backends': reads and watches are served from it.
//! Its revision advances with every event of the resource and with etcd's progress
//! notifications (which say "nothing more up to revision R"), requested when a consistent read
//! waits for a revision no event would bring, and every `progress_interval` otherwise.
//!
//! When the watch breaks (a member died, lost its leader, the connection dropped) the cache
//! watches again from its revision and loses nothing. When etcd no longer has that revision
//! (compacted while the cache was cut off), or an event does not follow from what the cache
//! holds, it lists again: every watch on it then ends with [`Error::Lagged`], so the API's
//! watchers start over.

use super::{Keys, Retry, mod_revision};
use crate::index::{Index, IndexOptions};
use crate::{Error, KeyValue, Result, Revision, Versioner};
use bytes::Bytes;
use etcd_client::{Client, EventType, WatchOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// While a reader waits for a revision, a progress notification is requested this often.
const PROGRESS_RETRY: Duration = Duration::from_millis(100);
/// A watch stream that takes no progress request for this long, or answers none for this long
/// after one was sent, is stuck (etcd answers them at once while the watch is in sync): the
/// cache watches again from its revision, losing nothing.
const STUCK_STREAM: Duration = Duration::from_secs(10);
/// Largest etcd response accepted (a list page or a batch of watch events).
pub(crate) const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// What every watch cache of a store shares.
#[derive(Clone, Debug)]
pub struct Settings {
    /// History window and fan-out.
    pub index: IndexOptions,
    /// Time limit of one etcd request.
    pub request_timeout: Duration,
    /// How often an idle cache asks for a progress notification.
    pub progress_interval: Duration,
    /// Keys per range request when the cache lists.
    pub list_page: usize,
    /// Whether requested progress notifications can be trusted ([`super::features`]).
    pub progress_safe: Arc<AtomicBool>,
}

/// One resource's watch cache.
pub struct Cache {
    /// The store-level key prefix of the resource (`apps/`).
    prefix: String,
    index: Index,
    /// Whether the first list is in.
    ready: watch::Sender<bool>,
    /// Asks the watch loop for a progress notification.
    progress: Notify,
    /// Whether requested progress notifications can be trusted (else none is requested).
    progress_safe: Arc<AtomicBool>,
    /// The consistent reads of this resource, by how they were served.
    reads: ConsistentReads,
}

/// Counts of a resource's consistent reads (no resourceVersion), by whether they fell back to
/// etcd and whether they succeeded: the labels `fallback` and `success` of kube-apiserver's
/// `apiserver_watch_cache_consistent_read_total` (k8s.io/apiserver `pkg/storage/cacher`).
#[derive(Debug, Default)]
pub struct ConsistentReads {
    /// Indexed by `2 * fallback + success`.
    counts: [std::sync::atomic::AtomicU64; 4],
}

impl ConsistentReads {
    fn slot(fallback: bool, success: bool) -> usize {
        2 * usize::from(fallback) + usize::from(success)
    }

    /// Counts one read.
    pub fn record(&self, fallback: bool, success: bool) {
        self.counts[Self::slot(fallback, success)].fetch_add(1, Ordering::Relaxed);
    }

    /// Reads counted so far that did (`fallback`) or did not go to etcd and did (`success`) or
    /// did not succeed.
    pub fn count(&self, fallback: bool, success: bool) -> u64 {
        self.counts[Self::slot(fallback, success)].load(Ordering::Relaxed)
    }
}

impl Cache {
    /// Starts the cache of the keys under `prefix`; it lists and watches in the returned task.
    pub fn start(
        client: Client,
        keys: Keys,
        prefix: String,
        versioner: Arc<dyn Versioner>,
        settings: &Settings,
    ) -> (Arc<Cache>, tokio::task::JoinHandle<()>) {
        let (ready, _) = watch::channel(false);
        let cache = Arc::new(Cache {
            prefix,
            index: Index::new(Vec::new(), crate::FIRST_REVISION, settings.index, versioner),
            ready,
            progress: Notify::new(),
            progress_safe: settings.progress_safe.clone(),
            reads: ConsistentReads::default(),
        });
        let task = tokio::spawn(reflect(cache.clone(), client, keys, settings.clone()));
        (cache, task)
    }

    /// The resource's key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The consistent reads of this resource so far.
    pub fn consistent_reads(&self) -> &ConsistentReads {
        &self.reads
    }

    /// What reads and watches are served from.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Waits up to `wait` for the first list ([`Error::Unavailable`] when it is not in).
    pub async fn ready(&self, wait: Duration) -> Result<()> {
        let mut ready = self.ready.subscribe();
        let in_time = tokio::time::timeout(wait, ready.wait_for(|r| *r)).await;
        match in_time {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Initializing(format!(
                "the watch cache of {} has not listed from etcd yet",
                self.prefix
            ))),
        }
    }

    /// Waits up to `wait` until the cache has reached `revision`, asking etcd for progress
    /// notifications meanwhile; whether it did.
    pub async fn wait_for(&self, revision: Revision, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.index.revision() >= revision {
                return true;
            }
            self.progress.notify_one();
            let step = (Instant::now() + PROGRESS_RETRY).min(deadline);
            if self.index.wait_until(revision, step).await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Like [`Cache::wait_for`], failing with [`Error::FutureRevision`] (kube's "Too large
    /// resource version") when the revision does not come.
    pub async fn require(&self, revision: Revision, wait: Duration) -> Result<()> {
        if self.wait_for(revision, wait).await {
            return Ok(());
        }
        Err(Error::FutureRevision {
            requested: revision,
            current: self.index.revision(),
        })
    }

    /// Ends every watch on the cache.
    pub fn close(&self) {
        self.index.close();
    }
}

/// Doubling waits between attempts to reach etcd.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Backoff::MAX);
        now
    }

    fn reset(&mut self) {
        self.0 = Backoff::FIRST;
    }
}

/// Lists the keys under the cache's prefix at one revision, page by page, stamping values off
/// the async worker.
async fn list(
    client: &Client,
    keys: &Keys,
    prefix: &str,
    versioner: &dyn Versioner,
    settings: &Settings,
) -> Result<(Vec<KeyValue>, Revision)> {
    let mut items = Vec::new();
    let range = super::Range {
        kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
        start: keys.etcd(prefix),
        end: keys.range_end(prefix),
        revision: None,
        page: settings.list_page,
        limit: settings.request_timeout,
        retry: Retry::Never,
    };
    let revision = range
        .read(|response| {
            crate::long_running(|| {
                for item in response.kvs() {
                    if let Some(key) = keys.store(item.key()) {
                        let revision = mod_revision(item);
                        items.push(KeyValue {
                            key: Arc::from(key),
                            value: versioner.stamp(key, item.value(), revision),
                            revision,
                        });
                    }
                }
            });
            true
        })
        .await?;
    Ok((items, revision))
}

/// Why a watch stream ended.
enum Ended {
    /// Watch again from the cache's revision.
    Resume,
    /// List again.
    Relist,
}

/// Lists, then watches, for as long as the task runs.
async fn reflect(cache: Arc<Cache>, client: Client, keys: Keys, settings: Settings) {
    let mut backoff = Backoff(Backoff::FIRST);
    let mut listed = false;
    loop {
        if !listed {
            let versioner = cache.index.versioner().clone();
            match list(&client, &keys, &cache.prefix, versioner.as_ref(), &settings).await {
                Ok((items, revision)) => {
                    crate::long_running(|| cache.index.reset(items, revision));
                    cache.ready.send_replace(true);
                    listed = true;
                    tracing::info!(resource = %cache.prefix, revision, keys = cache.index.len(), "watch cache listed");
                }
                Err(e) => {
                    tracing::warn!(resource = %cache.prefix, error = %e, "cannot list from etcd; retrying");
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            }
        }
        match watch_from(
            &cache,
            &client,
            &keys,
            settings.progress_interval,
            &mut backoff,
        )
        .await
        {
            Ended::Resume => {}
            Ended::Relist => listed = false,
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Watches from the cache's revision until the stream ends.
async fn watch_from(
    cache: &Cache,
    client: &Client,
    keys: &Keys,
    progress_interval: Duration,
    backoff: &mut Backoff,
) -> Ended {
    let from = cache.index.revision() + 1;
    let options = WatchOptions::new()
        .with_range(keys.range_end(&cache.prefix))
        .with_start_revision(from as i64)
        .with_prev_key()
        .with_progress_notify();
    let mut watcher = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    let started = tokio::time::timeout(
        STUCK_STREAM,
        watcher.watch(keys.etcd(&cache.prefix), Some(options)),
    )
    .await;
    let stream = match started {
        Ok(Ok(s)) => s,
        Err(_) => {
            tracing::warn!(resource = %cache.prefix, "etcd did not start a watch; retrying");
            return Ended::Resume;
        }
        Ok(Err(e)) => {
            tracing::warn!(resource = %cache.prefix, error = %e, "cannot watch etcd; retrying");
            return Ended::Resume;
        }
    };
    let (mut requests, mut responses) = stream.split();
    let mut ticker = tokio::time::interval(progress_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the oldest progress request not answered yet (by any message) was sent.
    let mut unanswered: Option<Instant> = None;
    // Asks for a progress notification; `false` (logged) when the stream takes no request.
    let ask = async |requests: &mut etcd_client::WatchRequestSender,
                     unanswered: &mut Option<Instant>| {
        let sent = tokio::time::timeout(STUCK_STREAM, requests.request_progress()).await;
        unanswered.get_or_insert_with(Instant::now);
        let taken = matches!(sent, Ok(Ok(())));
        if !taken {
            tracing::warn!(resource = %cache.prefix, "etcd watch takes no progress request; watching again");
        }
        taken
    };
    loop {
        tokio::select! {
            message = responses.message() => {
                unanswered = None;
                let response = match message {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        tracing::info!(resource = %cache.prefix, "etcd watch ended; watching again");
                        return Ended::Resume;
                    }
                    Err(e) => {
                        tracing::warn!(resource = %cache.prefix, error = %e, "etcd watch failed; watching again");
                        return Ended::Resume;
                    }
                };
                backoff.reset();
                if response.canceled() {
                    if response.compact_revision() > 0 {
                        tracing::warn!(resource = %cache.prefix, compacted = response.compact_revision(), "the cache's revision was compacted; listing again");
                        return Ended::Relist;
                    }
                    tracing::info!(resource = %cache.prefix, reason = response.cancel_reason(), "etcd canceled the watch; watching again");
                    return Ended::Resume;
                }
                if response.created() {
                    continue;
                }
                if response.events().is_empty() {
                    // A progress notification: nothing of this resource up to this revision.
                    if let Ok(revision) = super::revision_of(response.header()) {
                        cache.index.advance(revision);
                    }
                    continue;
                }
                if !apply(cache, keys, response.events()) {
                    return Ended::Relist;
                }
            }
            // Whether progress may be asked for is read when the branch fires, not as a
            // precondition: a precondition is read only when the `select!` starts, and a
            // resource nobody writes would then wait on its stream for ever, never asking
            // once member versions have been found trustworthy.
            () = cache.progress.notified() => {
                if cache.progress_safe.load(Ordering::Acquire)
                    && !ask(&mut requests, &mut unanswered).await
                {
                    return Ended::Resume;
                }
            }
            _ = ticker.tick() => {
                if cache.progress_safe.load(Ordering::Acquire)
                    && !ask(&mut requests, &mut unanswered).await
                {
                    return Ended::Resume;
                }
            }
            () = tokio::time::sleep_until(unanswered.map_or_else(Instant::now, |t| t + STUCK_STREAM)), if unanswered.is_some() => {
                tracing::warn!(resource = %cache.prefix, "etcd watch answers no progress request; watching again");
                return Ended::Resume;
            }
        }
    }
}

/// Applies a batch of watch events; `false` when one does not follow from what the cache
/// holds (its previous value is not the cached one), which means the cache missed something.
fn apply(cache: &Cache, keys: &Keys, events: &[etcd_client::Event]) -> bool {
    let mut changes: Vec<(Arc<str>, Revision, Option<Bytes>)> = Vec::with_capacity(events.len());
    let mut pending: std::collections::HashMap<&str, Option<Revision>> = Default::default();
    for event in events {
        let Some(kv) = event.kv() else { continue };
        let Some(key) = keys.store(kv.key()) else {
            continue;
        };
        let revision = mod_revision(kv);
        let cached = match pending.get(key) {
            Some(state) => *state,
            None => cache.index.get(key).map(|c| c.revision),
        };
        // A created key must be new to the cache; a changed one must change what it holds.
        let before = event.prev_kv().map(mod_revision);
        let created = event.event_type() == EventType::Put && kv.version() == 1;
        let follows = if created {
            cached.is_none()
        } else {
            before.is_none_or(|b| cached == Some(b))
        };
        if revision > cache.index.revision() && !follows {
            tracing::error!(resource = %cache.prefix, key, ?cached, ?before, revision, "a watch event does not follow from the cached value; listing again");
            return false;
        }
        match event.event_type() {
            EventType::Put => {
                pending.insert(key, Some(revision));
                changes.push((
                    Arc::from(key),
                    revision,
                    Some(Bytes::copy_from_slice(kv.value())),
                ));
            }
            EventType::Delete => {
                pending.insert(key, None);
                changes.push((Arc::from(key), revision, None));
            }
        }
    }
    cache.index.apply_committed(changes);
    true
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::etcd::testing::EtcdCluster;
    use crate::versioner::Unversioned;

    /// A cache whose watch was already waiting when progress notifications were found
    /// trustworthy asks for them from then on: a resource nobody writes still catches up with
    /// writes elsewhere. (It used to wait on its stream for ever, which under load made
    /// consistent reads of such a resource wait their full time and then go to etcd.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_resource_asks_for_progress_once_it_may() {
        let cluster = EtcdCluster::start(1).await;
        let client = Client::connect(cluster.endpoints(), None).await.unwrap();
        let safe = Arc::new(AtomicBool::new(false));
        let settings = Settings {
            index: IndexOptions::default(),
            request_timeout: Duration::from_secs(2),
            progress_interval: Duration::from_secs(60),
            list_page: 100,
            progress_safe: safe.clone(),
        };
        let keys = Keys::new("/quiet");
        let (cache, task) = Cache::start(
            client.clone(),
            keys.clone(),
            "a/".into(),
            Arc::new(Unversioned),
            &settings,
        );
        cache.ready(Duration::from_secs(10)).await.unwrap();
        // The watch is set up and waiting before progress may be asked for.
        tokio::time::sleep(Duration::from_secs(1)).await;
        safe.store(true, Ordering::Release);
        let put = client
            .kv_client()
            .put(keys.etcd("b/elsewhere"), "1", None)
            .await
            .unwrap();
        let revision = super::super::revision_of(put.header()).unwrap();
        assert!(
            cache.wait_for(revision, Duration::from_secs(10)).await,
            "the cache reached etcd's revision {revision}: at {}",
            cache.index().revision()
        );
        task.abort();
    }
}
