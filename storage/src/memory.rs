//! The in-memory reference backend: the same semantics as the durable one, nothing persisted.
//! It is what the conformance suite measures the other backends against, and what unit tests
//! of the API layer run on.

use crate::index::{Index, IndexOptions, Outcome, Write};
use crate::{
    Encoder, Error, Filter, KeyValue, ListOptions, ListResult, Result, Revision, Store, Watch,
    WatchStart,
};
use async_trait::async_trait;

/// A store that lives only in memory.
pub struct MemoryStore {
    index: Index,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(options: IndexOptions) -> MemoryStore {
        MemoryStore {
            index: Index::new(Vec::new(), crate::FIRST_REVISION, options),
        }
    }

    fn write(&self, write: Write) -> Result<Outcome> {
        self.index
            .prepare_and_apply(vec![(write, ())])
            .pop()
            .map(|(_, outcome)| outcome)
            .unwrap_or_else(|| Err(Error::Unavailable("write produced no outcome".into())))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(IndexOptions::default())
    }
}

/// Unpacks the outcome of a create or update.
pub(crate) fn expect_written(outcome: Result<Outcome>) -> Result<KeyValue> {
    match outcome? {
        Outcome::Written(kv) => Ok(kv),
        Outcome::Deleted(..) => Err(Error::Unavailable("a write reported a deletion".into())),
    }
}

/// Unpacks the outcome of a delete.
pub(crate) fn expect_deleted(outcome: Result<Outcome>) -> Result<(KeyValue, Revision)> {
    match outcome? {
        Outcome::Deleted(kv, rev) => Ok((kv, rev)),
        Outcome::Written(_) => Err(Error::Unavailable("a delete reported a write".into())),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, key: &str, value: Encoder) -> Result<KeyValue> {
        expect_written(self.write(Write::Create {
            key: key.to_string(),
            encode: value,
        }))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.index.get(key))
    }

    async fn update(&self, key: &str, expected: Revision, value: Encoder) -> Result<KeyValue> {
        expect_written(self.write(Write::Update {
            key: key.to_string(),
            expected,
            encode: value,
        }))
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<(KeyValue, Revision)> {
        expect_deleted(self.write(Write::Delete {
            key: key.to_string(),
            expected,
        }))
    }

    async fn list(&self, options: ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult> {
        self.index.list(&options, filter)
    }

    async fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch> {
        self.index.watch(prefix, start)
    }

    fn current_revision(&self) -> Revision {
        self.index.revision()
    }

    fn oldest_revision(&self) -> Revision {
        self.index.oldest()
    }
}
