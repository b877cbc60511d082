//! The in-memory MVCC index every backend serves reads from.
//!
//! It holds every current value (a persistent [`Map`]), the newest revision, a bounded history
//! of recent events (the window watches and paged lists can start from) and the live fan-out of
//! new events. Backends decide when changes become visible: the memory backend at once, the sled
//! backend once a batch is durable, the etcd backend when its watch delivers them.
//!
//! Locking: one `RwLock` guards the state, and nothing holds it for longer than a constant
//! amount of work. A read takes a snapshot of the map (O(1)) and the events it needs from the
//! history (bounded by the history window, not by the collection), then builds its answer
//! without the lock. A writer applies at most `APPLY_CHUNK` (64) changes per acquisition.

use crate::tree::Map;
use crate::watch::Signal;
use crate::{
    Error, Event, EventKind, Filter, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision,
    Versioner, Watch, WatchStart,
};
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// Most changes applied under one acquisition of the write lock.
const APPLY_CHUNK: usize = 64;

/// How much history and fan-out buffering an index keeps.
#[derive(Clone, Copy, Debug)]
pub struct IndexOptions {
    /// Events kept for watches and paged lists that start in the past.
    pub history: usize,
    /// Events buffered per live subscriber before it counts as lagging.
    pub fanout_buffer: usize,
    /// How long a read asking for a revision this index has not reached yet waits for it
    /// (kube-apiserver's watch cache waits 3 s, then answers "Too large resource version").
    pub freshness_wait: Duration,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            history: 10_000,
            fanout_buffer: 16_384,
            freshness_wait: Duration::from_secs(3),
        }
    }
}

/// A write waiting to be checked and given a revision.
pub enum Write {
    /// Create a key that must not exist.
    Create {
        /// The key.
        key: String,
        /// The value, without its revision.
        value: Bytes,
    },
    /// Replace the value of a key at an expected revision.
    Update {
        /// The key.
        key: String,
        /// The revision the key must be at.
        expected: Revision,
        /// The value, without its revision.
        value: Bytes,
    },
    /// Remove a key at an expected revision.
    Delete {
        /// The key.
        key: String,
        /// The revision the key must be at.
        expected: Revision,
    },
}

/// What a successful write reports back.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A create or update: the value as served.
    Written(KeyValue),
    /// A delete: the removed value and the revision of the deletion.
    Deleted(KeyValue, Revision),
}

/// A change with its revision, ready to apply.
#[derive(Clone, Debug)]
pub struct Change {
    /// The key.
    pub key: Arc<str>,
    /// The revision given to the write.
    pub revision: Revision,
    /// The new value as served (stamped), `None` for a deletion.
    pub value: Option<Bytes>,
}

/// A batch after checking: what to apply and what to answer each writer.
pub struct Prepared<R> {
    /// Changes to apply, in revision order.
    pub changes: Vec<Change>,
    /// One answer per write, with the writer's reply handle.
    pub outcomes: Vec<(R, Result<Outcome>)>,
    /// The store revision once the batch is applied.
    pub revision: Revision,
}

/// A current value.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Revision of the write that produced it.
    pub revision: Revision,
    /// The value as served (stamped).
    pub value: Bytes,
}

/// The mutable part of the index, behind one lock.
struct State {
    data: Map<Arc<str>, Entry>,
    revision: Revision,
    history: VecDeque<Arc<Event>>,
    history_capacity: usize,
    /// Watches and lists can start from any revision >= this one.
    oldest: Revision,
}

/// The shared index: state behind a read-write lock plus the live event fan-out.
pub struct Index {
    state: RwLock<State>,
    live: broadcast::Sender<Signal>,
    /// The newest revision, for readers waiting for one.
    newest: watch::Sender<Revision>,
    versioner: Arc<dyn Versioner>,
    options: IndexOptions,
}

/// What a reader took from the index under its lock.
struct Snapshot {
    data: Map<Arc<str>, Entry>,
    /// The revision served.
    revision: Revision,
    /// The first event after `revision` of every key under the listed range that changed since.
    changed: Vec<Arc<Event>>,
}

