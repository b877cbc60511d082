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
    Serve(Box<Options>),
    /// Copy every object of a sled store into etcd (stop the server first); uids, names and
    /// contents are kept, resourceVersions become etcd's.
    Migrate(MigrateOptions),
}

/// The etcd flags, named as k8s.io/apiserver names them.
#[derive(Debug, Clone, Args)]
pub struct EtcdFlags {
    /// The etcd members' client URLs (comma-separated, `https://host:2379`). `serve` stores
    /// objects there instead of in sled, so that several replicas can serve one API.
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Option<Vec<String>>,
    /// Prefix of every key this server writes in etcd.
    #[arg(long, default_value = "/registry/admission.example.com")]
    pub etcd_prefix: String,
    /// CA bundle (PEM) that etcd's serving certificates chain to (absent: the system's roots).
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate (PEM) to present to etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Key of --etcd-certfile (PEM).
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// How often `serve` compacts etcd's history (Go duration, 0 disables); replicas coordinate
    /// so that one compacts per interval. `migrate` does not compact.
    #[arg(long, default_value = "5m0s", value_parser = crate::server::deadline::duration_flag)]
    pub etcd_compaction_interval: Duration,
}

/// Flags of `migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateOptions {
    /// The data directory of the sled server to copy from (its `store`).
    #[arg(long, default_value = "./data", env = "ADMISSION_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Where to copy to.
    #[command(flatten)]
    pub etcd: EtcdFlags,
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
    /// HTTP/2 streams a client may have open on one connection (0: k8s.io/apiserver's default, 100).
    #[arg(long, default_value_t = 0)]
    pub http2_max_streams_per_connection: u32,
    /// Most non-mutating requests served at once (watches not counted); beyond it 429. 0: no limit.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// Most mutating requests served at once; beyond it 429. 0: no limit.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// Time limit of non-long-running requests (Go duration); a `timeout` parameter may shorten it.
    #[arg(long, default_value = "1m0s", value_parser = crate::server::deadline::duration_flag)]
    pub request_timeout: Duration,
    /// After SIGTERM, keep serving this long (Go duration) with /readyz failing, before draining.
    #[arg(long, default_value = "0s", value_parser = crate::server::deadline::duration_flag)]
    pub shutdown_delay_duration: Duration,
    /// Write audit events here ('-': standard output); needs --audit-policy-file.
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// The audit.k8s.io/v1 Policy deciding what is audited, and at which level.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// Days to keep rotated audit log files (0: no age limit).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxage: u64,
    /// Rotated audit log files to keep (0: no count limit).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
    /// Megabytes before the audit log is rotated (0: never).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// Audit events buffered before new ones are dropped (and counted).
    #[arg(long, default_value_t = 10_000)]
    pub audit_log_batch_buffer_size: usize,

    /// Delegated mode: kubeconfig of the kube-apiserver that reviews tokens (TokenReview) and
    /// publishes `extension-apiserver-authentication`.
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Delegated mode: kubeconfig of the kube-apiserver that authorizes requests
    /// (SubjectAccessReview).
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Delegated mode: kubeconfig used for both when the two above are not given, and for Events.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// CA bundle verifying x509 client certificates (default: from the ConfigMap).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// CA bundle verifying the front proxy's client certificate (default: from the ConfigMap).
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Common names the front proxy's certificate may have (comma-separated; empty: any).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Option<Vec<String>>,
    /// Headers carrying the user name (default: from the ConfigMap, else X-Remote-User).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_username_headers: Option<Vec<String>>,
    /// Headers carrying the user uid (default: from the ConfigMap, else X-Remote-Uid).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Option<Vec<String>>,
    /// Headers carrying groups (default: from the ConfigMap, else X-Remote-Group).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_group_headers: Option<Vec<String>>,
    /// Prefixes of headers carrying extra attributes (default: from the ConfigMap, else X-Remote-Extra-).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Option<Vec<String>>,
    /// Delegated mode: let requests without credentials proceed as system:anonymous (authorization still applies).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
    /// Delegated mode: do not read the extension-apiserver-authentication ConfigMap.
    #[arg(long)]
    pub authentication_skip_lookup: bool,
    /// Seconds a TokenReview answer is cached.
    #[arg(long, default_value_t = 10)]
    pub authentication_token_webhook_cache_ttl: u64,
    /// Seconds a SubjectAccessReview answer is cached.
    #[arg(long, default_value_t = 10)]
    pub authorization_webhook_cache_ttl: u64,
    /// Audiences a bearer token must be for (default: kube-apiserver's own).
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Option<Vec<String>>,
    /// Where objects are stored when not in sled.
    #[command(flatten)]
    pub etcd: EtcdFlags,
}

