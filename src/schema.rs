//! Structural schemas, loaded from `openapi/`: the single source of truth for validation,
//! pruning of unknown fields, field ownership (list and map types) and the published OpenAPI.
//!
//! Validation follows kube-openapi's validator as kube-apiserver runs it for a CRD (same checks,
//! same wording: `spec.replicas in body should be less than or equal to 10`), and pruning follows
//! the CRD structural pruning (unknown fields are dropped and reported by path).

pub mod defaults;
pub mod rules;

use crate::field_error::FieldError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// JSON types a schema node can require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    /// `object`
    Object,
    /// `array`
    Array,
    /// `string`
    String,
    /// `integer`
    Integer,
    /// `number`
    Number,
    /// `boolean`
    Boolean,
}

impl JsonType {
    fn parse(s: &str) -> Result<JsonType, String> {
        Ok(match s {
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "boolean" => JsonType::Boolean,
            other => return Err(format!("unsupported type {other:?}")),
        })
    }

    /// The name used in OpenAPI and in messages.
    pub fn name(self) -> &'static str {
        match self {
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Boolean => "boolean",
        }
    }
}

/// How a list merges and how its items are owned (`x-kubernetes-list-type`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ListType {
    /// The list is replaced as a whole (the default for CRDs).
    #[default]
    Atomic,
    /// Items are unique scalars, owned one by one.
    Set,
    /// Items are objects keyed by these fields, owned one by one.
    Map(Vec<String>),
}

/// One node of a structural schema.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Required JSON type, if any.
    pub types: Option<JsonType>,
    /// `format`, kept for publishing.
    pub format: Option<String>,
    /// Human description, published for `kubectl explain`.
    pub description: Option<String>,
    /// Known properties of an object.
    pub properties: BTreeMap<String, Node>,
    /// Schema of the values of a map (`additionalProperties`).
    pub additional: Option<Box<Node>>,
    /// Schema of list items.
    pub items: Option<Box<Node>>,
    /// Required properties.
    pub required: Vec<String>,
    /// Allowed values.
    pub enumeration: Option<Vec<Value>>,
    /// Inclusive unless the flag says exclusive.
    pub minimum: Option<(f64, bool)>,
    /// Inclusive unless the flag says exclusive.
    pub maximum: Option<(f64, bool)>,
    /// Bounds on string length (in characters).
    pub min_length: Option<usize>,
    /// Bounds on string length (in characters).
    pub max_length: Option<usize>,
    /// Bounds on list length.
    pub min_items: Option<usize>,
    /// Bounds on list length.
    pub max_items: Option<usize>,
    /// `null` is an allowed value.
    pub nullable: bool,
    /// Unknown fields below this node are kept.
    pub preserve_unknown: bool,
    /// List semantics.
    pub list_type: ListType,
    /// `x-kubernetes-map-type: atomic`.
    pub atomic_map: bool,
    /// `default`: filled in where the property is absent (structural defaulting).
    pub default: Option<Value>,
    /// Whether this node or one below it has a `default` (reads skip defaulting otherwise).
    pub defaults_below: bool,
    /// `x-kubernetes-validations`: the CEL rules on this node.
    pub validations: Vec<rules::ValidationRule>,
}

/// A schema for a whole object.
#[derive(Clone, Debug)]
pub struct Schema {
    /// The root node (an object).
    pub root: Node,
    /// The raw JSON it was loaded from, as published.
    pub raw: Value,
    /// The compiled `x-kubernetes-validations` of every node, `None` when there are none.
    pub rules: Option<Arc<rules::Validator>>,
}

impl Schema {
    /// Loads a schema, resolving `$ref`s against `components` (`#/components/schemas/<name>`).
    /// Rules are compiled here: a rule that does not compile, or calls what this server cannot
    /// run, is an error, as kube-apiserver refuses such a CRD.
    pub fn load(raw: &Value, components: &Map<String, Value>) -> Result<Schema, String> {
        let root = parse_node(raw, components, 0)?;
        let rules = rules::Validator::compile(&root)?.map(Arc::new);
        Ok(Schema {
            root,
            raw: raw.clone(),
            rules,
        })
    }

    /// Fills in defaults where properties are absent (see [`defaults`]).
    pub fn default(&self, value: &mut Value) {
        defaults::apply(&self.root, value);
    }

    /// Drops the fields the schema does not know, returning their paths (`spec.foo`).
    pub fn prune(&self, value: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        prune(&self.root, value, &mut String::new(), &mut unknown);
        unknown
    }

    /// Validates a value; errors are sorted by field path.
    pub fn validate(&self, value: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        validate(&self.root, value, "", &mut errors);
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        errors
    }

