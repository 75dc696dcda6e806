//! The ES256 client secret: minted here, cached, re-minted at half-life.
//!
//! Apple authenticates the gateway with a JWT signed by the `.p8` key
//! (header `alg: ES256, kid: <Key ID>`; claims `iss` = Team ID, `sub` =
//! Services ID, `aud` = `https://appleid.apple.com`, `iat`, `exp` at most
//! 15777000 s later). The signature is JOSE's raw `r‖s` (RFC 7518 §3.4),
//! not DER. Other gateways make operators mint this by hand and it dies
//! after six months; we mint it ourselves.
//! <https://developer.apple.com/documentation/accountorganizationaldatasharing/creating-a-client-secret>

use std::sync::Arc;
use std::time::Duration;

use p256::ecdsa::SigningKey;
use serde::Serialize;

use crate::clock::SharedClock;
use crate::secret::Secret;

/// A minted secret and the time it was minted.
#[derive(Clone)]
struct Minted {
    jwt: Secret<Arc<str>>,
    iat: u64,
}

/// Mints and caches the client secret.
pub struct ClientSecret {
    team_id: String,
    services_id: String,
    key_id: String,
    audience: String,
    key: Secret<SigningKey>,
    lifetime: Duration,
    clock: SharedClock,
    /// One entry: the current secret. Why a cache: minting costs an ECDSA
    /// signature and Apple needs one valid secret, not one per request. The
    /// moka TTL drops it at half-life; `get` also checks the injected clock.
    cache: moka::sync::Cache<(), Minted>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
    exp: u64,
    aud: &'a str,
    sub: &'a str,
}

impl ClientSecret {
    /// A minter for `services_id` of team `team_id`, signing with `key`
    /// (Key ID `key_id`) for audience `audience` (Apple's base URL).
    pub fn new(
        team_id: &str,
        services_id: &str,
        key_id: &str,
        key: Secret<SigningKey>,
        audience: &str,
        lifetime: Duration,
        clock: SharedClock,
    ) -> Self {
        ClientSecret {
            team_id: team_id.to_string(),
            services_id: services_id.to_string(),
            key_id: key_id.to_string(),
            audience: audience.to_string(),
            key,
            lifetime,
            clock,
            cache: moka::sync::Cache::builder()
                .max_capacity(1)
                .time_to_live(lifetime / 2)
                .build(),
        }
    }

    /// The current secret, minted if there is none or it is past half-life.
    pub fn get(&self) -> Secret<Arc<str>> {
        let now = self.clock.now();
        let half = self.lifetime.as_secs() / 2;
        if let Some(m) = self.cache.get(&()) {
            if now < m.iat + half && now >= m.iat {
                return m.jwt;
            }
        }
        let minted = Minted {
            jwt: Secret::new(Arc::from(self.mint(now))),
            iat: now,
        };
        self.cache.insert((), minted.clone());
        minted.jwt
    }

    /// Mints a fresh secret issued at `iat`, signed by the one ES256
    /// signer ([`crate::es256::sign`], which says why not jsonwebtoken's).
    ///
    /// Issue #8 tried `jsonwebtoken::encode` here: that JWT verified at the
    /// strict emulator, but a mint took 435 µs against 244 µs
    /// (benches/micro/apple.rs, `client_secret/mint_every_time`, +51..+81%
    /// at 95%), beyond noise. Both produce the same bytes (RFC 6979
    /// signatures are deterministic), which a test below checks.
    pub fn mint(&self, iat: u64) -> String {
        let header = Header {
            alg: "ES256",
            kid: &self.key_id,
        };
        let claims = Claims {
            iss: &self.team_id,
            iat,
            exp: iat + self.lifetime.as_secs(),
            aud: &self.audience,
            sub: &self.services_id,
        };
        crate::es256::sign(self.key.expose(), &header, &claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::Signature;

    /// A minter with a fresh key, and that key.
    fn minter(clock: SharedClock) -> (ClientSecret, SigningKey) {
        let key = SigningKey::random(&mut rand::thread_rng());
        let m = ClientSecret::new(
            "ABCDE12345",
            "com.example.web",
            "XYZ9876543",
            Secret::new(key.clone()),
            "https://appleid.apple.com",
            Duration::from_secs(3600),
            clock,
        );
        (m, key)
    }

    #[test]
    fn minted_secret_has_apples_shape_and_verifies() {
        let clock = ManualClock::at(1_700_000_000);
        let (m, key) = minter(clock);
        let jwt = m.get();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": "XYZ9876543"})
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iss": "ABCDE12345", "iat": 1_700_000_000u64, "exp": 1_700_003_600u64,
                "aud": "https://appleid.apple.com", "sub": "com.example.web"})
        );
        let sig = B64.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 64, "JOSE raw r||s, not DER");
        let sig = Signature::from_slice(&sig).unwrap();
        key.verifying_key()
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn secret_is_cached_and_reminted_at_half_life() {
        let clock = ManualClock::at(1_700_000_000);
        let (m, _) = minter(clock.clone());
        let first = m.get();
        clock.advance(1799);
        assert_eq!(m.get(), first, "still within half-life");
        clock.advance(1);
        let second = m.get();
        assert_ne!(second, first, "re-minted at half-life");
        assert_eq!(m.get(), second);
    }

    /// The hand-assembled secret is byte for byte what jsonwebtoken's ES256
    /// makes of the same header, claims and key (why `mint` may skip it).
    #[test]
    fn minted_secret_equals_jsonwebtokens_es256() {
        use p256::pkcs8::EncodePrivateKey;
        // jsonwebtoken fixes its provider at first use; ours goes first.
        crate::apple::rs256::install();
        let (m, key) = minter(ManualClock::at(0));
        let der = key.to_pkcs8_der().unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = None;
        header.kid = Some("XYZ9876543".into());
        // The same struct (json! would sort the keys): what is compared is
        // the header and the signature.
        let claims = Claims {
            iss: "ABCDE12345",
            iat: 1_700_000_000,
            exp: 1_700_003_600,
            aud: "https://appleid.apple.com",
            sub: "com.example.web",
        };
        let theirs = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
        )
        .unwrap();
        assert_eq!(m.mint(1_700_000_000), theirs);
    }
}
