//! The etcd v3 backend: what lets several replicas serve one API.
//!
//! Writes are etcd transactions, as k8s.io/apiserver's etcd3 store does them: a create puts only
//! when the key's `create_revision` is 0, a guarded update or delete only when its
//! `mod_revision` is the expected one, and the revision etcd gives the transaction is the new
//! resourceVersion. Values are stored without it (it is assigned at commit) and stamped on
//! read by the [`Versioner`].
//!
//! Reads and watches come from a watch cache per resource ([`cache::Cache`], k8s.io/apiserver's
//! cacher): the resource's keys listed once, then kept current by one etcd watch from that
//! revision with `prev_kv`. A consistent read ([`ReadAt::Latest`]) first asks etcd for its
//! current revision with a quorum read (one read for every consistent read waiting at that
//! moment, [`prober::Prober`]), then waits until the cache has caught up with it, requesting an
//! etcd progress notification when no event would get it there, as kube-apiserver 1.31+ does;
//! when the cache does not catch up in time the read goes to etcd. A read at an exact revision
//! older than the cache's window is served by etcd at that revision, until compaction removes it
//! ([`Error::TooOld`], the API's 410).
//!
//! [`compactor`] compacts etcd's history every `--etcd-compaction-interval`, coordinated through
//! the key `compact_rev_key` so that only one replica compacts per interval.

pub mod cache;
pub mod compactor;
pub mod features;
pub mod prober;
#[cfg(feature = "testing")]
pub mod testing;

use crate::index::IndexOptions;
use crate::{
    Error, Filter, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Store, Versioner,
    Watch, WatchStart,
};
use async_trait::async_trait;
use bytes::Bytes;
use cache::{Cache, ConsistentReads};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, TxnOp, TxnOpResponse,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a consistent read waits for events to bring a cache up to date when etcd's progress
/// notifications cannot be trusted, before it reads etcd.
const UNTRUSTED_PROGRESS_WAIT: Duration = Duration::from_millis(50);

/// How long a read waits for a watch cache that has not listed yet.
const CACHE_READY_WAIT: Duration = Duration::from_secs(1);

/// TLS material for talking to etcd (`--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`).
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// PEM bundle of the CAs etcd's serving certificates chain to (the system's when `None`).
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// How to reach etcd and what to keep of it.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Member URLs (`https://10.0.0.1:2379`, `http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// Prefix of every key in etcd (`--etcd-prefix`, `/registry/admission.example.com`).
    pub prefix: String,
    /// Client TLS; required for `https://` endpoints that need a client certificate.
    pub tls: Option<EtcdTls>,
    /// How often to compact etcd's history (`None`: never; kube-apiserver's default is 5 min).
    pub compaction_interval: Option<Duration>,
    /// The store-level key prefixes that get a watch cache each (one per resource:
    /// `apps/`, `namespacereservations/`). Keys under none of them are read from etcd.
    pub resources: Vec<String>,
    /// History window and fan-out of each watch cache.
    pub index: IndexOptions,
    /// The longest a single etcd request may take before the operation fails with
    /// [`Error::Timeout`].
    pub request_timeout: Duration,
    /// How often an idle watch cache asks etcd for a progress notification, so its revision
    /// (and the bookmarks of watches) keeps up with writes elsewhere.
    pub progress_interval: Duration,
    /// Keys per range request when a list reads etcd (5,000 by default).
    pub list_page: usize,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/registry/admission.example.com".into(),
            tls: None,
            compaction_interval: Some(Duration::from_secs(300)),
            resources: Vec::new(),
            index: IndexOptions::default(),
            request_timeout: Duration::from_secs(10),
            progress_interval: Duration::from_secs(5),
            list_page: LIST_PAGE,
        }
    }
}

