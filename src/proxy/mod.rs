//! The pingora proxy: `impl ProxyHttp` that only dispatches.
//!
//! Each phase is a few lines calling named functions in the modules that
//! decide: [`identity`](crate::identity) strips and injects headers,
//! [`endpoints`] answers `/oauth2/*`, [`route`] picks the upstream, the
//! session module opens cookies, and the policy decides who passes.

pub mod ctx;
pub mod endpoints;
pub mod error;
pub mod forwarded;
pub mod rate_limit;
pub mod respond;
pub mod route;
pub mod target;
pub mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session as Downstream};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use serde_json::json;

use crate::apple::{self, AppleError, BearerCache};
use crate::canonical::PathRefused;
use crate::clock::SharedClock;
use crate::config::{AuthMode, Config, EncodedSlashes, PublicUrl};
use crate::identity::{self, Identity};
use crate::policy::Policy;
use crate::session::{
    find_only_cookie, LoginCookie, OwnCookies, Revocations, Session, SessionCookie, SessionError,
};
use ctx::{Ctx, Outcome};
use error::Failure;
use forwarded::TrustedProxies;
use respond::Response;
use route::Routes;
use target::Target;

/// Everything the proxy needs, built once from the config and shared
/// read-only by all requests.
pub struct Gateway {
    pub public: PublicUrl,
    pub apple: Arc<apple::Client>,
    pub session_cookie: SessionCookie,
    pub login: LoginCookie,
    pub revocations: Arc<Revocations>,
    pub policy: Policy,
    pub routes: Routes,
    pub clock: SharedClock,
    pub max_callback_body: usize,
    pub bearer: BearerCache,
    /// Whether any route takes bearer tokens; if none does, no endpoint
    /// accepts one either.
    pub bearer_enabled: bool,
    pub trusted_proxies: TrustedProxies,
    pub limits: rate_limit::SignInLimits,
    /// The names of the gateway's cookies, in every form.
    own_cookies: OwnCookies,
    /// Most header fields in one request.
    max_headers: usize,
    /// Session cookie value ▶ its opened identity. Why: opening a cookie
    /// (base64, AES-GCM, JSON) and building its header values is most of
    /// the gateway's own work per request, and a browser sends the same
    /// value with every request. Exact-value keys, so only the identical
    /// sealed cookie hits; expiry and revocation are still checked per
    /// request. Bounded by capacity and an idle time. Hashed with ahash
    /// (seeded per process, so keys cannot be chosen to collide): SipHash
    /// over a 300-byte cookie was a visible share of each request.
    sessions: moka::sync::Cache<Arc<str>, Arc<Identity>, ahash::RandomState>,
    access_log: bool,
    next_request_id: AtomicU64,
}

