//! Discovery: `/api`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`, and aggregated
//! discovery (`apidiscovery.k8s.io/v2`) with ETag/304, as kube-apiserver serves them for a group.
//! The documents are built once at startup from the kind descriptions.

use super::negotiation::parse_accept;
use crate::kinds::{GROUP, Kind, Resource, ServedVersion, VERSIONS};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use std::sync::Arc;

/// The discovery documents, serialized once.
pub struct Discovery {
    /// `/apis` as `APIGroupList`.
    pub group_list: Vec<u8>,
    /// `/apis/<group>` as `APIGroup`.
    pub group: Vec<u8>,
    /// `/apis/<group>/<version>` as `APIResourceList`, for each served version (indexed like
    /// [`VERSIONS`]).
    pub resource_lists: Vec<Vec<u8>>,
    /// `/api` as `APIVersions` (this server serves no core group).
    pub legacy_versions: Vec<u8>,
    /// `/apis` as `APIGroupDiscoveryList` v2 and v2beta1, with their ETags.
    pub aggregated: [(Vec<u8>, String); 2],
    /// `/api` as an empty `APIGroupDiscoveryList` v2 and v2beta1, with their ETags.
    pub aggregated_legacy: [(Vec<u8>, String); 2],
}

/// A resource of the group that is not stored (the admission review endpoints).
pub struct ExtraResource {
    /// Plural name.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind of the objects posted.
    pub kind: &'static str,
    /// Verbs served.
    pub verbs: &'static [&'static str],
}

/// The verbs of a stored kind, in the order kube-apiserver lists them for a CRD.
const KIND_VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

fn group_version(v: &ServedVersion) -> Value {
    json!({"groupVersion": v.group_version(), "version": v.name})
}

/// The group with every served version, the preferred (storage) one first and as
/// `preferredVersion`; nothing marks a deprecated version, as for a CRD.
fn api_group() -> Value {
    let preferred = VERSIONS.iter().find(|v| v.storage).unwrap_or(&VERSIONS[0]);
    json!({
        "name": GROUP,
        "versions": VERSIONS.iter().map(|v| group_version(v)).collect::<Vec<_>>(),
        "preferredVersion": group_version(preferred),
    })
}

fn resource_entries(kind: &Kind) -> Vec<Value> {
    let mut out = vec![json!({
        "name": kind.plural,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": KIND_VERBS,
    })];
    if let Some(Value::Object(main)) = out.first_mut() {
        if !kind.short_names.is_empty() {
            main.insert("shortNames".into(), json!(kind.short_names));
        }
        if !kind.categories.is_empty() {
            main.insert("categories".into(), json!(kind.categories));
        }
        main.insert(
            "storageVersionHash".into(),
            json!(kind.storage_version_hash()),
        );
    }
    if kind.status_subresource {
        out.push(json!({
            "name": format!("{}/status", kind.plural),
            "singularName": "",
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": SUBRESOURCE_VERBS,
        }));
    }
    if kind.scale.is_some() {
        out.push(json!({
            "name": format!("{}/scale", kind.plural),
            "singularName": "",
            "namespaced": kind.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": SUBRESOURCE_VERBS,
        }));
    }
    out
}

fn aggregated_entry(kind: &Kind, version: &ServedVersion) -> Value {
    let response_kind = json!({"group": GROUP, "version": version.name, "kind": kind.kind});
    let mut subresources = Vec::new();
    if kind.status_subresource {
        subresources.push(json!({"subresource": "status", "responseKind": response_kind, "verbs": SUBRESOURCE_VERBS}));
    }
    if kind.scale.is_some() {
        subresources.push(json!({
            "subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": SUBRESOURCE_VERBS,
        }));
    }
    let mut entry = json!({
        "resource": kind.plural,
        "responseKind": response_kind,
        "scope": if kind.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": kind.singular,
        "verbs": KIND_VERBS,
    });
    if let Value::Object(m) = &mut entry {
        if !kind.short_names.is_empty() {
            m.insert("shortNames".into(), json!(kind.short_names));
        }
        if !kind.categories.is_empty() {
            m.insert("categories".into(), json!(kind.categories));
        }
        if !subresources.is_empty() {
            m.insert("subresources".into(), Value::Array(subresources));
        }
    }
    entry
}

