//! Every method on every path shape of the group, answered as kube-apiserver answers it for the
//! same kinds served as CRDs (`crdHandler` in k8s.io/apiextensions-apiserver, the handlers of
//! k8s.io/apiserver's `pkg/endpoints/handlers`, its mux for what nothing routes), and for the
//! AdmissionReview resources as a k8s.io/apiserver server with a create-only storage answers
//! (go-restful's single `POST` route). Each case runs over HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Response, Server, fixture};

const G: &str = "/apis/admission.example.com/v1";
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// What kube-apiserver answers.
#[derive(Clone, Debug)]
enum Want {
    /// A success with this code.
    Ok(u16),
    /// A `Status` with this code, reason and message.
    Status(u16, &'static str, String),
    /// Plain text (Go's `http.Error`): code and body.
    Text(u16, String),
}

fn page_not_found() -> Want {
    Want::Text(404, "404 page not found\n".into())
}

fn not_supported(verb: &str, resource: &str) -> Want {
    Want::Status(
        405,
        "MethodNotAllowed",
        format!(
            "{verb} is not supported on resources of kind \"{resource}.admission.example.com\""
        ),
    )
}

fn name_required() -> Want {
    Want::Status(400, "BadRequest", "name must be provided".into())
}

fn not_found(resource: &str, name: &str) -> Want {
    Want::Status(
        404,
        "NotFound",
        format!("{resource}.admission.example.com \"{name}\" not found"),
    )
}

fn restful_404() -> Want {
    Want::Status(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
    )
}

fn restful_405() -> Want {
    Want::Status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource".into(),
    )
}

/// A body and content type that the method's handler accepts for `resource`, so that what is
/// checked is the routing, not the body.
fn body_for(
    method: &str,
    resource: &str,
    path: &str,
) -> (Vec<(&'static str, &'static str)>, String) {
    if method == "PUT" && path.ends_with("/scale") {
        let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "x", "resourceVersion": "1"}, "spec": {"replicas": 1}});
        return (
            vec![("content-type", "application/json")],
            scale.to_string(),
        );
    }
    let object = match resource {
        "apps" => json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"generateName": "m-"}, "spec": {"version": "v1.0.0", "replicas": 1}}),
        "namespacereservations" => json!({"apiVersion": "admission.example.com/v1",
            "kind": "NamespaceReservation", "metadata": {"generateName": "m-"},
            "spec": {"owners": {"users": ["alice"]}}}),
        _ => fixture("admissionreview-v1-namespace-create.json")["request"]["body"].clone(),
    };
    match method {
        "POST" => (
            vec![("content-type", "application/json")],
            object.to_string(),
        ),
        "PUT" => {
            let mut put = object;
            put["metadata"] = json!({"name": "x", "resourceVersion": "1"});
            (vec![("content-type", "application/json")], put.to_string())
        }
        "PATCH" => (
            vec![("content-type", "application/merge-patch+json")],
            "{}".into(),
        ),
        _ => (Vec::new(), String::new()),
    }
}

/// The answers for a served kind's shapes: collection (`c`), item `x` that does not exist,
/// `/status`, `/scale` and an unknown subresource.
fn kind_cases(
    resource: &'static str,
    collection: &str,
    item: &str,
    scale: bool,
) -> Vec<(String, &'static str, Want)> {
    let mut cases = Vec::new();
    for method in METHODS {
        let want = match *method {
            "GET" | "HEAD" => Want::Ok(200),
            "POST" => Want::Ok(201),
            "PUT" | "PATCH" => name_required(),
            "DELETE" => Want::Ok(200),
            _ => not_supported("", resource),
        };
        cases.push((collection.to_string(), *method, want));
        let want = match *method {
            "POST" => Want::Ok(201),
            "OPTIONS" => not_supported("", resource),
            _ => not_found(resource, "x"),
        };
        cases.push((item.to_string(), *method, want));
        for (sub, served) in [("status", true), ("scale", scale)] {
            let want = match (*method, served) {
                (_, false) => not_found(resource, "x"),
                ("GET" | "HEAD" | "PUT" | "PATCH", true) => not_found(resource, "x"),
                ("POST", true) => not_supported("create", resource),
                ("DELETE", true) => not_supported("delete", resource),
                _ => not_supported("", resource),
            };
            cases.push((format!("{item}/{sub}"), *method, want));
        }
        cases.push((format!("{item}/bogus"), *method, not_found(resource, "x")));
        // An empty name before a subresource: GET is then a list, which /status does not
        // take; the handlers that do need a name.
        let want = match *method {
            "GET" | "HEAD" => not_supported("list", resource),
            "PUT" | "PATCH" => name_required(),
            "POST" => not_supported("create", resource),
            // DELETE with an empty name is a deletecollection: not on /status.
            "DELETE" => not_supported("deletecollection", resource),
            _ => not_supported("", resource),
        };
        cases.push((format!("{collection}//status"), *method, want));
    }
    cases
}

