//! What every write does to an object before it is stored, as the custom-resource strategy of
//! kube-apiserver does it: system fields, status reset, generation, pruning, validation.

use super::FieldValidation;
use crate::api::error::{ApiError, ApiResult};
use crate::field_error::FieldError;
use crate::kinds::Resource;
use crate::object::meta;
use rand::Rng;
use serde_json::{Map, Value};

/// Unknown fields: dropped, warned about or refused, as `fieldValidation` says. Also refuses
/// bodies that are not objects.
pub fn prune(
    resource: &Resource,
    obj: &mut Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let unknown = resource.schema.prune(obj);
    if unknown.is_empty() {
        return Ok(());
    }
    let messages: Vec<String> = unknown
        .iter()
        .map(|path| format!("unknown field \"{path}\""))
        .collect();
    match validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            warnings.extend(messages);
            Ok(())
        }
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
    }
}

/// `apiVersion` and `kind` must name this kind.
fn type_meta_errors(resource: &Resource, obj: &Value) -> Vec<FieldError> {
    let kind = resource.kind;
    let mut errs = Vec::new();
    let got_kind = obj
        .get("kind")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    if got_kind.as_str() != Some(kind.kind) {
        errs.push(FieldError::invalid(
            "kind",
            &got_kind,
            &format!("must be {}", kind.kind),
        ));
    }
    let got_version = obj
        .get("apiVersion")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    if got_version.as_str() != Some(kind.api_version().as_str()) {
        errs.push(FieldError::invalid(
            "apiVersion",
            &got_version,
            &format!("must be {}", kind.api_version()),
        ));
    }
    errs
}

/// Failures that keep the CEL rules from running (`hasBlockingErr` of the custom-resource
/// strategy): the object is too malformed for rules written against its schema.
const BLOCKING: &[&str] = &[
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
];

/// Structural and metadata failures sorted by field, then the CEL rules' failures in the order
/// they ran; 422 when there are any. Failures the rules ratchet become `warnings`.
///
/// As apiextensions-apiserver's strategy (`hasBlockingErr`), the rules do not run on an object
/// with a blocking failure. kube-apiserver then also appends a placeholder cause (`<nil>:
/// Invalid value: null: some validation rules were not checked ...`); this server does not,
/// because the contract (DESIGN.md and `crd-oracle/02`) fixes the seed's invalid App at its two
/// causes.
fn finish(
    resource: &Resource,
    new: &Value,
    old: Option<&Value>,
    mut errs: Vec<FieldError>,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    errs.sort_by(|a, b| a.field.cmp(&b.field));
    if let Some(rules) = &resource.schema.rules
        && !errs.iter().any(|e| BLOCKING.contains(&e.reason))
    {
        let outcome = rules.validate(&resource.schema.root, new, old);
        errs.extend(outcome.errors);
        warnings.extend(outcome.warnings);
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_object(
        resource.kind,
        meta::name(new),
        &errs,
    ))
}

/// Every rule a new object must meet (422 otherwise).
pub fn validate_create(resource: &Resource, obj: &Value) -> ApiResult<()> {
    let mut errs = type_meta_errors(resource, obj);
    errs.extend(meta::validate_create(
        obj,
        resource.kind.namespaced,
        resource.kind.name_rule,
    ));
    errs.extend(resource.schema.validate(obj));
    errs.extend((resource.kind.validate)(obj));
    finish(resource, obj, None, errs, &mut Vec::new())
}

/// Every rule an updated object must meet (422 otherwise); ratcheted rule failures are added to
/// `warnings`.
pub fn validate_update(
    resource: &Resource,
    new: &Value,
    old: &Value,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let mut errs = type_meta_errors(resource, new);
    errs.extend(meta::validate_update(new, old));
    errs.extend(resource.schema.validate(new));
    errs.extend((resource.kind.validate)(new));
    finish(resource, new, Some(old), errs, warnings)
}

