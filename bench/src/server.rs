//! Starting the server under test (the release binary next to this one) on a fresh data
//! directory, and reading its memory.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running server.
pub struct Server {
    child: Child,
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    /// Admin bearer token.
    pub token: String,
    /// CA certificate (PEM).
    pub ca_pem: String,
    dir: PathBuf,
    binary: PathBuf,
    extra: Vec<String>,
}

/// The server binary to run: the one given, else the release binary next to this one.
pub fn binary(given: Option<PathBuf>) -> Result<PathBuf> {
    let binary = match given {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("admission-apiserver"),
    };
    if !binary.exists() {
        bail!(
            "{} not found: build it with `cargo build --release` (or pass --server-binary)",
            binary.display()
        );
    }
    Ok(binary)
}

impl Server {
    /// Starts the server, with extra flags.
    pub fn start(binary: Option<PathBuf>, extra: &[String]) -> Result<Server> {
        Server::start_named(binary, "0", extra, None)
    }

    /// Starts a server on a fresh data directory named after `name`, sharing the credentials
    /// of `like` (another replica) when given.
    pub fn start_named(
        binary: Option<PathBuf>,
        name: &str,
        extra: &[String],
        like: Option<&Server>,
    ) -> Result<Server> {
        let binary = self::binary(binary)?;
        let dir =
            std::env::temp_dir().join(format!("admission-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pki"))?;
        if let Some(first) = like {
            for f in [
                "pki/ca.crt",
                "pki/ca.key",
                "pki/serving.crt",
                "pki/serving.key",
                "admin-token",
            ] {
                std::fs::copy(first.dir.join(f), dir.join(f))?;
            }
        }
        Server::spawn(binary, dir, extra.to_vec())
    }

    /// Stops the server (SIGTERM, then waits) and starts it again on the same data directory;
    /// returns it with the time from start to a passing `/readyz`.
    pub async fn restart(mut self) -> Result<(Server, Duration)> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let (binary, dir, extra) = (self.binary.clone(), self.dir.clone(), self.extra.clone());
        // Keep the directory: this server is replaced, not removed.
        self.dir = PathBuf::new();
        let started = std::time::Instant::now();
        let server = Server::spawn(binary, dir, extra)?;
        server.wait_ready().await?;
        Ok((server, started.elapsed()))
    }

    /// Waits until `/readyz` passes.
    pub async fn wait_ready(&self) -> Result<()> {
        let client = crate::client::Client::new(&self.base, &self.token, &self.ca_pem, false)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, _)) = client
                .send("GET", "/readyz", None, bytes::Bytes::new())
                .await
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("the server did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Where the sled store came from at the last start, as the server logged it
    /// (`snapshot` or `scan`); `None` on etcd or when it is not in the log.
    pub fn loaded_from(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.dir.join("server.log")).ok()?;
        let at = log.rfind("from=")? + "from=".len();
        let rest = log[at..].trim_start_matches('"');
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        Some(rest[..end].to_string())
    }

    fn spawn(binary: PathBuf, dir: PathBuf, extra: Vec<String>) -> Result<Server> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))?;
        let mut child = Command::new(&binary)
            .args(["serve", "--secure-port", "0", "--data-dir"])
            .arg(&dir)
            .args(&extra)
            .env("RUST_LOG", "warn,storage=info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("admission-apiserver serving on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .context("the server did not start (see its server.log)")?;
        let token = std::fs::read_to_string(dir.join("admin-token"))?
            .trim()
            .to_string();
        let ca_pem = std::fs::read_to_string(dir.join("pki/ca.crt"))?;
        Ok(Server {
            child,
            base,
            token,
            ca_pem,
            dir,
            binary,
            extra,
        })
    }

    /// Resident memory of the server process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.child.id())
    }

    /// A function reading the server's resident memory (MiB), for a sampling task.
    pub fn rss_sampler(&self) -> impl Fn() -> f64 + Send + 'static {
        let pid = self.child.id();
        move || rss_mib(pid)
    }
}

/// Resident memory of a process, in MiB (0 when unknown).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
