//! The gateway's state and its decision on a request: authenticate (a
//! session cookie), identify (or a bearer token), admit (route and policy).
//!
//! Everything here is built once from the config and shared read-only by
//! all requests; the only mutable state is inside the caches and the
//! revocation set, each of which says why it exists.

use std::sync::Arc;

use pingora::http::RequestHeader;
use pingora::proxy::Session as Downstream;

use super::ctx::{Ctx, Outcome};
use super::error::Failure;
use super::forwarded::TrustedProxies;
use super::rate_limit::SignInLimits;
use super::respond::Response;
use super::revalidate::revalidate;
use super::route::Routes;
use super::target::Target;
use crate::apple::{self, BearerCache};
use crate::assertion::Assertions;
use crate::canonical::PathRefused;
use crate::clock::SharedClock;
use crate::config::{AuthMode, Config, EncodedSlashes, PublicUrl};
use crate::identity::{Caller, Identity};
use crate::metrics::Metrics;
use crate::policy::{Denied, Policy};
use crate::session::{
    self, find_only_cookie, Checks, DisabledEmails, Due, LoginCookie, Names, OwnCookies,
    RefreshTokens, Revocations, Sealer, SessionCookie, SessionError,
};
use crate::state::{StoreError, SubRevocation};

/// How long an id_token lives (Apple's, 24 h): a bearer token issued just
/// before a user's revocation stays void this long at least.
const ID_TOKEN_LIFETIME: u64 = 86_400;

/// Everything the proxy needs, built once from the config and shared
/// read-only by all requests.
pub struct Gateway {
    pub public: PublicUrl,
    /// Other hosts `rd` may name (`session.redirect_hosts`).
    pub redirect_hosts: Vec<crate::config::RedirectHost>,
    pub apple: Arc<apple::Client>,
    pub session_cookie: SessionCookie,
    pub login: LoginCookie,
    pub revocations: Arc<Revocations>,
    /// Users whose relay email is switched off (Apple's notifications).
    pub disabled_emails: Arc<DisabledEmails>,
    /// Each session's Apple refresh token (re-validation, revoke at Apple).
    pub refresh_tokens: RefreshTokens,
    /// The display name Apple sent once, per user.
    pub names: Names,
    /// Whether sign-out also revokes the session's token at Apple.
    pub revoke_on_sign_out: bool,
    /// `state.fail_closed`: sessions are refused while the revocation
    /// view cannot be trusted (a shared store out of reach).
    pub fail_closed: bool,
    /// Re-validations with Apple in flight or just done (see
    /// [`session::Checks`]).
    pub(super) checks: Checks,
    /// `[policy]`: routes without their own share it (see
    /// [`super::route::Route::policy`]).
    pub policy: Arc<Policy>,
    pub routes: Routes,
    pub clock: SharedClock,
    pub max_callback_body: usize,
    /// Where Apple POSTs server-to-server notifications.
    pub notifications_path: String,
    pub bearer: BearerCache,
    /// The signed identity assertions routes ask for (`assertion = true`).
    pub assertions: Assertions,
    /// Whether any route takes bearer tokens; if none does, no endpoint
    /// accepts one either.
    pub bearer_enabled: bool,
    pub trusted_proxies: TrustedProxies,
    pub limits: SignInLimits,
    /// The names of the gateway's cookies, in every form.
    pub(super) own_cookies: OwnCookies,
    /// Most header fields in one request.
    pub(super) max_headers: usize,
    /// Session cookies already opened (see [`session::Cache`]).
    sessions: session::Cache,
    /// Where access lines go, if the access log is on (set by
    /// [`crate::server`], which starts its writer).
    pub access_log: Option<crate::access_log::AccessLog>,
    /// What `/metrics` shows; the request path holds pre-resolved handles.
    pub metrics: Arc<Metrics>,
}

