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
        // As GuaranteedUpdate with a cached object: start from this replica's view, and read
        // afresh before answering with anything a stale view could explain (404, 409).
        let mut at = ReadAt::Any;
        loop {
            let fresh = at != ReadAt::Any;
            let kv = match self.get(resource, namespace, name, at).await {
                Err(e) if e.code() == 404 && !fresh => {
                    at = ReadAt::Latest;
                    continue;
                }
                other => other?,
            };
            let mut existing = decode_stored(&kv)?;
            strategy::default(resource, &mut existing);
            if let Some(want) = uid.filter(|u| !u.is_empty())
                && want != meta::uid(&existing)
            {
                return Err(ApiError::update_precondition(
                    resource.kind,
                    name,
                    &k,
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
                if !fresh {
                    at = ReadAt::Latest;
                    continue;
                }
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
            if new == existing {
                return Ok(Written {
                    body: kv.value,
                    created: false,
                    warnings,
                });
            }
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
            let fresh = at != ReadAt::Any;
            let kv = match self.get(resource, namespace, name, at).await {
                Err(e) if e.code() == 404 && !fresh => {
                    at = ReadAt::Latest;
                    continue;
                }
                other => other?,
            };
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