    /// The node at a dotted property path, if the schema declares it.
    pub fn node(&self, path: &[&str]) -> Option<&Node> {
        let mut node = &self.root;
        for p in path {
            node = node.properties.get(*p)?;
        }
        Some(node)
    }
}

const SUPPORTED: &[&str] = &[
    "type",
    "format",
    "description",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "nullable",
    "default",
    "allOf",
    "$ref",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-patch-strategy",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-group-version-kind",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
    "uniqueItems",
];

fn parse_node(raw: &Value, components: &Map<String, Value>, depth: usize) -> Result<Node, String> {
    if depth > 32 {
        return Err("schema nests too deeply (recursive $ref?)".into());
    }
    let obj = raw.as_object().ok_or("a schema node must be an object")?;
    for key in obj.keys() {
        if !SUPPORTED.contains(&key.as_str()) {
            return Err(format!("unsupported schema keyword {key:?}"));
        }
    }
    // `allOf: [{$ref}]` and `$ref` resolve to the referenced node; local keys add to it.
    let mut node = if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        resolve(reference, components, depth)?
    } else if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        match all.as_slice() {
            [one] => parse_node(one, components, depth + 1)?,
            _ => return Err("allOf is supported with exactly one $ref".into()),
        }
    } else {
        Node::default()
    };
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        node.types = Some(JsonType::parse(t)?);
    }
    if let Some(f) = obj.get("format").and_then(Value::as_str) {
        node.format = Some(f.to_string());
    }
    if let Some(d) = obj.get("description").and_then(Value::as_str) {
        node.description = Some(d.to_string());
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            node.properties
                .insert(name.clone(), parse_node(prop, components, depth + 1)?);
        }
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(true)) => node.preserve_unknown = true,
        Some(Value::Bool(false)) | None => {}
        Some(schema) => {
            node.additional = Some(Box::new(parse_node(schema, components, depth + 1)?));
        }
    }
    if let Some(items) = obj.get("items") {
        node.items = Some(Box::new(parse_node(items, components, depth + 1)?));
    }
    if let Some(req) = obj.get("required").and_then(Value::as_array) {
        node.required = req
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
    }
    if let Some(e) = obj.get("enum").and_then(Value::as_array) {
        node.enumeration = Some(e.clone());
    }
    let exclusive = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
    if let Some(m) = obj.get("minimum").and_then(Value::as_f64) {
        node.minimum = Some((m, exclusive("exclusiveMinimum")));
    }
    if let Some(m) = obj.get("maximum").and_then(Value::as_f64) {
        node.maximum = Some((m, exclusive("exclusiveMaximum")));
    }
    let count = |k: &str| obj.get(k).and_then(Value::as_u64).map(|n| n as usize);
    node.min_length = count("minLength").or(node.min_length);
    node.max_length = count("maxLength").or(node.max_length);
    node.min_items = count("minItems").or(node.min_items);
    node.max_items = count("maxItems").or(node.max_items);
    node.nullable |= obj
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    node.preserve_unknown |= obj
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => node.list_type = ListType::Set,
        Some("map") => {
            let keys = obj
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .ok_or("x-kubernetes-list-type map needs x-kubernetes-list-map-keys")?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            node.list_type = ListType::Map(keys);
        }
        Some("atomic") | None => {}
        Some(other) => return Err(format!("unsupported x-kubernetes-list-type {other:?}")),
    }
    if obj.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
        node.atomic_map = true;
    }
    if let Some(d) = obj.get("default") {
        node.default = Some(d.clone());
    }
    node.defaults_below = node.default.is_some()
        || node.properties.values().any(|p| p.defaults_below)
        || node.additional.as_deref().is_some_and(|n| n.defaults_below)
        || node.items.as_deref().is_some_and(|n| n.defaults_below);
    if let Some(v) = obj.get("x-kubernetes-validations") {
        let list = v
            .as_array()
            .ok_or("x-kubernetes-validations must be a list")?;
        node.validations = list
            .iter()
            .map(rules::ValidationRule::parse)
            .collect::<Result<_, _>>()?;
    }
    Ok(node)
}

