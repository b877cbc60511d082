//! JSON values as CEL values, typed by the structural schema as kube-apiserver types them
//! (`k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model` and `UnstructuredToVal`):
//! integers are `int`, numbers `double`, `date-time` strings timestamps, `duration` strings
//! durations; object properties are reached by their escaped names (`__dash__` for `-`, ...);
//! at a resource's root `metadata` shows only `name` and `generateName`.

use crate::schema::{JsonType, Node};
use cel::Value;
use cel::objects::{Key, Map};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// CEL's reserved words: a property named like one is reached as `__<name>__`.
const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name a property is reached by in CEL (`k8s.io/apiserver/pkg/cel.Escape`); `None` when
/// it cannot be (the property is then invisible to rules).
pub fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if !(first.is_ascii_alphabetic() || matches!(first, '_' | '.' | '-' | '/'))
        || !chars.all(allowed)
    {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = r;
            continue;
        }
        let c = rest.chars().next()?;
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

fn map(entries: HashMap<Key, Value>) -> Value {
    Value::Map(Map {
        map: Arc::new(entries),
    })
}

/// A JSON value without a schema (`x-kubernetes-preserve-unknown-fields`, int-or-string).
pub fn untyped(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_u64() {
                Some(u) => Value::UInt(u),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(untyped).collect())),
        Json::Object(m) => map(m
            .iter()
            .map(|(k, v)| (Key::String(Arc::new(k.clone())), untyped(v)))
            .collect()),
    }
}

fn string(node: &Node, s: &str) -> Value {
    match node.format.as_deref() {
        Some("date-time") => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Value::Timestamp(t),
            Err(_) => Value::String(Arc::new(s.to_string())),
        },
        Some("duration") => match parse_duration(s) {
            Some(d) => Value::Duration(d),
            None => Value::String(Arc::new(s.to_string())),
        },
        _ => Value::String(Arc::new(s.to_string())),
    }
}

/// A Go duration string (`1h2m3.5s`) as a duration.
fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    let mut nanos: f64 = 0.0;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        nanos += number * scale;
        any = true;
    }
    if !any {
        return None;
    }
    let d = chrono::Duration::nanoseconds(nanos as i64);
    Some(if negative { -d } else { d })
}

/// A JSON value as the CEL value a rule on `node` sees. `root` marks a resource's root.
pub fn to_cel(node: &Node, v: &Json, root: bool) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Object(m) if !node.properties.is_empty() => {
            let mut out = HashMap::new();
            for (k, child) in m {
                let Some(child_node) = node.properties.get(k) else {
                    continue;
                };
                let Some(name) = escape(k) else { continue };
                let value = if root && k == "metadata" {
                    object_meta(child)
                } else {
                    to_cel(child_node, child, false)
                };
                out.insert(Key::String(Arc::new(name)), value);
            }
            map(out)
        }
        Json::Object(m) => match node.additional.as_deref() {
            Some(values) => map(m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(values, v, false)))
                .collect()),
            None => untyped(v),
        },
        Json::Array(items) => match node.items.as_deref() {
            Some(item) => Value::List(Arc::new(
                items.iter().map(|x| to_cel(item, x, false)).collect(),
            )),
            None => untyped(v),
        },
        Json::Number(n) => match node.types {
            Some(JsonType::Number) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            Some(JsonType::Integer) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::Int(f as i64),
                    _ => untyped(v),
                },
            },
            _ => untyped(v),
        },
        Json::String(s) if node.types == Some(JsonType::String) => string(node, s),
        other => untyped(other),
    }
}

/// `metadata` at a resource's root: only `name` and `generateName`, as Kubernetes exposes it.
fn object_meta(v: &Json) -> Value {
    let mut out = HashMap::new();
    for k in ["name", "generateName"] {
        if let Some(Json::String(s)) = v.get(k) {
            out.insert(
                Key::String(Arc::new(k.to_string())),
                Value::String(Arc::new(s.clone())),
            );
        }
    }
    map(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn property_names_escape_like_kubernetes() {
        let cases = [
            ("spec", Some("spec")),
            ("namespace", Some("__namespace__")),
            ("foo-bar", Some("foo__dash__bar")),
            ("a.b/c", Some("a__dot__b__slash__c")),
            ("x__y", Some("x__underscores__y")),
            ("1abc", None),
            ("a b", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(escape(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn values_are_typed_by_the_schema() {
        let app = crate::test_support::app_schema();
        let obj = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"replicas": 2.0, "selector": {"matchLabels": {"a-b": "c"}}, "unknown": 1},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}});
        let v = to_cel(&app, &obj, true);
        let Value::Map(m) = &v else { panic!("{v:?}") };
        let get = |m: &Map, k: &str| m.map.get(&Key::String(Arc::new(k.into()))).cloned();
        let Some(Value::Map(meta)) = get(m, "metadata") else {
            panic!()
        };
        assert_eq!(meta.map.len(), 1, "only name and generateName");
        let Some(Value::Map(spec)) = get(m, "spec") else {
            panic!()
        };
        assert_eq!(get(&spec, "replicas"), Some(Value::Int(2)));
        assert_eq!(get(&spec, "unknown"), None);
        let Some(Value::Map(sel)) = get(&spec, "selector") else {
            panic!()
        };
        let Some(Value::Map(labels)) = get(&sel, "matchLabels") else {
            panic!()
        };
        // Map keys are data, not property names: not escaped.
        assert!(get(&labels, "a-b").is_some());
        let Some(Value::Map(status)) = get(m, "status") else {
            panic!()
        };
        let Some(Value::List(conds)) = get(&status, "conditions") else {
            panic!()
        };
        let Value::Map(c) = &conds[0] else { panic!() };
        assert!(matches!(
            get(c, "lastTransitionTime"),
            Some(Value::Timestamp(_))
        ));
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(
            parse_duration("1h2m3.5s"),
            Some(chrono::Duration::milliseconds(3_723_500))
        );
        assert_eq!(
            parse_duration("-5ms"),
            Some(chrono::Duration::milliseconds(-5))
        );
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
    }
}
