//! Graceful shutdown under load, as k8s.io/apiserver does it: after SIGTERM `/readyz` fails
//! first, every request is still served on open and new connections until
//! `--shutdown-delay-duration` has passed, watches then end with a clean end of stream, and no
//! write acknowledged with a 2xx is lost (all are there after a restart).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Server;

const DELAY: Duration = Duration::from_secs(3);

/// What the writers saw.
#[derive(Default)]
struct Seen {
    /// Names of the Apps whose creation was acknowledged.
    acknowledged: Vec<String>,
    /// Acknowledged after /readyz started failing.
    acknowledged_while_unready: usize,
    /// When a request first failed at the transport level (reset, refused, closed).
    first_failure: Option<Instant>,
    /// Answers other than 201 (the server must answer all it accepts properly).
    bad_answers: Vec<(u16, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readyz_first_then_drains_without_losing_writes() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let delay = format!("{}s", DELAY.as_secs());
    let mut server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || Server::start_with(dir, &["--shutdown-delay-duration", &delay])
    })
    .await
    .unwrap();
    let base = server.base.clone();
    let token = server.token.clone();
    let clients = [server.client(false), server.client(true)];
    let seen = Arc::new(Mutex::new(Seen::default()));
    let unready_at: Arc<Mutex<Option<Instant>>> = Arc::default();

    // A watch open across the shutdown.
    let mut watch = server
        .watch(
            "/apis/admission.example.com/v1/namespaces/default/apps?watch=true&labelSelector=load%3Dyes",
            &[],
            true,
        )
        .await;
    assert_eq!(watch.status, 200);

    // Writers over HTTP/1.1 and HTTP/2, each on kept-alive connections.
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = clients[w % 2].clone();
        let (base, token, seen, unready_at) = (
            base.clone(),
            token.clone(),
            seen.clone(),
            unready_at.clone(),
        );
        writers.push(tokio::spawn(async move {
            let started = Instant::now();
            for i in 0.. {
                if started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let name = format!("w{w}-{i}");
                let body = serde_json::json!({"apiVersion": "admission.example.com/v1", "kind": "App",
                    "metadata": {"name": name, "labels": {"load": "yes"}},
                    "spec": {"version": "v1.0.0", "replicas": 1}});
                let req = http::Request::post(format!(
                    "{base}/apis/admission.example.com/v1/namespaces/default/apps"
                ))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap();
                match client.request(req).await {
                    Ok(resp) => {
                        let code = resp.status().as_u16();
                        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                        let mut s = seen.lock();
                        match (code, body) {
                            (201, Ok(_)) => {
                                s.acknowledged.push(name);
                                if unready_at.lock().is_some() {
                                    s.acknowledged_while_unready += 1;
                                }
                            }
                            (code, Ok(b)) => s.bad_answers.push((code, support::text(&b))),
                            (_, Err(_)) => {
                                s.first_failure.get_or_insert_with(Instant::now);
                                break;
                            }
                        }
                    }
                    Err(_) => {
                        seen.lock().first_failure.get_or_insert_with(Instant::now);
                        break;
                    }
                }
            }
        }));
    }
    // Let the load run, then ask the server to stop.
    while seen.lock().acknowledged.len() < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sigterm = Instant::now();
    server.terminate();
    // /readyz fails first, on new connections, while everything else is still served.
    let probe = server.client(false);
    loop {
        let req = http::Request::get(format!("{base}/readyz"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = probe.request(req).await.expect("readyz is answered");
        if resp.status() == 500 {
            let text = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(support::text(&text).contains("[-]shutdown failed"));
            *unready_at.lock() = Some(Instant::now());
            break;
        }
        assert!(
            sigterm.elapsed() < DELAY,
            "readyz did not fail before the delay passed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Watches end cleanly once the delay has passed: an end of stream, not a reset.
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(30), watch_frame(&mut watch)).await {
            Ok(Some(Ok(()))) => continue,
            Ok(Some(Err(e))) => panic!("the watch was cut: {e}"),
            Ok(None) => break Instant::now(),
            Err(_) => panic!("the watch did not end"),
        }
    };
    assert!(ended.duration_since(sigterm) >= DELAY);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        server.wait_exit(Duration::from_secs(60)),
        "the server exits"
    );

    let seen = std::mem::take(&mut *seen.lock());
    assert!(seen.bad_answers.is_empty(), "{:?}", seen.bad_answers);
    let failed = seen
        .first_failure
        .expect("clients lose the server after the drain");
    assert!(
        failed.duration_since(sigterm) >= DELAY,
        "a client lost its connection {:?} after SIGTERM, before the {DELAY:?} delay",
        failed.duration_since(sigterm)
    );
    assert!(
        seen.acknowledged_while_unready > 0,
        "writes are served while readyz fails"
    );

    // Every acknowledged write is there after a restart.
    let restarted = tokio::task::spawn_blocking(move || Server::start_with(dir, &[]))
        .await
        .unwrap();
    let r = restarted
        .request(
            "GET",
            "/apis/admission.example.com/v1/namespaces/default/apps?labelSelector=load%3Dyes",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let stored: std::collections::HashSet<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = seen
        .acknowledged
        .iter()
        .filter(|n| !stored.contains(*n))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

/// Reads one frame of a stream: `None` at a clean end.
async fn watch_frame(w: &mut support::WatchStream) -> Option<Result<(), String>> {
    w.frame().await
}