impl Gateway {
    /// Builds the gateway from a validated config.
    pub fn new(
        config: &Config,
        clock: SharedClock,
        revocations: Arc<Revocations>,
    ) -> Result<Self, apple::AppleError> {
        let apple = apple::Client::new(
            &config.apple,
            config.server.public_url.callback_url(),
            clock.clone(),
        )?;
        Ok(Gateway {
            public: config.server.public_url.clone(),
            apple: Arc::new(apple),
            session_cookie: SessionCookie::new(&config.session),
            login: LoginCookie::new(&config.session),
            revocations,
            policy: Policy::new(&config.policy),
            routes: Routes::new(&config.routes),
            clock,
            max_callback_body: config.server.max_callback_body,
            bearer: BearerCache::with_byte_budget(crate::apple::bearer::DEFAULT_BYTE_BUDGET),
            bearer_enabled: config.routes.iter().any(|r| r.auth == AuthMode::Bearer),
            trusted_proxies: TrustedProxies::new(&config.server.trusted_proxies),
            limits: rate_limit::SignInLimits::new(&config.rate_limit),
            own_cookies: OwnCookies::new(&config.session.cookie_name),
            max_headers: config.server.max_headers,
            sessions: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(3600))
                .build_with_hasher(ahash::RandomState::new()),
            access_log: config.log.access,
            next_request_id: AtomicU64::new(rand::random::<u32>() as u64 * 1_000_000),
        })
    }

    /// The session of this request, if it carries a valid, unrevoked one.
    /// `cookie_headers` are the request's `Cookie` header values.
    pub fn authenticate<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Arc<Identity>, SessionError> {
        let value = find_only_cookie(cookie_headers, self.session_cookie.name())?
            .ok_or(SessionError::Missing)?;
        let now = self.clock.now();
        let id = match self.sessions.get(value) {
            Some(id) => id,
            None => {
                let id = Arc::new(Identity::new(self.session_cookie.open(value, now)?));
                self.sessions.insert(Arc::from(value), id.clone());
                id
            }
        };
        if now >= id.session.expires_at {
            return Err(SessionError::Expired);
        }
        if self.revocations.is_revoked(&id.session) {
            return Err(SessionError::Revoked);
        }
        Ok(id)
    }

    /// Who makes this request: from `Authorization: Bearer <Apple
    /// id_token>` when `bearer_ok` and the header is present, else from the
    /// session cookie.
    pub async fn identify(
        &self,
        down: &Downstream,
        bearer_ok: bool,
    ) -> Result<Arc<Identity>, NoIdentity> {
        let bearer = match bearer_ok {
            true => bearer_token(down.req_header())?,
            false => None,
        };
        let Some(token) = bearer else {
            return self
                .authenticate(endpoints::cookie_headers(down))
                .map_err(|e| match e {
                    SessionError::Duplicate => {
                        NoIdentity::Ambiguous("more than one session cookie")
                    }
                    e => NoIdentity::Session(e),
                });
        };
        let now = self.clock.now();
        let claims = self
            .bearer
            .verify(token, now, self.apple.leeway(), || {
                self.apple.verify_bearer_token(token)
            })
            .await
            .map_err(NoIdentity::Token)?;
        let s = Session {
            id: String::new(),
            sub: claims.sub.clone(),
            email: claims.email.clone(),
            email_verified: claims.email_verified.unwrap_or(false),
            is_private_email: claims.is_private_email.unwrap_or(false),
            name: None,
            issued_at: claims.iat,
            expires_at: claims.exp,
        };
        if self.revocations.is_revoked(&s) {
            return Err(NoIdentity::Session(SessionError::Revoked));
        }
        Ok(Arc::new(Identity::new(s)))
    }

    /// Decides a non-endpoint request on its canonical `target`: `None`
    /// to forward it, or the response that answers it.
    async fn admit(
        &self,
        down: &Downstream,
        ctx: &mut Ctx,
        target: &Target<'_>,
    ) -> Option<Response> {
        let req = down.req_header();
        let Some(route) = self.routes.find(&target.host, &target.path) else {
            ctx.outcome = Outcome::NoRoute;
            let browser = is_browser_navigation(req);
            return Some(if browser {
                Failure::NotFound.page("/")
            } else {
                Failure::NotFound.json()
            });
        };
        ctx.route = Some(route.index);
        if target.path.encoded_slash && route.encoded_slashes == EncodedSlashes::Reject {
            ctx.outcome = Outcome::BadRequest;
            return Some(Failure::BadRequest(PathRefused::EncodedSlash.reason()).json());
        }
        let auth = route.auth;
        if auth == AuthMode::Public {
            ctx.outcome = Outcome::Public;
            return None;
        }
        let browser = auth == AuthMode::Required && is_browser_navigation(req);
        match self.identify(down, auth == AuthMode::Bearer).await {
            Ok(id) => match self.policy.check(&id.session) {
                Ok(()) => {
                    ctx.outcome = Outcome::Authenticated;
                    ctx.identity = Some(id);
                    None
                }
                Err(denied) => {
                    ctx.outcome = Outcome::Forbidden;
                    let f = Failure::Denied(denied);
                    f.log(ctx.id);
                    Some(if browser { f.page("/") } else { f.json() })
                }
            },
            Err(NoIdentity::Ambiguous(why)) => {
                ctx.outcome = Outcome::BadRequest;
                let f = Failure::BadRequest(why);
                f.log(ctx.id);
                Some(if browser { f.page("/") } else { f.json() })
            }
            Err(e) if browser => {
                ctx.outcome = Outcome::SignInRedirect;
                // Back to the canonical path: what was decided on is what
                // the user returns to.
                let path = match req.uri.query() {
                    Some(q) => format!("{}?{q}", target.path.path),
                    None => target.path.path.to_string(),
                };
                let resp = Response::redirect(302, endpoints::start_url(self, &path));
                // A cookie that does not open is dead weight on every request.
                Some(match e {
                    NoIdentity::Session(SessionError::Missing) => resp,
                    _ => resp.cookie(self.session_cookie.clear_cookie()),
                })
            }
            Err(e) => {
                ctx.outcome = Outcome::Unauthenticated;
                Some(e.response())
            }
        }
    }

    /// The 429 for a sign-in request over its limit, if it is.
    fn limit_sign_in(&self, down: &Downstream, endpoint: endpoints::Endpoint) -> Option<Response> {
        use endpoints::Endpoint::{Callback, Start};
        if !matches!(endpoint, Start | Callback) {
            return None;
        }
        let peer = down
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())?;
        let client = self
            .trusted_proxies
            .client(peer, &down.req_header().headers);
        if self.limits.admit_sign_in(client) {
            return None;
        }
        tracing::warn!(client = %client, endpoint = ?endpoint, "sign-in rate limit reached");
        Some(Failure::RateLimited(rate_limit::RETRY_AFTER).page("/"))
    }
}

