//! The kinds this server serves, one module each: names, scope, printer columns, subresources and
//! the checks the schema cannot express. Everything generic lives in `crate::registry`.

pub mod app;
pub mod namespace_reservation;

use crate::field_error::FieldError;
use crate::object::meta::NameRule;
use crate::schema::Schema;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The API group served.
pub const GROUP: &str = "admission.example.com";
/// The one version served.
pub const VERSION: &str = "v1";
/// `group/version`.
pub const GROUP_VERSION: &str = "admission.example.com/v1";

/// A printer column of the kind's Table, as a CRD's `additionalPrinterColumns` declares one.
#[derive(Debug)]
pub struct Column {
    /// Header (`Desired`).
    pub name: &'static str,
    /// OpenAPI type: `string`, `integer`, `date`, ...
    pub type_: &'static str,
    /// OpenAPI format (`name` for the name column).
    pub format: &'static str,
    /// Shown by `kubectl explain`-like tools.
    pub description: &'static str,
    /// JSON path of the value, as property names from the root.
    pub path: &'static [&'static str],
    /// 0 is always shown; higher only with `-o wide`.
    pub priority: i32,
}

/// The Age column every kind ends with, as a CRD's default printer column.
pub const AGE: Column = Column {
    name: "Age",
    type_: "date",
    format: "",
    description: "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp",
    path: &["metadata", "creationTimestamp"],
    priority: 0,
};

/// How the scale subresource maps onto the object.
#[derive(Debug)]
pub struct ScaleMapping {
    /// Path of the desired replicas (`spec.replicas`).
    pub spec_replicas: &'static [&'static str],
    /// Path of the observed replicas (`status.replicas`).
    pub status_replicas: &'static [&'static str],
    /// Path of the label selector string (`status.selector`).
    pub label_selector: &'static [&'static str],
}

/// Everything static about a served kind.
#[derive(Debug)]
pub struct Kind {
    /// API group.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind name (`App`).
    pub kind: &'static str,
    /// List kind name (`AppList`).
    pub list_kind: &'static str,
    /// Plural resource name, used in paths.
    pub plural: &'static str,
    /// Singular resource name.
    pub singular: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// `kubectl` short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Whether `/status` is served.
    pub status_subresource: bool,
    /// The scale subresource, if served.
    pub scale: Option<ScaleMapping>,
    /// Table columns after the name column.
    pub columns: &'static [Column],
    /// The schema file from `openapi/`.
    pub schema_json: &'static str,
    /// What names are valid.
    pub name_rule: NameRule,
    /// Checks the schema cannot express.
    pub validate: fn(&Value) -> Vec<FieldError>,
    /// `storageVersionHash` in discovery: a stable digest of group, version and kind.
    pub storage_version_hash: &'static str,
}

impl Kind {
    /// The name the kind's OpenAPI definition is published under
    /// (`com.example.admission.v1.App`, reversed group as for a CRD).
    pub fn definition_name(&self) -> String {
        let mut parts: Vec<&str> = self.group.split('.').collect();
        parts.reverse();
        format!("{}.{}.{}", parts.join("."), self.version, self.kind)
    }

    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// The fields a field selector may name, as for a custom resource (`ConvertFieldLabel`):
    /// `metadata.name`, and `metadata.namespace` when the kind is namespaced.
    pub fn selectable_fields(&self) -> &'static [&'static str] {
        if self.namespaced {
            &["metadata.name", "metadata.namespace"]
        } else {
            &["metadata.name"]
        }
    }
}

/// Every stored kind.
pub const ALL: &[&Kind] = &[&app::APP, &namespace_reservation::NAMESPACE_RESERVATION];

/// A kind with its schema loaded.
#[derive(Debug)]
pub struct Resource {
    /// The static description.
    pub kind: &'static Kind,
    /// The structural schema (metadata resolved to ObjectMeta).
    pub schema: Schema,
}

/// The schemas of `openapi/apimachinery.json` (ObjectMeta, Scale, Status, ...).
pub fn apimachinery_components() -> Result<Map<String, Value>, String> {
    let raw: Value = serde_json::from_str(include_str!("../../openapi/apimachinery.json"))
        .map_err(|e| format!("openapi/apimachinery.json: {e}"))?;
    match raw {
        Value::Object(map) => Ok(map),
        _ => Err("openapi/apimachinery.json must be an object".into()),
    }
}

/// The ObjectMeta definition name.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Loads every kind's schema. Fails (at startup) if a file in `openapi/` is not a schema this
/// server can enforce.
pub fn load() -> Result<Vec<Arc<Resource>>, String> {
    let components = apimachinery_components()?;
    let meta_ref = serde_json::json!({"$ref": format!("#/components/schemas/{OBJECT_META}")});
    let mut object_meta = crate::schema::Schema::load(&meta_ref, &components)?.root;
    // managedFields[].fieldsV1 is free-form: keep it whole.
    if let Some(entry) = object_meta
        .properties
        .get_mut("managedFields")
        .and_then(|m| m.items.as_deref_mut())
        && let Some(fields) = entry.properties.get_mut("fieldsV1")
    {
        fields.preserve_unknown = true;
    }
    ALL.iter()
        .map(|kind| {
            let raw: Value = serde_json::from_str(kind.schema_json)
                .map_err(|e| format!("schema of {}: {e}", kind.kind))?;
            let mut schema = Schema::load(&raw, &components)
                .map_err(|e| format!("schema of {}: {e}", kind.kind))?;
            schema
                .root
                .properties
                .insert("metadata".into(), object_meta.clone());
            Ok(Arc::new(Resource { kind, schema }))
        })
        .collect()
}
