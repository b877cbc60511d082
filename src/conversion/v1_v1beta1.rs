//! `v1` ↔ `v1beta1`. The two schemas are the same (DESIGN.md), so only `apiVersion` changes;
//! a field renamed or restructured between them would be mapped here, in both directions.

use serde_json::Value;

/// A stored `v1` object as `v1beta1`.
pub fn to_v1beta1(obj: &mut Value) {
    super::set_api_version(obj, "v1beta1");
}

/// A `v1beta1` object as `v1`, for storage.
pub fn to_v1(obj: &mut Value) {
    super::set_api_version(obj, "v1");
}
