//! The gateway's own endpoints under `/oauth2/`.
//!
//! - `GET /oauth2/start?rd=<path>`: begin a sign-in; 302 to Apple.
//! - `POST /oauth2/callback`: Apple's `form_post`; finish the sign-in.
//! - `GET|POST /oauth2/sign_out?rd=<path>`: end the session.
//! - `POST /oauth2/revoke?rd=<path>`: revoke the user's authorization at
//!   Apple, sign them out everywhere, forget their name (account deletion).
//! - `GET /oauth2/userinfo`: the signed-in identity as JSON (or 401).
//! - `GET /oauth2/auth`: forward auth for nginx `auth_request`, Traefik
//!   `forwardAuth`, Caddy `forward_auth`: 202 with the identity headers,
//!   or 401 (403 when the policy refuses).
//! - `POST /oauth2/apple/notifications` (`apple.notifications_path`):
//!   Apple's server-to-server notifications; 200 once acted on, 400 for
//!   anything that is not a verified notification.
//! - `GET /.well-known/applegate/jwks.json`: the public keys that verify
//!   the signed identity assertions sent upstream (`crate::assertion`).
//!
//! Paths and behaviour follow oauth2-proxy so existing links keep working.

mod body;
mod callback;
mod forward_auth;
mod jwks;
mod notifications;
mod origin;
pub mod paths;
mod revoke;
mod sign_out;
mod start;
mod userinfo;

use pingora::proxy::Session as Downstream;

use super::ctx::Ctx;
use super::error::Failure;
use super::gateway::Gateway;
use super::rate_limit::RETRY_AFTER;
use super::respond::Response;
use paths::START;
pub use paths::{safe_return, Endpoint, MAX_RETURN_PATH};

/// Answers a request to one of the gateway's endpoints (the sign-in
/// ones under their rate limit).
pub async fn serve(
    gw: &Gateway,
    down: &mut Downstream,
    ctx: &mut Ctx,
    endpoint: Endpoint,
) -> Response {
    if let Some(refused) = limit_sign_in(gw, down, endpoint) {
        return refused;
    }
    let method = &down.req_header().method;
    let is_get = method == http::Method::GET || method == http::Method::HEAD;
    let is_post = method == http::Method::POST;
    let refuse = |f: Failure, browser: bool| f.answer(browser, START);
    match endpoint {
        Endpoint::Start if is_get => start::start(gw, down),
        Endpoint::Start => refuse(Failure::MethodNotAllowed("GET, HEAD"), true),
        Endpoint::Callback if is_post => callback::callback(gw, down).await,
        Endpoint::Callback => refuse(Failure::MethodNotAllowed("POST"), true),
        Endpoint::SignOut if is_get || is_post => sign_out::sign_out(gw, down).await,
        Endpoint::SignOut => refuse(Failure::MethodNotAllowed("GET, HEAD, POST"), true),
        Endpoint::Revoke if is_post => revoke::revoke(gw, down).await,
        Endpoint::Revoke => refuse(Failure::MethodNotAllowed("POST"), false),
        Endpoint::UserInfo if is_get => userinfo::userinfo(gw, down).await,
        Endpoint::UserInfo => refuse(Failure::MethodNotAllowed("GET, HEAD"), false),
        Endpoint::Notifications if is_post => notifications::notifications(gw, down).await,
        Endpoint::Notifications => refuse(Failure::MethodNotAllowed("POST"), false),
        Endpoint::Jwks if is_get => jwks::jwks(gw),
        Endpoint::Jwks => refuse(Failure::MethodNotAllowed("GET, HEAD"), false),
        Endpoint::Auth => forward_auth::forward_auth(gw, down, ctx).await,
        Endpoint::Unknown => refuse(Failure::NotFound, true),
    }
}

/// The 429 for a sign-in request over its limit, if it is.
fn limit_sign_in(gw: &Gateway, down: &Downstream, endpoint: Endpoint) -> Option<Response> {
    if !matches!(endpoint, Endpoint::Start | Endpoint::Callback) {
        return None;
    }
    let peer = down
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())?;
    let client = gw.trusted_proxies.client(peer, &down.req_header().headers);
    if gw.limits.admit_sign_in(client) {
        return None;
    }
    tracing::warn!(client = %client, endpoint = ?endpoint, "sign-in rate limit reached");
    Some(Failure::RateLimited(RETRY_AFTER).page("/"))
}
