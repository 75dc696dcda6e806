//! Apple's server-to-server notifications: verified and decoded.
//!
//! Apple POSTs `{"payload": "<JWT>"}` to the notification endpoint
//! registered for the app, signed RS256 with the same keys as id_tokens
//! ("Processing changes for Sign in with Apple accounts",
//! <https://developer.apple.com/documentation/sign_in_with_apple/processing-changes-for-sign-in-with-apple-accounts>).
//! Claims: `iss` (Apple), `aud` (the App ID or Services ID), `iat`, `exp`,
//! `jti` (Apple retries: the same id again is a duplicate), and `events`:
//! a JSON object *encoded as a string*, `{"type", "sub", "event_time"
//! (milliseconds), "email", "is_private_email"}`.

use serde::Deserialize;

use super::id_token::{bool_or_string, decode, kid_of, Expectations};
use super::{AppleError, Jwks};

/// Longest `jti` kept (Apple's are 22 characters); a longer one is refused
/// rather than stored.
const MAX_JTI_LEN: usize = 256;

/// What happened to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The user switched off forwarding to their private relay address.
    EmailDisabled,
    /// The user switched it back on.
    EmailEnabled,
    /// The user stopped using Sign in with Apple with this app.
    ConsentRevoked,
    /// The user deleted their Apple account.
    AccountDelete,
    /// A type Apple added after this code was written: acknowledged, not
    /// acted on (a 400 would only make Apple retry it forever).
    Other(String),
}

/// The decoded `events` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The user it is about: the same `sub` as in their id_tokens.
    pub sub: String,
    /// When it happened, in milliseconds since the epoch, as Apple sends it.
    pub event_time: u64,
    pub email: Option<String>,
    pub is_private_email: Option<bool>,
}

/// A verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Apple's id for it: a retry carries the same.
    pub jti: String,
    pub iat: u64,
    pub exp: Option<u64>,
    pub event: Event,
}

#[derive(Deserialize)]
struct Claims {
    iat: u64,
    #[serde(default)]
    exp: Option<u64>,
    jti: String,
    /// A string holding JSON, not an object (Apple's format).
    events: String,
}

#[derive(Deserialize)]
struct Events {
    #[serde(rename = "type")]
    kind: String,
    sub: String,
    event_time: u64,
    #[serde(default)]
    email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    is_private_email: Option<bool>,
}

/// Verifies `payload` against Apple's keys and `expect` (`nonce` is not
/// used), then decodes its event.
pub async fn verify(
    payload: &str,
    jwks: &Jwks,
    expect: &Expectations<'_>,
) -> Result<Notification, AppleError> {
    let key = jwks.key(&kid_of(payload)?).await?;
    verify_with_key(payload, &key, expect)
}

