//! Whether etcd's requested progress notifications can be trusted, as k8s.io/apiserver's
//! `FeatureSupportChecker` decides it for `RequestWatchProgress`.
//!
//! A consistent read is served from a watch cache only once an event or a progress
//! notification says the cache has caught up with etcd. Before etcd 3.4.31 and 3.5.13, a
//! requested progress notification could overtake events still on their way ("Requested watcher
//! progress notifications are not synchronised with stream", fixed in 3.4.26/3.5.8, and "no
//! progress notification being sent for watch that doesn't get any events", fixed in
//! 3.4.31/3.5.13), so with such a member a cache could believe itself current too early.
//! kube-apiserver then reads from etcd instead; so does this server, until every member has
//! reported a version with both fixes.

use etcd_client::{Client, ConnectOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether an etcd version (`3.5.16`) has both progress-notification fixes.
pub fn progress_notifications_safe(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m > 5,
        (m, _) => m > 3,
    }
}

/// Asks every member for its version (retrying those that do not answer every `retry`) and sets
/// `safe` once all of them run a version with the fixes; logs what it found.
pub async fn detect(
    endpoints: Vec<String>,
    connect: ConnectOptions,
    safe: Arc<AtomicBool>,
    retry: Duration,
) {
    let mut versions: Vec<Option<String>> = vec![None; endpoints.len()];
    loop {
        for (endpoint, version) in endpoints.iter().zip(versions.iter_mut()) {
            if version.is_some() {
                continue;
            }
            let status = async {
                let mut client = Client::connect([endpoint.as_str()], Some(connect.clone()))
                    .await
                    .ok()?;
                client.status().await.ok()
            };
            if let Ok(Some(status)) = tokio::time::timeout(Duration::from_secs(5), status).await {
                *version = Some(status.version().to_string());
            }
        }
        if versions.iter().all(Option::is_some) {
            let all: Vec<&str> = versions.iter().flatten().map(String::as_str).collect();
            if all.iter().all(|v| progress_notifications_safe(v)) {
                safe.store(true, Ordering::Release);
                tracing::info!(versions = ?all, "etcd progress notifications are reliable: consistent reads are served from the watch caches");
            } else {
                tracing::warn!(versions = ?all, "etcd older than 3.4.31/3.5.13: consistent reads go to etcd (upgrade etcd to serve them from the watch caches)");
            }
            return;
        }
        tokio::time::sleep(retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_with_both_fixes() {
        for (v, safe) in [
            ("3.5.16", true),
            ("3.5.13", true),
            ("3.5.12", false),
            ("3.5.1", false),
            ("3.4.31", true),
            ("3.4.23", false),
            ("3.6.0", true),
            ("v3.6.4", true),
            ("4.0.0", true),
            ("3.3.27", false),
            ("garbage", false),
            ("3.5", false),
        ] {
            assert_eq!(progress_notifications_safe(v), safe, "{v}");
        }
    }
}
