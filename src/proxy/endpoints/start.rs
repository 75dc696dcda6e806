//! `GET /oauth2/start?rd=<path or URL>`: begin a sign-in. Seals state, nonce and
//! the return path into a login-state cookie and redirects to Apple.

use pingora::proxy::Session as Downstream;

use super::paths::{query_param, safe_return};
use crate::proxy::gateway::{cookie_headers, Gateway};
use crate::proxy::respond::Response;

/// Begins a sign-in returning to `rd` (when [`safe_return`] takes it).
pub fn start(gw: &Gateway, down: &Downstream) -> Response {
    let rd = query_param(down.req_header().uri.query(), "rd");
    let return_to = rd
        .as_deref()
        .and_then(|rd| safe_return(&gw.public.origin, &gw.redirect_hosts, rd))
        .unwrap_or_else(|| "/".to_string());
    let (login, set_cookies) = gw
        .login
        .begin(return_to, gw.clock.now(), cookie_headers(down));
    set_cookies.into_iter().fold(
        Response::redirect(302, gw.apple.authorize_url(&login.state, &login.nonce)),
        Response::cookie,
    )
}
