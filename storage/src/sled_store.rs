//! The durable backend: sled 0.34 under one writer thread with group commit.
//!
//! Writers queue their writes; the writer thread takes everything queued (up to a batch limit),
//! checks it against the index, applies it to sled as one atomic batch, `fsync`s once for the
//! whole group, and only then makes the batch visible in the index and answers the writers.
//! Reads and watches are served from the index and never touch sled, so no sled call ever runs
//! on an async worker thread.
//!
//! On disk, in sled's default tree: `d<key>` holds `revision (8 bytes, big-endian) ++ value`
//! and `m/revision` the store revision, written in the same batch as the data it versions
//! (a deletion leaves no data behind, but must still advance the revision). The value is stored
//! as served, already stamped with its revision (the writer assigns revisions before it writes),
//! so loading needs no stamping.

use crate::index::{Index, IndexOptions, Outcome, Write};
use crate::memory::{expect_deleted, expect_written};
use crate::{
    Error, Filter, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Store, Versioner,
    Watch, WatchStart,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const DATA_PREFIX: &[u8] = b"d";
const META_REVISION: &[u8] = b"m/revision";
/// The [`Versioner::fingerprint`] the stored values were last stamped under.
const META_FINGERPRINT: &[u8] = b"m/fingerprint";

/// Tuning of the sled backend.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// Bytes of sled's page cache. Reads are served from the index, so this mostly buffers writes.
    pub cache_capacity: u64,
    /// Most writes committed with one `fsync`.
    pub max_batch: usize,
    /// Writes waiting for the writer thread before writers wait for room.
    pub queue: usize,
    /// History and fan-out sizes of the index.
    pub index: IndexOptions,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_capacity: 1024 * 1024,
            max_batch: 1024,
            queue: 8192,
            index: IndexOptions::default(),
        }
    }
}

struct Request {
    write: Write,
    reply: oneshot::Sender<Result<Outcome>>,
}

/// A store persisted in a sled database directory.
pub struct SledStore {
    index: Arc<Index>,
    /// Where writes go; `None` once the store is closed.
    queue: parking_lot::RwLock<Option<mpsc::Sender<Request>>>,
    writer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The store directory (for the snapshot written at close).
    dir: std::path::PathBuf,
    fingerprint: String,
}

impl SledStore {
    /// Opens (or creates) the store in `path` and loads it into the index; values are stamped by
    /// `versioner`. This blocks on disk I/O: call it from a blocking context (`spawn_blocking`
    /// or before the runtime starts).
    pub fn open(
        path: &Path,
        options: SledOptions,
        versioner: Arc<dyn Versioner>,
    ) -> Result<SledStore> {
        let started = std::time::Instant::now();
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_capacity)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None);
        let fingerprint = versioner.fingerprint();
        let db = config.open()?;
        let revision = match db.get(META_REVISION)? {
            Some(raw) => decode_revision(&raw)?,
            None => crate::FIRST_REVISION,
        };
        let stamped_under = db.get(META_FINGERPRINT)?.map(|f| f.to_vec());
        // A clean stop left a snapshot of every value at sled's revision: read that one file.
        let mut from = "snapshot";
        let snapshot = crate::snapshot::take(path, revision, &fingerprint).and_then(|arena| {
            decode_arena(arena, revision)
                .inspect_err(
                    |e| tracing::warn!(error = %e, "the store's snapshot is damaged; scanning"),
                )
                .ok()
        });
        let (mut data, db) = match snapshot {
            Some(data) => (data, db),
            None => {
                // sled keeps every page a scan touched in memory, whatever its cache capacity.
                // The index holds all values anyway, so: copy everything into one buffer, close
                // sled (its memory returns to the allocator), then open it again for writing.
                let mut arena = Vec::new();
                for item in db.scan_prefix(DATA_PREFIX) {
                    let (key, raw) = item?;
                    let key = &key[DATA_PREFIX.len()..];
                    let at = raw.get(..8).ok_or_else(|| {
                        Error::Backend("stored entry shorter than its revision".into())
                    })?;
                    crate::snapshot::record(&mut arena, key, decode_revision(at)?, &raw[8..]);
                }
                drop(db);
                from = "scan";
                (
                    decode_arena(Bytes::from(arena), revision)?,
                    reopen(&config)?,
                )
            }
        };
        if stamped_under.as_deref() != Some(fingerprint.as_bytes()) {
            restamp(&db, &mut data, versioner.as_ref(), &fingerprint)?;
        }
        // sled's own flush ends in `sync_file_range`, which persists neither the drive's write
        // cache nor the file's size; every group commit therefore also `fdatasync`s the log.
        let log = std::fs::File::open(path.join("db"))
            .map_err(|e| Error::Backend(format!("cannot open the sled log for syncing: {e}")))?;
        sync_dir(path)?;
        let keys = data.len();
        let index = Arc::new(Index::new(data, revision, options.index, versioner));
        tracing::info!(
            keys,
            revision,
            from,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "sled store loaded"
        );
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let writer_index = index.clone();
        let max_batch = options.max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("sled-writer".into())
            .spawn(move || run_writer(db, log, writer_index, rx, max_batch))
            .map_err(|e| Error::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SledStore {
            index,
            queue: parking_lot::RwLock::new(Some(tx)),
            writer: parking_lot::Mutex::new(Some(writer)),
            dir: path.to_path_buf(),
            fingerprint,
        })
    }

    async fn write(&self, write: Write) -> Result<Outcome> {
        let queue = self
            .queue
            .read()
            .clone()
            .ok_or_else(|| Error::Unavailable("store is closed".into()))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request { write, reply })
            .await
            .map_err(|_| Error::Unavailable("the writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the writer thread has stopped".into()))?
    }
}

