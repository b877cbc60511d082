//! The published OpenAPI: `/openapi/v3` (root and the group-version document, with `hash`) and
//! `/openapi/v2`, generated once at startup from the schemas in `openapi/` — the same schemas
//! that validate requests — so `kubectl explain` and client-side tooling see what is enforced.

use super::discovery::hex_upper;
use crate::kinds::{GROUP, Kind, OBJECT_META, Resource, ServedVersion, VERSIONS};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};
use std::sync::Arc;

/// One served document with its hash (ETag and `?hash=`).
pub struct Document {
    /// The serialized document.
    pub bytes: Vec<u8>,
    /// Upper-case hex SHA-512 of `bytes`.
    pub hash: String,
}

/// The documents, serialized once, with their hashes.
pub struct OpenApi {
    /// `/openapi/v3` root.
    pub v3_root: Vec<u8>,
    /// `/openapi/v3/apis/<group>/<version>` of each served version (indexed like [`VERSIONS`]).
    pub v3_groups: Vec<Document>,
    /// `/openapi/v2`.
    pub v2: Vec<u8>,
    /// Hash of the v2 document.
    pub v2_hash: String,
    /// Hash of the v3 root document.
    pub v3_root_hash: String,
}

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn gvk(kind: &str, version: &ServedVersion) -> Value {
    json!([{"group": GROUP, "kind": kind, "version": version.name}])
}

/// The published schema of a kind: the file's schema (with its defaults and
/// `x-kubernetes-validations`, as for a CRD) with ObjectMeta and type descriptions.
fn kind_schema(resource: &Resource, version: &ServedVersion) -> Value {
    let mut schema = resource.schema.raw.clone();
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "apiVersion".into(),
            json!({"description": API_VERSION_DESCRIPTION, "type": "string"}),
        );
        props.insert(
            "kind".into(),
            json!({"description": KIND_DESCRIPTION, "type": "string"}),
        );
        props.insert(
            "metadata".into(),
            json!({
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                "allOf": [reference(OBJECT_META)],
            }),
        );
    }
    if let Value::Object(m) = &mut schema {
        m.insert(
            "x-kubernetes-group-version-kind".into(),
            gvk(resource.kind.kind, version),
        );
    }
    schema
}

fn list_schema(kind: &Kind, version: &ServedVersion) -> Value {
    json!({
        "description": format!("{} is a list of {}", kind.list_kind, kind.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", kind.plural),
                "type": "array",
                "items": reference(&kind.definition_name_in(version)),
            },
            "kind": {"description": KIND_DESCRIPTION, "type": "string"},
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "allOf": [reference("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")],
            },
        },
        "x-kubernetes-group-version-kind": gvk(kind.list_kind, version),
    })
}

fn query_param(name: &str, type_: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": true}})
}

