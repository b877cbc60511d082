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
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// Whether defaulting would change the JSON document `bytes`, found by scanning it without
/// building it (what lets reads serve stored bytes as they are, the common case). Malformed
/// JSON answers `true`, so that the caller parses it and reports the error.
pub fn needed(node: &Node, bytes: &[u8]) -> bool {
    if !node.defaults_below {
        return false;
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Scan(node).deserialize(&mut de).unwrap_or(true)
}

/// Scans a value for places defaulting would fill.
struct Scan<'a>(&'a Node);

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        if !self.0.defaults_below {
            d.deserialize_ignored_any(IgnoredAny)?;
            return Ok(false);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut needed = false;
        match self.0.items.as_deref() {
            Some(item) => {
                while let Some(n) = seq.next_element_seed(Element(item))? {
                    needed |= n;
                }
            }
            None => while seq.next_element::<IgnoredAny>()?.is_some() {},
        }
        Ok(needed)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let node = self.0;
        let mut needed = false;
        let mut seen: Vec<&str> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if let Some((name, prop)) = node.properties.get_key_value(key.as_ref()) {
                seen.push(name.as_str());
                needed |= map.next_value_seed(Element(prop))?;
            } else if let Some(values) = node.additional.as_deref() {
                needed |= map.next_value_seed(Element(values))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let missing = node
            .properties
            .iter()
            .any(|(name, prop)| prop.default.is_some() && !seen.contains(&name.as_str()));
        Ok(needed || missing)
    }
}

/// A value in a place whose own `null` may be defaulted.
struct Element<'a>(&'a Node);

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        if !self.0.defaults_below {
            d.deserialize_ignored_any(IgnoredAny)?;
            return Ok(false);
        }
        d.deserialize_any(ElementVisitor(self.0))
    }
}

struct ElementVisitor<'a>(&'a Node);

impl<'de> Visitor<'de> for ElementVisitor<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(!self.0.nullable && self.0.default.is_some())
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        Scan(self.0).visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        Scan(self.0).visit_map(map)
    }
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
}
