//! Signed identity assertions for upstreams: `X-Applegate-Assertion`.
//!
//! A route with `assertion = true` sends its upstream, beside the plain
//! identity headers, an ES256 JWT the gateway signs: `iss` the gateway's
//! public origin, `aud` the route's host (`host[:port]` as the route names
//! it; for a route without a host, the public URL's host), `sub`, `email`,
//! `email_verified`, `is_private_email`, `name`, `iat`, `exp`, `jti`;
//! header `kid`. An upstream that checks it against the JWKS at
//! [`JWKS_PATH`] needs to trust no network path between itself and the
//! gateway, and an assertion meant for one host is refused by another.
//!
//! Not signed per request: an ECDSA signature costs more than the rest of
//! the gateway's work on a request. Each is cached per session (or bearer
//! token) and route, and signed again at half its lifetime, so the
//! upstream always gets one with at least half its life left. `exp` never
//! passes the session's or token's own expiry.
//!
//! Keys: [`keys`]. A client-sent `X-Applegate-*` header is always removed
//! (`identity::headers`), so an upstream sees only the gateway's.

pub mod keys;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Serialize;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::identity::{Caller, Identity};
use crate::session::Sealer;
use crate::state::{Store, StoreError};
pub use keys::Keys;

/// The header the upstream gets.
pub const HEADER: HeaderName = HeaderName::from_static("x-applegate-assertion");
/// Where the gateway publishes its assertion keys.
pub const JWKS_PATH: &str = "/.well-known/applegate/jwks.json";

/// One signed assertion, with what it was signed for.
struct Signed {
    identity: Identity,
    audience: Arc<str>,
    iat: u64,
    exp: u64,
    value: HeaderValue,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    email_verified: bool,
    is_private_email: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    iat: u64,
    exp: u64,
    jti: &'a str,
}

/// Signs and caches the assertions of the routes that ask for them.
pub struct Assertions {
    /// `None` when no route asks and no key is configured: then nothing is
    /// generated and the JWKS is empty.
    keys: Option<Keys>,
    issuer: String,
    /// By route index: the route's audience, if it asks for an assertion.
    audiences: Vec<Option<Arc<str>>>,
    lifetime: u64,
    clock: SharedClock,
    /// (caller, route) ▶ the assertion last signed. Why: see the module
    /// doc. Keyed by a seeded hash of the session id (or the bearer
    /// token's `sub` and `iat`) and route, so a hit allocates nothing; a
    /// hit is used only if its identity and audience are the caller's and
    /// the route's. Bounded by capacity and a time to live of half the
    /// lifetime.
    cache: moka::sync::Cache<u64, Arc<Signed>, ahash::RandomState>,
    hasher: ahash::RandomState,
}

impl Assertions {
    /// The assertions `config` asks for, keys loaded (or generated and kept
    /// in `store`) at `clock`'s now.
    pub fn load(
        config: &Config,
        store: &dyn Store,
        clock: SharedClock,
    ) -> Result<Assertions, StoreError> {
        let public_host: Arc<str> = Arc::from(config.server.public_url.host.as_str());
        let audiences: Vec<Option<Arc<str>>> = config
            .routes
            .iter()
            .map(|r| {
                r.assertion.then(|| match (&r.host, r.port) {
                    (Some(h), Some(p)) => Arc::from(format!("{h}:{p}")),
                    (Some(h), None) => Arc::from(h.as_str()),
                    (None, _) => public_host.clone(),
                })
            })
            .collect();
        let cfg = &config.assertion;
        let needed = audiences.iter().any(Option::is_some) || cfg.key.is_some();
        let keys = match needed {
            true => {
                let sealer = Sealer::new(config.session.keys.clone());
                Some(Keys::load(cfg, store, &sealer, clock.now())?)
            }
            false => None,
        };
        let lifetime = cfg.lifetime.as_secs();
        Ok(Assertions {
            keys,
            issuer: config.server.public_url.origin.clone(),
            audiences,
            lifetime,
            clock,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(lifetime / 2))
                .build_with_hasher(ahash::RandomState::new()),
            hasher: ahash::RandomState::new(),
        })
    }

    /// The JWKS document: every key an unexpired assertion may carry.
    pub fn jwks(&self) -> serde_json::Value {
        match &self.keys {
            Some(k) => k.jwks().clone(),
            None => serde_json::json!({ "keys": [] }),
        }
    }

    /// The assertion for `caller` on route `route`, if the route asks for
    /// one: cached, or signed now when there is none younger than half its
    /// lifetime.
    pub fn for_route(&self, route: usize, caller: &Caller) -> Option<HeaderValue> {
        let audience = self.audiences.get(route)?.as_ref()?;
        let keys = self.keys.as_ref()?;
        let id = &caller.identity;
        let now = self.clock.now();
        let key = self
            .hasher
            .hash_one((id.sub.as_str(), id.session_id(), id.issued_at(), route));
        if let Some(s) = self.cache.get(&key) {
            let fresh = now >= s.iat && now < s.iat + (s.exp - s.iat) / 2;
            if fresh && s.identity == *id && s.audience == *audience {
                return Some(s.value.clone());
            }
        }
        let exp = (now + self.lifetime).min(id.expires_at());
        if exp <= now {
            return None;
        }
        let jti = crate::session::random_token(16);
        let jwt = keys.sign(&Claims {
            iss: &self.issuer,
            aud: audience,
            sub: &id.sub,
            email: id.email.as_deref(),
            email_verified: id.email_verified,
            is_private_email: id.is_private_email,
            name: id.name.as_deref(),
            iat: now,
            exp,
            jti: &jti,
        });
        // Base64url and dots: always a valid header value.
        let value = HeaderValue::from_str(&jwt).ok()?;
        let signed = Signed {
            identity: id.clone(),
            audience: audience.clone(),
            iat: now,
            exp,
            value: value.clone(),
        };
        self.cache.insert(key, Arc::new(signed));
        Some(value)
    }
}
