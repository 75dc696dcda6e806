//! TLS at the edge: the certificate each handshake gets, and the handshake.
//!
//! The gate does the handshake itself, rather than pingora's listener
//! (`add_tls_with_settings`), for two reasons: the listener handshakes
//! before any app sees the connection, so the connection cap would not
//! count connections that are still handshaking, and it allows a fixed
//! 60 s for the handshake, while a client that stalls there holds its
//! place as one that stalls in its head does. Here the permit is taken
//! first, and the handshake gets `server.head_timeout`.
//!
//! The certificate is chosen per handshake by [`Certificate`], rustls's
//! `ResolvesServerCert`: a reload swaps the key pair behind it, so new
//! handshakes get the new certificate and open connections (whose
//! handshake is done) go on with the one they have.
//!
//! ALPN offers `h2` then `http/1.1` (RFC 7301): clients that speak HTTP/2
//! get it, the others HTTP/1.1 over the same listener.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Stream, ALPN};
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{version, ClientHello, ResolvesServerCert, ServerConfig};

/// The certificate the listener serves, swappable while it runs.
pub struct Certificate {
    /// Read once per handshake, written once per reload: a read lock and
    /// an `Arc` clone cost less than the handshake's signature by far.
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate").finish_non_exhaustive()
    }
}

impl Certificate {
    /// Serves `key` until [`Self::replace`].
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Certificate> {
        Arc::new(Certificate {
            current: RwLock::new(key),
        })
    }

    /// New handshakes get `key`; connections already open keep theirs.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        // A poisoned lock only means a panic while swapping an Arc: the
        // value inside is whole either way.
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Certificate {
    /// One certificate whatever the SNI: the gateway has one public URL.
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS side of the gate: how a client connection is handshaken.
pub struct Tls {
    acceptor: Acceptor,
    /// Longest handshake (`server.head_timeout`).
    timeout: Duration,
}

/// Why a handshake did not give a connection.
#[derive(Debug)]
pub enum HandshakeError {
    /// The client did not finish in time.
    Timeout,
    /// The client spoke no TLS, or no version or cipher we accept.
    Failed,
    /// The stream was not a plain socket (a listener misconfigured).
    NotTcp,
}

impl Tls {
    /// TLS 1.2 and 1.3 with `certificate`, offering h2 and http/1.1.
    pub fn new(certificate: Arc<Certificate>, timeout: Duration) -> Tls {
        pingora::tls::install_default_crypto_provider();
        let mut config =
            ServerConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
                .with_no_client_auth()
                .with_cert_resolver(certificate);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Tls {
            acceptor: Acceptor::from_server_config(Arc::new(config)),
            timeout,
        }
    }

    /// Handshakes on `stream` (as the plain listener gives it).
    pub async fn handshake(&self, stream: Stream) -> Result<Stream, HandshakeError> {
        let tcp = stream
            .into_any()
            .downcast::<L4Stream>()
            .map_err(|_| HandshakeError::NotTcp)?;
        match tokio::time::timeout(self.timeout, self.acceptor.tls_handshake(*tcp)).await {
            Err(_) => Err(HandshakeError::Timeout),
            Ok(Err(_)) => Err(HandshakeError::Failed),
            Ok(Ok(tls)) => Ok(Box::new(tls)),
        }
    }
}

/// Whether `stream` negotiated HTTP/2.
pub fn is_h2(stream: &Stream) -> bool {
    matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
}
