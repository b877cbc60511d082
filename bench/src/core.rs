//! The core benchmark: durable creates, gets, lists of 500, and memory at 10k and 100k Apps.

use crate::client::Client;
use crate::report::{HEADER, Samples};
use crate::server::Server;
use anyhow::Result;
use bytes::Bytes;
use rand::Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Options of `core`.
#[derive(clap::Args)]
pub struct Args {
    /// The server binary (default: admission-apiserver next to this binary).
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Use HTTP/2 (streams on shared connections) instead of one HTTP/1.1 connection each.
    #[arg(long)]
    http2: bool,
    /// Apps created first (500 per namespace).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Total Apps for the memory measurement at scale (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    large: usize,
    /// Seconds each read phase runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const PER_NAMESPACE: usize = 500;

fn app_body(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{{"name":"app-{i}","namespace":"ns-{}","labels":{{"app":"bench","tier":"web"}}}},"spec":{{"version":"v1.0.0","replicas":3}}}}"#,
        i / PER_NAMESPACE
    ))
}

/// Creates Apps `from..to` with `concurrency` workers.
async fn create(
    client: &Client,
    from: usize,
    to: usize,
    concurrency: usize,
) -> (Samples, Duration) {
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    break;
                }
                let path = format!(
                    "/apis/admission.example.com/v1/namespaces/ns-{}/apps",
                    i / PER_NAMESPACE
                );
                let t = Instant::now();
                match client
                    .send("POST", &path, Some("application/json"), app_body(i))
                    .await
                {
                    Ok((201, _)) => s.add(t.elapsed()),
                    _ => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    (all, started.elapsed())
}

/// Runs requests made by `path_of` for a duration with `concurrency` workers.
async fn read_phase(
    client: &Client,
    concurrency: usize,
    seconds: u64,
    path_of: Arc<dyn Fn() -> String + Send + Sync>,
) -> (Samples, Duration) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
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
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.merge(s);
        }
    }
    (all, started.elapsed())
}

fn get_paths(objects: usize) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || {
        let i = rand::rng().random_range(0..objects);
        format!(
            "/apis/admission.example.com/v1/namespaces/ns-{}/apps/app-{i}",
            i / PER_NAMESPACE
        )
    })
}

fn list_paths(objects: usize) -> Arc<dyn Fn() -> String + Send + Sync> {
    let namespaces = (objects / PER_NAMESPACE).max(1);
    Arc::new(move || {
        let n = rand::rng().random_range(0..namespaces);
        format!("/apis/admission.example.com/v1/namespaces/ns-{n}/apps")
    })
}

/// The get and list phases with `stored` Apps, each printed as a report line.
async fn reads(client: &Client, args: &Args, stored: usize) {
    let phases = [
        (format!("get, {stored} stored"), get_paths(stored)),
        (
            format!("list of {PER_NAMESPACE}, {stored} stored"),
            list_paths(stored),
        ),
    ];
    for (name, paths) in phases {
        let (mut s, d) = read_phase(client, args.concurrency, args.seconds, paths).await;
        println!("{}", s.line(&name, d));
    }
}

/// Runs the core benchmark and prints a Markdown report.
pub async fn run(args: Args) -> Result<()> {
    let server = Server::start(args.server_binary.clone(), &[])?;
    let client = Client::new(&server.base, &server.token, &server.ca_pem, args.http2)?;
    println!(
        "core benchmark: {} requests in flight over {}, {} Apps then {} Apps\n",
        args.concurrency,
        if args.http2 { "HTTP/2" } else { "HTTP/1.1" },
        args.objects,
        args.large
    );
    println!("{HEADER}");
    let (mut s, d) = create(&client, 0, args.objects, args.concurrency).await;
    println!(
        "{}",
        s.line(&format!("create (durable), 0→{}", args.objects), d)
    );
    let rss_small = server.rss_mib();
    reads(&client, &args, args.objects).await;
    let mut rss_large = None;
    let mut rss_created = None;
    if args.large > args.objects {
        let (mut s, d) = create(&client, args.objects, args.large, args.concurrency).await;
        println!(
            "{}",
            s.line(
                &format!("create (durable), {}→{}", args.objects, args.large),
                d
            )
        );
        rss_created = Some(server.rss_mib());
        reads(&client, &args, args.large).await;
        rss_large = Some(server.rss_mib());
    }
    println!(
        "\n| server RSS | MiB |\n|---|---|\n| {} Apps | {rss_small:.1} |",
        args.objects
    );
    if let Some(r) = rss_created {
        println!("| {} Apps (after creating them) | {r:.1} |", args.large);
    }
    if let Some(r) = rss_large {
        println!(
            "| {} Apps (after the get and list phases) | {r:.1} |",
            args.large
        );
        let server = server.restart()?;
        let client = Client::new(&server.base, &server.token, &server.ca_pem, args.http2)?;
        let (mut s, _) = read_phase(&client, 1, 1, list_paths(args.large)).await;
        let _ = s.percentile(50.0);
        println!(
            "| {} Apps (restarted, loaded from disk) | {:.1} |",
            args.large,
            server.rss_mib()
        );
    }
    Ok(())
}
