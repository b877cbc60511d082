//! The scale subresource: an `autoscaling/v1` `Scale` view of a kind, mapped through the kind's
//! [`crate::kinds::ScaleMapping`]. Writes go through the kind's own validation, so a replica
//! count the schema refuses is refused here with the schema's message.

use super::write::apply_simple_patch;
use super::{Call, respond};
use crate::api::error::{ApiError, ApiResult};
use crate::api::negotiation::{BodyFormat, Output, Target, body_format, negotiate, patch_type};
use crate::api::render::Body;
use crate::kinds::{Resource, ScaleMapping};
use crate::object::meta;
use crate::registry::strategy;
use crate::registry::write::{Subresource, Written};
use crate::server::state::AppState;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

fn mapping(resource: &Resource) -> ApiResult<&ScaleMapping> {
    resource
        .kind
        .scale
        .as_ref()
        .ok_or_else(ApiError::path_not_found)
}

fn lookup<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, p| v.get(*p))
}

fn set_path(obj: &mut Value, path: &[&str], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        if !cur.get(*p).is_some_and(Value::is_object) {
            if value.is_none() {
                return;
            }
            if let Value::Object(m) = cur {
                m.insert((*p).to_string(), Value::Object(Map::new()));
            }
        }
        let Some(next) = cur.get_mut(*p) else { return };
        cur = next;
    }
    if let Value::Object(m) = cur {
        match value {
            Some(v) => {
                m.insert((*last).to_string(), v);
            }
            None => {
                m.remove(*last);
            }
        }
    }
}

/// The `Scale` of an object.
pub fn to_scale(resource: &Resource, obj: &Value) -> ApiResult<Value> {
    let m = mapping(resource)?;
    let mut metadata = Map::new();
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta::meta(obj).and_then(|x| x.get(field)) {
            metadata.insert(field.into(), v.clone());
        }
    }
    let mut spec = Map::new();
    if let Some(r) = lookup(obj, m.spec_replicas) {
        spec.insert("replicas".into(), r.clone());
    }
    let mut status = Map::new();
    status.insert(
        "replicas".into(),
        lookup(obj, m.status_replicas).cloned().unwrap_or(json!(0)),
    );
    if let Some(s) = lookup(obj, m.label_selector).and_then(Value::as_str)
        && !s.is_empty()
    {
        status.insert("selector".into(), json!(s));
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }))
}

/// The object with the desired replicas of a `Scale` (and the Scale's preconditions).
fn from_scale(resource: &Resource, existing: &Value, scale: &Value) -> ApiResult<Value> {
    let m = mapping(resource)?;
    if !scale.is_object() {
        return Err(ApiError::bad_request(
            "the body must be an autoscaling/v1 Scale object",
        ));
    }
    let mut new = existing.clone();
    set_path(
        &mut new,
        m.spec_replicas,
        scale.pointer("/spec/replicas").cloned(),
    );
    let rv = meta::resource_version(scale);
    if !rv.is_empty() {
        meta::set(
            &mut new,
            "resourceVersion",
            Some(Value::String(rv.to_string())),
        );
    }
    let uid = meta::uid(scale);
    if !uid.is_empty() {
        meta::set(&mut new, "uid", Some(Value::String(uid.to_string())));
    }
    let name = meta::name(scale);
    if !name.is_empty() && name != meta::name(existing) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            meta::name(existing)
        )));
    }
    Ok(new)
}

fn scale_body(resource: &Resource, stored: &Bytes, output: Output) -> ApiResult<Body> {
    let mut obj: Value =
        serde_json::from_slice(stored).map_err(|e| ApiError::internal(e.to_string()))?;
    // Read as any object is: defaulted (the Scale is autoscaling/v1 in every version).
    strategy::default(resource, &mut obj);
    let scale = to_scale(resource, &obj)?;
    Ok(match output {
        Output::Yaml => Body {
            content_type: "application/yaml",
            bytes: Bytes::from(
                serde_yaml_ng::to_string(&scale).map_err(|e| ApiError::internal(e.to_string()))?,
            ),
        },
        _ => Body {
            content_type: "application/json",
            bytes: Bytes::from(serde_json::to_vec(&scale).unwrap_or_default()),
        },
    })
}

