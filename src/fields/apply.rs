//! Server-side apply: merging an applied configuration into the live object, taking ownership of
//! the fields it sets, refusing to take them from other managers unless forced, and removing
//! fields the applier stopped applying when nobody else owns them — structured-merge-diff's
//! `Updater.Apply`, with kube-apiserver's layers around it (stripped fields, reset fields of
//! subresources, `before-first-apply`, kubectl's client-side-apply upgrade).

use super::managed::{APPLY, Entry, Managed, UPDATE, stripped};
use super::set::{FieldSet, field, path_string};
use super::walk::{compare, item_element, to_field_set};
use crate::object::meta;
use crate::schema::{ListType, Node};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The version of the `Scale` a `/scale` apply is expressed in.
const SCALE_API_VERSION: &str = "autoscaling/v1";

/// The annotation kubectl's client-side apply keeps its last applied configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One field another manager owns that the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as kube-apiserver prints it (`"alice"`, `"bob" using v1`).
    pub manager: String,
    /// The field path (`.spec.replicas`).
    pub path: String,
}

/// Renders conflicts as kube-apiserver's apply-conflict message.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.path
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.path));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// A manager as kube-apiserver's conflict errors print it (`printManager`): from the manager's
/// identifier, which never holds the entry's time, so an updater reads `"bob" using v1`.
fn display_manager(e: &Entry) -> String {
    let mut s = crate::field_error::go_quote(&e.manager);
    if !e.subresource.is_empty() {
        s = format!(
            "{s} with subresource {}",
            crate::field_error::go_quote(&e.subresource)
        );
    }
    if e.operation == UPDATE {
        s = format!("{s} using {}", e.api_version);
    }
    s
}

/// What the subresource may change: every other field is reset from the live object and
/// owned by nobody through this operation.
pub enum Scope {
    /// The main resource of a kind with a status subresource: everything but `status`.
    MainWithStatus,
    /// The main resource of a kind without one: everything.
    Main,
    /// `/status`: only `status`.
    Status,
    /// `/scale`: only the desired replica count, at this path of the kind (`spec.replicas`).
    /// kube-apiserver applies a `Scale` with the owners of that field as its managers
    /// (`managedfields.ScaleHandler`); applying to the kind with only that field in scope gives
    /// the same owners, conflicts and entries.
    Scale(&'static [&'static str]),
}

impl Scope {
    fn restrict(&self, set: &FieldSet) -> FieldSet {
        let mut status = FieldSet::new();
        status.insert(&[field("status")]);
        match self {
            Scope::MainWithStatus => set.remove_subtrees(&status),
            Scope::Main => set.clone(),
            Scope::Status => set.keep_subtrees(&status),
            Scope::Scale(path) => {
                let mut replicas = FieldSet::new();
                replicas.insert(&path.iter().map(|p| field(p)).collect::<Vec<_>>());
                set.keep_subtrees(&replicas)
            }
        }
    }

    fn subresource(&self) -> &'static str {
        match self {
            Scope::Status => "status",
            Scope::Scale(_) => "scale",
            _ => "",
        }
    }
}

/// Merges `config` into `live` along the schema (`typed.Merge`).
pub fn merge(node: Option<&Node>, live: Option<&Value>, config: Option<&Value>) -> Option<Value> {
    let (l, c) = match (live, config) {
        (_, None) => return live.cloned(),
        (None, Some(c)) => return Some(c.clone()),
        (Some(l), Some(c)) => (l, c),
    };
    match (l, c) {
        (Value::Object(lm), Value::Object(cm)) if !node.is_some_and(|n| n.atomic_map) => {
            let mut out = lm.clone();
            for (k, v) in cm {
                let child = node.and_then(|n| n.properties.get(k).or(n.additional.as_deref()));
                match merge(child, lm.get(k), Some(v)) {
                    Some(m) => out.insert(k.clone(), m),
                    None => out.remove(k),
                };
            }
            Some(Value::Object(out))
        }
        (Value::Array(la), Value::Array(ca)) => match node {
            Some(n) if n.list_type != ListType::Atomic => Some(Value::Array(merge_list(n, la, ca))),
            _ => Some(c.clone()),
        },
        _ => Some(c.clone()),
    }
}

