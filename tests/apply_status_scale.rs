//! Status and scale subresources, server-side apply and managedFields, with the real kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, app, text};

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn managed(s: &Server, name: &str) -> Vec<Value> {
    let obj = json_of(&s.kubectl_ok(&["get", "app", name, "--show-managed-fields", "-o", "json"]));
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(entries: &'a [Value], manager: &str, operation: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .unwrap_or_else(|| panic!("no {operation} entry of {manager} in {entries:#?}"))
}

#[test]
fn status_writes_change_only_status_and_wait_sees_conditions() {
    let s = Server::start();
    s.create(&app("web", "default", 2, &[("tier", "web")]));
    // A status written through the main resource is ignored, and does not bump the generation.
    s.kubectl_ok(&[
        "patch",
        "app",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"replicas":5}}"#,
    ]);
    let obj = json_of(&s.kubectl_ok(&["get", "app", "web", "-o", "json"]));
    assert!(obj.get("status").is_none());
    assert_eq!(obj["metadata"]["generation"], 1);

    let wait = s
        .kubectl_cmd(&["wait", "--for=condition=Ready", "app/web", "--timeout=30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A status write with spec changes in it changes only status.
    s.kubectl_ok(&[
        "patch", "app", "web", "--subresource=status", "--type", "merge", "-p",
        r#"{"spec":{"replicas":9},"status":{"replicas":2,"selector":"tier=web","conditions":[{"type":"Ready","status":"True","reason":"Up","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#,
    ]);
    let out = wait.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("app.admission.example.com/web condition met"),
        "{}",
        text(&out.stdout)
    );
    let obj = json_of(&s.kubectl_ok(&["get", "app", "web", "-o", "json"]));
    assert_eq!(obj["spec"]["replicas"], 2);
    assert_eq!(obj["status"]["replicas"], 2);
    assert_eq!(obj["metadata"]["generation"], 1);
    let status_entry = managed(&s, "web")
        .into_iter()
        .find(|e| e["subresource"] == "status")
        .unwrap();
    assert_eq!(status_entry["operation"], "Update");
    assert!(
        status_entry["fieldsV1"]["f:status"]["f:conditions"]["k:{\"type\":\"Ready\"}"].is_object()
    );

    let out = s.kubectl_ok(&[
        "wait",
        "--for=jsonpath={.status.replicas}=2",
        "app/web",
        "--timeout=10s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    // Status validation still applies.
    let err = s.kubectl_err(&[
        "patch",
        "app",
        "web",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"replicas":"two"}}"#,
    ]);
    assert!(err.contains("status.replicas: Invalid value"), "{err}");
}

#[test]
fn scale_through_the_scale_subresource() {
    let s = Server::start();
    s.create(&app("web", "default", 2, &[]));
    let scale = json_of(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/admission.example.com/v1/namespaces/default/apps/web/scale",
    ]));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["replicas"], 0);

    s.kubectl_ok(&["scale", "app", "web", "--replicas=3"]);
    assert_eq!(
        s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.metadata.generation}"]),
        "2"
    );
    // --current-replicas takes the GET-then-PUT path with a resourceVersion precondition.
    s.kubectl_ok(&[
        "scale",
        "app",
        "web",
        "--current-replicas=3",
        "--replicas=4",
    ]);
    let err = s.kubectl_err(&[
        "scale",
        "app",
        "web",
        "--current-replicas=3",
        "--replicas=5",
    ]);
    assert!(err.contains("Expected replicas to be 3, was 4"), "{err}");
    let err = s.kubectl_err(&["scale", "app", "web", "--replicas=11"]);
    assert!(err.contains("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"), "{err}");

    // A stale resourceVersion on a Scale update is a conflict.
    let mut stale = scale.clone();
    stale["spec"]["replicas"] = json!(6);
    let out = s.kubectl_stdin(
        &[
            "replace",
            "--raw",
            "/apis/admission.example.com/v1/namespaces/default/apps/web/scale",
            "-f",
            "-",
        ],
        &stale.to_string(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Conflict")
            || text(&out.stderr).contains("the object has been modified"),
        "{}",
        text(&out.stderr)
    );
    let scale_entry = managed(&s, "web")
        .into_iter()
        .find(|e| e["subresource"] == "scale")
        .unwrap();
    assert_eq!(
        scale_entry["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // JSON and merge patches of the Scale.
    s.kubectl_ok(&[
        "patch",
        "app",
        "web",
        "--subresource=scale",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
    ]);
    s.kubectl_ok(&[
        "patch",
        "app",
        "web",
        "--subresource=scale",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":8}]"#,
    ]);
    assert_eq!(
        s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.spec.replicas}"]),
        "8"
    );
}

#[test]
fn server_side_apply_with_conflicts_and_force() {
    let s = Server::start();
    let manifest = app("web", "default", 2, &[("tier", "web")]);
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &manifest);
    assert!(
        text(&out.stdout).contains("serverside-applied"),
        "{}",
        text(&out.stderr)
    );
    let entries = managed(&s, "web");
    assert_eq!(entries.len(), 1);
    let kubectl = entry(&entries, "kubectl", "Apply");
    assert_eq!(
        kubectl["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:tier": {}}}, "f:spec": {"f:replicas": {}, "f:version": {}}})
    );
    assert!(kubectl.get("subresource").is_none());
    let rv = s.kubectl_ok(&[
        "get",
        "app",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    // Re-applying the same configuration changes nothing.
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &manifest);
    assert!(out.status.success());
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "app",
            "web",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv
    );

    // A second manager setting a different value conflicts, naming the owner and field.
    let other = app("web", "default", 5, &[("tier", "web")]);
    let out = s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=ops", "-f", "-"],
        &other,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{err}"
    );
    let out = s.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=ops",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &other,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    let entries = managed(&s, "web");
    assert_eq!(
        entry(&entries, "ops", "Apply")["fieldsV1"]["f:spec"],
        json!({"f:replicas": {}, "f:version": {}})
    );
    assert_eq!(
        entry(&entries, "kubectl", "Apply")["fieldsV1"]["f:spec"],
        json!({"f:version": {}})
    );

    // A manager that stops applying a field it alone owns removes it.
    let without_label = app("web", "default", 5, &[]);
    s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=ops", "-f", "-"],
        &without_label,
    );
    let labels = s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.metadata.labels}"]);
    assert!(
        labels.contains("tier"),
        "kubectl still applies the label: {labels}"
    );
    s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &app("web", "default", 5, &[]).replace("  replicas: 5\n", ""),
    );
    let obj = json_of(&s.kubectl_ok(&["get", "app", "web", "-o", "json"]));
    assert!(
        obj["metadata"]
            .get("labels")
            .is_none_or(|l| l.get("tier").is_none()),
        "{obj}"
    );
    assert_eq!(obj["spec"]["replicas"], 5);
}

