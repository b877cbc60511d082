//! A watcher's ordered stream of events.

use crate::{Error, Event, KeyValue, Result, Revision};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast;

/// An ordered stream of the changes under a prefix: first the backlog taken from the history
/// window, then live events. It never reorders or skips an event; when it cannot keep that
/// promise (it fell behind the live fan-out) it ends with [`Error::Lagged`].
pub struct Watch {
    prefix: String,
    /// The revision the watch started at: every event it yields is newer.
    start: Revision,
    /// Newest revision already yielded (or covered by the start).
    seen: Revision,
    initial: Vec<KeyValue>,
    backlog: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
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
    pub(crate) fn new(
        prefix: &str,
        start: Revision,
        initial: Vec<KeyValue>,
        backlog: VecDeque<Arc<Event>>,
        live: broadcast::Receiver<Arc<Event>>,
    ) -> Watch {
        Watch {
            prefix: prefix.to_string(),
            start,
            seen: backlog.back().map_or(start, |e: &Arc<Event>| e.revision),
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

    /// The current values when the watch started from a snapshot (empty otherwise). Taking them
    /// leaves the watch with only the changes that follow.
    pub fn take_initial(&mut self) -> Vec<KeyValue> {
        std::mem::take(&mut self.initial)
    }

    /// The next event, `None` once the store is closed, or an error once the watcher fell
    /// behind (after which the stream ends).
    pub async fn next(&mut self) -> Option<Result<Arc<Event>>> {
        if self.failed {
            return None;
        }
        if let Some(event) = self.backlog.pop_front() {
            return Some(Ok(event));
        }
        loop {
            match self.live.recv().await {
                Ok(event) => {
                    if event.revision <= self.seen || !event.key.starts_with(&self.prefix) {
                        continue;
                    }
                    self.seen = event.revision;
                    return Some(Ok(event));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.failed = true;
                    return Some(Err(Error::Lagged));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