/// Merges granular lists keeping the order structured-merge-diff produces: live-only items stay
/// where they were, applied items come in the applied order.
fn merge_list(node: &Node, live: &[Value], config: &[Value]) -> Vec<Value> {
    let key = |v: &Value| item_element(&node.list_type, v);
    let lpes: Vec<Option<String>> = live.iter().map(key).collect();
    let rpes: Vec<Option<String>> = config.iter().map(key).collect();
    // Membership and first positions in hash tables: a long list merges in linear time.
    let r_set: HashSet<&Option<String>> = rpes.iter().collect();
    let mut l_first: HashMap<&Option<String>, usize> = HashMap::with_capacity(lpes.len());
    for (i, pe) in lpes.iter().enumerate() {
        l_first.entry(pe).or_insert(i);
    }
    let in_r = |pe: &Option<String>| r_set.contains(pe);
    let find_l = |pe: &Option<String>| l_first.get(pe).map(|i| &live[*i]);
    let mut shared: std::collections::VecDeque<Option<String>> = rpes
        .iter()
        .filter(|p| l_first.contains_key(p))
        .cloned()
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_r: HashSet<Option<String>> = HashSet::new();
    let mut out = Vec::new();
    let items = node.items.as_deref();
    let (mut li, mut ri) = (0, 0);
    while li < live.len() || ri < config.len() {
        if li < live.len() && ri < config.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_r.insert(pe.clone());
                if let Some(m) = merge(items, Some(&live[li]), Some(&config[ri])) {
                    out.push(m);
                }
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_r(pe) && next_shared.as_ref().is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            let pe = &lpes[li];
            if !in_r(pe) {
                out.push(live[li].clone());
                li += 1;
                continue;
            } else if merged_r.contains(pe) {
                li += 1;
            }
        }
        if ri < config.len() {
            let pe = &rpes[ri];
            merged_r.insert(pe.clone());
            if let Some(m) = merge(items, find_l(pe), Some(&config[ri])) {
                out.push(m);
            }
            ri += 1;
            if next_shared.as_ref() == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// Whether `path` or anything below it is in the set.
fn owned_at_or_below(set: &FieldSet, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return !set.is_empty();
    };
    if rest.is_empty() {
        return set.member(first) || set.child(first).is_some_and(|c| !c.is_empty());
    }
    set.child(first).is_some_and(|c| owned_at_or_below(c, rest))
}

/// Field paths to remove, as a tree of path elements; `whole` when the value at the path goes
/// (and what is below it with it).
#[derive(Default)]
struct Removal {
    whole: bool,
    below: HashMap<String, Removal>,
}

impl Removal {
    fn add(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.whole = true,
            Some((first, rest)) => self.below.entry(first.clone()).or_default().add(rest),
        }
    }
}

/// Removes every path of `removal` from a value in one walk. List items are matched (by key,
/// value or index) against the list as it was before anything was removed from it, so removing
/// an item's fields does not keep the item from being found, and a long list costs linear time.
fn remove_paths(value: &mut Value, removal: &Removal) {
    match value {
        Value::Object(m) => {
            for (pe, below) in &removal.below {
                let Some(name) = pe.strip_prefix("f:") else {
                    continue;
                };
                if below.whole {
                    m.remove(name);
                } else if let Some(child) = m.get_mut(name) {
                    remove_paths(child, below);
                }
            }
        }
        Value::Array(items) => {
            let mut finder = ItemFinder::default();
            let mut gone = vec![false; items.len()];
            let mut inside: Vec<(usize, &Removal)> = Vec::new();
            for (pe, below) in &removal.below {
                let Some(i) = finder.position(items, pe) else {
                    continue;
                };
                if below.whole {
                    gone[i] = true;
                } else {
                    inside.push((i, below));
                }
            }
            for (i, below) in inside {
                if !gone[i] {
                    remove_paths(&mut items[i], below);
                }
            }
            let mut i = 0;
            items.retain(|_| {
                i += 1;
                !gone[i - 1]
            });
        }
        _ => {}
    }
}

