//! The servers under test: one on sled, or `--replicas` sharing `--etcd-members` etcd members
//! started on loopback (`ETCD_BIN`, else `etcd` on the PATH).

use crate::client::Client;
use crate::server::Server;
use anyhow::Result;
use std::path::PathBuf;
use storage::etcd::testing::EtcdCluster;

/// Where the servers under test keep their objects, and how many there are.
#[derive(clap::Args)]
pub struct FleetArgs {
    /// The server binary (default: admission-apiserver next to this binary).
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Run the server on etcd (members started on loopback) instead of sled.
    #[arg(long)]
    pub etcd: bool,
    /// etcd members, with --etcd.
    #[arg(long, default_value_t = 1)]
    pub etcd_members: usize,
    /// Server replicas sharing etcd, with --etcd; requests take turns between them.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
}

/// The running servers and, on etcd, the members they share (stopped on drop).
pub struct Fleet {
    /// The replicas, sharing credentials; one on sled.
    pub replicas: Vec<Server>,
    /// The etcd members, with `--etcd`.
    pub etcd: Option<EtcdCluster>,
}

impl Fleet {
    /// Starts the servers and waits until each is ready.
    pub async fn start(args: &FleetArgs) -> Result<Fleet> {
        if !args.etcd {
            let server = Server::start(args.server_binary.clone(), &[])?;
            server.wait_ready().await?;
            return Ok(Fleet {
                replicas: vec![server],
                etcd: None,
            });
        }
        let etcd = EtcdCluster::start(args.etcd_members).await;
        let flags = vec!["--etcd-servers".to_string(), etcd.servers_flag()];
        let mut replicas: Vec<Server> = Vec::new();
        for i in 0..args.replicas.max(1) {
            let server = Server::start_named(
                args.server_binary.clone(),
                &i.to_string(),
                &flags,
                replicas.first(),
            )?;
            server.wait_ready().await?;
            replicas.push(server);
        }
        Ok(Fleet {
            replicas,
            etcd: Some(etcd),
        })
    }

    /// A client sending each request to the next replica in turn.
    pub fn client(&self, http2: bool) -> Result<Client> {
        let first = &self.replicas[0];
        let bases: Vec<String> = self.replicas.iter().map(|s| s.base.clone()).collect();
        Client::spread(&bases, &first.token, &first.ca_pem, http2)
    }

    /// A client of replica `i` alone.
    pub fn client_of(&self, i: usize, http2: bool) -> Result<Client> {
        let s = &self.replicas[i % self.replicas.len()];
        Client::new(&s.base, &s.token, &s.ca_pem, http2)
    }

    /// The replicas' mean RSS, MiB.
    pub fn rss(&self) -> f64 {
        self.replicas.iter().map(Server::rss_mib).sum::<f64>() / self.replicas.len() as f64
    }

    /// What runs under test, for a report's title.
    pub fn describe(&self, args: &FleetArgs) -> String {
        match &self.etcd {
            Some(_) => format!(
                "etcd ({} member(s), {} replica(s))",
                args.etcd_members,
                self.replicas.len()
            ),
            None => "sled".to_string(),
        }
    }
}
