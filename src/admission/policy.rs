//! The namespace reservation policy: which NamespaceReservations exist (a local map the store's
//! watch keeps current, so a review never reads the store), and what each review gets.

use super::review::{Answer, Denial, Request};
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use storage::{EventKind, Store, WatchStart};

/// The label the mutating review puts on a namespace created by an owner of its reservation.
pub const RESERVATION_LABEL: &str = "admission.example.com/reservation";

/// A NamespaceReservation, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its name: the namespace name it reserves.
    pub name: String,
    /// Its uid (Events point at it).
    pub uid: String,
    /// Its resourceVersion.
    pub resource_version: String,
    /// Users who may create the namespace.
    pub users: Vec<String>,
    /// Groups whose members may create the namespace.
    pub groups: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StoredMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    resource_version: String,
}

#[derive(Deserialize, Default)]
struct StoredOwners {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize, Default)]
struct StoredSpec {
    #[serde(default)]
    owners: StoredOwners,
}

#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    metadata: StoredMeta,
    #[serde(default)]
    spec: StoredSpec,
}

impl Reservation {
    /// Reads a stored NamespaceReservation.
    pub fn from_stored(bytes: &[u8]) -> Option<Reservation> {
        let s: Stored = serde_json::from_slice(bytes).ok()?;
        Some(Reservation {
            name: s.metadata.name,
            uid: s.metadata.uid,
            resource_version: s.metadata.resource_version,
            users: s.spec.owners.users,
            groups: s.spec.owners.groups,
        })
    }

    /// Whether the user (or one of its groups) is an owner.
    pub fn owns(&self, user: &str, groups: &[impl AsRef<str>]) -> bool {
        if self.users.iter().any(|u| u == user) {
            return true;
        }
        // The owners' groups in a hash set: linear in both lists, however long either is.
        let owners: std::collections::HashSet<&str> =
            self.groups.iter().map(String::as_str).collect();
        groups.iter().any(|g| owners.contains(g.as_ref()))
    }

    /// `users alice, bob and groups team-a` (only the parts that are set).
    pub fn owners(&self) -> String {
        let users = (!self.users.is_empty()).then(|| format!("users {}", self.users.join(", ")));
        let groups =
            (!self.groups.is_empty()).then(|| format!("groups {}", self.groups.join(", ")));
        match (users, groups) {
            (Some(u), Some(g)) => format!("{u} and {g}"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => "nobody".to_string(),
        }
    }
}

/// The reservations, by name, as of the store revision last applied.
#[derive(Default)]
pub struct Reservations {
    by_name: RwLock<HashMap<String, Arc<Reservation>>>,
    /// Set once the first snapshot is in (a readiness check).
    pub loaded: Arc<AtomicBool>,
}

impl Reservations {
    /// The reservation of a namespace name.
    pub fn get(&self, name: &str) -> Option<Arc<Reservation>> {
        self.by_name.read().get(name).cloned()
    }

    fn replace(&self, all: Vec<Reservation>) {
        let map = all
            .into_iter()
            .map(|r| (r.name.clone(), Arc::new(r)))
            .collect();
        *self.by_name.write() = map;
    }

    fn put(&self, r: Reservation) {
        self.by_name.write().insert(r.name.clone(), Arc::new(r));
    }

    fn remove(&self, name: &str) {
        self.by_name.write().remove(name);
    }

    /// Keeps the map equal to the stored reservations under `prefix`: a snapshot, then every
    /// change; after a failure (the watch fell behind) a new snapshot. Runs until the store
    /// closes.
    pub async fn follow(self: Arc<Self>, store: Arc<dyn Store>, prefix: String) {
        loop {
            let mut watch = match store.watch(&prefix, WatchStart::Snapshot).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch NamespaceReservations; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let initial = watch
                .take_initial()
                .iter()
                .filter_map(|kv| Reservation::from_stored(&kv.value))
                .collect();
            self.replace(initial);
            self.loaded.store(true, Ordering::Release);
            loop {
                match watch.next_event().await {
                    None => return,
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "NamespaceReservation watch restarts");
                        break;
                    }
                    Some(Ok(event)) => match (&event.kind, &event.value) {
                        (EventKind::Deleted, _) | (_, None) => {
                            let name = event.key.rsplit('/').next().unwrap_or("");
                            self.remove(name);
                        }
                        (_, Some(value)) => {
                            if let Some(r) = Reservation::from_stored(value) {
                                self.put(r);
                            }
                        }
                    },
                }
            }
        }
    }
}

