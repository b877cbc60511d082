//! Server-side apply (`PATCH` with `application/apply-patch+yaml`): applies the configuration as
//! the field manager, creating the object when it does not exist.

use super::Call;
use crate::api::error::{ApiError, ApiResult};
use crate::api::go_json::json_kind;
use crate::fields::apply::{Applied, Scope, apply as apply_config, conflict_message};
use crate::kinds::Resource;
use crate::object::meta;
use crate::registry::write::{Subresource, Written, check_identity};
use crate::registry::{Ownership, WriteOptions, codec};
use crate::server::state::AppState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;
use serde_json::Value;

/// Decodes the applied configuration (YAML or JSON) and checks it as kube-apiserver's field
/// manager does, in its order: the type (400), `metadata.managedFields` (400), fields the schema
/// does not declare (500, from the structured-merge typed conversion, whatever
/// `fieldValidation` says), then that it names this object.
fn decode_config(call: &Call) -> ApiResult<Value> {
    let resource = &call.resource;
    let mut config = decode_typed(
        &call.body,
        &call.version.group_version(),
        resource.kind.kind,
        &mut |pruned| resource.schema.prune(pruned),
    )?;
    codec::to_storage(call.version, &mut config);
    check_identity(
        resource,
        &mut config,
        &call.info.namespace,
        Some(&call.info.name),
    )?;
    Ok(config)
}

/// Decodes an applied configuration (YAML or JSON; empty is `{}`) that must be of
/// `api_version` and `kind`, checking it in the field manager's order: the type (400),
/// `metadata.managedFields` (400), then fields its schema (`prune`, which returns their paths)
/// does not declare (500, from the structured-merge typed conversion).
fn decode_typed(
    body: &[u8],
    api_version: &str,
    kind: &str,
    prune: &mut dyn FnMut(&mut Value) -> Vec<String>,
) -> ApiResult<Value> {
    let mut config: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        crate::api::yaml::to_json(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error encoding patch: error converting YAML to JSON: {e}"
            ))
        })?
    };
    if config.is_null() {
        config = Value::Object(Default::default());
    }
    if !config.is_object() {
        return Err(ApiError::bad_request(format!(
            "error decoding patch: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&config)
        )));
    }
    let sent_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let sent_kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    let gvk = format!(
        "{}, Kind={sent_kind}",
        if sent_version.contains('/') {
            sent_version.to_string()
        } else {
            format!("/{sent_version}")
        }
    );
    if sent_version != api_version || sent_kind != kind {
        return Err(ApiError::bad_request(format!("invalid object type: {gvk}")));
    }
    if meta::meta(&config)
        .and_then(|m| m.get("managedFields"))
        .is_some_and(Value::is_array)
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let (namespace, name) = (meta::namespace(&config), meta::name(&config));
    let mut pruned = config.clone();
    let unknown = prune(&mut pruned);
    if !unknown.is_empty() {
        return Err(ApiError::unknown(format!(
            "failed to create typed patch object ({namespace}/{name}; {gvk}): {}",
            typed_errors(&unknown)
        )));
    }
    Ok(config)
}

/// Structured-merge-diff's validation errors for undeclared fields: one per object (it stops at
/// the first unknown key of each map), `.path: field not declared in schema`, several listed
/// under `errors:`.
fn typed_errors(unknown: &[String]) -> String {
    let mut seen_parents = std::collections::HashSet::new();
    let mut lines = Vec::new();
    for path in unknown {
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        if !seen_parents.insert(parent) {
            continue;
        }
        lines.push(format!(".{path}: field not declared in schema"));
    }
    if lines.len() == 1 {
        lines.remove(0)
    } else {
        format!("errors:\n  {}", lines.join("\n  "))
    }
}

fn conflict_error(conflicts: &[crate::fields::apply::Conflict]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|c| StatusCause {
            reason: Some("FieldManagerConflict".into()),
            message: Some(format!("conflict with {}", c.manager)),
            field: Some(c.path.clone()),
        })
        .collect();
    ApiError::apply_conflict(conflict_message(conflicts), causes)
}

fn applied(
    resource: &Resource,
    live: &Value,
    config: &Value,
    options: &WriteOptions,
    subresource: Subresource,
    force: bool,
) -> ApiResult<Value> {
    let scope = match (
        subresource,
        resource.kind.status_subresource,
        &resource.kind.scale,
    ) {
        (Subresource::Status, _, _) => Scope::Status,
        (Subresource::Scale, _, Some(scale)) => Scope::Scale(scale.spec_replicas),
        (Subresource::Scale, _, None) => return Err(ApiError::path_not_found()),
        (_, true, _) => Scope::MainWithStatus,
        (_, false, _) => Scope::Main,
    };
    match apply_config(
        &resource.schema.root,
        live,
        config,
        &options.field_manager,
        scope,
        &options.manager_api_version(resource),
        force,
    )
    .map_err(|e| ApiError::internal(format!("cannot apply: {e}")))?
    {
        Applied::Object(o) => Ok(o),
        Applied::Conflicts(c) => Err(conflict_error(&c)),
    }
}

