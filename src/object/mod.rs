//! Objects held as JSON: metadata accessors and metadata validation.

pub mod meta;
pub mod names;
