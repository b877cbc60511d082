//! Writes: create, update (and every kind of write that is an update underneath: patch, status,
//! scale, finalizer removal), and delete, with kube-apiserver's semantics.

use super::strategy::{self, prune};
use super::{Ownership, Registry, WriteOptions, decode_stored, key, to_bytes, to_stored};
use crate::api::error::{ApiError, ApiResult};
use crate::fields::managed;
use crate::kinds::Resource;
use crate::object::meta;
use bytes::Bytes;
use serde_json::Value;
use storage::ReadAt;

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself.
    Main,
    /// `/status`: only `status` changes.
    Status,
    /// `/scale`: only the replica count changes.
    Scale,
}

impl Subresource {
    /// The name recorded in `managedFields[].subresource`.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Main => "",
            Subresource::Status => "status",
            Subresource::Scale => "scale",
        }
    }
}

/// The result of a write.
#[derive(Debug)]
pub struct Written {
    /// The object as stored (or as it would be, on a dry run).
    pub body: Bytes,
    /// Whether the write created the object (201 rather than 200).
    pub created: bool,
    /// `Warning` headers to send.
    pub warnings: Vec<String>,
}

/// The result of a delete.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; its uid.
    Gone {
        /// uid of the deleted object.
        uid: String,
    },
    /// Finalizers hold the object: it is marked for deletion and returned as it is now.
    Pending(Bytes),
}

/// Delete options (`DeleteOptions` body or query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `propagationPolicy`: `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// Deprecated `orphanDependents`.
    pub orphan_dependents: Option<bool>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// How an update computes the new object from the stored one. It may run more than once when
/// it loses a race with another writer.
pub type Transform<'a> = dyn FnMut(&Value, &mut Vec<String>) -> ApiResult<Value> + Send + 'a;

const FINALIZER_ORPHAN: &str = "orphan";
const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// Checks that a body names the object of the URL (and its namespace), filling them in when absent.
pub fn check_identity(
    resource: &Resource,
    obj: &mut Value,
    namespace: &str,
    name: Option<&str>,
) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the body must be a JSON object",
            resource.kind.kind, resource.kind.version, resource.kind.kind
        )));
    }
    let body_ns = meta::namespace(obj).to_string();
    if resource.kind.namespaced {
        if !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta::set(obj, "namespace", Some(Value::String(namespace.to_string())));
    } else if !body_ns.is_empty() {
        meta::set(obj, "namespace", None);
    }
    if let Some(url_name) = name {
        let body_name = meta::name(obj).to_string();
        if body_name.is_empty() {
            meta::set(obj, "name", Some(Value::String(url_name.to_string())));
        } else if body_name != url_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
            )));
        }
    }
    Ok(())
}