/// Finds list items by path element (`k:{..}`, `v:..`, `i:N`): the first item that matches,
/// through indexes built once per list.
#[derive(Default)]
struct ItemFinder {
    /// Per set of key names: the first item for each text of those keys' values.
    by_keys: HashMap<Vec<String>, HashMap<String, usize>>,
    /// The first item for each value's text.
    by_value: Option<HashMap<String, usize>>,
}

impl ItemFinder {
    fn position(&mut self, items: &[Value], pe: &str) -> Option<usize> {
        if let Some(i) = pe.strip_prefix("i:") {
            return i.parse::<usize>().ok().filter(|i| *i < items.len());
        }
        if let Some(v) = pe.strip_prefix("v:") {
            let target: Value = serde_json::from_str(v).ok()?;
            let index = self.by_value.get_or_insert_with(|| {
                let mut index = HashMap::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    index.entry(item.to_string()).or_insert(i);
                }
                index
            });
            return index.get(&target.to_string()).copied();
        }
        let keys: Map<String, Value> = serde_json::from_str(pe.strip_prefix("k:")?).ok()?;
        let names: Vec<String> = keys.keys().cloned().collect();
        let index = self.by_keys.entry(names).or_insert_with_key(|names| {
            let mut index = HashMap::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let values: Option<Map<String, Value>> = names
                    .iter()
                    .map(|n| item.get(n).map(|v| (n.clone(), v.clone())))
                    .collect();
                if let Some(values) = values {
                    index.entry(Value::Object(values).to_string()).or_insert(i);
                }
            }
            index
        });
        index.get(&Value::Object(keys).to_string()).copied()
    }
}

/// The result of an apply.
pub enum Applied {
    /// The new object, with `metadata.managedFields` set.
    Object(Value),
    /// Other managers own fields the apply would change.
    Conflicts(Vec<Conflict>),
}

