//! What kube-apiserver's storage codec does to an object on its way between a request and
//! storage: objects are stored in the storage version; read back, they are defaulted (a default
//! added after an object was stored still shows) and converted to the version the request names.
//!
//! Reading back happens once per stored value, when it enters the store's memory
//! ([`StorageCodec`], the store's versioner: stamps the resourceVersion and fills in defaults), so
//! that reads in the storage version serve the bytes as they are.

use crate::api::error::{ApiError, ApiResult};
use crate::conversion::convert;
use crate::kinds::{Resource, ServedVersion, V1};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// The store's versioner: decodes a stored object as kube's storage codec does (schema defaults
/// of its kind) and stamps its resourceVersion.
pub struct StorageCodec {
    resources: Vec<Arc<Resource>>,
    fingerprint: String,
}

impl StorageCodec {
    /// The codec of the served kinds. Its fingerprint changes with their schemas, so a sled
    /// store loaded after an upgrade that changed a default fills it in once.
    pub fn new(resources: Vec<Arc<Resource>>) -> StorageCodec {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for r in &resources {
            hash.update(r.kind.plural.as_bytes());
            hash.update(r.kind.schema_json.as_bytes());
        }
        let fingerprint = hash
            .finalize()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        StorageCodec {
            resources,
            fingerprint,
        }
    }
}

impl storage::Versioner for StorageCodec {
    fn stamp(&self, key: &str, value: &[u8], revision: u64) -> Bytes {
        let plural = key.split('/').next().unwrap_or("");
        let resource = self.resources.iter().find(|r| r.kind.plural == plural);
        let defaulted = resource.and_then(|r| {
            if !crate::schema::defaults::needed(&r.schema.root, value) {
                return None;
            }
            let mut obj: Value = serde_json::from_slice(value).ok()?;
            r.schema.default(&mut obj);
            serde_json::to_vec(&obj).ok()
        });
        let value = defaulted.as_deref().unwrap_or(value);
        crate::object::versioner::stamp(value, revision)
            .unwrap_or_else(|| Bytes::copy_from_slice(value))
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}

/// An object decoded from a request in `version`, as it is stored.
pub fn to_storage(version: &ServedVersion, obj: &mut Value) {
    convert(obj, version, &V1);
}

/// An object as stored, defaulted and converted to `version`.
pub fn serve_value(resource: &Resource, version: &ServedVersion, obj: &mut Value) {
    resource.schema.default(obj);
    convert(obj, &V1, version);
}

/// Stored bytes as served in `version`: the same bytes in the storage version (the store's
/// [`StorageCodec`] defaulted them when they entered memory), otherwise converted.
pub fn serve(resource: &Resource, version: &ServedVersion, stored: &Bytes) -> ApiResult<Bytes> {
    if version.storage {
        return Ok(stored.clone());
    }
    let mut obj: Value = serde_json::from_slice(stored)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
    serve_value(resource, version, &mut obj);
    serde_json::to_vec(&obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("cannot encode an object: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::V1BETA1;
    use serde_json::json;

    fn app() -> std::sync::Arc<Resource> {
        crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "App")
            .unwrap()
    }

    #[test]
    fn stored_objects_are_defaulted_as_they_enter_memory_and_converted_on_read() {
        use storage::Versioner;
        let app = app();
        let codec = StorageCodec::new(crate::kinds::load().unwrap());
        let current = Bytes::from(
            json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "a"},
                "spec": {"replicas": 2, "version": "v1.0.0"}})
            .to_string(),
        );
        // In the storage version: the very same bytes.
        assert_eq!(
            serve(&app, &V1, &current).unwrap().as_ptr(),
            current.as_ptr()
        );
        let served: Value =
            serde_json::from_slice(&serve(&app, &V1BETA1, &current).unwrap()).unwrap();
        assert_eq!(served["apiVersion"], "admission.example.com/v1beta1");
        assert_eq!(served["spec"]["replicas"], 2);
        // Stored before the default existed: stamped with it.
        let legacy = json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "a"},
            "spec": {"version": "v1.0.0"}})
        .to_string();
        let stamped: Value =
            serde_json::from_slice(&codec.stamp("apps/ns/a", legacy.as_bytes(), 7)).unwrap();
        assert_eq!(stamped["spec"], json!({"replicas": 1, "version": "v1.0.0"}));
        assert_eq!(stamped["metadata"]["resourceVersion"], "7");
        // Stamping again gives the same bytes; without a spec there is nothing to default.
        let again = codec.stamp(
            "apps/ns/a",
            &codec.stamp("apps/ns/a", legacy.as_bytes(), 7),
            7,
        );
        assert_eq!(again, codec.stamp("apps/ns/a", legacy.as_bytes(), 7));
        let bare = json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "a"}});
        let stamped: Value =
            serde_json::from_slice(&codec.stamp("apps/ns/a", bare.to_string().as_bytes(), 3))
                .unwrap();
        assert_eq!(stamped.get("spec"), None);
        assert!(!codec.fingerprint().is_empty());
    }
}
