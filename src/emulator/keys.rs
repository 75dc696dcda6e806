//! The emulator's id_token signing keys: RSA 2048, RS256, rotating.
//!
//! Like Apple, the emulator publishes several keys at `/auth/keys` and signs
//! with the newest; [`Keys::rotate`] adds a key under a new `kid` and keeps
//! the previous ones published, so tokens in flight still verify.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::Serialize;
use serde_json::json;

/// How many keys stay published.
const PUBLISHED: usize = 3;

/// One signing key.
pub struct SigningKey {
    pub kid: String,
    /// ring signs (RustCrypto's rsa only generates the key): several
    /// times faster, so the emulator keeps up in load tests.
    pair: RsaKeyPair,
    n: String,
    e: String,
}

impl SigningKey {
    /// A fresh RSA 2048 key with a random Apple-style `kid`.
    pub fn generate() -> Self {
        let private =
            RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
        let der = private.to_pkcs8_der().expect("PKCS#8 encoding");
        SigningKey {
            kid: crate::session::random_token(6).replace(['-', '_'], "x"),
            pair: RsaKeyPair::from_pkcs8(der.as_bytes()).expect("ring takes the key it was given"),
            n: B64.encode(private.n().to_bytes_be()),
            e: B64.encode(private.e().to_bytes_be()),
        }
    }

    /// Signs `claims` as an RS256 JWT under this key's `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        // Apple's header carries kid and alg only.
        let header = json!({"kid": self.kid, "alg": "RS256"});
        let claims = serde_json::to_vec(claims).expect("claims serialize");
        let mut jwt = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims));
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut sig,
            )
            .expect("RS256 signing");
        jwt.push('.');
        jwt.push_str(&B64.encode(sig));
        jwt
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