/// Verifies `payload` with a known key; time is `expect.now`: `iat` may
/// be at most `expect.leeway` ahead, and `exp`, when present, not passed.
pub fn verify_with_key(
    payload: &str,
    key: &jsonwebtoken::DecodingKey,
    expect: &Expectations<'_>,
) -> Result<Notification, AppleError> {
    let bad = |why: &str| AppleError::InvalidToken(format!("notification: {why}"));
    let claims: Claims = decode(payload, key, expect, &["iss", "aud"])?;
    if claims.iat > expect.now.saturating_add(expect.leeway) {
        return Err(bad("issued in the future"));
    }
    if claims
        .exp
        .is_some_and(|exp| expect.now > exp.saturating_add(expect.leeway))
    {
        return Err(bad("expired"));
    }
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(bad("no usable jti"));
    }
    let events: Events =
        serde_json::from_str(&claims.events).map_err(|_| bad("events is not an event"))?;
    if events.sub.is_empty() {
        return Err(bad("event without sub"));
    }
    let kind = match events.kind.as_str() {
        "email-disabled" => EventKind::EmailDisabled,
        "email-enabled" => EventKind::EmailEnabled,
        "consent-revoked" => EventKind::ConsentRevoked,
        "account-delete" => EventKind::AccountDelete,
        _ => EventKind::Other(events.kind),
    };
    Ok(Notification {
        jti: claims.jti,
        iat: claims.iat,
        exp: claims.exp,
        event: Event {
            kind,
            sub: events.sub,
            event_time: events.event_time,
            email: events.email,
            is_private_email: events.is_private_email,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::keys::{Keys, SigningKey};
    use serde_json::json;

    const ISS: &str = "https://appleid.apple.com";

    fn expect(aud: &[String], now: u64) -> Expectations<'_> {
        Expectations {
            issuer: ISS,
            audiences: aud,
            nonce: None,
            now,
            leeway: 60,
        }
    }

    fn jwks_of(keys: &Keys) -> Jwks {
        Jwks::from_document(keys.document().to_string().as_bytes()).unwrap()
    }

    fn claims(events: serde_json::Value) -> serde_json::Value {
        json!({"iss": ISS, "aud": "com.example.web", "iat": 1000, "exp": 2000,
               "jti": "j1", "events": events.to_string()})
    }

    /// Every event type decodes; booleans as strings too; an unknown type
    /// is kept, not refused.
    #[tokio::test]
    async fn events_decode_from_their_string() {
        let keys = Keys::new();
        let (k, jwks) = (keys.current(), jwks_of(&keys));
        let aud = vec!["com.example.web".to_string()];
        let t = k.sign(&claims(json!({"type": "email-disabled", "sub": "u1",
            "event_time": 999_000u64, "email": "x@privaterelay.appleid.com",
            "is_private_email": "true"})));
        let n = verify(&t, &jwks, &expect(&aud, 1500)).await.unwrap();
        assert_eq!(n.jti, "j1");
        assert_eq!(n.event.kind, EventKind::EmailDisabled);
        assert_eq!(n.event.sub, "u1");
        assert_eq!(n.event.event_time, 999_000);
        assert_eq!(n.event.is_private_email, Some(true));
        let t = k.sign(&claims(
            json!({"type": "new-thing", "sub": "u1", "event_time": 1}),
        ));
        let n = verify(&t, &jwks, &expect(&aud, 1500)).await.unwrap();
        assert_eq!(n.event.kind, EventKind::Other("new-thing".into()));
    }

    /// What is not a verified notification is refused, with the reason.
    #[tokio::test]
    async fn forged_or_malformed_notifications_are_refused() {
        let keys = Keys::new();
        let (k, jwks) = (keys.current(), jwks_of(&keys));
        let aud = vec!["com.example.web".to_string()];
        let ok = json!({"type": "consent-revoked", "sub": "u1", "event_time": 1});
        let refused = |t: String, now: u64| {
            let jwks = &jwks;
            let aud = &aud;
            async move {
                match verify(&t, jwks, &expect(aud, now)).await {
                    Err(AppleError::InvalidToken(why)) => why,
                    Err(AppleError::UnknownKey(_)) => "unknown key".into(),
                    other => panic!("accepted or wrong error: {other:?}"),
                }
            }
        };
        let other_key = SigningKey::generate();
        let mut c = claims(ok.clone());
        assert_eq!(refused(other_key.sign(&c), 1500).await, "unknown key");
        assert_eq!(refused(k.sign(&c), 2061).await, "notification: expired");
        assert_eq!(
            refused(k.sign(&c), 939).await,
            "notification: issued in the future"
        );
        c["aud"] = "com.attacker.app".into();
        assert_eq!(refused(k.sign(&c), 1500).await, "wrong audience");
        let mut c = claims(ok.clone());
        c["iss"] = "https://appleid.attacker.example".into();
        assert_eq!(refused(k.sign(&c), 1500).await, "wrong issuer");
        let mut c = claims(ok.clone());
        c.as_object_mut().unwrap().remove("events");
        assert_eq!(refused(k.sign(&c), 1500).await, "malformed token");
        let c = claims(json!({"type": "consent-revoked"}));
        assert_eq!(
            refused(k.sign(&c), 1500).await,
            "notification: events is not an event"
        );
        let unsigned = format!(
            "{}.{}.",
            B64.encode(json!({"alg": "none", "kid": k.kid}).to_string()),
            B64.encode(claims(ok).to_string())
        );
        assert_eq!(
            refused(unsigned, 1500).await,
            "malformed header or unsupported alg"
        );
        assert_eq!(
            refused("garbage".into(), 1500).await,
            "malformed header or unsupported alg"
        );
    }

    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
}
