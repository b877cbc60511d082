//! A small HTTPS server standing in for kube-apiserver in delegated-mode tests: it answers
//! TokenReviews and SubjectAccessReviews (shaped like the 1.36 fixtures), serves and streams the
//! `extension-apiserver-authentication` ConfigMap, and records Events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::support::Server;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// The token the extension server presents to the peer (its service account's, in a cluster).
const TOKEN: &str = "extension-server-token";

/// A CA that can issue client certificates.
pub struct Ca {
    /// PEM of the CA certificate.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's key again, to sign what rcgen does not make (X.509 v1).
    key_pem: String,
}

impl Ca {
    /// A new CA.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An X.509 v1 client certificate (no version field, no extensions), as `openssl x509 -req`
    /// makes without an extensions file: (PEM cert, PEM key).
    pub fn client_v1(&self, cn: &str, orgs: &[&str]) -> (String, String) {
        use rcgen::SigningKey;
        use rustls_pki_types::pem::PemObject;
        let (v3, key) = self.client(cn, orgs);
        let der = rustls_pki_types::CertificateDer::from_pem_slice(v3.as_bytes()).unwrap();
        let certificate = der_elements(der_elements(der.as_ref())[0].1);
        let (tbs, algorithm) = (certificate[0].1, certificate[1].0);
        let tbs_v1: Vec<u8> = der_elements(tbs)
            .into_iter()
            .filter(|(whole, _)| whole[0] != 0xa0 && whole[0] != 0xa3)
            .flat_map(|(whole, _)| whole.to_vec())
            .collect();
        let tbs_v1 = der_tlv(0x30, &tbs_v1);
        let ca_key = KeyPair::from_pem(&self.key_pem).unwrap();
        let mut signature = vec![0u8];
        signature.extend(ca_key.sign(&tbs_v1).unwrap());
        let mut body = tbs_v1;
        body.extend_from_slice(algorithm);
        body.extend(der_tlv(0x03, &signature));
        let cert = der_tlv(0x30, &body);
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &cert);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        (
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            ),
            key,
        )
    }

    /// A client certificate (PEM cert, PEM key) for CN and organizations.
    pub fn client(&self, cn: &str, orgs: &[&str]) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A serving certificate for localhost (PEM cert, PEM key).
    pub fn server(&self) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// What the peer knows and has seen.
pub struct PeerState {
    /// `data` of the ConfigMap.
    pub config_map: Mutex<Value>,
    config_map_version: AtomicUsize,
    changes: broadcast::Sender<Value>,
    /// Specs of the TokenReviews received.
    pub token_reviews: Mutex<Vec<Value>>,
    /// Review requests still to fail with a 500 (to exercise retries).
    pub fail_next: AtomicUsize,
    /// Requests that came without the extension server's credentials.
    pub unauthenticated: AtomicUsize,
    /// SubjectAccessReviews received, with their specs.
    pub access_reviews: Mutex<Vec<Value>>,
    /// Events created or updated (method, path, body).
    pub events: Mutex<Vec<(String, String, Value)>>,
    /// While true, SubjectAccessReviews are held unanswered (a slow kube-apiserver).
    pub stall_reviews: tokio::sync::watch::Sender<bool>,
}

/// A running peer.
pub struct Peer {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// Its CA (PEM).
    pub ca_pem: String,
    /// Shared state.
    pub state: Arc<PeerState>,
}

fn review_token(token: &str) -> Value {
    match token {
        "good-token" => json!({
            "authenticated": true,
            "user": {
                "username": "system:serviceaccount:ext-demo:ext",
                "uid": "9997e74c-b4f3-4c97-a22f-799fd280e25c",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:ext-demo", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/credential-id": ["JTI=de08c282"]}
            },
            "audiences": ["https://kubernetes.default.svc.cluster.local"]
        }),
        _ => json!({"user": {}, "error": "invalid bearer token"}),
    }
}

