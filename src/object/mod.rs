//! Objects held as JSON: metadata accessors, metadata validation, and the versioner that
//! stamps resourceVersions into stored objects.

pub mod meta;
pub mod names;
pub mod skim;
pub mod versioner;
