//! ES256 JSON Web Signatures, made by hand: the one signer of the
//! gateway's JWTs (Apple's client secret, the identity assertions to
//! upstreams), and the public key as a JWK.
//!
//! JWS compact form (RFC 7515 §7.1): base64url header and claims joined by
//! `.`, signed with ECDSA P-256 over SHA-256. The signature is JOSE's raw
//! `r‖s` (RFC 7518 §3.4), not DER. Why not `jsonwebtoken::encode`: its
//! ES256 signer re-parses the PKCS#8 key, deriving the public key again, on
//! every signature (measured in `apple::client_secret`); here the parsed
//! key is held. This module is a leaf.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::{signature::Signer, Signature, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The compact JWS of `header` and `claims` signed with `key`. The header
/// must name `alg: ES256`; serializing plain structs cannot fail.
pub fn sign(key: &SigningKey, header: &impl Serialize, claims: &impl Serialize) -> String {
    let header = serde_json::to_vec(header).expect("a JWT header serializes");
    let claims = serde_json::to_vec(claims).expect("JWT claims serialize");
    let mut jwt = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig: Signature = key.sign(jwt.as_bytes());
    // to_bytes() is the fixed 64-byte r‖s form JOSE requires.
    jwt.push('.');
    jwt.push_str(&B64.encode(sig.to_bytes()));
    jwt
}

/// The public coordinates `x` and `y`, base64url.
fn coordinates(key: &VerifyingKey) -> (String, String) {
    let point = key.to_encoded_point(false);
    // An uncompressed point always has both coordinates.
    let x = point.x().expect("uncompressed point has x");
    let y = point.y().expect("uncompressed point has y");
    (B64.encode(x), B64.encode(y))
}

/// The key's RFC 7638 thumbprint (SHA-256 over the required members in
/// lexical order, base64url): a `kid` that follows from the key itself,
/// so the same key always has the same id, wherever it was loaded from.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let (x, y) = coordinates(key);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public key as a JWK for a JWKS document (RFC 7517 §4, RFC 7518 §6.2).
pub fn jwk(key: &VerifyingKey, kid: &str) -> serde_json::Value {
    let (x, y) = coordinates(key);
    serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's method on a P-256 key: the thumbprint is the
    /// SHA-256 of exactly the canonical members, so two loads of one key
    /// agree and another key differs.
    #[test]
    fn thumbprints_follow_the_key() {
        let key = SigningKey::random(&mut rand::thread_rng());
        let jwk = jwk(key.verifying_key(), "k");
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        let expected = B64.encode(Sha256::digest(canonical.as_bytes()));
        assert_eq!(thumbprint(key.verifying_key()), expected);
        assert_eq!(B64.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
        let other = SigningKey::random(&mut rand::thread_rng());
        assert_ne!(thumbprint(other.verifying_key()), expected);
    }
}