/// Applies a configuration; creates the object if it is missing (201).
pub async fn apply(
    state: &AppState,
    call: &Call,
    subresource: Subresource,
    options: &WriteOptions,
    force: bool,
) -> ApiResult<Written> {
    let config = decode_config(call)?;
    let options = WriteOptions {
        ownership: Ownership::Applied,
        ..options.clone()
    };
    let resource = &call.resource;
    loop {
        let exists = state
            .registry
            .get(
                resource,
                &call.info.namespace,
                &call.info.name,
                storage::ReadAt::Latest,
            )
            .await;
        match exists {
            Err(e) if e.code() == 404 => {
                if subresource == Subresource::Status {
                    return Err(e);
                }
                let empty = serde_json::json!({
                    "apiVersion": resource.kind.api_version(),
                    "kind": resource.kind.kind,
                });
                let mut obj = applied(resource, &empty, &config, &options, subresource, force)?;
                meta::set(&mut obj, "resourceVersion", None);
                match state
                    .registry
                    .create(resource, &call.info.namespace, obj, &options)
                    .await
                {
                    Ok(written) => return Ok(written),
                    // Created by someone else meanwhile: apply to theirs.
                    Err(e) if e.reason() == "AlreadyExists" => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
            Ok(_) => {
                let written = state
                    .registry
                    .update_with(
                        resource,
                        &call.info.namespace,
                        &call.info.name,
                        subresource,
                        &options,
                        None,
                        &mut |existing, _| {
                            applied(resource, existing, &config, &options, subresource, force)
                        },
                    )
                    .await;
                if let Err(e) = &written
                    && e.code() == 404
                {
                    // Deleted between the check and the write: create it.
                    continue;
                }
                return written;
            }
        }
    }
}

/// Server-side apply of an `autoscaling/v1` `Scale` to `/scale` (the object must exist): the
/// applier owns the kind's replica field through the `scale` subresource, conflicting with its
/// other owners unless `force`, as kube-apiserver's scale handler applies.
pub async fn apply_scale(
    state: &AppState,
    call: &Call,
    options: &WriteOptions,
    force: bool,
) -> ApiResult<Written> {
    let resource = &call.resource;
    let replicas = resource
        .kind
        .scale
        .as_ref()
        .ok_or_else(ApiError::path_not_found)?
        .spec_replicas;
    let options = WriteOptions {
        ownership: Ownership::Applied,
        ..options.clone()
    };
    state
        .registry
        .update_with(
            resource,
            &call.info.namespace,
            &call.info.name,
            Subresource::Scale,
            &options,
            None,
            // Inside the write, the object has been read (404 when missing) before the body is
            // looked at, as kube's patch handler does.
            &mut |existing, _| {
                let config = scale_config(call, replicas)?;
                let mut obj = applied(
                    resource,
                    existing,
                    &config,
                    &options,
                    Subresource::Scale,
                    force,
                )?;
                // A replica count no one applies any more is a Scale's zero, as in Go.
                if super::scale::lookup(&obj, replicas).is_none() {
                    super::scale::set_path(&mut obj, replicas, Some(Value::from(0)));
                }
                Ok(obj)
            },
        )
        .await
}

/// The configuration of the kind that an applied `Scale` (the request's body) amounts to: its
/// identity, the preconditions the Scale carries (its resourceVersion and uid become the
/// object's, as kube carries them over) and, if applied, the replica count at `replicas` as the
/// Go `int32` it becomes (`null` is 0, `3.0` is 3).
fn scale_config(call: &Call, replicas: &[&str]) -> ApiResult<Value> {
    let resource = &call.resource;
    let mut scale = decode_typed(
        &call.body,
        "autoscaling/v1",
        "Scale",
        &mut super::scale::prune_scale,
    )?;
    check_identity(
        resource,
        &mut scale,
        &call.info.namespace,
        Some(&call.info.name),
    )?;
    let mut config = serde_json::json!({
        "apiVersion": resource.kind.api_version(),
        "kind": resource.kind.kind,
        "metadata": {"name": meta::name(&scale), "namespace": meta::namespace(&scale)},
    });
    for precondition in ["resourceVersion", "uid"] {
        if let Some(v) = meta::meta(&scale).and_then(|m| m.get(precondition)) {
            meta::set(&mut config, precondition, Some(v.clone()));
        }
    }
    if let Some(n) = scale.pointer("/spec/replicas") {
        let n = match n {
            Value::Null => Value::from(0),
            Value::Number(f)
                if f.as_i64().is_none()
                    && f.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(31)) =>
            {
                Value::from(f.as_f64().map_or(0, |f| f as i64))
            }
            other => other.clone(),
        };
        super::scale::set_path(&mut config, replicas, Some(n));
    }
    Ok(config)
}