/// Whether a review is about creating a namespace (the only thing the policy looks at; every
/// other request is allowed untouched).
fn is_namespace_create(request: &Request<'_>) -> bool {
    request.operation == "CREATE"
        && request.resource.group.is_empty()
        && request.resource.resource == "namespaces"
        && request.sub_resource.is_empty()
}

/// The validating decision, and the reservation a denial is about.
pub fn validate(
    request: &Request<'_>,
    reservations: &Reservations,
) -> (Answer, Option<Arc<Reservation>>) {
    if !is_namespace_create(request) {
        return (Answer::default(), None);
    }
    let name = request.object_name();
    let Some(reservation) = reservations.get(name) else {
        return (Answer::default(), None);
    };
    let user = &request.user_info;
    if reservation.owns(&user.username, &user.groups) {
        return (Answer::default(), None);
    }
    let message = format!(
        "namespace name '{name}' is reserved by NamespaceReservation {:?} for {}",
        reservation.name,
        reservation.owners()
    );
    let answer = Answer {
        denied: Some(Denial {
            code: 403,
            reason: "Forbidden",
            message,
        }),
        ..Answer::default()
    };
    (answer, Some(reservation))
}

/// JSON Pointer escaping of one path segment.
fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The mutating decision: an owner's namespace gets the reservation label; a namespace nobody
/// reserved loses a label claiming otherwise. Never denies (that is the validating review's job).
pub fn mutate(request: &Request<'_>, reservations: &Reservations) -> Answer {
    if !is_namespace_create(request) {
        return Answer::default();
    }
    let name = request.object_name();
    let labels = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.labels.as_ref());
    let current = labels
        .and_then(|l| l.get(RESERVATION_LABEL))
        .map(|v| v.as_ref());
    let label_path = format!("/metadata/labels/{}", pointer_segment(RESERVATION_LABEL));
    match reservations.get(name) {
        Some(r) if r.owns(&request.user_info.username, &request.user_info.groups) => {
            if current == Some(r.name.as_str()) {
                return Answer::default();
            }
            let patch = match (labels, current) {
                (None, _) => {
                    json!([{"op": "add", "path": "/metadata/labels", "value": {RESERVATION_LABEL: r.name}}])
                }
                (Some(_), None) => json!([{"op": "add", "path": label_path, "value": r.name}]),
                (Some(_), Some(_)) => {
                    json!([{"op": "replace", "path": label_path, "value": r.name}])
                }
            };
            Answer {
                patch: Some(patch),
                warnings: vec![format!(
                    "admission.example.com: label {RESERVATION_LABEL}={} was added",
                    r.name
                )],
                audit_annotations: [("reservation".to_string(), r.name.clone())].into(),
                ..Answer::default()
            }
        }
        // Not an owner: the validating review denies it.
        Some(_) => Answer::default(),
        None if current.is_some() => Answer {
            patch: Some(json!([{"op": "remove", "path": label_path}])),
            warnings: vec![format!(
                "admission.example.com: label {RESERVATION_LABEL} was removed: no NamespaceReservation {name:?} exists"
            )],
            ..Answer::default()
        },
        None => Answer::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::review::parse;
    use serde_json::Value;

    fn reservations(list: &[(&str, &[&str], &[&str])]) -> Reservations {
        let r = Reservations::default();
        r.replace(
            list.iter()
                .map(|(name, users, groups)| Reservation {
                    name: name.to_string(),
                    uid: format!("uid-{name}"),
                    resource_version: "5".into(),
                    users: users.iter().map(|s| s.to_string()).collect(),
                    groups: groups.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        );
        r
    }

    fn review(name: &str, user: &str, groups: &[&str], labels: Option<Value>) -> Vec<u8> {
        let mut object =
            json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}});
        if let Some(l) = labels {
            object["metadata"]["labels"] = l;
        }
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1", "operation": "CREATE", "name": name, "namespace": name,
                "kind": {"group": "", "version": "v1", "kind": "Namespace"},
                "resource": {"group": "", "version": "v1", "resource": "namespaces"},
                "userInfo": {"username": user, "groups": groups},
                "object": object, "oldObject": null, "dryRun": false,
            }
        }))
        .unwrap()
    }

    #[test]
    fn owners_pass_others_are_denied_by_name() {
        let r = reservations(&[
            ("team-a", &["alice"], &["team-a-admins"]),
            ("ops", &[], &["sre"]),
        ]);
        for (ns, user, groups, allowed) in [
            ("team-a", "alice", &[][..], true),
            ("team-a", "bob", &["team-a-admins"][..], true),
            ("team-a", "bob", &["system:masters"][..], false),
            ("ops", "carol", &["sre", "system:authenticated"][..], true),
            ("ops", "alice", &[][..], false),
            ("free", "anyone", &[][..], true),
        ] {
            let body = review(ns, user, groups, None);
            let req = parse(&body).unwrap().request;
            let (answer, denied_by) = validate(&req, &r);
            assert_eq!(answer.denied.is_none(), allowed, "{ns} {user} {groups:?}");
            assert_eq!(denied_by.is_some(), !allowed);
        }
        let body = review("team-a", "bob", &[], None);
        let (answer, _) = validate(&parse(&body).unwrap().request, &r);
        let denial = answer.denied.unwrap();
        assert_eq!((denial.code, denial.reason), (403, "Forbidden"));
        assert_eq!(
            denial.message,
            "namespace name 'team-a' is reserved by NamespaceReservation \"team-a\" for users alice and groups team-a-admins"
        );
    }

    #[test]
    fn only_namespace_creation_is_judged() {
        let r = reservations(&[("team-a", &["alice"], &[])]);
        let mut v: Value = serde_json::from_slice(&review("team-a", "bob", &[], None)).unwrap();
        v["request"]["operation"] = json!("UPDATE");
        let body = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            validate(&parse(&body).unwrap().request, &r).0,
            Answer::default()
        );
        v["request"]["operation"] = json!("CREATE");
        v["request"]["resource"] =
            json!({"group": "apps", "version": "v1", "resource": "deployments"});
        let body = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            validate(&parse(&body).unwrap().request, &r).0,
            Answer::default()
        );
        assert_eq!(
            mutate(&parse(&body).unwrap().request, &r),
            Answer::default()
        );
    }

    #[test]
    fn owners_namespaces_are_labelled() {
        let r = reservations(&[("team-a", &["alice"], &[])]);
        let labels = json!({"kubernetes.io/metadata.name": "team-a"});
        let body = review("team-a", "alice", &[], Some(labels.clone()));
        let answer = mutate(&parse(&body).unwrap().request, &r);
        assert_eq!(
            answer.patch.unwrap(),
            json!([{"op": "add", "path": "/metadata/labels/admission.example.com~1reservation", "value": "team-a"}])
        );
        assert_eq!(
            answer.warnings,
            ["admission.example.com: label admission.example.com/reservation=team-a was added"]
        );
        let body = review("team-a", "alice", &[], None);
        let patch = mutate(&parse(&body).unwrap().request, &r).patch.unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/labels", "value": {"admission.example.com/reservation": "team-a"}}])
        );
        // Already right: nothing to do. Not an owner: no patch (validation denies).
        let body = review(
            "team-a",
            "alice",
            &[],
            Some(json!({RESERVATION_LABEL: "team-a"})),
        );
        assert_eq!(
            mutate(&parse(&body).unwrap().request, &r),
            Answer::default()
        );
        let body = review("team-a", "bob", &[], Some(labels));
        assert_eq!(
            mutate(&parse(&body).unwrap().request, &r),
            Answer::default()
        );
        // A claimed reservation that does not exist is taken off.
        let body = review(
            "free",
            "bob",
            &[],
            Some(json!({RESERVATION_LABEL: "team-a"})),
        );
        let answer = mutate(&parse(&body).unwrap().request, &r);
        assert_eq!(
            answer.patch.unwrap(),
            json!([{"op": "remove", "path": "/metadata/labels/admission.example.com~1reservation"}])
        );
    }

    #[test]
    fn stored_reservations_are_read() {
        let stored = json!({
            "apiVersion": "admission.example.com/v1", "kind": "NamespaceReservation",
            "metadata": {"name": "team-a", "uid": "x", "resourceVersion": "12"},
            "spec": {"owners": {"users": ["alice"]}}
        });
        let r = Reservation::from_stored(&serde_json::to_vec(&stored).unwrap()).unwrap();
        assert_eq!(
            (r.name.as_str(), r.uid.as_str(), r.resource_version.as_str()),
            ("team-a", "x", "12")
        );
        assert_eq!(r.users, ["alice"]);
        assert!(r.groups.is_empty());
        assert_eq!(r.owners(), "users alice");
    }
}
