//! RS256 signature checks on ring, for jsonwebtoken.
//!
//! jsonwebtoken 11 verifies through a process-wide `CryptoProvider`; its
//! RustCrypto one re-derives the RSA public key and runs generic bignum code
//! on every check (about 190 µs per Apple token here, benches/RESULTS.md).
//! ring, already our TLS stack's crypto, checks the same signature in a
//! fraction of that. This provider sends RS256 to ring and everything else
//! (ES256 in tests, the other algorithms we never accept) to RustCrypto.

use std::sync::OnceLock;

use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

/// An RS256 public key, as ring takes it.
struct Rs256 {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Verifier<Vec<u8>> for Rs256 {
    fn verify(&self, message: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        ring::signature::RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        // PKCS#1 v1.5 with SHA-256 and a 2048-bit or larger modulus: RS256
        // as RFC 7518 §3.3 defines it (Apple's keys are 2048 bits).
        .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
        .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

fn verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    match (alg, key.kind()) {
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => Ok(Box::new(Rs256 {
            n: n.clone(),
            e: e.clone(),
        })),
        (Algorithm::RS256, _) => Err(Error::from(ErrorKind::InvalidKeyFormat)),
        _ => (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, key),
    }
}

/// Makes the ring-backed provider jsonwebtoken's process default, once.
///
/// jsonwebtoken fixes its provider at its first use (sign or verify) and
/// ignores later installs, so this runs where our jsonwebtoken use starts:
/// the constructors of [`Jwks`](super::Jwks) (every id_token key comes
/// from one) and [`ClientSecret`](super::ClientSecret), once per gateway,
/// not per verification. Returns whether ours is the default: `false`
/// means something in the process used jsonwebtoken first, and RS256
/// checks run on RustCrypto (correct, several times slower).
pub fn install() -> bool {
    // jsonwebtoken keeps its provider in a process-wide static by design;
    // this cell only gives ours the 'static lifetime that asks for.
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let ours = PROVIDER.get_or_init(|| CryptoProvider {
        verifier_factory: verifier,
        ..rust_crypto::DEFAULT_PROVIDER.clone()
    });
    match ours.install_default() {
        Ok(()) => true,
        // Already installed: by an earlier call (ours) or by first use.
        Err(current) => std::ptr::eq(current, ours),
    }
}

#[cfg(test)]
mod tests {
    /// Installing is idempotent and leaves ours the default. Unit tests
    /// share a process, so this also proves no other test reached
    /// jsonwebtoken before its first install.
    #[test]
    fn installs_once_and_stays_ours() {
        assert!(super::install());
        assert!(super::install());
    }
}