fn negotiate_scale(call: &Call) -> ApiResult<Output> {
    match negotiate(call.header("accept"), Target::Object)? {
        Output::Table { .. } | Output::Metadata { .. } => Ok(Output::Json),
        other => Ok(other),
    }
}

/// GET `/scale`.
pub async fn get(state: &AppState, call: &Call) -> ApiResult<Response> {
    let output = negotiate_scale(call)?;
    let at = super::read::get_freshness(call.query.first("resourceVersion").unwrap_or(""))?;
    let kv = state
        .registry
        .get(&call.resource, &call.info.namespace, &call.info.name, at)
        .await?;
    Ok(respond(
        StatusCode::OK,
        scale_body(&call.resource, &kv.value, output)?,
        &[],
    ))
}

async fn write(
    state: &AppState,
    call: &Call,
    options_kind: &str,
    transform: &mut (dyn FnMut(&Value) -> ApiResult<Value> + Send),
) -> ApiResult<Response> {
    let options = call.write_options(options_kind, false)?;
    let output = negotiate_scale(call)?;
    let resource = call.resource.clone();
    let written: Written = state
        .registry
        .update_with(
            &call.resource,
            &call.info.namespace,
            &call.info.name,
            Subresource::Scale,
            &options,
            &mut |existing, _| {
                let scale = transform(&to_scale(&resource, existing)?)?;
                from_scale(&resource, existing, &scale)
            },
        )
        .await?;
    Ok(respond(
        StatusCode::OK,
        scale_body(&call.resource, &written.body, output)?,
        &written.warnings,
    ))
}

/// PUT `/scale`.
pub async fn update(state: &AppState, call: &Call) -> ApiResult<Response> {
    let scale: Value = match body_format(call.header("content-type"))? {
        BodyFormat::Json => serde_json::from_slice(&call.body),
        BodyFormat::Yaml => serde_yaml_ng::from_slice(&call.body).map_err(serde::de::Error::custom),
    }
    .map_err(|e| ApiError::bad_request(format!("error decoding Scale: {e}")))?;
    write(state, call, "UpdateOptions", &mut |_| Ok(scale.clone())).await
}

/// PATCH `/scale` (JSON or merge patch of the Scale).
pub async fn patch(state: &AppState, call: &Call) -> ApiResult<Response> {
    let kind = patch_type(call.header("content-type"))?;
    if kind == crate::api::negotiation::PatchType::Apply {
        return Err(ApiError::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
        ]));
    }
    let body = call.body.clone();
    write(state, call, "PatchOptions", &mut |current| {
        apply_simple_patch(kind, current, &body)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_matches_the_fixture_shape() {
        let app = crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "App")
            .unwrap();
        let obj = json!({"metadata": {"name": "a1", "namespace": "difftest", "uid": "u", "resourceVersion": "583",
            "creationTimestamp": "2026-11-24T21:41:07Z", "generation": 1, "labels": {"tier": "web"}},
            "spec": {"replicas": 1, "version": "v1.0.0"}, "status": {"replicas": 2, "selector": "tier=web"}});
        assert_eq!(
            to_scale(&app, &obj).unwrap(),
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "a1", "namespace": "difftest", "uid": "u", "resourceVersion": "583", "creationTimestamp": "2026-11-24T21:41:07Z"},
                "spec": {"replicas": 1}, "status": {"replicas": 2, "selector": "tier=web"}})
        );
        let scaled = from_scale(
            &app,
            &obj,
            &json!({"spec": {"replicas": 3}, "metadata": {"resourceVersion": "1"}}),
        )
        .unwrap();
        assert_eq!(scaled["spec"]["replicas"], 3);
        assert_eq!(scaled["metadata"]["resourceVersion"], "1");
    }
}
