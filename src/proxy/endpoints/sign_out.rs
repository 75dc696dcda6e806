//! `GET|POST /oauth2/sign_out?rd=<path>`: end the session (and, with
//! `apple.revoke_on_sign_out`, revoke its token at Apple, best effort).

use pingora::proxy::Session as Downstream;

use super::origin::is_cross_site;
use super::paths::{location, return_to};
use super::revoke::{revoke_at_apple, AtApple};
use crate::proxy::error::{Chain, Failure};
use crate::proxy::gateway::{cookie_headers, Gateway};
use crate::proxy::respond::{escape, Response};
use crate::session::find_cookie;

/// Signs out, except when another site asked: a link or form elsewhere
/// must not be able to end the user's session (logout CSRF), so it gets a
/// page whose button signs out from our own origin. The answer waits
/// until the state store has the revocation: a sign-out the user saw
/// succeed survives a restart or a crash.
pub async fn sign_out(gw: &Gateway, down: &Downstream) -> Response {
    if is_cross_site(gw, down) {
        let action = match return_to(gw, down) {
            Some(rd) => format!(
                "/oauth2/sign_out?rd={}",
                form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
            ),
            None => "/oauth2/sign_out".to_string(),
        };
        return Response::page(
            200,
            "Sign out?",
            &format!(
                "<p>Another site sent you here to sign out.</p><form method=\"post\" action=\"{}\"><button class=\"button\" type=\"submit\">Sign out</button></form>",
                escape(&action)
            ),
        );
    }
    let now = gw.clock.now();
    if let Some(v) = find_cookie(cookie_headers(down), gw.session_cookie.name()) {
        if let Ok(id) = gw.session_cookie.open(v, now) {
            if let Some(sid) = id.session_id() {
                if let Err(e) = gw.revocations.revoke_session(sid, id.expires_at()).await {
                    // In force in this process, but not yet saved: the user
                    // is told to try again, which writes it.
                    return Failure::State(e).answer(true, "/");
                }
                if gw.revoke_on_sign_out {
                    revoke_too(gw, &id.sub, sid).await;
                }
            }
        }
    }
    let resp = match return_to(gw, down) {
        Some(to) => Response::redirect(302, location(&gw.public.origin, &to)),
        None => Response::page(
            200,
            "Signed out",
            &format!(
                "<p>You are signed out.</p><p><a class=\"button\" href=\"{}\">Sign in again</a></p>",
                escape(&gw.start_url("/"))
            ),
        ),
    };
    resp.cookie(gw.session_cookie.clear_cookie())
}

/// `apple.revoke_on_sign_out`: the session's token revoked at Apple too,
/// and so the name Apple sent forgotten (Apple asks for consent, and sends
/// it, again). Best effort: the user asked to sign out, which is done and
/// must not hang on Apple; a failure is logged and the token stays until
/// the session would have expired.
async fn revoke_too(gw: &Gateway, sub: &str, sid: &str) {
    match revoke_at_apple(gw, sub, sid).await {
        AtApple::Revoked => {
            if let Err(e) = gw.names.forget(sub).await {
                tracing::warn!(sub = %sub, error = %Chain(&e), "sign-out: cannot forget the name");
            }
        }
        AtApple::NoToken => {
            tracing::info!(sub = %sub, "sign-out: no Apple token kept for this session, nothing to revoke")
        }
        AtApple::Failed(f) => {
            tracing::warn!(sub = %sub, error = %Chain(&f), "sign-out: cannot revoke at Apple; signed out here only")
        }
    }
}
