//! Delegated mode against an in-test kube-apiserver peer: the authentication chain (front proxy,
//! client certificates, bearer tokens, anonymous), SubjectAccessReview authorization with its
//! caches, the followed `extension-apiserver-authentication` ConfigMap, serving-certificate
//! reload, and `kubectl` with a client-certificate kubeconfig.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/peer.rs"]
mod peer;
mod support;

use peer::{ADMIN, Ca, GROUP, JANE, cluster, config_map, identity};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{app, fixture};

fn fixture_spec(name: &str) -> Value {
    fixture(name)["request"]["body"]["spec"].clone()
}

/// The aggregator's captured requests, replayed as sent (headers in wire order, repeated groups)
/// over a front-proxy certificate: each user is served as itself, and the SubjectAccessReviews
/// sent for them are exactly the captured ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_requests_are_served_as_the_proxied_user() {
    let c = cluster(&[]).await;
    c.create_app("demo", "ext-demo").await;
    assert!(
        c.reviews().is_empty(),
        "system:masters needs no SubjectAccessReview"
    );

    let capture = fixture("proxied-user-request.json");
    for exchange in capture["exchanges"].as_array().unwrap() {
        let request = &exchange["request"];
        let headers: Vec<(String, String)> = request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .filter(|(k, _)| k != "Host")
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = c
            .proxied("GET", request["path"].as_str().unwrap(), &headers, "")
            .await;
        assert_eq!(
            r.status,
            200,
            "{}: {}",
            exchange["note"],
            support::text(&r.body)
        );
        assert_eq!(r.json()["kind"], "AppList");
    }
    // jane is reviewed as jane, the service account with its uid and extra, the admin not at all.
    let reviews = c.reviews();
    assert_eq!(reviews.len(), 2, "{reviews:#?}");
    assert_eq!(reviews[0]["user"], "jane");
    assert_eq!(reviews[0]["groups"], json!(["dev", "system:authenticated"]));
    assert_eq!(reviews[0]["resourceAttributes"]["verb"], "list");
    let sa = &reviews[1];
    assert_eq!(sa["user"], "system:serviceaccount:ext-demo:ext");
    assert_eq!(sa["uid"], "9997e74c-b4f3-4c97-a22f-799fd280e25c");
    assert_eq!(
        sa["extra"],
        json!({"authentication.kubernetes.io/credential-id": ["JTI=de08c282-f129-4377-9dcf-16e9fc2dc435"]})
    );

    // The captured SubjectAccessReviews, one request each.
    let sa_headers = [
        (
            "X-Remote-Extra-Authentication.kubernetes.io%2fcredential-Id",
            "JTI=de08c282-f129-4377-9dcf-16e9fc2dc435",
        ),
        ("X-Remote-Group", "system:serviceaccounts"),
        ("X-Remote-Group", "system:serviceaccounts:ext-demo"),
        ("X-Remote-Group", "system:authenticated"),
        ("X-Remote-Uid", "9997e74c-b4f3-4c97-a22f-799fd280e25c"),
        ("X-Remote-User", "system:serviceaccount:ext-demo:ext"),
    ];
    /// method, path under the group, headers, expected code, fixture of the review sent.
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: [Case; 6] = [
        (
            "GET",
            "/namespaces/ext-demo/apps",
            identity("jane", JANE),
            200,
            "subjectaccessreview-allowed-list-apps.json",
        ),
        (
            "GET",
            "/namespaces/ext-demo/apps/demo/scale",
            identity("jane", JANE),
            200,
            "subjectaccessreview-allowed-get-apps-scale.json",
        ),
        (
            "GET",
            "/namespaces/ext-demo/apps/demo",
            sa_headers.to_vec(),
            200,
            "subjectaccessreview-allowed-get-apps-serviceaccount-extra.json",
        ),
        (
            "GET",
            "/namespaces/ext-demo/apps?labelSelector=tier%20in%20(web,api)&fieldSelector=metadata.namespace%3Dext-demo",
            identity("jane", JANE),
            200,
            "subjectaccessreview-allowed-list-apps-selector-requirements.json",
        ),
        (
            "POST",
            "/namespaces/ext-demo/apps",
            identity("jane", JANE),
            403,
            "subjectaccessreview-denied-create-apps.json",
        ),
        (
            "PUT",
            "/namespaces/ext-demo/apps/demo/scale",
            identity("jane", JANE),
            403,
            "subjectaccessreview-denied-update-apps-scale.json",
        ),
    ];
    for (method, path, headers, code, name) in cases {
        let before = c.reviews().len();
        let r = c
            .proxied(method, &format!("{GROUP}{path}"), &headers, "{}")
            .await;
        assert_eq!(
            r.status,
            code,
            "{method} {path}: {}",
            support::text(&r.body)
        );
        let mut expected = fixture_spec(name);
        if name.contains("selector-requirements") {
            // labels.Parse sorts the values of a set (`tier in (web,api)`); the capture was
            // written by hand in the other order.
            expected["resourceAttributes"]["labelSelector"]["requirements"][0]["values"] =
                json!(["api", "web"]);
        }
        assert_eq!(c.reviews()[before..], [expected], "{method} {path}");
    }
    for (path, name) in [
        (
            GROUP.to_string(),
            "subjectaccessreview-nonresource-allowed.json",
        ),
        (
            "/metrics".to_string(),
            "subjectaccessreview-nonresource-denied.json",
        ),
    ] {
        let before = c.reviews().len();
        let r = c.proxied("GET", &path, &identity("jane", JANE), "").await;
        assert_eq!(
            r.status,
            if name.contains("allowed") { 200 } else { 403 },
            "{path}"
        );
        assert_eq!(c.reviews()[before..], [fixture_spec(name)], "{path}");
    }
    let r = c
        .proxied("GET", "/metrics", &identity("jane", JANE), "")
        .await;
    assert_eq!(
        r.json()["message"],
        "forbidden: User \"jane\" cannot get path \"/metrics\""
    );
}

