//! The sled backend's quick-start file: every value at one revision, written when the store
//! closes, read at the next start instead of scanning sled when nothing was written since.
//!
//! Scanning sled costs time and memory in proportion to the store (sled brings every page it
//! reads into memory, and does not give it back). The snapshot is one file in the format the
//! loader slices values from, so a clean restart reads one file. It is only used when sled's
//! revision is the snapshot's (no write came after it: after a crash, sled is scanned) and the
//! versioner's fingerprint matches; it is removed once loaded.
//!
//! Format: `ADMSNAP2`, revision (u64), fingerprint length (u32) and bytes, records length
//! (u64), CRC-32 of the records (u32), records (`[key length u64][entry length u64][key]
//! [revision u64 ++ value]`), integers big-endian. Written to a temporary file, `fsync`ed, then
//! renamed into place: a snapshot is whole or absent, and a damaged one fails its checksum.

use crate::index::Entry;
use crate::tree::Map;
use crate::{Error, Result, Revision};
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"ADMSNAP2";
const FILE: &str = "snapshot";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Appends one record in the loader's format.
pub(crate) fn record(out: &mut Vec<u8>, key: &[u8], revision: Revision, value: &[u8]) {
    out.extend_from_slice(&(key.len() as u64).to_be_bytes());
    out.extend_from_slice(&((value.len() + 8) as u64).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(value);
}

/// Writes the snapshot of `data` at `revision` (blocking I/O).
pub(crate) fn write(
    dir: &Path,
    data: &Map<Arc<str>, Entry>,
    revision: Revision,
    fingerprint: &str,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Backend(format!("cannot write the snapshot: {e}"));
    let mut records = Vec::new();
    for (key, entry) in data.iter() {
        record(&mut records, key.as_bytes(), entry.revision, &entry.value);
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    file.write_all(MAGIC).map_err(io)?;
    file.write_all(&revision.to_be_bytes()).map_err(io)?;
    file.write_all(&(fingerprint.len() as u32).to_be_bytes())
        .map_err(io)?;
    file.write_all(fingerprint.as_bytes()).map_err(io)?;
    file.write_all(&(records.len() as u64).to_be_bytes())
        .map_err(io)?;
    file.write_all(&crc32fast::hash(&records).to_be_bytes())
        .map_err(io)?;
    file.write_all(&records).map_err(io)?;
    let file = file.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path(dir)).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

/// The records of the snapshot when it is at `revision` under `fingerprint`; `None` when
/// there is none, or it is stale, foreign or damaged (the caller scans sled then). Removes it.
pub(crate) fn take(dir: &Path, revision: Revision, fingerprint: &str) -> Option<Bytes> {
    let file = path(dir);
    let raw = std::fs::read(&file).ok()?;
    let _ = std::fs::remove_file(&file);
    let raw = Bytes::from(raw);
    let mut at = 0;
    let mut field = |n: usize| {
        let bytes = raw.get(at..at + n)?;
        at += n;
        Some(bytes)
    };
    if field(8)? != MAGIC {
        return None;
    }
    let at_revision = u64::from_be_bytes(field(8)?.try_into().ok()?);
    let fingerprint_len = u32::from_be_bytes(field(4)?.try_into().ok()?) as usize;
    let stamped_under = field(fingerprint_len)?;
    let records_len = u64::from_be_bytes(field(8)?.try_into().ok()?) as usize;
    let checksum = u32::from_be_bytes(field(4)?.try_into().ok()?);
    if at_revision != revision || stamped_under != fingerprint.as_bytes() {
        tracing::info!(
            at_revision,
            revision,
            "the store's snapshot is stale; scanning"
        );
        return None;
    }
    if at.checked_add(records_len) != Some(raw.len()) {
        tracing::warn!("the store's snapshot is truncated; scanning");
        return None;
    }
    let records = raw.slice(at..);
    if crc32fast::hash(&records) != checksum {
        tracing::warn!("the store's snapshot fails its checksum; scanning");
        return None;
    }
    Some(records)
}
