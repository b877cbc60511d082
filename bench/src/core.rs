//! The core benchmark: how cost grows with the collection. Apps are created into one namespace
//! up to each size (1k, 10k, 100k, 1M by default); at each size it measures durable creates,
//! gets, lists of 500 and of 10 (first pages), the server's RSS, and the restart time to a
//! passing `/readyz` (with RSS after the restart). At 100k it also measures p99 create latency
//! alone and with 4 concurrent full lists of the 100k objects running (read by a child process
//! at the lowest CPU priority, so that the load generator's own list work does not take the
//! creates' CPU on a shared machine).
//!
//! `--etcd` runs the server on etcd instead of sled: the benchmark starts etcd members on
//! loopback (`ETCD_BIN`, else `etcd` on the PATH) and `--replicas` servers sharing them, and
//! spreads requests over the replicas.

use crate::client::Client;
use crate::fleet::{Fleet, FleetArgs};
use crate::lister::Listers;
use crate::report::{HEADER, Samples};
use crate::server::Server;
use anyhow::Result;
use bytes::Bytes;
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Options of `core`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Use HTTP/2 (streams on shared connections) instead of one HTTP/1.1 connection each.
    #[arg(long)]
    http2: bool,
    /// Collection sizes measured at, in increasing order (Apps in one namespace).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000,1000000"
    )]
    sizes: Vec<usize>,
    /// Seconds each read phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent full lists in the contention phase (at 100k).
    #[arg(long, default_value_t = 4)]
    full_lists: usize,
}

const NAMESPACE: &str = "bench";

fn app_body(i: usize, namespace: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{{"name":"app-{i:07}","namespace":"{namespace}","labels":{{"app":"bench","tier":"web"}}}},"spec":{{"version":"v1.0.0","replicas":3}}}}"#,
    ))
}

fn collection(namespace: &str) -> String {
    format!("/apis/admission.example.com/v1/namespaces/{namespace}/apps")
}

/// Creates Apps `from..to` in `namespace` with `concurrency` workers.
async fn create(
    client: &Client,
    namespace: &'static str,
    from: usize,
    to: usize,
    concurrency: usize,
) -> (Samples, Duration) {
    let started = Instant::now();
    let s = creates(client, namespace, from, concurrency, Until::Index(to)).await;
    (s, started.elapsed())
}

/// Where a create loop stops: at an App's number, or at a moment.
#[derive(Clone, Copy)]
enum Until {
    Index(usize),
    Time(Instant),
}

/// Creates Apps numbered from `from` in `namespace` with `workers` requests in flight until
/// `until`.
async fn creates(
    client: &Client,
    namespace: &'static str,
    from: usize,
    workers: usize,
    until: Until,
) -> Samples {
    let next = Arc::new(AtomicUsize::new(from));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            let path = collection(namespace);
            loop {
                if let Until::Time(deadline) = until
                    && Instant::now() >= deadline
                {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if let Until::Index(to) = until
                    && i >= to
                {
                    break;
                }
                let t = Instant::now();
                match client
                    .send(
                        "POST",
                        &path,
                        Some("application/json"),
                        app_body(i, namespace),
                    )
                    .await
                {
                    Ok((201, _)) => s.add(t.elapsed()),
                    _ => s.errors += 1,
                }
            }
            s
        }));
    }
    merged(tasks).await
}

/// The samples of every worker that finished.
async fn merged(tasks: Vec<tokio::task::JoinHandle<Samples>>) -> Samples {
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    all
}

/// Runs requests made by `path_of` until `deadline` with `concurrency` workers.
pub(crate) async fn read_phase(
    client: &Client,
    concurrency: usize,
    deadline: Instant,
    path_of: Arc<dyn Fn() -> String + Send + Sync>,
) -> (Samples, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, path_of) = (client.clone(), path_of.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            while Instant::now() < deadline {
                let path = path_of();
                let t = Instant::now();
                match client.send("GET", &path, None, Bytes::new()).await {
                    Ok((200, _)) => s.add(t.elapsed()),
                    _ => s.errors += 1,
                }
            }
            s
        }));
    }
    (merged(tasks).await, started.elapsed())
}

fn get_paths(objects: usize) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || {
        let i = rand::rng().random_range(0..objects);
        format!("{}/app-{i:07}", collection(NAMESPACE))
    })
}

fn page_paths(limit: usize) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || format!("{}?limit={limit}", collection(NAMESPACE)))
}

/// What one size measured, for the summary.
struct Row {
    size: usize,
    creates: f64,
    gets: f64,
    lists_500: f64,
    lists_10: f64,
    rss_loaded: f64,
    restart: Duration,
    rss_restarted: f64,
    /// Where the restarted sled store loaded from (`snapshot`, `scan`).
    loaded_from: Option<String>,
}

