//! The keys that sign identity assertions, and the JWKS that publishes
//! them.
//!
//! Either the operator's key (`[assertion] key_file`), or one the gateway
//! generates and keeps in the state store, sealed with the session keys
//! (a private key is never stored in the clear). Each key's `kid` is its
//! RFC 7638 thumbprint, so a key has the same id however it is loaded.
//!
//! Rotation, kept simple and decided at start only:
//! - a key file: replace the file and name the old one in
//!   `previous_key_file`; the old key is published, never used to sign,
//!   until the operator removes it (after `lifetime` is safe).
//! - a generated key: at a start once it is older than `rotate_after`, a
//!   new key signs; the old one stays in the store and the JWKS until the
//!   assertions it signed have expired (`lifetime` plus a minute of clock
//!   skew), then the store's sweep drops it.
//!
//! A generated key that no longer opens (every session secret that sealed
//! it removed) is not published; a new key is generated in its place.

use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::Serialize;

use crate::config;
use crate::es256;
use crate::secret::Secret;
use crate::session::Sealer;
use crate::state::{KeptKey, Store, StoreError, KEPT_WHILE_SIGNING};

/// How much longer than its assertions a replaced key stays published:
/// verifiers allow some clock skew (jsonwebtoken's default leeway is 60 s).
const SKEW: u64 = 60;

/// The signing key and what the JWKS publishes, fixed for the process.
pub struct Keys {
    kid: String,
    key: Secret<SigningKey>,
    /// `{"keys": [...]}`, built once: the signing key first.
    jwks: serde_json::Value,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

impl Keys {
    /// The configured key (and previous key), or the generated one from
    /// `store` (made, or replaced when older than `rotate_after`, at `now`).
    pub fn load(
        cfg: &config::Assertion,
        store: &dyn Store,
        sealer: &Sealer,
        now: u64,
    ) -> Result<Keys, StoreError> {
        if let Some(key) = &cfg.key {
            let previous = cfg.previous_key.iter().map(|k| k.expose().clone());
            return Ok(Keys::of(key.expose().clone(), previous));
        }
        let (key, retired) = generated(cfg, store, sealer, now)?;
        Ok(Keys::of(key, retired.into_iter()))
    }

    /// `key` signs; it and `others` are published.
    fn of(key: SigningKey, others: impl Iterator<Item = SigningKey>) -> Keys {
        let kid = es256::thumbprint(key.verifying_key());
        let mut jwks = vec![es256::jwk(key.verifying_key(), &kid)];
        for k in others {
            let vk = k.verifying_key();
            jwks.push(es256::jwk(vk, &es256::thumbprint(vk)));
        }
        Keys {
            kid,
            key: Secret::new(key),
            jwks: serde_json::json!({ "keys": jwks }),
        }
    }

    /// The signing key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document (RFC 7517 §5).
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// `claims` as a compact JWS, header `alg: ES256, typ: JWT, kid`.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let header = Header {
            alg: "ES256",
            typ: "JWT",
            kid: &self.kid,
        };
        es256::sign(self.key.expose(), &header, claims)
    }
}

/// What a generated key is sealed under: its `kid`, so a row copied under
/// another id does not open there.
fn label(kid: &str) -> String {
    format!("assertion-key.{kid}")
}