impl SledStore {
    /// Stops taking writes, waits for the writer to commit what was queued, and writes the
    /// snapshot the next start reads instead of scanning sled (blocking I/O).
    pub fn close_blocking(&self) {
        // Closing the queue ends the writer after it has committed what was queued.
        self.queue.write().take();
        let Some(writer) = self.writer.lock().take() else {
            return;
        };
        let _ = writer.join();
        let started = std::time::Instant::now();
        let (data, revision) = self.index.entries();
        match crate::snapshot::write(&self.dir, &data, revision, &self.fingerprint) {
            Ok(()) => tracing::info!(
                keys = data.len(),
                revision,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "sled store closed with a snapshot"
            ),
            Err(e) => tracing::warn!(error = %e, "no snapshot: the next start scans the store"),
        }
        self.index.close();
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.index.close();
        // Closing the queue ends the writer after it has committed what was queued.
        self.queue.write().take();
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
    }
}

/// Stamps every loaded value again (the versioner changed what stamping does: the server's
/// schema defaults, say) and stores those that changed, with the new fingerprint, durably.
fn restamp(
    db: &sled::Db,
    data: &mut [KeyValue],
    versioner: &dyn Versioner,
    fingerprint: &str,
) -> Result<()> {
    let mut batch = sled::Batch::default();
    let mut changed = 0usize;
    for kv in data.iter_mut() {
        let value = versioner.stamp(&kv.key, &kv.value, kv.revision);
        if value != kv.value {
            batch.insert(data_key(&kv.key), encode_entry(kv.revision, &value));
            kv.value = value;
            changed += 1;
        }
    }
    batch.insert(META_FINGERPRINT, fingerprint.as_bytes());
    db.apply_batch(batch)?;
    db.flush()?;
    if changed > 0 {
        tracing::info!(changed, "stored values stamped again under a new versioner");
    }
    Ok(())
}

/// Opens sled again right after closing it: its background threads may hold the directory
/// lock for a moment after the last handle is dropped.
fn reopen(config: &sled::Config) -> Result<sled::Db> {
    let mut wait = std::time::Duration::from_millis(5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled reports a held lock as `ErrorKind::Other` with this text.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes the directory entries of a store directory durable.
fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::Backend(format!("cannot sync {}: {e}", path.display())))?;
    }
    Ok(())
}

