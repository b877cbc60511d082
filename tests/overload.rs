//! Overload protection and request deadlines against the real binary, in delegated mode: a
//! kube-apiserver peer that can hold SubjectAccessReviews unanswered keeps requests in flight
//! (authorization comes after the in-flight slot is taken, as in kube), so the limits are
//! reached without depending on timing. Over HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/peer.rs"]
mod peer;
mod support;

use peer::{ADMIN, Cluster, GROUP, JANE, cluster, identity};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const BOB: &[&str] = &["qa", "system:authenticated"];

fn app_body(name: &str) -> String {
    json!({"apiVersion": "admission.example.com/v1", "kind": "App", "metadata": {"name": name},
        "spec": {"version": "v1.0.0", "replicas": 1}})
    .to_string()
}

/// Waits until the peer has received `n` SubjectAccessReviews.
async fn reviews_reach(c: &Cluster, n: usize) {
    for _ in 0..400 {
        if c.reviews().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the peer got {} reviews, not {n}", c.reviews().len());
}

async fn metrics(c: &Cluster) -> String {
    let r = c
        .proxied("GET", "/metrics", &identity("kubelab-admin", ADMIN), "")
        .await;
    assert_eq!(r.status, 200);
    support::text(&r.body)
}

fn assert_too_many(r: &support::Response) {
    assert_eq!(r.status, 429, "{}", support::text(&r.body));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Too many requests: please try again later", "reason": "TooManyRequests",
            "details": {"retryAfterSeconds": 1}, "code": 429})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_limits_requests_get_429_except_masters_probes_and_watches() {
    for http2 in [false, true] {
        let c = Arc::new(
            cluster(&[
                "--max-requests-inflight",
                "1",
                "--max-mutating-requests-inflight",
                "1",
            ])
            .await,
        );
        c.create_app("demo", "ext-demo").await;
        let apps = format!("{GROUP}/namespaces/ext-demo/apps");

        // Watches are long-running: two open ones leave the one read slot free for jane.
        let mut watches = Vec::new();
        for _ in 0..2 {
            let (cert, key) = &c.proxy_cert;
            let mut w = c
                .server
                .send_stream(
                    http2,
                    Some((cert, key)),
                    &format!("{apps}?watch=true"),
                    &identity("jane", JANE),
                )
                .await;
            assert_eq!(w.status, 200);
            assert_eq!(
                w.next(Duration::from_secs(10)).await.unwrap()["type"],
                "ADDED"
            );
            watches.push(w);
        }
        let r = c
            .proxied_over(http2, "GET", &apps, &identity("jane", JANE), "")
            .await;
        assert_eq!(r.status, 200, "{}", support::text(&r.body));

        // Hold one read and one write in flight: their authorization does not come back.
        c.peer.state.stall_reviews.send_replace(true);
        let seen = c.reviews().len();
        let held_read = {
            let c = c.clone();
            let path = format!("{apps}/demo");
            tokio::spawn(async move {
                c.proxied_over(http2, "GET", &path, &identity("jane", JANE), "")
                    .await
            })
        };
        reviews_reach(&c, seen + 1).await;
        let held_write = {
            let (c, path) = (c.clone(), apps.clone());
            tokio::spawn(async move {
                let headers = [
                    identity("jane", JANE),
                    vec![("content-type", "application/json")],
                ]
                .concat();
                c.proxied_over(http2, "POST", &path, &headers, &app_body("held"))
                    .await
            })
        };
        reviews_reach(&c, seen + 2).await;

        // Others are refused, before authorization (the peer sees no review for them).
        let bob = identity("bob", BOB);
        assert_too_many(&c.proxied_over(http2, "GET", &apps, &bob, "").await);
        let post_headers = [bob.clone(), vec![("content-type", "application/json")]].concat();
        assert_too_many(
            &c.proxied_over(http2, "POST", &apps, &post_headers, &app_body("refused"))
                .await,
        );
        assert_eq!(c.reviews().len(), seen + 2);

        // system:masters (the aggregator's availability probe among them) and health probes
        // are served.
        let probe = identity("system:kube-aggregator", &["system:masters"]);
        assert_eq!(
            c.proxied_over(http2, "GET", GROUP, &probe, "").await.status,
            200
        );
        let admin = identity("kubelab-admin", ADMIN);
        assert_eq!(
            c.proxied_over(http2, "GET", &apps, &admin, "").await.status,
            200
        );
        let admin_post = [admin.clone(), vec![("content-type", "application/json")]].concat();
        let created = c
            .proxied_over(http2, "POST", &apps, &admin_post, &app_body("by-admin"))
            .await;
        assert_eq!(created.status, 201, "{}", support::text(&created.body));
        for path in ["/readyz", "/healthz", "/livez"] {
            let r = c
                .server
                .send_over(http2, None, None, "GET", path, &[], "")
                .await;
            assert_eq!(r.status, 200, "{path}");
        }

        // The refusals are counted; the watermark shows the slots in use.
        let mut watermarks = false;
        for _ in 0..60 {
            let text = metrics(&c).await;
            if text.contains("apiserver_current_inflight_requests{request_kind=\"readOnly\"} 1")
                && text.contains("apiserver_current_inflight_requests{request_kind=\"mutating\"} 1")
            {
                watermarks = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(watermarks, "{}", metrics(&c).await);
        let text = metrics(&c).await;
        for line in [
            "apiserver_request_terminations_total{verb=\"LIST\",group=\"admission.example.com\",version=\"v1\",resource=\"apps\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"429\"} 1",
            "apiserver_request_terminations_total{verb=\"POST\",group=\"admission.example.com\",version=\"v1\",resource=\"apps\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"429\"} 1",
            "apiserver_request_total{verb=\"LIST\",group=\"admission.example.com\",version=\"v1\",resource=\"apps\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"429\"} 1",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }

        // Released, the held requests get their answers.
        c.peer.state.stall_reviews.send_replace(false);
        assert_eq!(held_read.await.unwrap().status, 200);
        assert_eq!(held_write.await.unwrap().status, 403);
        // And the limit is free again.
        assert_eq!(
            c.proxied_over(http2, "GET", &apps, &bob, "").await.status,
            403
        );
        drop(watches);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_their_deadline_get_504_and_unstarted_writes_are_not_made() {
    let c = Arc::new(cluster(&["--request-timeout", "30s"]).await);
    c.create_app("demo", "ext-demo").await;
    let apps = format!("{GROUP}/namespaces/ext-demo/apps");
    for http2 in [false, true] {
        // A malformed `timeout` is a 400, before anything else.
        let r = c
            .proxied_over(
                http2,
                "GET",
                &format!("{apps}?timeout=10"),
                &identity("jane", JANE),
                "",
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "invalid timeout specified in the request URL - time: missing unit in duration \"10\"",
                "reason": "BadRequest", "code": 400})
        );

        // A request still waiting for its authorization when `timeout` passes gets kube's 504.
        c.peer.state.stall_reviews.send_replace(true);
        let r = c
            .proxied_over(
                http2,
                "GET",
                // A name per round: a review answered later is cached.
                &format!("{apps}/demo-{http2}?timeout=1s"),
                &identity("jane", JANE),
                "",
            )
            .await;
        assert_eq!(r.status, 504, "{}", support::text(&r.body));
        assert_eq!(
            r.json(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Timeout: request did not complete within requested timeout - context deadline exceeded",
                "reason": "Timeout", "details": {}, "code": 504})
        );

        // A write whose handling had not started by its deadline is not made afterwards.
        let name = if http2 { "late-h2" } else { "late-h1" };
        let namespace_apps = format!("{GROUP}/namespaces/{name}/apps");
        let headers = [
            identity(
                "system:serviceaccount:ext-demo:ext",
                &["system:serviceaccounts", "system:authenticated"],
            ),
            vec![("content-type", "application/json")],
        ]
        .concat();
        let r = c
            .proxied_over(
                http2,
                "POST",
                &format!("{namespace_apps}?timeout=1s"),
                &headers,
                &app_body(name),
            )
            .await;
        assert_eq!(r.status, 504);
        c.peer.state.stall_reviews.send_replace(false);
        let admin = identity("kubelab-admin", ADMIN);
        // The stalled review is answered now; the abandoned write still does not happen.
        let r = c
            .proxied_over(
                http2,
                "GET",
                &format!("{namespace_apps}/{name}"),
                &admin,
                "",
            )
            .await;
        assert_eq!(r.status, 404, "{}", support::text(&r.body));
    }
    let text = metrics(&c).await;
    assert!(
        text.contains("apiserver_request_terminations_total{verb=\"GET\",group=\"admission.example.com\",version=\"v1\",resource=\"apps\",subresource=\"\",scope=\"resource\",component=\"apiserver\",code=\"504\"} 2"),
        "{text}"
    );
}
