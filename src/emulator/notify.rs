//! Server-to-server notifications as Apple sends them: a JWT signed with
//! the id_token key, `events` a JSON-encoded *string*, POSTed as
//! `{"payload": "<JWT>"}` to the app's notification endpoint.

use serde_json::json;

use super::{Emulator, Shared};

/// How long a notification is valid (Apple's real one: a day).
const LIFETIME: u64 = 86_400;

impl Emulator {
    /// The body Apple would POST for an event of `kind` (`consent-revoked`,
    /// `account-delete`, `email-disabled`, `email-enabled`) about `sub`:
    /// signed with the current key, `iss` and `aud` as in its id_tokens
    /// (the first client's Services ID), a fresh `jti`. Resend the same
    /// body to act out Apple's retry.
    pub fn notification(&self, kind: &str, sub: &str) -> String {
        body(&self.shared, kind, sub)
    }

    /// Posts `body` (from [`Self::notification`]) to `url` as Apple does;
    /// the status the gateway answered.
    pub async fn send_notification(url: &str, body: String) -> Result<u16, reqwest::Error> {
        let resp = reqwest::Client::new()
            .post(url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }
}

/// The body of [`Emulator::notification`].
pub(super) fn body(s: &Shared, kind: &str, sub: &str) -> String {
    let now = s.opts.clock.now();
    let aud = s
        .opts
        .clients
        .first()
        .map(|c| c.client_id.clone())
        .unwrap_or_default();
    let events = json!({
        "type": kind,
        "sub": sub,
        "event_time": now * 1000,
    });
    let claims = json!({
        "iss": s.base_url,
        "aud": aud,
        "iat": now,
        "exp": now + LIFETIME,
        "jti": crate::session::random_token(16),
        "events": events.to_string(),
    });
    json!({"payload": s.state().keys.current().sign(&claims)}).to_string()
}
