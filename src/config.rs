//! Command line and configuration: flags (named as k8s.io/apiserver names them) are parsed into
//! [`Options`], checked once by [`Options::validate`], and the server runs from the resulting
//! [`Config`] only, so it cannot start half-configured.

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "admission-apiserver",
    version,
    about = "A Kubernetes extension API server for admission.example.com"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API.
    Serve(Options),
}

/// Flags of `serve`.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Directory of the store, the generated credentials and the kubeconfig.
    #[arg(long, default_value = "./data", env = "ADMISSION_DATA_DIR")]
    pub data_dir: PathBuf,
    /// IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port to serve HTTPS on (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    pub secure_port: u16,
    /// Serving certificate (PEM). Without it a certificate for localhost is generated.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of --tls-cert-file (PEM).
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// Watches without timeoutSeconds end after a random duration between this and twice this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub min_request_timeout: u64,
    /// Seconds between the BOOKMARK events of watches that allow them.
    #[arg(long, default_value_t = 60)]
    pub watch_bookmark_interval: u64,
    /// Store events kept for watches and paged lists that start in the past.
    #[arg(long, default_value_t = 10_000)]
    pub watch_history: usize,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    pub log_format: String,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where data and generated credentials live.
    pub data_dir: PathBuf,
    /// Listening address.
    pub listen: SocketAddr,
    /// Operator-provided serving certificate and key.
    pub serving: Option<(PathBuf, PathBuf)>,
    /// See [`Options::min_request_timeout`].
    pub min_request_timeout: Duration,
    /// See [`Options::watch_history`].
    pub watch_history: usize,
    /// See [`Options::watch_bookmark_interval`].
    pub bookmark_interval: Duration,
    /// Emit JSON logs.
    pub json_logs: bool,
}

impl Options {
    /// Checks the flags and turns them into a [`Config`].
    pub fn validate(self) -> Result<Config> {
        let serving = match (self.tls_cert_file, self.tls_private_key_file) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("--tls-cert-file and --tls-private-key-file must be given together"),
        };
        if self.min_request_timeout == 0 {
            bail!("--min-request-timeout must be positive");
        }
        if self.watch_bookmark_interval == 0 {
            bail!("--watch-bookmark-interval must be positive");
        }
        if self.watch_history == 0 {
            bail!("--watch-history must be positive");
        }
        let json_logs = match self.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("--log-format must be text or json, not {other:?}"),
        };
        Ok(Config {
            data_dir: self.data_dir,
            listen: SocketAddr::new(self.bind_address, self.secure_port),
            serving,
            min_request_timeout: Duration::from_secs(self.min_request_timeout),
            watch_history: self.watch_history,
            bookmark_interval: Duration::from_secs(self.watch_bookmark_interval),
            json_logs,
        })
    }
}
