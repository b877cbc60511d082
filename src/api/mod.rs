//! The HTTP API: errors, request parsing, negotiation, discovery, OpenAPI and the REST verbs.

pub mod error;
