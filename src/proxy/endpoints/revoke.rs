//! `POST /oauth2/revoke?rd=<path>`: end the user's authorization at Apple,
//! and here.
//!
//! What an app calls when a user deletes their account: App Store rule
//! 5.1.1(v) asks apps with Sign in with Apple to revoke the user's tokens
//! then (<https://developer.apple.com/documentation/sign_in_with_apple/revoke_tokens>).
//! The gateway revokes the refresh token it kept for the caller's session
//! at Apple's `/auth/revoke`, then signs the user out everywhere, forgets
//! the name Apple sent and the kept token, and clears the cookie.
//!
//! Only for a signed-in user (the session cookie; 401 otherwise) and only
//! from our own origin (403 otherwise, nothing changed): a page elsewhere
//! must not be able to end a user's authorization.
//!
//! All or nothing, and never a pretence: only Apple's confirmation lets the
//! gateway say `{"revoked":true}`. If Apple cannot be reached or refuses,
//! nothing changes here either (502): the user stays signed in, so the
//! same call, with the same session and its kept token, can be retried; a
//! sign-out now would leave nothing to retry with. A session that kept no
//! token (signed in before tokens were kept) cannot tell Apple: 409 says
//! so, and the user is still signed out everywhere (what can be done here
//! is done); signing in again keeps a token, and revoking then reaches
//! Apple.

use pingora::proxy::Session as Downstream;
use serde_json::json;

use super::origin::is_cross_site;
use super::paths::{location, return_to, START};
use crate::proxy::error::{Chain, Failure};
use crate::proxy::gateway::{cookie_headers, wants_page, Gateway};
use crate::proxy::rate_limit::RETRY_AFTER;
use crate::proxy::respond::{escape, Response};
use crate::session::SessionError;

/// What came of asking Apple to revoke a session's token.
pub(super) enum AtApple {
    /// Apple confirmed; the kept token is forgotten.
    Revoked,
    /// The session kept no token: Apple cannot be told.
    NoToken,
    /// Apple could not be reached or refused; the kept token stays.
    Failed(Failure),
}

/// Revokes session `sid`'s kept refresh token (of user `sub`) at Apple;
/// on Apple's confirmation, forgets it (a dead token is no use to keep).
pub(super) async fn revoke_at_apple(gw: &Gateway, sub: &str, sid: &str) -> AtApple {
    let kept = match gw.refresh_tokens.get(sid).await {
        Ok(kept) => kept.filter(|k| k.sub == sub),
        Err(e) => return AtApple::Failed(Failure::State(e)),
    };
    let Some(kept) = kept else {
        return AtApple::NoToken;
    };
    if !gw.limits.admit_apple_call() {
        tracing::warn!("cap on token calls to Apple reached");
        return AtApple::Failed(Failure::RateLimited(RETRY_AFTER));
    }
    if let Err(e) = gw.apple.revoke(kept.token.expose()).await {
        return AtApple::Failed(Failure::Apple(e));
    }
    tracing::info!(sub = %sub, "revoked at Apple");
    if let Err(e) = gw.refresh_tokens.forget(sid).await {
        // Dead at Apple already; the row is swept when the session expires.
        tracing::warn!(sub = %sub, error = %Chain(&e), "cannot forget a revoked refresh token");
    }
    AtApple::Revoked
}

/// Revokes the caller's authorization at Apple and here.
pub async fn revoke(gw: &Gateway, down: &Downstream) -> Response {
    let page = wants_page(down.req_header());
    if is_cross_site(gw, down) {
        return Failure::CrossSite.answer(page, START);
    }
    // Whatever the session is due (a new cookie, a check with Apple) is
    // moot: this ends it.
    let caller = match gw.authenticate(cookie_headers(down), gw.clock.now()) {
        Ok((caller, _due)) => caller,
        Err(SessionError::Duplicate) => {
            return Failure::BadRequest("more than one session cookie").answer(page, START)
        }
        Err(e) => return Failure::NoSession(e).answer(page, START),
    };
    let id = &caller.identity;
    let Some(sid) = id.session_id() else {
        // A session cookie always carries its id; nothing else gets here.
        return Failure::NoSession(SessionError::Invalid).answer(page, START);
    };
    let revoked = match revoke_at_apple(gw, &id.sub, sid).await {
        AtApple::Revoked => true,
        AtApple::NoToken => false,
        AtApple::Failed(Failure::Apple(e)) => {
            tracing::error!(sub = %id.sub, error = %Chain(&e), "revoke at Apple failed; nothing changed");
            return not_revoked(page, 502, "apple_unavailable", APPLE_FAILED);
        }
        AtApple::Failed(f) => return f.answer(page, START),
    };
    if let Err(e) = gw.end_user(&id.sub).await {
        return Failure::State(e).answer(page, START);
    }
    let resp = match (revoked, page, return_to(gw, down)) {
        (true, true, Some(to)) => Response::redirect(303, location(&gw.public.origin, &to)),
        (true, true, None) => Response::page(
            200,
            "Sign in with Apple revoked",
            &format!(
                "<p>This site no longer has access to your Apple ID, and you are signed out everywhere.</p><p><a class=\"button\" href=\"{}\">Sign in again</a></p>",
                escape(&gw.start_url("/"))
            ),
        ),
        (true, false, _) => Response::json(200, &json!({"revoked": true})),
        (false, ..) => {
            tracing::warn!(sub = %id.sub, "revoke: the session kept no Apple token; signed out here only");
            not_revoked(page, 409, "no_refresh_token", NO_TOKEN)
        }
    };
    resp.cookie(gw.session_cookie.clear_cookie())
}

const APPLE_FAILED: &str = "Apple could not be reached or refused, so your Sign in with Apple authorization was not revoked. Nothing was changed and you are still signed in; please try again in a moment.";

const NO_TOKEN: &str = "Apple could not be told: this session began before the gateway kept Apple's token, so your Sign in with Apple authorization was not revoked at Apple. You are signed out everywhere here. Sign in again and revoke once more to end it at Apple.";

/// The answer when Apple's authorization was not revoked: never dressed as
/// a success, for a person or a program.
fn not_revoked(page: bool, status: u16, error: &str, message: &str) -> Response {
    match page {
        true => Response::page(
            status,
            "Not revoked at Apple",
            &format!("<p>{}</p>", escape(message)),
        ),
        false => Response::json(
            status,
            &json!({"revoked": false, "error": error, "message": message}),
        ),
    }
}
