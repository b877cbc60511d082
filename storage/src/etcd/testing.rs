//! Real etcd clusters on loopback ports for tests (feature `testing`): start members, kill them
//! with SIGKILL, restart them, find the leader.
//!
//! The `etcd` binary is `$ETCD_BIN`, else `etcd` on the `PATH` (`.ci/run` installs Debian's
//! `etcd-server`). Members use short heartbeats and elections so that failover tests are quick;
//! they keep etcd's durable defaults (every commit is fsync'd).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member.
pub struct Member {
    /// Its name in the cluster (`m0`, `m1`, ...).
    pub name: String,
    /// Where clients connect: `http://127.0.0.1:<port>`.
    pub client_url: String,
    peer_url: String,
    data_dir: PathBuf,
    child: Option<Child>,
}

/// A cluster of members started by a test; killed when dropped.
pub struct EtcdCluster {
    /// The members, in start order.
    pub members: Vec<Member>,
    dir: tempfile::TempDir,
    initial_cluster: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The etcd binary tests run.
pub fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster serves quorum reads.
    pub async fn start(n: usize) -> EtcdCluster {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        EtcdCluster::start_on(&ports).await
    }

    /// Starts one member per client port given.
    pub async fn start_on(client_ports: &[u16]) -> EtcdCluster {
        let n = client_ports.len();
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_url: format!("http://127.0.0.1:{}", client_ports[i]),
                peer_url: format!("http://127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("m{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            dir,
            initial_cluster,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_healthy(Duration::from_secs(30)).await;
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))
            .unwrap();
        let m = &mut self.members[i];
        let child = Command::new(etcd_binary())
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.data_dir)
            .args([
                "--listen-client-urls",
                &m.client_url,
                "--advertise-client-urls",
                &m.client_url,
                "--listen-peer-urls",
                &m.peer_url,
                "--initial-advertise-peer-urls",
                &m.peer_url,
                "--initial-cluster",
                &self.initial_cluster,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "admission-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (install etcd 3.5+, e.g. Debian's etcd-server; see .ci/run)",
                    etcd_binary()
                )
            });
        m.child = Some(child);
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// `--etcd-servers` for the cluster.
    pub fn servers_flag(&self) -> String {
        self.endpoints().join(",")
    }

    /// Kills a member with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) a running member: its connections stay open
    /// and it answers nothing meanwhile, as in a long pause of its machine.
    pub fn freeze(&self, i: usize, frozen: bool) {
        if let Some(child) = &self.members[i].child {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let _ = std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Starts a killed member again on its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Whether a member's process is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// The index of the member that leads now, if a running member knows one.
    pub async fn leader(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let Ok(Ok(mut client)) = tokio::time::timeout(
                Duration::from_secs(2),
                etcd_client::Client::connect([m.client_url.as_str()], None),
            )
            .await
            else {
                continue;
            };
            let Ok(Ok(status)) =
                tokio::time::timeout(Duration::from_secs(2), client.status()).await
            else {
                continue;
            };
            let leader = status.leader();
            if leader == 0 {
                continue;
            }
            let Ok(Ok(list)) =
                tokio::time::timeout(Duration::from_secs(2), client.member_list()).await
            else {
                continue;
            };
            return list
                .members()
                .iter()
                .find(|member| member.id() == leader)
                .and_then(|member| self.members.iter().position(|x| x.name == member.name()))
                .or(Some(i));
        }
        None
    }

    /// Waits until a quorum read through every running member succeeds.
    pub async fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            loop {
                let ok = async {
                    let mut c = etcd_client::Client::connect([m.client_url.as_str()], None)
                        .await
                        .ok()?;
                    c.get("health", None).await.ok()
                };
                if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), ok).await {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {} did not become healthy (log: {})",
                    m.name,
                    self.dir.path().join(format!("{}.log", m.name)).display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