/// Delegated-mode settings.
#[derive(Debug, Clone)]
pub struct Delegation {
    /// Where TokenReviews and the ConfigMap go (`None`: in-cluster).
    pub authentication: Option<PathBuf>,
    /// Where SubjectAccessReviews go (`None`: in-cluster).
    pub authorization: Option<PathBuf>,
    /// General kube-apiserver access (Events).
    pub kubeconfig: Option<PathBuf>,
    /// Flag values that take precedence over the ConfigMap.
    pub overrides: crate::auth::config_map::Overrides,
    /// See [`Options::anonymous_auth`].
    pub anonymous: bool,
    /// See [`Options::authentication_skip_lookup`].
    pub skip_lookup: bool,
    /// TokenReview cache time.
    pub token_ttl: Duration,
    /// SubjectAccessReview cache time.
    pub authorization_ttl: Duration,
    /// Token audiences.
    pub audiences: Vec<String>,
}

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// sled under `<data-dir>/store` (one replica).
    Sled,
    /// etcd (any number of replicas).
    Etcd(EtcdConfig),
}

/// The etcd flags, checked and read.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Member URLs.
    pub servers: Vec<String>,
    /// Key prefix.
    pub prefix: String,
    /// TLS material (CA, client certificate and key), PEM.
    pub tls: Option<storage::etcd::EtcdTls>,
    /// Compaction interval; `None` disables compaction.
    pub compaction_interval: Option<Duration>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where objects are stored.
    pub storage: StorageBackend,
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
    /// Transport settings (see [`Options::http2_max_streams_per_connection`]).
    pub transport: crate::server::listener::Transport,
    /// Delegated authentication and authorization, when running behind kube-apiserver.
    pub delegation: Option<Delegation>,
    /// See [`Options::max_requests_inflight`].
    pub max_requests_inflight: usize,
    /// See [`Options::max_mutating_requests_inflight`].
    pub max_mutating_requests_inflight: usize,
    /// See [`Options::request_timeout`].
    pub request_timeout: Duration,
    /// See [`Options::shutdown_delay_duration`].
    pub shutdown_delay: Duration,
    /// The audit policy and log, when auditing is on.
    pub audit: Option<(crate::audit::policy::Policy, crate::audit::log::LogOptions)>,
}

fn read_pem(path: &Option<PathBuf>, flag: &str) -> Result<Option<String>> {
    match path {
        None => Ok(None),
        Some(p) => std::fs::read_to_string(p)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", p.display())),
    }
}

/// The standard in-cluster service account directory.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl EtcdFlags {
    /// The storage backend the etcd flags select (sled when `--etcd-servers` is absent).
    pub fn backend(&self) -> Result<StorageBackend> {
        let Some(servers) = &self.etcd_servers else {
            if self.etcd_cafile.is_some()
                || self.etcd_certfile.is_some()
                || self.etcd_keyfile.is_some()
            {
                bail!("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd-servers");
            }
            return Ok(StorageBackend::Sled);
        };
        let servers: Vec<String> = servers
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            bail!("--etcd-servers must name at least one etcd member");
        }
        for s in &servers {
            let Some(rest) = s
                .strip_prefix("http://")
                .or_else(|| s.strip_prefix("https://"))
            else {
                bail!("--etcd-servers: {s:?} is not an http:// or https:// URL");
            };
            if rest.is_empty() || rest.contains('/') && !rest.ends_with('/') {
                bail!("--etcd-servers: {s:?} must be scheme://host:port");
            }
        }
        if !self.etcd_prefix.starts_with('/') || self.etcd_prefix.trim_end_matches('/').is_empty() {
            bail!(
                "--etcd-prefix must be an absolute key prefix such as /registry/admission.example.com, not {:?}",
                self.etcd_prefix
            );
        }
        let read = |path: &Option<PathBuf>, flag: &str| -> Result<Option<Vec<u8>>> {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", p.display()))
                })
                .transpose()
        };
        let ca = read(&self.etcd_cafile, "--etcd-cafile")?;
        let identity = match (
            read(&self.etcd_certfile, "--etcd-certfile")?,
            read(&self.etcd_keyfile, "--etcd-keyfile")?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("--etcd-certfile and --etcd-keyfile must be given together"),
        };
        // https:// members with no --etcd-cafile are checked against the system's roots.
        let https = servers.iter().any(|s| s.starts_with("https://"));
        let tls = (https || ca.is_some() || identity.is_some())
            .then_some(storage::etcd::EtcdTls { ca, identity });
        Ok(StorageBackend::Etcd(EtcdConfig {
            servers,
            prefix: self.etcd_prefix.clone(),
            tls,
            compaction_interval: (!self.etcd_compaction_interval.is_zero())
                .then_some(self.etcd_compaction_interval),
        }))
    }
}

