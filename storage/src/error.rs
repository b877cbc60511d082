//! The storage error type. The API layer turns it into a Kubernetes `Status` in one place.

use crate::Revision;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key does not exist.
    #[error("key {0:?} not found")]
    NotFound(String),
    /// A create found the key already there.
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    /// A guarded write expected another revision.
    #[error("key {key:?} is at revision {actual}, not {expected}")]
    Conflict {
        /// The key written.
        key: String,
        /// The revision the writer expected.
        expected: crate::Revision,
        /// The revision the key is at.
        actual: crate::Revision,
    },
    /// The requested revision is older than the history the store still keeps.
    #[error("revision {requested} is too old (oldest available: {oldest})")]
    TooOld {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// The requested revision has not been written yet.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// A watcher fell so far behind that events it had not read were dropped.
    #[error("watcher fell behind and missed events")]
    Lagged,
    /// The store was shut down, failed earlier and refuses writes, or cannot reach its backend
    /// now (etcd has no leader, no member answers): the client may retry.
    #[error("store is unavailable: {0}")]
    Unavailable(String),
    /// The store's watch cache is still loading (kube-apiserver's "storage is (re)initializing").
    #[error("storage is (re)initializing: {0}")]
    Initializing(String),
    /// The backend did not answer in time; a write may or may not have been applied.
    #[error("storage request timed out: {0}")]
    Timeout(String),
    /// The backend reported an I/O or corruption error.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl Error {
    /// True when the key does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
    /// True when a create found the key present.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists(_))
    }
    /// True when a guarded write lost a race.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
    /// True when a revision is no longer in the history window (the API's 410 Gone).
    pub fn is_too_old(&self) -> bool {
        matches!(self, Error::TooOld { .. } | Error::Lagged)
    }
}

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        Error::Backend(err.to_string())
    }
}

/// Result of a storage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
