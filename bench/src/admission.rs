//! The admission benchmark: AdmissionReviews posted by N concurrent connections (as
//! kube-apiserver's webhook client does), a third each allowed, denied, and mutated, against a
//! server holding a set of NamespaceReservations.

use crate::client::Client;
use crate::report::{HEADER, Samples};
use crate::server::Server;
use anyhow::{Result, bail};
use bytes::Bytes;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `admission`.
#[derive(clap::Args)]
pub struct Args {
    /// The server binary (default: admission-apiserver next to this binary).
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// Concurrent connections, one review in flight on each.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Use HTTP/2 instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// NamespaceReservations stored before the run.
    #[arg(long, default_value_t = 1000)]
    reservations: usize,
    /// Seconds of load (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const VALIDATING: &str = "/apis/admission.example.com/v1/validatingadmissionreviews";
const MUTATING: &str = "/apis/admission.example.com/v1/mutatingadmissionreviews";

/// A namespace-create review as kube-apiserver 1.36 sends it (the shape of the captured one).
fn review(i: usize, namespace: &str, user: &str) -> Bytes {
    let body = json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": format!("00000000-0000-4000-8000-{i:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "requestKind": {"group": "", "version": "v1", "kind": "Namespace"},
            "requestResource": {"group": "", "version": "v1", "resource": "namespaces"},
            "name": namespace,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": user,
                "groups": ["developers", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=7b7bcf86951095447a45c7e5e81a3bbd58c6ffd5bb63bfae34b16046be05e23e"]}
            },
            "object": {
                "kind": "Namespace", "apiVersion": "v1",
                "metadata": {
                    "name": namespace,
                    "uid": "ca5e4329-f262-4f16-a576-e1bcf7886bd3",
                    "creationTimestamp": "2026-11-24T21:42:09Z",
                    "labels": {"kubernetes.io/metadata.name": namespace},
                    "managedFields": [{
                        "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                        "time": "2026-11-24T21:42:09Z", "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}}
                    }]
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-create", "fieldValidation": "Strict"}
        }
    });
    Bytes::from(body.to_string())
}

/// The mix: (path, body, expected `allowed`).
fn mix(reservations: usize) -> Vec<(&'static str, Bytes, bool)> {
    let mut out = Vec::new();
    for i in 0..300 {
        let reserved = format!("team-{}", i % reservations.max(1));
        match i % 3 {
            0 => out.push((VALIDATING, review(i, &format!("free-{i}"), "bob"), true)),
            1 => out.push((VALIDATING, review(i, &reserved, "mallory"), false)),
            _ => out.push((MUTATING, review(i, &reserved, "alice"), true)),
        }
    }
    out
}

/// Runs the benchmark and prints a Markdown report.
pub async fn run(args: Args) -> Result<()> {
    let server = Server::start(args.server_binary.clone(), &[])?;
    let client = Client::new(&server.base, &server.token, &server.ca_pem, args.http2)?;
    for i in 0..args.reservations {
        let body = json!({
            "apiVersion": "admission.example.com/v1", "kind": "NamespaceReservation",
            "metadata": {"name": format!("team-{i}")},
            "spec": {"owners": {"users": ["alice"], "groups": ["platform"]}}
        });
        let (code, text) = client
            .send(
                "POST",
                "/apis/admission.example.com/v1/namespacereservations",
                Some("application/json"),
                Bytes::from(body.to_string()),
            )
            .await?;
        if code != 201 {
            bail!(
                "creating a reservation: {code} {}",
                String::from_utf8_lossy(&text)
            );
        }
    }
    let mix = Arc::new(mix(args.reservations));
    let rss_before = server.rss_mib();
    let warmup = Instant::now() + Duration::from_secs(1);
    let deadline = warmup + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let (client, mix) = (client.clone(), mix.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut wrong = 0u64;
            let mut i = worker;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let (path, body, allowed) = &mix[i % mix.len()];
                i += 1;
                let result = client
                    .send("POST", path, Some("application/json"), body.clone())
                    .await;
                let measured = now >= warmup;
                match result {
                    Ok((200, answer)) => {
                        let expected = if *allowed {
                            "\"allowed\":true"
                        } else {
                            "\"allowed\":false"
                        };
                        if memchr::memmem::find(&answer, expected.as_bytes()).is_none() {
                            wrong += 1;
                        }
                        if measured {
                            samples.add(now.elapsed());
                        }
                    }
                    _ => samples.errors += 1,
                }
            }
            (samples, wrong)
        }));
    }
    let mut all = Samples::default();
    let mut wrong = 0;
    for t in tasks {
        if let Ok((s, w)) = t.await {
            all.merge(s);
            wrong += w;
        }
    }
    println!(
        "admission benchmark: {} connections over {}, {} reservations, {}s (after 1s warm-up); \
         a third each allowed, denied, mutated\n",
        args.connections,
        if args.http2 { "HTTP/2" } else { "HTTP/1.1" },
        args.reservations,
        args.seconds
    );
    println!("{HEADER}");
    println!(
        "{}",
        all.line("AdmissionReview", Duration::from_secs(args.seconds))
    );
    println!(
        "\nwrong decisions: {wrong}\nserver RSS: {rss_before:.1} MiB before, {:.1} MiB after",
        server.rss_mib()
    );
    Ok(())
}
