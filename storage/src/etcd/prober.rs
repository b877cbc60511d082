//! etcd's current revision by quorum read, one read for every caller waiting at that moment.
//!
//! A consistent read from a watch cache must reflect every write committed before the read
//! began, so it first learns etcd's current revision with a linearizable read (what
//! k8s.io/apiserver's `GetCurrentResourceVersion` does). Callers queue; one task takes every
//! caller queued so far, issues one read that starts after all of them arrived, and answers
//! them all: a linearizable answer for each, however many readers there are.

use super::{Retry, bounded};
use crate::{Error, Result, Revision};
use etcd_client::{GetOptions, KvClient};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A handle to the prober task.
#[derive(Clone)]
pub struct Prober {
    requests: mpsc::UnboundedSender<oneshot::Sender<Result<Revision>>>,
}

impl Prober {
    /// Starts the prober over `key` (any key: only the response's revision is used).
    pub fn start(
        kv: KvClient,
        key: Vec<u8>,
        limit: Duration,
    ) -> (Prober, tokio::task::JoinHandle<()>) {
        let (requests, queued) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(kv, key, limit, queued));
        (Prober { requests }, task)
    }

    /// etcd's revision as of a moment after this call started.
    pub async fn current_revision(&self) -> Result<Revision> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(answer)
            .map_err(|_| Error::Unavailable("the etcd revision prober has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::Unavailable("the etcd revision prober has stopped".into()))?
    }
}

async fn run(
    kv: KvClient,
    key: Vec<u8>,
    limit: Duration,
    mut queued: mpsc::UnboundedReceiver<oneshot::Sender<Result<Revision>>>,
) {
    while let Some(first) = queued.recv().await {
        let mut waiting = vec![first];
        while let Ok(next) = queued.try_recv() {
            waiting.push(next);
        }
        let answer = bounded(limit, Retry::Always, || {
            let (mut kv, key) = (kv.clone(), key.clone());
            async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
        })
        .await
        .and_then(|r| super::revision_of(r.header()));
        for w in waiting {
            let _gone_is_fine = w.send(answer.clone());
        }
    }
}
