//! The in-memory MVCC index both backends share.
//!
//! It holds every current value, the store-wide revision, a bounded history of recent events
//! (the window watches and paged lists can start from) and the live fan-out of new events.
//! Backends decide when a batch of writes becomes visible: the memory backend at once, the sled
//! backend only after the batch is durable.

use crate::{
    Error, Event, EventKind, Filter, KeyValue, ListOptions, ListResult, Result, Revision, Watch,
    WatchStart,
};
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use tokio::sync::broadcast;

/// How much history and fan-out buffering an index keeps.
#[derive(Clone, Copy, Debug)]
pub struct IndexOptions {
    /// Events kept for watches and paged lists that start in the past.
    pub history: usize,
    /// Events buffered per live subscriber before it counts as lagging.
    pub fanout_buffer: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            history: 10_000,
            fanout_buffer: 16_384,
        }
    }
}

/// A write waiting to be checked and given a revision.
pub enum Write {
    /// Create a key that must not exist.
    Create {
        /// The key.
        key: String,
        /// Produces the value once the revision is known.
        encode: crate::Encoder,
    },
    /// Replace the value of a key at an expected revision.
    Update {
        /// The key.
        key: String,
        /// The revision the key must be at.
        expected: Revision,
        /// Produces the value once the revision is known.
        encode: crate::Encoder,
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
    /// A create or update: the value as stored.
    Written(KeyValue),
    /// A delete: the removed value and the revision of the deletion.
    Deleted(KeyValue, Revision),
}

/// A checked write, ready to apply.
#[derive(Clone, Debug)]
pub struct Change {
    /// The key.
    pub key: Arc<str>,
    /// The revision given to the write.
    pub revision: Revision,
    /// The new value, `None` for a deletion.
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

#[derive(Clone, Debug)]
struct Entry {
    revision: Revision,
    value: Bytes,
}

/// The mutable part of the index, behind one lock.
pub struct State {
    data: BTreeMap<Arc<str>, Entry>,
    revision: Revision,
    history: VecDeque<Arc<Event>>,
    history_capacity: usize,
    /// Watches and lists can start from any revision >= this one.
    oldest: Revision,
}

/// The shared index: state behind a read-write lock plus the live event fan-out.
pub struct Index {
    state: RwLock<State>,
    live: broadcast::Sender<Arc<Event>>,
}

impl Index {
    /// An index over existing data at `revision` (the history starts empty there).
    pub fn new(
        data: impl IntoIterator<Item = KeyValue>,
        revision: Revision,
        options: IndexOptions,
    ) -> Index {
        let data = data
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
        let (live, _) = broadcast::channel(options.fanout_buffer.max(1));
        Index {
            state: RwLock::new(State {
                data,
                revision,
                history: VecDeque::new(),
                history_capacity: options.history.max(1),
                oldest: revision,
            }),
            live,
        }
    }

    /// The revision of the newest applied write.
    pub fn revision(&self) -> Revision {
        self.state.read().revision
    }

