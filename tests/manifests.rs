//! The install manifests under `apiservice/`, built by the real kustomize (`kubectl kustomize`),
//! agree with the code: group and version, Service and container ports, probe paths, flags the
//! binary accepts, RBAC naming resources that exist, certificate and caBundle wiring, webhook
//! paths that are served, and the Dockerfile's binary and user. Both installs are checked: the
//! default (`apiservice/`: one replica on sled) and the replicated one (`apiservice/ha/`: a
//! Deployment on etcd), and the example etcd (`apiservice/etcd/`) against what the replicated
//! install expects of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use admission_apiserver::kinds::{self, GROUP, VERSION};
use clap::Parser;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every object `kubectl kustomize apiservice/` produces.
fn objects() -> Vec<Value> {
    objects_of("apiservice")
}

/// Every object `kubectl kustomize <dir>` produces.
fn objects_of(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(root().join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kustomize build fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the build"))
}

fn all<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn every_file_is_part_of_the_kustomization() {
    for dir in [
        "apiservice",
        "apiservice/base",
        "apiservice/ha",
        "apiservice/etcd",
    ] {
        let kustomization: Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(root().join(dir).join("kustomization.yaml")).unwrap(),
        )
        .unwrap();
        let listed = strings(&kustomization["resources"]);
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with(".yaml") && name != "kustomization.yaml" {
                assert!(
                    listed.contains(&name.as_str()),
                    "{dir}/{name} is not in kustomization.yaml"
                );
            }
        }
        assert!(
            kustomization.get("namespace").is_none(),
            "{dir}: a namespace: would move the kube-system RoleBinding"
        );
    }
}

/// The server's workload in a build: the sled StatefulSet or the etcd Deployment.
fn server_workload(objects: &[Value]) -> &Value {
    let mut found = objects.iter().filter(|o| {
        (o["kind"] == "StatefulSet" || o["kind"] == "Deployment")
            && o["metadata"]["name"] == "admission-apiserver"
    });
    let workload = found.next().expect("a workload runs the server");
    assert!(found.next().is_none(), "one workload runs the server");
    workload
}

