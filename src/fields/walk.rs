//! Walks objects along their schema to find the fields they set and what changed between two
//! versions, with structured-merge-diff's rules: struct fields and map entries are owned one by
//! one, `set` and `map` lists item by item, atomic lists and atomic maps as a whole.

use super::set::{FieldSet, field};
use crate::schema::{ListType, Node};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What changed between two versions of an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths present only in the new version.
    pub added: FieldSet,
    /// Paths present only in the old version.
    pub removed: FieldSet,
    /// Leaves present in both with different values.
    pub modified: FieldSet,
}

impl Comparison {
    /// Added ∪ modified: what the writer of the new version changed.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// How a value is owned, derived from its schema node (or from the value when untyped).
enum Shape<'a> {
    /// Owned as a whole.
    Leaf,
    /// Fields or entries owned one by one; the node gives the child schemas.
    Map(Option<&'a Node>),
    /// Items owned one by one, keyed as the list type says.
    List(&'a Node, &'a ListType),
}

fn shape<'a>(node: Option<&'a Node>, value: &Value) -> Shape<'a> {
    match value {
        Value::Object(_) => match node {
            Some(n) if n.atomic_map => Shape::Leaf,
            other => Shape::Map(other),
        },
        Value::Array(_) => match node {
            Some(n) if n.list_type != ListType::Atomic => Shape::List(n, &n.list_type),
            _ => Shape::Leaf,
        },
        _ => Shape::Leaf,
    }
}

fn child_node<'a>(node: Option<&'a Node>, key: &str) -> Option<&'a Node> {
    let n = node?;
    n.properties.get(key).or(n.additional.as_deref())
}

fn is_declared(node: Option<&Node>, key: &str) -> bool {
    node.is_some_and(|n| n.properties.contains_key(key))
}

/// The path element of a list item.
pub fn item_element(list_type: &ListType, item: &Value) -> Option<String> {
    match list_type {
        ListType::Atomic => None,
        ListType::Set => Some(format!("v:{}", serde_json::to_string(item).ok()?)),
        ListType::Map(keys) => {
            let key: Map<String, Value> = keys
                .iter()
                .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            Some(format!("k:{}", serde_json::to_string(&key).ok()?))
        }
    }
}

/// The fields an object sets, as an applier owns them: leaves, list items, map entries, and
/// empty or null containers (`typed.ToFieldSet`).
pub fn to_field_set(node: &Node, value: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    walk_set(Some(node), value, &mut path, &mut set);
    set
}

fn walk_set(node: Option<&Node>, value: &Value, path: &mut Vec<String>, set: &mut FieldSet) {
    match (shape(node, value), value) {
        (Shape::Leaf, _) if !path.is_empty() => set.insert(path),
        (Shape::Leaf, _) => {}
        (Shape::Map(n), Value::Object(map)) => {
            for (k, v) in map {
                path.push(field(k));
                walk_set(child_node(n, k), v, path, set);
                let empty = v.is_null() || v.as_object().is_some_and(Map::is_empty);
                if empty || !is_declared(n, k) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        (Shape::List(n, list_type), Value::Array(items)) => {
            for item in items {
                let Some(pe) = item_element(list_type, item) else {
                    continue;
                };
                path.push(pe);
                walk_set(n.items.as_deref(), item, path, set);
                set.insert(path);
                path.pop();
            }
        }
        _ => {}
    }
}

/// What changed from `old` to `new` (`typed.Compare`).
pub fn compare(node: &Node, old: &Value, new: &Value) -> Comparison {
    let mut cmp = Comparison::default();
    let mut path = Vec::new();
    walk_compare(Some(node), Some(old), Some(new), &mut path, &mut cmp);
    cmp
}

fn walk_compare(
    node: Option<&Node>,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Vec<String>,
    cmp: &mut Comparison,
) {
    let sample = match new.or(old) {
        Some(v) => v,
        None => return,
    };
    // A value that changed its shape is compared as a whole.
    let same_kind = match (old, new) {
        (Some(a), Some(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
        _ => true,
    };
    let shape = if same_kind {
        shape(node, sample)
    } else {
        Shape::Leaf
    };
    if !path.is_empty() {
        match (old, new) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            (Some(a), Some(b)) if matches!(shape, Shape::Leaf) && a != b => {
                cmp.modified.insert(path)
            }
            _ => {}
        }
    }
    match shape {
        Shape::Leaf => {}
        Shape::Map(n) => {
            let empty = Map::new();
            let o = old.and_then(Value::as_object).unwrap_or(&empty);
            let w = new.and_then(Value::as_object).unwrap_or(&empty);
            for k in o.keys().chain(w.keys().filter(|k| !o.contains_key(*k))) {
                path.push(field(k));
                walk_compare(child_node(n, k), o.get(k), w.get(k), path, cmp);
                path.pop();
            }
        }
        Shape::List(n, list_type) => {
            let ((old_order, o), (new_order, w)) =
                (list_items(list_type, old), list_items(list_type, new));
            let added = new_order.into_iter().filter(|k| !o.contains_key(k));
            for k in old_order.into_iter().chain(added) {
                let (a, b) = (o.get(&k).copied(), w.get(&k).copied());
                path.push(k);
                walk_compare(n.items.as_deref(), a, b, path, cmp);
                path.pop();
            }
        }
    }
}

/// A list's items by path element (the first item of each element only) and the elements in
/// order: one pass, so comparing long lists takes linear time.
fn list_items<'a>(
    list_type: &ListType,
    list: Option<&'a Value>,
) -> (Vec<String>, HashMap<String, &'a Value>) {
    let mut order: Vec<String> = Vec::new();
    let mut by_element: HashMap<String, &'a Value> = HashMap::new();
    for item in list
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if let Some(pe) = item_element(list_type, item)
            && !by_element.contains_key(&pe)
        {
            by_element.insert(pe.clone(), item);
            order.push(pe);
        }
    }
    (order, by_element)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::test_support::app_schema;

    #[test]
    fn create_compares_like_kube() {
        let new = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "a1", "labels": {"tier": "web"}},
            "spec": {"version": "v1.0.0", "replicas": 1}});
        let cmp = compare(&app_schema(), &json!({}), &new);
        assert!(cmp.removed.is_empty() && cmp.modified.is_empty());
        let fields = cmp.added.to_fields_v1();
        assert_eq!(
            fields,
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {".": {}, "f:name": {}, "f:labels": {".": {}, "f:tier": {}}},
                "f:spec": {".": {}, "f:replicas": {}, "f:version": {}}
            })
        );
    }

    #[test]
    fn apply_set_owns_leaves_and_map_entries() {
        let cfg = json!({"metadata": {"labels": {"tier": "web"}, "finalizers": ["a/b"]},
            "spec": {"replicas": 2, "selector": {}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(
            to_field_set(&app_schema(), &cfg).to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:tier": {}}, "f:finalizers": {"v:\"a/b\"": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {}},
                "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}
            })
        );
    }

    #[test]
    fn modifications_and_removals() {
        let old = json!({"spec": {"replicas": 1, "version": "v1.0.0"}, "metadata": {"finalizers": ["a/x", "a/y"]}});
        let new = json!({"spec": {"replicas": 2}, "metadata": {"finalizers": ["a/y"]}});
        let cmp = compare(&app_schema(), &old, &new);
        assert_eq!(
            cmp.modified.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            cmp.removed.to_fields_v1(),
            json!({"f:spec": {"f:version": {}}, "f:metadata": {"f:finalizers": {"v:\"a/x\"": {}}}})
        );
        assert!(cmp.added.is_empty());
    }
}
