//! Conversion between the served versions: objects are stored once, in the storage version
//! ([`crate::kinds::V1`]), and converted to the version a request names on the way out, and
//! from it on the way in, as kube-apiserver converts a CRD's objects.
//!
//! One module per pair of versions, each with the two directions. `v1beta1` has the same schema
//! as `v1`, so its conversion only changes `apiVersion` (what a CRD's `strategy: None` does); a
//! later version with a real schema change gets its own module beside it, and [`convert`] routes
//! through the storage version. `metadata.managedFields` is never converted: each entry keeps the
//! `apiVersion` its manager wrote in.

pub mod v1_v1beta1;

use crate::kinds::{GROUP, ServedVersion, V1};
use serde_json::Value;

/// Converts an object of one of our kinds between served versions. An object whose
/// `apiVersion` is not `from` is left alone (validation reports it).
pub fn convert(obj: &mut Value, from: &ServedVersion, to: &ServedVersion) {
    if from == to || obj.get("apiVersion").and_then(Value::as_str) != Some(&from.group_version()) {
        return;
    }
    match (from.name, to.name) {
        ("v1", "v1beta1") => v1_v1beta1::to_v1beta1(obj),
        ("v1beta1", "v1") => v1_v1beta1::to_v1(obj),
        _ => {
            // Through the storage version (unreachable with two versions).
            convert(obj, from, &V1);
            convert(obj, &V1, to);
        }
    }
}

/// Sets `apiVersion` to a version of the group.
fn set_api_version(obj: &mut Value, version: &str) {
    if let Value::Object(m) = obj {
        m.insert(
            "apiVersion".into(),
            Value::String(format!("{GROUP}/{version}")),
        );
    }
}

/// The versions every pair module converts between, for the round-trip tests.
#[cfg(test)]
const PAIRS: &[(&ServedVersion, &ServedVersion)] = &[(&V1, &crate::kinds::V1BETA1)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::V1BETA1;
    use serde_json::json;

    #[test]
    fn conversions_round_trip() {
        let stored = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "a", "namespace": "d", "managedFields": [
                {"apiVersion": "admission.example.com/v1beta1", "manager": "m", "operation": "Update",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}}, "status": {"replicas": 1}});
        for (storage, other) in PAIRS {
            let mut obj = stored.clone();
            convert(&mut obj, storage, other);
            assert_eq!(obj["apiVersion"], json!(other.group_version()));
            // Everything else, managedFields included, is as stored.
            let mut back = obj.clone();
            back["apiVersion"] = stored["apiVersion"].clone();
            assert_eq!(back, stored);
            convert(&mut obj, other, storage);
            assert_eq!(obj, stored);
        }
    }

    #[test]
    fn other_api_versions_are_left_for_validation() {
        let mut obj = json!({"apiVersion": "other.example.com/v1", "kind": "App"});
        convert(&mut obj, &V1, &V1BETA1);
        assert_eq!(obj["apiVersion"], "other.example.com/v1");
        let mut obj = json!({"kind": "App"});
        convert(&mut obj, &V1BETA1, &V1);
        assert_eq!(obj, json!({"kind": "App"}));
    }
}