/// A probe's path without its query (`/livez?exclude=etcd`).
fn probe_path(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

#[test]
fn the_apiservice_reaches_the_server() {
    reaches_the_server("apiservice");
}

#[test]
fn the_apiservice_reaches_the_replicated_server() {
    reaches_the_server("apiservice/ha");
}

fn reaches_the_server(dir: &str) {
    let objects = objects_of(dir);
    let api = find(&objects, "APIService", &format!("{VERSION}.{GROUP}"));
    assert_eq!(api["spec"]["group"], GROUP);
    assert_eq!(api["spec"]["version"], VERSION);
    assert_ne!(
        api["spec"]["insecureSkipTLSVerify"], true,
        "the server's certificate is verified"
    );

    // APIService → Service → container port → --secure-port.
    let (svc_ns, svc_name) = (
        api["spec"]["service"]["namespace"].as_str().unwrap(),
        api["spec"]["service"]["name"].as_str().unwrap(),
    );
    let service = find(&objects, "Service", svc_name);
    assert_eq!(service["metadata"]["namespace"], svc_ns);
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == api["spec"]["service"]["port"])
        .expect("the APIService's port is a port of the Service");
    let workload = server_workload(&objects);
    assert_eq!(workload["metadata"]["namespace"], svc_ns);
    let pod = &workload["spec"]["template"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "the Service selects the pods"
        );
    }
    let container = &pod["spec"]["containers"][0];
    let container_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port["targetPort"] || p["containerPort"] == port["targetPort"])
        .expect("the Service's targetPort is a container port");

    // The arguments are accepted by the binary and agree with the rest.
    let args: Vec<String> = std::iter::once("admission-apiserver".to_string())
        .chain(strings(&container["args"]).into_iter().map(str::to_string))
        .collect();
    let cli = admission_apiserver::config::Cli::try_parse_from(&args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let admission_apiserver::config::Command::Serve(options) = cli.command else {
        panic!("the container runs serve: {args:?}");
    };
    assert_eq!(
        u64::from(options.secure_port),
        container_port["containerPort"].as_u64().unwrap()
    );
    assert!(
        options.bind_address.is_unspecified(),
        "reachable from the Service"
    );
    assert!(
        options.authentication_kubeconfig.is_none(),
        "in a pod, the service account is used"
    );

    // SIGTERM to SIGKILL covers the shutdown delay and a drain of requests in flight.
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    let shutdown = options.shutdown_delay_duration + options.request_timeout;
    assert!(
        grace > shutdown.as_secs(),
        "grace {grace}s covers the delay and a drain ({shutdown:?})"
    );

    // Probes use paths the server always allows, on the serving port, over HTTPS.
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        let path = get["path"].as_str().unwrap();
        assert!(
            admission_apiserver::auth::is_always_allowed_path(probe_path(path)),
            "{probe} {path}"
        );
        assert_eq!(get["port"], container_port["name"]);
        assert_eq!(get["scheme"], "HTTPS");
    }

    // The data directory is the claimed volume (sled) or a scratch one (etcd); the serving
    // certificate is the Certificate's Secret, whose CA is injected into the APIService.
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount_of = |volume: &str| {
        mounts.iter().find(|m| m["name"] == volume).unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let on_etcd = options.etcd.etcd_servers.is_some();
    let data_volume = if on_etcd {
        let scratch = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["emptyDir"].is_object())
            .expect("a scratch volume for generated files");
        scratch["name"].as_str().unwrap().to_string()
    } else {
        workload["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(options.data_dir, Path::new(&mount_of(&data_volume)));
    let cert_file = options.tls_cert_file.clone().unwrap();
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| cert_file.starts_with(mount_of(v["name"].as_str().unwrap())))
        .expect("--tls-cert-file is in a mounted volume");
    let secret = volume["secret"]["secretName"].as_str().unwrap();
    let (ns, cert_name) = api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        .as_str()
        .unwrap()
        .split_once('/')
        .unwrap();
    let certificate = find(&objects, "Certificate", cert_name);
    assert_eq!(certificate["metadata"]["namespace"], ns);
    assert_eq!(certificate["spec"]["secretName"], secret);
    assert!(
        strings(&certificate["spec"]["dnsNames"])
            .contains(&format!("{svc_name}.{svc_ns}.svc").as_str())
    );
    assert_eq!(cert_file.file_name().unwrap(), "tls.crt");
    assert_eq!(
        options
            .tls_private_key_file
            .clone()
            .unwrap()
            .file_name()
            .unwrap(),
        "tls.key"
    );
    if on_etcd {
        // Its etcd client files are the etcd-client Secret's, mounted (read at startup).
        let etcd_mount = mount_of("etcd-client");
        for (file, key) in [
            (&options.etcd.etcd_cafile, "ca.crt"),
            (&options.etcd.etcd_certfile, "tls.crt"),
            (&options.etcd.etcd_keyfile, "tls.key"),
        ] {
            assert_eq!(
                file.as_deref(),
                Some(Path::new(&etcd_mount).join(key).as_path())
            );
        }
        options
            .etcd
            .backend()
            .expect_err("the files exist only in the pod");
    } else {
        options
            .validate()
            .expect("the arguments form a valid configuration");
    }
}

