//! Watch streams: chunked `WatchEvent`s in the negotiated representation (JSON objects, Tables,
//! `PartialObjectMetadata`), from a resourceVersion or from the current state, with selectors,
//! bookmarks, the initial-events-end bookmark of streaming lists, server-chosen timeouts, and a
//! 410 `ERROR` event when the requested history is gone.
//!
//! Bookmarks follow kube-apiserver's cacher: one every bookmark interval and one 2 s before the
//! watch's deadline (`cacheWatcher.nextBookmarkTime`), each carrying the resource's current
//! revision as the watch cache knows it, so a watcher that sees few events (a namespace, a
//! selector) still resumes from a recent resourceVersion. A bookmark never jumps over an event
//! this watcher has yet to receive: the revision is read first, then everything queued for
//! the watcher is sent, then the bookmark at the larger of the two.

use super::Call;
use super::read::{parse_resource_version, selected};
use crate::api::error::{ApiError, ApiResult, StatusBody};
use crate::api::negotiation::{Output, Target, negotiate};
use crate::api::query::{ListOptions, VersionMatch};
use crate::api::render::{self, IncludeObject};
use crate::kinds::{Resource, ServedVersion};
use crate::object::meta;
use crate::registry::codec;
use crate::server::state::AppState;
use crate::watch_cache::{CachedEvent, Frame, RegisterError, Subscription, WatchCache, frame};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use rand::Rng;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use storage::{EventKind, KeyValue, ReadAt, WatchStart};
use tokio::time::Instant;

/// Most bytes of queued events sent in one write.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Renders watch events for one client.
pub struct EventEncoder {
    resource: Arc<Resource>,
    /// The version objects are served in.
    version: &'static ServedVersion,
    output: Output,
    include: IncludeObject,
    /// Table column definitions go only in the first Table event.
    columns_sent: bool,
}

impl EventEncoder {
    /// An encoder for a negotiated representation.
    pub fn new(
        resource: Arc<Resource>,
        version: &'static ServedVersion,
        output: Output,
        include: IncludeObject,
    ) -> EventEncoder {
        EventEncoder {
            resource,
            version,
            output,
            include,
            columns_sent: false,
        }
    }

    /// An `ADDED`/`MODIFIED`/`DELETED` event for an object as stored.
    pub fn object(&mut self, event_type: &str, stored: &Bytes) -> ApiResult<Bytes> {
        if self.output == Output::Json {
            let served = codec::serve(&self.resource, self.version, stored)?;
            return Ok(frame(event_type, &served));
        }
        let obj: Value =
            serde_json::from_slice(stored).map_err(|e| ApiError::internal(e.to_string()))?;
        self.value(event_type, &obj)
    }

    /// An event for an already parsed object, as stored.
    pub fn value(&mut self, event_type: &str, stored: &Value) -> ApiResult<Bytes> {
        let mut obj = stored.clone();
        codec::serve_value(&self.resource, self.version, &mut obj);
        let rendered = match self.output {
            Output::Json | Output::Yaml => obj,
            Output::Metadata { beta } => render::partial_metadata(&obj, beta),
            Output::Table { beta } => {
                let t = render::table(
                    &self.resource,
                    std::slice::from_ref(&obj),
                    json!({"resourceVersion": meta::resource_version(&obj)}),
                    self.include,
                    beta,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                t
            }
        };
        Ok(frame(
            event_type,
            &serde_json::to_vec(&rendered).unwrap_or_default(),
        ))
    }

    /// A `BOOKMARK` at a revision, optionally marking the end of the initial events.
    pub fn bookmark(&self, revision: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = match self.output {
            Output::Json | Output::Yaml => json!({
                "kind": self.resource.kind.kind,
                "apiVersion": self.version.group_version(),
                "metadata": metadata,
            }),
            Output::Metadata { beta } => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
                "metadata": metadata,
            }),
            Output::Table { beta } => json!({
                "kind": "Table",
                "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
                "metadata": {"resourceVersion": revision.to_string()},
                "columnDefinitions": null,
                "rows": [],
            }),
        };
        frame("BOOKMARK", &serde_json::to_vec(&object).unwrap_or_default())
    }

    /// An `ERROR` event carrying a `Status`.
    pub fn error(&self, err: &ApiError) -> Bytes {
        frame(
            "ERROR",
            &serde_json::to_vec(&StatusBody(err.status())).unwrap_or_default(),
        )
    }
}

