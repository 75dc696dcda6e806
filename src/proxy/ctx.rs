//! Per-request state, carried through pingora's phases.

use std::time::Instant;

use std::sync::Arc;

use super::target::Rewrite;
use crate::identity::Caller;

/// What the gateway decided, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet (an error before any decision).
    Pending,
    /// Answered by a gateway endpoint (`/oauth2/...`).
    Endpoint,
    /// Forwarded on a public route.
    Public,
    /// Forwarded with a valid session.
    Authenticated,
    /// Browser sent to sign in.
    SignInRedirect,
    /// Refused: no valid session (401).
    Unauthenticated,
    /// Refused by policy (403).
    Forbidden,
    /// No route for this host and path.
    NoRoute,
    /// Refused before any decision: a target, host or credentials that
    /// could be read two ways (400).
    BadRequest,
}

impl Outcome {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Endpoint => "endpoint",
            Outcome::Public => "public",
            Outcome::Authenticated => "authenticated",
            Outcome::SignInRedirect => "sign_in_redirect",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Forbidden => "forbidden",
            Outcome::NoRoute => "no_route",
            Outcome::BadRequest => "bad_request",
        }
    }
}

/// The request context.
pub struct Ctx {
    /// Request id for logs.
    pub id: u64,
    pub started: Instant,
    /// Index into the routes of the matched route.
    pub route: Option<usize>,
    /// The backends of the route's pool this request tried.
    pub attempt: crate::pool::Attempt,
    /// Who makes an authenticated request, for header injection.
    pub caller: Option<Arc<Caller>>,
    /// Whether the caller's relay email is switched off (looked up per
    /// request: the caller's headers are cached, this can change).
    pub email_disabled: bool,
    /// The renewed session cookie for the response, when the session was
    /// due one (see [`super::gateway::Identified`]).
    pub set_cookie: Option<String>,
    /// The signed identity assertion for the upstream, when the route
    /// asks for one (cached per caller and route, see `crate::assertion`).
    pub assertion: Option<http::HeaderValue>,
    pub outcome: Outcome,
    /// What makes the upstream request carry the canonical target.
    pub rewrite: Rewrite,
    /// The peer's address (the client, or a trusted proxy in front).
    pub peer: Option<std::net::IpAddr>,
    /// The request's span: every phase runs in it, so every log line of
    /// the request carries its id. Only the number is recorded (no
    /// formatting of our own, and never a path, cookie or token).
    pub span: tracing::Span,
}

impl Ctx {
    /// A fresh context with request id `id`.
    pub fn new(id: u64) -> Self {
        Ctx {
            id,
            started: Instant::now(),
            route: None,
            attempt: Default::default(),
            caller: None,
            email_disabled: false,
            set_cookie: None,
            assertion: None,
            outcome: Outcome::Pending,
            rewrite: Rewrite::default(),
            peer: None,
            span: tracing::info_span!("request", id),
        }
    }
}