fn etag(bytes: &[u8]) -> String {
    let digest = Sha512::digest(bytes);
    format!("\"{}\"", hex_upper(&digest))
}

/// Upper-case hex, as kube-apiserver prints discovery and OpenAPI hashes.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn serialized(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Discovery {
    /// Builds every document for the served kinds and the extra (non-stored) resources, which
    /// are served in the storage version only.
    pub fn new(resources: &[Arc<Resource>], extra: &[ExtraResource]) -> Discovery {
        let mut kinds: Vec<&Kind> = resources.iter().map(|r| r.kind).collect();
        kinds.sort_by_key(|k| k.plural);
        let mut resource_lists = Vec::new();
        let mut aggregated_versions = Vec::new();
        for version in VERSIONS {
            let mut entries: Vec<Value> = kinds.iter().flat_map(|k| resource_entries(k)).collect();
            let mut aggregated_resources: Vec<Value> =
                kinds.iter().map(|k| aggregated_entry(k, version)).collect();
            if version.storage {
                for e in extra {
                    entries.push(json!({
                        "name": e.plural,
                        "singularName": e.singular,
                        "namespaced": false,
                        "kind": e.kind,
                        "verbs": e.verbs,
                    }));
                    aggregated_resources.push(json!({
                        "resource": e.plural,
                        "responseKind": {"group": GROUP, "version": version.name, "kind": e.kind},
                        "scope": "Cluster",
                        "singularResource": e.singular,
                        "verbs": e.verbs,
                    }));
                }
            }
            resource_lists.push(serialized(&json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": version.group_version(),
                "resources": entries,
            })));
            aggregated_versions.push(json!({
                "version": version.name,
                "resources": aggregated_resources,
                "freshness": "Current",
            }));
        }
        let group_list =
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()]});
        let mut group = api_group();
        if let Value::Object(m) = &mut group {
            m.insert("kind".into(), json!("APIGroup"));
            m.insert("apiVersion".into(), json!("v1"));
        }
        let aggregated = |version: &str, items: Value| {
            let doc = json!({
                "kind": "APIGroupDiscoveryList",
                "apiVersion": format!("apidiscovery.k8s.io/{version}"),
                "metadata": {},
                "items": items,
            });
            let bytes = serialized(&doc);
            let tag = etag(&bytes);
            (bytes, tag)
        };
        let items = json!([{
            "metadata": {"name": GROUP, "creationTimestamp": null},
            "versions": aggregated_versions,
        }]);
        Discovery {
            group_list: serialized(&group_list),
            group: serialized(&group),
            resource_lists,
            legacy_versions: serialized(
                &json!({"kind": "APIVersions", "versions": [], "serverAddressByClientCIDRs": []}),
            ),
            aggregated: [
                aggregated("v2", items.clone()),
                aggregated("v2beta1", items),
            ],
            aggregated_legacy: [
                aggregated("v2", json!([])),
                aggregated("v2beta1", json!([])),
            ],
        }
    }

    /// The `APIResourceList` of a served version.
    pub fn resource_list(&self, version: &ServedVersion) -> Option<&[u8]> {
        self.resource_lists.get(version.index()).map(Vec::as_slice)
    }
}

/// What an `Accept` header on `/api` or `/apis` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIGroupDiscoveryList` (index 0: v2, 1: v2beta1).
    Aggregated(usize),
    /// The legacy unaggregated document.
    Legacy,
    /// Nothing acceptable.
    None,
}