#[test]
fn every_served_version_is_registered_and_the_storage_version_preferred() {
    let objects = objects();
    let registered: Vec<&Value> = all(&objects, "APIService")
        .filter(|a| a["spec"]["group"] == GROUP)
        .collect();
    let mut names: Vec<&str> = registered
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = kinds::VERSIONS
        .iter()
        .map(|v| format!("{}.{GROUP}", v.name))
        .collect();
    want.sort();
    assert_eq!(names, want);
    let preferred = find(&objects, "APIService", &format!("{VERSION}.{GROUP}"));
    for api in &registered {
        let version = api["spec"]["version"].as_str().unwrap();
        assert_eq!(api["metadata"]["name"], format!("{version}.{GROUP}"));
        // Every version reaches the same server the same way.
        for field in ["service", "groupPriorityMinimum", "insecureSkipTLSVerify"] {
            assert_eq!(
                api["spec"][field], preferred["spec"][field],
                "{version} {field}"
            );
        }
        assert_eq!(
            api["metadata"]["annotations"],
            preferred["metadata"]["annotations"]
        );
        if version != VERSION {
            // The aggregator prefers the highest versionPriority: the storage version, as the
            // server's own discovery does.
            assert!(
                api["spec"]["versionPriority"].as_u64()
                    < preferred["spec"]["versionPriority"].as_u64(),
                "{version}"
            );
        }
    }
}

#[test]
fn the_pod_is_locked_down_and_single_writer() {
    let objects = objects();
    let sts = find(&objects, "StatefulSet", "admission-apiserver");
    assert_eq!(sts["spec"]["replicas"], 1, "sled is a single-writer store");
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        strings(&container["securityContext"]["capabilities"]["drop"]),
        ["ALL"]
    );
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());

    // The Dockerfile builds this binary and runs it as the user the pod expects.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let user = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(
        dockerfile.contains(&format!("USER {user}:")),
        "Dockerfile USER is {user}"
    );
    assert!(dockerfile.contains("--bin admission-apiserver"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/admission-apiserver\"]"));
    assert_eq!(strings(&container["args"])[0], "serve");
}

#[test]
fn rbac_names_what_the_server_serves_and_needs() {
    for dir in ["apiservice", "apiservice/ha"] {
        rbac_in(dir);
    }
}

