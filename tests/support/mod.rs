//! Shared helpers of the integration tests: start the real binary on a free port with a fresh
//! data directory, drive it with the machine's `kubectl`, or talk HTTPS to it directly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// The data directory (kept when the server restarts).
    pub dir: Arc<tempfile::TempDir>,
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    /// The written kubeconfig.
    pub kubeconfig: PathBuf,
    /// The admin token.
    pub token: String,
    /// The CA the serving certificate chains to.
    pub ca_pem: String,
    cache: tempfile::TempDir,
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_admission-apiserver")
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Server {
        Server::start_with(Arc::new(tempfile::tempdir().unwrap()), &[])
    }

    /// Starts a server on a data directory, with extra flags.
    pub fn start_with(dir: Arc<tempfile::TempDir>, extra: &[&str]) -> Server {
        Server::start_on(dir, 0, extra)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Starts a server on a data directory and port (0: any), with extra flags, and waits until
    /// it is ready (`/readyz` 200), as a kubelet's readiness probe holds traffic back.
    pub fn start_on(dir: Arc<tempfile::TempDir>, port: u16, extra: &[&str]) -> Server {
        let server = Server::start_unready(dir, port, extra);
        let endpoint = server.endpoint();
        let ready = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(endpoint.ready_within(Duration::from_secs(30)))
        })
        .join()
        .unwrap();
        assert!(ready, "the server did not become ready:\n{}", server.log());
        server
    }

    /// Waits (up to 30 s) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let ready = self.endpoint().ready_within(Duration::from_secs(30)).await;
        assert!(ready, "the server is not ready:\n{}", self.log());
    }

    /// Starts a server on a data directory and port (0: any), with extra flags; returns once it
    /// listens, ready or not.
    pub fn start_unready(dir: Arc<tempfile::TempDir>, port: u16, extra: &[&str]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("server.log"))
            .unwrap();
        let mut child = Command::new(binary())
            .args(["serve", "--secure-port", &port.to_string(), "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("admission-apiserver serving on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("the server did not start:\n{log}");
            }
        };
        let kubeconfig = dir.path().join("kubeconfig");
        let token = std::fs::read_to_string(dir.path().join("admin-token"))
            .unwrap()
            .trim()
            .to_string();
        let ca_pem = std::fs::read_to_string(dir.path().join("pki/ca.crt")).unwrap();
        Server {
            child: Some(child),
            dir,
            base,
            kubeconfig,
            token,
            ca_pem,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server (SIGKILL when `hard`), keeping its data directory.
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut child) = self.child.take() {
            if hard {
                let _ = child.kill();
            } else {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            }
            let deadline = Instant::now() + Duration::from_secs(40);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM without waiting for the process to exit.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Waits for the process to exit by itself; whether it did within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A `kubectl` command against this server.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.cache.path())
            .arg("--cache-dir")
            .arg(self.cache.path().join("cache"))
            .args(args);
        cmd
    }

    /// Runs `kubectl`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("kubectl runs")
    }

    /// Runs `kubectl` with a standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs `kubectl`, requires success, returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs `kubectl`, requires failure, returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail:\n{}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// `kubectl create -f -` of a manifest; requires success.
    pub fn create(&self, manifest: &str) -> String {
        let out = self.kubectl_stdin(&["create", "-f", "-"], manifest);
        assert!(
            out.status.success(),
            "create failed:\n{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// An HTTPS client trusting the server's CA, speaking HTTP/1.1 and HTTP/2 by ALPN.
    pub fn client(
        &self,
        http2: bool,
    ) -> Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    > {
        self.client_with(None, http2)
    }

    /// An HTTPS client presenting a client certificate (PEM certificate, PEM key) if given.
    pub fn client_with(
        &self,
        identity: Option<(&str, &str)>,
        http2: bool,
    ) -> Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    > {
        https_client(&self.ca_pem, identity, http2)
    }

    /// Where the server is and how to talk to it, to hand to other tasks.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            base: self.base.clone(),
            token: self.token.clone(),
            ca_pem: self.ca_pem.clone(),
        }
    }

    /// One request as the admin; returns status, headers and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        self.request_as(Some(&self.token), method, path, headers, body)
            .await
    }

    /// One request with a given bearer token (or none).
    pub async fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        self.send(None, token, method, path, headers, body).await
    }

    /// One request as the admin over HTTP/2 (`http2`) or HTTP/1.1.
    pub async fn request_over(
        &self,
        http2: bool,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        self.send_over(http2, None, Some(&self.token), method, path, headers, body)
            .await
    }

    /// One request with a client certificate and a bearer token, each optional.
    pub async fn send(
        &self,
        identity: Option<(&str, &str)>,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        self.send_over(false, identity, token, method, path, headers, body)
            .await
    }

    /// [`Server::send`] over HTTP/2 (`http2`) or HTTP/1.1.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_over(
        &self,
        http2: bool,
        identity: Option<(&str, &str)>,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let client = self.client_with(identity, http2);
        let body = Bytes::from(body.to_string());
        self.exchange(client, token, method, path, headers, body)
            .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A server's address and admin credentials, cheap to clone into tasks.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    /// The admin token.
    pub token: String,
    /// The CA the serving certificate chains to.
    pub ca_pem: String,
}