impl Gateway {
    /// Builds the gateway from a validated config.
    pub fn new(
        config: &Config,
        clock: SharedClock,
        revocations: Arc<Revocations>,
        disabled_emails: Arc<DisabledEmails>,
        assertions: Assertions,
    ) -> Result<Self, apple::AppleError> {
        let apple = apple::Client::new(
            &config.apple,
            config.server.public_url.callback_url(),
            clock.clone(),
        )?;
        let policy = Arc::new(Policy::new(&config.policy));
        let outcomes = Outcome::ALL.map(Outcome::as_str);
        let metrics = Arc::new(Metrics::new(config.routes.len(), &outcomes, &apple.calls));
        Ok(Gateway {
            public: config.server.public_url.clone(),
            redirect_hosts: config.session.redirect_hosts.clone(),
            apple: Arc::new(apple),
            session_cookie: SessionCookie::new(&config.session),
            login: LoginCookie::new(&config.session),
            refresh_tokens: RefreshTokens::new(
                revocations.store(),
                Sealer::new(config.session.keys.clone()),
            ),
            names: Names::new(
                revocations.store(),
                Sealer::new(config.session.keys.clone()),
            ),
            revoke_on_sign_out: config.apple.revoke_on_sign_out,
            fail_closed: config.state.fail_closed(),
            revocations,
            disabled_emails,
            checks: Checks::default(),
            routes: Routes::new(&config.routes, &policy),
            policy,
            clock,
            max_callback_body: config.server.max_callback_body,
            notifications_path: config.apple.notifications_path.clone(),
            bearer: BearerCache::with_byte_budget(apple::bearer::DEFAULT_BYTE_BUDGET)
                .counted(metrics.bearer_cache.clone()),
            assertions,
            bearer_enabled: config.routes.iter().any(|r| r.auth == AuthMode::Bearer),
            trusted_proxies: TrustedProxies::new(&config.server.trusted_proxies),
            limits: SignInLimits::new(&config.rate_limit).counted(metrics.rate_limited.clone()),
            own_cookies: OwnCookies::new(&config.session.cookie_name),
            max_headers: config.server.max_headers,
            sessions: session::Cache::default().counted(metrics.session_cache.clone()),
            access_log: None,
            metrics,
        })
    }

    /// The caller of this request, if it carries a valid, unrevoked
    /// session, and what the session is due at `now` (a re-issued cookie,
    /// a check with Apple). `cookie_headers` are the request's `Cookie`
    /// header values. In memory only: what is due is done by
    /// [`Self::identify`].
    pub fn authenticate<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a [u8]>,
        now: u64,
    ) -> Result<(Arc<Caller>, Due), SessionError> {
        let value = find_only_cookie(cookie_headers, self.session_cookie.name())?
            .ok_or(SessionError::Missing)?;
        let caller = self.sessions.open(&self.session_cookie, value, now)?;
        let due = self
            .session_cookie
            .lifetime()
            .check(&caller.identity, now)?;
        if self.revocations.is_revoked(&caller.identity) {
            return Err(SessionError::Revoked);
        }
        // One atomic load, and only when asked for.
        if self.fail_closed && !self.revocations.in_sync() {
            return Err(SessionError::Untrusted);
        }
        Ok((caller, due))
    }

    /// Who makes this request: from `Authorization: Bearer <Apple
    /// id_token>` when `bearer_ok` and the header is present, else from the
    /// session cookie (re-issued or re-validated when due). Fails with
    /// [`Failure::NoSession`], [`Failure::BadToken`], or
    /// [`Failure::BadRequest`] for credentials that could be read two ways.
    pub async fn identify(
        &self,
        down: &Downstream,
        bearer_ok: bool,
    ) -> Result<Identified, Failure> {
        let bearer = match bearer_ok {
            true => bearer_token(down.req_header())?,
            false => None,
        };
        let Some(token) = bearer else {
            let now = self.clock.now();
            let no_session = |e| match e {
                SessionError::Duplicate => Failure::BadRequest("more than one session cookie"),
                e => Failure::NoSession(e),
            };
            let (caller, due) = self
                .authenticate(cookie_headers(down), now)
                .map_err(no_session)?;
            let set_cookie = match due {
                Due { check: true, .. } => revalidate(self, &caller, due.reissue, now)
                    .await
                    .map_err(no_session)?,
                Due { reissue: true, .. } => self.session_cookie.renew(&caller.identity, now, None),
                _ => None,
            };
            return Ok(Identified { caller, set_cookie });
        };
        let caller = self
            .bearer
            .verify(token, self.clock.now(), self.apple.leeway(), || {
                self.apple.verify_bearer_token(token)
            })
            .await
            .map_err(Failure::BadToken)?;
        if self.revocations.is_revoked(&caller.identity) {
            return Err(Failure::NoSession(SessionError::Revoked));
        }
        if self.fail_closed && !self.revocations.in_sync() {
            return Err(Failure::NoSession(SessionError::Untrusted));
        }
        Ok(Identified {
            caller,
            set_cookie: None,
        })
    }

    /// Who makes this request, if `policy` (the route's, else the
    /// global one) lets them in: [`Self::identify`] then the policy, as
    /// every path decides.
    pub async fn identify_admitted(
        &self,
        down: &Downstream,
        bearer_ok: bool,
        policy: &Policy,
    ) -> Result<Identified, Failure> {
        let identified = self.identify(down, bearer_ok).await?;
        policy.check(&identified.caller.identity)?;
        Ok(identified)
    }

    /// Whether some policy admits `identity`: `[policy]` (routes without
    /// their own, and forward auth told no route) or any route's own. What
    /// sign-in asks: a user whom only `/support` admits must still be able
    /// to sign in, and each request is then decided on its route's policy.
    /// A user no policy admits gets no session at all. On refusal, the
    /// global policy's reason.
    pub fn admitted_anywhere(&self, identity: &Identity) -> Result<(), Denied> {
        let refused = match self.policy.check(identity) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match self
            .routes
            .own_policies(&self.policy)
            .any(|p| p.check(identity).is_ok())
        {
            true => Ok(()),
            false => Err(refused),
        }
    }

    /// Decides a non-endpoint request on its canonical `target`: `None`
    /// to forward it, or the response that answers it.
    pub async fn admit(
        &self,
        down: &Downstream,
        ctx: &mut Ctx,
        target: &Target<'_>,
    ) -> Option<Response> {
        let req = down.req_header();
        let Some(route) = self.routes.find(&target.host, &target.path) else {
            ctx.outcome = Outcome::NoRoute;
            return Some(Failure::NotFound.respond(is_browser_navigation(req), "/"));
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
        let bearer_ok = auth == AuthMode::Bearer;
        let failure = match self.identify_admitted(down, bearer_ok, &route.policy).await {
            Ok(Identified { caller, set_cookie }) => {
                ctx.outcome = Outcome::Authenticated;
                ctx.email_disabled = self.disabled_emails.is_disabled(&caller.identity.sub);
                ctx.assertion = self.assertions.for_route(route.index, &caller);
                ctx.caller = Some(caller);
                ctx.set_cookie = set_cookie;
                return None;
            }
            Err(f) => f,
        };
        ctx.outcome = match failure {
            Failure::Denied(_) => Outcome::Forbidden,
            Failure::BadRequest(_) => Outcome::BadRequest,
            _ => Outcome::Unauthenticated,
        };
        if browser && failure.needs_sign_in() {
            ctx.outcome = Outcome::SignInRedirect;
            // Back to the canonical path: what was decided on is what the
            // user returns to.
            let path = match req.uri.query() {
                Some(q) => format!("{}?{q}", target.path.path),
                None => target.path.path.to_string(),
            };
            let resp = Response::redirect(302, self.start_url(&path));
            // A cookie that does not open is dead weight on every request.
            return Some(match failure {
                Failure::NoSession(SessionError::Missing) => resp,
                _ => resp.cookie(self.session_cookie.clear_cookie()),
            });
        }
        Some(failure.answer(browser, "/"))
    }

    /// Ends a user's authorization here: every session and bearer token of
    /// `sub` issued until now is void (kept so until the longest of them
    /// would have expired anyway), and the name Apple sent is forgotten.
    /// Returns once the store has both. What Apple's `consent-revoked` and
    /// `account-delete`, and a revoke at Apple, do.
    pub async fn end_user(&self, sub: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let longest = self
            .session_cookie
            .lifetime()
            .absolute()
            .max(ID_TOKEN_LIFETIME);
        let r = SubRevocation {
            at: now,
            until: now + longest + self.apple.leeway(),
        };
        self.revocations.revoke_sub(sub, r).await?;
        self.names.forget(sub).await
    }

    /// The sign-in start URL returning to `return_to`.
    pub fn start_url(&self, return_to: &str) -> String {
        let rd: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        format!("{}/oauth2/start?rd={rd}", self.public.origin)
    }
}

