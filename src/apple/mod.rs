//! Sign in with Apple: everything the gateway says to and hears from Apple.
//!
//! This module knows nothing of HTTP serving. [`client_secret`] mints the
//! ES256 client secret, [`jwks`] keeps Apple's signing keys, [`id_token`]
//! checks identity tokens, [`notification`] verifies and decodes Apple's
//! server-to-server notifications, and [`client`] makes the calls (authorize URL,
//! code exchange). Apple's documentation:
//! <https://developer.apple.com/documentation/sign_in_with_apple/sign_in_with_apple_rest_api>

pub mod bearer;
pub mod client;
pub mod client_secret;
pub mod id_token;
pub mod jwks;
pub mod notification;
pub mod rs256;

use std::fmt;

pub use bearer::BearerCache;
pub use client::{Client, TokenResponse};
pub use client_secret::ClientSecret;
pub use id_token::{Expectations, IdToken};
pub use jwks::Jwks;
pub use notification::{Event, EventKind, Notification};

/// What can go wrong talking to Apple or checking what it sent.
#[derive(Debug)]
pub enum AppleError {
    /// Apple rejected our client credentials (`invalid_client`): the Team ID,
    /// Services ID, Key ID, private key or Return URL is wrong.
    InvalidClient { description: Option<String> },
    /// Apple rejected the grant (`invalid_grant`): the code was bad, already
    /// used or expired, or the refresh token was revoked (the user withdrew
    /// consent); the user should sign in again.
    InvalidGrant { description: Option<String> },
    /// Apple answered with another OAuth error code.
    Rejected {
        error: String,
        description: Option<String>,
    },
    /// Apple could not be reached or did not answer in time: `call` says
    /// which (`POST <url>`), `source` why (reqwest's error, without the URL).
    Unreachable {
        call: String,
        source: reqwest::Error,
    },
    /// Apple answered `call` with an unexpected status.
    Status {
        call: String,
        status: reqwest::StatusCode,
    },
    /// Apple answered with something we could not parse: `what` says
    /// which answer, `source` how it failed to parse.
    BadResponse {
        what: &'static str,
        source: serde_json::Error,
    },
    /// Apple's keys document (from `call`) holds no usable RS256 key.
    NoKeys { call: String },
    /// The id_token failed a check; the text says which (never the token).
    InvalidToken(String),
    /// The token names a key Apple does not publish (after one refetch).
    UnknownKey(String),
    /// Minting the client secret failed.
    Signing(String),
}

impl AppleError {
    /// The kind, as metrics label it (one of [`crate::metrics::APPLE_ERRORS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            AppleError::InvalidClient { .. } => "invalid_client",
            AppleError::InvalidGrant { .. } => "invalid_grant",
            AppleError::Rejected { .. } => "rejected",
            AppleError::Unreachable { .. } => "unreachable",
            AppleError::Status { .. } => "status",
            AppleError::BadResponse { .. } => "bad_response",
            AppleError::NoKeys { .. } => "no_keys",
            AppleError::InvalidToken(_) => "invalid_token",
            AppleError::UnknownKey(_) => "unknown_key",
            AppleError::Signing(_) => "signing",
        }
    }
}

impl fmt::Display for AppleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desc = |d: &Option<String>| d.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
        match self {
            AppleError::InvalidClient { description } => write!(
                f,
                "Apple rejected our client credentials: invalid_client{}; check apple.team_id, apple.services_id, apple.key_id, that the .p8 key belongs to that Key ID and has Sign in with Apple enabled, and that the Return URL is registered for the Services ID",
                desc(description)
            ),
            AppleError::InvalidGrant { description } => {
                write!(f, "Apple rejected the grant (code or refresh token): invalid_grant{}", desc(description))
            }
            AppleError::Rejected { error, description } => {
                write!(f, "Apple answered {error}{}", desc(description))
            }
            // The cause is the source, not repeated here: a log prints the
            // whole chain (see `proxy::error::Chain`).
            AppleError::Unreachable { call, .. } => write!(f, "Apple could not be reached: {call}"),
            AppleError::Status { call, status } => write!(f, "Apple answered {call} with status {status}"),
            AppleError::BadResponse { what, .. } => write!(f, "Apple's {what} could not be read"),
            AppleError::NoKeys { call } => write!(f, "Apple answered {call} with no usable RS256 key"),
            AppleError::InvalidToken(e) => write!(f, "id_token refused: {e}"),
            AppleError::UnknownKey(kid) => write!(f, "id_token refused: no Apple key with kid {kid:?}"),
            AppleError::Signing(e) => write!(f, "cannot mint the client secret: {e}"),
        }
    }
}

impl std::error::Error for AppleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppleError::Unreachable { source, .. } => Some(source),
            AppleError::BadResponse { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl AppleError {
    /// `call` failed in transport. reqwest's message names the URL, which
    /// `call` already does; it is dropped so the chain says it once.
    pub fn unreachable(call: String, source: reqwest::Error) -> Self {
        AppleError::Unreachable {
            call,
            source: source.without_url(),
        }
    }
}
