//! The cluster CA and per-node / per-client certificates (`hermes gen-certs`), and loading them.
//!
//! Files in a certificate directory:
//!
//! | file | content |
//! |---|---|
//! | `ca.pem`, `ca.key` | the cluster CA certificate and its private key (keep `ca.key` offline) |
//! | `node-<id>.pem`, `node-<id>.key` | a node's certificate (SAN `node-<id>.hermes`) and key |
//! | `client-<name>.pem`, `client-<name>.key` | a client's certificate (SAN `client-<name>.hermes`) and key |
//!
//! A node certificate names its node id as the DNS name `node-<id>.hermes` and is valid for both
//! TLS server and client authentication (nodes dial and accept); a client certificate is valid for
//! client authentication only. Keys are ECDSA P-256, written with mode 0600. Certificates do not
//! expire; rotate by issuing new ones.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use hermes_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::NetError;

/// File name of the CA certificate.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key.
pub const CA_KEY_FILE: &str = "ca.key";
/// Common name of the cluster CA.
const CA_COMMON_NAME: &str = "Hermes cluster CA";

/// The DNS name a node certificate carries: `node-<id>.hermes`.
pub fn node_dns_name(id: NodeId) -> String {
    format!("node-{}.hermes", id.0)
}

/// The DNS name a client certificate carries: `client-<name>.hermes`.
pub fn client_dns_name(name: &str) -> String {
    format!("client-{name}.hermes")
}

/// Whose certificate to load from a certificate directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A node: `node-<id>.pem` / `node-<id>.key`.
    Node(NodeId),
    /// A client: `client-<name>.pem` / `client-<name>.key`.
    Client(String),
}

impl Identity {
    /// The file name stem: `node-<id>` or `client-<name>`.
    pub fn file_stem(&self) -> String {
        match self {
            Identity::Node(id) => format!("node-{}", id.0),
            Identity::Client(name) => format!("client-{name}"),
        }
    }

    /// The DNS name in the certificate.
    pub fn dns_name(&self) -> String {
        match self {
            Identity::Node(id) => node_dns_name(*id),
            Identity::Client(name) => client_dns_name(name),
        }
    }
}