/// Why a request has no identity.
#[derive(Debug)]
pub enum NoIdentity {
    /// No usable session cookie.
    Session(SessionError),
    /// A bearer token that did not verify.
    Token(AppleError),
    /// Credentials that could be read two ways (two `Authorization`
    /// headers, two session cookies): refused, not guessed.
    Ambiguous(&'static str),
}

impl NoIdentity {
    /// The 401 for an API client (RFC 6750 §3 for bearer tokens).
    pub fn response(&self) -> Response {
        let challenge = match self {
            NoIdentity::Token(_) => "Bearer realm=\"applegate\", error=\"invalid_token\"",
            NoIdentity::Session(_) => "Bearer realm=\"applegate\"",
            NoIdentity::Ambiguous(why) => return Failure::BadRequest(why).json(),
        };
        Response::json(
            401,
            &json!({"error": "unauthorized", "message": "sign in required"}),
        )
        .header("WWW-Authenticate", challenge)
    }
}

/// The token of an `Authorization: Bearer` header. Two `Authorization`
/// headers are refused: one would be verified and both forwarded.
fn bearer_token(req: &RequestHeader) -> Result<Option<&str>, NoIdentity> {
    let mut all = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return match req.headers.contains_key(http::header::AUTHORIZATION) {
            true => Err(NoIdentity::Ambiguous("more than one Authorization header")),
            false => Ok(None),
        };
    };
    let token = v.to_str().ok().and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    });
    Ok(token)
}

