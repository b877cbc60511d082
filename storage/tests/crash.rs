//! Crash safety of the sled backend: a child process writes with many concurrent writers and is
//! killed with SIGKILL at a random moment; the store is reopened and must hold every write the
//! child saw acknowledged, and nothing else but the one write each writer had in flight.
//!
//! The child is this same test binary, started with `STORAGE_CRASH_CHILD` set, running
//! `crash_child`. Rounds reuse one directory, so recovery is also tested on top of recovery.
//! `STORAGE_CRASH_ROUNDS` sets the number of rounds (default 20).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use rand::Rng;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use storage::versioner::Unversioned;
use storage::{ReadAt, SledOptions, SledStore, Store};

const WRITERS: usize = 16;

/// One step of a writer's fixed plan. Key `j` of writer `w` is created at step `j`, updated at
/// step `j + 1` and deleted at step `j + 2`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Create(usize),
    Update(usize),
    Delete(usize),
}

fn plan(len: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut i = 0;
    while ops.len() < len {
        ops.push(Op::Create(i));
        if i >= 1 {
            ops.push(Op::Update(i - 1));
        }
        if i >= 2 {
            ops.push(Op::Delete(i - 2));
        }
        i += 1;
    }
    ops.truncate(len);
    ops
}

fn key(round: usize, writer: usize, j: usize) -> String {
    format!("r{round}/w{writer}/k{j:06}")
}

/// The state of each key after applying the first `n` steps of a writer's plan.
fn replay(n: usize) -> BTreeMap<usize, Option<&'static str>> {
    let mut state = BTreeMap::new();
    for op in plan(n) {
        match op {
            Op::Create(j) => state.insert(j, Some("created")),
            Op::Update(j) => state.insert(j, Some("updated")),
            Op::Delete(j) => state.insert(j, None),
        };
    }
    state
}

/// The child: writes its plan as fast as it can and prints each acknowledgement.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("STORAGE_CRASH_CHILD") else {
        return; // Only meaningful as the child of `kill9_loses_no_acknowledged_write`.
    };
    let round: usize = std::env::var("STORAGE_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(
            SledStore::open(
                Path::new(&dir),
                SledOptions::default(),
                Arc::new(Unversioned),
            )
            .unwrap(),
        );
        println!("ready");
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut revisions = BTreeMap::new();
                for (step, op) in plan(1_000_000).into_iter().enumerate() {
                    let rev = match op {
                        Op::Create(j) => {
                            store
                                .create(&key(round, w, j), Bytes::from_static(b"created"))
                                .await
                                .unwrap()
                                .revision
                        }
                        Op::Update(j) => {
                            store
                                .update(
                                    &key(round, w, j),
                                    revisions[&j],
                                    Bytes::from_static(b"updated"),
                                )
                                .await
                                .unwrap()
                                .revision
                        }
                        Op::Delete(j) => {
                            store
                                .delete(&key(round, w, j), revisions[&j])
                                .await
                                .unwrap()
                                .1
                        }
                    };
                    if let Op::Create(j) | Op::Update(j) = op {
                        revisions.insert(j, rev);
                    }
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {w} {step} {rev}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn kill9_loses_no_acknowledged_write() {
    let rounds: usize = std::env::var("STORAGE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    // Keys verified in earlier rounds, with the value and revision they must keep.
    let mut settled: BTreeMap<String, (Vec<u8>, u64)> = BTreeMap::new();
    let mut total_acks = 0;

    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STORAGE_CRASH_CHILD", dir.path())
            .env("STORAGE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let kill_after = Duration::from_millis(rng.random_range(20..400));
        let reader = std::thread::spawn(move || {
            let mut acks: Vec<Vec<(usize, u64)>> = vec![Vec::new(); WRITERS];
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parts: Vec<&str> = line.split_whitespace().collect();
                if let ["ack", w, step, rev] = parts[..] {
                    let w: usize = w.parse().unwrap();
                    acks[w].push((step.parse().unwrap(), rev.parse().unwrap()));
                }
            }
            acks
        });
        std::thread::sleep(kill_after);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();

        let store = SledStore::open(dir.path(), SledOptions::default(), Arc::new(Unversioned))
            .unwrap_or_else(|e| panic!("round {round}: the store does not reopen: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut all_revs = Vec::new();
        for (w, writer_acks) in acks.iter().enumerate() {
            for (i, (step, rev)) in writer_acks.iter().enumerate() {
                assert_eq!(*step, i, "writer {w} acknowledged steps out of order");
                all_revs.push(*rev);
            }
            let n = writer_acks.len();
            total_acks += n;
            let acked = replay(n);
            let with_in_flight = replay(n + 1);
            let in_flight_key = match plan(n + 1).last() {
                Some(Op::Create(j) | Op::Update(j) | Op::Delete(j)) => Some(*j),
                None => None,
            };
            // The revision each acknowledged create/update of a key was given.
            let mut acked_rev: BTreeMap<usize, u64> = BTreeMap::new();
            for (op, (_, rev)) in plan(n).into_iter().zip(writer_acks) {
                if let Op::Create(j) | Op::Update(j) = op {
                    acked_rev.insert(j, *rev);
                }
            }
            let keys: Vec<usize> = with_in_flight.keys().copied().collect();
            for j in keys {
                let got = rt
                    .block_on(store.get(&key(round, w, j), ReadAt::Latest))
                    .unwrap();
                let got_state = got.as_ref().map(|kv| kv.value.to_vec());
                let want = acked
                    .get(&j)
                    .copied()
                    .flatten()
                    .map(|s| s.as_bytes().to_vec());
                if got_state == want {
                    if let (Some(kv), Some(rev)) = (&got, acked_rev.get(&j)) {
                        assert_eq!(
                            kv.revision, *rev,
                            "round {round} writer {w} key {j}: wrong revision"
                        );
                    }
                    if let Some(kv) = got {
                        settled.insert(key(round, w, j), (kv.value.to_vec(), kv.revision));
                    } else {
                        settled.remove(&key(round, w, j));
                    }
                    continue;
                }
                let alternative = with_in_flight
                    .get(&j)
                    .copied()
                    .flatten()
                    .map(|s| s.as_bytes().to_vec());
                assert!(
                    in_flight_key == Some(j) && got_state == alternative,
                    "round {round} writer {w} key {j}: recovered {:?}, acknowledged {:?}",
                    got_state.map(|v| String::from_utf8_lossy(&v).to_string()),
                    want.map(|v| String::from_utf8_lossy(&v).to_string()),
                );
                match got {
                    Some(kv) => settled.insert(key(round, w, j), (kv.value.to_vec(), kv.revision)),
                    None => settled.remove(&key(round, w, j)),
                };
            }
        }
        all_revs.sort_unstable();
        let before = all_revs.len();
        all_revs.dedup();
        assert_eq!(
            before,
            all_revs.len(),
            "round {round}: a revision was acknowledged twice"
        );
        if let Some(max) = all_revs.last() {
            assert!(
                store.current_revision() >= *max,
                "round {round}: store revision went back"
            );
        }
        // Everything settled in earlier rounds is untouched.
        for (k, (value, rev)) in &settled {
            let kv = rt
                .block_on(store.get(k, ReadAt::Latest))
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: {k} vanished"));
            assert_eq!(
                (&kv.value.to_vec(), kv.revision),
                (value, *rev),
                "round {round}: {k} changed"
            );
        }
        drop(store);
    }
    assert!(
        total_acks > 0,
        "the children acknowledged nothing; the test proved nothing"
    );
    eprintln!("{rounds} crash rounds, {total_acks} acknowledged writes verified");
}