/// The parsed watch request.
pub struct WatchPlan {
    /// Where the storage watch starts.
    pub start: WatchStart,
    /// Send the initial state as ADDED events.
    pub initial: bool,
    /// Mark the end of the initial events with a bookmark.
    pub initial_end_bookmark: bool,
    /// Send periodic bookmarks.
    pub bookmarks: bool,
    /// When the stream ends (zero: at once, for a negative `timeoutSeconds`).
    pub timeout: Duration,
    /// Time between bookmarks.
    pub bookmark_interval: Duration,
    /// The revision asked for (0 when none).
    pub requested: u64,
}

/// Decides how a watch starts from its options (kube-apiserver's `sendInitialEvents` defaults).
pub fn plan(
    options: &ListOptions,
    min_request_timeout: Duration,
    bookmark_interval: Duration,
) -> ApiResult<WatchPlan> {
    let rv = parse_resource_version(&options.resource_version)?;
    let legacy_initial = options.resource_version.is_empty() || options.resource_version == "0";
    let initial = options.send_initial_events.unwrap_or(legacy_initial);
    let start = if initial {
        WatchStart::Snapshot
    } else if rv == 0 {
        WatchStart::Now
    } else {
        WatchStart::After(rv)
    };
    // `handleWatch`: an absent or zero timeoutSeconds gets a random time in
    // [min-request-timeout, 2×min-request-timeout); a negative one has already passed.
    let timeout = match options.timeout_seconds {
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()),
        Some(s) if s < 0 => Duration::ZERO,
        _ => {
            let min = min_request_timeout.as_secs_f64().max(1.0);
            Duration::from_secs_f64(rand::rng().random_range(min..2.0 * min))
        }
    };
    Ok(WatchPlan {
        start,
        initial,
        initial_end_bookmark: options.send_initial_events == Some(true)
            && options.version_match == VersionMatch::NotOlderThan
            && options.allow_bookmarks,
        bookmarks: options.allow_bookmarks,
        timeout,
        bookmark_interval,
        requested: rv,
    })
}

/// How long before its deadline a watch gets its last bookmark (kube-apiserver's cacher).
const DEADLINE_BOOKMARK_LEAD: Duration = Duration::from_secs(2);

/// When the next bookmark is due (`cacheWatcher.nextBookmarkTime`): a bookmark interval from
/// now, or 2 s before the deadline if that is earlier; none once that moment has passed.
fn next_bookmark_time(now: Instant, interval: Duration, deadline: Instant) -> Option<Instant> {
    let heartbeat = now + interval;
    let before_deadline = deadline.checked_sub(DEADLINE_BOOKMARK_LEAD)?;
    let at = heartbeat.min(before_deadline);
    (at > now).then_some(at)
}

struct Stream {
    events: Option<Subscription>,
    /// The resource's fan-out: its revision is what bookmarks carry.
    cache: Arc<WatchCache>,
    initial: VecDeque<KeyValue>,
    pending: VecDeque<Bytes>,
    encoder: EventEncoder,
    options: ListOptions,
    plan: WatchPlan,
    deadline: Instant,
    /// When the next bookmark is due (`None`: no more bookmarks).
    next_bookmark: Option<Instant>,
    /// Newest revision delivered (or the start).
    revision: u64,
    done: bool,
}

