//! Apple's id_token signing keys, by `kid`.
//!
//! Apple publishes several RSA keys at `/auth/keys` and rotates them; a
//! token names its key with `kid`. The key set is fetched in the
//! background, at start and again when the last answer's `Cache-Control:
//! max-age` runs out (clamped to [`MIN_MAX_AGE`, `MAX_MAX_AGE`],
//! [`DEFAULT_MAX_AGE`] without one), so a key Apple rotates in verifies
//! before its first token arrives and a key Apple dropped is dropped here
//! too. A token with an unknown `kid` still triggers one refetch (single
//! flight, at most one per `min_refetch_interval`, so a flood of made-up
//! kids cannot make us hammer Apple). A failed or useless fetch (Apple
//! down, an error status, garbage, no usable key) keeps the keys we have:
//! stale keys beat no keys while Apple is down.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::AppleError;
use crate::clock::SharedClock;
use crate::metrics::AppleCalls;

/// The shortest time a key set is kept before the next background fetch,
/// whatever Apple's `max-age` says: a `max-age=0` must not turn the
/// refresh into a busy loop against Apple.
pub const MIN_MAX_AGE: u64 = 300;
/// The longest: a key Apple drops (a leaked one) leaves within a day.
pub const MAX_MAX_AGE: u64 = 86_400;
/// Without a usable `max-age`.
pub const DEFAULT_MAX_AGE: u64 = 3_600;
/// After a failed fetch, the background refresh tries again this soon.
const RETRY_AFTER: u64 = 60;
/// Apple publishes a handful of keys; more only comes from a hostile or
/// broken keys endpoint.
const MAX_KEYS: usize = 64;

type KeySet = HashMap<String, Arc<DecodingKey>>;

/// The cache of Apple's public keys.
pub struct Jwks {
    /// `None` for a fixed key set (tests with real Apple keys).
    source: Option<(String, reqwest::Client)>,
    /// kid ▶ key, replaced whole by each good fetch. Why a lock: every
    /// id_token check reads it (briefly), a fetch swaps it; Apple asks
    /// that we not fetch per token.
    keys: RwLock<Arc<KeySet>>,
    /// Single flight: held while fetching so concurrent misses and the
    /// background refresh wait for one fetch instead of starting their own.
    fetches: tokio::sync::Mutex<Fetches>,
    min_refetch_interval: u64,
    clock: Option<SharedClock>,
    /// Each fetch, counted and timed as a call to Apple's `keys`.
    calls: AppleCalls,
}

/// When keys were fetched and are next due (seconds, injected clock).
struct Fetches {
    last: Option<u64>,
    due: u64,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl Jwks {
    /// Keys fetched from `url` (Apple's `/auth/keys`) with `http`.
    pub fn new(
        url: String,
        http: reqwest::Client,
        min_refetch_interval: Duration,
        clock: SharedClock,
    ) -> Self {
        super::rs256::install();
        Jwks {
            source: Some((url, http)),
            keys: RwLock::default(),
            fetches: tokio::sync::Mutex::new(Fetches { last: None, due: 0 }),
            min_refetch_interval: min_refetch_interval.as_secs(),
            clock: Some(clock),
            calls: AppleCalls::default(),
        }
    }

    /// These keys with their fetches counted in `calls` (the client's).
    pub fn counted(mut self, calls: AppleCalls) -> Self {
        self.calls = calls;
        self
    }

    /// A fixed set of keys from a JWKS document; never fetches.
    pub fn from_document(json: &[u8]) -> Result<Self, AppleError> {
        super::rs256::install();
        let jwks = Jwks {
            source: None,
            keys: RwLock::new(Arc::new(parse(json)?)),
            fetches: tokio::sync::Mutex::new(Fetches {
                last: None,
                due: u64::MAX,
            }),
            min_refetch_interval: u64::MAX,
            clock: None,
            calls: AppleCalls::default(),
        };
        Ok(jwks)
    }

    fn held(&self) -> Arc<KeySet> {
        // Writers only swap an Arc; a poisoned lock still holds a whole set.
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.held().get(kid).cloned()
    }

    /// The key named `kid`, fetching Apple's keys if we do not have it.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, AppleError> {
        if let Some(k) = self.get(kid) {
            return Ok(k);
        }
        let mut fetches = self.fetches.lock().await;
        // Another task may have fetched while we waited for the lock.
        if let Some(k) = self.get(kid) {
            return Ok(k);
        }
        let Some(clock) = &self.clock else {
            return Err(AppleError::UnknownKey(kid.to_string()));
        };
        let now = clock.now();
        if fetches
            .last
            .is_some_and(|t| now < t.saturating_add(self.min_refetch_interval))
        {
            return Err(AppleError::UnknownKey(kid.to_string()));
        }
        self.fetch_now(&mut fetches, now).await?;
        self.get(kid)
            .ok_or_else(|| AppleError::UnknownKey(kid.to_string()))
    }