impl Endpoint {
    /// An HTTPS client trusting the server's CA.
    pub fn client(
        &self,
        http2: bool,
    ) -> Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    > {
        https_client(&self.ca_pem, None, http2)
    }

    /// Whether `/readyz` answers 200 within `limit`, probed every 50 ms as a kubelet probes: no
    /// credentials, and the serving certificate is not checked (it may be one given by flags).
    pub async fn ready_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        while Instant::now() < deadline {
            let req = http::Request::builder()
                .uri(format!("{}/readyz", self.base))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(3), client.request(req)).await;
            if matches!(answer, Ok(Ok(ref r)) if r.status() == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// An HTTPS client trusting `ca_pem`, presenting a client certificate (PEM certificate, PEM key)
/// if given, over HTTP/2 only (`http2`) or HTTP/1.1.
pub fn https_client(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    http2: bool,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
> {
    https_client_of(ca_pem, identity, http2)
}

/// [`https_client`] for request bodies of any type (`B`).
pub fn https_client_of<B>(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    http2: bool,
) -> Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        None => config.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            // Presented as given, without rustls checking that it can parse the certificate
            // (it cannot parse X.509 v1 ones, which Go clients present).
            let key = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
            config.with_client_cert_resolver(Arc::new(Present(Arc::new(
                rustls::sign::CertifiedKey::new(certs, key),
            ))))
        }
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    if http2 {
        client.http2_only(true);
    }
    client.build(connector)
}

/// A response read in full.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// HTTP version.
    pub version: http::Version,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// Polls `check` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// The directory of the fixtures of a kube-apiserver 1.36.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kube-1.36")
}

/// A JSON fixture (path under [`fixtures`]), parsed.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Server {
    /// POSTs a JSON body as the admin.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            &body.to_string(),
        )
        .await
    }

    /// Creates an App in `default` over HTTPS with these labels; requires 201 and returns it.
    pub async fn create_app(&self, name: &str, labels: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": name, "labels": labels}, "spec": {"version": "v1.0.0", "replicas": 1}});
        let r = self
            .post_json(
                "/apis/admission.example.com/v1/namespaces/default/apps",
                &body,
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }
}

/// An App manifest.
pub fn app(name: &str, namespace: &str, replicas: u32, labels: &[(&str, &str)]) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("\n    {k}: \"{v}\""))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("\n  labels:{labels}")
    };
    format!(
        "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: {name}\n  namespace: {namespace}{labels}\nspec:\n  version: v1.0.0\n  replicas: {replicas}\n"
    )
}

/// A watch stream read line by line.
pub struct WatchStream {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
    /// Response status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// HTTP version.
    pub version: http::Version,
}

