//! The scale subresource: an `autoscaling/v1` `Scale` view of a kind, mapped through the kind's
//! [`crate::kinds::ScaleMapping`]. Writes go through the kind's own validation, so a replica
//! count the schema refuses is refused here with the schema's message.

use super::patch as patching;
use super::{Call, respond};
use crate::api::decode::{parse_json, summarize};
use crate::api::error::{ApiError, ApiResult};
use crate::api::go_json;
use crate::api::negotiation::{BodyFormat, Output, Target, body_format, negotiate, patch_type};
use crate::api::render::Body;
use crate::kinds::{Resource, ScaleMapping};
use crate::object::meta;
use crate::registry::write::{Subresource, Written};
use crate::registry::{FieldValidation, strategy};
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

/// The value at a path of an object, if any.
pub(super) fn lookup<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, p| v.get(*p))
}

/// Sets (or, with `None`, removes) the value at a path of an object, making parent objects.
pub(super) fn set_path(obj: &mut Value, path: &[&str], value: Option<Value>) {
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

/// The fields of `autoscaling/v1` `Scale` and of its `ObjectMeta`: anything else in a Scale body
/// is an unknown field to a strict decoder.
const SCALE_FIELDS: &[(&str, &[&str])] = &[
    ("apiVersion", &[]),
    ("kind", &[]),
    (
        "metadata",
        &[
            "name",
            "generateName",
            "namespace",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "labels",
            "annotations",
            "ownerReferences",
            "finalizers",
            "managedFields",
        ],
    ),
    ("spec", &["replicas"]),
    ("status", &["replicas", "selector"]),
];

/// Drops the fields a `Scale` does not have; returns their paths.
pub(super) fn prune_scale(scale: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let Value::Object(root) = scale else {
        return unknown;
    };
    root.retain(|key, value| {
        let Some((_, children)) = SCALE_FIELDS.iter().find(|(name, _)| name == key) else {
            unknown.push(key.clone());
            return false;
        };
        if let (false, Value::Object(fields)) = (children.is_empty(), value) {
            fields.retain(|child, _| {
                let known = children.contains(&child.as_str());
                if !known {
                    unknown.push(format!("{key}.{child}"));
                }
                known
            });
        }
        true
    });
    unknown
}

/// Decodes a `Scale` body as kube-apiserver's typed decoder does, failing with its words.
fn decode_scale(call: &Call, validation: FieldValidation) -> ApiResult<(Value, Vec<String>)> {
    let body = &call.body;
    let unrecognized = |why: String| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type Scale): {why} ({})",
            summarize(body)
        ))
    };
    let json: std::borrow::Cow<[u8]> = match body_format(call.header("content-type"))? {
        BodyFormat::Json => body.as_ref().into(),
        BodyFormat::Yaml => {
            let value: Value = crate::api::yaml::to_json(body)
                .map_err(|e| unrecognized(format!("error converting YAML to JSON: {e}")))?;
            serde_json::to_vec(&value).unwrap_or_default().into()
        }
        BodyFormat::Protobuf => {
            return Err(ApiError::bad_request(crate::api::decode::protobuf_error(
                "Scale", body,
            )));
        }
    };
    let parse_error = |why: String| {
        unrecognized(format!(
            "couldn't get version/kind; json parse error: {why}"
        ))
    };
    if let Some(why) = go_json::syntax_error(&json) {
        return Err(parse_error(why));
    }
    let (mut scale, duplicates) = parse_json(&json).map_err(|e| parse_error(e.to_string()))?;
    if let Some(why) = go_json::kind_probe_error(&scale) {
        return Err(parse_error(why));
    }
    let handled = |why: String| {
        ApiError::bad_request(format!(
            "Scale in version \"v1\" cannot be handled as a Scale: {why}"
        ))
    };
    if let Some(replicas) = scale.pointer("/spec/replicas")
        && !replicas.is_null()
        && replicas.as_i64().is_none_or(|r| i32::try_from(r).is_err())
    {
        let kind = match replicas {
            Value::Number(n) => format!("number {n}"),
            Value::String(_) => "string".into(),
            Value::Bool(_) => "bool".into(),
            Value::Array(_) => "array".into(),
            _ => "object".into(),
        };
        return Err(handled(format!(
            "json: cannot unmarshal {kind} into Go struct field ScaleSpec.spec.replicas of type int32"
        )));
    }
    let mut findings: Vec<String> = Vec::new();
    if validation != FieldValidation::Ignore {
        findings.extend(
            duplicates
                .iter()
                .map(|d| format!("duplicate field {}", crate::field_error::go_quote(d))),
        );
    }
    let unknown = prune_scale(&mut scale);
    if validation != FieldValidation::Ignore {
        findings.extend(
            unknown
                .iter()
                .map(|u| format!("unknown field {}", crate::field_error::go_quote(u))),
        );
    }
    if !findings.is_empty() && validation == FieldValidation::Strict {
        return Err(handled(format!(
            "strict decoding error: {}",
            findings.join(", ")
        )));
    }
    let api_version = scale
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !api_version.is_empty() && api_version != "autoscaling/v1" {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version (autoscaling/v1)"
        )));
    }
    let warnings = if validation == FieldValidation::Warn {
        findings
    } else {
        Vec::new()
    };
    Ok((scale, warnings))
}

async fn write(
    state: &AppState,
    call: &Call,
    options: &crate::registry::WriteOptions,
    uid: Option<&str>,
    transform: &mut (dyn FnMut(&Value, &mut Vec<String>) -> ApiResult<Value> + Send),
) -> ApiResult<Response> {
    let output = negotiate_scale(call)?;
    let resource = call.resource.clone();
    let written: Written = state
        .registry
        .update_with(
            &call.resource,
            &call.info.namespace,
            &call.info.name,
            Subresource::Scale,
            options,
            uid,
            &mut |existing, warnings| {
                let scale = transform(&to_scale(&resource, existing)?, warnings)?;
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
    let options = call.write_options("UpdateOptions", false)?;
    let (scale, decoded_warnings) = decode_scale(call, options.field_validation)?;
    let uid = meta::uid(&scale).to_string();
    write(state, call, &options, Some(&uid), &mut |_, warnings| {
        warnings.extend(decoded_warnings.iter().cloned());
        Ok(scale.clone())
    })
    .await
}

/// PATCH `/scale`: a JSON or merge patch of the Scale, or a server-side apply of one.
pub async fn patch(state: &AppState, call: &Call) -> ApiResult<Response> {
    let kind = patch_type(call.header("content-type"))?;
    let apply = kind == crate::api::negotiation::PatchType::Apply;
    let options = call.write_options("PatchOptions", apply)?;
    patching::check_body(kind, &call.body)?;
    if apply {
        let output = negotiate_scale(call)?;
        let force = call.query.flag("force").unwrap_or(false);
        let written = super::apply::apply_scale(state, call, &options, force).await?;
        return Ok(respond(
            StatusCode::OK,
            scale_body(&call.resource, &written.body, output)?,
            &written.warnings,
        ));
    }
    let body = call.body.clone();
    let validation = options.field_validation;
    write(state, call, &options, None, &mut |current, warnings| {
        let patched = patching::apply(kind, current, &body, validation, &prune_scale)?;
        warnings.extend(patched.warnings);
        Ok(patched.object)
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
