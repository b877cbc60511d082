//! The versioned object store behind `admission-apiserver`.
//!
//! This crate knows bytes, keys and revisions: nothing of HTTP, Kubernetes objects or
//! authentication. The API server stores each object as the exact JSON it serves, under a key
//! such as `apps/<namespace>/<name>`.
//!
//! # Code map
//! - [`Store`]: the one async trait every backend implements (create-if-absent, get, guarded
//!   update and delete, list at a revision, watch from a revision).
//! - [`index`]: the in-memory MVCC index both backends share: current values, one store-wide
//!   revision counter, a bounded history of events, and the live event fan-out.
//! - [`memory::MemoryStore`]: the reference backend; nothing survives the process.
//! - [`sled_store::SledStore`]: the durable backend. One writer thread applies queued writes in
//!   groups with one `fsync` per group and only then makes them visible.
//! - [`watch::Watch`]: a watcher's ordered stream of events.
//!
//! # Invariants
//! - Every write gets the next revision of one strictly increasing, store-wide counter; the
//!   revision is assigned inside the write it versions, so a value can embed its own revision
//!   (see [`Encoder`]).
//! - A write is acknowledged (its future resolves) only once it is durable and visible to reads
//!   and watchers, in revision order.
//! - No backend runs blocking I/O on the caller's async worker thread.

pub mod error;
pub mod index;
pub mod memory;
pub mod sled_store;
pub mod watch;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

pub use error::{Error, Result};
pub use memory::MemoryStore;
pub use sled_store::{SledOptions, SledStore};
pub use watch::Watch;

/// A position in the store's history: the revision of the write that produced a value.
pub type Revision = u64;

/// The revision of an empty store. As in etcd, the first write gets revision 2, so revisions
/// (and the resourceVersions built on them) number the same way on every backend.
pub const FIRST_REVISION: Revision = 1;

/// Turns the revision a write is given into the bytes to store. It runs inside the write, so the
/// stored value can carry its own revision (the API server's `metadata.resourceVersion`).
pub type Encoder = Box<dyn FnOnce(Revision) -> Vec<u8> + Send>;

/// One stored value with the revision of the write that last changed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key, e.g. `apps/default/web`.
    pub key: Arc<str>,
    /// The stored bytes.
    pub value: Bytes,
    /// Revision of the last write to this key.
    pub revision: Revision,
}

/// What a write did to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key did not exist before.
    Added,
    /// The key existed and now has a new value.
    Modified,
    /// The key was removed.
    Deleted,
}

/// One change, in the order of the store's revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key it happened to.
    pub key: Arc<str>,
    /// The revision of this write.
    pub revision: Revision,
    /// The new value; `None` for a deletion.
    pub value: Option<Bytes>,
    /// The value before this write; `None` when the key was just added.
    pub prev: Option<KeyValue>,
}

/// Where a list starts and how much it returns.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Only keys starting with this prefix are listed.
    pub prefix: String,
    /// Serve the list as of this revision (a consistent snapshot); `None` means the newest.
    pub revision: Option<Revision>,
    /// Only keys strictly greater than this one (a continue key).
    pub start_after: Option<String>,
    /// At most this many items; `None` or `0` means all.
    pub limit: Option<usize>,
}

/// A page of a list.
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    /// The items, in key order.
    pub items: Vec<KeyValue>,
    /// The revision the snapshot was taken at.
    pub revision: Revision,
    /// The last key examined when more keys remain after this page: where the next page starts.
    pub continue_after: Option<String>,
    /// How many keys remain after this page (only computed when no filter was given).
    pub remaining: Option<u64>,
}

/// Where a watch begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// Only changes after the current revision.
    Now,
    /// Changes with a revision greater than this one; fails with [`Error::TooOld`] when that
    /// part of the history is gone.
    After(Revision),
    /// The current values first (see [`Watch::take_initial`]), then the changes after them.
    Snapshot,
}

/// A predicate over stored values, used to filter lists without copying what does not match.
pub type Filter<'a> = &'a (dyn Fn(&KeyValue) -> bool + Sync);

/// The versioned object store. Every backend has the same semantics; the conformance suite in
/// `tests/conformance.rs` pins them.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a value under a key that must not exist yet ([`Error::AlreadyExists`] otherwise).
    async fn create(&self, key: &str, value: Encoder) -> Result<KeyValue>;

    /// The current value of a key, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Replaces the value of a key whose current revision is `expected`
    /// ([`Error::NotFound`], [`Error::Conflict`] otherwise).
    async fn update(&self, key: &str, expected: Revision, value: Encoder) -> Result<KeyValue>;

    /// Removes a key whose current revision is `expected`. Returns the removed value and the
    /// revision of the deletion.
    async fn delete(&self, key: &str, expected: Revision) -> Result<(KeyValue, Revision)>;

    /// A consistent snapshot of the keys under a prefix, one page at a time.
    async fn list(&self, options: ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult>;

    /// An ordered stream of the changes under a prefix.
    async fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch>;

    /// The revision of the newest write.
    fn current_revision(&self) -> Revision;

    /// The oldest revision a watch or a list can still start from.
    fn oldest_revision(&self) -> Revision;
}
