//! Who the server trusts for client certificates, changeable at run time: the client CA (x509
//! users) and the request-header CA (the front proxy, i.e. kube-apiserver's aggregator), with the
//! front proxy's allowed names and header names. The TLS layer asks for (but never requires) a
//! client certificate; each request then learns which CA, if any, its chain verifies against.

use parking_lot::{Mutex, RwLock};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Front-proxy settings (`--requestheader-*`, or the ConfigMap's `requestheader-*` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// CNs the front-proxy certificate may have; empty means any.
    pub allowed_names: Vec<String>,
    /// Headers carrying the user name, first non-empty wins.
    pub username_headers: Vec<String>,
    /// Headers carrying the user's uid.
    pub uid_headers: Vec<String>,
    /// Headers carrying groups (every value of every header).
    pub group_headers: Vec<String>,
    /// Prefixes of headers carrying extra attributes.
    pub extra_prefixes: Vec<String>,
}

impl Default for RequestHeader {
    fn default() -> Self {
        RequestHeader {
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: vec!["X-Remote-Uid".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }
}

/// One consistent view of the trust settings.
#[derive(Default)]
pub struct Trust {
    /// Verifies x509 user certificates.
    pub client: Option<Arc<dyn ClientCertVerifier>>,
    /// PEM of the client CA (for change detection and readiness).
    pub client_pem: String,
    /// Verifies the front proxy's certificate.
    pub request_header: Option<Arc<dyn ClientCertVerifier>>,
    /// PEM of the request-header CA.
    pub request_header_pem: String,
    /// Front-proxy settings.
    pub headers: RequestHeader,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("client", &self.client.is_some())
            .field("request_header", &self.request_header.is_some())
            .field("headers", &self.headers)
            .finish()
    }
}

fn verifier(pems: &[&str]) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in pems {
        use rustls_pki_types::pem::PemObject;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("bad CA certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("bad CA certificate: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Ok(None);
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::server::tls::provider())
        .allow_unauthenticated()
        .build()
        .map(Some)
        .map_err(|e| format!("cannot build a certificate verifier: {e}"))
}

impl Trust {
    /// Builds the verifiers for a pair of CA bundles (PEM; empty means none).
    pub fn new(
        client_pem: &str,
        request_header_pem: &str,
        headers: RequestHeader,
    ) -> Result<Trust, String> {
        Ok(Trust {
            client: verifier(&[client_pem])?,
            request_header: verifier(&[request_header_pem])?,
            client_pem: client_pem.to_string(),
            request_header_pem: request_header_pem.to_string(),
            headers,
        })
    }
}

/// Whether a chain verifies against a verifier's CAs.
fn chains_to(verifier: &dyn ClientCertVerifier, chain: &[CertificateDer<'static>]) -> bool {
    let Some((end, intermediates)) = chain.split_first() else {
        return false;
    };
    verifier
        .verify_client_cert(end, intermediates, UnixTime::now())
        .is_ok()
}

/// The trust settings shared by the TLS layer and the authenticator.
#[derive(Default)]
pub struct SharedTrust(RwLock<Arc<Trust>>);

impl SharedTrust {
    /// The current settings.
    pub fn get(&self) -> Arc<Trust> {
        self.0.read().clone()
    }

    /// Replaces the settings (takes effect for new connections and requests).
    pub fn set(&self, trust: Trust) {
        *self.0.write() = Arc::new(trust);
    }
}

/// The TLS client-certificate verifier: asks for a certificate and checks that the client holds
/// its key, accepts none at all (probes and token users present none). Trust is decided per
/// request, against the CAs current at that moment.
#[derive(Debug)]
pub struct RequestClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for SharedTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl Default for RequestClientCert {
    fn default() -> RequestClientCert {
        RequestClientCert {
            algorithms: crate::server::tls::provider().signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Like Go's `tls.RequestClientCert`: the handshake proves the key is held; which CA, if
        // any, vouches for the certificate is the authenticator's question, answered per request
        // (a certificate of an unknown CA gets a 401 Status, not a failed handshake).
        let _ = (end_entity, intermediates, now);
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // By the certificate's public key alone: webpki does not parse X.509 v1 certificates,
        // which Go accepts; whether one is trusted is the authenticator's question.
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let spki = rustls_pki_types::SubjectPublicKeyInfoDer::from(parsed.public_key().raw);
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Subject common name and organizations of a certificate.
fn subject(cert: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}

/// How long a connection's chain verdict is reused before the chain is verified again (so a
/// certificate that expires on a long-lived connection stops counting).
const VERDICT_TTL: Duration = Duration::from_secs(60);

/// Which CAs vouch for a chain under one trust configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainVerdict {
    /// Chains to the request-header (front-proxy) CA.
    pub front_proxy: bool,
    /// Chains to the client CA.
    pub client: bool,
}

/// The client certificate chain a connection presented: its subject, read once, and its verdict
/// under the current trust, computed once per connection and trust configuration instead of on
/// every request.
pub struct ClientChain {
    certs: Vec<CertificateDer<'static>>,
    /// Common name and organizations of the end-entity certificate.
    pub subject: Option<(String, Vec<String>)>,
    verdict: Mutex<Option<(Arc<Trust>, Instant, ChainVerdict)>>,
}

impl std::fmt::Debug for ClientChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientChain")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl ClientChain {
    /// A presented chain (`None` when it is empty).
    pub fn new(certs: Vec<CertificateDer<'static>>) -> Option<ClientChain> {
        let subject = subject(certs.first()?);
        Some(ClientChain {
            certs,
            subject,
            verdict: Mutex::new(None),
        })
    }

    /// The verdict under `trust`, reused while `trust` is current and fresh.
    pub fn verdict(&self, trust: &Arc<Trust>) -> ChainVerdict {
        let mut memo = self.verdict.lock();
        if let Some((for_trust, at, verdict)) = memo.as_ref()
            && Arc::ptr_eq(for_trust, trust)
            && at.elapsed() < VERDICT_TTL
        {
            return *verdict;
        }
        let verifies = |v: &Option<Arc<dyn ClientCertVerifier>>| {
            v.as_ref()
                .is_some_and(|v| chains_to(v.as_ref(), &self.certs))
        };
        let verdict = ChainVerdict {
            front_proxy: verifies(&trust.request_header),
            client: verifies(&trust.client),
        };
        *memo = Some((trust.clone(), Instant::now(), verdict));
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    /// A CA (PEM) and a client chain it signed for `cn`.
    fn ca_and_client(cn: &str) -> (String, Vec<CertificateDer<'static>>) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, cn);
        leaf.distinguished_name
            .push(DnType::OrganizationName, "team");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = leaf
            .signed_by(&KeyPair::generate().unwrap(), &Issuer::new(ca, ca_key))
            .unwrap();
        (ca_pem, vec![cert.der().clone()])
    }

    #[test]
    fn a_chain_verdict_follows_the_current_trust() {
        let (proxy_ca, chain) = ca_and_client("front-proxy-client");
        let (other_ca, _) = ca_and_client("x");
        let chain = ClientChain::new(chain).unwrap();
        assert_eq!(
            chain.subject,
            Some(("front-proxy-client".to_string(), vec!["team".to_string()]))
        );
        let shared = SharedTrust::default();
        shared.set(Trust::new(&other_ca, &proxy_ca, RequestHeader::default()).unwrap());
        let first = shared.get();
        assert_eq!(
            chain.verdict(&first),
            ChainVerdict {
                front_proxy: true,
                client: false
            }
        );
        assert_eq!(
            chain.verdict(&shared.get()),
            ChainVerdict {
                front_proxy: true,
                client: false
            }
        );
        // A rotated configuration is judged afresh on the same connection.
        shared.set(Trust::new(&proxy_ca, &other_ca, RequestHeader::default()).unwrap());
        assert_eq!(
            chain.verdict(&shared.get()),
            ChainVerdict {
                front_proxy: false,
                client: true
            }
        );
        assert!(ClientChain::new(Vec::new()).is_none());
    }
}