/// Fills in the schema's defaults, as kube-apiserver does whenever it decodes an object (a
/// request body, a patched or applied object, an object read from storage).
pub fn default(resource: &Resource, obj: &mut Value) {
    resource.schema.default(obj);
}

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` plus five random characters, the base cut so the result fits 63 characters.
pub fn generate_name(base: &str) -> String {
    let base: String = base.chars().take(63 - 5).collect();
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// Sets the system fields of a new object and clears what a client may not set.
pub fn prepare_create(resource: &Resource, obj: &mut Value) {
    let m = meta::meta_mut(obj);
    for wiped in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "resourceVersion",
    ] {
        m.remove(wiped);
    }
    m.insert("creationTimestamp".into(), Value::String(meta::now()));
    m.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    m.insert("generation".into(), Value::from(1));
    let name_missing = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty();
    if name_missing
        && let Some(base) = m.get("generateName").and_then(Value::as_str)
        && !base.is_empty()
    {
        let generated = generate_name(base);
        m.insert("name".into(), Value::String(generated));
    }
    if resource.kind.status_subresource
        && let Value::Object(root) = obj
    {
        root.remove("status");
    }
}

fn without_metadata(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "metadata")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Carries over what an update of the main resource may not change: status (when it has its
/// own subresource) and system fields; bumps the generation when anything but metadata changed.
pub fn prepare_update(resource: &Resource, new: &mut Value, old: &Value) {
    if resource.kind.status_subresource
        && let Value::Object(root) = new
    {
        match old.get("status") {
            Some(status) => {
                root.insert("status".into(), status.clone());
            }
            None => {
                root.remove("status");
            }
        }
    }
    carry_system_fields(new, old);
    let generation = meta::generation(old);
    let bump = without_metadata(new) != without_metadata(old);
    meta::set(
        new,
        "generation",
        Some(Value::from(if bump { generation + 1 } else { generation })),
    );
}

/// A status write changes only `status`: everything else comes from the stored object.
pub fn prepare_status_update(new: &mut Value, old: &Value) {
    let status = new.get("status").cloned();
    let managed = meta::meta(new)
        .and_then(|m| m.get("managedFields"))
        .cloned();
    *new = old.clone();
    if let Value::Object(root) = new {
        match status {
            Some(s) => {
                root.insert("status".into(), s);
            }
            None => {
                root.remove("status");
            }
        }
    }
    meta::set(new, "managedFields", managed);
}

/// System fields an update cannot change: kept from the stored object.
fn carry_system_fields(new: &mut Value, old: &Value) {
    let Some(old_meta) = meta::meta(old).cloned() else {
        return;
    };
    let m = meta::meta_mut(new);
    for field in ["creationTimestamp", "deletionTimestamp"] {
        match old_meta.get(field) {
            Some(v) => {
                m.insert(field.into(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
    if m.get("uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
        && let Some(uid) = old_meta.get("uid")
    {
        m.insert("uid".into(), uid.clone());
    }
    if !m.contains_key("deletionGracePeriodSeconds")
        && let Some(g) = old_meta.get("deletionGracePeriodSeconds")
    {
        m.insert("deletionGracePeriodSeconds".into(), g.clone());
    }
    m.remove("selfLink");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app() -> std::sync::Arc<Resource> {
        crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "App")
            .unwrap()
    }

    #[test]
    fn generation_bumps_only_outside_metadata() {
        let r = app();
        let old = json!({"metadata": {"name": "a", "generation": 1, "uid": "u", "creationTimestamp": "t"}, "spec": {"replicas": 1}});
        let mut labels_only =
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"replicas": 1}});
        prepare_update(&r, &mut labels_only, &old);
        assert_eq!(labels_only["metadata"]["generation"], 1);
        assert_eq!(labels_only["metadata"]["uid"], "u");
        let mut spec = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}});
        prepare_update(&r, &mut spec, &old);
        assert_eq!(spec["metadata"]["generation"], 2);
        // Status sent to the main resource is ignored and does not bump the generation.
        let mut status =
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        prepare_update(&r, &mut status, &old);
        assert_eq!(status.get("status"), None);
        assert_eq!(status["metadata"]["generation"], 1);
    }

    #[test]
    fn status_writes_keep_everything_else() {
        let old = json!({"metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"replicas": 1}});
        let mut new =
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 5}, "status": {"replicas": 3}});
        prepare_status_update(&mut new, &old);
        assert_eq!(
            new,
            json!({"metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"replicas": 1}, "status": {"replicas": 3}})
        );
    }

    #[test]
    fn create_sets_system_fields_and_generates_names() {
        let r = app();
        let mut obj = json!({"metadata": {"generateName": "web-", "uid": "mine", "resourceVersion": "5"}, "status": {"replicas": 1}});
        prepare_create(&r, &mut obj);
        let name = obj["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_ne!(obj["metadata"]["uid"], "mine");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert!(obj.get("status").is_none());
    }
}
