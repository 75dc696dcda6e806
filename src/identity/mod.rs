//! Who makes a request: one [`Identity`], however it was proven.
//!
//! A browser proves it with the session cookie, a native app or API client
//! with an Apple id_token as a bearer token; both end as the same
//! `Identity`, made from verified id_token claims by one function
//! ([`crate::apple::IdToken::identity`]). `sub` is the identity key, never
//! the email (Apple lets a user switch the address off). The headers that
//! carry it upstream are built once per identity ([`headers`]).
//!
//! Email addresses are read with one strict parser ([`email::Email`]),
//! shared with the policy.
//!
//! This module is a leaf: it uses nothing else of the crate, so every
//! layer may name an identity.

pub mod email;
pub mod headers;

pub use headers::{strip, Headers};

/// A signed-in user, as Apple vouched for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Apple's `sub`: stable per user and team; the identity key.
    pub sub: String,
    pub email: Option<String>,
    /// Whether Apple verified the email (only then do email rules count it).
    pub email_verified: bool,
    /// Whether the email is an Apple private relay address.
    pub is_private_email: bool,
    /// Display name from the first-consent `user` field: unsigned, so
    /// display only, never part of who the user is.
    pub name: Option<String>,
    /// How the identity was proven, and until when it holds.
    pub proof: Proof,
}

/// How a request proved its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// A sealed session cookie, issued at the callback.
    Session {
        /// Random session id: what sign-out revokes.
        id: String,
        issued_at: u64,
        /// The absolute end: `issued_at` plus the session lifetime.
        expires_at: u64,
        /// When the cookie was last re-issued: the idle timeout counts
        /// from here.
        seen_at: u64,
        /// When Apple last confirmed the user's authorization (sign-in,
        /// then each successful re-validation).
        checked_at: u64,
    },
    /// An Apple id_token sent as `Authorization: Bearer` (its `iat`, `exp`).
    Bearer { issued_at: u64, expires_at: u64 },
}

impl Identity {
    /// When the proof was issued (what a revocation of `sub` compares with).
    pub fn issued_at(&self) -> u64 {
        match self.proof {
            Proof::Session { issued_at, .. } | Proof::Bearer { issued_at, .. } => issued_at,
        }
    }

    /// When the proof stops holding.
    pub fn expires_at(&self) -> u64 {
        match self.proof {
            Proof::Session { expires_at, .. } | Proof::Bearer { expires_at, .. } => expires_at,
        }
    }

    /// The session id, for an identity proven by a session cookie.
    pub fn session_id(&self) -> Option<&str> {
        match &self.proof {
            Proof::Session { id, .. } => Some(id),
            Proof::Bearer { .. } => None,
        }
    }
}

/// An identity with its upstream headers built once: what the gateway
/// caches per session cookie and per bearer token, and what a request
/// carries to the upstream phase.
#[derive(Debug)]
pub struct Caller {
    pub identity: Identity,
    pub headers: Headers,
}

impl Caller {
    /// `identity` with its header values built.
    pub fn new(identity: Identity) -> Self {
        Caller {
            headers: Headers::of(&identity),
            identity,
        }
    }
}
