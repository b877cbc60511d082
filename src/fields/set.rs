//! Sets of field paths, as structured-merge-diff keeps them and as `managedFields[].fieldsV1`
//! serializes them (`{"f:spec": {".": {}, "f:replicas": {}}}`).
//!
//! Path elements are kept in their serialized form: `f:<field>`, `k:<json of key fields>` (an
//! item of a map-list), `v:<json value>` (an item of a set-list) and `i:<index>`.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A set of paths, stored as a tree of path elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    children: BTreeMap<String, Node>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    /// The path ending here is in the set.
    member: bool,
    children: FieldSet,
}

impl Node {
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }
}

/// The serialized element for a field name.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.children.values().all(Node::is_empty)
    }

    /// Adds a path.
    pub fn insert(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let node = self.children.entry(first.clone()).or_default();
        if rest.is_empty() {
            node.member = true;
        } else {
            node.children.insert(rest);
        }
    }

    /// Whether a path is in the set.
    pub fn has(&self, path: &[String]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        match self.children.get(first) {
            None => false,
            Some(node) if rest.is_empty() => node.member,
            Some(node) => node.children.has(rest),
        }
    }

    /// The child set under one element (paths below it, without the prefix).
    pub fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element).map(|n| &n.children)
    }

    /// Whether the path of exactly this element is a member.
    pub fn member(&self, element: &str) -> bool {
        self.children.get(element).is_some_and(|n| n.member)
    }

    /// Elements that have a member at or below them.
    pub fn elements(&self) -> impl Iterator<Item = &str> {
        self.children
            .iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(k, _)| k.as_str())
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        for (k, n) in &other.children {
            let mine = out.children.entry(k.clone()).or_default();
            mine.member |= n.member;
            mine.children = mine.children.union(&n.children);
        }
        out.prune();
        out
    }

    /// `self − other` (path by path).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (k, n) in &self.children {
            let node = match other.children.get(k) {
                None => n.clone(),
                Some(o) => Node {
                    member: n.member && !o.member,
                    children: n.children.difference(&o.children),
                },
            };
            if !node.is_empty() {
                out.children.insert(k.clone(), node);
            }
        }
        out
    }

    /// `self ∩ other`.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (k, n) in &self.children {
            if let Some(o) = other.children.get(k) {
                let node = Node {
                    member: n.member && o.member,
                    children: n.children.intersection(&o.children),
                };
                if !node.is_empty() {
                    out.children.insert(k.clone(), node);
                }
            }
        }
        out
    }

    /// Removes every path that has a prefix in `prefixes` (the prefix itself and all below).
    pub fn remove_subtrees(&self, prefixes: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (k, n) in &self.children {
            let node = match prefixes.children.get(k) {
                None => n.clone(),
                Some(p) if p.member => continue,
                Some(p) => Node {
                    member: n.member,
                    children: n.children.remove_subtrees(&p.children),
                },
            };
            if !node.is_empty() {
                out.children.insert(k.clone(), node);
            }
        }
        out
    }

    /// Keeps only the paths under the given prefixes (and the prefixes themselves).
    pub fn keep_subtrees(&self, prefixes: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (k, p) in &prefixes.children {
            let Some(n) = self.children.get(k) else {
                continue;
            };
            let node = if p.member {
                n.clone()
            } else {
                Node {
                    member: false,
                    children: n.children.keep_subtrees(&p.children),
                }
            };
            if !node.is_empty() {
                out.children.insert(k.clone(), node);
            }
        }
        out
    }

    /// Members that have no member below them.
    pub fn leaves(&self) -> FieldSet {
        let mut out = FieldSet::new();
        for (k, n) in &self.children {
            let below = n.children.leaves();
            let node = Node {
                member: n.member && n.children.is_empty(),
                children: below,
            };
            if !node.is_empty() {
                out.children.insert(k.clone(), node);
            }
        }
        out
    }

    /// Every member path, depth first.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (k, n) in &self.children {
            prefix.push(k.clone());
            if n.member {
                out.push(prefix.clone());
            }
            n.children.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    fn prune(&mut self) {
        self.children.retain(|_, n| {
            n.children.prune();
            !n.is_empty()
        });
    }

    /// The `fieldsV1` JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (k, n) in &self.children {
            if n.is_empty() {
                continue;
            }
            let mut inner = match n.children.to_fields_v1() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if n.member && !inner.is_empty() {
                inner.insert(".".into(), Value::Object(Map::new()));
            }
            map.insert(k.clone(), Value::Object(inner));
        }
        Value::Object(map)
    }

    /// Parses `fieldsV1` JSON.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let map = value.as_object().ok_or("fieldsV1 must be a JSON object")?;
        let mut set = FieldSet::new();
        for (k, v) in map {
            if k == "." {
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| k.starts_with(p)) {
                return Err(format!("unexpected path element {k:?} in fieldsV1"));
            }
            let inner = v.as_object().ok_or("fieldsV1 entries must be objects")?;
            let children = FieldSet::from_fields_v1(v)?;
            let member = inner.is_empty() || inner.contains_key(".");
            set.children.insert(k.clone(), Node { member, children });
        }
        Ok(set)
    }
}