/// Whether the process runs in a Kubernetes pod with a service account.
pub fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && std::path::Path::new(SERVICE_ACCOUNT_DIR)
            .join("token")
            .exists()
}

impl Options {
    /// Checks the flags and turns them into a [`Config`].
    pub fn validate(self) -> Result<Config> {
        let storage = self.etcd.backend()?;
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
        if self.request_timeout.is_zero() {
            bail!("--request-timeout must be positive");
        }
        let audit = match (&self.audit_policy_file, &self.audit_log_path) {
            (Some(policy), Some(path)) => {
                let text = std::fs::read_to_string(policy).map_err(|e| {
                    anyhow::anyhow!("--audit-policy-file {}: {e}", policy.display())
                })?;
                let policy = crate::audit::policy::Policy::parse(&text).map_err(|e| {
                    anyhow::anyhow!("--audit-policy-file {}: {e}", policy.display())
                })?;
                Some((
                    policy,
                    crate::audit::log::LogOptions {
                        path: path.clone(),
                        max_age_days: self.audit_log_maxage,
                        max_backups: self.audit_log_maxbackup,
                        max_size_mb: self.audit_log_maxsize,
                        buffer: self.audit_log_batch_buffer_size.max(1),
                    },
                ))
            }
            (None, Some(_)) => bail!(
                "--audit-log-path needs --audit-policy-file: without a policy nothing is audited"
            ),
            (Some(_), None) => bail!("--audit-policy-file needs --audit-log-path"),
            (None, None) => None,
        };
        let delegated = self.authentication_kubeconfig.is_some()
            || self.authorization_kubeconfig.is_some()
            || self.kubeconfig.is_some()
            || in_cluster();
        let delegation = if delegated {
            let overrides = crate::auth::config_map::Overrides {
                client_ca: read_pem(&self.client_ca_file, "--client-ca-file")?,
                request_header_ca: read_pem(
                    &self.requestheader_client_ca_file,
                    "--requestheader-client-ca-file",
                )?,
                allowed_names: self
                    .requestheader_allowed_names
                    .map(|v| v.into_iter().filter(|s| !s.is_empty()).collect()),
                username_headers: self.requestheader_username_headers,
                uid_headers: self.requestheader_uid_headers,
                group_headers: self.requestheader_group_headers,
                extra_prefixes: self.requestheader_extra_headers_prefix,
            };
            overrides.trust().map_err(|e| anyhow::anyhow!(e))?;
            Some(Delegation {
                authentication: self
                    .authentication_kubeconfig
                    .or_else(|| self.kubeconfig.clone()),
                authorization: self
                    .authorization_kubeconfig
                    .or_else(|| self.kubeconfig.clone()),
                kubeconfig: self.kubeconfig,
                overrides,
                anonymous: self.anonymous_auth,
                skip_lookup: self.authentication_skip_lookup,
                token_ttl: Duration::from_secs(self.authentication_token_webhook_cache_ttl),
                authorization_ttl: Duration::from_secs(self.authorization_webhook_cache_ttl),
                audiences: self.api_audiences.unwrap_or_default(),
            })
        } else {
            None
        };
        Ok(Config {
            storage,
            delegation,
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            request_timeout: self.request_timeout,
            shutdown_delay: self.shutdown_delay_duration,
            audit,
            data_dir: self.data_dir,
            listen: SocketAddr::new(self.bind_address, self.secure_port),
            serving,
            min_request_timeout: Duration::from_secs(self.min_request_timeout),
            watch_history: self.watch_history,
            bookmark_interval: Duration::from_secs(self.watch_bookmark_interval),
            json_logs,
            transport: crate::server::listener::Transport {
                http2_max_streams: match self.http2_max_streams_per_connection {
                    0 => crate::server::listener::DEFAULT_HTTP2_MAX_STREAMS,
                    n => n,
                },
            },
        })
    }
}