/// The captured SubjectAccessReviews of the fixtures: (spec, status).
fn captured_reviews() -> Vec<(Value, Value)> {
    let dir = crate::support::fixtures();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.starts_with("subjectaccessreview-") {
            let v = crate::support::fixture(&name);
            out.push((
                v["request"]["body"]["spec"].clone(),
                v["response"]["body"]["status"].clone(),
            ));
        }
    }
    assert!(out.len() >= 5, "the SubjectAccessReview fixtures are there");
    out
}

/// kube-apiserver's answer: the captured one for a captured spec, otherwise the same RBAC as the
/// capture's cluster: jane (or group dev) may get/list/watch apps and get apps/scale; the
/// extension server's service account may do anything with apps; everyone authenticated may
/// discover.
fn decide(spec: &Value) -> Value {
    static CAPTURED: std::sync::OnceLock<Vec<(Value, Value)>> = std::sync::OnceLock::new();
    if let Some((_, status)) = CAPTURED
        .get_or_init(captured_reviews)
        .iter()
        .find(|(s, _)| s == spec)
    {
        return status.clone();
    }
    let user = spec["user"].as_str().unwrap_or("");
    let groups: Vec<&str> = spec["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(r) = spec.get("resourceAttributes") {
        let verb = r["verb"].as_str().unwrap_or("");
        let resource = r["resource"].as_str().unwrap_or("");
        let sub = r["subresource"].as_str().unwrap_or("");
        let reader = user == "jane" || groups.contains(&"dev");
        let allowed = (reader
            && resource == "apps"
            && ((sub.is_empty() && ["get", "list", "watch"].contains(&verb))
                || (sub == "scale" && verb == "get")))
            || (user == "system:serviceaccount:ext-demo:ext" && resource == "apps");
        if allowed {
            return json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"admission-example-apps-reader-dev\""});
        }
        return json!({"allowed": false});
    }
    let path = spec["nonResourceAttributes"]["path"].as_str().unwrap_or("");
    let discovery = path.starts_with("/apis")
        || path.starts_with("/openapi")
        || path == "/version"
        || path == "/api";
    json!({"allowed": discovery && groups.contains(&"system:authenticated")})
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(code: u16, v: Value) -> http::Response<Body> {
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .unwrap()
}

impl PeerState {
    fn config_map(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system",
                "resourceVersion": self.config_map_version.load(Ordering::SeqCst).to_string()},
            "data": self.config_map.lock().clone(),
        })
    }

    /// Replaces the ConfigMap's data and tells the watchers.
    pub fn set_config_map(&self, data: Value) {
        *self.config_map.lock() = data;
        self.config_map_version.fetch_add(1, Ordering::SeqCst);
        let _ = self.changes.send(self.config_map());
    }
}

async fn serve(
    state: Arc<PeerState>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Body> {
    let credential = format!("Bearer {TOKEN}");
    if req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(credential.as_str())
    {
        state.unauthenticated.fetch_add(1, Ordering::SeqCst);
        return full(
            401,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        );
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let review = path.ends_with("/tokenreviews") || path.ends_with("/subjectaccessreviews");
    if review
        && state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        return full(
            500,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500}),
        );
    }
    match (method.as_str(), path.as_str()) {
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews") => {
            state.token_reviews.lock().push(json_body["spec"].clone());
            let token = json_body["spec"]["token"].as_str().unwrap_or("");
            let mut review = json_body.clone();
            review["status"] = review_token(token);
            full(201, review)
        }
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews") => {
            state.access_reviews.lock().push(json_body["spec"].clone());
            let mut stalled = state.stall_reviews.subscribe();
            let _ = stalled.wait_for(|s| !*s).await;
            let mut review = json_body.clone();
            review["status"] = decide(&json_body["spec"]);
            full(201, review)
        }
        ("GET", "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication") => {
            full(200, state.config_map())
        }
        ("GET", "/api/v1/namespaces/kube-system/configmaps") if query.contains("watch=true") => {
            let mut rx = state.changes.subscribe();
            let stream = async_stream(move |tx| async move {
                while let Ok(cm) = rx.recv().await {
                    let line = format!("{}\n", json!({"type": "MODIFIED", "object": cm}));
                    if tx.send(Bytes::from(line)).await.is_err() {
                        break;
                    }
                }
            });
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json;stream=watch")
                .body(stream)
                .unwrap()
        }
        (m @ ("POST" | "PUT" | "PATCH"), p) if p.contains("/events") => {
            state
                .events
                .lock()
                .push((m.to_string(), p.to_string(), json_body.clone()));
            let code = if m == "POST" { 201 } else { 200 };
            full(code, json_body)
        }
        _ => full(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
        ),
    }
}

