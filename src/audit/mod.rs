//! The audit log, as k8s.io/apiserver writes it (`pkg/audit`, `WithAudit`): each request the
//! policy ([`policy`]) selects becomes `audit.k8s.io/v1` `Event` JSON lines, one per stage —
//! `RequestReceived`, `ResponseStarted` (long-running requests only), `ResponseComplete`, or
//! `Panic` — with the audit ID (the aggregator's `Audit-Id` header when present), the user
//! (behind the aggregator, the impersonated user kube-apiserver passes on), source IPs (`X-Forwarded-For`, then the peer), the object reference, the
//! response status, the request and response objects at the `Request` / `RequestResponse`
//! levels, and annotations (`authorization.k8s.io/decision` and `reason`). Lines go through the
//! non-blocking buffered writer of [`log`].

pub mod log;
pub mod policy;

use crate::auth::User;
use crate::auth::review::Attributes;
use parking_lot::Mutex;
use policy::Policy;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How much of a request is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
pub enum Level {
    /// Not audited.
    None,
    /// Who, what, when, and the outcome.
    Metadata,
    /// Metadata and the request object.
    Request,
    /// Metadata, the request and the response object.
    RequestResponse,
}

/// Where in its handling an event was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum Stage {
    /// The request arrived (after authentication).
    RequestReceived,
    /// The response headers were sent (long-running requests).
    ResponseStarted,
    /// The response was sent in full.
    ResponseComplete,
    /// The handler panicked.
    Panic,
}

/// `authentication.k8s.io/v1` `UserInfo`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UserInfo {
    /// User name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// User uid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> UserInfo {
        UserInfo {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.iter().cloned().collect(),
        }
    }
}

/// The object a resource request is about (`audit.k8s.io/v1` `ObjectReference`).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Resource.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// API group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// API version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Subresource.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// An `audit.k8s.io/v1` `Event`, fields in kube's order.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    kind: &'static str,
    api_version: &'static str,
    /// The level.
    pub level: Level,
    /// Unique per request.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// The stage this line was written at.
    pub stage: Stage,
    /// Path and query.
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// Kubernetes verb (`list`, `create`, ...) or lower-cased method.
    pub verb: String,
    /// The authenticated user.
    pub user: UserInfo,
    /// The user acted as, when impersonating (this server has no impersonation filter: behind
    /// the aggregator kube-apiserver resolves impersonation and sends the resulting user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    /// `X-Forwarded-For` entries, then the peer's address.
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// `User-Agent` (truncated past 1024 bytes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    /// What a resource request is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    /// The response's status (code; and reason, message, details for failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<Value>,
    /// The request object (`Request` level and up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    /// The response object (`RequestResponse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// When the request arrived (microseconds).
    pub request_received_timestamp: String,
    /// When this stage was reached.
    pub stage_timestamp: String,
    /// Annotations (authorization decision and reason, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// kube's `metav1.MicroTime` format.
fn micro_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The longest `User-Agent` recorded as is.
const MAX_USER_AGENT: usize = 1024;

/// What the pipeline knows of a request when auditing starts.
pub struct RequestMeta<'a> {
    /// The audit ID.
    pub audit_id: &'a str,
    /// Path and query.
    pub uri: &'a str,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
    /// The peer's address.
    pub remote: Option<std::net::IpAddr>,
    /// When the request arrived.
    pub received: jiff::Timestamp,
}

/// kube's `utilnet.SourceIPs`: the `X-Forwarded-For` list, then `X-Real-Ip` and the peer when
/// not already listed.
pub fn source_ips(headers: &http::HeaderMap, remote: Option<std::net::IpAddr>) -> Vec<String> {
    let mut ips: Vec<std::net::IpAddr> = Vec::new();
    if let Some(xff) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        ips.extend(
            xff.split(',')
                .filter_map(|p| p.trim().parse::<std::net::IpAddr>().ok()),
        );
    }
    if let Some(ip) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    if let Some(r) = remote
        && !ips.contains(&r)
    {
        ips.push(r);
    }
    ips.iter().map(ToString::to_string).collect()
}