impl Stream {
    /// The event a change is for this watcher, given its selectors (`None`: not visible).
    fn classify(
        &self,
        kind: EventKind,
        now: Option<&[u8]>,
        before: Option<&[u8]>,
    ) -> Option<&'static str> {
        let sel = |b: Option<&[u8]>| {
            b.is_some_and(|b| selected(b, &self.options.labels, &self.options.fields))
        };
        match (kind, sel(now), sel(before)) {
            (EventKind::Added, true, _) => Some("ADDED"),
            (EventKind::Modified, true, true) => Some("MODIFIED"),
            (EventKind::Modified, true, false) => Some("ADDED"),
            (EventKind::Modified, false, true) => Some("DELETED"),
            (EventKind::Deleted, _, true) => Some("DELETED"),
            _ => None,
        }
    }

    fn encode_event(&mut self, cached: &CachedEvent) -> ApiResult<Option<Bytes>> {
        let event = &cached.event;
        let before = event.prev.as_ref().map(|p| p.value.as_ref());
        let Some(t) = self.classify(event.kind, event.value.as_deref(), before) else {
            return Ok(None);
        };
        let f = match t {
            "ADDED" => Frame::Added,
            "MODIFIED" => Frame::Modified,
            _ => Frame::Deleted,
        };
        if self.encoder.output == Output::Json {
            let (resource, version) = (&self.encoder.resource, self.encoder.version);
            return Ok(cached.json_frame(f, version.index(), &|stored| {
                codec::serve(resource, version, stored).ok()
            }));
        }
        let Some(object) = cached.object() else {
            return Ok(None);
        };
        let obj: Value =
            serde_json::from_slice(&object).map_err(|e| ApiError::internal(e.to_string()))?;
        self.encoder.value(t, &obj).map(Some)
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Some(b);
            }
            if self.done {
                return None;
            }
            if let Some(kv) = self.initial.pop_front() {
                if self.initial.is_empty() && self.plan.initial_end_bookmark {
                    // Served right after this last initial event.
                    self.pending
                        .push_back(self.encoder.bookmark(self.revision, true));
                }
                if selected(&kv.value, &self.options.labels, &self.options.fields) {
                    match self.encoder.object("ADDED", &kv.value) {
                        Ok(b) => return Some(b),
                        Err(e) => {
                            self.done = true;
                            return Some(self.encoder.error(&e));
                        }
                    }
                }
                continue;
            }
            let Some(sub) = self.events.as_mut() else {
                self.done = true;
                continue;
            };
            let bookmark_at = match self.next_bookmark {
                Some(at) if self.plan.bookmarks => at.min(self.deadline),
                _ => self.deadline,
            };
            tokio::select! {
                event = sub.events.recv() => match event {
                    Some(event) => {
                        let following = self.events.as_mut().and_then(|s| s.events.try_recv().ok());
                        let Some(following) = following else {
                            // The common case, one event: its shared frame as it is, no copy.
                            self.revision = self.revision.max(event.event.revision);
                            match self.encode_event(&event) {
                                Ok(Some(b)) => return Some(b),
                                Ok(None) => continue,
                                Err(e) => {
                                    self.done = true;
                                    return Some(self.encoder.error(&e));
                                }
                            }
                        };
                        // Whatever else is already queued goes out in the same write: a
                        // watcher that fell behind catches up with fewer, larger chunks.
                        let mut batch = BytesMut::new();
                        let mut next = Some(event);
                        let mut after = Some(following);
                        while let Some(event) = next.take() {
                            if !self.push_event(&event, &mut batch) {
                                return Some(batch.freeze());
                            }
                            next = after.take();
                            if next.is_none() && batch.len() < MAX_BATCH_BYTES {
                                next = self.events.as_mut().and_then(|s| s.events.try_recv().ok());
                            }
                        }
                        if batch.is_empty() {
                            continue;
                        }
                        return Some(batch.freeze());
                    }
                    // Closed by the fan-out (too slow, or shutting down): the client re-watches.
                    None => self.done = true,
                },
                _ = tokio::time::sleep_until(bookmark_at) => {
                    let now = Instant::now();
                    if now >= self.deadline {
                        self.done = true;
                        continue;
                    }
                    self.next_bookmark =
                        next_bookmark_time(now, self.plan.bookmark_interval, self.deadline);
                    if let Some(b) = self.bookmark() {
                        return Some(b);
                    }
                }
            }
        }
    }

    /// Encodes one event into `batch`; false when the stream must end (an encoding error,
    /// sent as an `ERROR` event).
    fn push_event(&mut self, event: &CachedEvent, batch: &mut BytesMut) -> bool {
        self.revision = self.revision.max(event.event.revision);
        match self.encode_event(event) {
            Ok(Some(b)) => batch.extend_from_slice(&b),
            Ok(None) => {}
            Err(e) => {
                self.done = true;
                batch.extend_from_slice(&self.encoder.error(&e));
                return false;
            }
        }
        true
    }

    /// A `BOOKMARK` at the resource's current revision, after every event queued for this
    /// watcher; `None` when the watcher was closed meanwhile (events may be lost: no bookmark
    /// may claim they were delivered) or the stream ended.
    fn bookmark(&mut self) -> Option<Bytes> {
        // Everything at or below this revision that concerns the watcher is in its queue now:
        // the fan-out queues an event before it publishes the event's revision.
        let current = self.cache.revision();
        let mut batch = BytesMut::new();
        loop {
            let sub = self.events.as_mut()?;
            match sub.events.try_recv() {
                Ok(event) => {
                    if !self.push_event(&event, &mut batch) {
                        return Some(batch.freeze());
                    }
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    self.done = true;
                    return (!batch.is_empty()).then(|| batch.freeze());
                }
            }
        }
        self.revision = self.revision.max(current);
        batch.extend_from_slice(&self.encoder.bookmark(self.revision, false));
        Some(batch.freeze())
    }
}