    /// The background refresh: fetches the key set if it is due (at
    /// start, then when its `max-age` ran out or a failed fetch's retry
    /// time came); `None` when it was not due.
    pub async fn refresh_if_due(&self) -> Option<Result<usize, AppleError>> {
        let now = self.clock.as_ref()?.now();
        let mut fetches = self.fetches.lock().await;
        if now < fetches.due {
            return None;
        }
        Some(self.fetch_now(&mut fetches, now).await)
    }

    /// Fetches under the single-flight lock and sets when the next is due.
    async fn fetch_now(&self, fetches: &mut Fetches, now: u64) -> Result<usize, AppleError> {
        fetches.last = Some(now);
        let started = std::time::Instant::now();
        let result = self.fetch().await;
        self.calls.observe(
            "keys",
            started.elapsed().as_secs_f64(),
            result.as_ref().map(drop).map_err(AppleError::kind),
        );
        fetches.due = now.saturating_add(match &result {
            Ok((_, max_age)) => *max_age,
            Err(_) => RETRY_AFTER,
        });
        result.map(|(n, _)| n)
    }

    /// One GET of the keys; on success the set is replaced (keys Apple
    /// dropped leave) and the answer's `max-age`, clamped, returned.
    async fn fetch(&self) -> Result<(usize, u64), AppleError> {
        let Some((url, http)) = &self.source else {
            return Ok((self.held().len(), u64::MAX));
        };
        let call = || format!("GET {url}");
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| AppleError::unreachable(call(), e))?;
        if !resp.status().is_success() {
            return Err(AppleError::Status {
                call: call(),
                status: resp.status(),
            });
        }
        let max_age = max_age(
            resp.headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp
            .bytes()
            .await
            .map_err(|e| AppleError::unreachable(call(), e))?;
        let set = parse(&body)?;
        if set.is_empty() {
            return Err(AppleError::NoKeys { call: call() });
        }
        let n = set.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        tracing::info!(keys = n, max_age, "fetched Apple's signing keys");
        Ok((n, max_age))
    }

    /// How many keys are held (for diagnostics).
    pub fn len(&self) -> usize {
        self.held().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether keys are held, or can be fetched now (for readiness): with
    /// none held, one fetch, unless one ran within `min_refetch_interval`
    /// (so probes cannot make us hammer Apple); waits for a fetch in flight.
    pub async fn loaded_or_loadable(&self) -> bool {
        if !self.is_empty() {
            return true;
        }
        let Some(clock) = &self.clock else {
            return false;
        };
        let mut fetches = self.fetches.lock().await;
        if !self.is_empty() {
            return true;
        }
        let now = clock.now();
        if fetches
            .last
            .is_some_and(|t| now < t.saturating_add(self.min_refetch_interval))
        {
            return false;
        }
        self.fetch_now(&mut fetches, now).await.is_ok()
    }
}

/// The RS256 signing keys of a JWKS document.
fn parse(json: &[u8]) -> Result<KeySet, AppleError> {
    let doc: Document = serde_json::from_slice(json).map_err(|source| AppleError::BadResponse {
        what: "keys document",
        source,
    })?;
    let mut set = KeySet::new();
    for jwk in doc.keys.into_iter().take(MAX_KEYS) {
        let usable = jwk.kty == "RSA"
            && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
            && jwk.use_.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e), true) = (jwk.kid, jwk.n, jwk.e, usable) else {
            continue;
        };
        match DecodingKey::from_rsa_components(&n, &e) {
            Ok(key) => {
                set.insert(kid, Arc::new(key));
            }
            Err(err) => tracing::warn!(%kid, error = %err, "skipping unusable Apple key"),
        }
    }
    Ok(set)
}

/// How long to keep a key set, from its `Cache-Control` (RFC 9111 §5.2.2.1
/// `max-age`), within [`MIN_MAX_AGE`, `MAX_MAX_AGE`]; [`DEFAULT_MAX_AGE`]
/// when absent or unreadable.
fn max_age(cache_control: Option<&str>) -> u64 {
    cache_control
        .into_iter()
        .flat_map(|v| v.split(','))
        .find_map(|d| {
            let (name, value) = d.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())?
        })
        .map_or(DEFAULT_MAX_AGE, |s| s.clamp(MIN_MAX_AGE, MAX_MAX_AGE))
}

#[cfg(test)]
mod tests;
