//! The gateway's own endpoints under `/oauth2/`.
//!
//! - `GET /oauth2/start?rd=<path>`: begin a sign-in; 302 to Apple.
//! - `POST /oauth2/callback`: Apple's `form_post`; finish the sign-in.
//! - `GET|POST /oauth2/sign_out?rd=<path>`: end the session.
//! - `GET /oauth2/userinfo`: the signed-in identity as JSON (or 401).
//! - `GET /oauth2/auth`: forward auth for nginx `auth_request`, Traefik
//!   `forwardAuth`, Caddy `forward_auth`: 202 with the identity headers,
//!   or 401 (403 when the policy refuses).
//!
//! Paths and behaviour follow oauth2-proxy so existing links keep working.

mod callback;
mod forward_auth;
mod sign_out;
mod start;
mod userinfo;

use pingora::proxy::Session as Downstream;

use super::ctx::Ctx;
use super::error::Failure;
use super::gateway::Gateway;
use super::rate_limit::RETRY_AFTER;
use super::respond::Response;

/// Where a failed sign-in starts again.
const START: &str = "/oauth2/start";

/// The gateway's endpoints, told apart by the canonical path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Start,
    Callback,
    SignOut,
    UserInfo,
    Auth,
    /// Under `/oauth2/` but none of the above.
    Unknown,
}

impl Endpoint {
    /// The endpoint a canonical path names, if it is under `/oauth2`.
    pub fn of(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/oauth2/start" => Endpoint::Start,
            "/oauth2/callback" => Endpoint::Callback,
            "/oauth2/sign_out" => Endpoint::SignOut,
            "/oauth2/userinfo" => Endpoint::UserInfo,
            "/oauth2/auth" => Endpoint::Auth,
            p if p == "/oauth2" || p.starts_with("/oauth2/") => Endpoint::Unknown,
            _ => return None,
        })
    }
}

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
    let id = ctx.id;
    let refuse = move |f: Failure, browser: bool| f.answer(id, browser, START);
    match endpoint {
        Endpoint::Start if is_get => start::start(gw, down),
        Endpoint::Start => refuse(Failure::MethodNotAllowed("GET, HEAD"), true),
        Endpoint::Callback if is_post => callback::callback(gw, down, ctx).await,
        Endpoint::Callback => refuse(Failure::MethodNotAllowed("POST"), true),
        Endpoint::SignOut if is_get || is_post => sign_out::sign_out(gw, down),
        Endpoint::SignOut => refuse(Failure::MethodNotAllowed("GET, HEAD, POST"), true),
        Endpoint::UserInfo if is_get => userinfo::userinfo(gw, down, ctx).await,
        Endpoint::UserInfo => refuse(Failure::MethodNotAllowed("GET, HEAD"), false),
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

/// The first value of query parameter `name`.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `rd` as a path on our own origin, or `None` if it could lead anywhere
/// else. Only a local path is accepted: it must start with one `/` (not
/// `//` or `/\`, which browsers read as another host), carry no
/// backslash, whitespace or control character, and, joined to our origin,
/// still be on our origin (checked with a WHATWG URL parser, as browsers
/// parse). The result is ASCII (non-ASCII percent-encoded), at most
/// [`MAX_RETURN_PATH`] bytes once encoded, and, after the parser resolved
/// its dot segments (`/..//evil.example` is `//evil.example`), still does
/// not start with `//` or `/\`.
pub fn safe_return_path(origin: &str, rd: &str) -> Option<String> {
    let b = rd.as_bytes();
    let shape_ok = rd.len() <= MAX_RETURN_PATH
        && b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && !rd
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if !shape_ok {
        return None;
    }
    let base = url::Url::parse(origin).ok()?;
    let joined = url::Url::parse(&format!("{origin}{rd}")).ok()?;
    if joined.origin() != base.origin()
        || !joined.username().is_empty()
        || joined.password().is_some()
    {
        return None;
    }
    let full = joined.as_str();
    let path = full.get(base.origin().ascii_serialization().len()..)?;
    let local = path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\");
    (local && path.len() <= MAX_RETURN_PATH).then(|| path.to_string())
}

/// The longest return path kept, after encoding: it travels in the
/// login-state cookie, which must stay well under 4 KB.
pub const MAX_RETURN_PATH: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://app.example.com";

    #[test]
    fn return_paths_stay_on_our_origin() {
        assert_eq!(safe_return_path(O, "/a/b?c=d").as_deref(), Some("/a/b?c=d"));
        assert_eq!(
            safe_return_path(O, "/caf\u{e9}").as_deref(),
            Some("/caf%C3%A9")
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "evil.example",
            "@evil.example",
            "javascript:alert(1)",
            "/ /evil",
            "/..//evil.example",
            "/.//evil.example",
            "/%2e%2e//evil.example",
            "/a/../..//evil.example",
            "",
        ] {
            assert_eq!(safe_return_path(O, bad), None, "{bad:?}");
        }
    }
}
