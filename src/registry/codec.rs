//! What kube-apiserver's storage codec does to an object on its way between a request and
//! storage: objects are stored in the storage version; read back, they are defaulted (a default
//! added after an object was stored still shows) and converted to the version the request names.

use crate::api::error::{ApiError, ApiResult};
use crate::conversion::convert;
use crate::kinds::{Resource, ServedVersion, V1};
use bytes::Bytes;
use serde_json::Value;

/// An object decoded from a request in `version`, as it is stored.
pub fn to_storage(version: &ServedVersion, obj: &mut Value) {
    convert(obj, version, &V1);
}

/// An object as stored, defaulted and converted to `version`.
pub fn serve_value(resource: &Resource, version: &ServedVersion, obj: &mut Value) {
    resource.schema.default(obj);
    convert(obj, &V1, version);
}

/// Stored bytes as served in `version`: the same bytes when nothing changes (the storage
/// version of an object that needs no default), otherwise re-encoded.
pub fn serve(resource: &Resource, version: &ServedVersion, stored: &Bytes) -> ApiResult<Bytes> {
    if version.storage && !crate::schema::defaults::needed(&resource.schema.root, stored) {
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
    fn stored_objects_are_defaulted_and_converted_on_read() {
        let app = app();
        let current = Bytes::from(
            json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "a"},
                "spec": {"replicas": 2, "version": "v1.0.0"}})
            .to_string(),
        );
        // Nothing to do: the very same bytes.
        assert_eq!(
            serve(&app, &V1, &current).unwrap().as_ptr(),
            current.as_ptr()
        );
        let served: Value =
            serde_json::from_slice(&serve(&app, &V1BETA1, &current).unwrap()).unwrap();
        assert_eq!(served["apiVersion"], "admission.example.com/v1beta1");
        assert_eq!(served["spec"]["replicas"], 2);
        // Stored before the default existed: served with it.
        let legacy = Bytes::from(
            json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "a"},
                "spec": {"version": "v1.0.0"}})
            .to_string(),
        );
        let served: Value = serde_json::from_slice(&serve(&app, &V1, &legacy).unwrap()).unwrap();
        assert_eq!(served["spec"], json!({"replicas": 1, "version": "v1.0.0"}));
        // Without a spec there is nothing to default.
        let bare = Bytes::from(json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": "a"}}).to_string());
        assert_eq!(serve(&app, &V1, &bare).unwrap(), bare);
    }
}
