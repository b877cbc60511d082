//! TLS serving configuration: rustls with ALPN `h2` and `http/1.1`; the serving certificate is
//! reloaded when its files change; client certificates are asked for but never required.

use anyhow::{Context, Result};
use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// Reads a PEM private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("cannot read a private key from {}", path.display()))
}

/// The crypto provider every TLS config here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The serving certificate, reloaded from its files when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ReloadingCert {
    fn read(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey> {
        let certs = load_certs(cert_file)?;
        let key = load_key(key_file)?;
        CertifiedKey::from_der(certs, key, &provider())
            .context("serving certificate and key do not match")
    }

    /// Loads a certificate and key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<ReloadingCert>> {
        let key = ReloadingCert::read(cert_file, key_file)?;
        Ok(Arc::new(ReloadingCert {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(Arc::new(key)),
            stamps: Mutex::new((modified(cert_file), modified(key_file))),
        }))
    }

    /// Reloads when either file changed; a pair that does not load keeps the old one.
    /// Returns whether a new certificate is in use. Blocking (file I/O).
    pub fn reload_if_changed(&self) -> bool {
        let now = (modified(&self.cert_file), modified(&self.key_file));
        let mut stamps = self.stamps.lock();
        if *stamps == now {
            return false;
        }
        match ReloadingCert::read(&self.cert_file, &self.key_file) {
            Ok(key) => {
                *self.current.write() = Arc::new(key);
                *stamps = now;
                tracing::info!(file = %self.cert_file.display(), "serving certificate reloaded");
                true
            }
            Err(e) => {
                // Half-written files: try again on the next check.
                tracing::warn!(error = %e, "serving certificate changed but does not load yet");
                false
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// A server config serving `cert`, asking for client certificates through `clients` if given.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match clients {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_reload_when_their_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c"), dir.path().join("k"));
        let write = |name: &str| {
            let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
            std::fs::write(&c, ck.cert.pem()).unwrap();
            std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
        };
        write("one.example");
        let cert = ReloadingCert::load(&c, &k).unwrap();
        let first = cert.current.read().clone();
        assert!(!cert.reload_if_changed());
        std::thread::sleep(std::time::Duration::from_millis(20));
        write("two.example");
        // Make sure the modification time moves even on coarse file systems.
        let later = SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&c)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(cert.reload_if_changed());
        assert_ne!(cert.current.read().cert, first.cert);
        std::fs::write(&k, "garbage").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&k)
            .unwrap()
            .set_modified(later + std::time::Duration::from_secs(1))
            .unwrap();
        assert!(
            !cert.reload_if_changed(),
            "a broken key keeps the old certificate"
        );
    }
}