/// A body fed by a task through a channel.
fn async_stream<F, Fut>(producer: F) -> Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(producer(tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed()
}

impl Peer {
    /// Starts a peer with a ConfigMap `data`.
    pub async fn start(config_map: Value) -> Peer {
        let ca = Ca::new("peer-ca");
        let (cert, key) = ca.server();
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        use rustls_pki_types::pem::PemObject;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let (changes, _) = broadcast::channel(16);
        let state = Arc::new(PeerState {
            config_map: Mutex::new(config_map),
            config_map_version: AtomicUsize::new(1),
            changes,
            token_reviews: Mutex::new(Vec::new()),
            fail_next: AtomicUsize::new(0),
            unauthenticated: AtomicUsize::new(0),
            access_reviews: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            stall_reviews: tokio::sync::watch::channel(false).0,
        });
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, state) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(serve(state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Peer {
            url,
            ca_pem: ca.pem,
            state,
        }
    }

    /// A kubeconfig pointing at the peer whose credential comes from an `exec` plugin (a script
    /// printing an ExecCredential with the token), as EKS, GKE, AKS and OIDC logins do.
    pub fn exec_kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        use base64::Engine;
        let plugin = dir.join("credential-plugin.sh");
        std::fs::write(
            &plugin,
            format!(
                "#!/bin/sh\necho \"$(date +%s%N)\" >> \"$0.calls\"\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{TOKEN}\"}}}}'\n"
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = dir.join("peer-exec.kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: peer\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: ext\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\ncontexts:\n- name: peer\n  context:\n    cluster: peer\n    user: ext\ncurrent-context: peer\n",
                self.url,
                plugin.display()
            ),
        )
        .unwrap();
        path
    }

    /// A kubeconfig pointing at the peer with a token.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        use base64::Engine;
        let path = dir.join("peer.kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: peer\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: ext\n  user:\n    token: {TOKEN}\ncontexts:\n- name: peer\n  context:\n    cluster: peer\n    user: ext\ncurrent-context: peer\n",
                self.url
            ),
        )
        .unwrap();
        path
    }
}

