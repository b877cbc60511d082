//! `metadata.managedFields`: who owns which fields, kept the way kube-apiserver's field manager
//! keeps them (`k8s.io/apimachinery/pkg/util/managedfields`).

use super::set::{FieldSet, field};
use super::walk::{Comparison, compare};
use crate::object::meta;
use crate::schema::Node;
use serde_json::{Map, Value, json};

/// `Apply` or `Update`.
pub const APPLY: &str = "Apply";
/// `Apply` or `Update`.
pub const UPDATE: &str = "Update";

/// At most this many `Update` entries are kept; older ones merge into one bucket.
const MAX_UPDATE_MANAGERS: usize = 10;
const BUCKET_MANAGER: &str = "ancient-changes";

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Who (`kubectl-client-side-apply`).
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `apiVersion` the fields are expressed in.
    pub api_version: String,
    /// When the entry last changed (RFC 3339).
    pub time: Option<String>,
    /// `status`, `scale` or empty for the main resource.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    fn same_identity(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == APPLY || self.api_version == api_version)
    }
}

/// All entries of an object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Managed {
    /// The entries, in no particular order until encoded.
    pub entries: Vec<Entry>,
}

/// Fields no manager ever owns: identity and system fields.
pub fn stripped() -> FieldSet {
    let mut s = FieldSet::new();
    for top in ["apiVersion", "kind", "metadata"] {
        s.insert(&[field(top)]);
    }
    for m in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[field("metadata"), field(m)]);
    }
    s
}

impl Managed {
    /// Decodes `metadata.managedFields`; errors describe the malformed entry.
    pub fn decode(obj: &Value) -> Result<Managed, String> {
        let Some(list) = meta::meta(obj).and_then(|m| m.get("managedFields")) else {
            return Ok(Managed::default());
        };
        if list.is_null() {
            return Ok(Managed::default());
        }
        let list = list.as_array().ok_or("managedFields must be a list")?;
        let mut entries = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let operation = s("operation");
            if operation != APPLY && operation != UPDATE {
                return Err(format!(
                    "managedFields[{i}].operation must be one of \"Apply\", \"Update\""
                ));
            }
            let fields_type = s("fieldsType");
            if fields_type != "FieldsV1" {
                return Err(format!(
                    "managedFields[{i}].fieldsType must be \"FieldsV1\""
                ));
            }
            let fields = match e.get("fieldsV1") {
                Some(v) => FieldSet::from_fields_v1(v)?,
                None => FieldSet::new(),
            };
            entries.push(Entry {
                manager: s("manager"),
                operation,
                api_version: s("apiVersion"),
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                subresource: s("subresource"),
                fields,
            });
        }
        Ok(Managed { entries })
    }

    /// Writes the entries into `metadata.managedFields`, sorted as kube-apiserver sorts them
    /// (operation, time, manager, apiVersion, subresource); removes the field when empty.
    pub fn encode_into(mut self, obj: &mut Value) {
        self.entries.retain(|e| !e.fields.is_empty());
        self.entries.sort_by(|a, b| {
            a.operation
                .cmp(&b.operation)
                .then_with(|| a.time.cmp(&b.time))
                .then_with(|| a.manager.cmp(&b.manager))
                .then_with(|| a.api_version.cmp(&b.api_version))
                .then_with(|| a.subresource.cmp(&b.subresource))
        });
        if self.entries.is_empty() {
            meta::set(obj, "managedFields", None);
            return;
        }
        let list: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("apiVersion".into(), json!(e.api_version));
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.fields.to_fields_v1());
                m.insert("manager".into(), json!(e.manager));
                m.insert("operation".into(), json!(e.operation));
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.subresource));
                }
                if let Some(t) = &e.time {
                    m.insert("time".into(), json!(t));
                }
                Value::Object(m)
            })
            .collect();
        meta::set(obj, "managedFields", Some(Value::Array(list)));
    }

    /// Takes away from every entry the fields this comparison changed or removed (an `Update`
    /// takes ownership silently).
    fn release(&mut self, cmp: &Comparison) {
        let changed = cmp.changed();
        for e in &mut self.entries {
            e.fields = e.fields.difference(&changed).difference(&cmp.removed);
        }
    }

    fn cap_update_managers(&mut self) {
        let mut updaters: Vec<usize> = (0..self.entries.len())
            .filter(|i| self.entries[*i].operation == UPDATE)
            .collect();
        if updaters.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        updaters.sort_by(|a, b| {
            let (a, b) = (&self.entries[*a], &self.entries[*b]);
            a.time.cmp(&b.time).then_with(|| a.manager.cmp(&b.manager))
        });
        let excess = updaters.len() - MAX_UPDATE_MANAGERS + 1;
        let oldest: Vec<usize> = updaters.into_iter().take(excess).collect();
        let mut bucket: Option<Entry> = None;
        for i in &oldest {
            let e = &self.entries[*i];
            bucket = Some(match bucket {
                None => Entry {
                    manager: BUCKET_MANAGER.into(),
                    operation: UPDATE.into(),
                    subresource: String::new(),
                    ..e.clone()
                },
                Some(mut b) => {
                    b.fields = b.fields.union(&e.fields);
                    b.time = b.time.max(e.time.clone());
                    b
                }
            });
        }
        let mut i = 0;
        self.entries.retain(|_| {
            i += 1;
            !oldest.contains(&(i - 1))
        });
        if let Some(b) = bucket {
            if let Some(existing) = self
                .entries
                .iter_mut()
                .find(|e| e.manager == BUCKET_MANAGER && e.operation == UPDATE)
            {
                existing.fields = existing.fields.union(&b.fields);
                existing.time = existing.time.clone().max(b.time);
            } else {
                self.entries.push(b);
            }
        }
    }
}

