//! `App`: the seed's example kind. Its schema (`openapi/app.json`) carries all of its rules;
//! it has the status and scale subresources.

use super::{Column, GROUP, Kind, ScaleMapping, VERSION};
use crate::field_error::FieldError;
use crate::object::meta::NameRule;
use serde_json::Value;

/// The App kind.
pub static APP: Kind = Kind {
    group: GROUP,
    version: VERSION,
    kind: "App",
    list_kind: "AppList",
    plural: "apps",
    singular: "app",
    namespaced: true,
    short_names: &["app"],
    categories: &["all"],
    status_subresource: true,
    scale: Some(ScaleMapping {
        spec_replicas: &["spec", "replicas"],
        status_replicas: &["status", "replicas"],
        label_selector: &["status", "selector"],
    }),
    columns: &[
        Column {
            name: "Version",
            type_: "string",
            format: "",
            description: "Custom resource definition column (in JSONPath format): .spec.version",
            path: &["spec", "version"],
            priority: 0,
        },
        Column {
            name: "Desired",
            type_: "integer",
            format: "",
            description: "Custom resource definition column (in JSONPath format): .spec.replicas",
            path: &["spec", "replicas"],
            priority: 0,
        },
        Column {
            name: "Current",
            type_: "integer",
            format: "",
            description: "Custom resource definition column (in JSONPath format): .status.replicas",
            path: &["status", "replicas"],
            priority: 0,
        },
        super::AGE,
    ],
    schema_json: include_str!("../../openapi/app.json"),
    name_rule: NameRule::Subdomain,
    validate,
};

/// Everything about an App is in its schema.
fn validate(_obj: &Value) -> Vec<FieldError> {
    Vec::new()
}
