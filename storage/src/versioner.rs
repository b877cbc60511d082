//! Stamping revisions into values, as k8s.io/apiserver's `APIObjectVersioner` does.
//!
//! Backends persist values without their revision where the revision is assigned only at commit
//! (etcd), and every read returns the value with its revision stamped in. The store knows bytes
//! only, so the server supplies the stamping.

use crate::Revision;
use bytes::Bytes;

/// Writes a revision into a value.
pub trait Versioner: Send + Sync + 'static {
    /// The value as served at `revision`: `value` with the revision written in (replacing any
    /// revision it already carries).
    fn stamp(&self, value: &[u8], revision: Revision) -> Bytes;
}

/// Leaves values as they are: for stores whose values do not carry their revision.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unversioned;

impl Versioner for Unversioned {
    fn stamp(&self, value: &[u8], _revision: Revision) -> Bytes {
        Bytes::copy_from_slice(value)
    }
}