impl Index {
    /// An index over existing data, as served (stamped), at `revision` (the history starts
    /// empty there). `data` must be sorted by key without duplicates.
    pub fn new(
        data: impl IntoIterator<Item = KeyValue>,
        revision: Revision,
        options: IndexOptions,
        versioner: Arc<dyn Versioner>,
    ) -> Index {
        let (live, _) = broadcast::channel(options.fanout_buffer.max(1));
        let (newest, _) = watch::channel(revision);
        Index {
            state: RwLock::new(State {
                data: build(data),
                revision,
                history: VecDeque::new(),
                history_capacity: options.history.max(1),
                oldest: revision,
            }),
            live,
            newest,
            versioner,
            options,
        }
    }

    /// The versioner values are stamped with.
    pub fn versioner(&self) -> &Arc<dyn Versioner> {
        &self.versioner
    }

    /// The revision of the newest applied write (or progress notification).
    pub fn revision(&self) -> Revision {
        self.state.read().revision
    }

    /// The oldest revision a watch or list can start from.
    pub fn oldest(&self) -> Revision {
        self.state.read().oldest
    }

    /// Number of current keys.
    pub fn len(&self) -> usize {
        self.state.read().data.len()
    }

    /// Every current entry and the revision they are at, in O(1) (a snapshot of the map).
    pub fn entries(&self) -> (Map<Arc<str>, Entry>, Revision) {
        let st = self.state.read();
        (st.data.clone(), st.revision)
    }

