//! Asking kube-apiserver: `TokenReview` for bearer tokens and `SubjectAccessReview` for every
//! request, each answer cached for a while (10 s by default, as k8s.io/apiserver does), so a busy
//! client costs one review per TTL, not one per request.

use super::User;
use crate::kube_client::KubeClient;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A bounded map of answers that expire.
struct TtlCache<V> {
    entries: Mutex<HashMap<String, (Instant, V)>>,
    ttl: Duration,
}

const CACHE_LIMIT: usize = 10_000;

impl<V: Clone> TtlCache<V> {
    fn new(ttl: Duration) -> TtlCache<V> {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock();
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, value: V) {
        let mut entries = self.entries.lock();
        if entries.len() >= CACHE_LIMIT {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= CACHE_LIMIT {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

/// Reviews bearer tokens with kube-apiserver.
pub struct TokenReviewer {
    client: KubeClient,
    audiences: Vec<String>,
    cache: TtlCache<Option<User>>,
    /// Reviews actually sent (cache misses).
    sent: Counter,
}

impl TokenReviewer {
    /// A reviewer asking through `client`, for `audiences` (empty: kube-apiserver's own).
    pub fn new(
        client: KubeClient,
        audiences: Vec<String>,
        ttl: Duration,
        sent: Counter,
    ) -> TokenReviewer {
        TokenReviewer {
            client,
            audiences,
            cache: TtlCache::new(ttl),
            sent,
        }
    }

    /// The user a token belongs to; `Ok(None)` when kube-apiserver says it is not valid.
    pub async fn review(&self, token: &str) -> Result<Option<User>, String> {
        if let Some(hit) = self.cache.get(token) {
            return Ok(hit);
        }
        let mut spec = json!({"token": token});
        if !self.audiences.is_empty() {
            spec["audiences"] = json!(self.audiences);
        }
        let body =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec});
        self.sent.inc();
        let reply = self
            .client
            .post_with_retry("/apis/authentication.k8s.io/v1/tokenreviews", &body)
            .await
            .map_err(|e| format!("token review failed: {e:#}"))?;
        if reply.status != 200 && reply.status != 201 {
            return Err(format!(
                "token review answered HTTP {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        let review: Value =
            serde_json::from_slice(&reply.body).map_err(|e| format!("token review answer: {e}"))?;
        let status = &review["status"];
        let user = if status["authenticated"].as_bool() == Some(true) {
            let u = &status["user"];
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Some(User {
                name: u["username"].as_str().unwrap_or("").to_string(),
                uid: u["uid"].as_str().unwrap_or("").to_string(),
                groups: strings(&u["groups"]),
                extra: u["extra"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
                    .unwrap_or_default(),
            })
        } else {
            None
        };
        self.cache.put(token.to_string(), user.clone());
        Ok(user)
    }
}

/// What an authorizer decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with the authorizer's reason (may be empty).
    Allow(String),
    /// Not allowed, with the authorizer's reason (may be empty).
    Deny(String),
    /// No answer could be had (kube-apiserver answers 500 then, and so do we).
    Error(String),
}

/// The attributes of a request, as kube-apiserver's RequestInfo describes them.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    /// Resource request or not.
    pub resource_request: bool,
    /// `get`, `list`, ... or the lower-cased HTTP method for non-resource paths.
    pub verb: String,
    /// Non-resource path.
    pub path: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Label selector requirements (`{"key","operator","values"}`).
    pub label_requirements: Vec<Value>,
    /// Field selector requirements.
    pub field_requirements: Vec<Value>,
}

fn put_nonempty(m: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        m.insert(key.into(), Value::String(value.to_string()));
    }
}

/// The `spec` of the SubjectAccessReview for a user and request.
pub fn sar_spec(user: &User, attrs: &Attributes) -> Value {
    let mut spec = Map::new();
    put_nonempty(&mut spec, "user", &user.name);
    put_nonempty(&mut spec, "uid", &user.uid);
    if !user.groups.is_empty() {
        spec.insert("groups".into(), json!(user.groups));
    }
    if !user.extra.is_empty() {
        let extra: Map<String, Value> = user
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        spec.insert("extra".into(), Value::Object(extra));
    }
    if attrs.resource_request {
        let mut r = Map::new();
        put_nonempty(&mut r, "namespace", &attrs.namespace);
        put_nonempty(&mut r, "verb", &attrs.verb);
        put_nonempty(&mut r, "group", &attrs.group);
        put_nonempty(&mut r, "version", &attrs.version);
        put_nonempty(&mut r, "resource", &attrs.resource);
        put_nonempty(&mut r, "subresource", &attrs.subresource);
        put_nonempty(&mut r, "name", &attrs.name);
        if !attrs.field_requirements.is_empty() {
            r.insert(
                "fieldSelector".into(),
                json!({"requirements": attrs.field_requirements}),
            );
        }
        if !attrs.label_requirements.is_empty() {
            r.insert(
                "labelSelector".into(),
                json!({"requirements": attrs.label_requirements}),
            );
        }
        spec.insert("resourceAttributes".into(), Value::Object(r));
    } else {
        spec.insert(
            "nonResourceAttributes".into(),
            json!({"path": attrs.path, "verb": attrs.verb}),
        );
    }
    Value::Object(spec)
}

/// Authorizes requests with kube-apiserver's SubjectAccessReview.
pub struct SarAuthorizer {
    client: KubeClient,
    cache: TtlCache<Decision>,
    /// Reviews actually sent (cache misses).
    sent: Counter,
}

impl SarAuthorizer {
    /// An authorizer asking through `client`, caching answers for `ttl`.
    pub fn new(client: KubeClient, ttl: Duration, sent: Counter) -> SarAuthorizer {
        SarAuthorizer {
            client,
            cache: TtlCache::new(ttl),
            sent,
        }
    }

    /// Asks whether `user` may do what `attrs` describe. A review that cannot be made is an
    /// error, not cached.
    pub async fn authorize(&self, user: &User, attrs: &Attributes) -> Decision {
        let spec = sar_spec(user, attrs);
        let key = spec.to_string();
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
        self.sent.inc();
        let reply = match self
            .client
            .post_with_retry("/apis/authorization.k8s.io/v1/subjectaccessreviews", &body)
            .await
        {
            Ok(r) if r.status == 200 || r.status == 201 => r,
            Ok(r) => {
                tracing::warn!(status = r.status, "subject access review refused");
                return Decision::Error(format!(
                    "subjectaccessreviews.authorization.k8s.io answered HTTP {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "subject access review failed");
                return Decision::Error(format!("{e:#}"));
            }
        };
        let review: Value = match serde_json::from_slice(&reply.body) {
            Ok(v) => v,
            Err(e) => {
                return Decision::Error(format!(
                    "a SubjectAccessReview answer that is not JSON: {e}"
                ));
            }
        };
        let status = &review["status"];
        let reason = status["reason"].as_str().unwrap_or("").to_string();
        let decision = if status["allowed"].as_bool() == Some(true)
            && status["denied"].as_bool() != Some(true)
        {
            Decision::Allow(reason)
        } else {
            Decision::Deny(reason)
        };
        self.cache.put(key, decision.clone());
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::fixture;

    #[test]
    fn cached_answers_expire_after_the_ttl() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.put("k".into(), Decision::Allow(String::new()));
        assert_eq!(cache.get("k"), Some(Decision::Allow(String::new())));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("k"), None);
    }

    #[test]
    fn sar_specs_match_what_kube_apiserver_receives() {
        let jane = User {
            name: "jane".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            ..Default::default()
        };
        let list = Attributes {
            resource_request: true,
            verb: "list".into(),
            group: "admission.example.com".into(),
            version: "v1".into(),
            resource: "apps".into(),
            namespace: "ext-demo".into(),
            ..Default::default()
        };
        assert_eq!(
            sar_spec(&jane, &list),
            fixture("subjectaccessreview-allowed-list-apps.json")["request"]["body"]["spec"]
        );
        let metrics = Attributes {
            verb: "get".into(),
            path: "/metrics".into(),
            ..Default::default()
        };
        assert_eq!(
            sar_spec(&jane, &metrics),
            fixture("subjectaccessreview-nonresource-denied.json")["request"]["body"]["spec"]
        );
        let sa = User {
            name: "system:serviceaccount:ext-demo:ext".into(),
            uid: "9997e74c-b4f3-4c97-a22f-799fd280e25c".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:ext-demo".into(),
                "system:authenticated".into(),
            ],
            extra: vec![(
                "authentication.kubernetes.io/credential-id".into(),
                vec!["JTI=de08c282-f129-4377-9dcf-16e9fc2dc435".into()],
            )],
        };
        let get = Attributes {
            verb: "get".into(),
            name: "demo".into(),
            ..list.clone()
        };
        assert_eq!(
            sar_spec(&sa, &get),
            fixture("subjectaccessreview-allowed-get-apps-serviceaccount-extra.json")["request"]["body"]
                ["spec"]
        );
        let selected = Attributes {
            label_requirements: vec![
                json!({"key": "tier", "operator": "In", "values": ["web", "api"]}),
            ],
            field_requirements: vec![
                json!({"key": "metadata.namespace", "operator": "In", "values": ["ext-demo"]}),
            ],
            ..list
        };
        assert_eq!(
            sar_spec(&jane, &selected),
            fixture("subjectaccessreview-allowed-list-apps-selector-requirements.json")["request"]
                ["body"]["spec"]
        );
    }
}
