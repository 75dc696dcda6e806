//! The emulator's id_token signing keys: RSA 2048, RS256, rotating.
//!
//! Like Apple, the emulator publishes several keys at `/auth/keys` and signs
//! with the newest; [`Keys::rotate`] adds a key under a new `kid` and keeps
//! the previous ones published, so tokens in flight still verify.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::Serialize;
use serde_json::json;

/// How many keys stay published.
const PUBLISHED: usize = 3;

/// One signing key.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    /// A fresh RSA 2048 key with a random Apple-style `kid`.
    pub fn generate() -> Self {
        let private =
            RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
        let der = private.to_pkcs1_der().expect("PKCS#1 encoding");
        SigningKey {
            kid: crate::session::random_token(6).replace(['-', '_'], "x"),
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            n: B64.encode(private.n().to_bytes_be()),
            e: B64.encode(private.e().to_bytes_be()),
        }
    }

    /// Signs `claims` as an RS256 JWT under this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = None;
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("RS256 signing")
    }

    fn jwk(&self) -> serde_json::Value {
        json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": self.n, "e": self.e})
    }
}

/// The published keys, newest first.
pub struct Keys {
    keys: Vec<SigningKey>,
}

impl Keys {
    /// One fresh key.
    pub fn new() -> Self {
        Keys {
            keys: vec![SigningKey::generate()],
        }
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// Adds a new signing key; returns its kid.
    pub fn rotate(&mut self) -> String {
        self.keys.insert(0, SigningKey::generate());
        self.keys.truncate(PUBLISHED);
        self.keys[0].kid.clone()
    }

    /// The JWKS document.
    pub fn document(&self) -> serde_json::Value {
        json!({"keys": self.keys.iter().map(SigningKey::jwk).collect::<Vec<_>>()})
    }
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new()
    }
}
