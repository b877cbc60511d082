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
    let mut config: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_yaml_ng::from_slice(&call.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
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
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    let gvk = format!(
        "{}, Kind={kind}",
        if api_version.contains('/') {
            api_version.to_string()
        } else {
            format!("/{api_version}")
        }
    );
    if api_version != call.version.group_version() || kind != resource.kind.kind {
        return Err(ApiError::bad_request(format!("invalid object type: {gvk}")));
    }
    if meta::meta(&config)
        .and_then(|m| m.get("managedFields"))
        .is_some_and(Value::is_array)
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let (namespace, name) = (
        meta::namespace(&config).to_string(),
        meta::name(&config).to_string(),
    );
    let mut pruned = config.clone();
    let unknown = resource.schema.prune(&mut pruned);
    if !unknown.is_empty() {
        return Err(ApiError::unknown(format!(
            "failed to create typed patch object ({namespace}/{name}; {gvk}): {}",
            typed_errors(&unknown)
        )));
    }
    codec::to_storage(call.version, &mut config);
    check_identity(
        resource,
        &mut config,
        &call.info.namespace,
        Some(&call.info.name),
    )?;
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
    let scope = match (subresource, resource.kind.status_subresource) {
        (Subresource::Status, _) => Scope::Status,
        (_, true) => Scope::MainWithStatus,
        (_, false) => Scope::Main,
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
    let warnings: Vec<String> = Vec::new();
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
                    Ok(mut written) => {
                        written.warnings.extend(warnings);
                        return Ok(written);
                    }
                    // Created by someone else meanwhile: apply to theirs.
                    Err(e) if e.reason() == "AlreadyExists" => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
            Ok(_) => {
                let mut written = state
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
                if let Ok(w) = written.as_mut() {
                    w.warnings.extend(warnings);
                }
                return written;
            }
        }
    }
}
