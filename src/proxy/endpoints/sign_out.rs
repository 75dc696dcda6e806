//! `GET|POST /oauth2/sign_out?rd=<path>`: end the session.

use pingora::proxy::Session as Downstream;

use super::paths::{query_param, safe_return_path};
use crate::proxy::error::Failure;
use crate::proxy::gateway::{cookie_headers, Gateway};
use crate::proxy::respond::{escape, Response};
use crate::session::find_cookie;

/// Whether a request comes from another site: `Sec-Fetch-Site:
/// cross-site` (every current browser sends it), or an `Origin` that is
/// not ours (older browsers).
fn is_cross_site(gw: &Gateway, down: &Downstream) -> bool {
    let h = &down.req_header().headers;
    let fetch_cross = h
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    let foreign_origin = h
        .get(http::header::ORIGIN)
        .is_some_and(|o| o.as_bytes() != gw.public.origin.as_bytes());
    fetch_cross || foreign_origin
}

/// Signs out, except when another site asked: a link or form elsewhere
/// must not be able to end the user's session (logout CSRF), so it gets a
/// page whose button signs out from our own origin. The answer waits
/// until the state store has the revocation: a sign-out the user saw
/// succeed survives a restart or a crash.
pub async fn sign_out(gw: &Gateway, down: &Downstream) -> Response {
    if is_cross_site(gw, down) {
        let rd = query_param(down.req_header().uri.query(), "rd")
            .and_then(|rd| safe_return_path(&gw.public.origin, &rd));
        let action = match rd {
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
            }
        }
    }
    let rd = query_param(down.req_header().uri.query(), "rd")
        .and_then(|rd| safe_return_path(&gw.public.origin, &rd));
    let resp = match rd {
        Some(path) => Response::redirect(302, format!("{}{path}", gw.public.origin)),
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
