//! Field ownership: field sets, comparisons along a schema, and `managedFields`.

pub mod apply;
pub mod managed;
pub mod set;
pub mod walk;