/// A watch request.
pub async fn watch(state: &AppState, call: &Call) -> ApiResult<Response> {
    let options = ListOptions::parse(&call.query, &call.resource)?.for_name(&call.info.name)?;
    let output = negotiate(call.header("accept"), Target::Watch)?;
    let include = IncludeObject::parse(call.query.first("includeObject"))?;
    let plan = plan(&options, state.min_request_timeout, state.bookmark_interval)?;
    // The state initial events come from: a consistent read, any (legacy `0`), or one not
    // older than the revision a streaming list asked for.
    let initial_at = match (plan.requested, options.resource_version.as_str()) {
        (0, "0") => ReadAt::Any,
        (0, _) => ReadAt::Latest,
        (rv, _) => ReadAt::NotOlderThan(rv),
    };
    let encoder = EventEncoder::new(call.resource.clone(), call.version, output, include);
    let prefix = crate::registry::prefix(&call.resource, &call.info.namespace);
    let cache = state.watch_cache(&call.resource)?;
    if plan.timeout.is_zero() {
        // The deadline has passed before the watch began: 200, and the stream ends at once.
        return Ok(watch_response(Body::empty()));
    }
    let now = Instant::now();
    let deadline = now + plan.timeout;
    let mut stream = Stream {
        events: None,
        cache: cache.clone(),
        initial: VecDeque::new(),
        pending: VecDeque::new(),
        encoder,
        options,
        deadline,
        next_bookmark: next_bookmark_time(now, plan.bookmark_interval, deadline),
        revision: cache.revision(),
        plan,
        done: false,
    };
    let (start, initial) = match stream.plan.start {
        WatchStart::Snapshot => {
            let page = state
                .registry
                .list(
                    &call.resource,
                    &call.info.namespace,
                    initial_at,
                    None,
                    None,
                    None,
                )
                .await
                .map_err(|e| ApiError::from_storage(call.resource.kind, "", e))?;
            (page.revision, page.items)
        }
        WatchStart::After(rv) => (rv, Vec::new()),
        WatchStart::Now => (state.registry.current_revision(), Vec::new()),
    };
    stream.revision = start.max(stream.plan.requested);
    match cache.register(&prefix, start) {
        Ok(sub) => {
            if stream.plan.initial && initial.is_empty() && stream.plan.initial_end_bookmark {
                stream
                    .pending
                    .push_back(stream.encoder.bookmark(stream.revision, true));
            }
            stream.initial = initial.into();
            stream.events = Some(sub);
        }
        Err(RegisterError::TooOld { requested, oldest }) => {
            let err =
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"));
            stream.pending.push_back(stream.encoder.error(&err));
            stream.done = true;
        }
        Err(RegisterError::Initializing) => {
            return Err(ApiError::too_many_requests(
                "storage is (re)initializing",
                1,
            ));
        }
        Err(RegisterError::Stopped) => {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
    }
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        s.next()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), s))
    });
    Ok(watch_response(Body::from_stream(body)))
}