fn rate(s: &Samples, d: Duration) -> f64 {
    s.len() as f64 / d.as_secs_f64()
}

/// p99 of creates (8 in flight) for a while, with `lists` full lists of `NAMESPACE` running
/// meanwhile on `server` (read by a child process at the lowest CPU priority, see
/// [`crate::lister`]); returns the creates' samples and the full lists' rate.
async fn creates_beside_full_lists(
    client: &Client,
    server: &Server,
    seconds: u64,
    lists: usize,
    offset: usize,
) -> Result<(Samples, f64)> {
    let listing = if lists > 0 {
        let listers = Listers::start(
            &server.base,
            &server.token,
            &server.ca_pem,
            &collection(NAMESPACE),
            lists,
            seconds as f64 + 2.0,
        )?;
        // The readers have connected and their lists are under way.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some(listers)
    } else {
        None
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let all = creates(client, "contention", offset, 8, Until::Time(deadline)).await;
    let list_rate = match listing {
        Some(l) => l.rate().await?,
        None => 0.0,
    };
    Ok((all, list_rate))
}

/// Runs the core benchmark and prints a Markdown report.
pub async fn run(args: Args) -> Result<()> {
    let mut setup = Fleet::start(&args.fleet).await?;
    let mut client = setup.client(args.http2)?;
    println!(
        "core benchmark: {} requests in flight over {}, on {}; Apps in one namespace up to {:?}\n",
        args.concurrency,
        if args.http2 { "HTTP/2" } else { "HTTP/1.1" },
        setup.describe(&args.fleet),
        args.sizes
    );
    println!("{HEADER}");
    let mut rows = Vec::new();
    let mut contention = None;
    let mut created = 0;
    for &size in &args.sizes {
        let (mut s, d) = create(&client, NAMESPACE, created, size, args.concurrency).await;
        let creates = rate(&s, d);
        println!(
            "{}",
            s.line(&format!("create (durable), {created}→{size}"), d)
        );
        created = size;
        let rss_loaded = setup.rss();
        let mut measured = Vec::new();
        for (name, paths) in [
            (format!("get, {size} stored"), get_paths(size)),
            (format!("list of 500, {size} stored"), page_paths(500)),
            (format!("list of 10, {size} stored"), page_paths(10)),
        ] {
            let deadline = Instant::now() + Duration::from_secs(args.seconds);
            let (mut s, d) = read_phase(&client, args.concurrency, deadline, paths).await;
            measured.push(rate(&s, d));
            println!("{}", s.line(&name, d));
        }
        // Restart the first replica and time it to ready.
        let first = setup.replicas.remove(0);
        let (first, restart) = first.restart().await?;
        setup.replicas.insert(0, first);
        client = setup.client(args.http2)?;
        let rss_restarted = setup.replicas[0].rss_mib();
        let loaded_from = setup.replicas[0].loaded_from();
        // After the restart, which thus loads exactly `size` Apps (these creates add more).
        if size == 100_000 {
            let server = &setup.replicas[0];
            let (mut alone, _) =
                creates_beside_full_lists(&client, server, args.seconds, 0, 0).await?;
            let (mut beside, lists) = creates_beside_full_lists(
                &client,
                server,
                args.seconds,
                args.full_lists,
                1_000_000,
            )
            .await?;
            contention = Some((alone.percentile(99.0), beside.percentile(99.0), lists));
        }
        rows.push(Row {
            size,
            creates,
            gets: measured[0],
            lists_500: measured[1],
            lists_10: measured[2],
            rss_loaded,
            restart,
            rss_restarted,
            loaded_from,
        });
    }
    println!(
        "\n| Apps | creates/s | gets/s | lists of 500/s | lists of 10/s | RSS after loading | restart to ready | RSS after restart |\n|---|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} MiB | {:.0} ms{} | {:.1} MiB |",
            r.size,
            r.creates,
            r.gets,
            r.lists_500,
            r.lists_10,
            r.rss_loaded,
            r.restart.as_secs_f64() * 1000.0,
            r.loaded_from
                .as_deref()
                .map(|f| format!(" (from {f})"))
                .unwrap_or_default(),
            r.rss_restarted
        );
    }
    if let Some((alone, beside, lists)) = contention {
        println!(
            "\ncreate p99 (8 in flight) at 100k Apps: {alone:.2} ms alone, {beside:.2} ms with {} concurrent full lists of the 100k ({lists:.1} full lists/s): {:.2}×",
            args.full_lists,
            beside / alone.max(0.001)
        );
    }
    Ok(())
}