/// The generated key that signs, and the replaced keys still published.
fn generated(
    cfg: &config::Assertion,
    store: &dyn Store,
    sealer: &Sealer,
    now: u64,
) -> Result<(SigningKey, Vec<SigningKey>), StoreError> {
    let rows = store.signing_keys()?;
    let open = |kid: &str, row: &KeptKey| {
        let key = sealer
            .open_bytes::<String>(&label(kid), &row.sealed)
            .and_then(|pem| SigningKey::from_pkcs8_pem(&pem).ok())
            .filter(|k| es256::thumbprint(k.verifying_key()) == kid);
        if key.is_none() {
            tracing::warn!(
                kid,
                "a generated assertion key does not open under the session secrets; not published"
            );
        }
        key
    };
    let signing = rows
        .iter()
        .filter(|(_, r)| r.until == KEPT_WHILE_SIGNING)
        .max_by_key(|(_, r)| r.created_at);
    let rotate_at = |r: &KeptKey| r.created_at.saturating_add(cfg.rotate_after.as_secs());
    if let Some((kid, row)) = signing.filter(|(_, r)| now < rotate_at(r)) {
        if let Some(key) = open(kid, row) {
            let retired = rows
                .iter()
                .filter(|(k, r)| k != kid && r.until > now)
                .filter_map(|(k, r)| open(k, r))
                .collect();
            return Ok((key, retired));
        }
    }
    // None signs (a new store, a key that no longer opens) or it is due:
    // a new key, kept before it signs anything.
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let kid = es256::thumbprint(key.verifying_key());
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("a P-256 key encodes as PKCS#8");
    let sealed = sealer.seal(&label(&kid), &pem.as_str()).into_bytes();
    store.keep_signing_key(
        &kid,
        &KeptKey {
            sealed,
            created_at: now,
            until: KEPT_WHILE_SIGNING,
        },
    )?;
    let until = now + cfg.lifetime.as_secs() + SKEW;
    let mut retired = Vec::new();
    for (old, row) in rows.iter().filter(|(_, r)| r.until > now) {
        if row.until == KEPT_WHILE_SIGNING {
            // Signed until now: kept until what it signed has expired.
            let kept = KeptKey {
                until,
                ..row.clone()
            };
            store.keep_signing_key(old, &kept)?;
        }
        retired.extend(open(old, row));
    }
    tracing::info!(kid, "generated a new assertion signing key");
    Ok((key, retired))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Memory;
    use std::time::Duration;

    use crate::session::cookie::test_keys::{sealer, A, B};
    const DAY: u64 = 86_400;

    fn kids(k: &Keys) -> Vec<String> {
        k.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["kid"].as_str().unwrap().to_string())
            .collect()
    }

    /// A generated key is kept sealed and found again (the same `kid`);
    /// once older than `rotate_after` a new one signs and the old stays
    /// published until its assertions have expired, then is swept.
    #[test]
    fn generated_keys_are_kept_and_rotated() {
        let cfg = config::Assertion {
            rotate_after: Duration::from_secs(30 * DAY),
            ..Default::default()
        };
        let store = Memory::default();
        let s = sealer(A);
        let first = Keys::load(&cfg, &store, &s, 1_000).unwrap();
        let rows = store.signing_keys().unwrap();
        assert_eq!(rows.len(), 1);
        assert!(!String::from_utf8_lossy(&rows[0].1.sealed).contains("PRIVATE KEY"));
        let again = Keys::load(&cfg, &store, &s, 1_000 + DAY).unwrap();
        assert_eq!(again.kid(), first.kid(), "kept");
        assert_eq!(kids(&again), [first.kid()]);

        let later = 1_000 + 30 * DAY;
        let rotated = Keys::load(&cfg, &store, &s, later).unwrap();
        assert_ne!(rotated.kid(), first.kid(), "replaced when due");
        assert_eq!(kids(&rotated), [rotated.kid(), first.kid()]);
        let restarted = Keys::load(&cfg, &store, &s, later + 10).unwrap();
        assert_eq!(kids(&restarted), [rotated.kid(), first.kid()]);
        let gone = later + cfg.lifetime.as_secs() + SKEW;
        store.sweep(gone).unwrap();
        let after = Keys::load(&cfg, &store, &s, gone).unwrap();
        assert_eq!(kids(&after), [rotated.kid()], "swept once expired");
    }

    /// A key that no longer opens (the session secret changed) is neither
    /// used nor published: a new one is made.
    #[test]
    fn a_key_sealed_under_a_removed_secret_is_replaced() {
        let cfg = config::Assertion::default();
        let store = Memory::default();
        let old = Keys::load(&cfg, &store, &sealer(A), 1_000).unwrap();
        let new = Keys::load(&cfg, &store, &sealer(B), 1_001).unwrap();
        assert_ne!(new.kid(), old.kid());
        assert_eq!(kids(&new), [new.kid()]);
    }

    /// A configured key signs and its previous key is published second;
    /// the store is not touched.
    #[test]
    fn configured_keys_sign_and_publish() {
        let key = SigningKey::random(&mut rand::thread_rng());
        let previous = SigningKey::random(&mut rand::thread_rng());
        let cfg = config::Assertion {
            key: Some(Secret::new(key.clone())),
            previous_key: Some(Secret::new(previous.clone())),
            ..Default::default()
        };
        let store = Memory::default();
        let k = Keys::load(&cfg, &store, &sealer(A), 1).unwrap();
        assert_eq!(k.kid(), es256::thumbprint(key.verifying_key()));
        assert_eq!(
            kids(&k),
            [k.kid(), &es256::thumbprint(previous.verifying_key())]
        );
        assert!(store.signing_keys().unwrap().is_empty());
    }
}
