//! Overload protection as k8s.io/apiserver's `WithMaxInFlightLimit` does it: at most
//! `--max-requests-inflight` read-only (`get`, `list`) and `--max-mutating-requests-inflight`
//! mutating requests are served at once; beyond that the request is refused with 429 and
//! `Retry-After: 1` before it is authorized or its body is read. Long-running requests (watches)
//! are not counted. Members of `system:masters` (which includes the aggregator's availability
//! probes) take a slot when one is free and are served anyway when none is, and the health
//! probes (`/healthz`, `/livez`, `/readyz`) are never refused, as kube's `exempt` priority level
//! treats them.
//!
//! `apiserver_current_inflight_requests{request_kind}` reports, each second, the highest number
//! of slots used during the last second (kube's watermark).

use crate::api::request_info::RequestInfo;
use crate::auth::User;
use crate::metrics::InflightLabels;
use parking_lot::Mutex;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Verbs that do not count as mutating (kube's `nonMutatingRequestVerbs`).
const READ_ONLY_VERBS: &[&str] = &["get", "list", "watch"];
/// Subresources whose requests are long-running (kube-apiserver's `longRunningSubresources`).
const LONG_RUNNING_SUBRESOURCES: &[&str] = &["attach", "exec", "proxy", "log", "portforward"];

/// kube's `BasicLongRunningRequestCheck` with kube-apiserver's sets: `watch` and `proxy` verbs,
/// the streaming subresources, and profiling paths. Such requests have neither an in-flight
/// slot nor a deadline.
pub fn is_long_running(info: &RequestInfo) -> bool {
    matches!(info.verb.as_str(), "watch" | "proxy")
        || (info.is_resource_request
            && LONG_RUNNING_SUBRESOURCES.contains(&info.subresource.as_str()))
        || (!info.is_resource_request && info.path.starts_with("/debug/pprof/"))
}

/// The two request kinds, named as the metric's `request_kind` label names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `get`, `list` (and non-resource GETs).
    ReadOnly,
    /// Everything else.
    Mutating,
}

impl Kind {
    /// The kind of a request.
    pub fn of(info: &RequestInfo) -> Kind {
        if READ_ONLY_VERBS.contains(&info.verb.as_str()) {
            Kind::ReadOnly
        } else {
            Kind::Mutating
        }
    }

    /// The `request_kind` label value.
    pub fn label(self) -> &'static str {
        match self {
            Kind::ReadOnly => "readOnly",
            Kind::Mutating => "mutating",
        }
    }
}

/// One bounded pool of slots with its high-water mark.
struct Pool {
    limit: usize,
    used: AtomicUsize,
    /// Highest `used` since the metric was last updated.
    watermark: Mutex<usize>,
}

impl Pool {
    fn new(limit: usize) -> Pool {
        Pool {
            limit,
            used: AtomicUsize::new(0),
            watermark: Mutex::new(0),
        }
    }

    fn try_take(&self) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            });
        match taken {
            Ok(before) => {
                let mut w = self.watermark.lock();
                *w = (*w).max(before + 1);
                true
            }
            Err(_) => false,
        }
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }

    /// The mark of the period that ends, and a new period starting at the current use.
    fn roll(&self) -> usize {
        let mut w = self.watermark.lock();
        let mark = *w;
        *w = self.used.load(Ordering::Acquire);
        mark
    }
}

/// The in-flight limits of a server.
pub struct Limiter {
    read_only: Option<Pool>,
    mutating: Option<Pool>,
}

/// A slot, given back when dropped (after the response body is sent, as kube holds it until
/// `ServeHTTP` returns).
pub struct Slot {
    limiter: Arc<Limiter>,
    kind: Kind,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(pool) = self.limiter.pool(self.kind) {
            pool.give_back();
        }
    }
}

/// What the limiter decided about a request.
pub enum Admission {
    /// Serve it; the slot (if it took one) is held until the response is done.
    Admitted(Option<Slot>),
    /// Refuse it with 429.
    Rejected(Kind),
}

impl Limiter {
    /// Limits of `read_only` and `mutating` requests; 0 means unlimited, as in kube.
    pub fn new(read_only: usize, mutating: usize) -> Arc<Limiter> {
        Arc::new(Limiter {
            read_only: (read_only > 0).then(|| Pool::new(read_only)),
            mutating: (mutating > 0).then(|| Pool::new(mutating)),
        })
    }

    fn pool(&self, kind: Kind) -> Option<&Pool> {
        match kind {
            Kind::ReadOnly => self.read_only.as_ref(),
            Kind::Mutating => self.mutating.as_ref(),
        }
    }