/// Identity headers count only over a front-proxy certificate whose CN is allowed; a
/// certificate the server cannot trust is a 401 even where anonymous requests are allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_need_the_front_proxy_certificate() {
    let c = cluster(&[]).await;
    let admin = identity("kubelab-admin", ADMIN);
    let path = format!("{GROUP}/apps");
    assert_eq!(c.proxied("GET", &path, &admin, "").await.status, 200);

    // No certificate: the headers are ignored, the request is anonymous and RBAC says no.
    let r = c.server.send(None, None, "GET", &path, &admin, "").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "apps.admission.example.com is forbidden: User \"system:anonymous\" cannot list resource \"apps\" in API group \"admission.example.com\" at the cluster scope"
    );
    let anonymous = c.reviews().pop().unwrap();
    assert_eq!(anonymous["user"], "system:anonymous");
    assert_eq!(anonymous["groups"], json!(["system:unauthenticated"]));

    // A certificate of the front-proxy CA with another CN: 401.
    let (cert, key) = c.front_proxy.client("not-the-aggregator", &[]);
    let r = c
        .server
        .send(Some((&cert, &key)), None, "GET", &path, &admin, "")
        .await;
    assert_eq!(r.status, 401, "{}", support::text(&r.body));
    assert_eq!(r.json()["reason"], "Unauthorized");

    // A certificate of an unknown CA with the right CN: the handshake succeeds, the request is 401.
    let (cert, key) = Ca::new("front-proxy-ca").client("front-proxy-client", &[]);
    let r = c
        .server
        .send(Some((&cert, &key)), None, "GET", &path, &admin, "")
        .await;
    assert_eq!(r.status, 401);

    // A user certificate of the client CA: its CN and O are the user, the headers are ignored.
    let (cert, key) = c.client_ca.client("jane", &["dev"]);
    let reservations = format!("{GROUP}/namespacereservations");
    let r = c
        .server
        .send(Some((&cert, &key)), None, "GET", &reservations, &admin, "")
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "namespacereservations.admission.example.com is forbidden: User \"jane\" cannot list resource \"namespacereservations\" in API group \"admission.example.com\" at the cluster scope",
        "as kube-apiserver words it (proxied-user-request.json, not_proxied)"
    );
    let review = c.reviews().pop().unwrap();
    assert_eq!(review["user"], "jane");
    assert_eq!(review["groups"], json!(["dev", "system:authenticated"]));
    // An X.509 v1 certificate of the client CA (no extensions): the handshake succeeds, as
    // with Go's RequestClientCert; the chain checker takes only v3 certificates, so the request
    // is a 401 Status rather than a failed handshake.
    let (cert, key) = c.client_ca.client_v1("jane", &["dev"]);
    let r = c
        .server
        .send(Some((&cert, &key)), None, "GET", &reservations, &admin, "")
        .await;
    assert_eq!(r.status, 401, "{}", support::text(&r.body));
    assert_eq!(r.json()["reason"], "Unauthorized");
    let r = c
        .server
        .send(Some((&cert, &key)), None, "GET", "/healthz", &[], "")
        .await;
    assert_eq!(r.status, 200);
    let (cert, key) = c.client_ca.client("ops", &["system:masters"]);
    assert_eq!(
        c.server
            .send(Some((&cert, &key)), None, "GET", &path, &[], "")
            .await
            .status,
        200
    );

    // Probes carry nothing and are always allowed; so are their sub-paths.
    for probe in [
        "/healthz",
        "/livez",
        "/readyz",
        "/readyz?verbose",
        "/livez/ping",
    ] {
        let r = c.server.send(None, None, "GET", probe, &[], "").await;
        assert_eq!(r.status, 200, "{probe}: {}", support::text(&r.body));
    }
    let verbose = c
        .server
        .send(None, None, "GET", "/readyz?verbose", &[], "")
        .await;
    assert!(support::text(&verbose.body).contains("[+]extension-apiserver-authentication ok"));
    assert!(!c.reviews().iter().any(|r| {
        r["nonResourceAttributes"]["path"]
            .as_str()
            .is_some_and(|p| p.contains("z"))
    }));
    assert_eq!(
        c.peer.state.unauthenticated.load(Ordering::SeqCst),
        0,
        "the server presents its own credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_anonymous_auth_headers_without_a_certificate_are_401() {
    let c = cluster(&["--anonymous-auth=false"]).await;
    let admin = identity("kubelab-admin", ADMIN);
    let r = c
        .server
        .send(None, None, "GET", &format!("{GROUP}/apps"), &admin, "")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    assert_eq!(
        c.proxied("GET", &format!("{GROUP}/apps"), &admin, "")
            .await
            .status,
        200
    );
    let ready = c
        .server
        .send(None, None, "GET", "/readyz?verbose", &[], "")
        .await;
    assert_eq!(
        ready.status,
        200,
        "{}\n{}",
        support::text(&ready.body),
        c.server.log()
    );
}

