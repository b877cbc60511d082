//! The in-memory reference backend: the same semantics as the durable one, nothing persisted.
//! It is what the conformance suite measures the other backends against, and what unit tests
//! of the API layer run on.

use crate::index::{Index, IndexOptions, Outcome, Write};
use crate::versioner::Unversioned;
use crate::{
    Error, Filter, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Store, Versioner,
    Watch, WatchStart,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

/// A store that lives only in memory.
pub struct MemoryStore {
    index: Index,
}

impl MemoryStore {
    /// An empty store whose values are stamped by `versioner`.
    pub fn new(options: IndexOptions, versioner: Arc<dyn Versioner>) -> MemoryStore {
        MemoryStore {
            index: Index::new(Vec::new(), crate::FIRST_REVISION, options, versioner),
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
        MemoryStore::new(IndexOptions::default(), Arc::new(Unversioned))
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
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        expect_written(self.write(Write::Create {
            key: key.to_string(),
            value,
        }))
    }

    async fn get(&self, key: &str, at: ReadAt) -> Result<Option<KeyValue>> {
        self.index.settle(at).await?;
        Ok(self.index.get(key))
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        expect_written(self.write(Write::Update {
            key: key.to_string(),
            expected,
            value,
        }))
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<(KeyValue, Revision)> {
        expect_deleted(self.write(Write::Delete {
            key: key.to_string(),
            expected,
        }))
    }

    async fn list(&self, options: ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult> {
        self.index.settle(options.at).await?;
        self.index.list_long_running(&options, filter)
    }

    async fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch> {
        self.index.watch(prefix, start)
    }

    fn count(&self, prefix: &str) -> Option<u64> {
        Some(self.index.count(prefix) as u64)
    }

    fn current_revision(&self) -> Revision {
        self.index.revision()
    }

    fn oldest_revision(&self) -> Revision {
        self.index.oldest()
    }
}
