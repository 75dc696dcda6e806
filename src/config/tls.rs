//! `[server.tls]`: the certificate and key the main listener serves.
//!
//! Both are PEM files, read and checked here at start (and again by every
//! reload, through [`load_pair`]): a file that cannot be read, holds no
//! certificate or no private key, or a key that does not belong to the
//! certificate is a config problem with its key path, so `applegate
//! check` finds it and the gateway never starts without TLS it was asked
//! for (fail closed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pingora::tls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::validate::Validator;

/// `[server.tls]`, loaded.
#[derive(Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The pair as read at start: what the listener serves until a reload.
    pub key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Tls {
    // The private key is never printed, not even its bytes' length.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// `[server.tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsSection {
    /// PEM: the certificate, then any intermediates.
    cert_file: Option<String>,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    key_file: Option<String>,
}

/// Which of the two files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Cert,
    Key,
}

impl Part {
    /// The config key naming the file.
    pub fn key(self) -> &'static str {
        match self {
            Part::Cert => "server.tls.cert_file",
            Part::Key => "server.tls.key_file",
        }
    }
}

/// Why a certificate and key could not be used.
#[derive(Debug)]
pub struct PairError {
    pub part: Part,
    pub message: String,
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.part.key(), self.message)
    }
}

impl std::error::Error for PairError {}

/// Reads `[server.tls]`; `None` when absent or unusable (problems noted).
pub(super) fn read(v: &mut Validator<'_>, section: Option<TlsSection>) -> Option<Tls> {
    let s = section?;
    let (cert, key) = match (s.cert_file, s.key_file) {
        (Some(c), Some(k)) => (v.path(&c), v.path(&k)),
        (c, k) => {
            for (missing, part) in [(c.is_none(), Part::Cert), (k.is_none(), Part::Key)] {
                if missing {
                    v.problem(
                        part.key(),
                        "missing; [server.tls] needs both cert_file and key_file (PEM)",
                    );
                }
            }
            return None;
        }
    };
    match load_pair(&cert, &key) {
        Ok(pair) => Some(Tls {
            cert_file: cert,
            key_file: key,
            key: Arc::new(pair),
        }),
        Err(e) => {
            v.problem(e.part.key(), e.message);
            None
        }
    }
}

/// Reads a PEM certificate chain and its private key, and checks that the
/// key is the certificate's (a mismatch would fail every handshake).
pub fn load_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, PairError> {
    let err = |part, message: String| PairError { part, message };
    let read = |part, path: &Path| {
        std::fs::read(path).map_err(|e| err(part, format!("cannot read {:?}: {e}", path)))
    };
    let cert_pem = read(Part::Cert, cert_file)?;
    let key_pem = read(Part::Key, key_file)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(Part::Cert, format!("{cert_file:?} is not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(err(
            Part::Cert,
            format!("{cert_file:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    // The key's bytes never reach a message: only the file name does.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        err(
            Part::Key,
            format!("{key_file:?} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
        )
    })?;
    pingora::tls::install_default_crypto_provider();
    let provider = pingora::tls::CryptoProvider::get_default()
        .ok_or_else(|| err(Part::Key, "no TLS crypto provider installed".into()))?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        err(
            Part::Key,
            format!("{key_file:?}: unusable private key: {e}"),
        )
    })?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| {
        err(
            Part::Key,
            format!(
                "{key_file:?} is not the private key of the certificate in {cert_file:?} ({e})"
            ),
        )
    })?;
    Ok(pair)
}
