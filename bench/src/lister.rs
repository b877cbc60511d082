//! `full-lists` (hidden): the readers of the core benchmark's contention phase, run as a child
//! process at the lowest CPU priority (`nice -n 19`). On a machine shared with the server the
//! load generator's own work on 100k-object lists (TLS decryption, reading ~80 MB per list)
//! would otherwise take the CPU the measured creates need; at the lowest priority it runs on
//! what is left, so the phase measures what the server's lists cost its writes, as it would with
//! the readers on another machine.

use crate::client::Client;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `full-lists`; the token and CA come from `ADMISSION_BENCH_TOKEN` and
/// `ADMISSION_BENCH_CA` (PEM).
#[derive(clap::Args)]
pub struct Args {
    /// `https://127.0.0.1:<port>` of the server.
    #[arg(long)]
    base: String,
    /// The collection to list.
    #[arg(long)]
    path: String,
    /// Lists in flight.
    #[arg(long)]
    lists: usize,
    /// Seconds to list for.
    #[arg(long)]
    seconds: f64,
}

/// Lists until the time is up and prints `<lists completed> <seconds>`.
pub async fn run(args: Args) -> Result<()> {
    let token = std::env::var("ADMISSION_BENCH_TOKEN").context("ADMISSION_BENCH_TOKEN")?;
    let ca = std::env::var("ADMISSION_BENCH_CA").context("ADMISSION_BENCH_CA")?;
    let client = Client::new(&args.base, &token, &ca, false)?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let path = args.path;
    let (done, took) = crate::core::read_phase(
        &client,
        args.lists,
        deadline,
        Arc::new(move || path.clone()),
    )
    .await;
    println!("{} {}", done.len(), took.as_secs_f64());
    Ok(())
}

/// Full lists running in a `full-lists` child process at the lowest CPU priority.
pub struct Listers {
    child: tokio::process::Child,
}

impl Listers {
    /// Starts `lists` concurrent full lists of `path` on `base` for `seconds`.
    pub fn start(
        base: &str,
        token: &str,
        ca_pem: &str,
        path: &str,
        lists: usize,
        seconds: f64,
    ) -> Result<Listers> {
        let child = tokio::process::Command::new("nice")
            .args(["-n", "19"])
            .arg(std::env::current_exe()?)
            .args(["full-lists", "--base", base, "--path", path])
            .args([
                "--lists",
                &lists.to_string(),
                "--seconds",
                &seconds.to_string(),
            ])
            .env("ADMISSION_BENCH_TOKEN", token)
            .env("ADMISSION_BENCH_CA", ca_pem)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the full-list readers (is `nice` on the PATH?)")?;
        Ok(Listers { child })
    }

    /// Waits for the readers to finish; full lists per second.
    pub async fn rate(self) -> Result<f64> {
        let out = self.child.wait_with_output().await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace().map(str::parse::<f64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(n)), Some(Ok(s))) if s > 0.0 => Ok(n / s),
            _ => anyhow::bail!("the full-list readers reported {text:?}"),
        }
    }
}
