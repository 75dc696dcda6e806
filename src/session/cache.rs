//! Session cookies already opened, by their exact value.

use std::sync::Arc;
use std::time::Duration;

use super::{SessionCookie, SessionError};
use crate::identity::Caller;
use crate::metrics::Lookups;

/// Session cookie value ▶ its opened identity with headers built. Why:
/// opening a cookie (base64, AES-GCM, JSON) and building its header values
/// is most of the gateway's own work per request, and a browser sends the
/// same value with every request. Exact-value keys, so only the identical
/// sealed cookie hits; expiry and revocation are still checked per request
/// by the caller. Bounded by capacity and an idle time. Hashed with ahash
/// (seeded per process, so keys cannot be chosen to collide): SipHash over
/// a 300-byte cookie was a visible share of each request.
pub struct Cache {
    cache: moka::sync::Cache<Arc<str>, Arc<Caller>, ahash::RandomState>,
    /// Hits and misses, for `/metrics` (an atomic add per lookup).
    lookups: Lookups,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build_with_hasher(ahash::RandomState::new()),
            lookups: Lookups::default(),
        }
    }
}

impl Cache {
    /// This cache with its hits and misses counted in `lookups`.
    pub fn counted(self, lookups: Lookups) -> Self {
        Cache { lookups, ..self }
    }

    /// The caller sealed in cookie `value`: cached, or opened with `cookie`
    /// (which refuses it if it has expired at `now`) and cached.
    pub fn open(
        &self,
        cookie: &SessionCookie,
        value: &str,
        now: u64,
    ) -> Result<Arc<Caller>, SessionError> {
        if let Some(caller) = self.cache.get(value) {
            self.lookups.hit.inc();
            return Ok(caller);
        }
        self.lookups.miss.inc();
        let caller = Arc::new(Caller::new(cookie.open(value, now)?));
        self.cache.insert(Arc::from(value), caller.clone());
        Ok(caller)
    }
}
