//! Helpers of the unit tests: the captured kube-apiserver 1.36 fixtures and the App schema.

use crate::schema::Node;
use serde_json::Value;

/// A fixture under `tests/fixtures/kube-1.36/` (`crd-oracle/...` for the oracle's), parsed.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/kube-1.36/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A served kind by its Kind name (`App`, `NamespaceReservation`).
pub fn resource(kind: &str) -> std::sync::Arc<crate::kinds::Resource> {
    crate::kinds::load()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|r| r.kind.kind == kind)
        .unwrap_or_else(|| panic!("{kind} is served"))
}

/// The structural schema of App.
pub fn app_schema() -> Node {
    crate::kinds::load()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|r| r.kind.kind == "App")
        .unwrap_or_else(|| panic!("App is served"))
        .schema
        .root
        .clone()
}
