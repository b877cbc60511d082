//! The real `kubectl` against the real binary: everything a user does day to day.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{Server, app, eventually, text};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn discovery_api_resources_and_explain() {
    let s = Server::start();
    let out = s.kubectl_ok(&["api-resources", "--api-group=admission.example.com"]);
    // The same rows as kubectl printed through a 1.36 aggregator (the captured server had no
    // short names; ours are `app` and `nsres`).
    let rows = |table: &str| -> Vec<Vec<String>> {
        table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let cols: Vec<String> = l.split_whitespace().map(str::to_string).collect();
                // NAME [SHORTNAMES] APIVERSION NAMESPACED KIND
                let n = cols.len();
                vec![
                    cols[0].clone(),
                    cols[n - 3].clone(),
                    cols[n - 2].clone(),
                    cols[n - 1].clone(),
                ]
            })
            .collect()
    };
    let captured =
        std::fs::read_to_string(support::fixtures().join("kubectl-api-resources.txt")).unwrap();
    assert_eq!(rows(&out), rows(&captured), "{out}");
    assert!(out.contains(" app ") && out.contains(" nsres "), "{out}");
    let all = s.kubectl_ok(&["api-resources", "--categories=all", "-o", "name"]);
    assert!(all.contains("apps.admission.example.com"), "{all}");

    let explain = s.kubectl_ok(&["explain", "app.spec.replicas"]);
    assert!(explain.contains("FIELD: replicas <integer>"), "{explain}");
    assert!(
        explain.contains("Replicas is the desired number of instances"),
        "{explain}"
    );
    let explain = s.kubectl_ok(&["explain", "namespacereservations.spec.owners"]);
    assert!(explain.contains("users\t<[]string>"), "{explain}");
}

