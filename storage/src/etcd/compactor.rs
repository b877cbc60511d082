//! Compacting etcd's history, as kube-apiserver's compactor does it.
//!
//! Every interval each replica tries a compare-and-swap on the key `compact_rev_key`: the swap
//! succeeds only if the key's version is the one this replica last saw, so among replicas that
//! share etcd (and kube-apiserver, which uses the same key) one wins per interval. The winner
//! stores the revision it saw one interval ago and compacts etcd to it, so everything written
//! during the last interval stays available to watches and paged lists.

use super::{Retry, bounded};
use crate::Result;
use etcd_client::{Compare, CompareOp, KvClient, TxnOp, TxnOpResponse};
use std::time::Duration;

/// The key replicas coordinate compactions through (kube-apiserver's).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// Where a compactor stands between rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// The version of `compact_rev_key` last seen (its "compact time").
    pub version: i64,
    /// etcd's revision at the last round: what the next winning round compacts to.
    pub revision: i64,
}

/// Compacts every `interval` until the task is aborted.
pub async fn run(kv: KvClient, interval: Duration, limit: Duration) {
    let mut round = Round::default();
    loop {
        tokio::time::sleep(interval).await;
        match compact(&kv, round, limit).await {
            Ok((next, compacted)) => {
                if let Some(rev) = compacted {
                    tracing::info!(revision = rev, "compacted etcd");
                }
                round = next;
            }
            Err(e) => tracing::warn!(error = %e, "etcd compaction failed; retrying next interval"),
        }
    }
}

/// One round: the next round's state and the revision compacted to, if this replica won.
pub async fn compact(kv: &KvClient, round: Round, limit: Duration) -> Result<(Round, Option<i64>)> {
    let txn = etcd_client::Txn::new()
        .when([Compare::version(
            COMPACT_REV_KEY,
            CompareOp::Equal,
            round.version,
        )])
        .and_then([TxnOp::put(
            COMPACT_REV_KEY,
            round.revision.to_string(),
            None,
        )])
        .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
    let response = bounded(limit, Retry::Unsent, || {
        let (mut kv, txn) = (kv.clone(), txn.clone());
        async move { kv.txn(txn).await }
    })
    .await?;
    let current = super::revision_of(response.header())? as i64;
    if !response.succeeded() {
        // Another replica compacted: follow its clock.
        let version = response
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.version()),
                _ => None,
            })
            .unwrap_or(round.version);
        return Ok((
            Round {
                version,
                revision: current,
            },
            None,
        ));
    }
    let next = Round {
        version: round.version + 1,
        revision: current,
    };
    if round.revision == 0 {
        // Nothing to compact on the first round.
        return Ok((next, None));
    }
    // The round is taken whether or not the compaction succeeds (as kube's compactor): the
    // replicas' clock stays in step, and the next round compacts further.
    if let Err(e) = bounded(limit, Retry::Always, || {
        let mut kv = kv.clone();
        async move { kv.compact(round.revision, None).await }
    })
    .await
    {
        tracing::warn!(revision = round.revision, error = %e, "etcd compaction failed; the next round compacts further");
        return Ok((next, None));
    }
    Ok((next, Some(round.revision)))
}