/// Whether a request is a top-level browser navigation (worth a redirect to
/// Apple's page) rather than an API or XHR call (which gets 401).
pub fn is_browser_navigation(req: &RequestHeader) -> bool {
    let h = &req.headers;
    let method_ok = req.method == http::Method::GET || req.method == http::Method::HEAD;
    let xhr = h.contains_key("x-requested-with");
    let navigate = h
        .get("sec-fetch-mode")
        .is_none_or(|m| m.as_bytes().eq_ignore_ascii_case(b"navigate"));
    let html = h.get_all(http::header::ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"text/html"))
    });
    method_ok && !xhr && navigate && html
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new(self.next_request_id.fetch_add(1, Ordering::Relaxed))
    }

    /// In this phase the gateway removes client-sent identity headers,
    /// answers its own endpoints, and admits or refuses the request.
    async fn request_filter(&self, down: &mut Downstream, ctx: &mut Ctx) -> pingora::Result<bool> {
        // The head is complete and what is written now is ours.
        if let Some(guard) = down.stream().and_then(crate::edge::HeadGuard::of) {
            guard.reached_proxy();
        }
        // The wait for the next request on this connection is bounded by
        // the head guard (`server.keepalive_timeout`), not here: pingora's
        // keep-alive timeout would start a timer for every read.
        // Pipelined requests are answered in order rather than dropped.
        down.set_pipelining_enabled(true);
        if down.req_header().headers.len() > self.max_headers {
            ctx.outcome = Outcome::BadRequest;
            let f = Failure::HeadTooLarge;
            f.log(ctx.id);
            respond::send(down, f.json().header("Connection", "close")).await?;
            return Ok(true);
        }
        identity::strip(down.req_header_mut());
        ctx.peer = down.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let target = match Target::of(down.req_header()) {
            Ok(t) => t,
            Err(f) => {
                ctx.outcome = Outcome::BadRequest;
                f.log(ctx.id);
                respond::send(down, f.json()).await?;
                return Ok(true);
            }
        };
        ctx.rewrite = target.rewrite(down.req_header());
        if let Some(endpoint) = endpoints::Endpoint::of(&target.path.path) {
            drop(target);
            ctx.outcome = Outcome::Endpoint;
            let resp = match self.limit_sign_in(down, endpoint) {
                Some(refused) => refused,
                None => endpoints::serve(self, down, ctx, endpoint).await,
            };
            respond::send(down, resp).await?;
            return Ok(true);
        }
        match self.admit(down, ctx, &target).await {
            None => Ok(false),
            Some(resp) => {
                drop(target);
                respond::send(down, resp).await?;
                Ok(true)
            }
        }
    }

    /// In this phase the gateway hands pingora the matched route's peer,
    /// built once at start.
    async fn upstream_peer(
        &self,
        _down: &mut Downstream,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .and_then(|i| self.routes.get(i))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        Ok(Box::new(route.peer.clone()))
    }

    /// In this phase the gateway builds the request the upstream gets:
    /// canonical target and host, forwarding headers, its own cookies
    /// removed, identity headers set ([`upstream`]).
    async fn upstream_request_filter(
        &self,
        _down: &mut Downstream,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        upstream::prepare(req, ctx, &self.trusted_proxies, |n| {
            self.own_cookies.is_ours(n)
        })
    }

    /// In this phase the gateway removes any `Set-Cookie` by which the
    /// upstream would set the gateway's own cookies (a compromised or
    /// careless app could otherwise plant a session or a login state).
    async fn response_filter(
        &self,
        _down: &mut Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let ours = |v: &http::HeaderValue| {
            let name = v
                .as_bytes()
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default();
            std::str::from_utf8(name).is_ok_and(|n| self.own_cookies.is_ours(n.trim()))
        };
        if resp
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .any(ours)
        {
            let kept: Vec<http::HeaderValue> = resp
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .filter(|v| !ours(v))
                .cloned()
                .collect();
            resp.remove_header(&http::header::SET_COOKIE);
            for v in kept {
                resp.append_header(http::header::SET_COOKIE, v)?;
            }
            tracing::warn!(
                request_id = ctx.id,
                route = ctx.route,
                "removed a Set-Cookie for the gateway's own cookie from the upstream's response"
            );
        }
        Ok(())
    }

    /// In this phase (a request that failed before or while proxying) the
    /// gateway answers with its own page rather than pingora's bare one.
    async fn fail_to_proxy(&self, down: &mut Downstream, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => match e.etype() {
                    // The connection is gone: nothing to answer.
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        if code > 0 && down.response_written().is_none() {
            let resp = Failure::Proxy(code).json();
            if let Err(e) = respond::send(down, resp).await {
                tracing::debug!(request_id = ctx.id, error = %e, "cannot send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// In this phase the gateway writes exactly one access event.
    async fn logging(&self, down: &mut Downstream, e: Option<&Error>, ctx: &mut Ctx) {
        if !self.access_log {
            return;
        }
        let req = down.req_header();
        let status = down.response_written().map_or(0, |r| r.status.as_u16());
        tracing::info!(
            target: "applegate::access",
            request_id = ctx.id,
            method = %req.method,
            path = req.uri.path(),
            status,
            outcome = ctx.outcome.as_str(),
            route = ctx.route,
            duration_us = ctx.started.elapsed().as_micros() as u64,
            error = e.map(|e| e.etype().as_str()),
        );
    }

    /// The request summary pingora puts in its error logs: method and path
    /// only, because a query string can carry codes or tokens.
    fn request_summary(&self, down: &Downstream, _ctx: &Ctx) -> String {
        let req = down.req_header();
        format!("{} {}", req.method, req.uri.path())
    }
}