impl Registry {
    /// Creates an object (POST to the collection).
    pub async fn create(
        &self,
        resource: &Resource,
        namespace: &str,
        mut obj: Value,
        options: &WriteOptions,
    ) -> ApiResult<Written> {
        check_identity(resource, &mut obj, namespace, None)?;
        // A client may not choose the resourceVersion of a new object: the storage layer refuses
        // it after every other check (`storage.ErrResourceVersionSetOnCreate`), as a plain 500.
        let version_set = meta::resource_version(&obj)
            .parse::<u64>()
            .is_ok_and(|v| v != 0);
        let mut warnings = Vec::new();
        prune(resource, &mut obj, options.field_validation, &mut warnings)?;
        strategy::default(resource, &mut obj);
        let generated = meta::name(&obj).is_empty();
        strategy::prepare_create(resource, &mut obj);
        strategy::validate_create(resource, &obj)?;
        let empty = serde_json::json!({
            "apiVersion": resource.kind.api_version(),
            "kind": resource.kind.kind,
        });
        if options.ownership == Ownership::Update {
            meta::set(&mut obj, "managedFields", None);
            managed::update(
                &resource.schema.root,
                &empty,
                &mut obj,
                &options.field_manager,
                "",
                &options.manager_api_version(resource),
            );
        }
        if options.dry_run {
            return Ok(Written {
                body: to_bytes(&obj),
                created: true,
                warnings,
            });
        }
        if version_set {
            return Err(ApiError::unknown(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        // A generated name that collides is generated again, a few times.
        let mut attempts = 0;
        loop {
            let name = meta::name(&obj).to_string();
            let k = key(resource, namespace, &name);
            match self.store().create(&k, to_stored(obj.clone())).await {
                Ok(kv) => {
                    return Ok(Written {
                        body: kv.value,
                        created: true,
                        warnings,
                    });
                }
                Err(e) if e.is_already_exists() && generated && attempts < 8 => {
                    attempts += 1;
                    let base = meta::str_field(&obj, "generateName").to_string();
                    meta::set(
                        &mut obj,
                        "name",
                        Some(Value::String(strategy::generate_name(&base))),
                    );
                }
                Err(e) => return Err(ApiError::from_storage(resource.kind, &name, e)),
            }
        }
    }

    /// Replaces an object or one of its subresources with what `transform` makes of the stored
    /// one, retrying when another write got in between (`GuaranteedUpdate`). `uid` is the
    /// precondition of a PUT whose body names a uid: checked against the stored object before
    /// anything else, as the storage layer checks it.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_with(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        subresource: Subresource,
        options: &WriteOptions,
        uid: Option<&str>,
        transform: &mut Transform<'_>,
    ) -> ApiResult<Written> {
        let k = key(resource, namespace, name);
        // As GuaranteedUpdate with a cached object: start from this replica's view, and give any
        // answer but a successful write (an error, a no-op, a dry run) only from a fresh read,
        // since a stale view could explain it (origStateIsCurrent).
        let mut at = ReadAt::Any;
        loop {
            let kv = self
                .read_for_write(resource, namespace, name, &mut at)
                .await?;
            let fresh = at != ReadAt::Any;
            let planned = plan_update(
                resource,
                namespace,
                name,
                subresource,
                options,
                uid,
                transform,
                &kv,
            );
            let (new, warnings) = match planned {
                Err(_) | Ok(Planned::Unchanged(_)) if !fresh => {
                    at = ReadAt::Latest;
                    continue;
                }
                Ok(Planned::Write { .. }) if options.dry_run && !fresh => {
                    at = ReadAt::Latest;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(Planned::Unchanged(warnings)) => {
                    return Ok(Written {
                        body: kv.value,
                        created: false,
                        warnings,
                    });
                }
                Ok(Planned::Write { new, warnings }) => (new, warnings),
            };
            if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
                if options.dry_run {
                    return Ok(Written {
                        body: to_bytes(&new),
                        created: false,
                        warnings,
                    });
                }
                match self.store().delete(&k, kv.revision).await {
                    Ok(_) => {
                        return Ok(Written {
                            body: to_bytes(&new),
                            created: false,
                            warnings,
                        });
                    }
                    Err(storage::Error::Conflict { actual, .. }) => {
                        at = ReadAt::NotOlderThan(actual);
                        continue;
                    }
                    Err(e) => return Err(ApiError::from_storage(resource.kind, name, e)),
                }
            }
            if options.dry_run {
                return Ok(Written {
                    body: to_bytes(&new),
                    created: false,
                    warnings,
                });
            }
            match self.store().update(&k, kv.revision, to_stored(new)).await {
                Ok(stored) => {
                    return Ok(Written {
                        body: stored.value,
                        created: false,
                        warnings,
                    });
                }
                Err(storage::Error::Conflict { actual, .. }) => {
                    at = ReadAt::NotOlderThan(actual);
                    continue;
                }
                Err(e) => return Err(ApiError::from_storage(resource.kind, name, e)),
            }
        }
    }

    /// The object a write starts from: as this replica sees it (`at` is [`ReadAt::Any`]) or,
    /// when it sees none, as the store has it now (`at` becomes [`ReadAt::Latest`]): a stale
    /// view never answers 404.
    async fn read_for_write(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        at: &mut ReadAt,
    ) -> ApiResult<storage::KeyValue> {
        match self.get(resource, namespace, name, *at).await {
            Err(e) if e.code() == 404 && *at == ReadAt::Any => {
                *at = ReadAt::Latest;
                self.get(resource, namespace, name, *at).await
            }
            other => other,
        }
    }

    /// Deletes an object, or marks it for deletion while finalizers hold it.
    pub async fn delete(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let k = key(resource, namespace, name);
        // Start from this replica's view; read afresh before a 404 or a failed precondition.
        let mut at = ReadAt::Any;
        loop {
            let kv = self
                .read_for_write(resource, namespace, name, &mut at)
                .await?;
            let fresh = at != ReadAt::Any;
            let existing = decode_stored(&kv)?;
            let uid = meta::uid(&existing).to_string();
            // `rest.BeforeDelete` checks the preconditions early, worded about the Kind.
            let precondition_failed = options.uid.as_ref().is_some_and(|want| *want != uid)
                || options
                    .resource_version
                    .as_ref()
                    .is_some_and(|want| want != meta::resource_version(&existing));
            if precondition_failed && !fresh {
                at = ReadAt::Latest;
                continue;
            }
            if let Some(want) = &options.uid
                && *want != uid
            {
                return Err(ApiError::delete_precondition(
                    resource.kind,
                    name,
                    &format!(
                        "the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
                    ),
                ));
            }
            if let Some(want) = &options.resource_version
                && want != meta::resource_version(&existing)
            {
                return Err(ApiError::delete_precondition(
                    resource.kind,
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({}). The object might have been modified",
                        meta::resource_version(&existing)
                    ),
                ));
            }
            let current = meta::finalizers(&existing);
            let finalizers = finalizers_for_policy(&current, options);
            // Answers that write nothing come from a fresh read only, as in update_with.
            let answers_only =
                options.dry_run || (meta::is_deleting(&existing) && finalizers == current);
            if answers_only && !fresh {
                at = ReadAt::Latest;
                continue;
            }
            if finalizers.is_empty() {
                if options.dry_run {
                    return Ok(Deleted::Gone { uid });
                }
                match self.store().delete(&k, kv.revision).await {
                    Ok(_) => return Ok(Deleted::Gone { uid }),
                    Err(storage::Error::Conflict { actual, .. }) => {
                        at = ReadAt::NotOlderThan(actual);
                        continue;
                    }
                    Err(e) => return Err(ApiError::from_storage(resource.kind, name, e)),
                }
            }
            let already = meta::is_deleting(&existing);
            if already && finalizers == current {
                return Ok(Deleted::Pending(kv.value));
            }
            let mut marked = existing.clone();
            meta::set(
                &mut marked,
                "finalizers",
                Some(Value::Array(
                    finalizers.into_iter().map(Value::String).collect(),
                )),
            );
            if !already {
                meta::set(
                    &mut marked,
                    "deletionTimestamp",
                    Some(Value::String(meta::now())),
                );
                meta::set(
                    &mut marked,
                    "deletionGracePeriodSeconds",
                    Some(Value::from(0)),
                );
                let generation = meta::generation(&existing);
                meta::set(&mut marked, "generation", Some(Value::from(generation + 1)));
            }
            if options.dry_run {
                return Ok(Deleted::Pending(to_bytes(&marked)));
            }
            match self
                .store()
                .update(&k, kv.revision, to_stored(marked))
                .await
            {
                Ok(stored) => return Ok(Deleted::Pending(stored.value)),
                Err(storage::Error::Conflict { actual, .. }) => {
                    at = ReadAt::NotOlderThan(actual);
                    continue;
                }
                Err(e) => return Err(ApiError::from_storage(resource.kind, name, e)),
            }
        }
    }
}

/// What an update makes of the object it read.
enum Planned {
    /// Nothing changes; the warnings to answer with.
    Unchanged(Vec<String>),
    /// The object to write, and the warnings.
    Write { new: Value, warnings: Vec<String> },
}

/// Applies `transform` to the stored object `kv` and runs the update strategy on the result:
/// the uid precondition, identity, the resourceVersion precondition (409 `Conflict`), pruning,
/// defaults, the main or status update strategy, validation and field ownership.
#[allow(clippy::too_many_arguments)]
fn plan_update(
    resource: &Resource,
    namespace: &str,
    name: &str,
    subresource: Subresource,
    options: &WriteOptions,
    uid: Option<&str>,
    transform: &mut Transform<'_>,
    kv: &storage::KeyValue,
) -> ApiResult<Planned> {
    let mut existing = decode_stored(kv)?;
    strategy::default(resource, &mut existing);
    if let Some(want) = uid.filter(|u| !u.is_empty())
        && want != meta::uid(&existing)
    {
        return Err(ApiError::update_precondition(
            resource.kind,
            name,
            &key(resource, namespace, name),
            &format!(
                "Precondition failed: UID in precondition: {want}, UID in object meta: {}",
                meta::uid(&existing)
            ),
        ));
    }
    let mut warnings = Vec::new();
    let mut new = transform(&existing, &mut warnings)?;
    check_identity(resource, &mut new, namespace, Some(name))?;
    let body_rv = meta::resource_version(&new).to_string();
    if body_rv.is_empty() {
        return Err(ApiError::invalid(
            resource.kind.group,
            resource.kind.plural,
            name,
            &[crate::field_error::FieldError::invalid(
                "metadata.resourceVersion",
                &Value::from(0),
                "must be specified for an update",
            )],
        ));
    }
    if body_rv != meta::resource_version(&existing) {
        return Err(ApiError::stale(resource.kind, name));
    }
    prune(resource, &mut new, options.field_validation, &mut warnings)?;
    strategy::default(resource, &mut new);
    match subresource {
        // A scale write arrives as the whole object with a new replica count.
        Subresource::Main | Subresource::Scale => {
            strategy::prepare_update(resource, &mut new, &existing)
        }
        Subresource::Status => strategy::prepare_status_update(&mut new, &existing),
    }
    strategy::validate_update(resource, &new, &existing, &mut warnings)?;
    if options.ownership == Ownership::Update {
        managed::update(
            &resource.schema.root,
            &existing,
            &mut new,
            &options.field_manager,
            subresource.name(),
            &options.manager_api_version(resource),
        );
    }
    Ok(if new == existing {
        Planned::Unchanged(warnings)
    } else {
        Planned::Write { new, warnings }
    })
}

/// The finalizers an object gets when deleted with a propagation policy
/// (`deletionFinalizersForGarbageCollection`).
fn finalizers_for_policy(current: &[String], options: &DeleteOptions) -> Vec<String> {
    let orphan = match (&options.propagation_policy, options.orphan_dependents) {
        (_, Some(o)) => Some(o),
        (Some(p), None) => Some(p == "Orphan"),
        (None, None) => None,
    };
    let Some(orphan) = orphan else {
        return current.to_vec();
    };
    let foreground = options.propagation_policy.as_deref() == Some("Foreground");
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        out.push(FINALIZER_ORPHAN.into());
    }
    if foreground {
        out.push(FINALIZER_FOREGROUND.into());
    }
    let (mut a, mut b) = (out.clone(), current.to_vec());
    a.sort();
    b.sort();
    if a == b { current.to_vec() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use storage::Store;

    /// A store whose `ReadAt::Any` reads answer what was stored when `lag` was called, as a
    /// replica's watch cache that has not caught up yet.
    struct Lagging {
        inner: storage::MemoryStore,
        stale: parking_lot::Mutex<std::collections::HashMap<String, storage::KeyValue>>,
    }

    impl Lagging {
        async fn lag(&self, key: &str) {
            if let Ok(Some(kv)) = self.inner.get(key, ReadAt::Latest).await {
                self.stale.lock().insert(key.to_string(), kv);
            }
        }
    }

    #[async_trait::async_trait]
    impl storage::Store for Lagging {
        async fn create(&self, key: &str, value: Bytes) -> storage::Result<storage::KeyValue> {
            self.inner.create(key, value).await
        }
        async fn get(&self, key: &str, at: ReadAt) -> storage::Result<Option<storage::KeyValue>> {
            if at == ReadAt::Any
                && let Some(kv) = self.stale.lock().get(key)
            {
                return Ok(Some(kv.clone()));
            }
            self.inner.get(key, at).await
        }
        async fn update(
            &self,
            key: &str,
            expected: storage::Revision,
            value: Bytes,
        ) -> storage::Result<storage::KeyValue> {
            self.inner.update(key, expected, value).await
        }
        async fn delete(
            &self,
            key: &str,
            expected: storage::Revision,
        ) -> storage::Result<(storage::KeyValue, storage::Revision)> {
            self.inner.delete(key, expected).await
        }
        async fn list(
            &self,
            options: storage::ListOptions,
            filter: Option<storage::Filter<'_>>,
        ) -> storage::Result<storage::ListResult> {
            self.inner.list(options, filter).await
        }
        async fn watch(
            &self,
            prefix: &str,
            start: storage::WatchStart,
        ) -> storage::Result<storage::Watch> {
            self.inner.watch(prefix, start).await
        }
        fn current_revision(&self) -> storage::Revision {
            self.inner.current_revision()
        }
        fn oldest_revision(&self) -> storage::Revision {
            self.inner.oldest_revision()
        }
    }

    /// Every answer but a write comes from a fresh read: a change that is a no-op against a
    /// replica's stale view, a dry run, a failed precondition and a delete of an object already
    /// being deleted all look at the stored object, as GuaranteedUpdate re-reads when its
    /// cached state was not current.
    #[tokio::test]
    async fn stale_views_are_reread_before_answering() {
        let resources = crate::kinds::load().unwrap();
        let app = resources
            .iter()
            .find(|r| r.kind.plural == "apps")
            .unwrap()
            .clone();
        let codec = Arc::new(super::super::codec::StorageCodec::new(resources.clone()));
        let store = Arc::new(Lagging {
            inner: storage::MemoryStore::new(storage::index::IndexOptions::default(), codec),
            stale: Default::default(),
        });
        let registry = Registry::new(store.clone());
        let k = "apps/default/web";
        let body = |replicas: u64, finalizers: &str| {
            Bytes::from(format!(
                r#"{{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{{"name":"web","namespace":"default","uid":"u1","finalizers":[{finalizers}]}},"spec":{{"version":"v1.0.0","replicas":{replicas}}}}}"#
            ))
        };
        let first = store.inner.create(k, body(1, "")).await.unwrap();
        store.lag(k).await;
        // Another replica sets replicas=2.
        store
            .inner
            .update(k, first.revision, body(2, ""))
            .await
            .unwrap();
        let replicas = |v: &Value| v["spec"]["replicas"].as_u64();
        let set_one = |options: WriteOptions, uid: Option<&'static str>| {
            let registry = &registry;
            let app = &app;
            async move {
                let mut to_one = |existing: &Value, _: &mut Vec<String>| -> ApiResult<Value> {
                    let mut v = existing.clone();
                    v["spec"]["replicas"] = Value::from(1);
                    Ok(v)
                };
                registry
                    .update_with(
                        app,
                        "default",
                        "web",
                        Subresource::Main,
                        &options,
                        uid,
                        &mut to_one,
                    )
                    .await
            }
        };
        // Against the stale view (replicas=1) setting 1 is a no-op (field ownership is left
        // alone, as an apply leaves it); against the stored object it is a change, which must be
        // written.
        let apply = WriteOptions {
            ownership: Ownership::Applied,
            ..Default::default()
        };
        let written = set_one(apply, None).await.unwrap();
        let stored = store.inner.get(k, ReadAt::Latest).await.unwrap().unwrap();
        assert_eq!(replicas(&decode_stored(&stored).unwrap()), Some(1));
        assert_eq!(written.body, stored.value);

        // A dry run answers from the stored object too.
        store.lag(k).await;
        store
            .inner
            .update(k, stored.revision, body(3, ""))
            .await
            .unwrap();
        let dry = set_one(
            WriteOptions {
                dry_run: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
        let dry: Value = serde_json::from_slice(&dry.body).unwrap();
        assert_eq!(
            meta::resource_version(&dry),
            meta::resource_version(
                &decode_stored(&store.inner.get(k, ReadAt::Latest).await.unwrap().unwrap())
                    .unwrap()
            )
        );

        // A uid precondition the stale view fails but the stored object meets.
        let stored = store.inner.get(k, ReadAt::Latest).await.unwrap().unwrap();
        store.lag(k).await;
        let recreated = body(4, "").as_ref().to_vec();
        let recreated = String::from_utf8(recreated)
            .unwrap()
            .replace("\"u1\"", "\"u2\"");
        store
            .inner
            .update(k, stored.revision, Bytes::from(recreated))
            .await
            .unwrap();
        set_one(WriteOptions::default(), Some("u2")).await.unwrap();

        // A delete of an object the stale view shows as being deleted already.
        let stored = store.inner.get(k, ReadAt::Latest).await.unwrap().unwrap();
        let mut deleting = decode_stored(&stored).unwrap();
        meta::set(
            &mut deleting,
            "deletionTimestamp",
            Some(Value::from("2026-01-01T00:00:00Z")),
        );
        meta::set(
            &mut deleting,
            "finalizers",
            Some(serde_json::json!(["example.com/hold"])),
        );
        let deleting = store
            .inner
            .update(k, stored.revision, to_stored(deleting))
            .await
            .unwrap();
        store.lag(k).await;
        let mut released = decode_stored(&deleting).unwrap();
        meta::set(&mut released, "finalizers", None);
        meta::set(&mut released, "deletionTimestamp", None);
        store
            .inner
            .update(k, deleting.revision, to_stored(released))
            .await
            .unwrap();
        let deleted = registry
            .delete(&app, "default", "web", &DeleteOptions::default())
            .await
            .unwrap();
        assert!(matches!(deleted, Deleted::Gone { .. }));
        assert!(store.inner.get(k, ReadAt::Latest).await.unwrap().is_none());
    }

    #[test]
    fn propagation_policies_set_gc_finalizers() {
        let cur = vec!["x/y".to_string()];
        let opts = |p: Option<&str>| DeleteOptions {
            propagation_policy: p.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(finalizers_for_policy(&cur, &opts(None)), cur);
        assert_eq!(finalizers_for_policy(&cur, &opts(Some("Background"))), cur);
        assert_eq!(
            finalizers_for_policy(&cur, &opts(Some("Orphan"))),
            ["x/y", "orphan"]
        );
        assert_eq!(
            finalizers_for_policy(&[], &opts(Some("Foreground"))),
            ["foregroundDeletion"]
        );
        assert!(finalizers_for_policy(&["orphan".into()], &opts(Some("Background"))).is_empty());
    }

    /// App with a test-only schema whose rules look at status and at the replica count, so
    /// that status and scale writes can fail them.
    fn guarded_app() -> Resource {
        let mut raw: Value = serde_json::from_str(include_str!("../../openapi/app.json")).unwrap();
        raw["properties"]["status"]["x-kubernetes-validations"] = serde_json::json!([{"rule": "!has(self.replicas) || self.replicas <= 5", "message": "too many observed"}]);
        raw["properties"]["spec"]["properties"]["replicas"]["x-kubernetes-validations"] = serde_json::json!([{"rule": "self != 7", "messageExpression": "'unlucky ' + string(self)", "reason": "FieldValueForbidden"}]);
        let app = crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "App")
            .unwrap();
        let mut schema = crate::schema::Schema::load(&raw, &serde_json::Map::new()).unwrap();
        schema.root.properties.insert(
            "metadata".into(),
            app.schema.root.properties["metadata"].clone(),
        );
        Resource {
            kind: app.kind,
            schema,
        }
    }

    #[tokio::test]
    async fn rules_run_on_status_and_scale_writes() {
        let registry = Registry::new(std::sync::Arc::new(storage::MemoryStore::new(
            Default::default(),
            std::sync::Arc::new(crate::object::versioner::ResourceVersioner),
        )));
        let app = guarded_app();
        let options = WriteOptions {
            field_manager: "test".into(),
            ..Default::default()
        };
        let obj = serde_json::json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "a"}, "spec": {"version": "v1.0.0"}});
        let created = registry.create(&app, "d", obj, &options).await.unwrap();
        let created: Value = serde_json::from_slice(&created.body).unwrap();
        assert_eq!(created["spec"]["replicas"], 1, "defaulted on create");
        let with = |path: &'static str, v: i64| {
            move |existing: &Value, _: &mut Vec<String>| -> ApiResult<Value> {
                let mut new = existing.clone();
                let parent = new
                    .as_object_mut()
                    .unwrap()
                    .entry(path)
                    .or_insert(serde_json::json!({}));
                parent["replicas"] = Value::from(v);
                Ok(new)
            }
        };
        let status = registry
            .update_with(
                &app,
                "d",
                "a",
                Subresource::Status,
                &options,
                None,
                &mut with("status", 6),
            )
            .await
            .unwrap_err();
        assert_eq!(
            status.message(),
            "App.admission.example.com \"a\" is invalid: status: Invalid value: too many observed"
        );
        let scale = registry
            .update_with(
                &app,
                "d",
                "a",
                Subresource::Scale,
                &options,
                None,
                &mut with("spec", 7),
            )
            .await
            .unwrap_err();
        assert_eq!(
            scale.message(),
            "App.admission.example.com \"a\" is invalid: spec.replicas: Forbidden: unlucky 7"
        );
        // Allowed values pass through the same paths.
        registry
            .update_with(
                &app,
                "d",
                "a",
                Subresource::Status,
                &options,
                None,
                &mut with("status", 5),
            )
            .await
            .unwrap();
        registry
            .update_with(
                &app,
                "d",
                "a",
                Subresource::Scale,
                &options,
                None,
                &mut with("spec", 6),
            )
            .await
            .unwrap();
        // A create is held to the rules too (non-transition rules run on create).
        let seven = serde_json::json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "b"}, "spec": {"version": "v1.0.0", "replicas": 7}});
        let err = registry
            .create(&app, "d", seven, &options)
            .await
            .unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(err.reason(), "Invalid");
    }
}
