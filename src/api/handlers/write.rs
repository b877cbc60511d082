//! create, update, patch, delete and deletecollection.

use super::{Call, patch as patching, read, respond};
use crate::api::decode::{Decoded, decode_object};
use crate::api::error::{ApiError, ApiResult};
use crate::api::go_json::{GoType, struct_type_error};
use crate::api::negotiation::{BodyFormat, PatchType, Target, body_format, negotiate, patch_type};
use crate::api::query::{ListOptions, Query};
use crate::api::render::{self, Body, IncludeObject};
use crate::field_error::FieldError;
use crate::field_error::go_quote;
use crate::kinds::Resource;
use crate::registry::codec;
use crate::registry::write::{DeleteOptions, Deleted, Subresource, Written};
use crate::server::state::AppState;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

fn respond_written(call: &Call, written: Written, created_code: StatusCode) -> ApiResult<Response> {
    let output = negotiate(call.header("accept"), Target::Object)?;
    let served = codec::serve(&call.resource, call.version, &written.body)?;
    let code = if written.created {
        created_code
    } else {
        StatusCode::OK
    };
    Ok(respond(
        code,
        render::object(&call.resource, &served, output, IncludeObject::Metadata)?,
        &written.warnings,
    ))
}

/// The body of a create or update, decoded in the version asked and converted to the storage
/// version.
fn decode_to_storage(call: &Call, options: &crate::registry::WriteOptions) -> ApiResult<Decoded> {
    let mut decoded = decode_object(
        &call.resource,
        call.version,
        call.header("content-type"),
        &call.body,
        options.field_validation,
    )?;
    codec::to_storage(call.version, &mut decoded.object);
    Ok(decoded)
}

/// POST to a collection.
pub async fn create(state: &AppState, call: &Call) -> ApiResult<Response> {
    let options = call.write_options("CreateOptions", false)?;
    let decoded = decode_to_storage(call, &options)?;
    let mut written = state
        .registry
        .create(
            &call.resource,
            &call.info.namespace,
            decoded.object,
            &options,
        )
        .await?;
    written.warnings.splice(0..0, decoded.warnings);
    respond_written(call, written, StatusCode::CREATED)
}

async fn update_sub(
    state: &AppState,
    call: &Call,
    subresource: Subresource,
) -> ApiResult<Response> {
    let options = call.write_options("UpdateOptions", false)?;
    let decoded = decode_to_storage(call, &options)?;
    let obj = decoded.object;
    let uid = crate::object::meta::uid(&obj).to_string();
    let mut written = state
        .registry
        .update_with(
            &call.resource,
            &call.info.namespace,
            &call.info.name,
            subresource,
            &options,
            Some(&uid),
            &mut |_, _| Ok(obj.clone()),
        )
        .await?;
    written.warnings.splice(0..0, decoded.warnings);
    respond_written(call, written, StatusCode::CREATED)
}

/// PUT of an object.
pub async fn update(state: &AppState, call: &Call) -> ApiResult<Response> {
    update_sub(state, call, Subresource::Main).await
}

/// PUT of `/status`.
pub async fn update_status(state: &AppState, call: &Call) -> ApiResult<Response> {
    update_sub(state, call, Subresource::Status).await
}

/// PATCH of an object or its status.
pub async fn patch(state: &AppState, call: &Call) -> ApiResult<Response> {
    let kind = patch_type(call.header("content-type"))?;
    let apply = kind == PatchType::Apply;
    let options = call.write_options("PatchOptions", apply)?;
    patching::check_body(kind, &call.body)?;
    let subresource = if call.info.subresource == "status" {
        Subresource::Status
    } else {
        Subresource::Main
    };
    if apply {
        let force = call.query.flag("force").unwrap_or(false);
        let written =
            crate::api::handlers::apply::apply(state, call, subresource, &options, force).await?;
        return respond_written(call, written, StatusCode::CREATED);
    }
    let body = call.body.clone();
    let resource = call.resource.clone();
    let prune = move |obj: &mut Value| resource.schema.prune(obj);
    let validation = options.field_validation;
    let written = state
        .registry
        .update_with(
            &call.resource,
            &call.info.namespace,
            &call.info.name,
            subresource,
            &options,
            None,
            &mut |existing, warnings| {
                // Patched in the request's version, as kube-apiserver patches.
                let mut current = existing.clone();
                if !call.version.storage {
                    codec::serve_value(&call.resource, call.version, &mut current);
                }
                let mut patched = patching::apply(kind, &current, &body, validation, &prune)?;
                codec::to_storage(call.version, &mut patched.object);
                warnings.extend(patched.warnings);
                Ok(patched.object)
            },
        )
        .await?;
    respond_written(call, written, StatusCode::CREATED)
}

