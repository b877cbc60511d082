//! The versioned object store behind `admission-apiserver`.
//!
//! This crate knows bytes, keys and revisions: nothing of HTTP, Kubernetes objects or
//! authentication. The API server stores each object as JSON without its resourceVersion under a
//! key such as `apps/<namespace>/<name>`; a [`Versioner`] the server provides stamps the revision
//! into the bytes a read returns, as k8s.io/apiserver's versioner does.
//!
//! # Code map
//! - [`Store`]: the one async trait every backend implements (create-if-absent, get, guarded
//!   update and delete, list at a revision, watch from a revision).
//! - [`tree`]: a persistent ordered map with order statistics: O(1) snapshots, exact counts.
//! - [`index`]: the in-memory MVCC index every backend serves reads from: current values (a
//!   [`tree::Map`]), the newest revision, a bounded history of events, the live event fan-out.
//! - [`memory::MemoryStore`]: the reference backend; nothing survives the process.
//! - [`sled_store::SledStore`]: the default durable backend. One writer thread applies queued
//!   writes in groups with one `fsync` per group and only then makes them visible; a clean
//!   close leaves a snapshot file the next open reads instead of scanning sled.
//! - [`etcd::EtcdStore`]: the backend for several replicas: writes are etcd transactions, reads
//!   and watches come from a watch cache per resource fed by one etcd watch each.
//! - [`watch::Watch`]: a watcher's ordered stream of events and progress notifications.
//!
//! # Invariants
//! - Every write gets the next revision of one strictly increasing, store-wide counter (etcd's
//!   revision on the etcd backend). The bytes a read returns carry that revision, stamped by the
//!   [`Versioner`]; what a backend persists does not need to.
//! - A write is acknowledged only once it is durable (fsync'd, or committed by an etcd quorum).
//!   On the embedded backends it is visible to reads and watches when acknowledged; on etcd a
//!   consistent read ([`ReadAt::Latest`]) waits until the cache has caught up with it.
//! - No backend runs blocking I/O, or work proportional to the collection, on the caller's
//!   async worker thread ([`long_running`]), and no read holds a lock across such work.

pub mod error;
pub mod etcd;

pub mod index;
pub mod memory;
pub mod sled_store;
mod snapshot;
pub mod tree;
pub mod versioner;
pub mod watch;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

pub use error::{Error, Result};
pub use memory::MemoryStore;
pub use sled_store::{SledOptions, SledStore};
pub use versioner::Versioner;
pub use watch::{Update, Watch};

/// Pages larger than this are built with [`long_running`].
pub const LARGE_PAGE: usize = 1_000;

/// Runs work proportional to a large page without starving the other tasks of the calling
/// runtime worker: on a multi-threaded runtime the worker first hands them to another
/// (`block_in_place`); elsewhere (a single-threaded test runtime) it just runs.
pub fn long_running<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// [`long_running`] when `large`, else `work` right here.
pub fn long_running_if<R>(large: bool, work: impl FnOnce() -> R) -> R {
    if large { long_running(work) } else { work() }
}

/// Whether a list may examine many entries: one with no limit or a limit above
/// [`LARGE_PAGE`], or a filtered one (it reads on until it has `limit` matches, the whole
/// collection when few match), over a collection of more than [`LARGE_PAGE`] entries (`count`;
/// `None` when unknown).
pub fn may_be_large(limit: Option<usize>, filtered: bool, count: Option<u64>) -> bool {
    (filtered || limit.is_none_or(|l| l == 0 || l > LARGE_PAGE))
        && count.is_none_or(|n| n > LARGE_PAGE as u64)
}

/// A position in the store's history: the revision of the write that produced a value.
pub type Revision = u64;

/// The revision of an empty store. As in etcd, the first write gets revision 2, so revisions
/// (and the resourceVersions built on them) number the same way on every backend.
pub const FIRST_REVISION: Revision = 1;

/// One stored value with the revision of the write that last changed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key, e.g. `apps/default/web`.
    pub key: Arc<str>,
    /// The value as served: the stored bytes with `revision` stamped by the [`Versioner`].
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
    /// The new value (stamped with `revision`); `None` for a deletion.
    pub value: Option<Bytes>,
    /// The value before this write (stamped with its own revision); `None` when the key was
    /// just added.
    pub prev: Option<KeyValue>,
}

/// How fresh a read must be: the resourceVersion semantics of kube-apiserver's reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadAt {
    /// A consistent read: it reflects every write acknowledged before it started, on any
    /// replica (kube: no resourceVersion).
    #[default]
    Latest,
    /// Whatever this replica has (kube: `resourceVersion=0`).
    Any,
    /// At least this revision; waits a little for it ([`Error::FutureRevision`] otherwise).
    NotOlderThan(Revision),
    /// Exactly this revision: a snapshot in the past ([`Error::TooOld`] once compacted).
    Exact(Revision),
}

/// Where a list starts and how much it returns.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// Only keys starting with this prefix are listed.
    pub prefix: String,
    /// Which revision to serve.
    pub at: ReadAt,
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
    /// How many keys remain after this page (only when no filter was given).
    pub remaining: Option<u64>,
    /// How many stored entries the page looked at (what
    /// `apiserver_storage_list_evaluated_objects_total` counts).
    pub examined: usize,
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
    /// `value` carries no revision; the answer is the value as served.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// The current value of a key, if any, as fresh as `at` asks.
    async fn get(&self, key: &str, at: ReadAt) -> Result<Option<KeyValue>>;

    /// Replaces the value of a key whose current revision is `expected`
    /// ([`Error::NotFound`], [`Error::Conflict`] otherwise).
    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue>;

    /// Removes a key whose current revision is `expected`. Returns the removed value and the
    /// revision of the deletion.
    async fn delete(&self, key: &str, expected: Revision) -> Result<(KeyValue, Revision)>;

    /// A consistent snapshot of the keys under a prefix, one page at a time.
    async fn list(&self, options: ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult>;

    /// An ordered stream of the changes under a prefix.
    async fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch>;

    /// How many keys are under a prefix now, as far as this replica knows (`None`: unknown):
    /// what a list of it will cost, for admission control. O(log n).
    fn count(&self, prefix: &str) -> Option<u64> {
        let _ = prefix;
        None
    }

    /// The newest revision this replica's reads have reached.
    fn current_revision(&self) -> Revision;

    /// The oldest revision a watch or a list can still start from.
    fn oldest_revision(&self) -> Revision;

    /// Whether the backend can serve writes now (kube-apiserver's `etcd` health check): an
    /// error says why not.
    async fn check_health(&self) -> Result<()> {
        Ok(())
    }

    /// Stops taking writes and leaves the store ready for a quick start (the server is shutting
    /// down). Writes after this fail with [`Error::Unavailable`].
    async fn close(&self) {}
}
