//! Standalone credentials: on first start a CA, a serving certificate for localhost/127.0.0.1
//! and an admin bearer token are created under the data directory; later starts reuse them. A
//! kubeconfig that `kubectl` can use as is is (re)written on every start with the current address.

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Files of the standalone credentials.
pub struct Credentials {
    /// The CA certificate (PEM) clients trust.
    pub ca_pem: String,
    /// Serving certificate chain file.
    pub cert_file: PathBuf,
    /// Serving key file.
    pub key_file: PathBuf,
    /// The admin bearer token.
    pub admin_token: String,
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let tmp = path.with_extension("tmp");
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "admission-apiserver-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    Ok(params)
}

fn serving_params(extra_hosts: &[String]) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "admission-apiserver");
    let mut sans = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress("::1".parse()?),
    ];
    for host in extra_hosts {
        match host.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => sans.push(SanType::IpAddress(ip)),
            Ok(_) => {}
            Err(_) => sans.push(SanType::DnsName(host.clone().try_into()?)),
        }
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    Ok(params)
}

/// Loads the standalone credentials from `dir`, creating whatever is missing.
pub fn ensure(dir: &Path, extra_hosts: &[String]) -> Result<Credentials> {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).with_context(|| format!("cannot create {}", pki.display()))?;
    let (ca_crt, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
    let (cert_file, key_file) = (pki.join("serving.crt"), pki.join("serving.key"));
    let token_file = dir.join("admin-token");

    if !ca_crt.exists() || !ca_key.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&ca_key, &key.serialize_pem())?;
        write_private(&ca_crt, &cert.pem())?;
        // A new CA invalidates any serving certificate signed by an old one.
        let _ = std::fs::remove_file(&cert_file);
    }
    let ca_pem = std::fs::read_to_string(&ca_crt)?;
    if !cert_file.exists() || !key_file.exists() {
        let ca_key_pair = KeyPair::from_pem(&std::fs::read_to_string(&ca_key)?)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key_pair)?;
        let key = KeyPair::generate()?;
        let cert = serving_params(extra_hosts)?.signed_by(&key, &issuer)?;
        write_private(&key_file, &key.serialize_pem())?;
        write_private(&cert_file, &cert.pem())?;
    }
    if !token_file.exists() {
        write_private(&token_file, &random_token())?;
    }
    let admin_token = std::fs::read_to_string(&token_file)?.trim().to_string();
    if admin_token.is_empty() {
        anyhow::bail!("{} is empty", token_file.display());
    }
    Ok(Credentials {
        ca_pem,
        cert_file,
        key_file,
        admin_token,
    })
}

/// Writes `<dir>/kubeconfig` for the admin and returns its path.
pub fn write_kubeconfig(
    dir: &Path,
    server: &str,
    ca_pem: Option<&str>,
    token: &str,
) -> Result<PathBuf> {
    let path = dir.join("kubeconfig");
    let ca = match ca_pem {
        Some(pem) => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        // A serving certificate of the operator's own: clients use their usual trust roots.
        None => String::new(),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: admission-apiserver\n  cluster:\n    server: {server}\n{ca}users:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: admission-apiserver\n  context:\n    cluster: admission-apiserver\n    user: admin\ncurrent-context: admission-apiserver\n"
    );
    write_private(&path, &text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure(dir.path(), &[]).unwrap();
        let b = ensure(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_eq!(
            std::fs::read(&a.cert_file).unwrap(),
            std::fs::read(&b.cert_file).unwrap()
        );
        let kc = write_kubeconfig(
            dir.path(),
            "https://127.0.0.1:1",
            Some(&a.ca_pem),
            &a.admin_token,
        )
        .unwrap();
        let text = std::fs::read_to_string(kc).unwrap();
        assert!(text.contains("server: https://127.0.0.1:1") && text.contains(&a.admin_token));
    }
}