fn resolve(reference: &str, components: &Map<String, Value>, depth: usize) -> Result<Node, String> {
    let name = reference
        .strip_prefix("#/components/schemas/")
        .or_else(|| reference.strip_prefix("#/definitions/"))
        .ok_or_else(|| format!("unsupported $ref {reference:?}"))?;
    let target = components
        .get(name)
        .ok_or_else(|| format!("$ref {reference:?} not found"))?;
    parse_node(target, components, depth + 1)
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn prune(node: &Node, value: &mut Value, path: &mut String, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if node.preserve_unknown && node.properties.is_empty() && node.additional.is_none() {
                return;
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child = node.properties.get(&key).or(node.additional.as_deref());
                let saved = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key);
                match child {
                    Some(child) => {
                        // Non-nullable nulls are dropped, as the CRD decoder drops them.
                        if map.get(&key).is_some_and(Value::is_null) && !child.nullable {
                            map.remove(&key);
                        } else if let Some(v) = map.get_mut(&key) {
                            prune(child, v, path, unknown);
                        }
                    }
                    None if node.preserve_unknown => {}
                    None => {
                        unknown.push(path.clone());
                        map.remove(&key);
                    }
                }
                path.truncate(saved);
            }
        }
        Value::Array(items) => {
            if let Some(item_node) = node.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    let saved = path.len();
                    path.push_str(&format!("[{i}]"));
                    prune(item_node, item, path, unknown);
                    path.truncate(saved);
                }
            }
        }
        _ => {}
    }
}

