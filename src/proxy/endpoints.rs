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

use pingora::proxy::Session as Downstream;
use serde::Deserialize;
use serde_json::json;

use super::ctx::Ctx;
use super::error::Failure;
use super::respond::{escape, Response};
use super::Gateway;
use crate::canonical;
use crate::config::{AuthMode, EncodedSlashes};
use crate::session::{find_cookie, find_only_cookie, random_token, Session};

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

/// Answers a request to one of the gateway's endpoints.
pub async fn serve(
    gw: &Gateway,
    down: &mut Downstream,
    ctx: &mut Ctx,
    endpoint: Endpoint,
) -> Response {
    let method = &down.req_header().method;
    let is_get = method == http::Method::GET || method == http::Method::HEAD;
    let is_post = method == http::Method::POST;
    match endpoint {
        Endpoint::Start if is_get => start(gw, down),
        Endpoint::Start => page_error(Failure::MethodNotAllowed("GET, HEAD"), ctx, "/oauth2/start"),
        Endpoint::Callback if is_post => callback(gw, down, ctx).await,
        Endpoint::Callback => page_error(Failure::MethodNotAllowed("POST"), ctx, "/oauth2/start"),
        Endpoint::SignOut if is_get || is_post => sign_out(gw, down),
        Endpoint::SignOut => page_error(
            Failure::MethodNotAllowed("GET, HEAD, POST"),
            ctx,
            "/oauth2/start",
        ),
        Endpoint::UserInfo if is_get => userinfo(gw, down, ctx).await,
        Endpoint::UserInfo => json_error(Failure::MethodNotAllowed("GET, HEAD"), ctx),
        Endpoint::Auth => forward_auth(gw, down, ctx).await,
        Endpoint::Unknown => page_error(Failure::NotFound, ctx, "/oauth2/start"),
    }
}

fn page_error(f: Failure, ctx: &Ctx, start_again: &str) -> Response {
    f.log(ctx.id);
    f.page(start_again)
}

fn json_error(f: Failure, ctx: &Ctx) -> Response {
    f.log(ctx.id);
    f.json()
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

/// The sign-in start URL returning to `return_to`.
pub fn start_url(gw: &Gateway, return_to: &str) -> String {
    let rd: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!("{}/oauth2/start?rd={rd}", gw.public.origin)
}

fn start(gw: &Gateway, down: &Downstream) -> Response {
    let rd = query_param(down.req_header().uri.query(), "rd");
    let return_to = rd
        .as_deref()
        .and_then(|rd| safe_return_path(&gw.public.origin, rd))
        .unwrap_or_else(|| "/".to_string());
    let (login, set_cookies) = gw
        .login
        .begin(return_to, gw.clock.now(), cookie_headers(down));
    set_cookies.into_iter().fold(
        Response::redirect(302, gw.apple.authorize_url(&login.state, &login.nonce)),
        Response::cookie,
    )
}

/// The fields Apple posts to the callback.
#[derive(Default)]
struct CallbackForm {
    code: Option<String>,
    state: Option<String>,
    user: Option<String>,
    error: Option<String>,
}

impl CallbackForm {
    /// Parses the body; a repeated field is refused, so no parameter
    /// pollution can pick which copy we read.
    fn parse(body: &[u8]) -> Result<Self, Failure> {
        let mut f = CallbackForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            let slot = match k.as_ref() {
                "code" => &mut f.code,
                "state" => &mut f.state,
                "user" => &mut f.user,
                "error" => &mut f.error,
                // id_token is ignored: the one from the code exchange comes
                // straight from Apple over TLS and is the one we verify.
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(Failure::BadRequest("repeated callback field"));
            }
        }
        Ok(f)
    }
}

/// The first-consent `user` field: `{"name":{"firstName","lastName"},"email"}`.
/// Unsigned, so used for display only, never for identity.
fn display_name(user_json: &str) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Name {
        first_name: Option<String>,
        last_name: Option<String>,
    }
    #[derive(Deserialize)]
    struct User {
        name: Option<Name>,
    }
    let user: User = serde_json::from_str(user_json).ok()?;
    let name = user.name?;
    let full = [name.first_name, name.last_name]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let full: String = full.chars().filter(|c| !c.is_control()).take(200).collect();
    (!full.is_empty()).then_some(full)
}

async fn read_body(down: &mut Downstream, cap: usize) -> Result<Vec<u8>, Failure> {
    if let Some(len) = down
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        if len > cap {
            return Err(Failure::TooLarge);
        }
    }
    let mut body = Vec::new();
    loop {
        match down.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(Failure::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(Failure::BadRequest("unreadable body")),
        }
    }
}