/// Chooses between aggregated and legacy discovery.
pub fn discovery_format(accept: Option<&str>) -> DiscoveryFormat {
    let header = accept.unwrap_or("").trim();
    if header.is_empty() {
        return DiscoveryFormat::Legacy;
    }
    for range in parse_accept(header) {
        let json = (range.type_ == "application" || range.type_ == "*")
            && (range.subtype == "json" || range.subtype == "*");
        if !json {
            continue;
        }
        match (range.param("as"), range.param("g"), range.param("v")) {
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return DiscoveryFormat::Aggregated(0);
            }
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                return DiscoveryFormat::Aggregated(1);
            }
            (None, _, _) => return DiscoveryFormat::Legacy,
            _ => {}
        }
    }
    DiscoveryFormat::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        crate::test_support::fixture(&format!("crd-oracle/{name}"))
    }

    /// Resource entries without `storageVersionHash`: the crd-oracle capture ran under another
    /// group, whose hash the rewrite to ours could not fix.
    fn without_hashes(mut list: Value) -> Value {
        for r in list["resources"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("storageVersionHash");
        }
        list
    }

    #[test]
    fn resource_list_and_aggregated_entry_match_the_crd_oracle() {
        let d = Discovery::new(&crate::kinds::load().unwrap(), &[]);
        let got: Value =
            serde_json::from_slice(d.resource_list(&crate::kinds::V1).unwrap()).unwrap();
        assert_eq!(
            without_hashes(got),
            without_hashes(fixture("14-discovery-resourcelist.json")["response"]["body"].clone())
        );
        let got: Value = serde_json::from_slice(&d.aggregated[0].0).unwrap();
        let want =
            &fixture("15-aggregated-discovery-v2-entry.json")["response"]["item_for_this_group"][0];
        let mut item = got["items"][0].clone();
        item["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("creationTimestamp");
        // v1 as the crd-oracle captured it; v1beta1 after it.
        let mut v1_only = item.clone();
        v1_only["versions"].as_array_mut().unwrap().truncate(1);
        assert_eq!(&v1_only, want);
        assert_eq!(item["versions"][1]["version"], "v1beta1");
    }

    #[test]
    fn both_versions_match_the_versions_oracle() {
        let oracle = |name: &str| {
            crate::test_support::fixture(&format!("crd-oracle-versions-cel/{name}"))["response"]
                ["body"]
                .clone()
        };
        let d = Discovery::new(&crate::kinds::load().unwrap(), &[]);
        let group: Value = serde_json::from_slice(&d.group).unwrap();
        assert_eq!(group, oracle("13-get-apigroup.json"));
        // The oracle served App alone; its entries are ours exactly, hash included.
        let beta: Value =
            serde_json::from_slice(d.resource_list(&crate::kinds::V1BETA1).unwrap()).unwrap();
        let mut apps = beta.clone();
        apps["resources"]
            .as_array_mut()
            .unwrap()
            .retain(|r| r["kind"] != "NamespaceReservation");
        assert_eq!(apps, oracle("14-get-v1beta1-apiresourcelist.json"));
        let aggregated: Value = serde_json::from_slice(&d.aggregated[0].0).unwrap();
        let mut item = aggregated["items"][0].clone();
        item["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("creationTimestamp");
        for v in item["versions"].as_array_mut().unwrap() {
            v["resources"]
                .as_array_mut()
                .unwrap()
                .retain(|r| r["resource"] == "apps");
        }
        assert_eq!(
            item,
            oracle("15-get-aggregated-discovery-group-entry.json")["items"][0]
        );
    }

    #[test]
    fn aggregator_accept_header_gets_v2() {
        let h = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(discovery_format(Some(h)), DiscoveryFormat::Aggregated(0));
        assert_eq!(
            discovery_format(Some(&format!("{h},application/json"))),
            DiscoveryFormat::Aggregated(0)
        );
        assert_eq!(
            discovery_format(Some("application/json")),
            DiscoveryFormat::Legacy
        );
        assert_eq!(discovery_format(None), DiscoveryFormat::Legacy);
        assert_eq!(discovery_format(Some("text/plain")), DiscoveryFormat::None);
    }
}