/// Bearer tokens go through TokenReview, once per token and TTL; bad tokens are 401 whatever
/// `--anonymous-auth` says; failed reviews are retried with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_reviewed_and_cached() {
    let c = cluster(&[
        "--api-audiences",
        "https://kubernetes.default.svc.cluster.local",
    ])
    .await;
    let path = format!("{GROUP}/namespaces/ext-demo/apps");
    for _ in 0..5 {
        let r = c
            .server
            .send(None, Some("good-token"), "GET", &path, &[], "")
            .await;
        assert_eq!(r.status, 200, "{}", support::text(&r.body));
    }
    let reviews = c.peer.state.token_reviews.lock().clone();
    assert_eq!(
        reviews,
        [
            json!({"token": "good-token", "audiences": ["https://kubernetes.default.svc.cluster.local"]})
        ],
        "one TokenReview for five requests"
    );
    let sars = c.reviews();
    assert_eq!(
        sars.len(),
        1,
        "one SubjectAccessReview for five identical requests"
    );
    assert_eq!(sars[0]["user"], "system:serviceaccount:ext-demo:ext");
    assert_eq!(sars[0]["uid"], "9997e74c-b4f3-4c97-a22f-799fd280e25c");

    for _ in 0..3 {
        let r = c
            .server
            .send(
                None,
                Some("garbage-not-a-token.abc.def"),
                "GET",
                &path,
                &[],
                "",
            )
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["reason"], "Unauthorized");
    }
    assert_eq!(
        c.peer.state.token_reviews.lock().len(),
        2,
        "rejections are cached too"
    );

    // kube-apiserver failing twice, then answering: the request still succeeds.
    c.peer.state.fail_next.store(2, Ordering::SeqCst);
    let r = c
        .server
        .send(None, Some("another-good-token"), "GET", &path, &[], "")
        .await;
    assert_eq!(
        r.status, 401,
        "unknown to the peer, but reviewed after the retries"
    );
    assert_eq!(c.peer.state.fail_next.load(Ordering::SeqCst), 0);
    assert_eq!(c.peer.state.token_reviews.lock().len(), 3);

    // A failing SubjectAccessReview is kube-apiserver's 500, and is not cached.
    c.peer.state.fail_next.store(5, Ordering::SeqCst);
    let r = c
        .server
        .send(
            None,
            Some("good-token"),
            "GET",
            &format!("{path}/nothing"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 500, "{}", support::text(&r.body));
    assert_eq!(r.json()["reason"], "InternalError");
    let r = c
        .server
        .send(
            None,
            Some("good-token"),
            "GET",
            &format!("{path}/nothing"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 404, "{}", support::text(&r.body));

    let metrics = c
        .proxied("GET", "/metrics", &identity("kubelab-admin", ADMIN), "")
        .await;
    let text = support::text(&metrics.body);
    assert!(
        text.contains("admission_apiserver_token_reviews_total 3"),
        "{text}"
    );
    assert!(text.contains("apiserver_request_total{verb=\"LIST\",group=\"admission.example.com\",version=\"v1\",resource=\"apps\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"200\"} 5"), "{text}");
    assert!(
        text.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 1"),
        "{text}"
    );
}

/// Each verb is authorized as itself (watch, deletecollection, patch, the status and scale
/// subresources), denials are worded as kube-apiserver words them, and decisions are cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_is_authorized_and_denials_read_like_kube_apiserver() {
    let c = cluster(&[]).await;
    c.create_app("demo", "ext-demo").await;
    let jane = identity("jane", JANE);
    let ns = format!("{GROUP}/namespaces/ext-demo");
    let merge = [
        jane.clone(),
        vec![("content-type", "application/merge-patch+json")],
    ]
    .concat();
    let json_body = [jane.clone(), vec![("content-type", "application/json")]].concat();
    /// method, path, headers, verb and subresource reviewed.
    type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", format!("{ns}/apps"), &json_body, "create", ""),
        ("PUT", format!("{ns}/apps/demo"), &json_body, "update", ""),
        ("PATCH", format!("{ns}/apps/demo"), &merge, "patch", ""),
        ("DELETE", format!("{ns}/apps/demo"), &jane, "delete", ""),
        (
            "DELETE",
            format!("{ns}/apps"),
            &jane,
            "deletecollection",
            "",
        ),
        (
            "GET",
            format!("{GROUP}/namespacereservations?watch=true"),
            &jane,
            "watch",
            "",
        ),
        (
            "GET",
            format!("{GROUP}/namespacereservations"),
            &jane,
            "list",
            "",
        ),
        (
            "GET",
            format!("{ns}/apps/demo/status"),
            &jane,
            "get",
            "status",
        ),
        (
            "PATCH",
            format!("{ns}/apps/demo/status"),
            &merge,
            "patch",
            "status",
        ),
        (
            "PUT",
            format!("{ns}/apps/demo/scale"),
            &json_body,
            "update",
            "scale",
        ),
        (
            "PATCH",
            format!("{ns}/apps/demo/scale"),
            &merge,
            "patch",
            "scale",
        ),
    ];
    for (method, path, headers, verb, subresource) in cases {
        let before = c.reviews().len();
        let r = c.proxied(method, &path, headers, "{}").await;
        assert_eq!(r.status, 403, "{method} {path}: {}", support::text(&r.body));
        let status = r.json();
        let review = c.reviews()[before..].to_vec();
        assert_eq!(review.len(), 1, "{method} {path}");
        let attrs = &review[0]["resourceAttributes"];
        assert_eq!(attrs["verb"], verb, "{method} {path}");
        assert_eq!(
            attrs["subresource"].as_str().unwrap_or(""),
            subresource,
            "{method} {path}"
        );
        let resource = attrs["resource"].as_str().unwrap();
        let shown = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        let name = attrs["name"].as_str().unwrap_or("");
        let subject = if name.is_empty() {
            format!("{resource}.admission.example.com")
        } else {
            format!("{resource}.admission.example.com \"{name}\"")
        };
        let scope = match attrs["namespace"].as_str() {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        assert_eq!(
            status["message"],
            format!(
                "{subject} is forbidden: User \"jane\" cannot {verb} resource \"{shown}\" in API group \"admission.example.com\" {scope}"
            ),
        );
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["details"]["group"], "admission.example.com");
        assert_eq!(status["details"]["kind"], resource);
        if !name.is_empty() {
            assert_eq!(status["details"]["name"], name);
        }
    }
    // Allowed reads, including watch, answer; repeating a request costs no new review.
    let mut watch = c
        .proxied(
            "GET",
            &format!("{ns}/apps?watch=true&timeoutSeconds=1"),
            &jane,
            "",
        )
        .await;
    assert_eq!(watch.status, 200);
    assert!(support::text(&std::mem::take(&mut watch.body)).contains("\"ADDED\""));
    let mut before = c.reviews().len();
    for round in 0..4 {
        assert_eq!(
            c.proxied("GET", &format!("{ns}/apps/demo/scale"), &jane, "")
                .await
                .status,
            200
        );
        assert_eq!(
            c.proxied("PUT", &format!("{ns}/apps/demo/scale"), &json_body, "{}")
                .await
                .status,
            403
        );
        if round == 0 {
            assert_eq!(
                c.reviews().len(),
                before + 1,
                "the denial was reviewed above already"
            );
            before += 1;
        }
    }
    assert_eq!(c.reviews().len(), before, "allow and deny are both cached");
}

