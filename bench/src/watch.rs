//! The watch benchmark: N watchers on one resource while a writer creates objects at a fixed
//! rate. Reports events delivered against expected, losses, delivery latency (write sent →
//! event received), events/s and server RSS with the watches open. With `--etcd --replicas N`
//! the watchers are spread over the replicas and the writer talks to the first one.

use crate::client::Client;
use crate::fleet::{Fleet, FleetArgs};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Options of `watch`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Watchers to open.
    #[arg(long, default_value_t = 5000)]
    watchers: usize,
    /// Creates per second while watching.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of writing.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Use HTTP/2 with this many watch streams per connection (0: HTTP/1.1, one connection each).
    #[arg(long, default_value_t = 0)]
    streams_per_connection: usize,
}

/// What one watcher saw.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    /// Events that arrived out of order or twice (must stay 0).
    disorder: u64,
    /// The server ended the stream before the last event (a client would re-watch).
    closed_early: bool,
}

fn raise_fd_limit() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}

/// The number after `pattern` in an event line, found without parsing the whole JSON.
fn number_after(line: &[u8], pattern: &memchr::memmem::Finder<'_>) -> Option<u64> {
    let start = pattern.find(line)? + pattern.needle().len();
    let mut n: u64 = 0;
    let mut any = false;
    for b in &line[start..] {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

/// Runs the watch benchmark and prints a Markdown report.
pub async fn run(args: Args) -> Result<()> {
    raise_fd_limit();
    let fleet = Fleet::start(&args.fleet).await?;
    let http2 = args.streams_per_connection > 0;
    // The writer talks to the first replica; watchers are spread over all of them, so on
    // several replicas most events travel through etcd to another replica's watch cache.
    let writer = fleet.client_of(0, false)?;
    let (code, body) = writer
        .send(
            "GET",
            "/apis/admission.example.com/v1/namespaces/bench/apps",
            None,
            Bytes::new(),
        )
        .await?;
    anyhow::ensure!(code == 200, "list failed: {code}");
    let list: serde_json::Value = serde_json::from_slice(&body)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion")?
        .to_string();
    let rss_before = fleet.rss();

    let total_events = (args.rate * args.seconds) as usize;
    let sent_at: Arc<Vec<AtomicU64>> =
        Arc::new((0..total_events).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let established = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let last_delivery = Arc::new(AtomicU64::new(0));
    let path = format!(
        "/apis/admission.example.com/v1/namespaces/bench/apps?watch=true&resourceVersion={rv}&timeoutSeconds=3600"
    );

    let clients: Vec<Client> = if http2 {
        let connections = args.watchers.div_ceil(args.streams_per_connection);
        (0..connections)
            .map(|c| fleet.client_of(c, true))
            .collect::<Result<_>>()?
    } else {
        (0..fleet.replicas.len())
            .map(|r| fleet.client_of(r, false))
            .collect::<Result<_>>()?
    };
    let opening = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for i in 0..args.watchers {
        let client = if http2 {
            clients[i / args.streams_per_connection].clone()
        } else {
            clients[i % clients.len()].clone()
        };
        let (path, sent_at, established, delivered, last_delivery) = (
            path.clone(),
            sent_at.clone(),
            established.clone(),
            delivered.clone(),
            last_delivery.clone(),
        );
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut last: Option<u64> = None;
            let Ok(resp) = client.stream(&path).await else {
                return seen;
            };
            if resp.status() != 200 {
                return seen;
            }
            established.fetch_add(1, Ordering::Relaxed);
            let mut body = resp.into_body();
            let name = memchr::memmem::Finder::new(b"\"name\":\"e-");
            let version = memchr::memmem::Finder::new(b"\"resourceVersion\":\"");
            // Bytes of a line split across frames.
            let mut partial: Vec<u8> = Vec::new();
            loop {
                // Until the stream ends, or the benchmark is over.
                let frame = tokio::select! {
                    frame = body.frame() => frame,
                    _ = stop.wait_for(|s| *s) => return seen,
                };
                let Some(Ok(frame)) = frame else {
                    break;
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let mut lines: Vec<&[u8]> = Vec::new();
                let mut joined: Vec<u8> = Vec::new();
                let mut rest: &[u8] = &data;
                if !partial.is_empty() {
                    match memchr::memchr(b'\n', rest) {
                        Some(pos) => {
                            joined = std::mem::take(&mut partial);
                            joined.extend_from_slice(&rest[..pos]);
                            rest = &rest[pos + 1..];
                        }
                        None => {
                            partial.extend_from_slice(rest);
                            continue;
                        }
                    }
                }
                if !joined.is_empty() {
                    lines.push(&joined);
                }
                while let Some(pos) = memchr::memchr(b'\n', rest) {
                    lines.push(&rest[..pos]);
                    rest = &rest[pos + 1..];
                }
                partial.extend_from_slice(rest);
                for line in lines {
                    if let Some(n) = number_after(line, &name).map(|n| n as usize)
                        && let Some(sent) = sent_at.get(n)
                    {
                        let rv = number_after(line, &version).unwrap_or(0);
                        let now = epoch.elapsed().as_micros() as u64;
                        let at = sent.load(Ordering::Acquire);
                        seen.latencies_us.push(now.saturating_sub(at) as u32);
                        if last.is_some_and(|l| rv <= l) {
                            seen.disorder += 1;
                        }
                        last = Some(rv);
                        last_delivery.fetch_max(now, Ordering::Relaxed);
                        delivered.fetch_add(1, Ordering::Relaxed);
                        // Creates run concurrently, so names need not arrive in order: done
                        // once every one has come.
                        if seen.latencies_us.len() == sent_at.len() {
                            return seen;
                        }
                    }
                }
            }
            seen.closed_early = true;
            seen
        }));
        if i % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    // Wait until every watch is open (or the attempts are over).
    let deadline = Instant::now() + Duration::from_secs(120);
    while established.load(Ordering::Relaxed) < args.watchers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open = established.load(Ordering::Relaxed);
    let open_time = opening.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = fleet.rss();

    // The writer: creates at a fixed rate.
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let write_start = Instant::now();
    let write_start_us = epoch.elapsed().as_micros() as u64;
    let mut creates = Vec::with_capacity(total_events);
    let mut next = Instant::now();
    for n in 0..total_events {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let body = Bytes::from(format!(
            r#"{{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{{"name":"e-{n}","namespace":"bench"}},"spec":{{"version":"v1.0.0","replicas":1}}}}"#
        ));
        sent_at[n].store(epoch.elapsed().as_micros() as u64, Ordering::Release);
        let w = writer.clone();
        // Creates are sent without waiting for each other, so the rate holds even when a
        // response is slow.
        creates.push(tokio::spawn(async move {
            matches!(
                w.send(
                    "POST",
                    "/apis/admission.example.com/v1/namespaces/bench/apps",
                    Some("application/json"),
                    body
                )
                .await,
                Ok((201, _))
            )
        }));
    }
    let write_time = write_start.elapsed();
    let mut acked = 0usize;
    for c in creates {
        if c.await.unwrap_or(false) {
            acked += 1;
        }
    }
    // Let the last events arrive.
    let expected = (open * acked) as u64;
    let settle = Instant::now() + Duration::from_secs(30);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_end = fleet.rss();
    let delivering = Duration::from_micros(
        last_delivery
            .load(Ordering::Relaxed)
            .saturating_sub(write_start_us),
    );
    let (mut closed, mut disorder, mut lost_open) = (0u64, 0u64, 0u64);
    let mut latencies: Vec<u32> = Vec::new();
    let _ = stop_tx.send(true);
    for t in tasks {
        if let Ok(seen) = t.await {
            disorder += seen.disorder;
            if seen.closed_early {
                closed += 1;
            } else {
                lost_open += (acked as u64).saturating_sub(seen.latencies_us.len() as u64);
            }
            latencies.extend(seen.latencies_us);
        }
    }
    latencies.sort_unstable();
    let got = latencies.len() as u64;
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        latencies[i] as f64 / 1000.0
    };
    println!(
        "watch benchmark: {} watchers over {}, {} creates/s for {} s, on {}\n",
        args.watchers,
        if http2 {
            format!(
                "HTTP/2 ({} streams per connection)",
                args.streams_per_connection
            )
        } else {
            "HTTP/1.1 (one connection each)".into()
        },
        args.rate,
        args.seconds,
        fleet.describe(&args.fleet)
    );
    println!("| measure | value |\n|---|---|");
    println!(
        "| watchers established | {open} / {} (in {:.1} s) |",
        args.watchers,
        open_time.as_secs_f64()
    );
    println!(
        "| creates acknowledged | {acked} of {total_events} sent in {:.1} s |",
        write_time.as_secs_f64()
    );
    println!("| events expected | {expected} |");
    println!("| events delivered | {got} |");
    println!("| events missing | {} |", expected.saturating_sub(got));
    println!("| of which on watches still open (lost) | {lost_open} |");
    println!("| watches the server closed as too slow (a client re-watches) | {closed} |");
    println!("| events out of resourceVersion order or repeated | {disorder} |");
    println!("| delivery latency p50 | {:.1} ms |", pct(50.0));
    println!("| delivery latency p99 | {:.1} ms |", pct(99.0));
    println!(
        "| delivery latency max | {:.1} ms |",
        latencies.last().map_or(0.0, |l| *l as f64 / 1000.0)
    );
    println!(
        "| events/s delivered | {:.0} |",
        got as f64 / delivering.as_secs_f64().max(0.001)
    );
    println!("| server RSS before watches | {rss_before:.1} MiB |");
    println!("| server RSS with the watches open | {rss_open:.1} MiB |");
    println!("| server RSS at the end | {rss_end:.1} MiB |");
    Ok(())
}