/// Decodes a `DeleteOptions` body as kube-apiserver does (415 for a media type it does not
/// decode, 400 with the decoder's words).
fn decode_delete_options(body: &[u8], content_type: Option<&str>) -> ApiResult<Value> {
    let json: std::borrow::Cow<[u8]> = match body_format(content_type)? {
        BodyFormat::Json => body.into(),
        BodyFormat::Yaml => {
            let value: Value = crate::api::yaml::to_json(body).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
            })?;
            serde_json::to_vec(&value).unwrap_or_default().into()
        }
        BodyFormat::Protobuf => {
            return Err(ApiError::bad_request(
                "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
            ));
        }
    };
    let parse_error = |why: String| {
        ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {why}"
        ))
    };
    if let Some(why) = crate::api::go_json::syntax_error(&json) {
        return Err(parse_error(why));
    }
    let parsed: Value = serde_json::from_slice(&json).map_err(|e| parse_error(e.to_string()))?;
    if let Some(why) = crate::api::go_json::kind_probe_error(&parsed) {
        return Err(parse_error(why));
    }
    let parsed = match parsed {
        Value::Null => json!({}),
        other => other,
    };
    // The codec makes the kind it reads: DeleteOptions (in any version) or nothing.
    if let Some(kind) = parsed.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != "DeleteOptions"
    {
        let version = parsed
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ApiError::bad_request(format!(
            "no kind {} is registered for version {} in scheme {}",
            go_quote(kind),
            go_quote(version),
            go_quote(META_SCHEME)
        )));
    }
    let mut stack = Vec::new();
    if let Some(why) = struct_type_error("DeleteOptions", DELETE_OPTIONS, &parsed, &mut stack) {
        return Err(ApiError::bad_request(why));
    }
    Ok(parsed)
}

/// The scheme kube-apiserver decodes DeleteOptions with, as its errors name it.
const META_SCHEME: &str = "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme/register.go:27";

/// `metav1.DeleteOptions` as Go decodes it: its fields' JSON names and Go types.
const DELETE_OPTIONS: &[(&str, GoType)] = &[
    ("gracePeriodSeconds", GoType::Int64),
    (
        "preconditions",
        GoType::Struct(
            "v1.Preconditions",
            "Preconditions",
            &[
                ("uid", GoType::Str("types.UID")),
                ("resourceVersion", GoType::Str("string")),
            ],
        ),
    ),
    ("orphanDependents", GoType::Bool),
    ("propagationPolicy", GoType::Str("v1.DeletionPropagation")),
    ("dryRun", GoType::Strings),
    (
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        GoType::Bool,
    ),
];

/// `DeleteOptions` from the body or, when there is none, the query (kube-apiserver reads one
/// or the other), validated.
pub fn delete_options(
    body: &[u8],
    content_type: Option<&str>,
    query: &Query,
) -> ApiResult<DeleteOptions> {
    let from_body = !body.is_empty();
    let parsed = if from_body {
        decode_delete_options(body, content_type)?
    } else {
        json!({})
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let mut options = DeleteOptions {
        uid: text(parsed.pointer("/preconditions/uid")),
        resource_version: text(parsed.pointer("/preconditions/resourceVersion")),
        propagation_policy: text(parsed.get("propagationPolicy")),
        orphan_dependents: parsed.get("orphanDependents").and_then(Value::as_bool),
        dry_run: false,
    };
    let mut dry_run: Vec<String> = Vec::new();
    if !from_body {
        if let Some(p) = query.first("propagationPolicy") {
            options.propagation_policy = Some(p.to_string());
        }
        if let Some(o) = query.flag("orphanDependents") {
            options.orphan_dependents = Some(o);
        }
        query.int("gracePeriodSeconds")?;
        dry_run.extend(query.all("dryRun").into_iter().map(str::to_string));
    }
    if let Some(body_dry_run) = parsed.get("dryRun").and_then(Value::as_array) {
        dry_run.extend(
            body_dry_run
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
    }
    let mut errs = Vec::new();
    if options.orphan_dependents.is_some() && options.propagation_policy.is_some() {
        errs.push(FieldError::invalid(
            "propagationPolicy",
            &Value::String(options.propagation_policy.clone().unwrap_or_default()),
            "orphanDependents and deletionPropagation cannot be both set",
        ));
    }
    if let Some(p) = &options.propagation_policy
        && !["Foreground", "Background", "Orphan"].contains(&p.as_str())
    {
        errs.push(FieldError::not_supported(
            "propagationPolicy",
            &Value::String(p.clone()),
            &[
                "Foreground".into(),
                "Background".into(),
                "Orphan".into(),
                "nil".into(),
            ],
        ));
    }
    if dry_run.iter().any(|d| d != "All") {
        errs.push(FieldError::not_supported(
            "dryRun",
            &Value::Array(dry_run.iter().map(|d| Value::String(d.clone())).collect()),
            &["All".into()],
        ));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("meta.k8s.io", "DeleteOptions", "", &errs));
    }
    options.dry_run = !dry_run.is_empty();
    Ok(options)
}

/// The `Status` kube-apiserver answers when an object is gone.
fn success_status(resource: &Resource, name: &str, uid: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": resource.kind.group, "kind": resource.kind.plural, "uid": uid},
        }))
        .unwrap_or_default(),
    )
}

