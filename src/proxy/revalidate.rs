//! Re-validation with Apple (`session.revalidate`): a session whose last
//! check is older than the interval is checked with its refresh token
//! (`grant_type=refresh_token`), so a user who revoked the app at Apple
//! (Settings ▸ Sign in with Apple) loses access within a day rather than
//! at the end of the session's lifetime.
//!
//! When a session is due is decided from the cookie alone
//! ([`crate::session::Lifetime::check`]); this runs only then, at most one
//! check per session at a time ([`crate::session::Checks`]). Apple's
//! answer: success re-issues the cookie with the new check time (and the
//! refresh row's `checked_at`); `invalid_grant` ends the session (revoked,
//! its refresh token forgotten); no answer keeps the session for
//! `session.revalidate_grace` past the due time, retried each minute, then
//! fails closed.
//! <https://developer.apple.com/documentation/sign_in_with_apple/generate_and_validate_tokens>

use std::time::Duration;

use crate::apple::AppleError;
use crate::identity::{Caller, Proof};
use crate::session::{SessionError, Verdict};
use crate::state::blocking;

use super::gateway::Gateway;

/// How long one replica holds a session's turn to ask Apple (seconds):
/// longer than a call to Apple takes; if that replica dies mid-call, the
/// others ask after it.
const TURN: u64 = 15;

/// How often a replica waiting for another's answer looks for it.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Checks `caller`'s session with Apple at `now`: `Ok` with the cookie to
/// send back (renewed after a success), or why the session no longer
/// holds.
pub async fn revalidate(
    gw: &Gateway,
    caller: &Caller,
    reissue: bool,
    now: u64,
) -> Result<Option<String>, SessionError> {
    let identity = &caller.identity;
    let lifetime = gw.session_cookie.lifetime();
    let (Proof::Session { id, checked_at, .. }, Some(every)) =
        (&identity.proof, lifetime.revalidate_every())
    else {
        return Ok(None);
    };
    let verdict = gw
        .checks
        .verdict(id, now, || {
            ask_apple(gw, id, identity.expires_at(), every, now)
        })
        .await;
    match verdict {
        Verdict::Confirmed(at) => Ok(gw.session_cookie.renew(identity, now, Some(at))),
        Verdict::Ended => Err(SessionError::Revoked),
        Verdict::Unsure if lifetime.within_grace(*checked_at, now) => Ok(reissue
            .then(|| gw.session_cookie.renew(identity, now, None))
            .flatten()),
        Verdict::Unsure => {
            tracing::warn!("re-validation overdue past its grace: session refused");
            Err(SessionError::Unconfirmed)
        }
    }
}

/// Asks Apple about session `id` (ending at `expires_at`) with its kept
/// refresh token, unless the refresh row shows a check within `every`
/// already (a copy of the cookie from before that check).
async fn ask_apple(gw: &Gateway, id: &str, expires_at: u64, every: u64, now: u64) -> Verdict {
    let kept = match gw.refresh_tokens.get(id).await {
        Ok(Some(kept)) => kept,
        // Signed in before refresh tokens were kept, or Apple gave none,
        // or it was sealed under a retired key: nothing to ask Apple with,
        // so the session cannot be re-validated and ends; signing in
        // again keeps a token.
        Ok(None) => return end(gw, id, expires_at, "no refresh token kept").await,
        Err(e) => {
            tracing::warn!(error = %e, "re-validation: the refresh token could not be read; retrying later");
            return Verdict::Unsure;
        }
    };
    if now < kept.checked_at.saturating_add(every) {
        return Verdict::Confirmed(kept.checked_at);
    }
    // Several replicas sharing a store: one asks Apple per session at a
    // time, the others wait for its answer (the refresh row's new
    // `checked_at`, or the session revoked), or take the turn once it is
    // given back. A store that cannot say lets this one ask: at worst
    // Apple is asked twice.
    let turn = format!("revalidate:{id}");
    if !take_turn(gw, &turn).await {
        if let Some(v) = answer_of_another(gw, id, every, now, &turn).await {
            return v;
        }
    }
    let verdict = ask_now(gw, id, expires_at, kept, now).await;
    let store = gw.revocations.store();
    if let Err(e) = blocking(move || store.unlock(&turn)).await {
        tracing::warn!(error = %e, "re-validation: the turn could not be given back; it expires");
    }
    verdict
}

/// Asks Apple with `kept`, now.
async fn ask_now(
    gw: &Gateway,
    id: &str,
    expires_at: u64,
    mut kept: crate::session::refresh::Kept,
    now: u64,
) -> Verdict {
    // Counted against the cap on token calls to Apple, like sign-ins.
    if !gw.limits.admit_apple_call() {
        tracing::warn!("re-validation: cap on token calls to Apple reached; retrying later");
        return Verdict::Unsure;
    }
    match gw.apple.refresh(kept.token.expose()).await {
        Ok(_) => {
            kept.checked_at = now;
            if let Err(e) = gw.refresh_tokens.keep(id, &kept).await {
                // The cookie carries the check time; only a stale copy of
                // the cookie would ask Apple again sooner.
                tracing::warn!(error = %e, "re-validation: the check time could not be saved");
            }
            Verdict::Confirmed(now)
        }
        Err(AppleError::InvalidGrant { .. }) => {
            end(
                gw,
                id,
                expires_at,
                "Apple no longer accepts the refresh token",
            )
            .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "re-validation: no answer from Apple; retrying later");
            Verdict::Unsure
        }
    }
}

/// Whether this replica may ask Apple about the session now (see
/// [`crate::state::Store::try_lock`]); a store error says yes.
async fn take_turn(gw: &Gateway, turn: &str) -> bool {
    let (store, turn) = (gw.revocations.store(), turn.to_string());
    !matches!(
        blocking(move || store.try_lock(&turn, TURN)).await,
        Ok(false)
    )
}

/// The verdict another replica reached on session `id` while it holds
/// `turn`; `None` once the turn is this replica's (given back without an
/// answer, or expired); `Unsure` (retried later, within the grace) if
/// neither came in time.
async fn answer_of_another(
    gw: &Gateway,
    id: &str,
    every: u64,
    now: u64,
    turn: &str,
) -> Option<Verdict> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(TURN);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(LOOK_EVERY).await;
        if gw.revocations.is_session_revoked(id) {
            return Some(Verdict::Ended);
        }
        if let Ok(Some(kept)) = gw.refresh_tokens.get(id).await {
            if now < kept.checked_at.saturating_add(every) {
                return Some(Verdict::Confirmed(kept.checked_at));
            }
        }
        if take_turn(gw, turn).await {
            return None;
        }
    }
    tracing::warn!("re-validation: another replica's check gave no answer; retrying later");
    Some(Verdict::Unsure)
}

/// Ends session `id`: revoked (in force at once, then saved) and its
/// refresh token forgotten.
async fn end(gw: &Gateway, id: &str, expires_at: u64, why: &'static str) -> Verdict {
    tracing::info!(reason = why, "re-validation ended a session");
    if let Err(e) = gw.revocations.revoke_session(id, expires_at).await {
        tracing::error!(error = %e, "re-validation: the revocation could not be saved");
    }
    if let Err(e) = gw.refresh_tokens.forget(id).await {
        tracing::warn!(error = %e, "re-validation: the refresh token could not be forgotten");
    }
    Verdict::Ended
}