/// The etcd-backed store. Cloning the client is cheap; every task shares it.
pub struct EtcdStore {
    client: Client,
    keys: Keys,
    /// Whether every member's progress notifications can be trusted ([`features`]).
    progress_safe: Arc<AtomicBool>,
    caches: Vec<Arc<Cache>>,
    /// The newest revision this store has written or read from etcd: a watch from "now"
    /// starts no earlier, so that a client never hears of a write it saw acknowledged before.
    seen: std::sync::atomic::AtomicU64,
    prober: prober::Prober,
    versioner: Arc<dyn Versioner>,
    options: EtcdOptions,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Maps store keys to etcd keys under the prefix and back.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The prefix with one trailing `/`.
    root: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            root: format!("{}/", prefix.trim_end_matches('/')),
        }
    }

    /// The etcd key of a store key.
    pub fn etcd(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.root).into_bytes()
    }

    /// The store key of an etcd key (`None` when it is outside the prefix or not UTF-8).
    pub fn store<'a>(&self, etcd_key: &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(etcd_key.strip_prefix(self.root.as_bytes())?).ok()
    }

    /// The etcd range end of everything under a store prefix (`None`: to the end of the
    /// keyspace under the root).
    fn range_end(&self, prefix: &str) -> Vec<u8> {
        match crate::index::prefix_end(prefix) {
            Some(end) => self.etcd(&end),
            None => crate::index::prefix_end(&self.root)
                .map(String::into_bytes)
                .unwrap_or_else(|| vec![0]),
        }
    }
}

/// Turns an etcd client error into the store's.
pub(crate) fn error(err: etcd_client::Error) -> Error {
    match err {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message().to_string();
            match status.code() {
                tonic::Code::DeadlineExceeded => Error::Timeout(message),
                // tonic reports a failed connection as `Unknown: transport error`.
                tonic::Code::Unavailable
                | tonic::Code::Cancelled
                | tonic::Code::Aborted
                | tonic::Code::Unknown => Error::Unavailable(format!("etcd: {message}")),
                _ if message.contains("request timed out") || message.contains("timed out") => {
                    Error::Timeout(message)
                }
                _ if message.contains("leader")
                    || message.contains("too many requests")
                    || message.contains("not capable") =>
                {
                    Error::Unavailable(format!("etcd: {message}"))
                }
                _ => Error::Backend(format!("etcd: {message}")),
            }
        }
        etcd_client::Error::TransportError(e) => Error::Unavailable(format!("etcd: {e}")),
        etcd_client::Error::IoError(e) => Error::Unavailable(format!("etcd: {e}")),
        other => Error::Backend(format!("etcd: {other}")),
    }
}