/// The audit machinery of a server: the policy, the log, and kube's audit metrics.
pub struct Auditor {
    policy: Policy,
    sink: log::Sink,
    /// `apiserver_audit_event_total`.
    events: Counter,
    /// `apiserver_audit_level_total{level}`.
    levels: Family<Vec<(String, String)>, Counter>,
}

impl Auditor {
    /// An auditor writing to `sink`.
    pub fn new(
        policy: Policy,
        sink: log::Sink,
        events: Counter,
        levels: Family<Vec<(String, String)>, Counter>,
    ) -> Auditor {
        Auditor {
            policy,
            sink,
            events,
            levels,
        }
    }

    /// Starts the record of a request (`user` is `None` when authentication failed); `None`
    /// when the policy does not audit it.
    pub fn begin(
        self: &Arc<Self>,
        user: Option<&User>,
        attrs: &Attributes,
        meta: RequestMeta<'_>,
    ) -> Option<Arc<Record>> {
        let decision = self.policy.evaluate(user, attrs);
        self.levels
            .get_or_create(&vec![("level".into(), format!("{:?}", decision.level))])
            .inc();
        if decision.level == Level::None {
            return None;
        }
        let mut user_agent = meta
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
            .unwrap_or_default();
        if user_agent.len() > MAX_USER_AGENT {
            let mut cut = MAX_USER_AGENT;
            while !user_agent.is_char_boundary(cut) {
                cut -= 1;
            }
            user_agent.truncate(cut);
            user_agent.push_str("...TRUNCATED");
        }
        let received = micro_time(meta.received);
        let event = Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: decision.level,
            audit_id: meta.audit_id.to_string(),
            stage: Stage::RequestReceived,
            request_uri: meta.uri.to_string(),
            verb: attrs.verb.clone(),
            user: user.map(UserInfo::from).unwrap_or_default(),
            impersonated_user: None,
            source_ips: source_ips(meta.headers, meta.remote),
            user_agent,
            object_ref: attrs.resource_request.then(|| ObjectRef {
                resource: attrs.resource.clone(),
                namespace: attrs.namespace.clone(),
                name: attrs.name.clone(),
                api_group: attrs.group.clone(),
                api_version: attrs.version.clone(),
                subresource: attrs.subresource.clone(),
            }),
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: received.clone(),
            stage_timestamp: received,
            annotations: BTreeMap::new(),
        };
        Some(Arc::new(Record {
            auditor: self.clone(),
            omit: decision.omit_stages,
            event: Mutex::new(event),
            done: AtomicBool::new(false),
            status_final: AtomicBool::new(false),
        }))
    }
}

/// The audit record of one request: its event under construction, written at each stage. When
/// the last reference goes (the response body was sent, or the request was abandoned) the
/// ResponseComplete event is written, unless a Panic or failed-authentication event ended it.
pub struct Record {
    auditor: Arc<Auditor>,
    omit: Vec<Stage>,
    event: Mutex<Event>,
    /// No more events to write.
    done: AtomicBool,
    /// The response status may no longer change (the client got a timeout).
    status_final: AtomicBool,
}

impl Drop for Record {
    fn drop(&mut self) {
        if self.done.load(Ordering::Acquire) {
            return;
        }
        let mut e = self.event.lock();
        if e.response_status.is_none() {
            // kube's fake status when nothing was written.
            e.response_status = Some(
                json!({"metadata": {}, "status": "Success", "message": "Connection closed early", "code": 200}),
            );
        }
        drop(e);
        self.stage(Stage::ResponseComplete);
    }
}

/// The `responseStatus` of a response: its code, and for a `Status` body its status, message,
/// reason and details.
pub fn response_status(code: u16, body: Option<&[u8]>) -> Value {
    let mut status = json!({"metadata": {}, "code": code});
    if let Some(parsed) = body.and_then(|b| serde_json::from_slice::<Value>(b).ok())
        && parsed["kind"] == "Status"
    {
        for key in ["status", "message", "reason", "details"] {
            if let Some(v) = parsed.get(key) {
                status[key] = v.clone();
            }
        }
    }
    status
}

