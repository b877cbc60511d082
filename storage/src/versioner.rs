//! Stamping revisions into values, as k8s.io/apiserver's `APIObjectVersioner` does.
//!
//! Backends persist values without their revision where the revision is assigned only at commit
//! (etcd), and every read returns the value with its revision stamped in. The store knows bytes
//! only, so the server supplies the stamping. It runs once per value, when the value enters a
//! store's memory (a write, an etcd event or list, a sled store loaded under another
//! [`Versioner::fingerprint`]), never per read: the server's versioner also decodes there what
//! kube-apiserver's storage codec decodes (schema defaults), so reads serve bytes as they are.

use crate::Revision;
use bytes::Bytes;

/// Writes a revision into a value.
pub trait Versioner: Send + Sync + 'static {
    /// The value of `key` as served at `revision`: `value` with the revision written in
    /// (replacing any revision it already carries). Applied to a value already stamped it must
    /// give the same bytes back.
    fn stamp(&self, key: &str, value: &[u8], revision: Revision) -> Bytes;

    /// Identifies what [`Versioner::stamp`] does beyond the revision. A store that keeps stamped
    /// values (sled) stamps them again when it loads under another fingerprint.
    fn fingerprint(&self) -> String {
        String::new()
    }
}

/// Leaves values as they are: for stores whose values do not carry their revision.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unversioned;

impl Versioner for Unversioned {
    fn stamp(&self, _key: &str, value: &[u8], _revision: Revision) -> Bytes {
        Bytes::copy_from_slice(value)
    }
}
