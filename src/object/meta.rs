//! `metadata` of objects held as JSON: accessors and ObjectMeta validation
//! (`k8s.io/apimachinery/pkg/api/validation/objectmeta.go`).

use super::names;
use crate::field_error::FieldError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `metadata` of an object, if it is an object.
pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

/// `metadata` of an object, created empty if missing or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("the value was made an object just above")
    };
    let entry = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let Value::Object(meta) = entry else {
        unreachable!("metadata was made an object just above")
    };
    meta
}

/// A string field of `metadata` (`""` when absent).
pub fn str_field<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    str_field(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    str_field(obj, "namespace")
}

/// `metadata.uid`.
pub fn uid(obj: &Value) -> &str {
    str_field(obj, "uid")
}

/// `metadata.resourceVersion`.
pub fn resource_version(obj: &Value) -> &str {
    str_field(obj, "resourceVersion")
}

/// `metadata.generation` (0 when absent).
pub fn generation(obj: &Value) -> i64 {
    meta(obj)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Sets or removes a `metadata` field.
pub fn set(obj: &mut Value, field: &str, value: Option<Value>) {
    let m = meta_mut(obj);
    match value {
        Some(v) => {
            m.insert(field.to_string(), v);
        }
        None => {
            m.remove(field);
        }
    }
}

/// A string-to-string map of `metadata` (`labels`, `annotations`); non-string values are skipped.
pub fn string_map<'a>(obj: &'a Value, field: &str) -> BTreeMap<&'a str, &'a str> {
    meta(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// The current time as Kubernetes serializes `metav1.Time` (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Which names a kind accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (names that are also namespace names).
    Label,
}

impl NameRule {
    /// Problems with a name (or, with `prefix`, a generateName prefix).
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        // A generateName prefix may end in '-', which is fine once a suffix follows.
        let candidate = if prefix {
            format!("{}a", name.trim_end_matches('-'))
        } else {
            name.to_string()
        };
        let mut errs = names::path_segment_name(name);
        if errs.is_empty() {
            errs = match self {
                NameRule::Subdomain => names::dns1123_subdomain(&candidate),
                NameRule::Label => names::dns1123_label(&candidate),
            };
        }
        errs
    }
}

fn map_errors(obj: &Value, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = meta(obj).and_then(|m| m.get(field))
        && !v.is_null()
        && !v.is_object()
    {
        errs.push(FieldError::invalid(
            format!("metadata.{field}"),
            v,
            "must be a map of strings",
        ));
    }
}

/// ObjectMeta checks shared by create and update: labels, annotations, finalizers, owners.
fn validate_common(obj: &Value, errs: &mut Vec<FieldError>) {
    map_errors(obj, "labels", errs);
    map_errors(obj, "annotations", errs);
    for (k, v) in string_map(obj, "labels") {
        for msg in names::qualified_name(k) {
            errs.push(FieldError::invalid(
                "metadata.labels",
                &Value::String(k.into()),
                &msg,
            ));
        }
        for msg in names::label_value(v) {
            errs.push(FieldError::invalid(
                "metadata.labels",
                &Value::String(v.into()),
                &msg,
            ));
        }
    }
    let annotations = string_map(obj, "annotations");
    for k in annotations.keys() {
        for msg in names::qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(
                "metadata.annotations",
                &Value::String((*k).into()),
                &msg,
            ));
        }
    }
    let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > 256 * 1024 {
        errs.push(FieldError::too_long("metadata.annotations", 256 * 1024));
    }
    for f in finalizers(obj) {
        for msg in names::qualified_name(&f) {
            errs.push(FieldError::invalid(
                "metadata.finalizers",
                &Value::String(f.clone()),
                &msg,
            ));
        }
    }
    validate_owner_references(obj, errs);
}

