//! admission-apiserver: a Kubernetes extension API server for `admission.example.com`.

pub mod api;
pub mod fields;
pub mod kinds;
pub mod object;
pub mod registry;
pub mod schema;