/// A new front-proxy CA published in the ConfigMap applies without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_front_proxy_ca_applies_without_restart() {
    let c = cluster(&[]).await;
    let admin = identity("kubelab-admin", ADMIN);
    let path = format!("{GROUP}/apps");
    assert_eq!(c.proxied("GET", &path, &admin, "").await.status, 200);

    let rotated = Ca::new("front-proxy-ca-2");
    let mut data = config_map(&c.client_ca, &rotated);
    data["requestheader-allowed-names"] = json!("[\"aggregator\"]");
    c.peer.state.set_config_map(data);
    let (cert, key) = rotated.client("aggregator", &[]);
    let mut served = false;
    for _ in 0..100 {
        if c.server
            .send(Some((&cert, &key)), None, "GET", &path, &admin, "")
            .await
            .status
            == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "the new CA and allowed name apply:\n{}",
        c.server.log()
    );
    assert_eq!(
        c.proxied("GET", &path, &admin, "").await.status,
        401,
        "the old CA no longer counts"
    );
}

/// `--tls-cert-file` and `--tls-private-key-file` are reread when they change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_certificates_are_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("serving-1"), Ca::new("serving-2"));
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let write = |ca: &Ca| {
        let (cert, key) = ca.server();
        std::fs::write(&key_file, key).unwrap();
        std::fs::write(&cert_file, cert).unwrap();
    };
    write(&old_ca);
    let c = cluster(&[
        "--tls-cert-file",
        cert_file.to_str().unwrap(),
        "--tls-private-key-file",
        key_file.to_str().unwrap(),
    ])
    .await;
    let url = format!("{}/readyz", c.server.base);
    assert!(peer::get_trusting(&old_ca.pem, &url).await.is_ok());
    assert!(peer::get_trusting(&new_ca.pem, &url).await.is_err());
    write(&new_ca);
    let mut reloaded = false;
    for _ in 0..150 {
        if peer::get_trusting(&new_ca.pem, &url).await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        reloaded,
        "the new serving certificate is served:\n{}",
        c.server.log()
    );
}