/// A 200 with a watch stream's headers.
fn watch_response(body: Body) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    // kube-apiserver names a JSON stream by its serializer's media type alone (`;stream=watch`
    // is added for the other serializers only): see crd-oracle-versions-cel/16.
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::query::Query;

    fn plan_for(q: &str) -> WatchPlan {
        plan(
            &ListOptions::parse_any(&Query::parse(q)).unwrap(),
            Duration::from_secs(1800),
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[test]
    fn start_points_follow_kube_defaults() {
        assert_eq!(plan_for("watch=1").start, WatchStart::Snapshot);
        assert_eq!(
            plan_for("watch=1&resourceVersion=0").start,
            WatchStart::Snapshot
        );
        assert_eq!(
            plan_for("watch=1&resourceVersion=42").start,
            WatchStart::After(42)
        );
        let streaming = plan_for(
            "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        );
        assert_eq!(streaming.start, WatchStart::Snapshot);
        assert!(streaming.initial_end_bookmark);
        assert_eq!(
            plan_for("watch=1&timeoutSeconds=5").timeout,
            Duration::from_secs(5)
        );
        let t = plan_for("watch=1").timeout.as_secs();
        assert!((1800..3600).contains(&t), "{t}");
    }

    /// A stream over a real fan-out, registered for `prefix` after `after`.
    fn stream_for(cache: &Arc<WatchCache>, prefix: &str, after: u64) -> Stream {
        let app = crate::test_support::resource("App");
        let plan = plan_for("watch=1&allowWatchBookmarks=true");
        Stream {
            events: Some(cache.register(prefix, after).unwrap()),
            cache: cache.clone(),
            initial: VecDeque::new(),
            pending: VecDeque::new(),
            encoder: EventEncoder::new(
                app,
                &crate::kinds::V1,
                Output::Json,
                IncludeObject::Metadata,
            ),
            options: ListOptions::parse_any(&Query::parse("")).unwrap(),
            deadline: Instant::now() + plan.timeout,
            next_bookmark: None,
            revision: after,
            plan,
            done: false,
        }
    }

    async fn put(store: &storage::MemoryStore, key: &str) -> u64 {
        use storage::Store;
        store
            .create(key, Bytes::from_static(br#"{"metadata":{"name":"x"}}"#))
            .await
            .unwrap()
            .revision
    }

    fn lines(bytes: &Bytes) -> Vec<(String, u64)> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let e: Value = serde_json::from_slice(l).unwrap();
                let rv = e["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                (e["type"].as_str().unwrap().to_string(), rv)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_bookmark_follows_every_queued_event_at_the_cache_revision() {
        let store = Arc::new(storage::MemoryStore::new(
            Default::default(),
            Arc::new(crate::object::versioner::ResourceVersioner),
        ));
        let cache = WatchCache::start(
            store.clone(),
            &crate::test_support::resource("App"),
            100,
            64,
        );
        cache.wait_ready().await;
        let start = cache.revision();
        let mut ns_a = stream_for(&cache, "apps/a/", start);
        let mut all = stream_for(&cache, "apps/", start);
        let first = put(&store, "apps/a/x").await;
        let mut last = 0;
        for i in 0..3 {
            last = put(&store, &format!("apps/b/{i}")).await;
        }
        while cache.revision() < last {
            tokio::task::yield_now().await;
        }
        // Queued events go first; the bookmark is at the resource's revision.
        let got = lines(&ns_a.bookmark().unwrap());
        assert_eq!(
            got,
            [("ADDED".to_string(), first), ("BOOKMARK".to_string(), last)]
        );
        let got = lines(&all.bookmark().unwrap());
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], ("BOOKMARK".to_string(), last));
        assert!(got[..4].iter().all(|(t, rv)| t == "ADDED" && *rv <= last));
        // Nothing new: the same revision again.
        assert_eq!(
            lines(&ns_a.bookmark().unwrap()),
            [("BOOKMARK".to_string(), last)]
        );
        // A watcher the fan-out closed (too slow, stopping) gets no bookmark.
        cache.stop();
        assert!(all.bookmark().is_none());
        assert!(all.done);
    }

    #[test]
    fn bookmarks_are_scheduled_as_kube_cacher_schedules_them() {
        let now = Instant::now();
        let s = Duration::from_secs;
        // The interval, or 2 s before the deadline when that comes first.
        assert_eq!(
            next_bookmark_time(now, s(60), now + s(300)),
            Some(now + s(60))
        );
        assert_eq!(next_bookmark_time(now, s(60), now + s(5)), Some(now + s(3)));
        // Nothing once the deadline is 2 s away or less.
        assert_eq!(next_bookmark_time(now, s(60), now + s(2)), None);
        assert_eq!(next_bookmark_time(now + s(3), s(60), now + s(5)), None);
    }

    #[test]
    fn timeouts_follow_handle_watch() {
        assert_eq!(
            plan_for("watch=1&timeoutSeconds=-1").timeout,
            Duration::ZERO
        );
        for q in ["watch=1", "watch=1&timeoutSeconds=0"] {
            let t = plan_for(q).timeout.as_secs();
            assert!((1800..3600).contains(&t), "{q}: {t}");
        }
    }

    #[test]
    fn bookmarks_carry_kind_and_api_version() {
        let app = crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "App")
            .unwrap();
        let enc = EventEncoder::new(
            app,
            &crate::kinds::V1,
            Output::Json,
            IncludeObject::Metadata,
        );
        let b: Value = serde_json::from_slice(&enc.bookmark(225, true)).unwrap();
        assert_eq!(
            b,
            json!({"type": "BOOKMARK", "object": {"kind": "App", "apiVersion": "admission.example.com/v1",
                "metadata": {"resourceVersion": "225", "annotations": {"k8s.io/initial-events-end": "true"}}}})
        );
    }
}
