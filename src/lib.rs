//! admission-apiserver: a Kubernetes extension API server for `admission.example.com`, in Rust.
//!
//! # Code map
//! - [`config`]: flags → validated [`config::Config`].
//! - [`server`]: TLS serving (HTTP/1.1 and HTTP/2), standalone credentials, the request
//!   pipeline ([`server::pipeline`]) with its in-flight limits ([`server::inflight`]) and
//!   deadlines ([`server::deadline`]), graceful shutdown, and the shared state.
//! - [`auth`]: who is calling and what they may do: the standalone admin token, or (behind
//!   kube-apiserver) front-proxy headers, client certificates, TokenReview and
//!   SubjectAccessReview, following `extension-apiserver-authentication`.
//! - [`kube_client`]: kube-apiserver through kube-rs (kubeconfigs with exec plugins, in-cluster
//!   service accounts), with the retries delegated mode needs.
//! - [`audit`]: the audit policy and the `audit.k8s.io/v1` event log.
//! - [`migrate`]: the `migrate` command, copying a sled store into etcd.
//! - [`metrics`]: Prometheus metrics under kube-apiserver's names.
//! - [`api`]: the HTTP API — errors rendered as `Status` ([`api::error`]), request info,
//!   queries and selectors, content negotiation, discovery, OpenAPI, and the REST verbs
//!   ([`api::handlers`]: get/list, writes, patches, watch, scale).
//! - [`registry`]: Kubernetes object semantics over the store (create, guarded updates,
//!   deletion with finalizers), shared by every kind.
//! - [`admission`]: the admission webhook backend: AdmissionReviews answered from the
//!   NamespaceReservation policy, denials reported as Events.
//! - [`kinds`]: one module per served kind (names, columns, subresources, extra checks), and
//!   the served versions (`v1`, deprecated `v1beta1`).
//! - [`conversion`]: objects between served versions, one module per pair.
//! - [`schema`]: structural schemas from `openapi/`, driving validation, defaulting, pruning and
//!   the CEL rules (`x-kubernetes-validations`).
//! - [`cel`]: compiling and running CEL expressions with kube's cost limits.
//! - [`field_error`]: field validation errors (`field.Error`) and Go quoting, shared by every layer.
//! - [`fields`]: field sets, comparisons and `managedFields`.
//! - [`object`]: metadata accessors and metadata/name validation.
//! - [`watch_cache`]: one storage subscription per resource fanned out to bounded watcher queues.
//! - crate `storage` (workspace member): the versioned store (sled, in-memory).
//!
//! # Invariants
//! - Every error a client sees is built in [`api::error`]: a `Status`, or plain text where
//!   kube-apiserver's mux and filters answer in plain text.
//! - Handlers never touch sled; storage never sees HTTP or Kubernetes types.
//! - Objects are stored once, in the storage version; stored bytes are exactly what a GET in
//!   that version serves (lists are spliced from them) unless a default is missing from them.

pub mod admission;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cel;
pub mod config;
pub mod conversion;
pub mod field_error;
pub mod fields;
pub mod kinds;
pub mod kube_client;
pub mod metrics;
pub mod migrate;
pub mod object;
pub mod registry;
pub mod schema;
pub mod server;
pub mod watch_cache;

#[cfg(test)]
mod test_support;

/// Entry point of the binary: parses flags, sets up logging, runs the command.
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = config::Cli::parse();
    match cli.command {
        config::Command::Serve(options) => {
            let options = *options;
            let config = match options.validate() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            init_logging(config.json_logs);
            let Some(runtime) = runtime() else {
                return std::process::ExitCode::FAILURE;
            };
            match runtime.block_on(server::run(config)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        config::Command::Migrate(options) => {
            init_logging(false);
            let Some(runtime) = runtime() else {
                return std::process::ExitCode::FAILURE;
            };
            match runtime.block_on(migrate::run(options)) {
                Ok(report) if report.conflicting.is_empty() => {
                    println!(
                        "copied {} objects to etcd ({} were there already)",
                        report.copied, report.present
                    );
                    std::process::ExitCode::SUCCESS
                }
                Ok(report) => {
                    eprintln!(
                        "error: etcd holds other objects under {} key(s), left as they are: {}",
                        report.conflicting.len(),
                        report.conflicting.join(", ")
                    );
                    std::process::ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

/// The multi-threaded runtime commands run on (`None`, said on stderr, when it cannot start).
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the runtime: {e}"))
        .ok()
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
