//! rustls (ring provider, TLS 1.3 only) and quinn configurations for mutual TLS, and the identity
//! checks made after a handshake.
//!
//! Both sides present certificates from the cluster CA. The dialing side verifies that the
//! server's certificate chains to the CA and names the node it dialed (server name
//! `node-<id>.hermes`); the accepting side verifies that the client certificate chains to the CA
//! during the handshake, and, on a peer connection, that it names the node id claimed in the hello.

use std::sync::Arc;
use std::time::Duration;

use hermes_core::NodeId;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;

use crate::certs::node_dns_name;
use crate::{NetError, RefuseReason, TlsConfig};

/// ALPN of peer (node-to-node) connections.
pub const PEER_ALPN: &[u8] = b"hermes-peer/1";
/// ALPN of client connections.
pub const CLIENT_ALPN: &[u8] = b"hermes-client/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> NetError {
    NetError::Tls(e.to_string())
}

fn roots(tls: &TlsConfig) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    for cert in &tls.ca_certs {
        roots
            .add(cert.clone())
            .map_err(|e| NetError::Tls(format!("unusable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// A rustls server configuration that requires a client certificate from the cluster CA and
/// offers `alpn`.
///
/// # Errors
/// [`NetError::Tls`] if the material is unusable (e.g. the key does not match the certificate).
pub fn rustls_server_config(
    tls: &TlsConfig,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, NetError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(tls)?, provider())
        .build()
        .map_err(tls_err)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.chain.clone(), tls.key.clone_key())
        .map_err(tls_err)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A rustls client configuration that trusts only the cluster CA, presents the own certificate,
/// and offers `alpn`.
///
/// # Errors
/// [`NetError::Tls`] if the material is unusable.
pub fn rustls_client_config(
    tls: &TlsConfig,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, NetError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(roots(tls)?)
        .with_client_auth_cert(tls.chain.clone(), tls.key.clone_key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// QUIC transport parameters shared by all connections: keep-alive below the idle timeout.
pub(crate) fn transport_config(
    keep_alive_ms: u64,
    idle_timeout_ms: u64,
) -> Result<quinn::TransportConfig, NetError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(Duration::from_millis(idle_timeout_ms))
        .map_err(|e| NetError::Config(format!("idle_timeout_ms: {e}")))?;
    transport
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(Duration::from_millis(keep_alive_ms)))
        // A peer connection uses one unidirectional stream per direction and clients use
        // bidirectional streams: do not let a remote side park data on many unread streams.
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(2));
    Ok(transport)
}

/// A quinn client configuration for dialing with `alpn` (keep-alive 1 s, idle timeout 10 s).
///
/// # Errors
/// [`NetError::Tls`] if the material is unusable.
pub fn quinn_client_config(tls: &TlsConfig, alpn: &[u8]) -> Result<quinn::ClientConfig, NetError> {
    quinn_client_config_with(tls, alpn, Arc::new(transport_config(1_000, 10_000)?))
}

pub(crate) fn quinn_client_config_with(
    tls: &TlsConfig,
    alpn: &[u8],
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, NetError> {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(rustls_client_config(tls, alpn)?)
            .map_err(tls_err)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

pub(crate) fn quinn_server_config(
    tls: &TlsConfig,
    alpn: &[&[u8]],
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, NetError> {
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(rustls_server_config(tls, alpn)?)
            .map_err(tls_err)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

/// The ALPN protocol negotiated on `conn`.
pub(crate) fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// Checks that the certificate the remote side of `conn` presented names node `id`.
///
/// The chain to the cluster CA was already verified during the handshake.
pub(crate) fn check_peer_names(conn: &quinn::Connection, id: NodeId) -> Result<(), RefuseReason> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(RefuseReason::NoCertificate)?;
    let leaf = certs.first().ok_or(RefuseReason::NoCertificate)?;
    cert_names(leaf, &node_dns_name(id))
}

fn cert_names(leaf: &CertificateDer<'_>, dns: &str) -> Result<(), RefuseReason> {
    let parsed =
        ParsedCertificate::try_from(leaf).map_err(|_| RefuseReason::CertificateMismatch)?;
    let name = ServerName::try_from(dns).map_err(|_| RefuseReason::CertificateMismatch)?;
    rustls::client::verify_server_name(&parsed, &name)
        .map_err(|_| RefuseReason::CertificateMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{gen_certs, Identity};

    #[test]
    fn names_are_checked_against_the_leaf() {
        let dir = tempfile::tempdir().unwrap();
        gen_certs(dir.path(), &[NodeId(1), NodeId(2)], &["c"], false).unwrap();
        let n1 = TlsConfig::from_dir(dir.path(), &Identity::Node(NodeId(1))).unwrap();
        let leaf = &n1.chain[0];
        assert_eq!(cert_names(leaf, "node-1.hermes"), Ok(()));
        assert_eq!(
            cert_names(leaf, "node-2.hermes"),
            Err(RefuseReason::CertificateMismatch)
        );
        rustls_server_config(&n1, &[PEER_ALPN, CLIENT_ALPN]).unwrap();
        rustls_client_config(&n1, PEER_ALPN).unwrap();
        let client = TlsConfig::from_dir(dir.path(), &Identity::Client("c".into())).unwrap();
        assert_eq!(
            cert_names(&client.chain[0], "node-1.hermes"),
            Err(RefuseReason::CertificateMismatch)
        );
    }

    #[test]
    fn a_key_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        gen_certs(dir.path(), &[NodeId(1), NodeId(2)], &[], false).unwrap();
        let mut n1 = TlsConfig::from_dir(dir.path(), &Identity::Node(NodeId(1))).unwrap();
        n1.key = TlsConfig::from_dir(dir.path(), &Identity::Node(NodeId(2)))
            .unwrap()
            .key;
        assert!(matches!(
            rustls_server_config(&n1, &[PEER_ALPN]),
            Err(NetError::Tls(_))
        ));
    }
}