fn rbac_in(dir: &str) {
    let objects = objects_of(dir);
    let sa = find(&objects, "ServiceAccount", "admission-apiserver");
    let workload = server_workload(&objects);
    assert_eq!(
        workload["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
    let bound_to_sa = |binding: &Value| {
        binding["subjects"].as_array().unwrap().iter().any(|s| {
            s["kind"] == "ServiceAccount"
                && s["name"] == sa["metadata"]["name"]
                && s["namespace"] == sa["metadata"]["namespace"]
        })
    };
    assert!(
        all(&objects, "ClusterRoleBinding")
            .any(|b| b["roleRef"]["name"] == "system:auth-delegator" && bound_to_sa(b))
    );
    assert!(all(&objects, "RoleBinding").any(|b| {
        b["metadata"]["namespace"] == "kube-system"
            && b["roleRef"]["kind"] == "Role"
            && b["roleRef"]["name"] == "extension-apiserver-authentication-reader"
            && bound_to_sa(b)
    }));
    let events = all(&objects, "ClusterRole").find(|r| {
        r["rules"].as_array().unwrap().iter().any(|rule| {
            strings(&rule["resources"]).contains(&"events")
                && strings(&rule["verbs"]).contains(&"create")
        })
    });
    let events = events.expect("a ClusterRole lets the server record Events");
    assert!(
        all(&objects, "ClusterRoleBinding")
            .any(|b| b["roleRef"]["name"] == events["metadata"]["name"] && bound_to_sa(b))
    );

    // Every resource named for the group exists, with its subresources.
    let served = kinds::load().unwrap();
    let mut aggregated = Vec::new();
    for role in all(&objects, "ClusterRole") {
        for rule in role["rules"].as_array().unwrap() {
            if !strings(&rule["apiGroups"]).contains(&GROUP) {
                continue;
            }
            for resource in strings(&rule["resources"]) {
                let (plural, sub) = resource.split_once('/').unwrap_or((resource, ""));
                if admission_apiserver::admission::REVIEW_RESOURCES.contains(&plural) {
                    assert_eq!(
                        (sub, strings(&rule["verbs"])),
                        ("", vec!["create"]),
                        "review resources are create-only"
                    );
                    continue;
                }
                let kind = served
                    .iter()
                    .find(|r| r.kind.plural == plural)
                    .unwrap_or_else(|| panic!("{resource} is not served"))
                    .kind;
                match sub {
                    "" => {}
                    "status" => assert!(kind.status_subresource, "{resource}"),
                    "scale" => assert!(kind.scale.is_some(), "{resource}"),
                    other => panic!("unknown subresource {other}"),
                }
            }
        }
        for (label, _) in role["metadata"]["labels"].as_object().into_iter().flatten() {
            if let Some(to) = label.strip_prefix("rbac.authorization.k8s.io/aggregate-to-") {
                aggregated.push(to.to_string());
            }
        }
    }
    for role in ["admin", "edit", "view"] {
        assert!(
            aggregated.iter().any(|a| a == role),
            "nothing aggregates into {role}"
        );
    }
}

#[test]
fn webhooks_call_the_served_admission_reviews() {
    let objects = objects();
    let served = admission_apiserver::admission::REVIEW_RESOURCES;
    let mut seen = 0;
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        for config in all(&objects, kind) {
            assert_eq!(
                config["metadata"]["annotations"]["cert-manager.io/inject-apiserver-ca"], "true",
                "caBundle is the cluster CA"
            );
            for hook in config["webhooks"].as_array().unwrap() {
                seen += 1;
                let path = hook["clientConfig"]["service"]["path"].as_str().unwrap();
                let resource = path
                    .strip_prefix(&format!("/apis/{GROUP}/{VERSION}/"))
                    .unwrap_or_else(|| panic!("{path}"));
                assert!(served.contains(&resource), "{path} is not served");
                let expected = if kind.starts_with("Validating") {
                    "validatingadmissionreviews"
                } else {
                    "mutatingadmissionreviews"
                };
                assert_eq!(resource, expected);
                assert_eq!(
                    hook["clientConfig"]["service"]["name"], "kubernetes",
                    "through the aggregator"
                );
                // The validating webhook records Events, except on dry runs.
                let side_effects = if kind.starts_with("Validating") {
                    "NoneOnDryRun"
                } else {
                    "None"
                };
                assert_eq!(hook["sideEffects"], side_effects);
                let versions = strings(&hook["admissionReviewVersions"]);
                assert_eq!(
                    versions,
                    admission_apiserver::admission::review::VERSIONS
                        .map(|v| v.trim_start_matches("admission.k8s.io/"))
                );
                // Never the server's own namespace.
                let own = server_workload(&objects)["metadata"]["namespace"]
                    .as_str()
                    .unwrap();
                let excluded = hook["namespaceSelector"]["matchExpressions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| {
                        e["key"] == "kubernetes.io/metadata.name"
                            && e["operator"] == "NotIn"
                            && strings(&e["values"]).contains(&own)
                    });
                assert!(
                    excluded,
                    "{} must not review its own namespace",
                    hook["name"]
                );
                assert_eq!(strings(&hook["rules"][0]["resources"]), ["namespaces"]);
                assert_eq!(strings(&hook["rules"][0]["operations"]), ["CREATE"]);
            }
        }
    }
    assert_eq!(seen, 2);
    // kube-apiserver's identity may create reviews.
    let role = all(&objects, "ClusterRole")
        .find(|r| {
            r["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|rule| strings(&rule["resources"]).contains(&"validatingadmissionreviews"))
        })
        .expect("a ClusterRole grants create on the review resources");
    assert!(all(&objects, "ClusterRoleBinding").any(|b| {
        b["roleRef"]["name"] == role["metadata"]["name"]
            && b["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == "User" && s["name"] == "system:apiserver")
    }));
}

/// The replicated install: several replicas of a Deployment on etcd, spread over nodes, a
/// disruption budget that keeps most of them, probes that leave an etcd outage to readiness,
/// and a grace period that covers the shutdown delay.
#[test]
fn the_replicated_install_runs_replicas_on_etcd() {
    let objects = objects_of("apiservice/ha");
    assert!(
        all(&objects, "StatefulSet").next().is_none(),
        "no sled StatefulSet"
    );
    let deployment = find(&objects, "Deployment", "admission-apiserver");
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas >= 3, "{replicas} replicas");
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    let selects = |selector: &Value| {
        selector["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k] == v)
    };
    let pdb = find(&objects, "PodDisruptionBudget", "admission-apiserver");
    assert!(selects(&pdb["spec"]["selector"]));
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let anti = &pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert!(selects(&anti["labelSelector"]));

    let container = &pod["spec"]["containers"][0];
    let args: Vec<String> = std::iter::once("admission-apiserver".to_string())
        .chain(strings(&container["args"]).into_iter().map(str::to_string))
        .collect();
    let cli = admission_apiserver::config::Cli::try_parse_from(&args).unwrap();
    let admission_apiserver::config::Command::Serve(options) = cli.command else {
        panic!("serve");
    };
    let servers = options.etcd.etcd_servers.clone().unwrap();
    assert!(servers.len() >= 3, "{servers:?}");
    assert!(
        servers.iter().all(|s| s.starts_with("https://")),
        "TLS to etcd"
    );
    let liveness = container["livenessProbe"]["httpGet"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(liveness, "/livez?exclude=etcd");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

/// The example etcd is what the replicated install points at: three members reachable at the
/// addresses of `--etcd-servers`, serving TLS with a certificate for those names, requiring
/// client certificates from the CA that also issued the replicas' `etcd-client` certificate.
#[test]
fn the_example_etcd_serves_the_replicated_install() {
    let etcd = objects_of("apiservice/etcd");
    let ha = objects_of("apiservice/ha");
    let deployment = find(&ha, "Deployment", "admission-apiserver");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let servers: Vec<String> = strings(&container["args"])
        .iter()
        .find_map(|a| a.strip_prefix("--etcd-servers="))
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let sts = find(&etcd, "StatefulSet", "etcd");
    let ns = sts["metadata"]["namespace"].as_str().unwrap();
    assert_eq!(ns, deployment["metadata"]["namespace"]);
    let service = sts["spec"]["serviceName"].as_str().unwrap();
    let headless = find(&etcd, "Service", service);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let members = sts["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(members, 3);
    let hosts: Vec<String> = (0..members)
        .map(|i| format!("etcd-{i}.{service}.{ns}.svc"))
        .collect();
    let want: Vec<String> = hosts.iter().map(|h| format!("https://{h}:2379")).collect();
    assert_eq!(servers, want);
    let member = find(&etcd, "Certificate", "etcd-member");
    for host in &hosts {
        assert!(
            strings(&member["spec"]["dnsNames"]).contains(&host.as_str()),
            "{host}"
        );
    }
    let args = strings(&sts["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains(&"--client-cert-auth"));
    assert!(args.contains(&"--peer-client-cert-auth"));
    let initial = args
        .iter()
        .find_map(|a| a.strip_prefix("--initial-cluster="))
        .unwrap();
    let peers: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| format!("etcd-{i}=https://{h}:2380"))
        .collect();
    assert_eq!(initial, peers.join(","));
    let tls_secret = sts["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"]
        .as_str()
        .unwrap();
    assert_eq!(member["spec"]["secretName"], tls_secret);
    // The replicas' client certificate: the Secret they mount, from the members' CA.
    let client = find(&etcd, "Certificate", "etcd-client");
    let mounted = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "etcd-client")
        .unwrap();
    assert_eq!(
        client["spec"]["secretName"],
        mounted["secret"]["secretName"]
    );
    assert_eq!(client["spec"]["issuerRef"], member["spec"]["issuerRef"]);
    assert!(strings(&client["spec"]["usages"]).contains(&"client auth"));
    assert!(strings(&member["spec"]["usages"]).contains(&"server auth"));
    let pdb = find(&etcd, "PodDisruptionBudget", "etcd");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "quorum survives a drain");
}