#[test]
fn client_side_apply_after_server_side_and_edit() {
    let s = Server::start();
    s.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &app("web", "default", 2, &[]),
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &app("web", "default", 3, &[("tier", "web")]),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let obj = json_of(&s.kubectl_ok(&["get", "app", "web", "-o", "json"]));
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(obj["metadata"]["labels"]["tier"], "web");
    assert!(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    let editor = s.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/replicas: 3/replicas: 4/' \"$1\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = s
        .kubectl_cmd(&["edit", "app", "web"])
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("app.admission.example.com/web edited"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    assert!(
        managed(&s, "web")
            .iter()
            .any(|e| e["manager"] == "kubectl-edit")
    );
}

#[test]
fn list_types_follow_the_schema() {
    let s = Server::start();
    s.create(&app("web", "default", 2, &[]));
    // status.conditions is a map-list keyed by type: two appliers own one condition each.
    for (manager, cond) in [("ctl-a", "A"), ("ctl-b", "B")] {
        let cfg = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "web", "namespace": "default"},
            "status": {"conditions": [{"type": cond, "status": "True"}]}});
        let out = s.kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--subresource=status",
                &format!("--field-manager={manager}"),
                "-f",
                "-",
            ],
            &cfg.to_string(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let obj = json_of(&s.kubectl_ok(&["get", "app", "web", "-o", "json"]));
    let types: Vec<&str> = obj["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["A", "B"]);
    // Finalizers are a set: two appliers each add theirs.
    for (manager, f) in [("m1", "example.com/one"), ("m2", "example.com/two")] {
        let cfg = json!({"apiVersion": "admission.example.com/v1", "kind": "App",
            "metadata": {"name": "web", "namespace": "default", "finalizers": [f]}});
        assert!(
            s.kubectl_stdin(
                &[
                    "apply",
                    "--server-side",
                    &format!("--field-manager={manager}"),
                    "-f",
                    "-"
                ],
                &cfg.to_string()
            )
            .status
            .success()
        );
    }
    let finalizers = s.kubectl_ok(&["get", "app", "web", "-o", "jsonpath={.metadata.finalizers}"]);
    assert_eq!(finalizers, r#"["example.com/one","example.com/two"]"#);
    // spec.owners.users of a reservation is atomic: a second applier replaces the whole list.
    s.create("apiVersion: admission.example.com/v1\nkind: NamespaceReservation\nmetadata:\n  name: team\nspec:\n  owners:\n    users: [alice, bob]\n");
    let cfg = r#"{"apiVersion":"admission.example.com/v1","kind":"NamespaceReservation","metadata":{"name":"team"},"spec":{"owners":{"users":["carol"]}}}"#;
    let out = s.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=x",
            "--force-conflicts",
            "-f",
            "-",
        ],
        cfg,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "nsres",
            "team",
            "-o",
            "jsonpath={.spec.owners.users}"
        ]),
        r#"["carol"]"#
    );
}