/// DELETE of an object.
pub async fn delete(state: &AppState, call: &Call) -> ApiResult<Response> {
    let options = delete_options(&call.body, call.header("content-type"), &call.query)?;
    let output = negotiate(call.header("accept"), Target::Object)?;
    let result = state
        .registry
        .delete(
            &call.resource,
            &call.info.namespace,
            &call.info.name,
            &options,
        )
        .await?;
    let body = match result {
        Deleted::Gone { uid } => Body {
            content_type: "application/json",
            bytes: success_status(&call.resource, &call.info.name, &uid),
        },
        Deleted::Pending(bytes) => {
            let served = codec::serve(&call.resource, call.version, &bytes)?;
            render::object(&call.resource, &served, output, IncludeObject::Metadata)?
        }
    };
    Ok(respond(StatusCode::OK, body, &[]))
}

/// DELETE of a collection: every selected object, as `delete` would; answers the list of them.
pub async fn delete_collection(state: &AppState, call: &Call) -> ApiResult<Response> {
    let options = delete_options(&call.body, call.header("content-type"), &call.query)?;
    let list = ListOptions::parse(&call.query, &call.resource)?;
    let output = negotiate(call.header("accept"), Target::List)?;
    let filter = |kv: &storage::KeyValue| read::selected(&kv.value, &list.labels, &list.fields);
    let page = state
        .registry
        .list(
            &call.resource,
            &call.info.namespace,
            storage::ReadAt::Latest,
            None,
            None,
            Some(&filter),
        )
        .await
        .map_err(|e| ApiError::from_storage(call.resource.kind, "", e))?;
    let mut deleted = Vec::new();
    for kv in page.items {
        let obj = crate::registry::decode_stored(&kv)?;
        let name = crate::object::meta::name(&obj).to_string();
        let namespace = crate::object::meta::namespace(&obj).to_string();
        match state
            .registry
            .delete(&call.resource, &namespace, &name, &options)
            .await
        {
            Ok(Deleted::Gone { .. }) => {
                deleted.push(codec::serve(&call.resource, call.version, &kv.value)?)
            }
            Ok(Deleted::Pending(bytes)) => {
                deleted.push(codec::serve(&call.resource, call.version, &bytes)?)
            }
            // Deleted meanwhile by someone else: nothing left to do for it.
            Err(e) if e.code() == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let meta = render::list_meta(page.revision, None, None);
    Ok(respond(
        StatusCode::OK,
        render::list(
            &call.resource,
            &call.version.group_version(),
            &deleted,
            meta,
            output,
            IncludeObject::Metadata,
        )?,
        &[],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field_error::go_quote;

    #[test]
    fn delete_options_from_body_and_query() {
        let o = delete_options(br#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground","preconditions":{"uid":"u"}}"#, None, &Query::parse("")).unwrap();
        assert_eq!(o.propagation_policy.as_deref(), Some("Foreground"));
        assert_eq!(o.uid.as_deref(), Some("u"));
        let o = delete_options(
            b"",
            None,
            &Query::parse("propagationPolicy=Orphan&dryRun=All"),
        )
        .unwrap();
        assert!(o.dry_run);
        let e = delete_options(b"", None, &Query::parse("propagationPolicy=Sideways")).unwrap_err();
        assert_eq!(e.code(), 422);
        assert!(e.message().contains(&go_quote("Sideways")));
        assert_eq!(
            delete_options(b"[", None, &Query::parse(""))
                .unwrap_err()
                .message(),
            "couldn't get version/kind; json parse error: unexpected end of JSON input"
        );
        // With a body, the query's options are not read.
        let o = delete_options(b"{}", None, &Query::parse("dryRun=All")).unwrap();
        assert!(!o.dry_run);
    }
}
