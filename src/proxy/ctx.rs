//! Per-request state, carried through pingora's phases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request_id::RequestId;
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
    /// Every outcome, in the order of their indexes (metrics' table).
    pub const ALL: [Outcome; 9] = [
        Outcome::Pending,
        Outcome::Endpoint,
        Outcome::Public,
        Outcome::Authenticated,
        Outcome::SignInRedirect,
        Outcome::Unauthenticated,
        Outcome::Forbidden,
        Outcome::NoRoute,
        Outcome::BadRequest,
    ];

    /// The position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

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
    /// The request's id (see [`RequestId`]): generated here, replaced by a
    /// trusted proxy's in `request_filter` ([`Self::adopt_id`]).
    pub request_id: RequestId,
    pub started: Instant,
    /// When the request went upstream, and how long the upstream took to
    /// its response head (the gateway's own time is the rest).
    pub upstream_started: Option<Instant>,
    pub upstream_time: Option<Duration>,
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
    /// the request carries its id. Only the id is recorded (never a path,
    /// cookie or token).
    pub span: tracing::Span,
}

impl Ctx {
    /// A fresh context with a generated request id.
    pub fn new() -> Self {
        let request_id = RequestId::generate();
        Ctx {
            span: tracing::info_span!("request", id = %request_id),
            request_id,
            started: Instant::now(),
            upstream_started: None,
            upstream_time: None,
            route: None,
            attempt: Default::default(),
            caller: None,
            email_disabled: false,
            set_cookie: None,
            assertion: None,
            outcome: Outcome::Pending,
            rewrite: Rewrite::default(),
            peer: None,
        }
    }

    /// Takes `id` (a trusted proxy's) as this request's id, before any
    /// line of the request was logged: a new span, since a recorded field
    /// cannot be replaced, only appended to.
    pub fn adopt_id(&mut self, id: RequestId) {
        self.span = tracing::info_span!("request", id = %id);
        self.request_id = id;
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metrics' table is indexed by position in `ALL`: a variant
    /// added to the enum but not to `ALL` (or out of order) fails here.
    #[test]
    fn every_outcome_is_at_its_index() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i, "{}", o.as_str());
        }
        assert_eq!(Outcome::BadRequest.index(), Outcome::ALL.len() - 1);
    }
}
