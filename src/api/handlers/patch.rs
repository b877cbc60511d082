//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386) applied to a stored object, with
//! kube-apiserver's limits, strict-decoding checks and error codes and words
//! (`pkg/endpoints/handlers/patch.go`, `jsonPatcher`).

use crate::api::decode::parse_json;
use crate::api::error::{ApiError, ApiResult};
use crate::api::go_json::{self, json_kind};
use crate::api::negotiation::PatchType;
use crate::field_error::{FieldError, go_quote};
use crate::registry::FieldValidation;
use serde_json::Value;

/// More operations than this in one JSON patch is refused (413), as kube-apiserver does.
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes (of compact JSON) the `copy` operations of one JSON patch may copy in all:
/// kube-apiserver's `JSONPatchMaxCopyBytes` default. Beyond it the patch fails (422).
const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The length of a value as compact JSON, counted without building the text.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _infallible = serde_json::to_writer(&mut count, value);
    count.0
}

/// The checks kube-apiserver makes of a patch body before it looks the object up
/// (`validateAndTranscodePatch`): JSON patches must be JSON, apply patches YAML.
pub fn check_body(kind: PatchType, body: &[u8]) -> ApiResult<()> {
    match kind {
        PatchType::Json | PatchType::Merge => {
            if go_json::syntax_error(body).is_some() {
                return Err(ApiError::bad_request("invalid JSON patch"));
            }
        }
        PatchType::Apply => {
            if !body.iter().all(u8::is_ascii_whitespace) {
                crate::api::yaml::to_json(body).map_err(|e| {
                    ApiError::bad_request(format!(
                        "error encoding patch: error converting YAML to JSON: {e}"
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// A patched object, with the strict-decoding findings to warn about.
pub struct Patched {
    /// The object after the patch, unknown fields pruned.
    pub object: Value,
    /// Findings to send as `Warning`s (`fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

/// The strict decoding of a JSON patch into kube-apiserver's `[]jsonPatchOp`: the error that
/// stops it, or the findings (`json patch unknown field "[0].x"`) it reports.
fn strict_json_patch(raw: &Value, duplicates: &[String]) -> ApiResult<Vec<String>> {
    let decoding = |why: String| ApiError::bad_request(format!("error decoding patch: {why}"));
    let ops = match raw {
        Value::Null => return Ok(Vec::new()),
        Value::Array(ops) => ops,
        other => {
            return Err(decoding(format!(
                "json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                json_kind(other)
            )));
        }
    };
    let mut findings: Vec<String> = duplicates
        .iter()
        .map(|d| format!("json patch duplicate field {}", go_quote(d)))
        .collect();
    for (i, op) in ops.iter().enumerate() {
        let fields = match op {
            Value::Null => continue,
            Value::Object(fields) => fields,
            other => {
                return Err(decoding(format!(
                    "json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
                    json_kind(other)
                )));
            }
        };
        for (name, value) in fields {
            match name.as_str() {
                "op" | "path" | "from" => {
                    if !matches!(value, Value::String(_) | Value::Null) {
                        return Err(decoding(format!(
                            "json: cannot unmarshal {} into Go struct field jsonPatchOp.{name} of type string",
                            json_kind(value)
                        )));
                    }
                }
                "value" => {}
                other => findings.push(format!(
                    "json patch unknown field {}",
                    go_quote(&format!("[{i}].{other}"))
                )),
            }
        }
    }
    Ok(findings)
}

/// The 422 of a patch whose result cannot be decoded (or, strictly, has unknown fields):
/// `field.Invalid("patch", <patched JSON>, why)` of no kind.
fn patch_invalid(patched: &Value, why: &str) -> ApiError {
    let json = serde_json::to_string(patched).unwrap_or_default();
    ApiError::invalid(
        "",
        "",
        "",
        &[FieldError::invalid("patch", &Value::String(json), why)],
    )
}

/// Applies a JSON or merge patch to `target` and checks the result as kube-apiserver decodes
/// it: `prune` drops and returns the fields the target's type does not know (as
/// `unknown field "..."` findings), refused or warned about as `validation` says.
pub fn apply(
    kind: PatchType,
    target: &Value,
    body: &[u8],
    validation: FieldValidation,
    prune: &dyn Fn(&mut Value) -> Vec<String>,
) -> ApiResult<Patched> {
    let strict = validation != FieldValidation::Ignore;
    let (raw, duplicates) =
        parse_json(body).map_err(|_| ApiError::bad_request("invalid JSON patch"))?;
    let mut findings = Vec::new();
    let mut doc = match kind {
        PatchType::Json => {
            if strict {
                findings = strict_json_patch(&raw, &duplicates)?;
            }
            let ops = match &raw {
                Value::Null => Vec::new(),
                Value::Array(ops) => ops.clone(),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                        json_kind(other)
                    )));
                }
            };
            if let Some(other) = ops.iter().find(|op| !op.is_object() && !op.is_null()) {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                    json_kind(other)
                )));
            }
            if ops.len() > MAX_JSON_PATCH_OPERATIONS {
                return Err(ApiError::too_large(&format!(
                    "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                    ops.len()
                )));
            }
            // kube-apiserver answers every failure to apply a JSON patch (an unknown op, a
            // failed `test`, a missing path) with the same generic 422.
            let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
                .map_err(|_| ApiError::invalid_generic())?;
            // The patch runs on a copy that is dropped on failure, so nothing needs undoing;
            // json-patch's own undo can fail (a `move` to the root, then a failing op) and
            // panics when it does.
            let mut doc = target.clone();
            let mut copied = 0usize;
            for op in &patch.0 {
                // As kube-apiserver (`JSONPatchMaxCopyBytes`): what `copy` ops add up to is
                // bounded, or a few doublings would take all memory and CPU.
                if let json_patch::PatchOperation::Copy(copy) = op
                    && let Some(value) = doc.pointer(copy.from.as_str())
                {
                    copied = copied.saturating_add(json_size(value));
                    if copied > MAX_JSON_PATCH_COPY_BYTES {
                        return Err(ApiError::invalid_generic());
                    }
                }
                json_patch::patch_unsafe(&mut doc, std::slice::from_ref(op))
                    .map_err(|_| ApiError::invalid_generic())?;
            }
            doc
        }
        PatchType::Merge => {
            if strict {
                if !raw.is_object() && !raw.is_null() {
                    return Err(ApiError::bad_request(format!(
                        "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                        json_kind(&raw)
                    )));
                }
                findings.extend(
                    duplicates
                        .iter()
                        .map(|d| format!("duplicate field {}", go_quote(d))),
                );
            }
            match &raw {
                Value::Object(_) | Value::Array(_) => {}
                // evanphx/json-patch's `ErrBadJSONPatch`.
                _ => return Err(ApiError::bad_request("Invalid JSON Patch")),
            }
            let mut doc = target.clone();
            json_patch::merge(&mut doc, &raw);
            doc
        }
        PatchType::Apply => {
            return Err(ApiError::internal(
                "apply patches are handled by the field manager",
            ));
        }
    };
    // Decoding the result: it must still be an object of a kind.
    match &doc {
        Value::Object(map) => {
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                let json = serde_json::to_string(&doc).unwrap_or_default();
                return Err(patch_invalid(
                    &doc,
                    &format!("Object 'Kind' is missing in '{json}'"),
                ));
            }
        }
        other => {
            let why = match go_json::kind_probe_error(other) {
                Some(e) => format!("couldn't get version/kind; json parse error: {e}"),
                None => format!(
                    "Object 'Kind' is missing in '{}'",
                    serde_json::to_string(other).unwrap_or_default()
                ),
            };
            return Err(patch_invalid(other, &why));
        }
    }
    let before = doc.clone();
    let unknown = prune(&mut doc);
    if strict {
        findings.extend(
            unknown
                .iter()
                .map(|p| format!("unknown field {}", go_quote(p))),
        );
    }
    if !findings.is_empty() && validation == FieldValidation::Strict {
        return Err(patch_invalid(
            &before,
            &format!("strict decoding error: {}", findings.join(", ")),
        ));
    }
    Ok(Patched {
        object: doc,
        warnings: if validation == FieldValidation::Warn {
            findings
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_prune(_: &mut Value) -> Vec<String> {
        Vec::new()
    }

    fn run(kind: PatchType, body: &str, validation: FieldValidation) -> ApiResult<Patched> {
        let obj = json!({"kind": "App", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1}});
        apply(kind, &obj, body.as_bytes(), validation, &no_prune)
    }

    #[test]
    fn patches_apply_and_fail_with_kube_codes_and_words() {
        use FieldValidation::*;
        use PatchType::*;
        let p = run(
            Json,
            r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
            Warn,
        )
        .ok()
        .unwrap();
        assert_eq!(p.object["spec"]["replicas"], 3);
        let m = run(Merge, r#"{"metadata":{"labels":{"x":null,"y":"2"}}}"#, Warn)
            .ok()
            .unwrap();
        assert_eq!(m.object["metadata"]["labels"], json!({"y": "2"}));
        let generic = "the server rejected our request due to an error in our request";
        let cases: &[(PatchType, &str, FieldValidation, u16, &str)] = &[
            (
                Json,
                r#"[{"op":"test","path":"/spec/replicas","value":2}]"#,
                Warn,
                422,
                generic,
            ),
            (
                Json,
                r#"[{"op":"remove","path":"/nope"}]"#,
                Warn,
                422,
                generic,
            ),
            (Json, r#"[{"op":"bogus"}]"#, Warn, 422, generic),
            // Found by tests/fuzz.rs: json-patch's own undo of this sequence panics.
            (
                Json,
                r#"[{"op":"move","from":"/spec/replicas","path":""},{"op":"add","path":"/spec/replicas","value":null}]"#,
                Warn,
                422,
                generic,
            ),
            (
                Json,
                r#"{"op":"add"}"#,
                Warn,
                400,
                "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
            ),
            (
                Json,
                r#"{"op":"add"}"#,
                Ignore,
                400,
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            ),
            (
                Json,
                r#"[5]"#,
                Warn,
                400,
                "error decoding patch: json: cannot unmarshal number into Go value of type handlers.jsonPatchOp",
            ),
            (
                Json,
                r#"[{"op":1}]"#,
                Warn,
                400,
                "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.op of type string",
            ),
            (Merge, "null", Ignore, 400, "Invalid JSON Patch"),
            (Merge, r#""x""#, Ignore, 400, "Invalid JSON Patch"),
            (
                Merge,
                "[1]",
                Warn,
                400,
                "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}",
            ),
            (
                Json,
                r#"[{"op":"remove","path":"/kind"}]"#,
                Warn,
                422,
                r#" "" is invalid: patch: Invalid value: "{\"metadata\":{\"labels\":{\"x\":\"1\"},\"name\":\"a\"},\"spec\":{\"replicas\":1}}": Object 'Kind' is missing in '{"metadata":{"labels":{"x":"1"},"name":"a"},"spec":{"replicas":1}}'"#,
            ),
            (
                Json,
                r#"[{"op":"add","path":"/metadata/name","value":"b","extra":1}]"#,
                Strict,
                422,
                r#" "" is invalid: patch: Invalid value: "{\"kind\":\"App\",\"metadata\":{\"labels\":{\"x\":\"1\"},\"name\":\"b\"},\"spec\":{\"replicas\":1}}": strict decoding error: json patch unknown field "[0].extra""#,
            ),
        ];
        for (kind, body, validation, code, message) in cases {
            let e = run(*kind, body, *validation).err().unwrap();
            assert_eq!(
                (e.code(), e.message()),
                (*code, *message),
                "{kind:?} {body}"
            );
        }
        let warned = run(
            Json,
            r#"[{"op":"add","path":"/metadata/name","value":"b","extra":1}]"#,
            Warn,
        )
        .ok()
        .unwrap();
        assert_eq!(warned.warnings, [r#"json patch unknown field "[0].extra""#]);
        assert_eq!(
            check_body(Json, b"not json").unwrap_err().message(),
            "invalid JSON patch"
        );
        assert_eq!(check_body(Merge, b"").unwrap_err().code(), 400);
    }
}
