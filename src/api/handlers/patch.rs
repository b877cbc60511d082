//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386) applied to a stored object, with
//! kube-apiserver's limits and error codes.

use crate::api::error::{ApiError, ApiResult};
use serde_json::Value;

/// More operations than this in one JSON patch is refused (413), as kube-apiserver does.
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 6902 JSON patch.
pub fn json_patch(target: &Value, body: &[u8]) -> ApiResult<Value> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request("invalid JSON patch"))?;
    if let Some(ops) = raw.as_array()
        && ops.len() > MAX_JSON_PATCH_OPERATIONS
    {
        return Err(ApiError::too_large(&format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let patch: json_patch::Patch =
        serde_json::from_value(raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The patch runs on a copy that is dropped on failure, so nothing needs undoing; json-patch's
    // undo can itself fail (a `move` to the root, then a failing op) and panics when it does.
    let mut doc = target.clone();
    json_patch::patch_unsafe(&mut doc, &patch).map_err(|e| rejected(&e.to_string()))?;
    Ok(doc)
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(target: &Value, body: &[u8]) -> ApiResult<Value> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request("invalid JSON patch"))?;
    let mut doc = target.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

/// 422 for a patch that does not apply, worded as kube-apiserver's generic response, with the
/// reason as a cause.
fn rejected(why: &str) -> ApiError {
    ApiError::invalid_generic(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_apply_and_fail_with_the_right_codes() {
        let obj = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1}});
        let p = json_patch(
            &obj,
            br#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
        )
        .unwrap();
        assert_eq!(p["spec"]["replicas"], 3);
        let m = merge_patch(&obj, br#"{"metadata":{"labels":{"x":null,"y":"2"}}}"#).unwrap();
        assert_eq!(m["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(json_patch(&obj, b"not json").unwrap_err().code(), 400);
        // Found by tests/fuzz.rs: json-patch's own undo of this sequence panics.
        let undo = br#"[{"op":"move","from":"/spec/replicas","path":""},{"op":"add","path":"/spec/replicas","value":null}]"#;
        assert_eq!(json_patch(&obj, undo).unwrap_err().code(), 422);
        assert_eq!(
            json_patch(&obj, br#"[{"op":"bogus"}]"#).unwrap_err().code(),
            400
        );
        let e = json_patch(
            &obj,
            br#"[{"op":"test","path":"/spec/replicas","value":2}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), 422);
        assert_eq!(
            json_patch(&obj, br#"[{"op":"remove","path":"/nope"}]"#)
                .unwrap_err()
                .code(),
            422
        );
        assert_eq!(merge_patch(&obj, b"{").unwrap_err().code(), 400);
    }
}
