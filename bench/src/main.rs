//! `admission-bench`: drives a real `admission-apiserver` over TLS and reports throughput,
//! latency percentiles and server memory. Run on purpose (see the README), never in tests.
//!
//! - `core`: durable creates/s, gets/s, lists of 500/s, RSS at 10k and 100k Apps.
//! - `watch`: many watchers on one resource while a writer creates at a fixed rate.
//! - `admission`: AdmissionReviews/s and latency from N connections.
//! - `overload`: creates from 10x the in-flight limit: admitted latency, 429s, RSS.

mod admission;
mod client;
mod core;
mod fleet;
mod lister;
mod overload;
mod peer;
mod report;
mod server;
mod watch;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "admission-bench", about = "Benchmarks for admission-apiserver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates, gets and lists of 500, with RSS at 10k and 100k Apps.
    Core(core::Args),
    /// N watchers while a writer creates objects at a fixed rate.
    Watch(watch::Args),
    /// AdmissionReviews from N concurrent connections.
    Admission(admission::Args),
    /// Creates from 10x the in-flight limit of connections, as a non-master user.
    Overload(overload::Args),
    /// The full-list readers of `core`'s contention phase (run by `core` itself).
    #[command(hide = true)]
    FullLists(lister::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Core(a) => core::run(a).await,
            Command::Watch(a) => watch::run(a).await,
            Command::Admission(a) => admission::run(a).await,
            Command::Overload(a) => overload::run(a).await,
            Command::FullLists(a) => lister::run(a).await,
        }
    })
}