/// The type name kube-openapi derives for a JSON value.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(t: JsonType, value: &Value) -> bool {
    match (t, value) {
        (JsonType::Object, Value::Object(_))
        | (JsonType::Array, Value::Array(_))
        | (JsonType::String, Value::String(_))
        | (JsonType::Boolean, Value::Bool(_))
        | (JsonType::Number, Value::Number(_)) => true,
        // A float with an integral value is an integer, as kube-openapi accepts it.
        (JsonType::Integer, Value::Number(n)) => {
            !n.is_f64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// Formats a bound like Go's `%v` of a float64.
fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn validate(node: &Node, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let name = if path.is_empty() { "." } else { path };
    let field = path.to_string();
    if value.is_null() {
        if let Some(t) = node.types
            && !node.nullable
        {
            errors.push(FieldError::type_invalid(
                field,
                &Value::String("null".into()),
                &format!("{name} in body must be of type {}: \"null\"", t.name()),
            ));
        }
        return;
    }
    if let Some(t) = node.types
        && !type_matches(t, value)
    {
        let got = kind_of(value);
        errors.push(FieldError::type_invalid(
            field,
            &Value::String(got.into()),
            &format!(
                "{name} in body must be of type {}: {}",
                t.name(),
                crate::field_error::go_quote(got)
            ),
        ));
        return;
    }
    if let Some(allowed) = &node.enumeration
        && !allowed.contains(value)
    {
        let valid: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        errors.push(FieldError::not_supported(field.clone(), value, &valid));
    }
    match value {
        Value::Number(n) => {
            let Some(f) = n.as_f64() else { return };
            if let Some((max, exclusive)) = node.maximum
                && (f > max || (exclusive && f == max))
            {
                let rel = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                errors.push(FieldError::invalid(
                    field.clone(),
                    value,
                    &format!("{name} in body should be {rel} {}", go_float(max)),
                ));
            }
            if let Some((min, exclusive)) = node.minimum
                && (f < min || (exclusive && f == min))
            {
                let rel = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                errors.push(FieldError::invalid(
                    field,
                    value,
                    &format!("{name} in body should be {rel} {}", go_float(min)),
                ));
            }
        }
        Value::String(s) => {
            let len = s.chars().count();
            if let Some(max) = node.max_length
                && len > max
            {
                errors.push(FieldError::too_long(field.clone(), max));
            }
            if let Some(min) = node.min_length
                && len < min
            {
                errors.push(FieldError::invalid(
                    field,
                    value,
                    &format!("{name} in body should be at least {min} chars long"),
                ));
            }
        }
        Value::Array(items) => {
            if let Some(max) = node.max_items
                && items.len() > max
            {
                errors.push(FieldError::too_many(field.clone(), items.len(), max));
            }
            if let Some(min) = node.min_items
                && items.len() < min
            {
                errors.push(FieldError::invalid(
                    field.clone(),
                    value,
                    &format!("{name} in body should have at least {min} items"),
                ));
            }
            if let Some(item_node) = node.items.as_deref() {
                for (i, item) in items.iter().enumerate() {
                    validate(item_node, item, &format!("{path}[{i}]"), errors);
                }
            }
            validate_list_uniqueness(node, items, path, errors);
        }
        Value::Object(map) => {
            for req in &node.required {
                if !map.contains_key(req) {
                    errors.push(FieldError::required(child_path(path, req), ""));
                }
            }
            for (key, child) in map {
                if let Some(child_node) = node.properties.get(key).or(node.additional.as_deref()) {
                    validate(child_node, child, &child_path(path, key), errors);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Sets must not repeat a value and map lists must not repeat a key (as kube-apiserver checks).
fn validate_list_uniqueness(
    node: &Node,
    items: &[Value],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    match &node.list_type {
        ListType::Atomic => {}
        ListType::Set => {
            let mut seen = HashSet::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(canonical(item)) {
                    errors.push(FieldError::duplicate(format!("{path}[{i}]"), item));
                }
            }
        }
        ListType::Map(keys) => {
            let mut seen = HashSet::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(map_key(keys, item)) {
                    let k = keys.iter().map(|k| item.get(k));
                    let shown: Map<String, Value> = keys
                        .iter()
                        .zip(k)
                        .filter_map(|(name, v)| v.map(|v| (name.clone(), v.clone())))
                        .collect();
                    errors.push(FieldError::duplicate(
                        format!("{path}[{i}]"),
                        &Value::Object(shown),
                    ));
                }
            }
        }
    }
}

/// A value's JSON text, which is the same for equal values (objects keep their keys sorted):
/// what duplicates are found by, in one pass over a list however long.
fn canonical<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The key of a map list's item (`x-kubernetes-list-map-keys`) as text: equal for items whose
/// key fields are equal, a missing field distinct from a `null` one.
fn map_key(keys: &[String], item: &Value) -> String {
    let values: Vec<Option<[&Value; 1]>> = keys.iter().map(|k| item.get(k).map(|v| [v])).collect();
    canonical(&values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app() -> Schema {
        let raw: Value = serde_json::from_str(include_str!("../openapi/app.json")).unwrap();
        Schema::load(&raw, &Map::new()).unwrap()
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(FieldError::message).collect()
    }

    #[test]
    fn seed_example_fails_like_kube_apiserver() {
        let errs = app().validate(&json!({"spec": {"version": "v1.0.2", "replicas": 15}}));
        assert_eq!(
            messages(&errs),
            [
                "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10",
                "spec.version: Unsupported value: \"v1.0.2\": supported values: \"v1.0.0\", \"v1.0.1\"",
            ]
        );
        assert_eq!(errs[0].reason, "FieldValueInvalid");
        assert_eq!(errs[1].reason, "FieldValueNotSupported");
    }

    #[test]
    fn validation_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"spec": {"version": "v1.0.0", "replicas": 1}}),
                vec![],
            ),
            (json!({"spec": {"replicas": 10}}), vec![]),
            (json!({"spec": {"replicas": 2.0}}), vec![]),
            (
                json!({"spec": {"replicas": 0}}),
                vec![
                    "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
                ],
            ),
            (
                json!({"spec": {"replicas": "three"}}),
                vec![
                    "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                ],
            ),
            (
                json!({"spec": {"replicas": 1.5}}),
                vec![
                    "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\"",
                ],
            ),
            (
                json!({"spec": {"selector": {"matchLabels": {"a": 1}}}}),
                vec![
                    "spec.selector.matchLabels.a: Invalid value: \"integer\": spec.selector.matchLabels.a in body must be of type string: \"integer\"",
                ],
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready"}]}}),
                vec!["status.conditions[0].status: Required value"],
            ),
            (
                json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "A", "status": "False"}]}}),
                vec!["status.conditions[1]: Duplicate value: {\"type\":\"A\"}"],
            ),
            (
                json!({"spec": "nope"}),
                vec![
                    "spec: Invalid value: \"string\": spec in body must be of type object: \"string\"",
                ],
            ),
        ];
        let schema = app();
        for (value, want) in cases {
            assert_eq!(messages(&schema.validate(&value)), want, "for {value}");
        }
    }

    #[test]
    fn prune_reports_unknown_paths_and_drops_nulls() {
        let mut v = json!({
            "spec": {"replicas": 1, "colour": "red", "version": null,
                      "selector": {"matchLabels": {"a": "b"}, "extra": 1}},
            "status": {"conditions": [{"type": "A", "status": "True", "bogus": true}]},
            "top": 1
        });
        let unknown = app().prune(&mut v);
        assert_eq!(
            unknown,
            [
                "spec.colour",
                "spec.selector.extra",
                "status.conditions[0].bogus",
                "top"
            ]
        );
        assert_eq!(
            v,
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}},
                   "status": {"conditions": [{"type": "A", "status": "True"}]}})
        );
    }

    #[test]
    fn unsupported_keywords_are_refused_at_load() {
        let err =
            Schema::load(&json!({"type": "string", "pattern": "^a$"}), &Map::new()).unwrap_err();
        assert!(err.contains("pattern"), "{err}");
    }
}