    /// The oldest revision a watch or list can start from.
    pub fn oldest(&self) -> Revision {
        self.state.read().oldest
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

    /// Checks a batch of writes against the current state (and against earlier writes of the
    /// same batch) and gives the valid ones consecutive revisions. Nothing is applied yet.
    pub fn prepare<R>(&self, writes: Vec<(Write, R)>) -> Prepared<R> {
        let st = self.state.read();
        prepare(&st, writes)
    }

    /// Checks and applies a batch at once (the memory backend's write path).
    pub fn prepare_and_apply<R>(&self, writes: Vec<(Write, R)>) -> Vec<(R, Result<Outcome>)> {
        let mut st = self.state.write();
        let prepared = prepare(&st, writes);
        self.apply_locked(&mut st, prepared.changes);
        prepared.outcomes
    }

    /// Makes a prepared batch visible: updates values, history and the live fan-out.
    pub fn apply(&self, changes: Vec<Change>) {
        let mut st = self.state.write();
        self.apply_locked(&mut st, changes);
    }

    fn apply_locked(&self, st: &mut State, changes: Vec<Change>) {
        for change in changes {
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
            st.revision = event.revision;
            st.history.push_back(event.clone());
            while st.history.len() > st.history_capacity {
                if let Some(dropped) = st.history.pop_front() {
                    st.oldest = dropped.revision;
                }
            }
            // Sent under the lock, so a watch that subscribes under the lock sees each event
            // exactly once: either in its backlog or live.
            let _no_subscribers_is_fine = self.live.send(event);
        }
    }

    /// A consistent page of the keys under a prefix, as of a revision in the history window.
    pub fn list(&self, options: &ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult> {
        let st = self.state.read();
        let revision = options.revision.unwrap_or(st.revision);
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
        let prefix = options.prefix.as_str();
        let in_range = |key: &str| {
            key.starts_with(prefix)
                && options
                    .start_after
                    .as_deref()
                    .is_none_or(|after| key > after)
        };

        // Values as of `revision` for every key changed after it: the previous value of the
        // first later event on that key (none if that event created the key).
        let mut overlay: BTreeMap<Arc<str>, Option<KeyValue>> = BTreeMap::new();
        let first_later = st.history.partition_point(|e| e.revision <= revision);
        for event in st.history.iter().skip(first_later) {
            if in_range(&event.key) && !overlay.contains_key(&event.key) {
                overlay.insert(event.key.clone(), event.prev.clone());
            }
        }

        let lower = match options.start_after.as_deref() {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let current = st
            .data
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| KeyValue {
                key: k.clone(),
                value: e.value.clone(),
                revision: e.revision,
            });
        let merged = MergeAsOf {
            current: current.peekable(),
            overlay: overlay.into_iter().peekable(),
        };

        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last_examined: Option<Arc<str>> = None;
        let mut merged = merged.peekable();
        while items.len() < limit {
            let Some(kv) = merged.next() else { break };
            last_examined = Some(kv.key.clone());
            if filter.is_none_or(|f| f(&kv)) {
                items.push(kv);
            }
        }
        let more = merged.peek().is_some();
        let remaining = if more && filter.is_none() {
            Some(merged.count() as u64)
        } else if filter.is_none() {
            Some(0)
        } else {
            None
        };
        Ok(ListResult {
            items,
            revision,
            continue_after: if more {
                last_examined.map(|k| k.to_string())
            } else {
                None
            },
            remaining,
        })
    }

    /// Starts a watch on a prefix.
    pub fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch> {
        let st = self.state.read();
        let live = self.live.subscribe();
        match start {
            WatchStart::Now => Ok(Watch::new(
                prefix,
                st.revision,
                Vec::new(),
                VecDeque::new(),
                live,
            )),
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
                    .iter()
                    .skip(first)
                    .filter(|e| e.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(Watch::new(
                    prefix,
                    revision.max(st.revision),
                    Vec::new(),
                    backlog,
                    live,
                ))
            }
            WatchStart::Snapshot => {
                let initial = st
                    .data
                    .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, e)| KeyValue {
                        key: k.clone(),
                        value: e.value.clone(),
                        revision: e.revision,
                    })
                    .collect();
                Ok(Watch::new(
                    prefix,
                    st.revision,
                    initial,
                    VecDeque::new(),
                    live,
                ))
            }
        }
    }
}

fn prepare<R>(st: &State, writes: Vec<(Write, R)>) -> Prepared<R> {
    // Keys already written earlier in this batch, with their pending state.
    let mut pending: HashMap<Arc<str>, Option<KeyValue>> = HashMap::new();
    let mut revision = st.revision;
    let mut changes = Vec::new();
    let mut outcomes = Vec::with_capacity(writes.len());
    let current = |pending: &HashMap<Arc<str>, Option<KeyValue>>, key: &str| -> Option<KeyValue> {
        match pending.get(key) {
            Some(state) => state.clone(),
            None => st.data.get_key_value(key).map(|(k, e)| KeyValue {
                key: k.clone(),
                value: e.value.clone(),
                revision: e.revision,
            }),
        }
    };
    for (write, reply) in writes {
        let outcome = match write {
            Write::Create { key, encode } => match current(&pending, &key) {
                Some(_) => Err(Error::AlreadyExists(key)),
                None => {
                    revision += 1;
                    Ok(written(&mut pending, &mut changes, key, revision, encode))
                }
            },
            Write::Update {
                key,
                expected,
                encode,
            } => match current(&pending, &key) {
                None => Err(Error::NotFound(key)),
                Some(kv) if kv.revision != expected => Err(Error::Conflict {
                    key,
                    expected,
                    actual: kv.revision,
                }),
                Some(_) => {
                    revision += 1;
                    Ok(written(&mut pending, &mut changes, key, revision, encode))
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
                    pending.insert(kv.key.clone(), None);
                    changes.push(Change {
                        key: kv.key.clone(),
                        revision,
                        value: None,
                    });
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

fn written(
    pending: &mut HashMap<Arc<str>, Option<KeyValue>>,
    changes: &mut Vec<Change>,
    key: String,
    revision: Revision,
    encode: crate::Encoder,
) -> Outcome {
    let key: Arc<str> = Arc::from(key);
    let mut encoded = encode(revision);
    // Serializers over-allocate; the index keeps every value for the life of the process.
    encoded.shrink_to_fit();
    let value = Bytes::from(encoded);
    let kv = KeyValue {
        key: key.clone(),
        value: value.clone(),
        revision,
    };
    pending.insert(key.clone(), Some(kv.clone()));
    changes.push(Change {
        key,
        revision,
        value: Some(value),
    });
    Outcome::Written(kv)
}

/// Merges current values with the overlay of values as of an older revision, in key order.
struct MergeAsOf<C: Iterator<Item = KeyValue>, O: Iterator<Item = (Arc<str>, Option<KeyValue>)>> {
    current: std::iter::Peekable<C>,
    overlay: std::iter::Peekable<O>,
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
