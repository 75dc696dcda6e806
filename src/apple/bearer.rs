//! Bearer id_tokens from native apps and API clients, verified once.
//!
//! An iOS app signs in with Apple on the device and sends its id_token
//! (audience: the app's bundle ID) to the API behind the gateway as
//! `Authorization: Bearer <token>`. Verifying RS256 on every request would
//! cost tens of microseconds; the cache maps the token's SHA-256 to its
//! verified claims, so the signature is checked once per token and later
//! requests cost a hash and a lookup. Expiry is still checked on every hit
//! against the injected clock.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{AppleError, IdToken};

/// Tokens larger than this are refused unhashed.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Verified bearer tokens.
pub struct BearerCache {
    /// SHA-256 of the token ▶ its claims. Why: see the module doc. Bounded
    /// by capacity, and entries leave a day after insertion (Apple's tokens
    /// live 24 h), so an expired token cannot stay cached.
    cache: moka::sync::Cache<[u8; 32], Arc<IdToken>>,
}

impl BearerCache {
    /// A cache holding up to `capacity` tokens.
    pub fn new(capacity: u64) -> Self {
        BearerCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(86_400))
                .build(),
        }
    }

    /// The claims of `token`: from the cache, or from `verify` (the full
    /// check, e.g. [`super::Client::verify_bearer_token`]) on a miss. `now`
    /// and `leeway` decide expiry of cached tokens.
    pub async fn verify<F, Fut>(
        &self,
        token: &str,
        now: u64,
        leeway: u64,
        verify: F,
    ) -> Result<Arc<IdToken>, AppleError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<IdToken, AppleError>>,
    {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AppleError::InvalidToken("token too large".into()));
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.cache.get(&key) {
            if now > claims.exp.saturating_add(leeway) {
                self.cache.invalidate(&key);
                return Err(AppleError::InvalidToken("expired".into()));
            }
            return Ok(claims);
        }
        let claims = Arc::new(verify().await?);
        self.cache.insert(key, claims.clone());
        Ok(claims)
    }
}