/// GETs `url` trusting only `ca_pem`; the status code, or why the connection failed.
pub async fn get_trusting(ca_pem: &str, url: &str) -> Result<u16, String> {
    let client = crate::support::https_client(ca_pem, None, false);
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    client
        .request(req)
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// The served group-version path.
pub const GROUP: &str = "/apis/admission.example.com/v1";

/// A server in delegated mode, the peer it delegates to and the CAs of the cluster.
pub struct Cluster {
    /// The server under test.
    pub server: Server,
    /// The kube-apiserver it delegates to.
    pub peer: Peer,
    /// Signs the front proxy's certificate.
    pub front_proxy: Ca,
    /// Signs user certificates.
    pub client_ca: Ca,
    /// The aggregator's front-proxy client certificate (CN=front-proxy-client).
    pub proxy_cert: (String, String),
}

/// The ConfigMap data kube-apiserver publishes for these CAs.
pub fn config_map(client_ca: &Ca, front_proxy: &Ca) -> Value {
    json!({
        "client-ca-file": client_ca.pem,
        "requestheader-allowed-names": "[\"front-proxy-client\"]",
        "requestheader-client-ca-file": front_proxy.pem,
        "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
        "requestheader-group-headers": "[\"X-Remote-Group\"]",
        "requestheader-username-headers": "[\"X-Remote-User\"]",
    })
}

/// Starts a peer and a server delegating to it, with extra flags.
pub async fn cluster(extra: &[&str]) -> Cluster {
    cluster_with(extra, false).await
}

/// [`cluster`], the server's credential for the peer coming from an `exec` plugin (`exec`).
pub async fn cluster_with(extra: &[&str], exec: bool) -> Cluster {
    let (client_ca, front_proxy) = (Ca::new("cluster-ca"), Ca::new("front-proxy-ca"));
    let peer = Peer::start(config_map(&client_ca, &front_proxy)).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let kubeconfig = if exec {
        peer.exec_kubeconfig(dir.path())
    } else {
        peer.kubeconfig(dir.path())
    };
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();
    let mut args: Vec<String> = vec![
        "--authentication-kubeconfig".into(),
        kubeconfig.clone(),
        "--authorization-kubeconfig".into(),
        kubeconfig,
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::start_with(dir, &args)
    })
    .await
    .unwrap();
    let proxy_cert = front_proxy.client("front-proxy-client", &[]);
    Cluster {
        server,
        peer,
        front_proxy,
        client_ca,
        proxy_cert,
    }
}

/// The identity headers the aggregator sends for a user.
pub fn identity<'a>(user: &'a str, groups: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("X-Remote-User", user)];
    for g in groups {
        h.push(("X-Remote-Group", g));
    }
    h
}

/// Groups of a cluster admin.
pub const ADMIN: &[&str] = &["system:masters", "system:authenticated"];
/// Groups of jane.
pub const JANE: &[&str] = &["dev", "system:authenticated"];

impl Cluster {
    /// A request proxied by the aggregator for `headers`' user.
    pub async fn proxied(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> crate::support::Response {
        self.proxied_over(false, method, path, headers, body).await
    }

    /// [`Cluster::proxied`] over HTTP/2 (`http2`) or HTTP/1.1.
    pub async fn proxied_over(
        &self,
        http2: bool,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> crate::support::Response {
        let (cert, key) = &self.proxy_cert;
        self.server
            .send_over(http2, Some((cert, key)), None, method, path, headers, body)
            .await
    }

    /// The SubjectAccessReview specs the peer received.
    pub fn reviews(&self) -> Vec<Value> {
        self.peer.state.access_reviews.lock().clone()
    }

    /// Creates an App as the cluster admin through the front proxy.
    pub async fn create_app(&self, name: &str, namespace: &str) {
        let body = json!({
            "apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": name},
            "spec": {"version": "v1.0.0", "replicas": 1}
        });
        let r = self
            .proxied(
                "POST",
                &format!("{GROUP}/namespaces/{namespace}/apps"),
                &[
                    identity("kubelab-admin", ADMIN),
                    vec![("content-type", "application/json")],
                ]
                .concat(),
                &body.to_string(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", crate::support::text(&r.body));
    }
}

/// The DER elements inside a constructed value's contents: (whole element, its contents).
fn der_elements(mut contents: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (header, len) = match contents[1] {
            n if n < 0x80 => (2, n as usize),
            n => {
                let bytes = (n & 0x7f) as usize;
                let len = contents[2..2 + bytes]
                    .iter()
                    .fold(0usize, |l, b| (l << 8) | *b as usize);
                (2 + bytes, len)
            }
        };
        let (whole, rest) = contents.split_at(header + len);
        out.push((whole, &whole[header..]));
        contents = rest;
    }
    out
}

/// A DER element of `tag` around `contents`.
fn der_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}
