//! The transport as a k8s.io/apiserver server over Go's `net/http` has it: header limits on
//! HTTP/1.1 and HTTP/2, the HTTP/2 settings it advertises, and early answers (sent before the
//! request body is read) that reach HTTP/2 clients intact and keep HTTP/1.1 connections alive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/peer.rs"]
mod peer;
mod support;

use serde_json::json;
use std::sync::Arc;
use support::{Server, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const G: &str = "/apis/admission.example.com/v1";
const APPS: &str = "/apis/admission.example.com/v1/namespaces/default/apps";

/// Reads one HTTP/1.1 response (with a `content-length`) from a stream; returns its status,
/// head and body.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    buffered: &mut Vec<u8>,
) -> (u16, String, Vec<u8>) {
    loop {
        if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffered[..end]).to_string();
            let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buffered.len() < end + 4 + length {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the connection closed before the body ended");
                buffered.extend_from_slice(&chunk[..n]);
            }
            let body = buffered[end + 4..end + 4 + length].to_vec();
            buffered.drain(..end + 4 + length);
            return (status, head, body);
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "the connection closed before the response: {buffered:?}"
        );
        buffered.extend_from_slice(&chunk[..n]);
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn app_body(name: &str) -> String {
    json!({"apiVersion": "admission.example.com/v1", "kind": "App",
        "metadata": {"name": name}, "spec": {"version": "v1.0.0", "replicas": 1}})
    .to_string()
}

