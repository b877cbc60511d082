//! The HTTP API: errors, request parsing, negotiation, discovery, OpenAPI and the REST verbs.

pub mod decode;
pub mod discovery;
pub mod error;
pub mod go_json;
pub mod handlers;
pub mod negotiation;
pub mod nonresource;
pub mod openapi;
pub mod query;
pub mod render;
pub mod request_info;
pub mod selectors;
pub mod yaml;
