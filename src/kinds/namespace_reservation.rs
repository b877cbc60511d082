//! `NamespaceReservation`: reserves the namespace of the same name for some users and groups.
//! Its name must be a valid namespace name, and it must name at least one owner.

use super::{Column, GROUP, Kind, VERSION};
use crate::field_error::FieldError;
use crate::object::meta::NameRule;
use serde_json::Value;

/// The NamespaceReservation kind.
pub static NAMESPACE_RESERVATION: Kind = Kind {
    group: GROUP,
    version: VERSION,
    kind: "NamespaceReservation",
    list_kind: "NamespaceReservationList",
    plural: "namespacereservations",
    singular: "namespacereservation",
    namespaced: false,
    short_names: &["nsres"],
    categories: &[],
    status_subresource: true,
    scale: None,
    columns: &[
        Column {
            name: "Users",
            type_: "string",
            format: "",
            description: "Custom resource definition column (in JSONPath format): .spec.owners.users",
            path: &["spec", "owners", "users"],
            priority: 0,
        },
        Column {
            name: "Groups",
            type_: "string",
            format: "",
            description: "Custom resource definition column (in JSONPath format): .spec.owners.groups",
            path: &["spec", "owners", "groups"],
            priority: 0,
        },
        super::AGE,
    ],
    schema_json: include_str!("../../openapi/namespacereservation.json"),
    name_rule: NameRule::Label,
    validate,
};

/// At least one owner, user or group, and no empty names.
fn validate(obj: &Value) -> Vec<FieldError> {
    let owners = obj.pointer("/spec/owners");
    let list = |k: &str| -> Vec<&Value> {
        owners
            .and_then(|o| o.get(k))
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let (users, groups) = (list("users"), list("groups"));
    let mut errs = Vec::new();
    if users.is_empty() && groups.is_empty() {
        errs.push(FieldError::required(
            "spec.owners",
            "at least one user or group must own the reservation",
        ));
    }
    for (field, items) in [("users", &users), ("groups", &groups)] {
        for (i, v) in items.iter().enumerate() {
            if v.as_str() == Some("") {
                errs.push(FieldError::invalid(
                    format!("spec.owners.{field}[{i}]"),
                    v,
                    "must not be empty",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_are_required() {
        assert!(validate(&json!({"spec": {"owners": {"users": ["alice"]}}})).is_empty());
        assert!(validate(&json!({"spec": {"owners": {"groups": ["dev"]}}})).is_empty());
        let errs = validate(&json!({"spec": {"owners": {"users": []}}}));
        assert_eq!(
            errs[0].message(),
            "spec.owners: Required value: at least one user or group must own the reservation"
        );
        assert_eq!(validate(&json!({})).len(), 1);
        assert_eq!(
            validate(&json!({"spec": {"owners": {"users": [""]}}})).len(),
            1
        );
    }
}