    /// Admits or refuses a request of `user` (`info` already known not to be long-running).
    pub fn admit(self: &Arc<Self>, info: &RequestInfo, user: &User) -> Admission {
        let kind = Kind::of(info);
        let Some(pool) = self.pool(kind) else {
            return Admission::Admitted(None);
        };
        if pool.try_take() {
            return Admission::Admitted(Some(Slot {
                limiter: self.clone(),
                kind,
            }));
        }
        let probe = !info.is_resource_request && crate::auth::is_always_allowed_path(&info.path);
        if user.is_master() || probe {
            Admission::Admitted(None)
        } else {
            Admission::Rejected(kind)
        }
    }

    /// Mutating requests being served now (those that took a slot).
    pub fn mutating_in_flight(&self) -> usize {
        self.mutating
            .as_ref()
            .map_or(0, |p| p.used.load(Ordering::Acquire))
    }

    /// Publishes the watermarks every second, as kube's `startWatermarkMaintenance` does.
    pub async fn maintain_watermarks(self: Arc<Self>, gauge: Family<InflightLabels, Gauge>) {
        if self.read_only.is_none() && self.mutating.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for kind in [Kind::ReadOnly, Kind::Mutating] {
                let mark = self.pool(kind).map_or(0, Pool::roll);
                gauge
                    .get_or_create(&InflightLabels {
                        request_kind: kind.label().into(),
                    })
                    .set(mark as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::query::Query;

    fn info(method: http::Method, uri: &str) -> RequestInfo {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        RequestInfo::new(&method, path, &Query::parse(query))
    }

    fn user(groups: &[&str]) -> User {
        User {
            name: "u".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn long_running_requests_are_those_kube_apiserver_names() {
        let g = "/apis/admission.example.com/v1";
        let cases = [
            (http::Method::GET, format!("{g}/apps?watch=true"), true),
            (http::Method::GET, format!("{g}/watch/apps"), true),
            (
                http::Method::GET,
                format!("{g}/namespaces/d/apps/x/log"),
                true,
            ),
            (
                http::Method::GET,
                format!("{g}/namespaces/d/apps/x/exec"),
                true,
            ),
            (http::Method::GET, format!("{g}/apps"), false),
            (http::Method::POST, format!("{g}/namespaces/d/apps"), false),
            (
                http::Method::GET,
                format!("{g}/namespaces/d/apps/x/scale"),
                false,
            ),
            (http::Method::GET, "/debug/pprof/heap".to_string(), true),
            (http::Method::GET, "/readyz".to_string(), false),
        ];
        for (method, uri, expected) in cases {
            assert_eq!(is_long_running(&info(method, &uri)), expected, "{uri}");
        }
    }

    #[test]
    fn limits_refuse_beyond_capacity_but_never_masters_or_probes() {
        let limiter = Limiter::new(1, 1);
        let list = info(http::Method::GET, "/apis/admission.example.com/v1/apps");
        let create = info(
            http::Method::POST,
            "/apis/admission.example.com/v1/namespaces/d/apps",
        );
        let probe = info(http::Method::GET, "/readyz");
        let jane = user(&["dev"]);
        let admin = user(&["system:masters"]);
        let Admission::Admitted(Some(read_slot)) = limiter.admit(&list, &jane) else {
            panic!("the first read is admitted");
        };
        assert!(matches!(
            limiter.admit(&list, &jane),
            Admission::Rejected(Kind::ReadOnly)
        ));
        // Mutating requests have their own pool.
        let Admission::Admitted(Some(write_slot)) = limiter.admit(&create, &jane) else {
            panic!("the first write is admitted");
        };
        assert!(matches!(
            limiter.admit(&create, &jane),
            Admission::Rejected(Kind::Mutating)
        ));
        assert!(matches!(
            limiter.admit(&create, &admin),
            Admission::Admitted(None)
        ));
        assert!(matches!(
            limiter.admit(&probe, &User::anonymous()),
            Admission::Admitted(None)
        ));
        drop(read_slot);
        assert!(matches!(
            limiter.admit(&list, &jane),
            Admission::Admitted(Some(_))
        ));
        drop(write_slot);
        let unlimited = Limiter::new(0, 0);
        for _ in 0..10 {
            assert!(matches!(
                unlimited.admit(&create, &jane),
                Admission::Admitted(None)
            ));
        }
    }

    #[test]
    fn watermarks_report_the_highest_use_of_the_last_period() {
        let limiter = Limiter::new(10, 10);
        let list = info(http::Method::GET, "/apis/admission.example.com/v1/apps");
        let jane = user(&[]);
        let first = limiter.admit(&list, &jane);
        let others: Vec<_> = (0..2).map(|_| limiter.admit(&list, &jane)).collect();
        drop(others);
        let pool = limiter.pool(Kind::ReadOnly).unwrap();
        assert_eq!(pool.roll(), 3);
        assert_eq!(pool.roll(), 1);
        drop(first);
    }
}