fn matrix() -> Vec<(String, &'static str, Want)> {
    let ns = format!("{G}/namespaces/default");
    let mut cases = kind_cases("apps", &format!("{ns}/apps"), &format!("{ns}/apps/x"), true);
    cases.extend(kind_cases(
        "namespacereservations",
        &format!("{G}/namespacereservations"),
        &format!("{G}/namespacereservations/x"),
        false,
    ));
    for method in METHODS {
        // A namespaced kind without a namespace: only list and watch.
        let want = match *method {
            "GET" | "HEAD" => Want::Ok(200),
            _ => page_not_found(),
        };
        cases.push((format!("{G}/apps"), *method, want));
        // Paths kube-apiserver routes nowhere.
        for path in [
            format!("{G}/apps/x"),
            format!("{G}/apps/x/status"),
            format!("{ns}/namespacereservations"),
            format!("{ns}/namespacereservations/x"),
            format!("{ns}/widgets"),
            format!("{ns}/widgets/x"),
            format!("{G}/widgets"),
            format!("{G}/namespaces"),
            ns.clone(),
            "/apis/admission.example.com/v2/namespaces/default/apps".to_string(),
            "/apis/admission.example.com/v2/namespacereservations/x".to_string(),
            "/apis/other.example.com/v1/namespaces/default/things".to_string(),
            "/apis/admission.example.com/v1beta2/apps".to_string(),
            "/no/such/path".to_string(),
            "/healthz/no-such-check".to_string(),
        ] {
            cases.push((path, *method, page_not_found()));
        }
        // A verb prefix with nothing after it: kube-apiserver's request-info filter fails.
        for prefix in ["watch", "proxy"] {
            let path = format!("{G}/{prefix}");
            let want = Want::Text(
                500,
                format!(
                    "Internal Server Error: \"{path}\": failed to create RequestInfo: unable to determine kind and namespace from url, {path}\n"
                ),
            );
            cases.push((path, *method, want));
        }
        // Verbs by path prefix: a watch whatever the method.
        cases.push((
            format!("{G}/watch/namespaces/default/apps"),
            *method,
            Want::Ok(200),
        ));
        cases.push((
            format!("{G}/watch/namespaces/default/apps/x/status"),
            *method,
            not_supported("watch", "apps"),
        ));
        cases.push((
            format!("{G}/proxy/namespaces/default/apps/x"),
            *method,
            not_supported("proxy", "apps"),
        ));
        // The AdmissionReview resources: one route.
        for review in ["validatingadmissionreviews", "mutatingadmissionreviews"] {
            let want = match *method {
                "POST" => Want::Ok(200),
                _ => restful_405(),
            };
            cases.push((format!("{G}/{review}"), *method, want.clone()));
            cases.push((format!("{G}/{review}/"), *method, want));
            for path in [
                format!("{G}/{review}/x"),
                format!("{G}/{review}/x/status"),
                format!("{ns}/{review}"),
                format!("{G}/watch/{review}"),
            ] {
                cases.push((path, *method, restful_404()));
            }
        }
    }
    cases
}

fn check(path: &str, method: &str, want: &Want, got: &Response, http2: bool) {
    let what = format!("{method} {path} (HTTP/2: {http2})");
    let body = String::from_utf8_lossy(&got.body).to_string();
    match want {
        Want::Ok(code) => assert_eq!(got.status, *code, "{what}: {body}"),
        Want::Status(code, reason, message) => {
            assert_eq!(got.status, *code, "{what}: {body}");
            if method == "HEAD" {
                return;
            }
            assert_eq!(
                got.header("content-type"),
                Some("application/json"),
                "{what}"
            );
            let status: Value = got.json();
            assert_eq!(status["kind"], "Status", "{what}");
            assert_eq!(status["reason"], *reason, "{what}: {status}");
            assert_eq!(status["message"], message.as_str(), "{what}: {status}");
        }
        Want::Text(code, text) => {
            assert_eq!(got.status, *code, "{what}: {body}");
            assert_eq!(
                got.header("content-type"),
                Some("text/plain; charset=utf-8"),
                "{what}"
            );
            assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
            if method != "HEAD" {
                assert_eq!(body, *text, "{what}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_on_every_path_shape_is_answered_as_kube_answers_it() {
    let s = Server::start();
    let cases = matrix();
    assert!(cases.len() > 300, "{}", cases.len());
    for http2 in [false, true] {
        for (path, method, want) in &cases {
            let resource = path
                .trim_end_matches('/')
                .rsplit('/')
                .find(|p| ["apps", "namespacereservations"].contains(p))
                .unwrap_or("review");
            let (headers, body) = body_for(method, resource, path);
            // Watches are cut short: only their answer matters here.
            let path = if path.contains("/watch/") && !path.contains("status") {
                format!("{path}?timeoutSeconds=1")
            } else {
                path.clone()
            };
            let got = s
                .send_on(http2, Some(&s.token), method, &path, &headers, body)
                .await;
            check(&path, method, want, &got, http2);
        }
    }
}

#[tokio::test]
async fn a_list_or_watch_by_name_selects_that_object() {
    let s = Server::start();
    s.create_app("one", json!({})).await;
    s.create_app("two", json!({})).await;
    let mut w = s
        .watch(
            &format!("{G}/watch/namespaces/default/apps/one?timeoutSeconds=5"),
            &[],
            true,
        )
        .await;
    let e = w.next(std::time::Duration::from_secs(5)).await.unwrap();
    assert_eq!(e["object"]["metadata"]["name"], "one");
    assert!(w.ends_within(std::time::Duration::from_secs(10)).await);
    let mismatch = s
        .request(
            "GET",
            &format!("{G}/watch/namespaces/default/apps/one?fieldSelector=metadata.name%3Dtwo"),
            &[],
            "",
        )
        .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        mismatch.json()["message"],
        "fieldSelector metadata.name doesn't match requested name"
    );
}
