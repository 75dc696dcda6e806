//! Checking an Apple id_token.
//!
//! The checks Apple lists under "Verify the identity token"
//! (<https://developer.apple.com/documentation/sign_in_with_apple/verifying-a-user>):
//! the RS256 signature under the published key named by `kid`; `iss` is
//! Apple; `aud` is our client id; `exp` has not passed; and the `nonce` is
//! the one we sent. Only RS256 is accepted, so `alg: none` and HMAC
//! confusion are refused before any key is looked up (RFC 8725 §3.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{errors::ErrorKind, Algorithm, Validation};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AppleError, Jwks};
use crate::identity::email::is_relay_address;
use crate::identity::{Identity, Proof};

/// Tokens larger than this are refused unparsed (Apple's are about 1 KiB).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The claims of a verified id_token.
#[derive(Debug, Clone, Deserialize)]
pub struct IdToken {
    pub iss: String,
    pub aud: String,
    /// Stable per user and team: the identity key (never the email).
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    pub email_verified: Option<bool>,
    #[serde(default, deserialize_with = "bool_or_string")]
    pub is_private_email: Option<bool>,
    #[serde(default)]
    pub real_user_status: Option<u8>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    pub nonce_supported: Option<bool>,
    #[serde(default)]
    pub auth_time: Option<u64>,
    #[serde(default)]
    pub at_hash: Option<String>,
    #[serde(default)]
    pub c_hash: Option<String>,
    #[serde(default)]
    pub transfer_sub: Option<String>,
}

impl IdToken {
    /// The identity these verified claims vouch for, proven by `proof`:
    /// the one conversion, for the callback and bearer tokens alike. An
    /// email Apple did not mark verified is unverified. When Apple leaves
    /// `is_private_email` out, a relay address still counts as private, so
    /// the upstream is never told a relay address is a real one. The name
    /// is not in the claims (Apple sends it unsigned, once); the caller may
    /// add it for display.
    pub fn identity(&self, proof: Proof) -> Identity {
        let email = self.email.clone();
        let relay = email.as_deref().is_some_and(is_relay_address);
        Identity {
            sub: self.sub.clone(),
            email,
            email_verified: self.email_verified.unwrap_or(false),
            is_private_email: self.is_private_email.unwrap_or(relay),
            name: None,
            proof,
        }
    }
}

/// Apple sends booleans as `"true"`/`"false"` in older tokens and as JSON
/// booleans in newer ones; both mean the same.
pub(super) fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Str(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(B::Str(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(B::Str(s)) => Err(serde::de::Error::custom(format!(
            "expected a boolean, found {s:?}"
        ))),
    }
}

/// What a token must match.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The expected `iss`: Apple's base URL.
    pub issuer: &'a str,
    /// Accepted `aud` values: the Services ID (and app bundle IDs for native tokens).
    pub audiences: &'a [String],
    /// The nonce we sent, when we sent one.
    pub nonce: Option<&'a str>,
    /// Now, in seconds since the epoch (from the injected clock).
    pub now: u64,
    /// Allowed clock skew in seconds for `exp` and `iat`.
    pub leeway: u64,
}

/// Verifies `token` against Apple's keys and `expect`.
pub async fn verify(
    token: &str,
    jwks: &Jwks,
    expect: &Expectations<'_>,
) -> Result<IdToken, AppleError> {
    let kid = kid_of(token)?;
    let key = jwks.key(&kid).await?;
    verify_with_key(token, &key, expect)
}

/// The `kid` of an RS256 token; refuses every other algorithm.
pub(super) fn kid_of(token: &str) -> Result<String, AppleError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AppleError::InvalidToken("token too large".into()));
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| AppleError::InvalidToken("malformed header or unsupported alg".into()))?;
    if header.alg != Algorithm::RS256 {
        return Err(AppleError::InvalidToken(format!(
            "alg {:?} is not RS256",
            header.alg
        )));
    }
    header
        .kid
        .ok_or_else(|| AppleError::InvalidToken("no kid in header".into()))
}

/// The claims of an RS256 `token` signed by `key`, with `iss` and `aud` as
/// `expect` says and every claim in `required` present: the one signature
/// check, for id_tokens and Apple's notifications alike. Time is left to
/// the caller, who checks it against the injected clock.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    expect: &Expectations<'_>,
    required: &[&str],
) -> Result<T, AppleError> {
    kid_of(token)?;
    // RS256 runs on ring: rs256::install ran when the Jwks holding `key`
    // was built.
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_required_spec_claims(required);
    v.set_issuer(&[expect.issuer]);
    v.set_audience(expect.audiences);
    jsonwebtoken::decode::<T>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| {
            AppleError::InvalidToken(
                match e.kind() {
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::MissingRequiredClaim(_) => "missing a required claim",
                    ErrorKind::InvalidAlgorithm => "wrong algorithm",
                    _ => "malformed token",
                }
                .into(),
            )
        })
}

/// Verifies `token` with a known key; the clock checks use `expect.now`.
pub fn verify_with_key(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    expect: &Expectations<'_>,
) -> Result<IdToken, AppleError> {
    let claims: IdToken = decode(token, key, expect, &["exp", "iss", "aud", "sub"])?;
    if expect.now > claims.exp.saturating_add(expect.leeway) {
        return Err(AppleError::InvalidToken("expired".into()));
    }
    if claims.iat > expect.now.saturating_add(expect.leeway) {
        return Err(AppleError::InvalidToken("issued in the future".into()));
    }
    if let Some(want) = expect.nonce {
        let got = claims.nonce.as_deref().unwrap_or_default();
        if !bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
            return Err(AppleError::InvalidToken("nonce does not match".into()));
        }
    }
    Ok(claims)
}

/// OpenID Connect's left-half hash (`at_hash`, `c_hash`): base64url of the
/// first 16 bytes of SHA-256 (OpenID Connect Core §3.1.3.6).
pub fn half_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    B64.encode(&digest[..16])
}

/// Checks `at_hash` against the access token it came with, when present.
pub fn check_at_hash(claims: &IdToken, access_token: &str) -> Result<(), AppleError> {
    match &claims.at_hash {
        Some(h) if !bool::from(h.as_bytes().ct_eq(half_hash(access_token).as_bytes())) => Err(
            AppleError::InvalidToken("at_hash does not match the access token".into()),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(extra: serde_json::Value) -> IdToken {
        let mut c = serde_json::json!({
            "iss": "https://appleid.apple.com",
            "aud": "com.example.web",
            "sub": "001234.abc.0042",
            "iat": 1000,
            "exp": 2000,
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn one_identity_from_claims_whatever_the_proof() {
        let bearer = Proof::Bearer {
            issued_at: 1000,
            expires_at: 2000,
        };
        let id = claims(serde_json::json!({
            "email": "x7k2@privaterelay.appleid.com",
            "email_verified": "true",
        }))
        .identity(bearer.clone());
        assert_eq!(id.sub, "001234.abc.0042");
        assert!(id.email_verified);
        assert!(
            id.is_private_email,
            "a relay address is private even when Apple leaves the flag out"
        );
        assert_eq!(id.name, None, "the name is never taken from claims");
        assert_eq!(id.proof, bearer);

        let id = claims(serde_json::json!({"email": "jane@example.com"})).identity(bearer.clone());
        assert!(!id.email_verified, "unverified unless Apple says so");
        assert!(!id.is_private_email);
        let id = claims(serde_json::json!({
            "email": "jane@example.com",
            "is_private_email": true,
        }))
        .identity(bearer);
        assert!(id.is_private_email, "Apple's flag counts as sent");
    }
}
