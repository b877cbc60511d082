//! The generic registry: Kubernetes object semantics on top of [`storage::Store`], for every
//! kind alike (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`).
//!
//! - [`strategy`]: what every write does to an object (system fields, status reset, generation,
//!   pruning, validation, managed fields).
//! - [`write`]: create, update (with the optimistic-concurrency retry loop), patch, delete.
//! - [`codec`]: what happens to objects between a request's version and storage (conversion,
//!   defaulting on read).
//! - reads (get, list, watch) are here.
//!
//! Objects are stored once, in the storage version, as JSON without `metadata.resourceVersion`;
//! the store's versioner ([`crate::object::versioner`]) stamps the revision of the write behind a
//! value into what every read returns, as k8s.io/apiserver's versioner does.

pub mod codec;
pub mod strategy;
pub mod write;

use crate::api::error::{ApiError, ApiResult};
use crate::kinds::Resource;
use crate::object::meta;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use storage::{Filter, KeyValue, ListOptions, ReadAt, Revision, Store};

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped with a `Warning` header each (the default).
    #[default]
    Warn,
    /// Rejected with 400.
    Strict,
}

/// How a write records who owns the fields it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Ownership {
    /// An `Update` by the field manager: `managedFields` are computed from the change.
    #[default]
    Update,
    /// Server-side apply already set `managedFields` on the object.
    Applied,
}

/// Options every write carries.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// How field ownership is recorded.
    pub ownership: Ownership,
    /// `dryRun=All`: run everything but the storage write.
    pub dry_run: bool,
    /// `fieldManager`, or the one derived from the user agent.
    pub field_manager: String,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// The `apiVersion` the request was made in, recorded in `managedFields` (the storage
    /// version when empty).
    pub api_version: String,
}

impl WriteOptions {
    /// The `apiVersion` a managed-fields entry of this write records.
    pub fn manager_api_version(&self, resource: &Resource) -> String {
        if self.api_version.is_empty() {
            resource.kind.api_version()
        } else {
            self.api_version.clone()
        }
    }
}

/// The registry shared by every request.
pub struct Registry {
    store: Arc<dyn Store>,
}

/// The storage key of an object.
pub fn key(resource: &Resource, namespace: &str, name: &str) -> String {
    if resource.kind.namespaced {
        format!("{}/{namespace}/{name}", resource.kind.plural)
    } else {
        format!("{}/{name}", resource.kind.plural)
    }
}

/// The key prefix of a collection (all namespaces when `namespace` is empty).
pub fn prefix(resource: &Resource, namespace: &str) -> String {
    if resource.kind.namespaced && !namespace.is_empty() {
        format!("{}/{namespace}/", resource.kind.plural)
    } else {
        format!("{}/", resource.kind.plural)
    }
}

/// Parses stored bytes; a stored value that is not a JSON object is a server fault.
pub fn decode_stored(kv: &KeyValue) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    if !value.is_object() {
        return Err(ApiError::internal(format!(
            "stored object {} is not a JSON object",
            kv.key
        )));
    }
    Ok(value)
}

/// A page of a list with the revision it was read at.
pub struct Page {
    /// Items as stored.
    pub items: Vec<KeyValue>,
    /// The snapshot revision.
    pub revision: Revision,
    /// The key to continue after, when more remain.
    pub continue_after: Option<String>,
    /// How many remain (only without selectors).
    pub remaining: Option<u64>,
    /// How many stored objects the page looked at.
    pub examined: usize,
}

impl Registry {
    /// A registry over a store.
    pub fn new(store: Arc<dyn Store>) -> Registry {
        Registry { store }
    }

    /// The store (for watches and health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// One object, as fresh as `at` asks.
    pub async fn get(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        at: ReadAt,
    ) -> ApiResult<KeyValue> {
        match self.store.get(&key(resource, namespace, name), at).await {
            Ok(Some(kv)) => Ok(kv),
            Ok(None) => Err(ApiError::not_found(resource.kind, name)),
            Err(e) => Err(ApiError::from_storage(resource.kind, name, e)),
        }
    }

    /// One page of a collection, as fresh as `at` asks.
    pub async fn list(
        &self,
        resource: &Resource,
        namespace: &str,
        at: ReadAt,
        start_after: Option<String>,
        limit: Option<usize>,
        filter: Option<Filter<'_>>,
    ) -> Result<Page, storage::Error> {
        let result = self
            .store
            .list(
                ListOptions {
                    prefix: prefix(resource, namespace),
                    at,
                    start_after,
                    limit,
                },
                filter,
            )
            .await?;
        Ok(Page {
            items: result.items,
            revision: result.revision,
            continue_after: result.continue_after,
            remaining: result.remaining,
            examined: result.examined,
        })
    }

    /// How many objects a collection holds now, if the store knows.
    pub fn count(&self, resource: &Resource, namespace: &str) -> Option<u64> {
        self.store.count(&prefix(resource, namespace))
    }

    /// The newest revision.
    pub fn current_revision(&self) -> Revision {
        self.store.current_revision()
    }
}

/// Serializes an object for storage: without `metadata.resourceVersion`, which the store
/// assigns at commit and its versioner stamps into every read.
pub fn to_stored(mut obj: Value) -> Bytes {
    meta::set(&mut obj, "resourceVersion", None);
    Bytes::from(serde_json::to_vec(&obj).unwrap_or_default())
}

/// Bytes of an object that is not stored (dry run): as it would be, without a resourceVersion
/// of its own when it has none.
pub fn to_bytes(obj: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(obj).unwrap_or_default())
}