/// `kubectl` with a kubeconfig holding a client certificate, as a cluster admin and as a user
/// RBAC limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_with_a_client_certificate() {
    let c = cluster(&[]).await;
    let kubeconfig = |name: &str, orgs: &[&str]| {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let (cert, key) = c.client_ca.client(name, orgs);
        let path = c.server.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: ext-demo\ncurrent-context: x\n",
                c.server.base,
                b64(&c.server.ca_pem),
                b64(&cert),
                b64(&key)
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };
    let ops = kubeconfig("ops", &["system:masters"]);
    let jane = kubeconfig("jane", &["dev"]);
    let server = &c.server;
    tokio::task::block_in_place(|| {
        let out = server.kubectl_stdin(
            &["--kubeconfig", &ops, "create", "-f", "-"],
            &app("demo", "ext-demo", 2, &[]),
        );
        assert!(out.status.success(), "{}", support::text(&out.stderr));
        let got = server.kubectl_ok(&["--kubeconfig", &ops, "get", "apps", "-o", "name"]);
        assert_eq!(got.trim(), "app.admission.example.com/demo");
        let resources = server.kubectl_ok(&[
            "--kubeconfig",
            &jane,
            "api-resources",
            "--api-group",
            "admission.example.com",
            "-o",
            "name",
        ]);
        assert!(
            resources.contains("apps.admission.example.com"),
            "{resources}"
        );
        let got = server.kubectl_ok(&[
            "--kubeconfig",
            &jane,
            "get",
            "app",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        assert_eq!(got, "2");
        let err = server.kubectl_err(&[
            "--kubeconfig",
            &jane,
            "scale",
            "app",
            "demo",
            "--replicas",
            "3",
        ]);
        assert!(
            err.contains("Error from server (Forbidden): apps.admission.example.com \"demo\" is forbidden: User \"jane\" cannot patch resource \"apps/scale\" in API group \"admission.example.com\" in the namespace \"ext-demo\""),
            "{err}"
        );
        let err = server.kubectl_err(&["--kubeconfig", &jane, "delete", "app", "demo"]);
        assert!(
            err.contains("User \"jane\" cannot delete resource \"apps\""),
            "{err}"
        );
    });
}

/// A kubeconfig whose credential comes from an `exec` plugin (a script printing an
/// ExecCredential, as EKS, GKE, AKS and OIDC logins do): the server starts and its reviews
/// reach kube-apiserver authenticated with the plugin's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_credential_plugin_authenticates_the_server() {
    let c = peer::cluster_with(&[], true).await;
    c.create_app("demo", "ext-demo").await;
    let r = c
        .proxied(
            "GET",
            &format!("{GROUP}/namespaces/ext-demo/apps"),
            &identity("jane", JANE),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", support::text(&r.body));
    let r = c
        .server
        .send(
            None,
            Some("good-token"),
            "GET",
            &format!("{GROUP}/namespaces/ext-demo/apps"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", support::text(&r.body));
    assert_eq!(c.peer.state.unauthenticated.load(Ordering::SeqCst), 0);
    assert!(!c.reviews().is_empty());
    assert_eq!(c.peer.state.token_reviews.lock().len(), 1);
    let calls =
        std::fs::read_to_string(c.server.dir.path().join("credential-plugin.sh.calls")).unwrap();
    assert!(!calls.trim().is_empty(), "the plugin ran");
}
