//! `migrate`: copies a sled store into etcd, for moving a one-replica installation to the
//! replicated setup.
//!
//! Every stored object is written to etcd under the same key with a create-if-absent
//! transaction, as it is (uid, name, labels, managedFields, status; only the resourceVersion
//! changes, to etcd's). It is safe to run again: a key already in etcd with the same object is
//! skipped, one with a different object is reported and left alone, and the command then fails.
//! The server must be stopped first: sled admits one process, so a running server makes the
//! command fail at once rather than copy a store that is still changing.

use crate::config::{MigrateOptions, StorageBackend};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use storage::etcd::{EtcdOptions, EtcdStore};
use storage::{ListOptions, ReadAt, SledOptions, SledStore, Store};

/// What a migration did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects written to etcd.
    pub copied: usize,
    /// Objects etcd already had, identical.
    pub present: usize,
    /// Keys etcd holds with a different object (not overwritten).
    pub conflicting: Vec<String>,
}

/// An object as compared across stores: without its resourceVersion.
fn comparable(bytes: &[u8]) -> Option<Value> {
    let mut obj: Value = serde_json::from_slice(bytes).ok()?;
    crate::object::meta::set(&mut obj, "resourceVersion", None);
    Some(obj)
}

/// Runs `migrate`.
pub async fn run(options: MigrateOptions) -> Result<Report> {
    let StorageBackend::Etcd(etcd) = options.etcd.backend()? else {
        bail!("--etcd-servers is required: where to copy the objects to");
    };
    let dir = options.data_dir.join("store");
    if !dir.exists() {
        bail!("{} holds no store", options.data_dir.display());
    }
    let resources = crate::kinds::load().map_err(|e| anyhow::anyhow!(e))?;
    let versioner = Arc::new(crate::registry::codec::StorageCodec::new(resources));
    let sled = {
        let versioner = versioner.clone();
        tokio::task::spawn_blocking(move || {
            SledStore::open(&dir, SledOptions::default(), versioner)
        })
        .await?
        .context("cannot open the sled store (is the server still running?)")?
    };
    let target = EtcdStore::connect(
        EtcdOptions {
            endpoints: etcd.servers.clone(),
            prefix: etcd.prefix.clone(),
            tls: etcd.tls.clone(),
            compaction_interval: None,
            resources: Vec::new(),
            ..EtcdOptions::default()
        },
        versioner,
    )
    .await?;
    target
        .check_health()
        .await
        .with_context(|| format!("cannot reach etcd at {}", etcd.servers.join(",")))?;
    let all = sled
        .list(
            ListOptions {
                prefix: String::new(),
                at: ReadAt::Latest,
                ..Default::default()
            },
            None,
        )
        .await?;
    let mut report = Report::default();
    for kv in all.items {
        let Some(object) = comparable(&kv.value) else {
            bail!("stored object {} is not JSON", kv.key);
        };
        let value = Bytes::from(serde_json::to_vec(&object)?);
        match target.create(&kv.key, value).await {
            Ok(_) => report.copied += 1,
            Err(e) if e.is_already_exists() => {
                let there = target.get(&kv.key, ReadAt::Latest).await?;
                match there.and_then(|t| comparable(&t.value)) {
                    Some(same) if same == object => report.present += 1,
                    _ => report.conflicting.push(kv.key.to_string()),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot copy {}", kv.key)),
        }
    }
    // Closed cleanly, the sled store keeps its quick-start snapshot (opening it used it up).
    sled.close().await;
    target.close().await;
    Ok(report)
}