impl Record {
    /// The level of this request.
    pub fn level(&self) -> Level {
        self.event.lock().level
    }

    /// Adds an annotation (the first value of a key stays, as in kube).
    pub fn annotate(&self, key: &str, value: &str) {
        self.event
            .lock()
            .annotations
            .entry(key.to_string())
            .or_insert_with(|| value.to_string());
    }

    /// Records the request object (kept only at `Request` and above).
    pub fn request_object(&self, object: Value) {
        let mut e = self.event.lock();
        if e.level >= Level::Request {
            e.request_object = Some(object);
        }
    }

    /// Records the response object (kept only at `RequestResponse`).
    pub fn response_object(&self, object: Value) {
        let mut e = self.event.lock();
        if e.level >= Level::RequestResponse {
            e.response_object = Some(object);
        }
    }

    /// Sets the response status (unless the client already got a final one).
    pub fn set_status(&self, status: Value) {
        if !self.status_final.load(Ordering::Acquire) {
            self.event.lock().response_status = Some(status);
        }
    }

    /// Sets the status the client got, for good (a timeout answered before the handler).
    pub fn finish_with(&self, status: Value) {
        self.set_status(status);
        self.status_final.store(true, Ordering::Release);
    }

    /// No ResponseComplete event follows (a Panic or failed-authentication event was the last).
    pub fn finished(&self) {
        self.done.store(true, Ordering::Release);
    }

    /// Writes the event at `stage` unless the policy omits it; never waits.
    pub fn stage(&self, stage: Stage) {
        if self.omit.contains(&stage) {
            return;
        }
        let line = {
            let mut e = self.event.lock();
            e.stage = stage;
            if stage != Stage::RequestReceived {
                e.stage_timestamp = micro_time(jiff::Timestamp::now());
            }
            let mut line = match serde_json::to_vec(&*e) {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot encode an audit event");
                    return;
                }
            };
            line.push(b'\n');
            line
        };
        self.auditor.events.inc();
        self.auditor.sink.send(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ips_follow_x_forwarded_for() {
        let mut h = http::HeaderMap::new();
        let peer: std::net::IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(source_ips(&h, Some(peer)), ["10.0.0.9"]);
        h.insert(
            "x-forwarded-for",
            "192.0.2.1, 198.51.100.2, junk".parse().unwrap(),
        );
        assert_eq!(
            source_ips(&h, Some(peer)),
            ["192.0.2.1", "198.51.100.2", "10.0.0.9"]
        );
        h.insert("x-real-ip", "198.51.100.2".parse().unwrap());
        assert_eq!(
            source_ips(&h, Some(peer)),
            ["192.0.2.1", "198.51.100.2", "10.0.0.9"]
        );
        h.insert("x-forwarded-for", "10.0.0.9".parse().unwrap());
        assert_eq!(source_ips(&h, Some(peer)), ["10.0.0.9", "198.51.100.2"]);
        let mut real = http::HeaderMap::new();
        real.insert("x-real-ip", "203.0.113.7".parse().unwrap());
        assert_eq!(source_ips(&real, Some(peer)), ["203.0.113.7", "10.0.0.9"]);
    }

    #[test]
    fn response_status_keeps_a_failures_status() {
        assert_eq!(
            response_status(200, Some(b"{\"kind\":\"App\"}")),
            json!({"metadata": {}, "code": 200})
        );
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"apps.admission.example.com \"x\" not found","reason":"NotFound","details":{"name":"x","group":"admission.example.com","kind":"apps"},"code":404}"#;
        assert_eq!(
            response_status(404, Some(body)),
            json!({"metadata": {}, "code": 404, "status": "Failure",
                "message": "apps.admission.example.com \"x\" not found", "reason": "NotFound",
                "details": {"name": "x", "group": "admission.example.com", "kind": "apps"}})
        );
        assert_eq!(
            micro_time(jiff::Timestamp::from_microsecond(1_700_000_000_123_456).unwrap()),
            "2023-11-14T22:13:20.123456Z"
        );
    }
}
