//! Structural defaulting, as apiextensions-apiserver does it for a CRD
//! (`pkg/apiserver/schema/defaulting/algorithm.go`): a property with a `default` that is absent
//! from an object that exists (or is a `null` it may not be) gets a copy of the default, and the
//! defaults inside it apply too. A default never creates a missing parent: `spec.replicas` is not
//! set on an App without a `spec`.
//!
//! kube-apiserver runs it whenever it decodes an object: request bodies (create, update), the
//! result of a patch or an apply, and objects read from storage, so an object stored before a
//! default existed is served with it.

use super::Node;
use crate::object::skim::{Raw, Skim, Step};
use serde_json::Value;

/// Whether a `null` here would be replaced by the node's default.
fn defaulted_null(value: &Value, node: &Node) -> bool {
    value.is_null() && !node.nullable && node.default.is_some()
}

/// Fills in defaults below `node` in `value`.
pub fn apply(node: &Node, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, prop) in &node.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                match map.get(name) {
                    None => {
                        map.insert(name.clone(), default.clone());
                    }
                    Some(v) if defaulted_null(v, prop) => {
                        map.insert(name.clone(), default.clone());
                    }
                    Some(_) => {}
                }
            }
            for (name, child) in map.iter_mut() {
                if let Some(prop) = node.properties.get(name) {
                    apply(prop, child);
                } else if let Some(values) = node.additional.as_deref() {
                    if defaulted_null(child, values)
                        && let Some(d) = &values.default
                    {
                        *child = d.clone();
                    }
                    apply(values, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.items.as_deref() {
                for v in items.iter_mut() {
                    if defaulted_null(v, item)
                        && let Some(d) = &item.default
                    {
                        *v = d.clone();
                    }
                    apply(item, v);
                }
            }
        }
        _ => {}
    }
}

/// Whether defaulting would change the JSON document `bytes`, found by skimming it without
/// building it (what lets reads serve stored bytes as they are, the common case): only the
/// members whose schema has defaults below them are looked into. Malformed JSON answers `true`,
/// so that the caller parses it and reports the error.
pub fn needed(node: &Node, bytes: &[u8]) -> bool {
    if !node.defaults_below {
        return false;
    }
    let mut s = Skim::new(bytes);
    match scan(node, &mut s) {
        Some(needed) => needed || !s.at_end(),
        None => true,
    }
}

/// Whether defaulting would change the value at the cursor (consumed).
fn scan(node: &Node, s: &mut Skim<'_>) -> Option<bool> {
    s.ws();
    match s.peek()? {
        b'{' => {
            s.at += 1;
            let mut needed = false;
            let mut seen: Vec<&str> = Vec::new();
            s.raw_members(|s, key, _| {
                let property = match key {
                    Raw::Plain(bytes) => node
                        .properties
                        .iter()
                        .find(|(name, _)| name.as_bytes() == bytes),
                    Raw::Escaped(quoted) => {
                        let key = serde_json::from_slice::<String>(quoted).ok()?;
                        node.properties.get_key_value(key.as_str())
                    }
                };
                if let Some((name, prop)) = property {
                    if prop.default.is_some() {
                        seen.push(name.as_str());
                    }
                    needed |= element(prop, s)?;
                } else if let Some(values) = node.additional.as_deref() {
                    needed |= element(values, s)?;
                } else {
                    s.skip_value()?;
                }
                Some(Step::Next)
            })?;
            s.expect(b'}')?;
            let missing = node
                .properties
                .iter()
                .any(|(name, prop)| prop.default.is_some() && !seen.contains(&name.as_str()));
            Some(needed || missing)
        }
        b'[' => {
            s.at += 1;
            let Some(item) = node.items.as_deref() else {
                s.at -= 1;
                s.skip_value()?;
                return Some(false);
            };
            let mut needed = false;
            s.ws();
            if s.peek()? == b']' {
                s.at += 1;
                return Some(false);
            }
            loop {
                needed |= element(item, s)?;
                s.ws();
                match s.peek()? {
                    b',' => s.at += 1,
                    b']' => {
                        s.at += 1;
                        return Some(needed);
                    }
                    _ => return None,
                }
            }
        }
        _ => {
            s.skip_value()?;
            Some(false)
        }
    }
}

/// A value in a place whose own `null` may be defaulted.
fn element(node: &Node, s: &mut Skim<'_>) -> Option<bool> {
    if !node.defaults_below {
        s.skip_value()?;
        return Some(false);
    }
    if s.null() {
        return Some(!node.nullable && node.default.is_some());
    }
    scan(node, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Node {
        let raw = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "fast"},
                "nested": {"type": "object", "default": {}, "properties": {
                    "level": {"type": "integer", "default": 3}}},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "x"}},
                "maybe": {"type": "integer", "nullable": true, "default": 7},
            }},
            "status": {"type": "object", "properties": {"n": {"type": "integer"}}},
        }});
        crate::schema::Schema::load(&raw, &serde_json::Map::new())
            .unwrap()
            .root
    }

    #[test]
    fn defaulting_table() {
        let cases = [
            // No spec: no defaults below it (a default never creates its parent).
            (json!({}), json!({})),
            (json!({"status": {}}), json!({"status": {}})),
            // Absent and non-nullable null properties are defaulted; defaults inside defaults too.
            (
                json!({"spec": {"replicas": null}}),
                json!({"spec": {"replicas": 1, "mode": "fast", "nested": {"level": 3}, "maybe": 7}}),
            ),
            // Present values stay; a nullable null stays null.
            (
                json!({"spec": {"replicas": 5, "mode": "slow", "nested": {"level": 9}, "maybe": null}}),
                json!({"spec": {"replicas": 5, "mode": "slow", "nested": {"level": 9}, "maybe": null}}),
            ),
            // List items and map values.
            (
                json!({"spec": {"replicas": 2, "mode": "m", "nested": {}, "ports": [{}, {"protocol": "UDP"}], "labels": {"a": null, "b": "c"}}}),
                json!({"spec": {"replicas": 2, "mode": "m", "nested": {"level": 3}, "maybe": 7, "ports": [{"protocol": "TCP"}, {"protocol": "UDP"}], "labels": {"a": "x", "b": "c"}}}),
            ),
        ];
        let node = schema();
        for (input, want) in cases {
            let mut got = input.clone();
            apply(&node, &mut got);
            assert_eq!(got, want, "for {input}");
            let bytes = serde_json::to_vec(&input).unwrap();
            assert_eq!(needed(&node, &bytes), input != want, "scan of {input}");
            let bytes = serde_json::to_vec(&want).unwrap();
            assert!(!needed(&node, &bytes), "scan of defaulted {want}");
        }
        assert!(needed(&node, b"{not json"));
    }

    /// Random documents shaped like the schema: the skim says "needed" exactly when applying
    /// the defaults changes the document.
    #[test]
    fn the_skim_agrees_with_applying() {
        use proptest::prelude::*;
        let node = schema();
        let key = prop::sample::select(vec![
            "spec", "replicas", "mode", "nested", "level", "ports", "protocol", "labels", "maybe",
            "status", "n", "x\"y",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z\"\\\\ ]{0,6}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(|members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect(),
                    )
                }),
            ]
        });
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&value, |doc| {
                let mut defaulted = doc.clone();
                apply(&node, &mut defaulted);
                let bytes = serde_json::to_vec(&doc).unwrap();
                prop_assert_eq!(needed(&node, &bytes), defaulted != doc, "{}", doc);
                Ok(())
            })
            .unwrap();
    }
}
