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
/// The storage and preferred version.
pub const VERSION: &str = "v1";
/// `group/version` of the storage version.
pub const GROUP_VERSION: &str = "admission.example.com/v1";

/// A version the group's kinds are served in. Every version has the same schema; objects are
/// stored once, in the storage version, and converted (`crate::conversion`) to the version a
/// request names.
#[derive(Debug, PartialEq, Eq)]
pub struct ServedVersion {
    /// `v1`, `v1beta1`.
    pub name: &'static str,
    /// Objects are stored in this version (exactly one is).
    pub storage: bool,
    /// Every request to it is answered with a deprecation `Warning`, as for a CRD version with
    /// `deprecated: true`.
    pub deprecated: bool,
}

/// `v1`: the storage and preferred version.
pub static V1: ServedVersion = ServedVersion {
    name: "v1",
    storage: true,
    deprecated: false,
};

/// `v1beta1`: the same schema, deprecated.
pub static V1BETA1: ServedVersion = ServedVersion {
    name: "v1beta1",
    storage: false,
    deprecated: true,
};

/// The served versions, preferred first (the order discovery lists them in).
pub static VERSIONS: &[&ServedVersion] = &[&V1, &V1BETA1];

impl ServedVersion {
    /// The served version of this name.
    pub fn named(name: &str) -> Option<&'static ServedVersion> {
        VERSIONS.iter().copied().find(|v| v.name == name)
    }

    /// `admission.example.com/<version>`.
    pub fn group_version(&self) -> String {
        format!("{GROUP}/{}", self.name)
    }

    /// Its position in [`VERSIONS`].
    pub fn index(&self) -> usize {
        VERSIONS.iter().position(|v| *v == self).unwrap_or(0)
    }

    /// The `Warning` every request to a deprecated version gets, worded as apiextensions-apiserver
    /// words a CRD version's default one (`defaultDeprecationWarning`): the newest served version
    /// that is not deprecated is named as the replacement.
    pub fn deprecation_warning(&self, kind: &Kind) -> Option<String> {
        if !self.deprecated {
            return None;
        }
        let mut warning = format!("{GROUP}/{} {} is deprecated", self.name, kind.kind);
        if let Some(newer) = VERSIONS
            .iter()
            .filter(|v| !v.deprecated && kube_version_order(self.name, v.name).is_lt())
            .max_by(|a, b| kube_version_order(a.name, b.name))
        {
            warning.push_str(&format!("; use {GROUP}/{} {}", newer.name, kind.kind));
        }
        Some(warning)
    }
}

/// Kubernetes' version order (`CompareKubeAwareVersionStrings`): GA above beta above alpha,
/// then by major and minor number; names of another form sort below, alphabetically.
pub fn kube_version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u32, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u32 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (level, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (0, m)
        } else {
            return None;
        };
        Some((level, major, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((la, ma, na)), Some((lb, mb, nb))) => la.cmp(&lb).then(ma.cmp(&mb)).then(na.cmp(&nb)),
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (None, None) => b.cmp(a),
    }
}

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
}

impl Kind {
    /// `storageVersionHash` in discovery (the same in every served version): the first 8 bytes
    /// of the SHA-256 of `<group>/<storage version>/<kind>`, base64, as
    /// `k8s.io/apiserver/pkg/endpoints/discovery.StorageVersionHash` computes it.
    pub fn storage_version_hash(&self) -> String {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}/{}/{}", self.group, self.version, self.kind));
        base64::engine::general_purpose::STANDARD.encode(&digest[..8])
    }

    /// `apiVersion` of its objects as stored.
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

    /// The name its OpenAPI definition is published under in a served version
    /// (`com.example.admission.v1.App`, reversed group as for a CRD).
    pub fn definition_name_in(&self, version: &ServedVersion) -> String {
        let mut parts: Vec<&str> = self.group.split('.').collect();
        parts.reverse();
        format!("{}.{}.{}", parts.join("."), version.name, self.kind)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecation_warnings_name_the_replacement() {
        assert_eq!(V1.deprecation_warning(&app::APP), None);
        assert_eq!(
            V1BETA1.deprecation_warning(&app::APP).as_deref(),
            Some(
                "admission.example.com/v1beta1 App is deprecated; use admission.example.com/v1 App"
            )
        );
        assert_eq!(
            V1BETA1
                .deprecation_warning(&namespace_reservation::NAMESPACE_RESERVATION)
                .as_deref(),
            Some(
                "admission.example.com/v1beta1 NamespaceReservation is deprecated; use admission.example.com/v1 NamespaceReservation"
            )
        );
        assert_eq!(ServedVersion::named("v1beta1"), Some(&V1BETA1));
        assert_eq!(ServedVersion::named("v2"), None);
        assert_eq!(V1BETA1.index(), 1);
    }

    #[test]
    fn storage_version_hashes_are_kubes() {
        // XbRTJ0JUYuI= is what kube-apiserver 1.36 served for the App CRD of this group.
        assert_eq!(app::APP.storage_version_hash(), "XbRTJ0JUYuI=");
        assert_eq!(
            namespace_reservation::NAMESPACE_RESERVATION.storage_version_hash(),
            "7+hy2K+r8q0="
        );
    }

    #[test]
    fn kube_version_order_table() {
        let mut v = vec![
            "v1beta1",
            "foo",
            "v2",
            "v1",
            "v1alpha1",
            "v10",
            "v11alpha2",
            "v1beta2",
            "bar",
        ];
        v.sort_by(|a, b| kube_version_order(b, a));
        assert_eq!(
            v,
            [
                "v10",
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
    }
}
