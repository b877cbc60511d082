//! The overload benchmark: the server runs in delegated mode against a loopback kube-apiserver
//! stand-in (so the load comes from a plain user, not `system:masters`, which is never shed),
//! with in-flight limits. First as many connections as the mutating limit create Apps (the
//! baseline), then ten times as many. Reported: the admitted creates' rate and latency in both
//! phases, the 429s (each checked to be a `TooManyRequests` Status with `Retry-After: 1`),
//! anything else (transport errors: requests dropped), and the server's peak RSS.

use crate::client::Client;
use crate::peer::Peer;
use crate::report::{HEADER, Samples};
use crate::server::Server;
use anyhow::Result;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `overload`.
#[derive(clap::Args)]
pub struct Args {
    /// The server binary (default: admission-apiserver next to this binary).
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// `--max-mutating-requests-inflight` of the server (the read limit is twice this).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Connections in the overload phase, as a multiple of the limit.
    #[arg(long, default_value_t = 10)]
    factor: usize,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Use HTTP/2 instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
}

/// What one phase saw.
#[derive(Default)]
struct Outcome {
    admitted: Samples,
    refused: u64,
    /// 429s that were not a TooManyRequests Status with `Retry-After: 1`.
    malformed_refusals: u64,
    /// Other answers (not 201, not 429).
    other: u64,
    /// Requests that got no answer at all.
    dropped: u64,
}

fn app_body(worker: usize, i: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{{"name":"w{worker}-{i}","namespace":"load"}},"spec":{{"version":"v1.0.0","replicas":1}}}}"#
    ))
}

async fn phase(
    client: &Client,
    connections: usize,
    seconds: u64,
    server: &Server,
    offset: usize,
) -> (Outcome, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let client = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            let mut i = 0u64;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                match client
                    .send_full(
                        "POST",
                        "/apis/admission.example.com/v1/namespaces/load/apps",
                        Some("application/json"),
                        app_body(offset + worker, i),
                    )
                    .await
                {
                    Ok((201, _, _)) => out.admitted.add(started.elapsed()),
                    Ok((429, retry_after, body)) => {
                        out.refused += 1;
                        let status: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        if retry_after.as_deref() != Some("1")
                            || status["kind"] != "Status"
                            || status["reason"] != "TooManyRequests"
                        {
                            out.malformed_refusals += 1;
                        }
                        // A client honouring Retry-After would wait; this one keeps pressing.
                    }
                    Ok(_) => out.other += 1,
                    Err(_) => out.dropped += 1,
                }
            }
            out
        }));
    }
    let sampler = {
        let (peak, stop) = (peak_rss.clone(), stop.clone());
        let pid_rss = server.rss_sampler();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = (pid_rss() * 1024.0) as u64;
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut all = Outcome::default();
    for t in tasks {
        if let Ok(o) = t.await {
            all.admitted.merge(o.admitted);
            all.refused += o.refused;
            all.malformed_refusals += o.malformed_refusals;
            all.other += o.other;
            all.dropped += o.dropped;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    (all, peak_rss.load(Ordering::Relaxed) as f64 / 1024.0)
}

/// Runs the benchmark and prints a Markdown report.
pub async fn run(args: Args) -> Result<()> {
    let peer = Peer::start().await?;
    let peer_dir =
        std::env::temp_dir().join(format!("admission-bench-peer-{}", std::process::id()));
    std::fs::create_dir_all(&peer_dir)?;
    let kubeconfig = peer.kubeconfig(&peer_dir)?;
    let kubeconfig = kubeconfig.display().to_string();
    let limit = args.limit.max(1);
    let flags: Vec<String> = [
        "--authentication-kubeconfig",
        &kubeconfig,
        "--authorization-kubeconfig",
        &kubeconfig,
        "--authentication-skip-lookup",
        "--max-mutating-requests-inflight",
        &limit.to_string(),
        "--max-requests-inflight",
        &(2 * limit).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Server::start(args.server_binary.clone(), &flags)?;
    let client = Client::new(&server.base, "bench", &server.ca_pem, args.http2)?;
    let rss_idle = server.rss_mib();
    let (mut baseline, rss_baseline) = phase(&client, limit, args.seconds, &server, 0).await;
    let overload_connections = limit * args.factor.max(1);
    let (mut overload, rss_overload) = phase(
        &client,
        overload_connections,
        args.seconds,
        &server,
        1_000_000,
    )
    .await;
    let _ = std::fs::remove_dir_all(&peer_dir);
    let elapsed = Duration::from_secs(args.seconds);
    println!(
        "overload benchmark: creates as a non-master user over {}, --max-mutating-requests-inflight {limit}; \
         baseline {limit} connections, overload {overload_connections} connections, {}s each\n",
        if args.http2 { "HTTP/2" } else { "HTTP/1.1" },
        args.seconds
    );
    println!("{HEADER}");
    println!(
        "{}",
        baseline
            .admitted
            .line("baseline: admitted creates", elapsed)
    );
    println!(
        "{}",
        overload
            .admitted
            .line("overload: admitted creates", elapsed)
    );
    println!();
    println!("| | baseline | overload |\n|---|---|---|");
    println!(
        "| refused (429 Status, Retry-After: 1) | {} | {} |",
        baseline.refused, overload.refused
    );
    println!(
        "| refused without a proper Status or Retry-After | {} | {} |",
        baseline.malformed_refusals, overload.malformed_refusals
    );
    println!(
        "| other answers | {} | {} |",
        baseline.other, overload.other
    );
    println!(
        "| dropped (no answer) | {} | {} |",
        baseline.dropped, overload.dropped
    );
    println!(
        "| server peak RSS | {rss_baseline:.1} MiB | {rss_overload:.1} MiB |\n\nserver RSS idle: {rss_idle:.1} MiB"
    );
    Ok(())
}