impl WatchStream {
    /// The next event, `None` when the stream ends or `timeout` passes first.
    pub async fn next(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("a watch event is JSON"));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.ok()?.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// The next frame: `Some(Ok)` for data, `Some(Err)` when the stream is cut (a reset),
    /// `None` at a clean end.
    pub async fn frame(&mut self) -> Option<Result<(), String>> {
        match self.body.frame().await? {
            Ok(_) => Some(Ok(())),
            Err(e) => Some(Err(e.to_string())),
        }
    }

    /// Whether the server ends the stream within `timeout` (after any events it still sends).
    pub async fn ends_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Ok(None) => return true,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) => return true,
                Err(_) => return false,
            }
        }
    }
}

impl Server {
    /// Opens a streaming GET with an optional client certificate and extra headers.
    pub async fn send_stream(
        &self,
        http2: bool,
        identity: Option<(&str, &str)>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> WatchStream {
        let mut req = http::Request::builder().uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client_with(identity, http2)
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("the stream is answered");
        WatchStream {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            version: resp.version(),
            body: resp.into_body(),
            buffer: Vec::new(),
        }
    }

    /// Opens a watch (or any streaming GET) as the admin.
    pub async fn watch(&self, path: &str, headers: &[(&str, &str)], http2: bool) -> WatchStream {
        let mut req = http::Request::builder()
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .client(http2)
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("the watch is answered");
        WatchStream {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            version: resp.version(),
            body: resp.into_body(),
            buffer: Vec::new(),
        }
    }
}

impl Server {
    /// One request over HTTP/2 (`http2`) or HTTP/1.1, with a given bearer token (or none) and
    /// any body bytes.
    pub async fn send_on(
        &self,
        http2: bool,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Response {
        let client = self.client(http2);
        self.exchange(client, token, method, path, headers, body.into())
            .await
    }

    /// Sends one request on `client` and reads the whole answer.
    async fn exchange(
        &self,
        client: Client<
            hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
            Full<Bytes>,
        >,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Response {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).unwrap();
        let resp = client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} is answered: {e:?}"));
        let status = resp.status().as_u16();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Response {
            status,
            headers,
            body,
            version,
        }
    }

    /// Runs `curl -sS` against this server (trusting its CA) with extra arguments and a path;
    /// returns its exit code, the HTTP status it saw and the body.
    pub fn curl(&self, args: &[&str], path: &str) -> Curl {
        let ca = self.cache.path().join("ca.crt");
        if !ca.exists() {
            std::fs::write(&ca, &self.ca_pem).unwrap();
        }
        let body_file = self
            .cache
            .path()
            .join(format!("curl-body-{}", next_file_number()));
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .args(["-o"])
            .arg(&body_file)
            .args(["-w", "%{http_code}"])
            .args(args)
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("curl runs");
        let body = std::fs::read(&body_file).unwrap_or_default();
        let _ = std::fs::remove_file(&body_file);
        Curl {
            exit: out.status.code().unwrap_or(-1),
            status: text(&out.stdout).trim().parse().unwrap_or(0),
            body,
            stderr: text(&out.stderr),
        }
    }

    /// A TLS connection to the server offering these ALPN protocols.
    pub async fn tls(
        &self,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port()))
            .await
            .unwrap();
        let name =
            rustls_pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap()
    }
}

fn next_file_number() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What `curl` did.
pub struct Curl {
    /// Exit code (0: the transfer worked; 92: an HTTP/2 stream error).
    pub exit: i32,
    /// The HTTP status of the response (0 if none).
    pub status: u16,
    /// The response body.
    pub body: Vec<u8>,
    /// What curl printed on stderr.
    pub stderr: String,
}

impl Curl {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&self.body)))
    }
}

/// Presents one client certificate whatever the server asks for.
#[derive(Debug)]
struct Present(Arc<rustls::sign::CertifiedKey>);

/// Accepts any server certificate (a kubelet probe's `InsecureSkipVerify`); handshake
/// signatures are still checked.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