fn list_params() -> Vec<Value> {
    vec![
        query_param(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query_param(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query_param(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        query_param(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        query_param(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query_param(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query_param(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query_param(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true` to start the watch with the current state.",
        ),
        query_param(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
        query_param(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

/// The query parameters of a PATCH: a write's, and `force` for apply.
fn patch_params() -> Vec<Value> {
    let mut p = write_params(true);
    p.push(query_param(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests.",
    ));
    p
}

fn write_params(with_validation: bool) -> Vec<Value> {
    let mut p = vec![
        query_param(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. The only valid value is All.",
        ),
        query_param(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
    ];
    if with_validation {
        p.push(query_param(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn (default) or Strict.",
        ));
    }
    p
}

fn content(schema_ref: &str) -> Value {
    json!({
        "application/json": {"schema": reference(schema_ref)},
        "application/yaml": {"schema": reference(schema_ref)},
    })
}

struct Op<'a> {
    method: &'static str,
    action: &'static str,
    verb_id: &'static str,
    description: String,
    params: Vec<Value>,
    body: Option<(&'a str, Vec<&'static str>)>,
    response: &'a str,
    codes: &'static [&'static str],
}

/// `V1beta1` as operation ids spell a version.
fn capitalized(version: &str) -> String {
    let mut c = version.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn operation(op: Op<'_>, id_suffix: &str, kind: &str, version: &ServedVersion) -> (String, Value) {
    let mut responses = Map::new();
    for code in op.codes {
        responses.insert(
            (*code).to_string(),
            json!({"description": match *code { "201" => "Created", "202" => "Accepted", _ => "OK" }, "content": content(op.response)}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut value = json!({
        "tags": [format!("admissionExampleCom_{}", version.name)],
        "description": op.description,
        "operationId": format!("{}AdmissionExampleCom{}{id_suffix}", op.verb_id, capitalized(version.name)),
        "parameters": op.params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": GROUP, "version": version.name, "kind": kind},
    });
    if let (Some((schema, types)), Value::Object(m)) = (op.body, &mut value) {
        let body: Map<String, Value> = types
            .into_iter()
            .map(|t| (t.to_string(), json!({"schema": reference(schema)})))
            .collect();
        m.insert(
            "requestBody".into(),
            json!({"content": body, "required": true}),
        );
    }
    (op.method.to_string(), value)
}

fn path_params(namespaced: bool, named: bool) -> Vec<Value> {
    let mut p = Vec::new();
    if named {
        p.push(json!({"name": "name", "in": "path", "description": "name of the object", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
    }
    if namespaced {
        p.push(json!({"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams and projects", "required": true, "schema": {"type": "string", "uniqueItems": true}}));
    }
    p.push(query_param(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    ));
    p
}

const PATCH_TYPES: [&str; 3] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

fn paths_for(kind: &Kind, version: &ServedVersion, paths: &mut Map<String, Value>) {
    let def = kind.definition_name_in(version);
    let group_version = version.group_version();
    let list_def = format!("{def}List");
    let k = kind.kind;
    let (ns_prefix, ns_id) = if kind.namespaced {
        ("namespaces/{namespace}/", "Namespaced")
    } else {
        ("", "")
    };
    let collection = format!("/apis/{group_version}/{ns_prefix}{}", kind.plural);
    let item = format!("{collection}/{{name}}");
    let mut delete_params = write_params(false);
    delete_params.push(query_param(
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted.",
    ));
    delete_params.push(query_param(
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
    ));
    let ops = |list: Vec<(Op<'_>, &str)>| -> Map<String, Value> {
        list.into_iter()
            .map(|(op, suffix)| operation(op, suffix, k, version))
            .collect()
    };
    let mut coll = ops(vec![
        (
            Op {
                method: "get",
                action: "list",
                verb_id: "list",
                description: format!("list objects of kind {k}"),
                params: list_params(),
                body: None,
                response: &list_def,
                codes: &["200"],
            },
            &format!("{ns_id}{k}"),
        ),
        (
            Op {
                method: "post",
                action: "post",
                verb_id: "create",
                description: format!("create {k}"),
                params: write_params(true),
                body: Some((&def, vec!["*/*"])),
                response: &def,
                codes: &["200", "201", "202"],
            },
            &format!("{ns_id}{k}"),
        ),
        (
            Op {
                method: "delete",
                action: "deletecollection",
                verb_id: "deletecollection",
                description: format!("delete collection of {k}"),
                params: {
                    let mut p = delete_params.clone();
                    p.extend(list_params());
                    p
                },
                body: None,
                response: "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                codes: &["200"],
            },
            &format!("{ns_id}{k}"),
        ),
    ]);
    coll.insert(
        "parameters".into(),
        Value::Array(path_params(kind.namespaced, false)),
    );
    paths.insert(collection.clone(), Value::Object(coll));
    let mut one = ops(vec![
        (
            Op {
                method: "get",
                action: "get",
                verb_id: "read",
                description: format!("read the specified {k}"),
                params: vec![query_param(
                    "resourceVersion",
                    "string",
                    "resourceVersion sets a constraint on what resource versions a request may be served from.",
                )],
                body: None,
                response: &def,
                codes: &["200"],
            },
            &format!("{ns_id}{k}"),
        ),
        (
            Op {
                method: "put",
                action: "put",
                verb_id: "replace",
                description: format!("replace the specified {k}"),
                params: write_params(true),
                body: Some((&def, vec!["*/*"])),
                response: &def,
                codes: &["200", "201"],
            },
            &format!("{ns_id}{k}"),
        ),
        (
            Op {
                method: "patch",
                action: "patch",
                verb_id: "patch",
                description: format!("partially update the specified {k}"),
                params: patch_params(),
                body: Some((
                    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
                    PATCH_TYPES.to_vec(),
                )),
                response: &def,
                codes: &["200", "201"],
            },
            &format!("{ns_id}{k}"),
        ),
        (
            Op {
                method: "delete",
                action: "delete",
                verb_id: "delete",
                description: format!("delete a {k}"),
                params: delete_params,
                body: None,
                response: "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
                codes: &["200", "202"],
            },
            &format!("{ns_id}{k}"),
        ),
    ]);
    one.insert(
        "parameters".into(),
        Value::Array(path_params(kind.namespaced, true)),
    );
    paths.insert(item.clone(), Value::Object(one));
    let mut subresources: Vec<(&str, &str, String)> = Vec::new();
    if kind.status_subresource {
        subresources.push(("status", "Status", def.clone()));
    }
    if kind.scale.is_some() {
        subresources.push((
            "scale",
            "Scale",
            "io.k8s.api.autoscaling.v1.Scale".to_string(),
        ));
    }
    for (sub, id, schema) in subresources {
        let suffix = format!("{ns_id}{k}{id}");
        let mut s = ops(vec![
            (
                Op {
                    method: "get",
                    action: "get",
                    verb_id: "read",
                    description: format!("read {sub} of the specified {k}"),
                    params: vec![],
                    body: None,
                    response: &schema,
                    codes: &["200"],
                },
                &suffix,
            ),
            (
                Op {
                    method: "put",
                    action: "put",
                    verb_id: "replace",
                    description: format!("replace {sub} of the specified {k}"),
                    params: write_params(true),
                    body: Some((&schema, vec!["*/*"])),
                    response: &schema,
                    codes: &["200", "201"],
                },
                &suffix,
            ),
            (
                Op {
                    method: "patch",
                    action: "patch",
                    verb_id: "patch",
                    description: format!("partially update {sub} of the specified {k}"),
                    params: patch_params(),
                    body: Some((
                        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
                        PATCH_TYPES.to_vec(),
                    )),
                    response: &schema,
                    codes: &["200", "201"],
                },
                &suffix,
            ),
        ]);
        s.insert(
            "parameters".into(),
            Value::Array(path_params(kind.namespaced, true)),
        );
        paths.insert(format!("{item}/{sub}"), Value::Object(s));
    }
    if kind.namespaced {
        let mut all = ops(vec![(
            Op {
                method: "get",
                action: "list",
                verb_id: "list",
                description: format!("list objects of kind {k}"),
                params: list_params(),
                body: None,
                response: &list_def,
                codes: &["200"],
            },
            &format!("{k}ForAllNamespaces"),
        )]);
        all.insert("parameters".into(), Value::Array(path_params(false, false)));
        paths.insert(
            format!("/apis/{group_version}/{}", kind.plural),
            Value::Object(all),
        );
    }
}

fn hash(bytes: &[u8]) -> String {
    hex_upper(&Sha512::digest(bytes))
}

/// Rewrites `#/components/schemas/` references into Swagger 2.0 `#/definitions/` ones.
fn to_v2_refs(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    if k == "$ref"
                        && let Some(s) = v.as_str()
                    {
                        return (
                            k.clone(),
                            Value::String(s.replace("#/components/schemas/", "#/definitions/")),
                        );
                    }
                    (k.clone(), to_v2_refs(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(to_v2_refs).collect()),
        other => other.clone(),
    }
}

/// A Swagger 2.0 parameter from a v3 one: the schema's type inline.
fn v2_param(mut p: Value) -> Value {
    if let Some(m) = p.as_object_mut()
        && let Some(schema) = m.remove("schema")
    {
        m.insert(
            "type".into(),
            schema.get("type").cloned().unwrap_or(json!("string")),
        );
        m.insert("uniqueItems".into(), json!(true));
    }
    p
}

/// Swagger 2.0 operations from the v3 ones: parameters inline, bodies as `in: body`.
fn to_v2_paths(paths: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (path, item) in paths {
        let mut item_out = Map::new();
        for (method, op) in item.as_object().into_iter().flatten() {
            if method == "parameters" {
                let params: Vec<Value> = op
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned()
                    .map(v2_param)
                    .collect();
                item_out.insert(method.clone(), Value::Array(params));
                continue;
            }
            let mut op = op.clone();
            if let Some(m) = op.as_object_mut() {
                let mut params: Vec<Value> = m
                    .remove("parameters")
                    .and_then(|p| p.as_array().cloned())
                    .unwrap_or_default()
                    .into_iter()
                    .map(v2_param)
                    .collect();
                let mut consumes: Vec<Value> = Vec::new();
                if let Some(body) = m.remove("requestBody") {
                    let content = body
                        .get("content")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    let schema = content
                        .values()
                        .next()
                        .and_then(|c| c.get("schema"))
                        .cloned()
                        .unwrap_or(json!({}));
                    consumes = content.keys().map(|k| json!(k)).collect();
                    params.insert(0, json!({"name": "body", "in": "body", "required": true, "schema": to_v2_refs(&schema)}));
                }
                m.insert("parameters".into(), Value::Array(params));
                if !consumes.is_empty() {
                    m.insert("consumes".into(), Value::Array(consumes));
                }
                m.insert(
                    "produces".into(),
                    json!(["application/json", "application/yaml"]),
                );
                m.insert("schemes".into(), json!(["https"]));
                if let Some(responses) = m.get_mut("responses").and_then(Value::as_object_mut) {
                    for r in responses.values_mut() {
                        if let Some(rm) = r.as_object_mut()
                            && let Some(c) = rm.remove("content")
                            && let Some(s) = c.get("application/json").and_then(|j| j.get("schema"))
                        {
                            rm.insert("schema".into(), to_v2_refs(s));
                        }
                    }
                }
            }
            item_out.insert(method.clone(), op);
        }
        out.insert(path.clone(), Value::Object(item_out));
    }
    Value::Object(out)
}

impl OpenApi {
    /// Builds the documents for the served kinds: one v3 document per served version, and the
    /// v2 document with every version's definitions and paths (as kube-apiserver merges a
    /// multi-version CRD into `/openapi/v2`).
    pub fn new(resources: &[Arc<Resource>]) -> Result<OpenApi, String> {
        let components = crate::kinds::apimachinery_components()?;
        let mut all_schemas = components.clone();
        let mut all_paths = Map::new();
        let mut v3_groups = Vec::new();
        let mut root_paths = Map::new();
        for version in VERSIONS {
            let mut schemas = components.clone();
            let mut paths = Map::new();
            for r in resources {
                schemas.insert(r.kind.definition_name_in(version), kind_schema(r, version));
                schemas.insert(
                    format!("{}List", r.kind.definition_name_in(version)),
                    list_schema(r.kind, version),
                );
                paths_for(r.kind, version, &mut paths);
            }
            all_schemas.extend(schemas.clone());
            all_paths.extend(paths.clone());
            let v3 = json!({
                "openapi": "3.0.0",
                "info": {"title": "admission-apiserver", "version": env!("CARGO_PKG_VERSION")},
                "paths": paths,
                "components": {"schemas": schemas},
            });
            let bytes = serde_json::to_vec(&v3).map_err(|e| e.to_string())?;
            let v3_hash = hash(&bytes);
            let gv = version.group_version();
            root_paths.insert(
                format!("apis/{gv}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{gv}?hash={v3_hash}")}),
            );
            v3_groups.push(Document {
                bytes,
                hash: v3_hash,
            });
        }
        let root = json!({"paths": root_paths});
        let v3_root = serde_json::to_vec(&root).map_err(|e| e.to_string())?;
        let v2 = json!({
            "swagger": "2.0",
            "info": {"title": "admission-apiserver", "version": env!("CARGO_PKG_VERSION")},
            "paths": to_v2_paths(&all_paths),
            "definitions": to_v2_refs(&Value::Object(all_schemas)),
        });
        let v2 = serde_json::to_vec(&v2).map_err(|e| e.to_string())?;
        Ok(OpenApi {
            v3_root_hash: hash(&v3_root),
            v3_root,
            v2_hash: hash(&v2),
            v2,
            v3_groups,
        })
    }

    /// The v3 document of a served version.
    pub fn v3_group(&self, version: &ServedVersion) -> Option<&Document> {
        self.v3_groups.get(version.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_reference_only_what_they_define() {
        let o = OpenApi::new(&crate::kinds::load().unwrap()).unwrap();
        for (doc, prefix) in [
            (&o.v3_groups[0].bytes, "#/components/schemas/"),
            (&o.v3_groups[1].bytes, "#/components/schemas/"),
            (&o.v2, "#/definitions/"),
        ] {
            let text = String::from_utf8(doc.clone()).unwrap();
            let parsed: Value = serde_json::from_slice(doc).unwrap();
            let defs = parsed
                .get("components")
                .and_then(|c| c.get("schemas"))
                .or_else(|| parsed.get("definitions"))
                .unwrap()
                .as_object()
                .unwrap();
            for piece in text.split("\"$ref\":\"").skip(1) {
                let target = piece.split('"').next().unwrap();
                let name = target
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("bad ref {target}"));
                assert!(
                    defs.contains_key(name),
                    "{name} is referenced but not defined"
                );
            }
        }
    }

    #[test]
    fn patch_operations_carry_field_validation_and_gvk_for_kubectl() {
        let o = OpenApi::new(&crate::kinds::load().unwrap()).unwrap();
        let doc: Value = serde_json::from_slice(&o.v3_groups[0].bytes).unwrap();
        let patch = &doc["paths"]["/apis/admission.example.com/v1/namespaces/{namespace}/apps/{name}"]
            ["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "App");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let root: Value = serde_json::from_slice(&o.v3_root).unwrap();
        let url = root["paths"]["apis/admission.example.com/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.ends_with(&o.v3_groups[0].hash) && o.v3_groups[0].hash.len() == 128);
    }

    #[test]
    fn every_version_has_its_document_with_defaults_and_rules() {
        let o = OpenApi::new(&crate::kinds::load().unwrap()).unwrap();
        let root: Value = serde_json::from_slice(&o.v3_root).unwrap();
        let beta: Value = serde_json::from_slice(&o.v3_groups[1].bytes).unwrap();
        let url = root["paths"]["apis/admission.example.com/v1beta1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.ends_with(&o.v3_groups[1].hash));
        let app = &beta["components"]["schemas"]["com.example.admission.v1beta1.App"];
        assert_eq!(
            app["x-kubernetes-group-version-kind"],
            json!([{"group": "admission.example.com", "kind": "App", "version": "v1beta1"}])
        );
        let spec = &app["properties"]["spec"];
        assert_eq!(spec["properties"]["replicas"]["default"], 1);
        assert_eq!(
            spec["x-kubernetes-validations"][0]["message"],
            "selector cannot be removed once set"
        );
        assert_eq!(
            spec["properties"]["selector"]["x-kubernetes-validations"][0]["rule"],
            "self == oldSelf"
        );
        let get = &beta["paths"]["/apis/admission.example.com/v1beta1/namespaces/{namespace}/apps/{name}"]
            ["get"];
        assert_eq!(
            get["operationId"],
            "readAdmissionExampleComV1beta1NamespacedApp"
        );
        assert_eq!(get["tags"], json!(["admissionExampleCom_v1beta1"]));
        assert!(
            beta["components"]["schemas"]
                .get("com.example.admission.v1.App")
                .is_none()
        );
        let v2: Value = serde_json::from_slice(&o.v2).unwrap();
        for name in [
            "com.example.admission.v1.App",
            "com.example.admission.v1beta1.App",
        ] {
            assert_eq!(
                v2["definitions"][name]["properties"]["spec"]["properties"]["replicas"]["default"],
                1,
                "{name}"
            );
        }
    }
}