fn validate_owner_references(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(refs) = meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
    else {
        return;
    };
    let mut controller: Option<String> = None;
    for (i, r) in refs.iter().enumerate() {
        let path = format!("metadata.ownerReferences[{i}]");
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let api_version = s("apiVersion");
        if api_version.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.apiVersion"),
                "must not be empty",
            ));
        } else if api_version.split('/').count() > 2 || api_version.ends_with('/') {
            errs.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                &Value::String(api_version.into()),
                "must be <group>/<version> or <version>",
            ));
        }
        for field in ["kind", "name", "uid"] {
            if s(field).is_empty() {
                errs.push(FieldError::required(
                    format!("{path}.{field}"),
                    "must not be empty",
                ));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{}/{}", s("kind"), s("name"));
            match &controller {
                Some(first) => errs.push(FieldError::invalid(
                    "metadata.ownerReferences",
                    &Value::Array(refs.clone()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => controller = Some(current),
            }
        }
    }
}

/// ObjectMeta validation of a new object (`ValidateObjectMetaAccessor`).
pub fn validate_create(obj: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate_name = str_field(obj, "generateName");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                &Value::String(generate_name.into()),
                &msg,
            ));
        }
    }
    let name = name(obj);
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in rule.check(name, false) {
            errs.push(FieldError::invalid(
                "metadata.name",
                &Value::String(name.into()),
                &msg,
            ));
        }
    }
    let ns = namespace(obj);
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in names::dns1123_label(ns) {
                errs.push(FieldError::invalid(
                    "metadata.namespace",
                    &Value::String(ns.into()),
                    &msg,
                ));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    validate_common(obj, &mut errs);
    errs
}

/// ObjectMeta validation of an update (`ValidateObjectMetaAccessorUpdate`).
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if is_deleting(old) {
        let old_f: std::collections::HashSet<String> = finalizers(old).into_iter().collect();
        let mut extra: Vec<String> = finalizers(new)
            .into_iter()
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let shown: Vec<String> = extra
                .iter()
                .map(|f| crate::field_error::go_quote(f))
                .collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    shown.join(", ")
                ),
            ));
        }
    }
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
    ] {
        let (n, o) = (
            meta(new).and_then(|m| m.get(field)),
            meta(old).and_then(|m| m.get(field)),
        );
        if n != o {
            errs.push(FieldError::invalid(
                format!("metadata.{field}"),
                n.unwrap_or(&Value::String(String::new())),
                "field is immutable",
            ));
        }
    }
    validate_common(new, &mut errs);
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn create_rules() {
        let ok =
            json!({"metadata": {"name": "web", "namespace": "default", "labels": {"tier": "web"}}});
        assert!(validate_create(&ok, true, NameRule::Subdomain).is_empty());
        let missing = json!({"metadata": {"namespace": "default"}});
        assert_eq!(
            msgs(validate_create(&missing, true, NameRule::Subdomain)),
            ["metadata.name: Required value: name or generateName is required"]
        );
        let cluster_with_ns = json!({"metadata": {"name": "team-a", "namespace": "x"}});
        assert_eq!(
            msgs(validate_create(&cluster_with_ns, false, NameRule::Label)),
            ["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let dotted = json!({"metadata": {"name": "a.b"}});
        assert_eq!(
            msgs(validate_create(&dotted, false, NameRule::Label)),
            ["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        let bad_label = json!({"metadata": {"name": "a", "namespace": "d", "labels": {"k": "-v"}}});
        assert_eq!(
            validate_create(&bad_label, true, NameRule::Subdomain).len(),
            1
        );
        let prefix =
            json!({"metadata": {"generateName": "web-", "name": "web-x1x2x", "namespace": "d"}});
        assert!(validate_create(&prefix, true, NameRule::Subdomain).is_empty());
    }

    #[test]
    fn update_rules() {
        let old = json!({"metadata": {"name": "a", "uid": "1", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x/a"]}});
        let new = json!({"metadata": {"name": "a", "uid": "1", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x/a", "x/b"]}});
        assert_eq!(
            msgs(validate_update(&new, &old)),
            [
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x/b\"}"
            ]
        );
        let renamed = json!({"metadata": {"name": "b", "uid": "1", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x/a"]}});
        assert_eq!(
            msgs(validate_update(&renamed, &old)),
            ["metadata.name: Invalid value: \"b\": field is immutable"]
        );
    }
}
