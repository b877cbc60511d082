//! Events for denials: each denied namespace creation becomes (or counts on) a Warning Event with
//! reason `ReservationDenied` about the NamespaceReservation, so `kubectl describe
//! namespacereservation <name>` shows who was turned away.
//!
//! Recording never delays a review: denials go through a bounded queue to one task, which
//! coalesces repeats (one Event per reservation and user, its `count` and `lastTimestamp`
//! updated at most once a second) and spends at most [`RATE`] API calls a second, as
//! client-go's event correlator and spam filter do. Without a kube-apiserver to talk to the
//! denial is only logged.

use super::policy::Reservation;
use crate::kube_client::KubeClient;
use bytes::Bytes;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Denials queued before new ones are dropped (counted, logged).
const QUEUE: usize = 1024;
/// The shortest time between two writes of the same Event.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// API calls per second (sustained) and burst.
const RATE: f64 = 5.0;
const BURST: f64 = 10.0;
/// Events not touched for this long are forgotten (a later denial starts a new Event).
const IDLE: Duration = Duration::from_secs(600);
/// Most Events tracked at once.
const TRACKED: usize = 4096;

/// The Event reason.
pub const REASON: &str = "ReservationDenied";
/// `source.component` and `reportingComponent`.
pub const COMPONENT: &str = "admission-apiserver";

/// One denial to report.
#[derive(Debug, Clone)]
pub struct Denied {
    /// The reservation that denied.
    pub reservation: Arc<Reservation>,
    /// Who was denied.
    pub user: String,
}

/// Where denials are reported.
pub struct Recorder {
    queue: Option<mpsc::Sender<Denied>>,
}

impl Recorder {
    /// Only logs (no kube-apiserver).
    pub fn log_only() -> Recorder {
        Recorder { queue: None }
    }

    /// Reports through `client` as `instance` (the pod or host name).
    pub fn start(client: KubeClient, instance: String) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(client, instance, rx));
        Recorder { queue: Some(tx) }
    }

    /// Logs a denial and queues its Event; never waits.
    pub fn record(&self, denied: Denied) {
        tracing::info!(
            reservation = %denied.reservation.name,
            user = %denied.user,
            owners = %denied.reservation.owners(),
            "namespace creation denied"
        );
        if let Some(queue) = &self.queue
            && queue.try_send(denied).is_err()
        {
            tracing::debug!("event queue full; a denial is not counted in its Event");
        }
    }
}

/// The message of a denial's Event.
pub fn message(denied: &Denied) -> String {
    format!(
        "User {:?} was denied creating namespace {:?}: reserved for {}",
        denied.user,
        denied.reservation.name,
        denied.reservation.owners()
    )
}

/// One Event being kept up to date.
struct Tracked {
    denied: Denied,
    /// Its name once created.
    name: Option<String>,
    /// Denials seen, and how many the stored Event shows.
    count: u64,
    written: u64,
    first: String,
    last: String,
    last_write: Option<Instant>,
    touched: Instant,
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * RATE).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn run(client: KubeClient, instance: String, mut rx: mpsc::Receiver<Denied>) {
    let mut tracked: HashMap<(String, String), Tracked> = HashMap::new();
    let mut bucket = Bucket {
        tokens: BURST,
        at: Instant::now(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(denied) = got else { return };
                let now = crate::object::meta::now();
                let key = (denied.reservation.name.clone(), denied.user.clone());
                let t = tracked.entry(key).or_insert_with(|| Tracked {
                    denied: denied.clone(),
                    name: None,
                    count: 0,
                    written: 0,
                    first: now.clone(),
                    last: now.clone(),
                    last_write: None,
                    touched: Instant::now(),
                });
                t.denied = denied;
                t.count += 1;
                t.last = now;
                t.touched = Instant::now();
            }
            _ = tick.tick() => {
                tracked.retain(|_, t| t.touched.elapsed() < IDLE || t.count > t.written);
                if tracked.len() > TRACKED {
                    let mut ages: Vec<_> = tracked.iter().map(|(k, t)| (t.touched, k.clone())).collect();
                    ages.sort();
                    for (_, k) in ages.into_iter().take(tracked.len() - TRACKED) {
                        tracked.remove(&k);
                    }
                }
            }
        }
        for t in tracked.values_mut() {
            let due =
                t.count > t.written && t.last_write.is_none_or(|w| w.elapsed() >= MIN_INTERVAL);
            if due && bucket.take() {
                write(&client, &instance, t).await;
            }
        }
    }
}

/// Creates the Event, or updates its count; on failure the next attempt comes after
/// [`MIN_INTERVAL`].
async fn write(client: &KubeClient, instance: &str, t: &mut Tracked) {
    t.last_write = Some(Instant::now());
    let count = t.count;
    let result = match &t.name {
        Some(name) => {
            let patch = json!({"count": count, "lastTimestamp": t.last});
            let path = format!("/api/v1/namespaces/default/events/{name}");
            client
                .send("PATCH", &path, Bytes::from(patch.to_string()))
                .await
        }
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let name = format!("{}.{nanos:x}", t.denied.reservation.name);
            let event = event(&name, instance, t);
            let sent = client
                .send(
                    "POST",
                    "/api/v1/namespaces/default/events",
                    Bytes::from(event.to_string()),
                )
                .await;
            if matches!(&sent, Ok(r) if r.status == 201) {
                t.name = Some(name);
            }
            sent
        }
    };
    match result {
        Ok(r) if r.status == 200 || r.status == 201 => t.written = count,
        // The Event expired or was deleted: start a new one.
        Ok(r) if r.status == 404 => t.name = None,
        Ok(r) => tracing::warn!(
            status = r.status,
            body = %String::from_utf8_lossy(&r.body),
            "cannot record a ReservationDenied Event"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot record a ReservationDenied Event"),
    }
}

/// A core/v1 Event as client-go's recorder writes one (cluster-scoped objects' Events live in
/// `default`).
fn event(name: &str, instance: &str, t: &Tracked) -> serde_json::Value {
    let r = &t.denied.reservation;
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {
            "apiVersion": crate::kinds::GROUP_VERSION,
            "kind": "NamespaceReservation",
            "name": r.name,
            "uid": r.uid,
            "resourceVersion": r.resource_version,
        },
        "reason": REASON,
        "message": message(&t.denied),
        "type": "Warning",
        "source": {"component": COMPONENT, "host": instance},
        "firstTimestamp": t.first,
        "lastTimestamp": t.last,
        "count": t.count,
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
    })
}