async fn callback(gw: &Gateway, down: &mut Downstream, ctx: &mut Ctx) -> Response {
    let form_type = down
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return page_error(
            Failure::BadRequest("expected a form post"),
            ctx,
            "/oauth2/start",
        );
    }
    let form = match read_body(down, gw.max_callback_body)
        .await
        .and_then(|b| CallbackForm::parse(&b))
    {
        Ok(f) => f,
        Err(f) => return page_error(f, ctx, "/oauth2/start"),
    };
    let now = gw.clock.now();
    let state = form.state.clone().unwrap_or_default();
    let clear = gw.login.clear(&state);
    let cookie_value = gw
        .login
        .name_for(&state)
        // Two login cookies of one name: take neither (fails as missing).
        .and_then(|name| {
            find_only_cookie(cookie_headers(down), &name)
                .ok()
                .flatten()
                .map(str::to_string)
        });
    let login = gw.login.finish(&state, cookie_value.as_deref(), now);
    let return_to = login
        .as_ref()
        .map(|l| l.return_to.clone())
        .unwrap_or_else(|_| "/".into());
    let again = start_url(gw, &return_to);

    let result = match (&form.error, login) {
        (Some(e), _) if e == "user_cancelled_authorize" => Ok(Response::page(
            200,
            "Sign-in cancelled",
            &format!(
                "<p>You cancelled Sign in with Apple. Nothing was shared.</p><p><a class=\"button\" href=\"{}\">Try again</a></p>",
                escape(&again)
            ),
        )),
        (Some(_), _) => Err(Failure::BadRequest("Apple reported an error")),
        (None, Err(e)) => Err(Failure::Login(e)),
        (None, Ok(login)) => finish_sign_in(gw, &form, &login.nonce, now, ctx)
            .await
            .map(|set| Response::redirect(303, format!("{}{}", gw.public.origin, login.return_to)).cookie(set)),
    };
    let resp = result.unwrap_or_else(|f| page_error(f, ctx, &again));
    match clear {
        Some(c) => resp.cookie(c),
        None => resp,
    }
}

/// Exchanges the code, checks the id_token and the policy, and returns the
/// session's `Set-Cookie`.
async fn finish_sign_in(
    gw: &Gateway,
    form: &CallbackForm,
    nonce: &str,
    now: u64,
    ctx: &Ctx,
) -> Result<String, Failure> {
    let code = form
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 512)
        .ok_or(Failure::BadRequest("missing code"))?;
    if !gw.limits.admit_apple_call() {
        tracing::warn!(request_id = ctx.id, "cap on token calls to Apple reached");
        return Err(Failure::RateLimited(super::rate_limit::RETRY_AFTER));
    }
    let (_tokens, claims) = gw.apple.sign_in(code, nonce).await?;
    let email = claims.email.clone();
    let relay = email
        .as_deref()
        .is_some_and(crate::policy::is_relay_address);
    let session = Session {
        id: random_token(16),
        sub: claims.sub,
        email,
        email_verified: claims.email_verified.unwrap_or(false),
        is_private_email: claims.is_private_email.unwrap_or(relay),
        name: form.user.as_deref().and_then(display_name),
        issued_at: now,
        expires_at: now + gw.session_cookie.lifetime(),
    };
    gw.policy.check(&session)?;
    tracing::info!(request_id = ctx.id, sub = %session.sub, "signed in");
    Ok(gw.session_cookie.set_cookie(&session, now))
}

/// The request's `Cookie` header values.
pub fn cookie_headers(down: &Downstream) -> impl Iterator<Item = &[u8]> {
    down.req_header()
        .headers
        .get_all(http::header::COOKIE)
        .into_iter()
        .map(|v| v.as_bytes())
}

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
/// page whose button signs out from our own origin.
fn sign_out(gw: &Gateway, down: &Downstream) -> Response {
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
        if let Ok(s) = gw.session_cookie.open(v, now) {
            gw.revocations.revoke_session(&s.id, s.expires_at);
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
                escape(&start_url(gw, "/"))
            ),
        ),
    };
    resp.cookie(gw.session_cookie.clear_cookie())
}

/// The signed-in identity: the same decision as everywhere (bearer tokens
/// only where a route takes them, and the policy).
async fn userinfo(gw: &Gateway, down: &Downstream, ctx: &Ctx) -> Response {
    let id = match gw.identify(down, gw.bearer_enabled).await {
        Ok(id) => id,
        Err(e) => return e.response(),
    };
    match gw.policy.check(&id.session) {
        Ok(()) => Response::json(
            200,
            &json!({
                "user": id.session.sub,
                "email": id.session.email,
                "email_verified": id.session.email_verified,
                "is_private_email": id.session.is_private_email,
                "name": id.session.name,
                "expires_at": id.session.expires_at,
            }),
        ),
        Err(d) => json_error(Failure::Denied(d), ctx),
    }
}