/// A label selector of about 12 KiB: `app in (value-0000, ..., value-1199)`.
fn long_selector() -> String {
    let values: Vec<String> = (0..1200).map(|i| format!("value-{i:04}")).collect();
    format!("app in ({})", values.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_12_kib_label_selector_is_served_over_http1_and_http2() {
    let s = Server::start();
    s.create_app("picked", json!({"app": "value-0007"})).await;
    s.create_app("other", json!({"app": "elsewhere"})).await;
    let selector = long_selector();
    assert!(selector.len() > 12 * 1024, "{}", selector.len());
    let query: String = form_urlencoded::byte_serialize(selector.as_bytes()).collect();
    let path = format!("{APPS}?labelSelector={query}");
    for http2 in [false, true] {
        let r = s
            .send_on(http2, Some(&s.token), "GET", &path, &[], "")
            .await;
        assert_eq!(r.status, 200, "HTTP/2 {http2}: {}", text(&r.body));
        let items = r.json()["items"].clone();
        assert_eq!(items.as_array().unwrap().len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "picked");
        // A watch with the same selector, as an informer opens it.
        let mut w = s
            .watch(
                &format!("{path}&watch=true&resourceVersion=0&timeoutSeconds=5"),
                &[],
                http2,
            )
            .await;
        assert_eq!(w.status, 200);
        let e = w.next(std::time::Duration::from_secs(5)).await.unwrap();
        assert_eq!(e["object"]["metadata"]["name"], "picked");
    }
    for version in ["--http1.1", "--http2"] {
        let token = format!("authorization: Bearer {}", s.token);
        let c = s.curl(&[version, "-H", &token], &path);
        assert_eq!((c.exit, c.status), (0, 200), "{version}: {}", c.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_up_to_1_mib_are_accepted_and_more_is_431() {
    let s = Server::start();
    let token = format!("Bearer {}", s.token);
    // HTTP/1.1: Go's limit is 1 MiB of headers plus 4 KiB of slack.
    for (size, want) in [(1024 * 1024 - 8 * 1024, 200), (1024 * 1024 + 8 * 1024, 431)] {
        let mut tls = s.tls(&[b"http/1.1"]).await;
        let big = "b".repeat(size);
        let req = request(
            "GET",
            APPS,
            &[("authorization", &token), ("x-big", &big)],
            b"",
        );
        tls.write_all(&req).await.unwrap();
        let (status, _, _) = read_response(&mut tls, &mut Vec::new()).await;
        assert_eq!(status, want, "{size} bytes of headers over HTTP/1.1");
    }
    // HTTP/2: the advertised header list size allows the same.
    let big = "b".repeat(900 * 1024);
    let r = s
        .send_on(true, Some(&s.token), "GET", APPS, &[("x-big", &big)], "")
        .await;
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_2));
    // Many header fields (one X-Remote-Group per group of a user, as the aggregator relays
    // them over HTTP/2) are fine too; HTTP/1.1 takes up to 256 fields (hyper prepares room for
    // the most fields on every request it parses) and answers 431 beyond.
    let fields = |n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| ("x-group".to_string(), format!("group-{i}")))
            .collect()
    };
    for (http2, n, want) in [(true, 2000, 200), (false, 250, 200), (false, 300, 431)] {
        let groups = fields(n);
        let headers: Vec<(&str, &str)> = groups
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = s
            .send_on(http2, Some(&s.token), "GET", APPS, &headers, "")
            .await;
        assert_eq!(r.status, want, "{n} fields, HTTP/2 {http2}");
    }
}

/// The HTTP/2 SETTINGS the server sends first.
async fn server_settings(s: &Server) -> Vec<(u16, u32)> {
    let mut tls = s.tls(&[b"h2"]).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tls.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    loop {
        let mut header = [0u8; 9];
        tls.read_exact(&mut header).await.unwrap();
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        tls.read_exact(&mut payload).await.unwrap();
        // SETTINGS, not an ACK.
        if header[3] == 4 && header[4] & 1 == 0 {
            return payload
                .chunks(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect();
        }
    }
}

/// HPACK "literal header field without indexing, new name", lengths under 2^21.
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    fn length(out: &mut Vec<u8>, mut n: usize) {
        if n < 127 {
            out.push(n as u8);
            return;
        }
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.push(0);
    length(out, name.len());
    out.extend_from_slice(name.as_bytes());
    length(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// Sends one GET over a raw HTTP/2 connection with a header of `size` bytes (in 16 KiB frames,
/// as curl and Go's client send them); returns the HPACK block of the response's HEADERS frame.
async fn raw_http2_get(s: &Server, size: usize) -> Vec<u8> {
    let mut tls = s.tls(&[b"h2"]).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tls.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut block = Vec::new();
    hpack_literal(&mut block, ":method", "GET");
    hpack_literal(&mut block, ":scheme", "https");
    hpack_literal(&mut block, ":path", APPS);
    hpack_literal(&mut block, ":authority", "localhost");
    hpack_literal(&mut block, "authorization", &format!("Bearer {}", s.token));
    hpack_literal(&mut block, "x-big", &"b".repeat(size));
    let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let (kind, mut flags) = if i == 0 { (1u8, 1u8) } else { (9u8, 0u8) };
        if i == chunks.len() - 1 {
            flags |= 4;
        }
        let len = chunk.len() as u32;
        let mut frame = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        frame.extend_from_slice(chunk);
        tls.write_all(&frame).await.unwrap();
    }
    loop {
        let mut header = [0u8; 9];
        tls.read_exact(&mut header).await.unwrap();
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        tls.read_exact(&mut payload).await.unwrap();
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        assert_ne!(header[3], 7, "GOAWAY: {payload:?}");
        if header[3] == 1 && stream == 1 {
            return payload;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_header_lists_up_to_the_advertised_size_are_served_and_more_is_431() {
    let s = Server::start();
    // Static table index 8: `:status: 200`.
    assert_eq!(raw_http2_get(&s, 1000 * 1024).await[0], 0x88);
    // `:status: 431`, a literal value (plain or Huffman-coded) for the name of index 8.
    let answer = raw_http2_get(&s, 1100 * 1024).await;
    assert!(
        [0x08u8, 0x48, 0x18].contains(&answer[0])
            && (answer[1..5] == [3, b'4', b'3', b'1'] || answer[1..5] == [0x83, 0x69, 0x90, 0xff]),
        "{:?}",
        &answer[..answer.len().min(8)]
    );
}

#[tokio::test]
async fn http2_settings_are_k8s_apiserver_s() {
    let s = Server::start();
    let settings = server_settings(&s).await;
    let get = |id: u16| settings.iter().find(|(k, _)| *k == id).map(|(_, v)| *v);
    assert_eq!(get(0x3), Some(100), "MAX_CONCURRENT_STREAMS: {settings:?}");
    assert_eq!(
        get(0x4),
        Some(256 * 1024),
        "INITIAL_WINDOW_SIZE: {settings:?}"
    );
    // The frame size stays HTTP/2's default (see `server::listener`).
    assert!(
        matches!(get(0x5), None | Some(16_384)),
        "MAX_FRAME_SIZE: {settings:?}"
    );
    assert_eq!(
        get(0x6),
        Some(1024 * 1024 + 320),
        "MAX_HEADER_LIST_SIZE: {settings:?}"
    );
    let mut more = Server::start_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &["--http2-max-streams-per-connection", "1000"],
    );
    let settings = server_settings(&more).await;
    assert!(settings.contains(&(0x3, 1000)), "{settings:?}");
    more.stop(false);
}

/// An early answer: a request carrying a body, answered before the body is read.
struct Early {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    code: u16,
    /// The start of the answer's body.
    answer: &'static str,
}

fn early_answers(token: &str) -> Vec<Early> {
    let auth = ("authorization", format!("Bearer {token}"));
    let json = ("content-type", "application/json".to_string());
    let app = app_body("early").into_bytes();
    let mut big = br#"{"x":""#.to_vec();
    big.resize(3 * 1024 * 1024 + 64 * 1024, b'a');
    big.extend_from_slice(br#""}"#);
    vec![
        Early {
            what: "401 without credentials",
            method: "POST",
            path: APPS.into(),
            headers: vec![json.clone()],
            body: app.clone(),
            code: 401,
            answer: r#"{"apiVersion":"v1","code":401,"kind":"Status","message":"Unauthorized""#,
        },
        Early {
            what: "404 of a resource not served",
            method: "POST",
            path: format!("{G}/namespaces/default/widgets"),
            headers: vec![auth.clone(), json.clone()],
            body: app.clone(),
            code: 404,
            answer: "404 page not found\n",
        },
        Early {
            what: "404 of a subresource not served",
            method: "PUT",
            path: format!("{APPS}/early/bogus"),
            headers: vec![auth.clone(), json.clone()],
            body: app.clone(),
            code: 404,
            answer: r#"{"apiVersion":"v1","code":404,"details":{"group":"admission.example.com","kind":"apps","name":"early"}"#,
        },
        Early {
            what: "405 of a verb /status does not take",
            method: "POST",
            path: format!("{APPS}/early/status"),
            headers: vec![auth.clone(), json.clone()],
            body: app.clone(),
            code: 405,
            answer: r#"{"apiVersion":"v1","code":405,"#,
        },
        Early {
            what: "406 of an Accept not served",
            method: "POST",
            path: APPS.into(),
            headers: vec![auth.clone(), json.clone(), ("accept", "text/html".into())],
            body: app.clone(),
            code: 406,
            answer: r#"{"apiVersion":"v1","code":406,"#,
        },
        Early {
            what: "415 of a body media type not decoded",
            method: "POST",
            path: APPS.into(),
            headers: vec![auth.clone(), ("content-type", "text/plain".into())],
            body: app.clone(),
            code: 415,
            answer: r#"{"apiVersion":"v1","code":415,"#,
        },
        Early {
            what: "400 of a PUT without a name",
            method: "PUT",
            path: APPS.into(),
            headers: vec![auth.clone(), json.clone()],
            body: app.clone(),
            code: 400,
            answer: r#"{"apiVersion":"v1","code":400,"kind":"Status","message":"name must be provided""#,
        },
        Early {
            what: "405 of the AdmissionReview route",
            method: "PUT",
            path: format!("{G}/validatingadmissionreviews"),
            headers: vec![auth.clone(), json.clone()],
            body: app.clone(),
            code: 405,
            answer: r#"{"apiVersion":"v1","code":405,"#,
        },
        Early {
            what: "500 of a path the request-info filter cannot parse",
            method: "POST",
            path: format!("{G}/watch"),
            headers: vec![auth.clone(), json.clone()],
            body: app.clone(),
            code: 500,
            answer: "Internal Server Error: ",
        },
        Early {
            what: "413 of a body over 3 MiB",
            method: "POST",
            path: APPS.into(),
            headers: vec![auth, json],
            body: big,
            code: 413,
            answer: r#"{"apiVersion":"v1","code":413,"#,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_reach_http2_clients_intact() {
    let s = Arc::new(Server::start());
    let dir = tempfile::tempdir().unwrap();
    for early in early_answers(&s.token) {
        // curl, one connection per request, as in the bug report.
        let body_file = dir.path().join("body");
        std::fs::write(&body_file, &early.body).unwrap();
        let data = format!("@{}", body_file.display());
        let mut args = vec!["--http2", "-X", early.method, "--data-binary", &data];
        let headers: Vec<String> = early
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        for h in &headers {
            args.extend(["-H", h.as_str()]);
        }
        for round in 0..20 {
            let c = s.curl(&args, &early.path);
            assert_eq!(
                (c.exit, c.status),
                (0, early.code),
                "{} (curl, round {round}): {}",
                early.what,
                c.stderr
            );
            assert!(
                text(&c.body).starts_with(early.answer),
                "{}: {}",
                early.what,
                text(&c.body)
            );
        }
        // The Rust client, many streams at once on one connection.
        let client = s.client(true);
        let mut answers = Vec::new();
        for _ in 0..40 {
            let mut req = http::Request::builder()
                .method(early.method)
                .uri(format!("{}{}", s.base, early.path));
            for (k, v) in &early.headers {
                req = req.header(*k, v);
            }
            let req = req
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    early.body.clone(),
                )))
                .unwrap();
            let client = client.clone();
            answers.push(tokio::spawn(async move {
                use http_body_util::BodyExt;
                let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("{e:?}"))?
                    .to_bytes();
                Ok::<_, String>((status, body))
            }));
        }
        for answer in answers {
            let (status, body) = answer
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{}: {e}", early.what));
            assert_eq!(status, early.code, "{}", early.what);
            assert!(text(&body).starts_with(early.answer), "{}", early.what);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_keep_http1_connections_alive() {
    let s = Server::start();
    let token = format!("Bearer {}", s.token);
    for early in early_answers(&s.token) {
        if early.code == 413 {
            // Go's server, too, closes a connection whose unread body is over its limit.
            continue;
        }
        // A body that arrives in many reads, still within what is drained (256 KiB).
        let mut body = early.body.clone();
        body.resize(200 * 1024, b' ');
        let mut tls = s.tls(&[b"http/1.1"]).await;
        let mut buffered = Vec::new();
        for round in 0..3 {
            let headers: Vec<(&str, &str)> = early
                .headers
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            let req = request(early.method, &early.path, &headers, &body);
            tls.write_all(&req).await.unwrap();
            let (status, _, body) = read_response(&mut tls, &mut buffered).await;
            assert_eq!(status, early.code, "{} (round {round})", early.what);
            assert!(text(&body).starts_with(early.answer), "{}", early.what);
            // The same connection serves the next request.
            let req = request("GET", APPS, &[("authorization", &token)], b"");
            tls.write_all(&req).await.unwrap();
            let (status, _, _) = read_response(&mut tls, &mut buffered).await;
            assert_eq!(status, 200, "{}: the connection survives", early.what);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_reaches_http2_clients_intact() {
    let c = peer::cluster(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, app_body("denied")).unwrap();
    let data = format!("@{}", body_file.display());
    for round in 0..20 {
        // No credentials in delegated mode: anonymous, and the authorizer says no.
        let r = c.server.curl(
            &[
                "--http2",
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "--data-binary",
                &data,
            ],
            APPS,
        );
        assert_eq!((r.exit, r.status), (0, 403), "round {round}: {}", r.stderr);
        assert_eq!(r.json()["reason"], "Forbidden");
    }
}

/// An early answer over HTTP/2 waits a bounded time for the rest of the body (so that clients
/// finish uploading first), not for ever: a body that never comes still gets its answer, and
/// the connection goes on serving other streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_body_that_never_comes_does_not_hold_its_answer() {
    use http_body_util::BodyExt;
    type Frames =
        futures::channel::mpsc::Receiver<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>;
    let s = Server::start();
    let client = support::https_client_of::<
        http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::io::Error>,
    >(&s.ca_pem, None, true);
    let (tx, rx): (_, Frames) = futures::channel::mpsc::channel(1);
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}{APPS}", s.base))
        .header("content-type", "application/json")
        .header("content-length", "1000")
        .body(http_body_util::StreamBody::new(rx).boxed_unsync())
        .unwrap();
    let client_for_get = client.clone();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(20), client.request(req))
        .await
        .expect("the answer comes without the body")
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(
        text(&body).contains(r#""reason":"Unauthorized""#),
        "{}",
        text(&body)
    );
    drop(tx);
    let get = http::Request::builder()
        .uri(format!("{}{APPS}", s.base))
        .header("authorization", format!("Bearer {}", s.token))
        .body(
            http_body_util::Empty::<bytes::Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap();
    assert_eq!(client_for_get.request(get).await.unwrap().status(), 200);
}
