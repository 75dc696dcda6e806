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
use crate::metrics::Lookups;

/// Tokens larger than this are refused unhashed.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The gateway's budget for cached claims: 32 MiB, about 34,000 typical
/// tokens (see [`weight`]). Why that is enough: a miss costs one RS256
/// check, not an outage, and the cache only has to hold the tokens in
/// active use.
pub const DEFAULT_BYTE_BUDGET: u64 = 32 * 1024 * 1024;

/// Bytes an entry costs beyond its key and the text of its claims: the
/// `IdToken` struct behind its `Arc`, an allocation header per string, and
/// moka's bookkeeping per entry (hash table slot, access-order and
/// expiry nodes). Measured, not derived: 100,000 entries with typical
/// claims (~180 bytes of text) grew the resident set by ~920 bytes each;
/// rounded up, so the budget errs on the side of less memory.
const ENTRY_OVERHEAD: usize = 768;

/// Verified bearer tokens.
pub struct BearerCache {
    /// SHA-256 of the token ▶ its claims. Why: see the module doc. Bounded
    /// by weight (estimated bytes, see [`weight`]) or, from [`Self::new`],
    /// by entries; and entries leave a day after insertion (Apple's tokens
    /// live 24 h), so an expired token cannot stay cached.
    cache: Tokens,
    /// Hits and misses, for `/metrics` (an atomic add per lookup).
    lookups: Lookups,
}

/// SHA-256 of a token ▶ its verified claims.
type Tokens = moka::sync::Cache<[u8; 32], Arc<IdToken>>;

impl BearerCache {
    /// A cache holding up to `capacity` tokens, whatever their size.
    /// Prefer [`Self::with_byte_budget`]: a count says little about memory
    /// (100,000 entries came to about 140 MiB), and memory is what must
    /// stay bounded.
    pub fn new(capacity: u64) -> Self {
        BearerCache {
            cache: Self::builder().max_capacity(capacity).build(),
            lookups: Lookups::default(),
        }
    }

    /// A cache whose entries weigh at most `max_bytes` together (estimated:
    /// key, claims' text and a fixed overhead per entry).
    pub fn with_byte_budget(max_bytes: u64) -> Self {
        BearerCache {
            cache: Self::builder()
                .weigher(weight)
                .max_capacity(max_bytes)
                .build(),
            lookups: Lookups::default(),
        }
    }

    /// This cache with its hits and misses counted in `lookups`.
    pub fn counted(self, lookups: Lookups) -> Self {
        BearerCache { lookups, ..self }
    }

    fn builder() -> moka::sync::CacheBuilder<[u8; 32], Arc<IdToken>, Tokens> {
        moka::sync::Cache::builder().time_to_live(Duration::from_secs(86_400))
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
            self.lookups.hit.inc();
            if now > claims.exp.saturating_add(leeway) {
                self.cache.invalidate(&key);
                return Err(AppleError::InvalidToken("expired".into()));
            }
            return Ok(claims);
        }
        self.lookups.miss.inc();
        let claims = Arc::new(verify().await?);
        self.cache.insert(key, claims.clone());
        Ok(claims)
    }
}

/// An entry's estimated size in bytes: moka's weigher.
fn weight(key: &[u8; 32], claims: &Arc<IdToken>) -> u32 {
    let c = claims.as_ref();
    let text: usize = [&c.iss, &c.aud, &c.sub]
        .iter()
        .map(|s| s.len())
        .sum::<usize>()
        + [&c.email, &c.nonce, &c.at_hash, &c.c_hash, &c.transfer_sub]
            .iter()
            .filter_map(|s| s.as_ref().map(String::len))
            .sum::<usize>();
    // Claims come from a token of at most MAX_TOKEN_LEN, so this fits; the
    // saturation only keeps the arithmetic total.
    u32::try_from(key.len() + text + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims whose email is `email_len` bytes long.
    fn claims(n: usize, email_len: usize) -> IdToken {
        serde_json::from_value(serde_json::json!({
            "iss": "https://appleid.apple.com",
            "aud": "com.example.app",
            "sub": format!("001234.{n:032}.0123"),
            "iat": 0,
            "exp": 10_000,
            "email": format!("{}@example.com", "x".repeat(email_len)),
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn large_entries_stay_within_the_byte_budget() {
        const BUDGET: u64 = 1024 * 1024;
        let cache = BearerCache::with_byte_budget(BUDGET);
        for n in 0..2_000 {
            let token = format!("token-{n}");
            let got = cache
                .verify(&token, 0, 0, || async move { Ok(claims(n, 4096)) })
                .await
                .unwrap();
            assert_eq!(got.sub, claims(n, 0).sub);
        }
        cache.cache.run_pending_tasks();
        let (count, weighed) = (cache.cache.entry_count(), cache.cache.weighted_size());
        assert!(weighed <= BUDGET, "{weighed} bytes held");
        assert!(
            count > 0 && count <= BUDGET / 4096,
            "{count} entries of 4 KB held"
        );
        assert!(weighed >= count * (4096 + ENTRY_OVERHEAD as u64));
    }
}