/// Whether a request failed before it reached any member (so it cannot have been applied).
fn never_sent(err: &etcd_client::Error) -> bool {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    [
        "tcp connect error",
        "Connection refused",
        "error trying to connect",
        "No route to host",
        "dns error",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Keys per range request when a list reads etcd (a watch cache's list, or a list the cache
/// cannot serve): 5,000 Apps are about 4 MiB.
pub(crate) const LIST_PAGE: usize = 5_000;

/// Which failed attempts of an etcd request [`bounded`] makes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// None: the caller retries (and says why) itself.
    Never,
    /// Those that never reached a member: a write, which may not run twice.
    Unsent,
    /// Every unavailable answer: a read, which may run any number of times.
    Always,
}

/// Runs an etcd request within `limit`, retrying on another member (the client balances over
/// them) while etcd is unavailable, as `retry` allows, as etcd's Go client retries. What still
/// fails when the time is up is [`Error::Timeout`] (or the last [`Error::Unavailable`]). A write
/// that failed after it may have reached a member is [`Error::Timeout`]: its outcome is unknown,
/// so nothing tells the client to send it again.
pub(crate) async fn bounded<T, F, Fut>(limit: Duration, retry: Retry, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        let failure = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "etcd did not answer within {}s",
                    limit.as_secs_f64()
                )));
            }
        };
        let unsent = never_sent(&failure);
        let again = match retry {
            Retry::Never => false,
            Retry::Unsent => unsent,
            Retry::Always => true,
        };
        let mut failure = error(failure);
        if retry == Retry::Unsent && !unsent && matches!(failure, Error::Unavailable(_)) {
            failure = Error::Timeout(format!(
                "{failure}; the write may or may not have been applied"
            ));
        }
        if !again
            || !matches!(failure, Error::Unavailable(_))
            || tokio::time::Instant::now() + pause >= deadline
        {
            return Err(failure);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Keys read from etcd at one revision, request by request.
pub(crate) struct Range {
    /// The client, accepting responses up to [`cache::MAX_MESSAGE`].
    pub kv: etcd_client::KvClient,
    /// The first key (etcd's form).
    pub start: Vec<u8>,
    /// The end of the range (exclusive).
    pub end: Vec<u8>,
    /// The revision to read at; the newest when `None`.
    pub revision: Option<Revision>,
    /// Keys per request.
    pub page: usize,
    /// Time limit of each request ([`bounded`]).
    pub limit: Duration,
    /// Which failed requests are made again.
    pub retry: Retry,
}

impl Range {
    /// Hands every response to `each`, in key order, until `each` returns false or the range
    /// ends; every request after the first reads at the first one's revision, which it returns.
    pub(crate) async fn read(
        mut self,
        mut each: impl FnMut(&etcd_client::GetResponse) -> bool,
    ) -> Result<Revision> {
        let mut at = self.revision;
        loop {
            let mut get = GetOptions::new()
                .with_range(self.end.clone())
                .with_limit(i64::try_from(self.page).unwrap_or(i64::MAX));
            if let Some(r) = at {
                get = get.with_revision(i64::try_from(r).unwrap_or(i64::MAX));
            }
            let response = bounded(self.limit, self.retry, || {
                let (mut kv, start, get) = (self.kv.clone(), self.start.clone(), get.clone());
                async move { kv.get(start, Some(get)).await }
            })
            .await?;
            let revision = match at {
                Some(r) => r,
                None => revision_of(response.header())?,
            };
            at = Some(revision);
            if !each(&response) {
                return Ok(revision);
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    self.start = last.key().to_vec();
                    self.start.push(0);
                }
                _ => return Ok(revision),
            }
        }
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .and_then(|r| Revision::try_from(r).ok())
        .ok_or_else(|| Error::Backend("etcd answered without a revision".into()))
}

fn mod_revision(kv: &etcd_client::KeyValue) -> Revision {
    Revision::try_from(kv.mod_revision()).unwrap_or(0)
}

impl EtcdStore {
    /// Connects to etcd and starts a watch cache per resource, the revision prober and the
    /// compactor. It does not wait for etcd: while etcd cannot be reached the caches retry
    /// (logging why), [`Store::check_health`] fails and reads answer [`Error::Unavailable`].
    pub async fn connect(options: EtcdOptions, versioner: Arc<dyn Versioner>) -> Result<EtcdStore> {
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some(tls) = &options.tls {
            let mut config = etcd_client::TlsOptions::new();
            config = match &tls.ca {
                Some(ca) => config.ca_certificate(etcd_client::Certificate::from_pem(ca)),
                // As Go's TLS client with no RootCAs: the system's trust store.
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(config);
        }
        let client = Client::connect(&options.endpoints, Some(connect.clone()))
            .await
            .map_err(|e| Error::Unavailable(format!("cannot set up the etcd client: {e}")))?;
        let keys = Keys::new(&options.prefix);
        let mut tasks = Vec::new();
        let progress_safe = Arc::new(AtomicBool::new(false));
        tasks.push(tokio::spawn(features::detect(
            options.endpoints.clone(),
            connect,
            progress_safe.clone(),
            Duration::from_secs(10),
        )));
        let (prober, task) =
            prober::Prober::start(client.kv_client(), keys.etcd(""), options.request_timeout);
        tasks.push(task);
        let settings = cache::Settings {
            index: options.index,
            request_timeout: options.request_timeout,
            progress_interval: options.progress_interval,
            list_page: options.list_page.max(1),
            progress_safe: progress_safe.clone(),
        };
        let mut caches = Vec::new();
        for resource in &options.resources {
            let (cache, task) = Cache::start(
                client.clone(),
                keys.clone(),
                resource.clone(),
                versioner.clone(),
                &settings,
            );
            caches.push(cache);
            tasks.push(task);
        }
        if let Some(interval) = options.compaction_interval {
            tasks.push(tokio::spawn(compactor::run(
                client.kv_client(),
                interval,
                options.request_timeout,
            )));
        }
        Ok(EtcdStore {
            client,
            keys,
            progress_safe,
            caches,
            seen: Default::default(),
            prober,
            versioner,
            options,
            tasks,
        })
    }

    /// Waits until every watch cache has listed from etcd (as a replica's first requests
    /// would), failing with [`Error::Initializing`] after `within`.
    pub async fn ready(&self, within: Duration) -> Result<()> {
        for cache in &self.caches {
            cache.ready(within).await?;
        }
        Ok(())
    }

    /// Whether consistent reads are served from the watch caches (every member's progress
    /// notifications can be trusted) rather than from etcd.
    pub fn serves_consistent_reads_from_cache(&self) -> bool {
        self.progress_safe.load(Ordering::Acquire)
    }

    /// Each cached resource's key prefix (`apps/`) and its consistent reads so far.
    pub fn consistent_reads(&self) -> impl Iterator<Item = (&str, &ConsistentReads)> {
        self.caches
            .iter()
            .map(|c| (c.prefix(), c.consistent_reads()))
    }

    /// How many consistent reads went to etcd because a cache could not be shown current.
    pub fn consistent_reads_from_etcd(&self) -> u64 {
        self.consistent_reads()
            .map(|(_, r)| r.count(true, true) + r.count(true, false))
            .sum()
    }

    /// The watch cache that holds a key or a prefix, if any (the longest matching resource).
    fn cache_for(&self, key: &str) -> Option<&Arc<Cache>> {
        self.caches
            .iter()
            .filter(|c| key.starts_with(c.prefix()))
            .max_by_key(|c| c.prefix().len())
    }

    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(cache::MAX_MESSAGE)
    }

    fn stamp(&self, key: Arc<str>, value: &[u8], revision: Revision) -> KeyValue {
        self.seen.fetch_max(revision, Ordering::AcqRel);
        KeyValue {
            value: self.versioner.stamp(&key, value, revision),
            key,
            revision,
        }
    }

    /// A value as etcd has it, stamped.
    fn decode(&self, kv: &etcd_client::KeyValue) -> Option<KeyValue> {
        let key = self.keys.store(kv.key())?;
        Some(self.stamp(Arc::from(key), kv.value(), mod_revision(kv)))
    }

    /// Waits until `cache` reflects everything committed before this call (a consistent
    /// read). `false` when it could not catch up in time: read etcd instead. Where progress
    /// notifications cannot be trusted only events can bring the cache there, so it waits
    /// briefly.
    async fn catch_up(&self, cache: &Cache) -> Result<bool> {
        let revision = self.prober.current_revision().await?;
        Ok(self.reach(cache, revision).await)
    }

    /// Waits until `cache` has `revision`; `false` when it has not in time. Where progress
    /// notifications cannot be trusted only events can bring the cache there, so it waits
    /// briefly.
    async fn reach(&self, cache: &Cache, revision: Revision) -> bool {
        let wait = if self.progress_safe.load(Ordering::Acquire) {
            self.options.index.freshness_wait
        } else {
            UNTRUSTED_PROGRESS_WAIT
        };
        cache.wait_for(revision, wait).await
    }

    /// One key from etcd.
    async fn get_from_etcd(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<Option<KeyValue>> {
        let mut options = GetOptions::new();
        if let Some(r) = revision {
            options = options.with_revision(r as i64);
        }
        let kv = self.kv();
        let k = self.keys.etcd(key);
        let response = bounded(self.options.request_timeout, Retry::Always, || {
            let (mut kv, k, options) = (kv.clone(), k.clone(), options.clone());
            async move { kv.get(k, Some(options)).await }
        })
        .await
        .map_err(|e| compacted_as_too_old(e, revision))?;
        Ok(response.kvs().first().and_then(|kv| self.decode(kv)))
    }

    /// A page from etcd at a revision (the newest when `None`), read in requests of at most
    /// [`LIST_PAGE`] keys at that revision; with a filter, requests continue until the limit
    /// is met, as k8s.io/apiserver's etcd3 store does.
    async fn list_from_etcd(
        &self,
        options: &ListOptions,
        revision: Option<Revision>,
        filter: Option<Filter<'_>>,
    ) -> Result<ListResult> {
        let start = match options.start_after.as_deref() {
            Some(after) if after >= options.prefix.as_str() => {
                let mut k = self.keys.etcd(after);
                k.push(0);
                k
            }
            _ => self.keys.etcd(&options.prefix),
        };
        let limit = options.limit.filter(|l| *l > 0);
        // One more than the page tells whether more remain; with a filter, read in larger steps.
        let page = match limit {
            Some(l) if filter.is_none() => l.saturating_add(1),
            Some(l) => l.max(256),
            None => self.options.list_page,
        }
        .clamp(1, self.options.list_page.max(1));
        let mut result = ListResult::default();
        let mut last_examined: Option<Vec<u8>> = None;
        let mut full = false;
        let range = Range {
            kv: self.kv(),
            start,
            end: self.keys.range_end(&options.prefix),
            revision,
            page,
            limit: self.options.request_timeout,
            retry: Retry::Always,
        };
        let at = range
            .read(|response| {
                // Keys from this response's start to the end of the range, at the revision.
                let count = usize::try_from(response.count()).unwrap_or(0);
                crate::long_running_if(response.kvs().len() >= 256, || {
                    for (taken, item) in response.kvs().iter().enumerate() {
                        if limit.is_some_and(|l| result.items.len() >= l) {
                            // This key shows more remain.
                            result.continue_after = last_examined
                                .as_deref()
                                .and_then(|k| self.keys.store(k))
                                .map(str::to_string);
                            if filter.is_none() {
                                result.remaining = Some(count.saturating_sub(taken) as u64);
                            }
                            full = true;
                            return false;
                        }
                        result.examined += 1;
                        last_examined = Some(item.key().to_vec());
                        if let Some(value) = self.decode(item)
                            && filter.is_none_or(|f| f(&value))
                        {
                            result.items.push(value);
                        }
                    }
                    true
                })
            })
            .await
            .map_err(|e| compacted_as_too_old(e, revision))?;
        result.revision = at;
        if !full && filter.is_none() {
            result.remaining = Some(0);
        }
        Ok(result)
    }

    /// A transaction: retried only when it cannot have reached etcd.
    async fn txn(&self, txn: etcd_client::Txn) -> Result<etcd_client::TxnResponse> {
        let kv = self.kv();
        bounded(self.options.request_timeout, Retry::Unsent, || {
            let (mut kv, txn) = (kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
    }

    async fn ready_cache(&self, key: &str) -> Result<Option<&Arc<Cache>>> {
        match self.cache_for(key) {
            Some(cache) => {
                // Not long: readiness keeps traffic away from a replica whose caches are not
                // loaded, and kube-apiserver answers such requests 429 at once.
                cache.ready(CACHE_READY_WAIT).await?;
                Ok(Some(cache))
            }
            None => Ok(None),
        }
    }
}

/// etcd's "required revision has been compacted" is the store's [`Error::TooOld`].
fn compacted_as_too_old(err: Error, revision: Option<Revision>) -> Error {
    match (&err, revision) {
        (Error::Backend(m) | Error::Unavailable(m), Some(requested)) if m.contains("compacted") => {
            Error::TooOld {
                requested,
                oldest: requested + 1,
            }
        }
        _ => err,
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for cache in &self.caches {
            cache.close();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let k = self.keys.etcd(key);
        let txn = etcd_client::Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value.to_vec(), None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists(key.to_string()));
        }
        let revision = revision_of(response.header())?;
        Ok(self.stamp(Arc::from(key), &value, revision))
    }

    async fn get(&self, key: &str, at: ReadAt) -> Result<Option<KeyValue>> {
        let Some(cache) = self.ready_cache(key).await? else {
            return self.get_from_etcd(key, None).await;
        };
        match at {
            ReadAt::Any => Ok(cache.index().get(key)),
            ReadAt::Latest => {
                let (read, fallback) = match self.catch_up(cache).await {
                    Ok(true) => (Ok(cache.index().get(key)), false),
                    Ok(false) => (self.get_from_etcd(key, None).await, true),
                    Err(e) => (Err(e), false),
                };
                cache.consistent_reads().record(fallback, read.is_ok());
                read
            }
            ReadAt::NotOlderThan(r) | ReadAt::Exact(r) => {
                cache.require(r, self.options.index.freshness_wait).await?;
                Ok(cache.index().get(key))
            }
        }
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        let k = self.keys.etcd(key);
        let txn = etcd_client::Txn::new()
            .when([Compare::mod_revision(
                k.clone(),
                CompareOp::Equal,
                expected as i64,
            )])
            .and_then([TxnOp::put(k.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(k, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(guard_failed(key, expected, &response));
        }
        let revision = revision_of(response.header())?;
        Ok(self.stamp(Arc::from(key), &value, revision))
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<(KeyValue, Revision)> {
        let k = self.keys.etcd(key);
        let txn = etcd_client::Txn::new()
            .when([Compare::mod_revision(
                k.clone(),
                CompareOp::Equal,
                expected as i64,
            )])
            .and_then([TxnOp::delete(
                k.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(guard_failed(key, expected, &response));
        }
        let revision = revision_of(response.header())?;
        self.seen.fetch_max(revision, Ordering::AcqRel);
        let previous = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().and_then(|kv| self.decode(kv)),
            _ => None,
        });
        let previous = previous.ok_or_else(|| {
            Error::Backend(format!(
                "etcd deleted {key:?} but returned no previous value"
            ))
        })?;
        Ok((previous, revision))
    }

    async fn list(&self, options: ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult> {
        let Some(cache) = self.ready_cache(&options.prefix).await? else {
            let revision = match options.at {
                ReadAt::Exact(r) => Some(r),
                _ => None,
            };
            return self.list_from_etcd(&options, revision, filter).await;
        };
        let from_cache = |options: &ListOptions| cache.index().list_long_running(options, filter);
        match options.at {
            ReadAt::Any => from_cache(&options),
            ReadAt::Latest => {
                let (read, fallback) = match self.catch_up(cache).await {
                    Ok(true) => (from_cache(&options), false),
                    Ok(false) => (self.list_from_etcd(&options, None, filter).await, true),
                    Err(e) => (Err(e), false),
                };
                cache.consistent_reads().record(fallback, read.is_ok());
                read
            }
            ReadAt::NotOlderThan(r) => {
                cache.require(r, self.options.index.freshness_wait).await?;
                from_cache(&options)
            }
            ReadAt::Exact(r) => {
                if r < cache.index().oldest() {
                    // Before the cache's window: etcd keeps history until it is compacted.
                    return self.list_from_etcd(&options, Some(r), filter).await;
                }
                cache.require(r, self.options.index.freshness_wait).await?;
                from_cache(&options)
            }
        }
    }

    async fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch> {
        match self.ready_cache(prefix).await? {
            Some(cache) => {
                // A snapshot is a consistent read: it has every write acknowledged before it.
                // When the cache cannot be shown current (older etcd), it starts from what the
                // cache has: it still misses nothing after that. Other watches start from the
                // cache without asking etcd, as kube's cacher serves them (so they keep working
                // while etcd has no quorum).
                if start == WatchStart::Snapshot
                    && !self.catch_up(cache).await?
                    && self.progress_safe.load(Ordering::Acquire)
                {
                    return Err(Error::Timeout(format!(
                        "the watch cache of {} did not catch up with etcd",
                        cache.prefix()
                    )));
                }
                // Other watches see the cache no older than what this store has acknowledged
                // (the cache hears of its own writes a moment later): "now" is after them, and
                // a start they pushed out of the window is too old, as on the embedded stores.
                // When the cache does not get there in time, it is what the cache has.
                if start != WatchStart::Snapshot {
                    self.reach(cache, self.seen.load(Ordering::Acquire)).await;
                }
                cache.index().watch(prefix, start)
            }
            None => Err(Error::Backend(format!(
                "no watch cache holds {prefix:?}: only resources can be watched"
            ))),
        }
    }

    fn count(&self, prefix: &str) -> Option<u64> {
        self.cache_for(prefix)
            .map(|c| c.index().count(prefix) as u64)
    }

    fn current_revision(&self) -> Revision {
        self.caches
            .iter()
            .map(|c| c.index().revision())
            .max()
            .unwrap_or(crate::FIRST_REVISION)
    }

    fn oldest_revision(&self) -> Revision {
        self.caches
            .iter()
            .map(|c| c.index().oldest())
            .max()
            .unwrap_or(crate::FIRST_REVISION)
    }

    async fn check_health(&self) -> Result<()> {
        // kube-apiserver's etcd check: a quorum read of `<prefix>/health`.
        let kv = self.kv();
        let key = self.keys.etcd("health");
        bounded(Duration::from_secs(2), Retry::Always, || {
            let (mut kv, key) = (kv.clone(), key.clone());
            async move { kv.get(key, None).await }
        })
        .await
        .map(|_| ())
    }
}

/// Why a guarded write did not apply: the key is gone, or at another revision.
fn guard_failed(key: &str, expected: Revision, response: &etcd_client::TxnResponse) -> Error {
    let current = response.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => Some(g.kvs().first().map(mod_revision)),
        _ => None,
    });
    match current.flatten() {
        None => Error::NotFound(key.to_string()),
        Some(actual) => Error::Conflict {
            key: key.to_string(),
            expected,
            actual,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_under_the_prefix() {
        let k = Keys::new("/registry/admission.example.com/");
        assert_eq!(
            k.etcd("apps/a/b"),
            b"/registry/admission.example.com/apps/a/b"
        );
        assert_eq!(
            k.store(b"/registry/admission.example.com/apps/a/b"),
            Some("apps/a/b")
        );
        assert_eq!(k.store(b"/registry/other/apps"), None);
        assert_eq!(
            k.range_end("apps/"),
            b"/registry/admission.example.com/apps0"
        );
        assert_eq!(k.range_end(""), b"/registry/admission.example.com0");
    }
}