/// Applies `config` as `manager` to `live` (an empty object of the kind when creating).
pub fn apply(
    schema: &Node,
    live: &Value,
    config: &Value,
    manager: &str,
    scope: Scope,
    api_version: &str,
    force: bool,
) -> Result<Applied, String> {
    let subresource = scope.subresource();
    let strip = stripped();
    let mut managed = Managed::decode(live)?;
    let mut live_bare = live.clone();
    meta::set(&mut live_bare, "managedFields", None);
    // The managers in scope: on `/scale`, the owners of the replica field.
    let unmanaged = match scope {
        Scope::Scale(_) => managed
            .entries
            .iter()
            .all(|e| scope.restrict(&e.fields).is_empty()),
        _ => managed.entries.is_empty(),
    };
    if unmanaged && !meta::uid(live).is_empty() {
        // An object no one manages yet: its current fields (those the operation may change)
        // belong to `before-first-apply`, an update through the same subresource, so the first
        // apply conflicts with what was there rather than silently taking it. On `/scale` that
        // update is of a `Scale`, in autoscaling/v1 until it is carried back to the kind.
        let owned = scope.restrict(&to_field_set(schema, &live_bare).difference(&strip));
        if !owned.is_empty() {
            managed.entries.push(Entry {
                manager: "before-first-apply".into(),
                operation: UPDATE.into(),
                api_version: match scope {
                    Scope::Scale(_) => SCALE_API_VERSION.into(),
                    _ => api_version.into(),
                },
                time: Some(meta::now()),
                subresource: subresource.into(),
                fields: owned,
            });
        }
    }
    let mut config_bare = config.clone();
    meta::set(&mut config_bare, "managedFields", None);
    let merged = merge(Some(schema), Some(&live_bare), Some(&config_bare)).unwrap_or(Value::Null);
    let applied_set = scope.restrict(&to_field_set(schema, &config_bare).difference(&strip));

    let is_applier =
        |e: &Entry| e.manager == manager && e.operation == APPLY && e.subresource == subresource;
    let last_set = managed
        .entries
        .iter()
        .find(|e| is_applier(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: Vec<usize> = (0..managed.entries.len())
        .filter(|i| !is_applier(&managed.entries[*i]))
        .collect();

    // Fields the applier stopped applying go away unless someone still owns them.
    let mut owned_now = applied_set.clone();
    for i in &others {
        owned_now = owned_now.union(&managed.entries[*i].fields);
    }
    let mut pruned = merged;
    let mut removal = Removal::default();
    for path in last_set.difference(&applied_set).paths() {
        if !owned_at_or_below(&owned_now, &path) {
            removal.add(&path);
        }
    }
    remove_paths(&mut pruned, &removal);

    let mut cmp = compare(schema, &live_bare, &pruned);
    cmp.added = cmp.added.difference(&strip);
    cmp.modified = cmp.modified.difference(&strip);
    cmp.removed = cmp.removed.difference(&strip);
    let changed = scope.restrict(&cmp.changed());
    let mut conflicts = Vec::new();
    for i in &others {
        let e = &managed.entries[*i];
        let mut clash = e.fields.intersection(&changed).paths();
        clash.sort();
        for path in clash {
            conflicts.push((i, path));
        }
    }
    if !conflicts.is_empty() && !force {
        // kubectl's client-side-apply upgrade reads the kind's last-applied annotation, which a
        // `Scale` does not carry.
        let allowed = if manager == "kubectl" && !matches!(scope, Scope::Scale(_)) {
            client_side_apply_fields(schema, live)
        } else {
            None
        };
        let blocking: Vec<&(&usize, Vec<String>)> = conflicts
            .iter()
            .filter(|(_, p)| !allowed.as_ref().is_some_and(|a| a.has(p)))
            .collect();
        if !blocking.is_empty() {
            let mut out: Vec<Conflict> = blocking
                .iter()
                .map(|(i, p)| Conflict {
                    manager: display_manager(&managed.entries[**i]),
                    path: path_string(p),
                })
                .collect();
            out.sort_by(|a, b| a.manager.cmp(&b.manager).then_with(|| a.path.cmp(&b.path)));
            return Ok(Applied::Conflicts(out));
        }
    }
    // Forced (or allowed): the applier takes the fields; removed fields belong to nobody.
    for i in &others {
        let e = &mut managed.entries[*i];
        e.fields = e.fields.difference(&changed).difference(&cmp.removed);
    }
    let object_changed = pruned != live_bare;
    match managed.entries.iter_mut().find(|e| is_applier(e)) {
        Some(e) => {
            e.fields = applied_set;
            e.api_version = api_version.to_string();
            if object_changed {
                e.time = Some(meta::now());
            }
        }
        None => managed.entries.push(Entry {
            manager: manager.to_string(),
            operation: APPLY.into(),
            api_version: api_version.to_string(),
            time: Some(meta::now()),
            subresource: subresource.to_string(),
            fields: applied_set,
        }),
    }
    // Entries of a `Scale` carried back to the kind speak the kind's version (`ToParent`).
    for e in &mut managed.entries {
        if e.api_version == SCALE_API_VERSION {
            e.api_version = api_version.to_string();
        }
    }
    let mut out = pruned;
    if manager == "kubectl" && has_last_applied(live) && !matches!(scope, Scope::Scale(_)) {
        let mut annotation_source = config.clone();
        if let Some(a) = meta::meta(&annotation_source)
            .and_then(|m| m.get("annotations"))
            .cloned()
            && let Value::Object(mut a) = a
        {
            a.remove(LAST_APPLIED);
            meta::set(
                &mut annotation_source,
                "annotations",
                Some(Value::Object(a)),
            );
        }
        let text = serde_json::to_string(&annotation_source).unwrap_or_default();
        let annotations = meta::meta_mut(&mut out)
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(a) = annotations {
            a.insert(LAST_APPLIED.into(), Value::String(text));
        }
    }
    managed.encode_into(&mut out);
    Ok(Applied::Object(out))
}

fn has_last_applied(obj: &Value) -> bool {
    meta::string_map(obj, "annotations")
        .get(LAST_APPLIED)
        .is_some_and(|v| !v.is_empty())
}

/// Fields kubectl's client-side apply last applied that still hold those values: kubectl may
/// take them over with a server-side apply without a conflict.
fn client_side_apply_fields(schema: &Node, live: &Value) -> Option<FieldSet> {
    let text = meta::string_map(live, "annotations")
        .get(LAST_APPLIED)?
        .to_string();
    let last: Value = serde_json::from_str(&text).ok()?;
    if last.get("apiVersion") != live.get("apiVersion") {
        return None;
    }
    let mut live_bare = live.clone();
    meta::set(&mut live_bare, "managedFields", None);
    let cmp = compare(schema, &last, &live_bare);
    Some(
        to_field_set(schema, &last)
            .difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::test_support::app_schema as schema;

    fn apply_ok(live: &Value, config: Value, manager: &str, force: bool) -> Value {
        match apply(
            &schema(),
            live,
            &config,
            manager,
            Scope::MainWithStatus,
            "admission.example.com/v1",
            force,
        )
        .unwrap()
        {
            Applied::Object(o) => o,
            Applied::Conflicts(c) => panic!("conflicts: {c:?}"),
        }
    }

    fn apply_status_ok(live: &Value, config: Value, manager: &str) -> Value {
        match apply(
            &schema(),
            live,
            &config,
            manager,
            Scope::Status,
            "admission.example.com/v1",
            false,
        )
        .unwrap()
        {
            Applied::Object(o) => o,
            Applied::Conflicts(c) => panic!("conflicts: {c:?}"),
        }
    }

    fn base() -> Value {
        json!({"apiVersion": "admission.example.com/v1", "kind": "App"})
    }

    #[test]
    fn apply_create_owns_leaves_like_the_fixture() {
        let obj = apply_ok(
            &base(),
            json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "ap1"}, "spec": {"version": "v1.0.0", "replicas": 2}}),
            "alice",
            false,
        );
        let mf = &obj["metadata"]["managedFields"][0];
        assert_eq!(mf["operation"], "Apply");
        assert_eq!(mf["manager"], "alice");
        assert_eq!(
            mf["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}, "f:version": {}}})
        );
    }

    #[test]
    fn conflicts_name_the_owner_and_force_takes_over() {
        let mut live = apply_ok(
            &base(),
            json!({"metadata": {"name": "ap1"}, "spec": {"version": "v1.0.0", "replicas": 2}}),
            "alice",
            false,
        );
        live["metadata"]["uid"] = json!("u");
        let result = apply(
            &schema(),
            &live,
            &json!({"metadata": {"name": "ap1"}, "spec": {"replicas": 3}}),
            "bob",
            Scope::MainWithStatus,
            "admission.example.com/v1",
            false,
        )
        .unwrap();
        let Applied::Conflicts(c) = result else {
            panic!("expected a conflict")
        };
        assert_eq!(
            conflict_message(&c),
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
        );
        // The same value is shared, not a conflict.
        apply_ok(
            &live,
            json!({"metadata": {"name": "ap1"}, "spec": {"replicas": 2}}),
            "bob",
            false,
        );
        let forced = apply_ok(
            &live,
            json!({"metadata": {"name": "ap1"}, "spec": {"replicas": 3}}),
            "bob",
            true,
        );
        assert_eq!(forced["spec"]["replicas"], 3);
        let m = Managed::decode(&forced).unwrap();
        let alice = m.entries.iter().find(|e| e.manager == "alice").unwrap();
        assert_eq!(
            alice.fields.to_fields_v1(),
            json!({"f:spec": {"f:version": {}}})
        );
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_owned_elsewhere() {
        let mut live = apply_ok(
            &base(),
            json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"version": "v1.0.0", "replicas": 2}}),
            "alice",
            false,
        );
        live["metadata"]["uid"] = json!("u");
        let next = apply_ok(
            &live,
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 2}}),
            "alice",
            false,
        );
        assert_eq!(next["metadata"]["labels"], json!({"x": "1"}));
        assert!(next["spec"].get("version").is_none());
        // Bob also applies version: when alice drops it, it stays.
        let shared = apply_ok(
            &live,
            json!({"metadata": {"name": "a"}, "spec": {"version": "v1.0.0"}}),
            "bob",
            false,
        );
        let after = apply_ok(
            &shared,
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}}),
            "alice",
            false,
        );
        assert_eq!(after["spec"]["version"], "v1.0.0");
    }

    #[test]
    fn map_list_items_no_longer_applied_are_removed_whole() {
        let conditions: Vec<Value> = (0..3)
            .map(|i| json!({"type": format!("T{i}"), "status": "True"}))
            .collect();
        let mut live = base();
        live["metadata"] = json!({"name": "a", "uid": "u"});
        let live = apply_status_ok(
            &live,
            json!({"metadata": {"name": "a"}, "status": {"conditions": conditions}}),
            "alice",
        );
        let next = apply_status_ok(
            &live,
            json!({"metadata": {"name": "a"}, "status": {"conditions": [{"type": "T1", "status": "False"}]}}),
            "alice",
        );
        assert_eq!(
            next["status"]["conditions"],
            json!([{"type": "T1", "status": "False"}]),
            "the dropped items go with their fields, not as empty objects"
        );
    }

    #[test]
    fn map_lists_merge_by_key() {
        let live = json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]}});
        let config = json!({"status": {"conditions": [{"type": "B", "status": "True"}, {"type": "C", "status": "True"}]}});
        let s = schema();
        let merged = merge(Some(&s), Some(&live), Some(&config)).unwrap();
        assert_eq!(
            merged["status"]["conditions"],
            json!([{"type": "A", "status": "True"}, {"type": "B", "status": "True"}, {"type": "C", "status": "True"}])
        );
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let c = vec![
            Conflict {
                manager: "\"a\"".into(),
                path: ".spec.x".into(),
            },
            Conflict {
                manager: "\"a\"".into(),
                path: ".spec.y".into(),
            },
        ];
        assert_eq!(
            conflict_message(&c),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.x\n- .spec.y"
        );
    }

    /// What an object no one manages holds belongs to `before-first-apply`, through the
    /// applying operation's subresource and only for what that operation may change: on
    /// `/scale` the replica count, in autoscaling/v1 while it conflicts, in the kind's version
    /// once it is carried back.
    #[test]
    fn before_first_apply_owns_what_the_operation_may_change() {
        let live = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "u1", "uid": "u"},
            "spec": {"version": "v1.0.0", "replicas": 2}, "status": {"replicas": 2}});
        let replicas: &[&str] = &["spec", "replicas"];
        let scale = |replicas_applied: u32, force: bool| {
            apply(
                &schema(),
                &live,
                &json!({"metadata": {"name": "u1"}, "spec": {"replicas": replicas_applied}}),
                "hpa",
                Scope::Scale(replicas),
                "admission.example.com/v1",
                force,
            )
            .unwrap()
        };
        let Applied::Conflicts(c) = scale(3, false) else {
            panic!("a conflict with before-first-apply")
        };
        assert_eq!(
            conflict_message(&c),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" with subresource \"scale\" using autoscaling/v1: .spec.replicas"
        );
        // The same count: both own it; before-first-apply speaks the kind's version again.
        let Applied::Object(same) = scale(2, false) else {
            panic!("no conflict without a change")
        };
        let entries = same["metadata"]["managedFields"].as_array().unwrap();
        let first = entries
            .iter()
            .find(|e| e["manager"] == "before-first-apply")
            .unwrap();
        assert_eq!(first["subresource"], "scale");
        assert_eq!(first["apiVersion"], "admission.example.com/v1");
        assert_eq!(first["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        // An apply of the main resource: everything but status.
        let Applied::Conflicts(c) = apply(
            &schema(),
            &live,
            &json!({"metadata": {"name": "u1"}, "spec": {"version": "v1.0.1"}}),
            "alice",
            Scope::MainWithStatus,
            "admission.example.com/v1",
            false,
        )
        .unwrap() else {
            panic!("a conflict with before-first-apply")
        };
        assert_eq!(
            conflict_message(&c),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using admission.example.com/v1: .spec.version"
        );
        let forced = apply_ok(
            &live,
            json!({"metadata": {"name": "u1"}, "spec": {"version": "v1.0.1"}}),
            "alice",
            true,
        );
        let first = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "before-first-apply")
            .unwrap()
            .clone();
        assert_eq!(first["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    }
}