/// Records an `Update` by `manager` that turned `live` into `new` (both after the strategy has
/// reset what the operation may not change). `new.metadata.managedFields` is rewritten.
pub fn update(
    schema: &Node,
    live: &Value,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
) {
    // Managed fields sent with an update of the main resource replace the live ones (so a client
    // can reset them); otherwise, or when they are unusable, the live ones carry over.
    let sent = Managed::decode(new).ok().filter(|m| !m.entries.is_empty());
    let mut managed = match sent {
        Some(m) if subresource.is_empty() => m,
        _ => Managed::decode(live).unwrap_or_default(),
    };
    let mut live_bare = live.clone();
    meta::set(&mut live_bare, "managedFields", None);
    let mut new_bare = new.clone();
    meta::set(&mut new_bare, "managedFields", None);
    let strip = stripped();
    let mut cmp = compare(schema, &live_bare, &new_bare);
    cmp.added = cmp.added.difference(&strip);
    cmp.modified = cmp.modified.difference(&strip);
    cmp.removed = cmp.removed.difference(&strip);
    managed.release(&cmp);
    let changed = cmp.changed();
    if !changed.is_empty() {
        let now = meta::now();
        match managed
            .entries
            .iter_mut()
            .find(|e| e.same_identity(manager, UPDATE, api_version, subresource))
        {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = Some(now);
            }
            None => managed.entries.push(Entry {
                manager: manager.to_string(),
                operation: UPDATE.into(),
                api_version: api_version.to_string(),
                time: Some(now),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    managed.cap_update_managers();
    managed.encode_into(new);
}

/// The manager name kube-apiserver derives when a request names none: the user agent up to its
/// first `/`, at most 128 characters.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or("");
    prefix.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::test_support::app_schema;

    #[test]
    fn create_then_status_like_the_fixture() {
        let schema = app_schema();
        let mut created = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "a1", "namespace": "d", "uid": "u", "labels": {"tier": "web"}},
            "spec": {"version": "v1.0.0", "replicas": 1}});
        update(
            &schema,
            &json!({}),
            &mut created,
            "Python-urllib",
            "",
            "admission.example.com/v1",
        );
        let mf = &created["metadata"]["managedFields"];
        assert_eq!(mf.as_array().unwrap().len(), 1);
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:tier": {}}},
                   "f:spec": {".": {}, "f:replicas": {}, "f:version": {}}})
        );
        assert_eq!(mf[0]["operation"], "Update");
        assert!(mf[0].get("subresource").is_none());

        let mut with_status = created.clone();
        with_status["status"] = json!({"replicas": 2, "selector": "tier=web"});
        update(
            &schema,
            &created,
            &mut with_status,
            "Python-urllib",
            "status",
            "admission.example.com/v1",
        );
        let mf = with_status["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[1]["subresource"], "status");
        assert_eq!(
            mf[1]["fieldsV1"],
            json!({"f:status": {".": {}, "f:replicas": {}, "f:selector": {}}})
        );
    }

    #[test]
    fn an_update_takes_fields_from_other_managers() {
        let schema = app_schema();
        let mut v1 =
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 1, "version": "v1.0.0"}});
        update(&schema, &json!({}), &mut v1, "alice", "", "v");
        let mut v2 = v1.clone();
        v2["spec"]["replicas"] = json!(3);
        update(&schema, &v1, &mut v2, "bob", "", "v");
        let m = Managed::decode(&v2).unwrap();
        let alice = m.entries.iter().find(|e| e.manager == "alice").unwrap();
        let bob = m.entries.iter().find(|e| e.manager == "bob").unwrap();
        assert_eq!(
            bob.fields.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            alice.fields.to_fields_v1(),
            json!({"f:spec": {".": {}, "f:version": {}}})
        );
        // A no-op update changes nothing, not even timestamps.
        let mut v3 = v2.clone();
        update(&schema, &v2, &mut v3, "carol", "", "v");
        assert_eq!(v3, v2);
    }

    #[test]
    fn manager_names_from_user_agents() {
        assert_eq!(
            manager_from_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07"),
            "kubectl"
        );
        assert_eq!(
            manager_from_user_agent("Python-urllib/3.11"),
            "Python-urllib"
        );
        assert_eq!(manager_from_user_agent(""), "");
    }
}
