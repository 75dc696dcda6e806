//! Bearer id_tokens from native apps and API clients, verified once.
//!
//! An iOS app signs in with Apple on the device and sends its id_token
//! (audience: the app's bundle ID) to the API behind the gateway as
//! `Authorization: Bearer <token>`. Verifying RS256 on every request would
//! cost tens of microseconds; the cache maps the token to its caller (the
//! identity with its upstream headers built, as the session cache holds
//! for cookies), so the signature is checked once per token and a later
//! request costs what a session cookie costs: a hash and a lookup. Expiry
//! is still checked on every hit against the injected clock.
//!
//! Keyed by the whole token, not a digest of it: the map hashes it with a
//! random-keyed fast hash and compares it in full, so a hit is exact, and
//! no SHA-256 runs per request (it was most of what made the bearer path
//! dearer than the cookie path; benches/RESULTS.md). The price is memory:
//! the token text is kept, and counted in the budget.

use std::sync::Arc;
use std::time::Duration;

use super::{AppleError, IdToken};
use crate::identity::{Caller, Proof};
use crate::metrics::Lookups;

/// Tokens larger than this are refused uncached.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The gateway's budget for cached callers: 32 MiB, about 16,000 typical
/// tokens (see [`weight`]). Why that is enough: a miss costs one RS256
/// check, not an outage, and the cache only has to hold the tokens in
/// active use.
pub const DEFAULT_BYTE_BUDGET: u64 = 32 * 1024 * 1024;

/// Bytes an entry costs beyond its key and the text of its identity: the
/// `Caller` behind its `Arc` (identity and header values), an allocation
/// header per string, and moka's bookkeeping per entry (hash table slot,
/// access-order and expiry nodes). Estimated from a measurement of the
/// same cache holding claims (100,000 entries with ~180 bytes of text grew
/// the resident set by ~920 bytes each), rounded up; the identity's text
/// is counted twice ([`weight`]: once as strings, once as header values),
/// so the budget errs on the side of less memory.
const ENTRY_OVERHEAD: usize = 768;

/// Verified bearer tokens.
pub struct BearerCache {
    /// The token ▶ its caller. Why: see the module doc. Bounded by weight
    /// (estimated bytes, see [`weight`]) or, from [`Self::new`], by
    /// entries; and entries leave a day after insertion (Apple's tokens
    /// live 24 h), so an expired token cannot stay cached.
    cache: Tokens,
    /// Hits and misses, for `/metrics` (an atomic add per lookup).
    lookups: Lookups,
}

/// A token ▶ its verified caller.
type Tokens = moka::sync::Cache<Arc<str>, Arc<Caller>, ahash::RandomState>;

/// What builds [`Tokens`] (given its hasher at `build_with_hasher`).
type Builder =
    moka::sync::CacheBuilder<Arc<str>, Arc<Caller>, moka::sync::Cache<Arc<str>, Arc<Caller>>>;

impl BearerCache {
    /// A cache holding up to `capacity` tokens, whatever their size.
    /// Prefer [`Self::with_byte_budget`]: a count says little about memory
    /// (100,000 entries came to about 140 MiB), and memory is what must
    /// stay bounded.
    pub fn new(capacity: u64) -> Self {
        BearerCache {
            cache: Self::builder()
                .max_capacity(capacity)
                .build_with_hasher(ahash::RandomState::new()),
            lookups: Lookups::default(),
        }
    }

    /// A cache whose entries weigh at most `max_bytes` together (estimated:
    /// the token, the identity's text and a fixed overhead per entry).
    pub fn with_byte_budget(max_bytes: u64) -> Self {
        BearerCache {
            cache: Self::builder()
                .weigher(weight)
                .max_capacity(max_bytes)
                .build_with_hasher(ahash::RandomState::new()),
            lookups: Lookups::default(),
        }
    }

    /// This cache with its hits and misses counted in `lookups`.
    pub fn counted(self, lookups: Lookups) -> Self {
        BearerCache { lookups, ..self }
    }

    fn builder() -> Builder {
        moka::sync::Cache::builder().time_to_live(Duration::from_secs(86_400))
    }

    /// The caller `token` proves: from the cache, or from `verify` (the
    /// full check, e.g. [`super::Client::verify_bearer_token`]) on a miss.
    /// `now` and `leeway` decide expiry of cached tokens.
    pub async fn verify<F, Fut>(
        &self,
        token: &str,
        now: u64,
        leeway: u64,
        verify: F,
    ) -> Result<Arc<Caller>, AppleError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<IdToken, AppleError>>,
    {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AppleError::InvalidToken("token too large".into()));
        }
        if let Some(caller) = self.cache.get(token) {
            self.lookups.hit.inc();
            if now > caller.identity.expires_at().saturating_add(leeway) {
                self.cache.invalidate(token);
                return Err(AppleError::InvalidToken("expired".into()));
            }
            return Ok(caller);
        }
        self.lookups.miss.inc();
        let claims = verify().await?;
        let caller = Arc::new(Caller::new(claims.identity(Proof::Bearer {
            issued_at: claims.iat,
            expires_at: claims.exp,
        })));
        self.cache.insert(Arc::from(token), caller.clone());
        Ok(caller)
    }
}

/// An entry's estimated size in bytes: moka's weigher.
fn weight(token: &Arc<str>, caller: &Arc<Caller>) -> u32 {
    let id = &caller.identity;
    let text = id.sub.len()
        + id.email.as_ref().map_or(0, String::len)
        + id.name.as_ref().map_or(0, String::len);
    // Tokens are at most MAX_TOKEN_LEN, so this fits; the saturation only
    // keeps the arithmetic total.
    u32::try_from(token.len() + 2 * text + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
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
            assert_eq!(got.identity.sub, claims(n, 0).sub);
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

    #[tokio::test]
    async fn a_hit_is_the_same_caller_until_the_token_expires() {
        let cache = BearerCache::new(10);
        let first = cache
            .verify("t", 100, 60, || async { Ok(claims(1, 10)) })
            .await
            .unwrap();
        assert_eq!(first.identity.expires_at(), 10_000);
        // A hit does not verify again, and is the very caller cached.
        let hit = cache
            .verify("t", 10_060, 60, || async { panic!("verified twice") })
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&first, &hit));
        // Past expiry and leeway: refused, and dropped from the cache.
        let late = cache.verify("t", 10_061, 60, || async { Ok(claims(1, 10)) });
        assert!(matches!(late.await, Err(AppleError::InvalidToken(_))));
        assert!(cache.cache.get("t").is_none());
        // Another token is never the cached one's hit.
        let other = cache
            .verify("u", 100, 60, || async { Ok(claims(2, 10)) })
            .await
            .unwrap();
        assert_ne!(other.identity.sub, first.identity.sub);
    }
}
