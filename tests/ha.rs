//! Several replicas on one etcd, as a cluster runs them: a 3-member etcd on loopback and 2–3
//! replicas of the real binary started with `--etcd-servers`, driven with raw HTTPS (HTTP/1.1
//! and HTTP/2), kubectl and a kube-rs reflector.
//!
//! - the replicas behave as one API (watches, conflicts, continue tokens, resourceVersions,
//!   admission policy across replicas);
//! - a kube-rs reflector moved from one replica to another resumes without missing or
//!   repeating an event;
//! - kill -9 of an etcd member and then of the leader under write load loses no acknowledged
//!   write, and clients only ever get retryable answers meanwhile;
//! - losing etcd's quorum fails `/readyz` and writes, keeps cached reads, and recovers;
//! - kill -9 of a replica under load: watchers that reconnect to another miss nothing;
//! - etcd unreachable at start: the replica retries and serves once etcd is there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::etcd::testing::EtcdCluster;
use support::{Endpoint, Server};

const APPS: &str = "/apis/admission.example.com/v1/namespaces";

/// An etcd cluster and replicas sharing it (and one set of standalone credentials, as pods
/// share a Secret).
struct Ha {
    etcd: EtcdCluster,
    replicas: Vec<Server>,
}

/// Copies the standalone credentials (CA, serving certificate, admin token) of one data
/// directory into another, so every replica accepts the same client.
fn share_credentials(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("pki")).unwrap();
    for f in [
        "pki/ca.crt",
        "pki/ca.key",
        "pki/serving.crt",
        "pki/serving.key",
        "admin-token",
    ] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

impl Ha {
    async fn start(members: usize, replicas: usize) -> Ha {
        let etcd = EtcdCluster::start(members).await;
        let mut ha = Ha {
            etcd,
            replicas: Vec::new(),
        };
        for _ in 0..replicas {
            ha.add_replica(&[]);
        }
        for r in &ha.replicas {
            r.wait_ready().await;
        }
        ha
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--etcd-servers".into(),
            self.etcd.servers_flag(),
            "--request-timeout".into(),
            "8s".into(),
        ]
    }

    fn add_replica(&mut self, extra: &[&str]) -> &Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        if let Some(first) = self.replicas.first() {
            share_credentials(first.dir.path(), dir.path());
        }
        let mut flags = self.flags();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.replicas.push(Server::start_unready(dir, 0, &flags));
        self.replicas.last().unwrap()
    }
}

/// One request as the admin, or `None` when the connection failed; panics when no answer comes
/// within `limit` (a hang).
async fn try_request(
    s: &Endpoint,
    http2: bool,
    method: &str,
    path: &str,
    body: &str,
    limit: Duration,
) -> Option<(u16, http::HeaderMap, Value)> {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", s.base))
        .header("authorization", format!("Bearer {}", s.token))
        .header(
            "content-type",
            if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            },
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let client = s.client(http2);
    tokio::time::timeout(limit, async move {
        let resp = client.request(req).await.ok()?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).to_string()));
        Some((status, headers, value))
    })
    .await
    .unwrap_or_else(|_| panic!("{method} {path} got no answer within {limit:?}"))
}

async fn request(s: &Server, http2: bool, method: &str, path: &str, body: &str) -> (u16, Value) {
    on(&s.endpoint(), http2, method, path, body).await
}

async fn on(s: &Endpoint, http2: bool, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (code, _, v) = try_request(s, http2, method, path, body, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{method} {path}: connection failed"));
    (code, v)
}

fn app(name: &str, labels: Value) -> String {
    json!({"apiVersion": "admission.example.com/v1", "kind": "App",
        "metadata": {"name": name, "labels": labels},
        "spec": {"version": "v1.0.0", "replicas": 1}})
    .to_string()
}

/// Reads watch events (type, name, resourceVersion) until `until` is true or `limit` passes.
async fn events_until(
    w: &mut support::WatchStream,
    limit: Duration,
    mut until: impl FnMut(&[(String, String, u64)]) -> bool,
) -> Vec<(String, String, u64)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while !until(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(e) = w.next(left).await else { break };
        let t = e["type"].as_str().unwrap().to_string();
        if t == "BOOKMARK" {
            continue;
        }
        let rv = e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        got.push((
            t,
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            rv,
        ));
    }
    got
}

