//! Apple's id_token signing keys, by `kid`.
//!
//! Apple publishes several RSA keys at `/auth/keys` and rotates them; a
//! token names its key with `kid`. Keys are fetched once and kept; a token
//! with an unknown `kid` triggers one refetch (single flight, at most one per
//! `min_refetch_interval`, so a flood of made-up kids cannot make us hammer
//! Apple). A failed fetch keeps the keys we have: stale keys beat no keys
//! while Apple is down.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::AppleError;
use crate::clock::SharedClock;

/// The cache of Apple's public keys.
pub struct Jwks {
    /// `None` for a fixed key set (tests with real Apple keys).
    source: Option<(String, reqwest::Client)>,
    /// kid ▶ key. Why: every id_token check needs one, and Apple asks that
    /// we not fetch per token. Bounded: Apple publishes a handful of keys;
    /// the capacity only guards against a hostile keys endpoint.
    keys: moka::sync::Cache<String, Arc<DecodingKey>>,
    /// Single flight: the time of the last fetch (seconds, injected clock),
    /// held while fetching so concurrent misses wait for one fetch instead
    /// of starting their own.
    last_fetch: tokio::sync::Mutex<Option<u64>>,
    min_refetch_interval: u64,
    clock: Option<SharedClock>,
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
            keys: Self::cache(),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refetch_interval: min_refetch_interval.as_secs(),
            clock: Some(clock),
        }
    }

    /// A fixed set of keys from a JWKS document; never fetches.
    pub fn from_document(json: &[u8]) -> Result<Self, AppleError> {
        super::rs256::install();
        let jwks = Jwks {
            source: None,
            keys: Self::cache(),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refetch_interval: u64::MAX,
            clock: None,
        };
        jwks.load(json)?;
        Ok(jwks)
    }

    fn cache() -> moka::sync::Cache<String, Arc<DecodingKey>> {
        moka::sync::Cache::builder().max_capacity(64).build()
    }

    /// The key named `kid`, fetching Apple's keys if we do not have it.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, AppleError> {
        if let Some(k) = self.keys.get(kid) {
            return Ok(k);
        }
        let mut last = self.last_fetch.lock().await;
        // Another task may have fetched while we waited for the lock.
        if let Some(k) = self.keys.get(kid) {
            return Ok(k);
        }
        let Some(clock) = &self.clock else {
            return Err(AppleError::UnknownKey(kid.to_string()));
        };
        let now = clock.now();
        if last.is_some_and(|t| now < t.saturating_add(self.min_refetch_interval)) {
            return Err(AppleError::UnknownKey(kid.to_string()));
        }
        *last = Some(now);
        self.fetch().await?;
        self.keys
            .get(kid)
            .ok_or_else(|| AppleError::UnknownKey(kid.to_string()))
    }

    /// Fetches the key set now (start-up warm-up and periodic refresh).
    pub async fn refresh(&self) -> Result<usize, AppleError> {
        let mut last = self.last_fetch.lock().await;
        *last = self.clock.as_ref().map(|c| c.now());
        self.fetch().await
    }

    async fn fetch(&self) -> Result<usize, AppleError> {
        let Some((url, http)) = &self.source else {
            return Ok(0);
        };
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| AppleError::unreachable(format!("GET {url}"), e))?;
        if !resp.status().is_success() {
            return Err(AppleError::Status {
                call: format!("GET {url}"),
                status: resp.status(),
            });
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| AppleError::unreachable(format!("GET {url}"), e))?;
        let n = self.load(&body)?;
        tracing::info!(keys = n, "fetched Apple's signing keys");
        Ok(n)
    }

    /// Adds the RS256 signing keys of a JWKS document; returns how many.
    fn load(&self, json: &[u8]) -> Result<usize, AppleError> {
        let doc: Document =
            serde_json::from_slice(json).map_err(|source| AppleError::BadResponse {
                what: "keys document",
                source,
            })?;
        let mut n = 0;
        for jwk in doc.keys {
            let usable = jwk.kty == "RSA"
                && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
                && jwk.use_.as_deref().is_none_or(|u| u == "sig");
            let (Some(kid), Some(nn), Some(e), true) = (jwk.kid, jwk.n, jwk.e, usable) else {
                continue;
            };
            match DecodingKey::from_rsa_components(&nn, &e) {
                Ok(key) => {
                    self.keys.insert(kid, Arc::new(key));
                    n += 1;
                }
                Err(err) => tracing::warn!(%kid, error = %err, "skipping unusable Apple key"),
            }
        }
        Ok(n)
    }

    /// How many keys are held (for diagnostics).
    pub fn len(&self) -> u64 {
        self.keys.run_pending_tasks();
        self.keys.entry_count()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
