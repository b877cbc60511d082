//! Server-side apply (`PATCH` with `application/apply-patch+yaml`): applies the configuration as
//! the field manager, creating the object when it does not exist.

use super::Call;
use crate::api::error::{ApiError, ApiResult};
use crate::fields::apply::{Applied, Scope, apply as apply_config, conflict_message};
use crate::kinds::Resource;
use crate::object::meta;
use crate::registry::write::{Subresource, Written, check_identity};
use crate::registry::{Ownership, WriteOptions, codec, strategy};
use crate::server::state::AppState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;
use serde_json::Value;

/// Decodes the applied configuration (YAML or JSON) and checks it names this kind and object.
fn decode_config(
    call: &Call,
    options: &WriteOptions,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    let resource = &call.resource;
    let mut config: Value = serde_yaml_ng::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: the applied configuration must be an object",
        ));
    }
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    let expected = call.version.group_version();
    if api_version != expected || kind != resource.kind.kind {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {}, Kind={}; expected {expected}, Kind={}",
            if api_version.is_empty() {
                "/"
            } else {
                api_version
            },
            kind,
            resource.kind.kind
        )));
    }
    codec::to_storage(call.version, &mut config);
    check_identity(
        resource,
        &mut config,
        &call.info.namespace,
        Some(&call.info.name),
    )?;
    strategy::prune(resource, &mut config, options.field_validation, warnings)?;
    Ok(config)
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
    let mut warnings = Vec::new();
    let config = decode_config(call, options, &mut warnings)?;
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
