//! Replays what kube-apiserver 1.36 answered for our two kinds served as CRDs
//! (`tests/fixtures/kube-1.36/crd-oracle/`) against the real binary and requires no difference,
//! with the team's replay tool (`tests/tools/replay-crd-oracle.py`, needs python3 and PyYAML).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Server, text};

#[test]
fn crd_oracle_replay_has_no_difference() {
    let s = Server::start();
    let tool =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/replay-crd-oracle.py");
    let out = std::process::Command::new("python3")
        .arg(tool)
        .arg(&s.kubeconfig)
        .arg("--show")
        .output()
        .expect("python3 runs (install python3 and PyYAML: see .ci/run)");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "replay failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    assert_eq!(last, "14 compared, 0 differ", "\n{stdout}");
}