/// Renders a path the way structured-merge-diff prints it in conflict messages
/// (`.spec.replicas`, `.status.conditions[type="Ready"]`, `.metadata.finalizers[="a"]`).
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar_string(v)))
                .collect();
            out.push('[');
            out.push_str(&parts.join(","));
            out.push(']');
        } else if let Some(v) = element.strip_prefix("v:") {
            let value: Value = serde_json::from_str(v).unwrap_or(Value::Null);
            out.push_str(&format!("[={}]", scalar_string(&value)));
        } else if let Some(i) = element.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => crate::field_error::go_quote(s),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trip_matches_kube() {
        let mut s = FieldSet::new();
        s.insert(&p(&["f:metadata", "f:labels"]));
        s.insert(&p(&["f:metadata", "f:labels", "f:tier"]));
        s.insert(&p(&["f:spec"]));
        s.insert(&p(&["f:spec", "f:replicas"]));
        s.insert(&p(&["f:spec", "f:version"]));
        let want = json!({
            "f:metadata": {"f:labels": {".": {}, "f:tier": {}}},
            "f:spec": {".": {}, "f:replicas": {}, "f:version": {}}
        });
        assert_eq!(s.to_fields_v1(), want);
        assert_eq!(FieldSet::from_fields_v1(&want).unwrap(), s);
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&p(&["f:spec"]));
        a.insert(&p(&["f:spec", "f:replicas"]));
        let mut b = FieldSet::new();
        b.insert(&p(&["f:spec", "f:replicas"]));
        b.insert(&p(&["f:spec", "f:version"]));
        assert_eq!(
            a.intersection(&b).paths(),
            vec![p(&["f:spec", "f:replicas"])]
        );
        assert_eq!(a.difference(&b).paths(), vec![p(&["f:spec"])]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert_eq!(a.union(&b).leaves().paths().len(), 2);
        let mut spec = FieldSet::new();
        spec.insert(&p(&["f:spec"]));
        assert!(a.remove_subtrees(&spec).is_empty());
        assert_eq!(a.keep_subtrees(&spec), a);
    }

    #[test]
    fn paths_print_like_smd() {
        assert_eq!(path_string(&p(&["f:spec", "f:replicas"])), ".spec.replicas");
        assert_eq!(
            path_string(&p(&["f:status", "f:conditions", "k:{\"type\":\"Ready\"}"])),
            ".status.conditions[type=\"Ready\"]"
        );
        assert_eq!(
            path_string(&p(&["f:metadata", "f:finalizers", "v:\"a/b\""])),
            ".metadata.finalizers[=\"a/b\"]"
        );
    }
}
