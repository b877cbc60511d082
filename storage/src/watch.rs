//! A watcher's ordered stream of events and progress notifications.

use crate::index::Entry;
use crate::tree::Map;
use crate::{Error, Event, KeyValue, Result, Revision};
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;
use tokio::sync::broadcast;

/// What the index broadcasts to its live watches.
#[derive(Clone, Debug)]
pub(crate) enum Signal {
    /// A change.
    Event(Arc<Event>),
    /// Every change up to this revision has been broadcast.
    Progress(Revision),
    /// The index was replaced by a new snapshot: watches must start over.
    Reset,
    /// The store is closing.
    Closed,
}

/// One item of a watch.
#[derive(Clone, Debug)]
pub enum Update {
    /// A change under the watched prefix.
    Event(Arc<Event>),
    /// Every change under the watched prefix up to this revision has been yielded (what
    /// bookmarks report; etcd calls it a progress notification).
    Progress(Revision),
}

/// An ordered stream of the changes under a prefix: first the backlog taken from the history
/// window, then live events, with progress notifications when the stream is idle. It never
/// reorders or skips an event; when it cannot keep that promise (it fell behind the live
/// fan-out, or the store started over) it ends with [`Error::Lagged`].
pub struct Watch {
    prefix: String,
    /// The revision the watch started at: every event it yields is newer.
    start: Revision,
    /// Newest revision already yielded (or covered by the start).
    seen: Revision,
    /// Newest revision the stream has passed without yielding it (other prefixes' changes,
    /// progress notifications): reported as progress once the stream is idle.
    passed: Revision,
    initial: Option<Map<Arc<str>, Entry>>,
    backlog: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Signal>,
    failed: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .field("start", &self.start)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// A watch that starts after `start`: with the state at `start` (`initial`) when asked, the
    /// events of the history window after it (`backlog`, all under the prefix), then `live`.
    pub(crate) fn new(
        prefix: &str,
        start: Revision,
        initial: Option<Map<Arc<str>, Entry>>,
        backlog: VecDeque<Arc<Event>>,
        live: broadcast::Receiver<Signal>,
    ) -> Watch {
        Watch {
            prefix: prefix.to_string(),
            start,
            seen: backlog.back().map_or(start, |e: &Arc<Event>| e.revision),
            passed: start,
            initial,
            backlog,
            live,
            failed: false,
        }
    }

    /// The store revision the watch started at. For a [`crate::WatchStart::Snapshot`] watch,
    /// the initial values are the state at exactly this revision.
    pub fn start_revision(&self) -> Revision {
        self.start
    }

    /// The values under the prefix at the start revision when the watch started from a
    /// snapshot (empty otherwise). Taking them leaves the watch with only the changes that
    /// follow. Built from an O(1) snapshot, without holding any lock.
    pub fn take_initial(&mut self) -> Vec<KeyValue> {
        let Some(data) = self.initial.take() else {
            return Vec::new();
        };
        data.range_from(Bound::Included(self.prefix.as_str()))
            .take_while(|(k, _)| k.starts_with(&self.prefix))
            .map(|(k, e)| KeyValue {
                key: k.clone(),
                value: e.value.clone(),
                revision: e.revision,
            })
            .collect()
    }

    /// The next event or progress notification; `None` once the store is closed, or an error
    /// once the watcher fell behind (after which the stream ends).
    pub async fn next(&mut self) -> Option<Result<Update>> {
        if self.failed {
            return None;
        }
        if let Some(event) = self.backlog.pop_front() {
            return Some(Ok(Update::Event(event)));
        }
        loop {
            let signal = match self.live.try_recv() {
                Ok(signal) => signal,
                Err(broadcast::error::TryRecvError::Empty) => {
                    if self.passed > self.seen {
                        self.seen = self.passed;
                        return Some(Ok(Update::Progress(self.seen)));
                    }
                    match self.live.recv().await {
                        Ok(signal) => signal,
                        Err(broadcast::error::RecvError::Lagged(_)) => return self.fail(),
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => return self.fail(),
                Err(broadcast::error::TryRecvError::Closed) => return None,
            };
            match signal {
                Signal::Event(event) => {
                    if event.revision <= self.seen {
                        continue;
                    }
                    if !event.key.starts_with(&self.prefix) {
                        self.passed = self.passed.max(event.revision);
                        continue;
                    }
                    self.seen = event.revision;
                    self.passed = self.passed.max(event.revision);
                    return Some(Ok(Update::Event(event)));
                }
                Signal::Progress(revision) => self.passed = self.passed.max(revision),
                Signal::Reset => return self.fail(),
                Signal::Closed => {
                    self.failed = true;
                    return None;
                }
            }
        }
    }

    /// The next event, skipping progress notifications.
    pub async fn next_event(&mut self) -> Option<Result<Arc<Event>>> {
        loop {
            match self.next().await? {
                Ok(Update::Event(e)) => return Some(Ok(e)),
                Ok(Update::Progress(_)) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    fn fail(&mut self) -> Option<Result<Update>> {
        self.failed = true;
        Some(Err(Error::Lagged))
    }
}