/// Who makes a request, and the session cookie to send back with the
/// answer when the session was due a new one (sliding, re-validation).
pub struct Identified {
    pub caller: Arc<Caller>,
    pub set_cookie: Option<String>,
}

/// The request's `Cookie` header values.
pub fn cookie_headers(down: &Downstream) -> impl Iterator<Item = &[u8]> {
    down.req_header()
        .headers
        .get_all(http::header::COOKIE)
        .into_iter()
        .map(|v| v.as_bytes())
}

/// The token of an `Authorization: Bearer` header. Two `Authorization`
/// headers are refused: one would be verified and both forwarded.
fn bearer_token(req: &RequestHeader) -> Result<Option<&str>, Failure> {
    let mut all = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return match req.headers.contains_key(http::header::AUTHORIZATION) {
            true => Err(Failure::BadRequest("more than one Authorization header")),
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
    let method_ok = req.method == http::Method::GET || req.method == http::Method::HEAD;
    method_ok && wants_page(req)
}

/// Whether a browser asks for a page (a navigation or a form post), not
/// an API or XHR call (which gets JSON).
pub fn wants_page(req: &RequestHeader) -> bool {
    let h = &req.headers;
    let xhr = h.contains_key("x-requested-with");
    let navigate = h
        .get("sec-fetch-mode")
        .is_none_or(|m| m.as_bytes().eq_ignore_ascii_case(b"navigate"));
    let html = h.get_all(http::header::ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"text/html"))
    });
    !xhr && navigate && html
}