/// TLS material of one node or client: the cluster CA to trust, its own certificate chain and key.
pub struct TlsConfig {
    /// Trusted CA certificates (normally exactly the cluster CA; several during a CA rotation).
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// The own certificate, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The own private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsConfig {
    fn clone(&self) -> Self {
        TlsConfig {
            ca_certs: self.ca_certs.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_certs", &self.ca_certs.len())
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TlsConfig {
    /// TLS material with nothing in it, for checking other settings before the files are read.
    /// Binding or connecting with it fails with [`NetError::Tls`].
    pub fn empty() -> Self {
        TlsConfig {
            ca_certs: Vec::new(),
            chain: Vec::new(),
            key: PrivateKeyDer::Pkcs8(Vec::new().into()),
        }
    }

    /// Loads PEM files: the CA certificate(s), the own certificate chain and the own private key.
    ///
    /// # Errors
    /// [`NetError::Pem`] naming the file that is missing, unreadable or holds no PEM block of the
    /// expected kind.
    pub fn load(ca_path: &Path, cert_path: &Path, key_path: &Path) -> Result<Self, NetError> {
        Ok(TlsConfig {
            ca_certs: load_certs(ca_path)?,
            chain: load_certs(cert_path)?,
            key: load_key(key_path)?,
        })
    }

    /// Loads `ca.pem` and the certificate and key of `identity` from `dir`.
    ///
    /// # Errors
    /// As [`TlsConfig::load`].
    pub fn from_dir(dir: &Path, identity: &Identity) -> Result<Self, NetError> {
        let stem = identity.file_stem();
        Self::load(
            &dir.join(CA_CERT_FILE),
            &dir.join(format!("{stem}.pem")),
            &dir.join(format!("{stem}.key")),
        )
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let pem_err = |reason: String| NetError::Pem {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| NetError::Pem {
        path: path.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block".into(),
            other => other.to_string(),
        },
    })
}

/// Writes a cluster CA and certificates for `nodes` and `clients` into `out_dir` (created if
/// missing). Returns the files written.
///
/// If `ca.pem` and `ca.key` already exist and `force` is false, the existing CA signs the new
/// certificates (so nodes can be added to a running cluster); otherwise a new CA is made.
/// Existing node or client files are never overwritten unless `force` is true. Nothing is
/// written if any check fails.
///
/// # Errors
/// [`NetError::FileExists`], [`NetError::Config`] for an invalid client name, [`NetError::Pem`]
/// for an unreadable or mismatched existing CA, [`NetError::Io`], [`NetError::CertGen`].
pub fn gen_certs(
    out_dir: &Path,
    nodes: &[NodeId],
    clients: &[&str],
    force: bool,
) -> Result<Vec<PathBuf>, NetError> {
    for name in clients {
        check_client_name(name)?;
    }
    let ca_cert_path = out_dir.join(CA_CERT_FILE);
    let ca_key_path = out_dir.join(CA_KEY_FILE);
    let identities: Vec<Identity> = nodes
        .iter()
        .map(|id| Identity::Node(*id))
        .chain(
            clients
                .iter()
                .map(|name| Identity::Client((*name).to_owned())),
        )
        .collect();
    let reuse_ca = !force && ca_cert_path.exists() && ca_key_path.exists();
    if !force {
        let mut targets = Vec::new();
        if !reuse_ca {
            targets.push(ca_cert_path.clone());
            targets.push(ca_key_path.clone());
        }
        for identity in &identities {
            let stem = identity.file_stem();
            targets.push(out_dir.join(format!("{stem}.pem")));
            targets.push(out_dir.join(format!("{stem}.key")));
        }
        if let Some(path) = targets.into_iter().find(|p| p.exists()) {
            return Err(NetError::FileExists { path });
        }
    }
    fs::create_dir_all(out_dir)
        .map_err(|e| NetError::io(format!("cannot create {}", out_dir.display()), e))?;

    let ca_params = ca_params();
    let mut written = Vec::new();
    let ca_key = if reuse_ca {
        let pem = fs::read_to_string(&ca_key_path).map_err(|e| NetError::Pem {
            path: ca_key_path.clone(),
            reason: e.to_string(),
        })?;
        KeyPair::from_pem(&pem).map_err(|e| NetError::Pem {
            path: ca_key_path.clone(),
            reason: e.to_string(),
        })?
    } else {
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = ca_params.self_signed(&key).map_err(gen_err)?;
        write_file(&ca_cert_path, &cert.pem(), false)?;
        write_file(&ca_key_path, &key.serialize_pem(), true)?;
        written.push(ca_cert_path.clone());
        written.push(ca_key_path.clone());
        key
    };
    let issuer = Issuer::new(ca_params, ca_key);
    if reuse_ca {
        check_ca_matches(&ca_cert_path, &issuer)?;
    }
    for identity in &identities {
        let (cert_pem, key_pem) = issue(&issuer, identity)?;
        let stem = identity.file_stem();
        let cert_path = out_dir.join(format!("{stem}.pem"));
        let key_path = out_dir.join(format!("{stem}.key"));
        write_file(&cert_path, &cert_pem, false)?;
        write_file(&key_path, &key_pem, true)?;
        written.push(cert_path);
        written.push(key_path);
    }
    Ok(written)
}

fn gen_err(e: rcgen::Error) -> NetError {
    NetError::CertGen(e.to_string())
}

fn check_client_name(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(NetError::Config(format!(
            "client name {name:?} must be 1-48 characters of a-z, 0-9 and inner '-'"
        )))
    }
}

/// The CA's parameters. Deterministic, so that an existing CA key reconstructs the same issuer.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf_params(identity: &Identity) -> Result<CertificateParams, NetError> {
    let dns = identity.dns_name();
    let mut params = CertificateParams::new(vec![dns.clone()]).map_err(gen_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, dns);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match identity {
        Identity::Node(_) => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Identity::Client(_) => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn issue(issuer: &Issuer<'_, KeyPair>, identity: &Identity) -> Result<(String, String), NetError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = leaf_params(identity)?
        .signed_by(&key, issuer)
        .map_err(gen_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Checks that an existing `ca.pem` belongs to `ca.key` by verifying a probe certificate.
fn check_ca_matches(ca_cert_path: &Path, issuer: &Issuer<'_, KeyPair>) -> Result<(), NetError> {
    let mismatch = |reason: String| NetError::Pem {
        path: ca_cert_path.to_owned(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(ca_cert_path)? {
        roots
            .add(cert)
            .map_err(|e| mismatch(format!("not a usable CA certificate: {e}")))?;
    }
    let probe = leaf_params(&Identity::Node(NodeId(0)))?
        .signed_by(&KeyPair::generate().map_err(gen_err)?, issuer)
        .map_err(gen_err)?;
    let parsed = rustls::server::ParsedCertificate::try_from(probe.der())
        .map_err(|e| mismatch(e.to_string()))?;
    let algs = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &[],
        UnixTime::now(),
        algs,
    )
    .map_err(|e| {
        mismatch(format!(
            "does not match {CA_KEY_FILE} or was not made by gen-certs ({e})"
        ))
    })
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), NetError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|e| NetError::io(format!("cannot write {}", path.display()), e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| NetError::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_loads_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let written = gen_certs(dir.path(), &[NodeId(1), NodeId(2)], &["cli"], false).unwrap();
        assert_eq!(written.len(), 8);
        let node = TlsConfig::from_dir(dir.path(), &Identity::Node(NodeId(2))).unwrap();
        assert_eq!(node.ca_certs.len(), 1);
        assert_eq!(node.chain.len(), 1);
        TlsConfig::from_dir(dir.path(), &Identity::Client("cli".into())).unwrap();

        let err = gen_certs(dir.path(), &[NodeId(2)], &[], false).unwrap_err();
        assert!(matches!(err, NetError::FileExists { ref path } if path.ends_with("node-2.pem")));
        // A new node is signed by the existing CA.
        let written = gen_certs(dir.path(), &[NodeId(3)], &[], false).unwrap();
        assert_eq!(written.len(), 2);
        // force regenerates everything asked for, CA included.
        let written = gen_certs(dir.path(), &[NodeId(1)], &[], true).unwrap();
        assert_eq!(written.len(), 4);
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        gen_certs(dir.path(), &[NodeId(1)], &[], false).unwrap();
        for file in ["ca.key", "node-1.key"] {
            let mode = fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn missing_and_bad_pem_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = TlsConfig::from_dir(dir.path(), &Identity::Node(NodeId(1))).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        gen_certs(dir.path(), &[NodeId(1)], &[], false).unwrap();
        fs::write(dir.path().join("node-1.key"), "not pem").unwrap();
        let err = TlsConfig::from_dir(dir.path(), &Identity::Node(NodeId(1))).unwrap_err();
        assert!(matches!(err, NetError::Pem { ref path, .. } if path.ends_with("node-1.key")));
        assert!(err.to_string().contains("node-1.key"), "{err}");
    }

    #[test]
    fn a_foreign_ca_pem_is_detected_when_reusing() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        gen_certs(a.path(), &[], &[], false).unwrap();
        gen_certs(b.path(), &[], &[], false).unwrap();
        fs::copy(b.path().join(CA_CERT_FILE), a.path().join(CA_CERT_FILE)).unwrap();
        let err = gen_certs(a.path(), &[NodeId(1)], &[], false).unwrap_err();
        assert!(
            matches!(err, NetError::Pem { ref path, .. } if path.ends_with("ca.pem")),
            "{err}"
        );
    }

    #[test]
    fn client_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "UPPER", "a b", "-x", "x.y"] {
            assert!(matches!(
                gen_certs(dir.path(), &[], &[bad], false),
                Err(NetError::Config(_))
            ));
        }
    }
}
