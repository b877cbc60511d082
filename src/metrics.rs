//! Prometheus metrics under the names operators already chart for kube-apiserver
//! (`apiserver_request_total`, `apiserver_request_duration_seconds`,
//! `apiserver_current_inflight_requests`, `apiserver_registered_watchers`, ...), served at
//! `/metrics`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `apiserver_request_duration_seconds`, and of `apiserver_request_total` with
/// [`CodeLabel`] after them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP-level verb as kube-apiserver reports it (`GET`, `LIST`, `WATCH`, `POST`, ...).
    pub verb: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// `resource`, `namespace`, `cluster` or empty for non-resource requests.
    pub scope: String,
    /// Always `apiserver`.
    pub component: String,
}

/// The `code` label of `apiserver_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// HTTP status code.
    pub code: String,
}

/// Labels of `apiserver_current_inflight_requests`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InflightLabels {
    /// `readOnly` or `mutating`.
    pub request_kind: String,
}

/// Labels of `apiserver_registered_watchers`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatcherLabels {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource.
    pub kind: String,
}

/// The metrics of a server.
pub struct Metrics {
    registry: Registry,
    /// `apiserver_request_total`.
    pub requests: Family<(RequestLabels, CodeLabel), Counter>,
    /// `apiserver_request_duration_seconds` (not for watches, as kube-apiserver).
    pub durations: Family<RequestLabels, Histogram>,
    /// `apiserver_current_inflight_requests`.
    pub inflight: Family<InflightLabels, Gauge>,
    /// `apiserver_registered_watchers`.
    pub watchers: Family<WatcherLabels, Gauge>,
    /// TokenReviews sent (cache misses).
    pub token_reviews: Counter,
    /// SubjectAccessReviews sent (cache misses).
    pub access_reviews: Counter,
    /// `apiserver_request_terminations_total`: requests refused (429) or timed out (504) in
    /// self-defense.
    pub terminations: Family<(RequestLabels, CodeLabel), Counter>,
    /// `apiserver_audit_event_total`.
    pub audit_events: Counter,
    /// `apiserver_audit_error_total{plugin="buffered"}`: audit events dropped (buffer full).
    pub audit_dropped: Counter,
    /// `apiserver_audit_level_total{level}`.
    pub audit_levels: Family<Vec<(String, String)>, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The `verb` label kube-apiserver uses: LIST/WATCH/APPLY split out of GET/PATCH.
pub fn verb_label(method: &str, request_verb: &str, apply: bool) -> String {
    match request_verb {
        "list" => "LIST".into(),
        "watch" => "WATCH".into(),
        "patch" if apply => "APPLY".into(),
        _ => method.to_ascii_uppercase(),
    }
}

/// `apiserver_watch_cache_consistent_read_total{group,resource,success,fallback}`, read off the
/// etcd store's watch caches at each scrape: consistent reads (no resourceVersion) served from
/// a cache once it had caught up (`fallback="false"`) or from etcd (`fallback="true"`), as
/// k8s.io/apiserver's cacher counts its consistent lists. Gets are counted too, since they are
/// served from the cache the same way here.
pub struct ConsistentReads {
    /// The store whose caches count.
    pub store: std::sync::Arc<storage::etcd::EtcdStore>,
    /// The `group` label.
    pub group: &'static str,
}

impl std::fmt::Debug for ConsistentReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsistentReads")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Collector for ConsistentReads {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "apiserver_watch_cache_consistent_read",
            "Counter for consistent reads from cache.",
            None,
            counter.metric_type(),
        )?;
        for (prefix, reads) in self.store.consistent_reads() {
            for fallback in [false, true] {
                for success in [false, true] {
                    let labels = [
                        ("group", self.group),
                        ("resource", prefix.trim_end_matches('/')),
                        ("success", if success { "true" } else { "false" }),
                        ("fallback", if fallback { "true" } else { "false" }),
                    ];
                    ConstCounter::new(reads.count(fallback, success))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<(RequestLabels, CodeLabel), Counter>::default();
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            requests.clone(),
        );
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0,
                6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
            ])
        });
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            durations.clone(),
        );
        let inflight = Family::<InflightLabels, Gauge>::default();
        registry.register(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last second",
            inflight.clone(),
        );
        let watchers = Family::<WatcherLabels, Gauge>::default();
        registry.register(
            "apiserver_registered_watchers",
            "Number of currently registered watchers for a given resources",
            watchers.clone(),
        );
        let token_reviews = Counter::default();
        registry.register(
            "admission_apiserver_token_reviews",
            "TokenReviews sent to kube-apiserver (cache misses)",
            token_reviews.clone(),
        );
        let access_reviews = Counter::default();
        registry.register(
            "admission_apiserver_subject_access_reviews",
            "SubjectAccessReviews sent to kube-apiserver (cache misses)",
            access_reviews.clone(),
        );
        let terminations = Family::<(RequestLabels, CodeLabel), Counter>::default();
        registry.register(
            "apiserver_request_terminations",
            "Number of requests which apiserver terminated in self-defense.",
            terminations.clone(),
        );
        let audit_events = Counter::default();
        registry.register(
            "apiserver_audit_event",
            "Counter of audit events generated and sent to the audit backend.",
            audit_events.clone(),
        );
        let audit_errors = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "apiserver_audit_error",
            "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
            audit_errors.clone(),
        );
        let audit_dropped = audit_errors
            .get_or_create(&vec![("plugin".to_string(), "buffered".to_string())])
            .clone();
        let audit_levels = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "apiserver_audit_level",
            "Counter of policy levels for audit events (1 per request).",
            audit_levels.clone(),
        );
        Metrics {
            terminations,
            audit_events,
            audit_dropped,
            audit_levels,
            registry,
            requests,
            durations,
            inflight,
            watchers,
            token_reviews,
            access_reviews,
        }
    }

    /// Adds metrics read at each scrape (e.g. [`ConsistentReads`]).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// The text exposition (OpenMetrics), with process metrics appended.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .unwrap_or(0);
        let body = out.trim_end().trim_end_matches("# EOF").to_string();
        format!(
            "{body}# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n# EOF\n",
            rss * 1024
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_uses_the_apiserver_names() {
        let m = Metrics::new();
        let labels = RequestLabels {
            verb: "LIST".into(),
            group: "admission.example.com".into(),
            version: "v1".into(),
            resource: "apps".into(),
            subresource: String::new(),
            scope: "namespace".into(),
            component: "apiserver".into(),
        };
        let code = CodeLabel { code: "200".into() };
        m.requests.get_or_create(&(labels.clone(), code)).inc();
        m.durations.get_or_create(&labels).observe(0.01);
        let text = m.render();
        assert!(
            text.contains("apiserver_request_total{verb=\"LIST\",group=\"admission.example.com\",version=\"v1\",resource=\"apps\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE apiserver_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(verb_label("PATCH", "patch", true), "APPLY");
    }
}