#[test]
fn create_apply_get_list_and_selectors() {
    let s = Server::start();
    s.create(&app("web", "default", 2, &[("tier", "web")]));
    s.create(&app("db", "default", 1, &[("tier", "db")]));
    s.create(&app("web", "other", 3, &[("tier", "web")]));

    // Client-side apply twice: created, then unchanged (no write, same resourceVersion).
    let manifest = app("api", "default", 2, &[("tier", "api")]);
    let first = s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    assert!(
        text(&first.stdout).contains("app.admission.example.com/api created"),
        "{}",
        text(&first.stderr)
    );
    let rv1 = s.kubectl_ok(&[
        "get",
        "app",
        "api",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let second = s.kubectl_stdin(&["apply", "-f", "-"], &manifest);
    assert!(text(&second.stdout).contains("app.admission.example.com/api unchanged"));
    let rv2 = s.kubectl_ok(&[
        "get",
        "app",
        "api",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv1, rv2);

    let obj = json(&s.kubectl_ok(&["get", "app", "web", "-o", "json"]));
    assert_eq!(obj["spec"]["replicas"], 2);
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(obj["metadata"]["uid"].as_str().unwrap().len() == 36);
    let yaml = s.kubectl_ok(&["get", "app", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: App") && yaml.contains("replicas: 2"),
        "{yaml}"
    );

    let all = s.kubectl_ok(&["get", "apps", "-A"]);
    assert_eq!(all.lines().count(), 5, "{all}");
    assert!(
        all.starts_with("NAMESPACE   NAME   VERSION   DESIRED   CURRENT   AGE"),
        "{all}"
    );
    let wide = s.kubectl_ok(&[
        "get",
        "apps",
        "-A",
        "-o",
        "wide",
        "--sort-by=.spec.replicas",
        "--no-headers",
    ]);
    let names: Vec<&str> = wide
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(names, ["db", "api", "web", "web"], "{wide}");

    let labelled = s.kubectl_ok(&["get", "apps", "-A", "-l", "tier=web", "-o", "name"]);
    assert_eq!(labelled.lines().count(), 2, "{labelled}");
    let set_based = s.kubectl_ok(&["get", "apps", "-l", "tier in (db,api)", "-o", "name"]);
    assert_eq!(
        set_based.trim(),
        "app.admission.example.com/api\napp.admission.example.com/db"
    );
    let not = s.kubectl_ok(&["get", "apps", "-l", "tier!=web,!missing", "-o", "name"]);
    assert_eq!(not.lines().count(), 2, "{not}");
    let by_field = s.kubectl_ok(&[
        "get",
        "apps",
        "-A",
        "--field-selector",
        "metadata.namespace=other",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "app.admission.example.com/web");
    let by_name = s.kubectl_ok(&[
        "get",
        "apps",
        "--field-selector",
        "metadata.name!=web",
        "-o",
        "name",
    ]);
    assert_eq!(by_name.lines().count(), 2, "{by_name}");

    let bad = s.kubectl_err(&["get", "apps", "-l", "tier in web"]);
    assert!(
        bad.contains("unable to parse requirement: found 'web' expected: '('"),
        "{bad}"
    );
    let bad = s.kubectl_err(&["get", "apps", "--field-selector", "spec.replicas=1"]);
    assert!(
        bad.contains("field label not supported: spec.replicas"),
        "{bad}"
    );
}

#[test]
fn label_annotate_patch_replace() {
    let s = Server::start();
    s.create(&app("web", "default", 2, &[]));
    s.kubectl_ok(&["label", "app", "web", "env=prod"]);
    s.kubectl_ok(&["annotate", "app", "web", "team=payments"]);
    s.kubectl_ok(&[
        "patch",
        "app",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ]);
    s.kubectl_ok(&[
        "patch",
        "app",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/version","value":"v1.0.1"}]"#,
    ]);
    let obj = json(&s.kubectl_ok(&["get", "app", "web", "-o", "json"]));
    assert_eq!(obj["metadata"]["labels"]["env"], "prod");
    assert_eq!(obj["metadata"]["annotations"]["team"], "payments");
    assert_eq!(obj["spec"]["replicas"], 4);
    assert_eq!(obj["spec"]["version"], "v1.0.1");
    // Two spec changes, two generation bumps; labels and annotations do not bump it.
    assert_eq!(obj["metadata"]["generation"], 3);

    let err = s.kubectl_err(&[
        "patch",
        "app",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "{err}"
    );
    let err = s.kubectl_err(&[
        "patch",
        "app",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    ]);
    assert!(err.contains("the server rejected our request"), "{err}");

    // Replace with the current resourceVersion works; with a stale one it conflicts.
    let mut current = obj.clone();
    current["spec"]["replicas"] = 5.into();
    let out = s.kubectl_stdin(&["replace", "-f", "-"], &current.to_string());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut stale = current.clone();
    stale["spec"]["replicas"] = 6.into();
    let out = s.kubectl_stdin(&["replace", "-f", "-"], &stale.to_string());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("the object has been modified; please apply your changes to the latest version and try again"), "{}", text(&out.stderr));
    assert_eq!(
        s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
}

#[test]
fn seed_invalid_app_dry_run_and_strict_validation() {
    let s = Server::start();
    let bad = "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: bad\nspec:\n  version: v1.0.2\n  replicas: 15\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], bad);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("The App \"bad\" is invalid"), "{err}");
    assert!(err.contains("spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10"), "{err}");
    assert!(
        err.contains(
            "spec.version: Unsupported value: \"v1.0.2\": supported values: \"v1.0.0\", \"v1.0.1\""
        ),
        "{err}"
    );

    let out = s.kubectl_stdin(
        &["create", "-f", "-", "--dry-run=server", "-o", "json"],
        &app("dry", "default", 1, &[]),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dry = json(&text(&out.stdout));
    assert_eq!(dry["metadata"]["name"], "dry");
    assert!(s.kubectl_err(&["get", "app", "dry"]).contains("NotFound"));

    let unknown = "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: unk\nspec:\n  version: v1.0.0\n  replicas: 1\n  colour: red\n";
    let out = s.kubectl_stdin(&["create", "-f", "-", "--validate=strict"], unknown);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("strict decoding error: unknown field \"spec.colour\""),
        "{}",
        text(&out.stderr)
    );
    let out = s.kubectl_stdin(&["create", "-f", "-", "--validate=warn"], unknown);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Warning: unknown field \"spec.colour\""),
        "{}",
        text(&out.stderr)
    );
    let stored = json(&s.kubectl_ok(&["get", "app", "unk", "-o", "json"]));
    assert!(stored["spec"].get("colour").is_none());
    let out = s.kubectl_stdin(
        &["create", "-f", "-", "--validate=false"],
        &unknown.replace("unk", "unk2"),
    );
    assert!(
        out.status.success() && !text(&out.stderr).contains("Warning"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn delete_with_and_without_finalizers_and_delete_all() {
    let s = Server::start();
    s.create(&app("plain", "default", 1, &[]));
    let out = s.kubectl_ok(&["delete", "app", "plain"]);
    assert!(
        out.contains("app.admission.example.com \"plain\" deleted"),
        "{out}"
    );
    assert!(s.kubectl_err(&["get", "app", "plain"]).contains("NotFound"));

    let held = "apiVersion: admission.example.com/v1\nkind: App\nmetadata:\n  name: held\n  finalizers: [\"example.com/hold\"]\nspec:\n  version: v1.0.0\n  replicas: 1\n";
    s.create(held);
    s.kubectl_ok(&["delete", "app", "held", "--wait=false"]);
    let obj = json(&s.kubectl_ok(&["get", "app", "held", "-o", "json"]));
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(obj["metadata"]["generation"], 2);
    // A finalizer cannot be added while deleting.
    let err = s.kubectl_err(&[
        "patch",
        "app",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/more"}]"#,
    ]);
    assert!(
        err.contains("no new finalizers can be added if the object is being deleted"),
        "{err}"
    );
    // Removing the last finalizer completes the deletion.
    s.kubectl_ok(&[
        "patch",
        "app",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(s.kubectl_err(&["get", "app", "held"]).contains("NotFound"));

    for n in ["a", "b", "c"] {
        s.create(&app(n, "default", 1, &[]));
    }
    s.create(&app("keep", "other", 1, &[]));
    let out = s.kubectl_ok(&["delete", "apps", "--all"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(s.kubectl(&["get", "apps", "-o", "name"]).stdout.is_empty());
    assert_eq!(
        s.kubectl_ok(&["get", "apps", "-A", "-o", "name"]).trim(),
        "app.admission.example.com/keep"
    );
}

#[test]
fn namespace_reservations_are_cluster_scoped() {
    let s = Server::start();
    s.create("apiVersion: admission.example.com/v1\nkind: NamespaceReservation\nmetadata:\n  name: team-a\nspec:\n  owners:\n    users: [alice]\n    groups: [dev]\n");
    let out = s.kubectl_ok(&["get", "nsres"]);
    assert!(
        out.starts_with("NAME     USERS       GROUPS    AGE"),
        "{out}"
    );
    assert!(out.contains("team-a   [\"alice\"]   [\"dev\"]"), "{out}");
    let err = text(&s.kubectl_stdin(&["create", "-f", "-"], "apiVersion: admission.example.com/v1\nkind: NamespaceReservation\nmetadata:\n  name: team.b\nspec:\n  owners:\n    users: []\n").stderr);
    assert!(
        err.contains("metadata.name: Invalid value: \"team.b\": must not contain dots"),
        "{err}"
    );
    assert!(err.contains("spec.owners: Required value"), "{err}");
}

#[test]
fn get_watch_sees_changes() {
    let s = Server::start();
    s.create(&app("web", "default", 1, &[]));
    let mut watch = s
        .kubectl_cmd(&["get", "apps", "-w", "--request-timeout=20s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(first.starts_with("NAME"), "{first}");
    let row = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(row.starts_with("web ") && row.contains(" 1 "), "{row}");
    s.kubectl_ok(&[
        "patch",
        "app",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
    ]);
    let changed = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        changed.starts_with("web ") && changed.contains(" 7 "),
        "{changed}"
    );
    s.create(&app("late", "default", 2, &[]));
    let added = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(added.starts_with("late "), "{added}");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn data_survives_a_restart_and_credentials_are_reused() {
    let mut s = Server::start();
    s.create(&app("web", "default", 3, &[]));
    let token = s.token.clone();
    let ca = s.ca_pem.clone();
    let dir = s.dir.clone();
    s.stop(false);
    // A clean stop leaves the snapshot the next start loads instead of scanning sled.
    assert!(dir.path().join("store/snapshot").exists());
    let s2 = Server::start_with(dir, &[]);
    assert!(
        s2.log().contains("from=\"snapshot\"") || s2.log().contains("from=snapshot"),
        "{}",
        s2.log()
    );
    assert_eq!(s2.token, token);
    assert_eq!(s2.ca_pem, ca);
    assert_eq!(
        s2.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    assert!(eventually(Duration::from_secs(5), || s2
        .kubectl(&["get", "apps"])
        .status
        .success()));
}