fn run_writer(
    db: sled::Db,
    log: std::fs::File,
    index: Arc<Index>,
    mut rx: mpsc::Receiver<Request>,
    max_batch: usize,
) {
    // Once a commit fails, what is on disk is uncertain: refuse every later write.
    let mut failed: Option<String> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut requests = vec![first];
        while requests.len() < max_batch {
            match rx.try_recv() {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        if let Some(reason) = &failed {
            for request in requests {
                let _ = request.reply.send(Err(Error::Unavailable(reason.clone())));
            }
            continue;
        }
        let prepared = index.prepare(
            requests
                .into_iter()
                .map(|r| (r.write, r.reply))
                .collect::<Vec<_>>(),
        );
        if !prepared.changes.is_empty() {
            let mut batch = sled::Batch::default();
            for change in &prepared.changes {
                let key = data_key(&change.key);
                match &change.value {
                    Some(value) => batch.insert(key, encode_entry(change.revision, value)),
                    None => batch.remove(key),
                }
            }
            batch.insert(META_REVISION, &prepared.revision.to_be_bytes()[..]);
            let committed = db
                .apply_batch(batch)
                .and_then(|()| db.flush().map(|_| ()))
                .map_err(|e| e.to_string())
                .and_then(|()| log.sync_data().map_err(|e| e.to_string()));
            if let Err(err) = committed {
                let reason = format!("commit failed: {err}");
                tracing::error!(error = %err, "sled commit failed; refusing further writes");
                for (reply, _) in prepared.outcomes {
                    let _ = reply.send(Err(Error::Backend(reason.clone())));
                }
                failed = Some(reason);
                continue;
            }
            index.apply(prepared.changes);
        }
        for (reply, outcome) in prepared.outcomes {
            let _ = reply.send(outcome);
        }
    }
    if let Err(err) = db.flush() {
        tracing::error!(error = %err, "final sled flush failed");
    }
}

/// Reads back the records of [`crate::snapshot::record`].
/// The values are slices of the arena, not copies: the loaded store takes one allocation for
/// all values (less memory, no fragmentation); a value that is replaced later frees its share
/// once no slice of the arena is left.
fn decode_arena(arena: Bytes, revision: Revision) -> Result<Vec<KeyValue>> {
    let corrupt = || Error::Backend("truncated record while loading the store".into());
    let mut data = Vec::new();
    let mut at = 0;
    while at < arena.len() {
        let field = |from: usize| {
            arena
                .get(from..from + 8)
                .ok_or_else(corrupt)
                .and_then(decode_revision)
        };
        let key_len = usize::try_from(field(at)?).map_err(|_| corrupt())?;
        let raw_len = usize::try_from(field(at + 8)?).map_err(|_| corrupt())?;
        let key_at = at + 16;
        let raw_at = key_at.checked_add(key_len).ok_or_else(corrupt)?;
        let end = raw_at.checked_add(raw_len).ok_or_else(corrupt)?;
        if end > arena.len() || raw_len < 8 {
            return Err(corrupt());
        }
        let key = std::str::from_utf8(&arena[key_at..raw_at])
            .map_err(|e| Error::Backend(format!("stored key is not UTF-8: {e}")))?;
        let rev = field(raw_at)?;
        if rev > revision {
            return Err(Error::Backend(format!(
                "key {key:?} has revision {rev}, newer than the store revision {revision}"
            )));
        }
        data.push(KeyValue {
            key: Arc::from(key),
            value: arena.slice(raw_at + 8..end),
            revision: rev,
        });
        at = end;
    }
    Ok(data)
}

fn data_key(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATA_PREFIX.len() + key.len());
    out.extend_from_slice(DATA_PREFIX);
    out.extend_from_slice(key.as_bytes());
    out
}

fn encode_entry(revision: Revision, value: &Bytes) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_revision(raw: &[u8]) -> Result<Revision> {
    let bytes: [u8; 8] = raw
        .try_into()
        .map_err(|_| Error::Backend(format!("stored revision has {} bytes", raw.len())))?;
    Ok(Revision::from_be_bytes(bytes))
}

#[async_trait]
impl Store for SledStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        expect_written(
            self.write(Write::Create {
                key: key.to_string(),
                value,
            })
            .await,
        )
    }

    async fn get(&self, key: &str, at: ReadAt) -> Result<Option<KeyValue>> {
        self.index.settle(at).await?;
        Ok(self.index.get(key))
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        expect_written(
            self.write(Write::Update {
                key: key.to_string(),
                expected,
                value,
            })
            .await,
        )
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<(KeyValue, Revision)> {
        expect_deleted(
            self.write(Write::Delete {
                key: key.to_string(),
                expected,
            })
            .await,
        )
    }

    async fn list(&self, options: ListOptions, filter: Option<Filter<'_>>) -> Result<ListResult> {
        self.index.settle(options.at).await?;
        self.index.list_long_running(&options, filter)
    }

    async fn watch(&self, prefix: &str, start: WatchStart) -> Result<Watch> {
        self.index.watch(prefix, start)
    }

    async fn close(&self) {
        crate::long_running(|| self.close_blocking());
    }

    fn count(&self, prefix: &str) -> Option<u64> {
        Some(self.index.count(prefix) as u64)
    }

    fn current_revision(&self) -> Revision {
        self.index.revision()
    }

    fn oldest_revision(&self) -> Revision {
        self.index.oldest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_waits_for_a_lock_still_held() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path().join("db"));
        let held = config.open().unwrap();
        let err = config.open().unwrap_err();
        assert!(err.to_string().contains("could not acquire lock"), "{err}");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let db = reopen(&config).expect("reopen waits for the lock");
        drop(db);
        release.join().unwrap();
    }
}
