//! `POST /oauth2/apple/notifications` (`apple.notifications_path`):
//! Apple's server-to-server notifications.
//!
//! Apple posts `{"payload": "<JWT>"}` when a user stops using Sign in with
//! Apple with the app, deletes their Apple account, or switches mail
//! forwarding to their private relay address off or on. The payload is
//! verified like an id_token ([`crate::apple::notification`]); anything
//! else is a 400 that changes nothing. `consent-revoked` and
//! `account-delete` revoke the user everywhere; `email-disabled` and
//! `email-enabled` are recorded for `X-Auth-Request-Email-Disabled`. A
//! verified notification is acted on, then
//! its `jti` recorded, and only then answered 200: Apple retries what was
//! not acknowledged, and a retry of what was is a no-op.

use pingora::proxy::Session as Downstream;
use serde::Deserialize;

use super::body::read_body;
use super::paths::START;
use crate::apple::{AppleError, EventKind, Notification};
use crate::proxy::error::Failure;
use crate::proxy::gateway::Gateway;
use crate::proxy::respond::Response;
use crate::state::{blocking, EmailStatus, SubRevocation};

/// How long an id_token lives (Apple's, 24 h): a bearer token issued just
/// before a revocation stays void this long at least.
const ID_TOKEN_LIFETIME: u64 = 86_400;

/// How long a notification id without `exp` is remembered: longer than
/// Apple keeps retrying one.
const JTI_KEPT: u64 = 30 * 86_400;

/// Apple's body.
#[derive(Deserialize)]
struct Body {
    payload: String,
}

/// Verifies and acts on one notification; 200 once the store has it.
pub async fn notifications(gw: &Gateway, down: &mut Downstream) -> Response {
    match receive(gw, down).await {
        Ok(()) => Response::json(200, &serde_json::json!({"ok": true})),
        Err(f) => f.answer(false, START),
    }
}

async fn receive(gw: &Gateway, down: &mut Downstream) -> Result<(), Failure> {
    let body = read_body(down, gw.max_callback_body).await?;
    let Body { payload } = serde_json::from_slice(&body)
        .map_err(|_| Failure::BadRequest("expected {\"payload\": \"<JWT>\"}"))?;
    let n = gw
        .apple
        .verify_notification(&payload)
        .await
        .map_err(|e| match e {
            // Not from Apple, or not for us: refused, nothing changes.
            AppleError::InvalidToken(_) | AppleError::UnknownKey(_) => Failure::BadNotification(e),
            // Apple's keys could not be fetched: a 5xx, so Apple retries.
            e => Failure::Apple(e),
        })?;
    let store = gw.revocations.store();
    let jti = n.jti.clone();
    if blocking(move || store.notification_seen(&jti))
        .await
        .map_err(Failure::State)?
    {
        tracing::info!(jti = %n.jti, "notification already handled (Apple's retry)");
        return Ok(());
    }
    act(gw, &n).await?;
    let now = gw.clock.now();
    let until = n
        .exp
        .map_or(now + JTI_KEPT, |exp| exp.max(now) + gw.apple.leeway());
    let (store, jti) = (gw.revocations.store(), n.jti.clone());
    blocking(move || store.first_notification(&jti, until))
        .await
        .map_err(Failure::State)?;
    Ok(())
}

/// Does what the event asks. A revocation is as of the moment the
/// notification arrived (not Apple's earlier `event_time`): every session
/// and bearer token issued before it is void, and kept so until the
/// longest of them would have expired anyway.
async fn act(gw: &Gateway, n: &Notification) -> Result<(), Failure> {
    let event = &n.event;
    let kind = match &event.kind {
        EventKind::ConsentRevoked => "consent-revoked",
        EventKind::AccountDelete => "account-delete",
        EventKind::EmailDisabled => "email-disabled",
        EventKind::EmailEnabled => "email-enabled",
        EventKind::Other(t) => t.as_str(),
    };
    tracing::info!(jti = %n.jti, sub = %event.sub, event = kind, "Apple notification");
    match event.kind {
        EventKind::ConsentRevoked | EventKind::AccountDelete => {
            let now = gw.clock.now();
            let longest = gw
                .session_cookie
                .lifetime()
                .absolute()
                .max(ID_TOKEN_LIFETIME);
            let r = SubRevocation {
                at: now,
                until: now + longest + gw.apple.leeway(),
            };
            gw.revocations
                .revoke_sub(&event.sub, r)
                .await
                .map_err(Failure::State)
        }
        EventKind::EmailDisabled | EventKind::EmailEnabled => {
            let status = EmailStatus {
                disabled: event.kind == EventKind::EmailDisabled,
                at: event.event_time,
            };
            gw.disabled_emails
                .record(&event.sub, status)
                .await
                .map_err(Failure::State)
        }
        EventKind::Other(_) => Ok(()),
    }
}