    /// Number of current keys under a prefix, in O(log n).
    pub fn count(&self, prefix: &str) -> usize {
        let end = prefix_end(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        self.state
            .read()
            .data
            .count_range(Bound::Included(prefix), upper)
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current value of a key.
    pub fn get(&self, key: &str) -> Option<KeyValue> {
        let st = self.state.read();
        st.data.get_key_value(key).map(|(k, e)| KeyValue {
            key: k.clone(),
            value: e.value.clone(),
            revision: e.revision,
        })
    }

    /// Waits until the index has reached `revision`, for at most the freshness wait
    /// ([`Error::FutureRevision`] then).
    pub async fn wait_for(&self, revision: Revision) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.options.freshness_wait;
        if self.wait_until(revision, deadline).await {
            return Ok(());
        }
        Err(Error::FutureRevision {
            requested: revision,
            current: self.revision(),
        })
    }

    /// Waits until the index has reached `revision` or `deadline` has passed; whether it did.
    pub async fn wait_until(&self, revision: Revision, deadline: tokio::time::Instant) -> bool {
        let mut newest = self.newest.subscribe();
        loop {
            if *newest.borrow_and_update() >= revision {
                return true;
            }
            match tokio::time::timeout_at(deadline, newest.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return *newest.borrow() >= revision,
            }
        }
    }

    /// Resolves the freshness of an embedded backend's read: every acknowledged write is
    /// already visible, so only a revision not reached yet needs waiting for.
    pub async fn settle(&self, at: ReadAt) -> Result<()> {
        match at {
            ReadAt::Latest | ReadAt::Any => Ok(()),
            ReadAt::NotOlderThan(r) | ReadAt::Exact(r) => self.wait_for(r).await,
        }
    }

    /// Checks a batch of writes against the current state (and against earlier writes of the
    /// same batch), gives the valid ones consecutive revisions and stamps their values. Nothing
    /// is applied yet. Only one caller may prepare and apply at a time (the backend's writer).
    pub fn prepare<R>(&self, writes: Vec<(Write, R)>) -> Prepared<R> {
        let (data, revision) = {
            let st = self.state.read();
            (st.data.clone(), st.revision)
        };
        prepare(&data, revision, self.versioner.as_ref(), writes)
    }

    /// Checks and applies a batch at once (the memory backend's write path).
    pub fn prepare_and_apply<R>(&self, writes: Vec<(Write, R)>) -> Vec<(R, Result<Outcome>)> {
        let mut st = self.state.write();
        let data = st.data.clone();
        let prepared = prepare(&data, st.revision, self.versioner.as_ref(), writes);
        drop(data);
        for change in prepared.changes {
            self.apply_one(&mut st, change);
        }
        let revision = st.revision;
        drop(st);
        self.newest.send_replace(revision);
        prepared.outcomes
    }

    /// Makes changes visible in revision order: values, history and the live fan-out.
    pub fn apply(&self, changes: Vec<Change>) {
        let mut changes = changes.into_iter().peekable();
        while changes.peek().is_some() {
            let mut st = self.state.write();
            for change in changes.by_ref().take(APPLY_CHUNK) {
                self.apply_one(&mut st, change);
            }
            let revision = st.revision;
            drop(st);
            self.newest.send_replace(revision);
        }
    }

    /// Applies changes another system committed (the etcd watch): values without their revision
    /// are stamped first. Changes at or below the current revision are ignored.
    pub fn apply_committed(&self, changes: Vec<(Arc<str>, Revision, Option<Bytes>)>) {
        let current = self.revision();
        let changes = changes
            .into_iter()
            .filter(|(_, revision, _)| *revision > current)
            .map(|(key, revision, value)| Change {
                value: value.map(|v| self.versioner.stamp(&key, &v, revision)),
                key,
                revision,
            })
            .collect();
        self.apply(changes);
    }

    /// Records that every change up to `revision` has been applied although none of them
    /// touched this index (an etcd progress notification; other resources' writes).
    pub fn advance(&self, revision: Revision) {
        let mut st = self.state.write();
        if revision <= st.revision {
            return;
        }
        st.revision = revision;
        let _no_subscribers_is_fine = self.live.send(Signal::Progress(revision));
        drop(st);
        self.newest.send_replace(revision);
    }

    /// Replaces everything with a fresh snapshot at `revision` (the etcd watch could not resume:
    /// the cache re-lists). Every live watch ends with [`Error::Lagged`].
    pub fn reset(&self, data: impl IntoIterator<Item = KeyValue>, revision: Revision) {
        let data = build(data);
        let mut st = self.state.write();
        st.data = data;
        st.revision = revision;
        st.history.clear();
        st.oldest = revision;
        let _no_subscribers_is_fine = self.live.send(Signal::Reset);
        drop(st);
        self.newest.send_replace(revision);
    }

    /// Ends every live watch (the store is closing).
    pub fn close(&self) {
        let _no_subscribers_is_fine = self.live.send(Signal::Closed);
    }

    fn apply_one(&self, st: &mut State, change: Change) {
        let prev = match &change.value {
            Some(value) => st.data.insert(
                change.key.clone(),
                Entry {
                    revision: change.revision,
                    value: value.clone(),
                },
            ),
            None => st.data.remove(&*change.key),
        };
        let kind = match (&prev, &change.value) {
            (None, _) => EventKind::Added,
            (Some(_), Some(_)) => EventKind::Modified,
            (Some(_), None) => EventKind::Deleted,
        };
        st.revision = st.revision.max(change.revision);
        if prev.is_none() && change.value.is_none() {
            // Deleting what is not there changes nothing a reader can see.
            let _no_subscribers_is_fine = self.live.send(Signal::Progress(st.revision));
            return;
        }
        let event = Arc::new(Event {
            kind,
            key: change.key.clone(),
            revision: change.revision,
            value: change.value,
            prev: prev.map(|e| KeyValue {
                key: change.key,
                value: e.value,
                revision: e.revision,
            }),
        });
        st.history.push_back(event.clone());
        while st.history.len() > st.history_capacity {
            if let Some(dropped) = st.history.pop_front() {
                st.oldest = dropped.revision;
            }
        }
        // Sent under the lock, so a watch that subscribes under the lock sees each event
        // exactly once: either in its backlog or live.
        let _no_subscribers_is_fine = self.live.send(Signal::Event(event));
    }

    /// What a read of the keys in `[lower, prefix end)` at `at` needs, taken under the lock.
    fn snapshot(&self, at: ReadAt, prefix: &str, lower: Bound<&str>) -> Result<Snapshot> {
        let st = self.state.read();
        let revision = match at {
            ReadAt::Latest | ReadAt::Any | ReadAt::NotOlderThan(_) => st.revision,
            ReadAt::Exact(r) => r,
        };
        if revision < st.oldest {
            return Err(Error::TooOld {
                requested: revision,
                oldest: st.oldest,
            });
        }
        if revision > st.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: st.revision,
            });
        }
        let first_later = st.history.partition_point(|e| e.revision <= revision);
        let changed = st
            .history
            .range(first_later..)
            .filter(|e| e.key.starts_with(prefix) && in_lower(&e.key, lower))
            .cloned()
            .collect();
        Ok(Snapshot {
            data: st.data.clone(),
            revision,
            changed,
        })
    }

    /// [`Index::list`], run off the async worker ([`crate::long_running`]) when it may examine
    /// many entries ([`crate::may_be_large`]).
    pub fn list_long_running(
        &self,
        options: &ListOptions,
        filter: Option<Filter<'_>>,
    ) -> Result<ListResult> {
        let count = self.count(&options.prefix) as u64;
        if crate::may_be_large(options.limit, filter.is_some(), Some(count)) {
            crate::long_running(|| self.list(options, filter))
        } else {
            self.list(options, filter)
        }
    }

    /// A consistent page of the keys under a prefix, as of a revision in the history window.
    /// Costs O(limit + log n + changes since the revision) when no filter is given.
    pub fn list(&self, options: &ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult> {
        let prefix = options.prefix.as_str();
        let lower = match options.start_after.as_deref() {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let snapshot = self.snapshot(options.at, prefix, lower)?;
        Ok(page(&snapshot, prefix, lower, options.limit, filter))
    }

    /// Starts a watch on a prefix.
    pub fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch> {
        let st = self.state.read();
        let live = self.live.subscribe();
        match start {
            WatchStart::Now => Ok(Watch::new(prefix, st.revision, None, VecDeque::new(), live)),
            WatchStart::After(revision) => {
                if revision < st.oldest {
                    return Err(Error::TooOld {
                        requested: revision,
                        oldest: st.oldest,
                    });
                }
                let first = st.history.partition_point(|e| e.revision <= revision);
                let backlog = st
                    .history
                    .range(first..)
                    .filter(|e| e.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(Watch::new(
                    prefix,
                    revision.max(st.revision),
                    None,
                    backlog,
                    live,
                ))
            }
            WatchStart::Snapshot => Ok(Watch::new(
                prefix,
                st.revision,
                Some(st.data.clone()),
                VecDeque::new(),
                live,
            )),
        }
    }
}

/// Builds a map from values in any order (later duplicates win).
fn build(data: impl IntoIterator<Item = KeyValue>) -> Map<Arc<str>, Entry> {
    let mut entries: Vec<(Arc<str>, Entry)> = data
        .into_iter()
        .map(|kv| {
            (
                kv.key,
                Entry {
                    revision: kv.revision,
                    value: kv.value,
                },
            )
        })
        .collect();
    if entries.windows(2).all(|w| w[0].0 < w[1].0) {
        return Map::from_sorted(entries);
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut map = Map::new();
    for (k, v) in entries {
        map.insert(k, v);
    }
    map
}

fn in_lower(key: &str, lower: Bound<&str>) -> bool {
    match lower {
        Bound::Included(l) => key >= l,
        Bound::Excluded(l) => key > l,
        Bound::Unbounded => true,
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no bound).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Builds a page from a snapshot: the current values merged with the values as of the
/// snapshot's revision of every key changed since.
fn page(
    snapshot: &Snapshot,
    prefix: &str,
    lower: Bound<&str>,
    limit: Option<usize>,
    filter: Option<Filter<'_>>,
) -> ListResult {
    // Values as of the revision for every key changed after it: the previous value of the
    // first later event on that key (none if that event created the key).
    let mut overlay: BTreeMap<Arc<str>, Option<KeyValue>> = BTreeMap::new();
    for event in &snapshot.changed {
        overlay
            .entry(event.key.clone())
            .or_insert_with(|| event.prev.clone());
    }
    let current = snapshot
        .data
        .range_from(lower)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, e)| KeyValue {
            key: k.clone(),
            value: e.value.clone(),
            revision: e.revision,
        });
    let mut merged = MergeAsOf {
        current: current.peekable(),
        overlay: overlay
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .peekable(),
        examined: 0,
    };

    let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut last_examined: Option<Arc<str>> = None;
    let mut more = false;
    for kv in merged.by_ref() {
        if items.len() >= limit {
            more = true;
            break;
        }
        last_examined = Some(kv.key.clone());
        if filter.is_none_or(|f| f(&kv)) {
            items.push(kv);
        }
    }
    let remaining = match (&last_examined, more, filter) {
        (_, false, None) => Some(0),
        (Some(last), true, None) => Some(remaining_after(snapshot, &overlay, prefix, last)),
        _ => None,
    };
    ListResult {
        items,
        revision: snapshot.revision,
        continue_after: if more {
            last_examined.map(|k| k.to_string())
        } else {
            None
        },
        remaining,
        examined: merged.examined,
    }
}

/// How many keys under `prefix` after `last` existed at the snapshot's revision: counted from
/// the current map in O(log n), corrected by the keys that changed since.
fn remaining_after(
    snapshot: &Snapshot,
    overlay: &BTreeMap<Arc<str>, Option<KeyValue>>,
    prefix: &str,
    last: &str,
) -> u64 {
    let end = prefix_end(prefix);
    let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let now = snapshot.data.count_range(Bound::Excluded(last), upper) as i64;
    let mut correction: i64 = 0;
    for (key, then) in overlay.range::<str, _>((Bound::Excluded(last), upper)) {
        let existed = then.is_some();
        let exists = snapshot.data.get_key_value(key.as_ref()).is_some();
        correction += i64::from(existed) - i64::from(exists);
    }
    u64::try_from(now + correction).unwrap_or(0)
}

fn prepare<R>(
    data: &Map<Arc<str>, Entry>,
    start: Revision,
    versioner: &dyn Versioner,
    writes: Vec<(Write, R)>,
) -> Prepared<R> {
    // Keys already written earlier in this batch, with their pending state.
    let mut pending: HashMap<Arc<str>, Option<KeyValue>> = HashMap::new();
    let mut revision = start;
    let mut changes = Vec::new();
    let mut outcomes = Vec::with_capacity(writes.len());
    let current = |pending: &HashMap<Arc<str>, Option<KeyValue>>, key: &str| -> Option<KeyValue> {
        match pending.get(key) {
            Some(state) => state.clone(),
            None => data.get_key_value(key).map(|(k, e)| KeyValue {
                key: k.clone(),
                value: e.value.clone(),
                revision: e.revision,
            }),
        }
    };
    let mut write = |pending: &mut HashMap<Arc<str>, Option<KeyValue>>,
                     key: Arc<str>,
                     revision: Revision,
                     value: Option<Bytes>| {
        let served = value.map(|v| versioner.stamp(&key, &v, revision));
        let kv = served.clone().map(|value| KeyValue {
            key: key.clone(),
            value,
            revision,
        });
        pending.insert(key.clone(), kv.clone());
        changes.push(Change {
            key,
            revision,
            value: served,
        });
        kv
    };
    for (w, reply) in writes {
        let outcome = match w {
            Write::Create { key, value } => match current(&pending, &key) {
                Some(_) => Err(Error::AlreadyExists(key)),
                None => {
                    revision += 1;
                    let key: Arc<str> = Arc::from(key);
                    write(&mut pending, key, revision, Some(value))
                        .map(Outcome::Written)
                        .ok_or_else(|| Error::Backend("a create stored no value".into()))
                }
            },
            Write::Update {
                key,
                expected,
                value,
            } => match current(&pending, &key) {
                None => Err(Error::NotFound(key)),
                Some(kv) if kv.revision != expected => Err(Error::Conflict {
                    key,
                    expected,
                    actual: kv.revision,
                }),
                Some(kv) => {
                    revision += 1;
                    write(&mut pending, kv.key, revision, Some(value))
                        .map(Outcome::Written)
                        .ok_or_else(|| Error::Backend("an update stored no value".into()))
                }
            },
            Write::Delete { key, expected } => match current(&pending, &key) {
                None => Err(Error::NotFound(key)),
                Some(kv) if kv.revision != expected => Err(Error::Conflict {
                    key,
                    expected,
                    actual: kv.revision,
                }),
                Some(kv) => {
                    revision += 1;
                    write(&mut pending, kv.key.clone(), revision, None);
                    Ok(Outcome::Deleted(kv, revision))
                }
            },
        };
        outcomes.push((reply, outcome));
    }
    Prepared {
        changes,
        outcomes,
        revision,
    }
}

/// Merges current values with the values as of a past revision (the overlay wins).
struct MergeAsOf<C: Iterator<Item = KeyValue>, O: Iterator<Item = (Arc<str>, Option<KeyValue>)>> {
    current: std::iter::Peekable<C>,
    overlay: std::iter::Peekable<O>,
    /// Entries looked at so far.
    examined: usize,
}

impl<C, O> Iterator for MergeAsOf<C, O>
where
    C: Iterator<Item = KeyValue>,
    O: Iterator<Item = (Arc<str>, Option<KeyValue>)>,
{
    type Item = KeyValue;

    fn next(&mut self) -> Option<KeyValue> {
        use std::cmp::Ordering;
        loop {
            let order = match (self.current.peek(), self.overlay.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(c), Some((o, _))) => c.key.as_ref().cmp(o.as_ref()),
            };
            self.examined += 1;
            match order {
                Ordering::Less => return self.current.next(),
                // The overlay holds the value as of the snapshot; drop the newer one.
                Ordering::Equal => {
                    self.current.next();
                }
                Ordering::Greater => {}
            }
            match self.overlay.next() {
                Some((_, Some(kv))) => return Some(kv),
                // The key did not exist at the snapshot.
                Some((_, None)) => continue,
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versioner::Unversioned;

    fn index_with(n: usize) -> Index {
        let data = (0..n).map(|i| KeyValue {
            key: Arc::from(format!("apps/ns/{i:08}")),
            value: Bytes::from_static(b"{}"),
            revision: 2,
        });
        Index::new(data, 2, IndexOptions::default(), Arc::new(Unversioned))
    }

    /// A page's work follows the page, not the collection: the entries a page examines are the
    /// same for 1,000 and for 200,000 objects, and `remaining` is still exact.
    #[test]
    fn a_page_examines_the_same_entries_whatever_the_collection_size() {
        let mut examined = Vec::new();
        for n in [1_000usize, 200_000] {
            let index = index_with(n);
            for (limit, after) in [(10, None), (500, None), (500, Some("apps/ns/00000100"))] {
                let page = index
                    .list(
                        &ListOptions {
                            prefix: "apps/ns/".into(),
                            at: ReadAt::Latest,
                            start_after: after.map(str::to_string),
                            limit: Some(limit),
                        },
                        None,
                    )
                    .unwrap();
                let skipped = after.map_or(0, |_| 101);
                assert_eq!(page.items.len(), limit);
                assert_eq!(page.remaining, Some((n - skipped - limit) as u64));
                examined.push((limit, after, page.examined));
            }
        }
        let (small, large) = examined.split_at(3);
        assert_eq!(
            small, large,
            "examined entries depend on the collection size"
        );
        assert!(
            small.iter().all(|(limit, _, e)| *e == limit + 1),
            "{small:?}"
        );
    }

    /// A reader's snapshot stays what it was while writers go on.
    #[test]
    fn writers_do_not_change_a_page_being_built() {
        let index = index_with(1_000);
        let snapshot = index
            .snapshot(ReadAt::Latest, "apps/", Bound::Included("apps/"))
            .unwrap();
        let revision = index.revision();
        let writes = (0..100)
            .map(|i| {
                (
                    Write::Delete {
                        key: format!("apps/ns/{i:08}"),
                        expected: 2,
                    },
                    (),
                )
            })
            .collect();
        let prepared = index.prepare(writes);
        index.apply(prepared.changes);
        assert_eq!(index.len(), 900);
        let page = page(&snapshot, "apps/", Bound::Included("apps/"), Some(5), None);
        assert_eq!(page.revision, revision);
        assert_eq!(page.items[0].key.as_ref(), "apps/ns/00000000");
        assert_eq!(page.remaining, Some(995));
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("apps/").as_deref(), Some("apps0"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
    }
}