/// Forward auth: the ingress in front asks, for each request, whether it
/// may pass and who makes it. Any method is accepted (the ingress may
/// mirror the original one); the answer never has a body to forward.
async fn forward_auth(gw: &Gateway, down: &Downstream, ctx: &mut Ctx) -> Response {
    // The original request's route decides what may vouch for it, as it
    // would if the request came through the gateway. Without a report of
    // it (none sent, or not from a trusted proxy) any route's credentials
    // count: session cookies, and bearer tokens if some route takes them.
    let auth = match original_route(gw, down, ctx) {
        Ok(Some(auth)) => auth,
        Ok(None) if gw.bearer_enabled => AuthMode::Bearer,
        Ok(None) => AuthMode::Required,
        Err(f) => return json_error(f, ctx),
    };
    if auth == AuthMode::Public {
        return Response::empty(202);
    }
    match gw.identify(down, auth == AuthMode::Bearer).await {
        Ok(id) => match gw.policy.check(&id.session) {
            Ok(()) => {
                let mut resp = Response::empty(202);
                for h in id.headers() {
                    resp.push(h.title, h.value.clone());
                }
                resp
            }
            Err(d) => json_error(Failure::Denied(d), ctx),
        },
        Err(e) => e.response(),
    }
}

/// The route of the original request as the ingress in front reports it
/// (`X-Original-URI` from nginx, `X-Forwarded-Uri` from Traefik and Caddy,
/// `X-Forwarded-Host`), canonicalized like any request: a path or host
/// that could be read two ways is refused here too, so the ingress never
/// passes it on. Only a trusted proxy's report counts; from anyone else it
/// is ignored. An original request no route covers needs a session.
fn original_route(gw: &Gateway, down: &Downstream, ctx: &Ctx) -> Result<Option<AuthMode>, Failure> {
    let trusted = ctx.peer.is_some_and(|p| gw.trusted_proxies.contains(p));
    if !trusted {
        return Ok(None);
    }
    let req = down.req_header();
    let headers = &req.headers;
    let mut values = headers
        .get_all("x-original-uri")
        .iter()
        .chain(headers.get_all("x-forwarded-uri").iter());
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Failure::BadRequest("more than one original URI"));
    }
    let raw = raw
        .to_str()
        .map_err(|_| Failure::BadRequest("original URI is not text"))?;
    let path = raw.split_once('?').map_or(raw, |(p, _)| p);
    let path = canonical::path::canonicalize(path).map_err(|e| Failure::BadRequest(e.reason()))?;
    let forwarded_hosts: Vec<&[u8]> = headers
        .get_all("x-forwarded-host")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let host = match forwarded_hosts.as_slice() {
        [] => canonical::host::canonicalize(
            headers
                .get_all(http::header::HOST)
                .iter()
                .map(|v| v.as_bytes()),
            req.raw_path(),
        ),
        [one] => canonical::host::parse(one),
        _ => Err(canonical::HostRefused::Duplicate),
    }
    .map_err(|e| Failure::BadRequest(e.reason()))?;
    let route = gw.routes.find(&host, &path);
    if path.encoded_slash && route.is_none_or(|r| r.encoded_slashes == EncodedSlashes::Reject) {
        return Err(Failure::BadRequest(
            canonical::PathRefused::EncodedSlash.reason(),
        ));
    }
    Ok(Some(route.map_or(AuthMode::Required, |r| r.auth)))
}

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

    #[test]
    fn user_field_gives_a_display_name_only() {
        let u = r#"{"name":{"firstName":"Jane","lastName":"Appleseed"},"email":"j@example.com"}"#;
        assert_eq!(display_name(u).as_deref(), Some("Jane Appleseed"));
        assert_eq!(display_name("not json"), None);
        assert_eq!(display_name(r#"{"email":"x@y"}"#), None);
    }

    #[test]
    fn repeated_fields_are_refused() {
        assert!(CallbackForm::parse(b"state=a&state=b&code=c").is_err());
        let f = CallbackForm::parse(b"state=a&code=c&id_token=x&extra=1").unwrap();
        assert_eq!(
            (f.state.as_deref(), f.code.as_deref()),
            (Some("a"), Some("c"))
        );
    }
}