/// A write on one replica reaches filtered watches on another in revision order (HTTP/1.1 and
/// HTTP/2); a stale write on the other is a 409; a page and a resourceVersion from one work on
/// the other; kubectl sees one API; a NamespaceReservation stored through one is enforced by the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behave_as_one_api() {
    let ha = Ha::start(3, 2).await;
    let (a, b) = (&ha.replicas[0], &ha.replicas[1]);
    let ns = format!("{APPS}/ns-a/apps");
    let (code, list) = request(a, false, "GET", &ns, "").await;
    assert_eq!(code, 200);
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch_path = format!(
        "{ns}?watch=true&labelSelector=tier%3Dweb&allowWatchBookmarks=true&resourceVersion={rv}"
    );
    let mut w1 = b.watch(&watch_path, &[], false).await;
    let mut w2 = b.watch(&watch_path, &[], true).await;
    assert_eq!((w1.status, w2.status), (200, 200));
    assert_eq!(w2.version, http::Version::HTTP_2);

    // Writes through A: some selected, some not; one leaves the selection; one is deleted.
    let mut expected = Vec::new();
    for i in 0..6 {
        let labels = if i % 2 == 0 {
            json!({"tier": "web"})
        } else {
            json!({"tier": "db"})
        };
        let (code, obj) = request(a, i % 2 == 1, "POST", &ns, &app(&format!("a{i}"), labels)).await;
        assert_eq!(code, 201, "{obj}");
        // Read-your-writes on the other replica at once.
        let (code, seen) = request(b, false, "GET", &format!("{ns}/a{i}"), "").await;
        assert_eq!(code, 200, "{seen}");
        assert_eq!(seen["metadata"]["uid"], obj["metadata"]["uid"]);
        if i % 2 == 0 {
            expected.push(("ADDED".to_string(), format!("a{i}")));
        }
    }
    // Those consistent reads are counted as kube-apiserver's cacher counts them: served from
    // the cache once current, or (while member versions are still being checked) from etcd.
    let (code, text) = request(b, false, "GET", "/metrics", "").await;
    assert_eq!(code, 200);
    let text = text.as_str().unwrap();
    let served: u64 = ["false", "true"]
        .iter()
        .filter_map(|fallback| {
            let series = format!(
                "apiserver_watch_cache_consistent_read_total{{group=\"admission.example.com\",resource=\"apps\",success=\"true\",fallback=\"{fallback}\"}} "
            );
            text.lines().find_map(|l| l.strip_prefix(series.as_str()))
        })
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert!(served >= 6, "{text}");
    let (code, moved) = request(
        a,
        false,
        "PATCH",
        &format!("{ns}/a0"),
        r#"{"metadata":{"labels":{"tier":"db"}}}"#,
    )
    .await;
    assert_eq!(code, 200, "{moved}");
    expected.push(("DELETED".into(), "a0".into()));
    let (code, _) = request(a, true, "DELETE", &format!("{ns}/a2"), "").await;
    assert_eq!(code, 200);
    expected.push(("DELETED".into(), "a2".into()));
    for w in [&mut w1, &mut w2] {
        let got = events_until(w, Duration::from_secs(10), |g| g.len() >= expected.len()).await;
        let kinds: Vec<(String, String)> =
            got.iter().map(|(t, n, _)| (t.clone(), n.clone())).collect();
        assert_eq!(kinds, expected);
        assert!(
            got.windows(2).all(|p| p[0].2 < p[1].2),
            "out of order: {got:?}"
        );
    }

    // A stale update on B after a write on A: 409, as kube words it.
    let (_, current) = request(b, false, "GET", &format!("{ns}/a4"), "").await;
    let mut stale = current.clone();
    let (code, _) = request(
        a,
        false,
        "PATCH",
        &format!("{ns}/a4"),
        r#"{"spec":{"replicas":2}}"#,
    )
    .await;
    assert_eq!(code, 200);
    stale["spec"]["replicas"] = json!(3);
    let (code, status) = request(b, true, "PUT", &format!("{ns}/a4"), &stale.to_string()).await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");

    // A page from A continues on B at the same revision, despite writes in between.
    let (code, page) = request(a, false, "GET", &format!("{ns}?limit=2"), "").await;
    assert_eq!(code, 200);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (code, _) = request(a, false, "POST", &ns, &app("a00", json!({}))).await;
    assert_eq!(code, 201);
    let (code, rest) = request(
        b,
        true,
        "GET",
        &format!("{ns}?limit=10&continue={token}"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{rest}");
    assert_eq!(
        rest["metadata"]["resourceVersion"],
        page["metadata"]["resourceVersion"]
    );
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a0", "a1", "a3", "a4", "a5"]);
    // A resourceVersion seen on A is served by B (not older than it).
    let newest = request(a, false, "GET", &ns, "").await.1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, at) = request(
        b,
        false,
        "GET",
        &format!("{ns}?resourceVersion={newest}&resourceVersionMatch=NotOlderThan"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{at}");
    assert!(
        at["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= newest.parse().unwrap()
    );

    // kubectl through either replica sees one API.
    a.create(&support::app("k1", "ns-a", 2, &[("tier", "web")]));
    let out = b.kubectl_ok(&[
        "get",
        "apps",
        "-n",
        "ns-a",
        "k1",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(out, "2");

    // A reservation stored through A is enforced by B's webhook; how fast is measured.
    let (code, _) = request(
        a,
        false,
        "POST",
        "/apis/admission.example.com/v1/namespacereservations",
        &json!({"apiVersion": "admission.example.com/v1", "kind": "NamespaceReservation",
            "metadata": {"name": "payments"}, "spec": {"owners": {"users": ["alice"]}}})
        .to_string(),
    )
    .await;
    assert_eq!(code, 201);
    let stored = Instant::now();
    let mut review =
        support::fixture("admissionreview-v1-namespace-create.json")["request"]["body"].clone();
    review["request"]["name"] = json!("payments");
    review["request"]["object"]["metadata"]["name"] = json!("payments");
    review["request"]["userInfo"] =
        json!({"username": "mallory", "groups": ["system:authenticated"]});
    loop {
        let (code, answer) = request(
            b,
            true,
            "POST",
            "/apis/admission.example.com/v1/validatingadmissionreviews",
            &review.to_string(),
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        if answer["response"]["allowed"] == json!(false) {
            break;
        }
        assert!(
            stored.elapsed() < Duration::from_secs(5),
            "never enforced on B"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "a reservation stored through one replica was enforced by another after {:?}",
        stored.elapsed()
    );
}

/// A TCP proxy standing in for a Service: forwards to one replica, and when told, drops every
/// connection and forwards to another.
struct Proxy {
    port: u16,
    target: Arc<parking_lot::Mutex<(u16, tokio::sync::broadcast::Sender<()>)>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = tokio::sync::broadcast::channel(1);
        let target = Arc::new(parking_lot::Mutex::new((target, cut)));
        let shared = target.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let (port, mut cut) = {
                    let t = shared.lock();
                    (t.0, t.1.subscribe())
                };
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        Proxy { port, target }
    }

    fn switch(&self, to: u16) {
        let mut t = self.target.lock();
        t.0 = to;
        let _ = t.1.send(());
    }
}

/// A kube-rs reflector on one replica (through a proxy, as through a Service) is moved to the
/// other: it resumes from its resourceVersion and neither misses nor repeats an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_moved_between_replicas_misses_and_repeats_nothing() {
    use kube::runtime::watcher;
    let ha = Ha::start(1, 2).await;
    let (a, b) = (&ha.replicas[0], &ha.replicas[1]);
    let proxy = Proxy::start(a.port()).await;
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&a.kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.cluster_url = format!("https://127.0.0.1:{}", proxy.port).parse().unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let gvk = kube::api::GroupVersionKind::gvk("admission.example.com", "v1", "App");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "apps");
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client, "moves", &resource);
    let seen = Arc::new(parking_lot::Mutex::new(
        Vec::<(String, String, String)>::new(),
    ));
    let relists = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (log, restarts) = (seen.clone(), relists.clone());
    let (listed, initial_list) = tokio::sync::oneshot::channel();
    let mut listed = Some(listed);
    let reflector = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(o)) => log.lock().push((
                    "apply".into(),
                    o.metadata.name.unwrap(),
                    o.metadata.resource_version.unwrap(),
                )),
                Ok(watcher::Event::Delete(o)) => log.lock().push((
                    "delete".into(),
                    o.metadata.name.unwrap(),
                    o.metadata.resource_version.unwrap(),
                )),
                Ok(watcher::Event::Init) => {
                    restarts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(done) = listed.take() {
                        let _ = done.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), initial_list)
        .await
        .unwrap()
        .unwrap();
    let ns = format!("{APPS}/moves/apps");
    let mut written = Vec::new();
    for i in 0..20 {
        if i == 10 {
            // The pod behind the Service changes.
            proxy.switch(b.port());
        }
        let via = if i % 2 == 0 { a } else { b };
        let (code, obj) = request(via, false, "POST", &ns, &app(&format!("m{i}"), json!({}))).await;
        assert_eq!(code, 201);
        written.push((
            format!("m{i}"),
            obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _) = request(a, false, "DELETE", &format!("{ns}/m3"), "").await;
    assert_eq!(code, 200);
    let done = support::eventually(Duration::from_secs(15), || {
        seen.lock()
            .iter()
            .any(|(t, n, _)| t == "delete" && n == "m3")
    });
    reflector.abort();
    let seen = seen.lock().clone();
    assert!(done, "the reflector did not follow: {seen:?}");
    let applied: Vec<(String, String)> = seen
        .iter()
        .filter(|(t, _, _)| t == "apply")
        .map(|(_, n, rv)| (n.clone(), rv.clone()))
        .collect();
    assert_eq!(applied, written, "missed or repeated events");
    assert_eq!(
        relists.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "it listed again"
    );
}

/// Counts of what writers got while etcd failed over.
#[derive(Default, Debug)]
struct Outcome {
    acked: BTreeMap<String, String>,
    retryable: usize,
    refused_connections: usize,
}

/// Creates Apps through `s` until `stop`, one at a time, retrying a name until it is stored.
async fn writer(s: Endpoint, tag: &'static str, http2: bool, stop: Instant) -> Outcome {
    let mut out = Outcome::default();
    let ns = format!("{APPS}/load/apps");
    let mut i = 0;
    while Instant::now() < stop {
        let name = format!("{tag}-{i:05}");
        let Some((code, headers, body)) = try_request(
            &s,
            http2,
            "POST",
            &ns,
            &app(&name, json!({})),
            Duration::from_secs(20),
        )
        .await
        else {
            out.refused_connections += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match code {
            201 => {
                out.acked
                    .insert(name, body["metadata"]["uid"].as_str().unwrap().to_string());
                i += 1;
            }
            // A retry of a create whose earlier attempt committed after all.
            409 if body["reason"] == "AlreadyExists" => i += 1,
            429 | 503 => {
                assert!(
                    headers.get("retry-after").is_some(),
                    "{code} without Retry-After: {body}"
                );
                assert_eq!(body["kind"], "Status", "{body}");
                out.retryable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            504 => {
                assert_eq!(body["reason"], "Timeout", "{body}");
                out.retryable += 1;
            }
            other => panic!("{other} while etcd fails over: {body}"),
        }
    }
    out
}

async fn check_acked(s: &Server, acked: &BTreeMap<String, String>) {
    let (code, list) = request(s, false, "GET", &format!("{APPS}/load/apps"), "").await;
    assert_eq!(code, 200, "{list}");
    let stored: BTreeMap<&str, &str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["metadata"]["name"].as_str().unwrap(),
                i["metadata"]["uid"].as_str().unwrap(),
            )
        })
        .collect();
    for (name, uid) in acked {
        assert_eq!(
            stored.get(name.as_str()),
            Some(&uid.as_str()),
            "acknowledged {name} was lost"
        );
    }
}

/// kill -9 of an etcd member, then of the leader, under a write load through two replicas
/// (HTTP/1.1 and HTTP/2): no acknowledged write is lost, clients only get retryable answers
/// meanwhile, and writes resume by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_member_and_leader_loss_under_load_loses_no_acknowledged_write() {
    let mut ha = Ha::start(3, 2).await;
    let stop = Instant::now() + Duration::from_secs(14);
    let wa = tokio::spawn(writer(ha.replicas[0].endpoint(), "a", false, stop));
    let wb = tokio::spawn(writer(ha.replicas[1].endpoint(), "b", true, stop));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = ha.etcd.leader().await.unwrap();
    let follower = (leader + 1) % 3;
    ha.etcd.kill(follower);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = ha.etcd.leader().await.unwrap();
    ha.etcd.kill(leader);
    // One member left: no quorum until another comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ha.etcd.restart(follower);
    tokio::time::sleep(Duration::from_secs(1)).await;
    ha.etcd.restart(leader);
    let out_a = wa.await.unwrap();
    let out_b = wb.await.unwrap();
    let (a, b) = (&ha.replicas[0], &ha.replicas[1]);
    println!(
        "writers: {out_a:?} / {out_b:?}",
        out_a = (out_a.acked.len(), out_a.retryable),
        out_b = (out_b.acked.len(), out_b.retryable)
    );
    assert!(out_a.acked.len() + out_b.acked.len() > 40, "writes resumed");
    assert_eq!(out_a.refused_connections + out_b.refused_connections, 0);
    let mut acked = out_a.acked;
    acked.extend(out_b.acked);
    check_acked(a, &acked).await;
    check_acked(b, &acked).await;
}

/// Without etcd's quorum: `/readyz` fails with the `etcd` check, writes fail with a 5xx Status
/// within the request timeout, reads from the cache go on; when quorum returns everything
/// recovers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_fails_readiness_and_writes_then_recovers() {
    let mut ha = Ha::start(3, 1).await;
    let ns = format!("{APPS}/q/apps");
    let (code, _) = request(
        &ha.replicas[0],
        false,
        "POST",
        &ns,
        &app("before", json!({})),
    )
    .await;
    assert_eq!(code, 201);
    ha.etcd.kill(1);
    ha.etcd.kill(2);
    let s = &ha.replicas[0];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = request(s, false, "GET", "/readyz?verbose", "").await;
        if code == 500 {
            let text = body.as_str().unwrap().to_string();
            assert!(text.contains("[-]etcd failed"), "{text}");
            assert!(text.contains("[-]etcd-readiness failed"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "readyz never failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, body) = request(s, false, "GET", "/livez/etcd", "").await;
    assert_eq!(code, 500, "{body}");
    // What the HA Deployment's liveness probe asks: alive, whatever etcd does.
    let (code, body) = request(s, false, "GET", "/livez?exclude=etcd&verbose", "").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.as_str().unwrap().contains("[+]etcd excluded: ok"),
        "{body}"
    );
    for http2 in [false, true] {
        let started = Instant::now();
        let (code, status) = request(
            s,
            http2,
            "POST",
            &ns,
            &app(&format!("during-{http2}"), json!({})),
        )
        .await;
        assert!((500..600).contains(&code), "{code} {status}");
        assert_eq!(status["kind"], "Status");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    // The cache still serves reads that allow it.
    let (code, list) = request(s, true, "GET", &format!("{ns}?resourceVersion=0"), "").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"][0]["metadata"]["name"], "before");
    let (code, one) = request(
        s,
        false,
        "GET",
        &format!("{ns}/before?resourceVersion=0"),
        "",
    )
    .await;
    assert_eq!(code, 200, "{one}");
    // So do watches from a known resourceVersion: this one gets its bookmark before it ends.
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut w = s
        .watch(
            &format!("{ns}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3"),
            &[],
            true,
        )
        .await;
    assert_eq!(w.status, 200);
    let bookmark = w.next(Duration::from_secs(5)).await.expect("a bookmark");
    assert_eq!(bookmark["type"], "BOOKMARK", "{bookmark}");
    // Quorum returns: ready again and writes go through, without a restart.
    ha.etcd.restart(1);
    s.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = request(s, false, "POST", &ns, &app("after", json!({}))).await;
        if code == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// kill -9 of a replica under load: the others keep serving, and a watcher that reconnects to
/// another from its last resourceVersion misses nothing (namespace and label selector).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_nothing_for_watchers() {
    let mut ha = Ha::start(1, 3).await;
    let ns = format!("{APPS}/kill/apps");
    let watch = |rv: &str| {
        format!(
            "{ns}?watch=true&labelSelector=keep%3Dyes&allowWatchBookmarks=true&resourceVersion={rv}"
        )
    };
    let rv0 =
        request(&ha.replicas[0], false, "GET", &ns, "").await.1["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
    let mut w = ha.replicas[0].watch(&watch(&rv0), &[], true).await;
    let mut writers = Vec::new();
    let stop = Instant::now() + Duration::from_secs(4);
    for (i, http2) in [(1, false), (2, true)] {
        let s = ha.replicas[i].endpoint();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while Instant::now() < stop {
                let keep = if n % 3 == 0 { "no" } else { "yes" };
                let name = format!("r{i}-{n}");
                let (code, obj) = on(
                    &s,
                    http2,
                    "POST",
                    &format!("{APPS}/kill/apps"),
                    &app(&name, json!({"keep": keep})),
                )
                .await;
                assert_eq!(code, 201, "{obj}");
                if keep == "yes" {
                    acked.push(name);
                }
                n += 1;
            }
            acked
        }));
    }
    // Read some events from replica 0, then kill it.
    let before = events_until(&mut w, Duration::from_secs(10), |g| g.len() >= 5).await;
    ha.replicas[0].stop(true);
    let mut last = before
        .last()
        .map(|e| e.2)
        .unwrap_or_else(|| rv0.parse().unwrap());
    // The stream ends; read what it still had.
    let mut got = before;
    while let Some(e) = w.next(Duration::from_secs(2)).await {
        if e["type"] == "BOOKMARK" || e["type"] == "ERROR" {
            continue;
        }
        let rv: u64 = e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        got.push((
            e["type"].as_str().unwrap().into(),
            e["object"]["metadata"]["name"].as_str().unwrap().into(),
            rv,
        ));
        last = rv;
    }
    let mut acked = Vec::new();
    for t in writers {
        acked.extend(t.await.unwrap());
    }
    // Reconnect to another replica from the last resourceVersion seen.
    let mut w = ha.replicas[1]
        .watch(&watch(&last.to_string()), &[], false)
        .await;
    assert_eq!(w.status, 200);
    let expected: BTreeSet<String> = acked.iter().cloned().collect();
    let rest = events_until(&mut w, Duration::from_secs(10), |g| {
        got.len() + g.len() >= expected.len()
    })
    .await;
    got.extend(rest);
    let names: Vec<&str> = got.iter().map(|(_, n, _)| n.as_str()).collect();
    let unique: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    assert_eq!(names.len(), unique.len(), "an event came twice: {names:?}");
    assert_eq!(unique, expected, "events missed");
    assert!(got.iter().all(|(t, _, _)| t == "ADDED"));
    assert!(got.windows(2).all(|p| p[0].2 < p[1].2), "out of order");
}

/// etcd unreachable at start: the replica logs why and retries rather than exiting; it is not
/// ready and answers 429 "storage is (re)initializing"; once etcd is there it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_unreachable_at_start_is_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let servers = format!("http://127.0.0.1:{port}");
    let mut s = Server::start_unready(dir, 0, &["--etcd-servers", &servers]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !s.wait_exit(Duration::from_millis(10)),
        "the replica exited:\n{}",
        s.log()
    );
    let (code, body) = request(&s, false, "GET", "/readyz?verbose", "").await;
    assert_eq!(code, 500);
    assert!(body.as_str().unwrap().contains("[-]etcd failed"), "{body}");
    let (code, status) = request(&s, true, "GET", &format!("{APPS}/x/apps"), "").await;
    assert_eq!(code, 429, "{status}");
    assert_eq!(
        status["message"],
        "Too many requests: storage is (re)initializing"
    );
    assert!(
        s.log().contains("cannot list from etcd; retrying"),
        "{}",
        s.log()
    );
    // etcd comes up on that port.
    let etcd = EtcdCluster::start_on(&[port]).await;
    s.wait_ready().await;
    let (code, body) = request(
        &s,
        false,
        "POST",
        &format!("{APPS}/x/apps"),
        &app("x", json!({})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    drop(etcd);
}
