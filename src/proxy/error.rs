//! Why a request is refused, and the one place that turns it into a
//! response: the status, a page for a browser or JSON for an API client.
//!
//! Clients get a short, generic message; the log gets the cause (never a
//! secret, code, token or cookie). Operator mistakes (`invalid_client`) are
//! logged at error level with the likely causes.

use std::fmt;

use serde_json::json;

use super::respond::{escape, Response};
use crate::apple::AppleError;
use crate::policy::Denied;
use crate::session::{LoginError, SessionError};
use crate::state::StoreError;

/// Why a gateway endpoint or check refused a request.
#[derive(Debug)]
pub enum Failure {
    /// The login round trip did not check out.
    Login(LoginError),
    /// Apple refused, could not be reached, or sent a bad token.
    Apple(AppleError),
    /// The policy refused the user.
    Denied(Denied),
    /// No identity: no usable session cookie (or the bearer token's
    /// subject was revoked).
    NoSession(SessionError),
    /// A bearer token that did not verify.
    BadToken(AppleError),
    /// A server-to-server notification that did not verify (forged, not
    /// for us, expired, or not a notification).
    BadNotification(AppleError),
    /// A state-changing request from another site (see the endpoints'
    /// origin check): refused, nothing changed.
    CrossSite,
    /// The request was malformed; the text says how.
    BadRequest(&'static str),
    /// The body exceeded its cap.
    TooLarge,
    /// Wrong method; the value is the `Allow` header.
    MethodNotAllowed(&'static str),
    /// No such endpoint or route.
    NotFound,
    /// More header fields than `server.max_headers`.
    HeadTooLarge,
    /// Too many sign-in requests; the value is `Retry-After` in seconds.
    RateLimited(u64),
    /// Proxying failed with this status (502 upstream, 400, 500).
    Proxy(u16),
    /// The state store could not save a change (a sign-out).
    State(StoreError),
}

impl Failure {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Failure::Login(_) | Failure::BadRequest(_) | Failure::BadNotification(_) => 400,
            Failure::Apple(AppleError::InvalidGrant { .. }) => 400,
            Failure::Apple(AppleError::InvalidToken(_) | AppleError::UnknownKey(_)) => 401,
            Failure::Apple(_) => 502,
            Failure::Denied(_) | Failure::CrossSite => 403,
            Failure::NoSession(_) | Failure::BadToken(_) => 401,
            Failure::TooLarge => 413,
            Failure::MethodNotAllowed(_) => 405,
            Failure::NotFound => 404,
            Failure::RateLimited(_) => 429,
            Failure::HeadTooLarge => 431,
            Failure::Proxy(code) => *code,
            Failure::State(_) => 503,
        }
    }

    /// Logs the cause, with its whole chain, at the level it deserves.
    /// The request's span carries the request id.
    pub fn log(&self) {
        match self {
            Failure::Apple(e @ AppleError::InvalidClient { .. }) => {
                tracing::error!(error = %Chain(e), "sign-in failed: Apple rejected the gateway's credentials");
            }
            Failure::Apple(
                e @ (AppleError::Unreachable { .. }
                | AppleError::Status { .. }
                | AppleError::BadResponse { .. }
                | AppleError::NoKeys { .. }
                | AppleError::Signing(_)),
            ) => {
                tracing::error!(error = %Chain(e), "sign-in failed");
            }
            Failure::Apple(e) => tracing::warn!(error = %Chain(e), "sign-in refused"),
            Failure::Login(e) => tracing::warn!(error = %Chain(e), "sign-in refused"),
            Failure::BadNotification(e) => {
                tracing::warn!(error = %Chain(e), "notification refused")
            }
            Failure::Denied(e) => tracing::info!(reason = %e, "access denied by policy"),
            Failure::State(e) => tracing::error!(error = %Chain(e), "a change could not be saved"),
            other => tracing::debug!(error = %Chain(other), "request refused"),
        }
    }

    /// Whether a browser should be sent to sign in rather than shown this.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, Failure::NoSession(_) | Failure::BadToken(_))
    }

    /// The answer: a page for a browser (`start_again` is where signing in
    /// again begins), JSON for an API client.
    pub fn respond(&self, browser: bool, start_again: &str) -> Response {
        match browser {
            true => self.page(start_again),
            false => self.json(),
        }
    }

    /// [`Self::log`], then [`Self::respond`].
    pub fn answer(&self, browser: bool, start_again: &str) -> Response {
        self.log();
        self.respond(browser, start_again)
    }

    /// A page for a browser, with a way to start again where that helps.
    pub fn page(&self, start_again: &str) -> Response {
        let again = format!(
            "<p><a class=\"button\" href=\"{}\">Sign in again</a></p>",
            escape(start_again)
        );
        let (title, text, retry) = match self {
            Failure::Login(_) | Failure::Apple(AppleError::InvalidGrant { .. }) => (
                "Sign-in expired",
                "This sign-in could not be completed: it took too long, was already used, or was started in another browser.",
                true,
            ),
            Failure::Apple(AppleError::InvalidToken(_) | AppleError::UnknownKey(_)) => (
                "Sign-in refused",
                "Apple's answer could not be verified, so no session was created.",
                true,
            ),
            Failure::Apple(AppleError::InvalidClient { .. }) => (
                "Sign in with Apple is misconfigured",
                "Apple did not accept this site's credentials. The administrator will find the details in the gateway's log.",
                false,
            ),
            Failure::Apple(_) => (
                "Apple is not answering",
                "Sign in with Apple could not be reached. Please try again in a moment.",
                true,
            ),
            Failure::NoSession(_) | Failure::BadToken(_) => (
                "Sign-in required",
                "Please sign in to continue.",
                true,
            ),
            Failure::Denied(_) => (
                "Access denied",
                "Your Apple ID is not allowed to use this site.",
                false,
            ),
            Failure::BadRequest(_) | Failure::BadNotification(_) => ("Bad request", "The request could not be understood.", false),
            Failure::CrossSite => ("Refused", "Another site sent this request, so nothing was changed.", false),
            Failure::TooLarge => ("Request too large", "The request was larger than allowed.", false),
            Failure::MethodNotAllowed(_) => ("Method not allowed", "This address does not take that method.", false),
            Failure::NotFound => ("Not found", "There is nothing here.", false),
            Failure::HeadTooLarge => ("Request too large", "The request carried too many header fields.", false),
            Failure::RateLimited(_) => ("Too many requests", "Too many sign-in attempts. Please wait a moment and try again.", false),
            Failure::Proxy(502) => ("Bad gateway", "The application behind this gateway did not answer.", false),
            Failure::Proxy(_) => ("Request failed", "The request could not be completed.", false),
            Failure::State(_) => ("Not saved", "The gateway could not save this change. Please try again in a moment.", false),
        };
        let body = format!(
            "<p>{}</p>{}",
            escape(text),
            if retry { again.as_str() } else { "" }
        );
        self.finish(Response::page(self.status(), title, &body))
    }

    /// A JSON answer for an API client.
    pub fn json(&self) -> Response {
        let (error, message) = match self {
            Failure::Denied(_) => ("forbidden", "access denied by policy"),
            Failure::CrossSite => ("forbidden", "cross-site request refused"),
            Failure::NotFound => ("not_found", "no such route"),
            Failure::TooLarge => ("too_large", "request body too large"),
            Failure::MethodNotAllowed(_) => ("method_not_allowed", "method not allowed"),
            Failure::BadRequest(m) => ("bad_request", *m),
            Failure::BadNotification(_) => ("bad_request", "not a verified notification"),
            Failure::RateLimited(_) => ("rate_limited", "too many sign-in requests"),
            Failure::HeadTooLarge => ("head_too_large", "too many header fields"),
            Failure::Proxy(502) => ("bad_gateway", "the upstream did not answer"),
            Failure::Proxy(_) => ("proxy_error", "the request could not be completed"),
            Failure::State(_) => ("unavailable", "the change could not be saved; try again"),
            _ => ("unauthorized", "sign in required"),
        };
        self.finish(Response::json(
            self.status(),
            &json!({"error": error, "message": message}),
        ))
    }

    fn finish(&self, r: Response) -> Response {
        // Every refusal shows the request id, so a user can quote it.
        let r = r.quoting_id();
        match self {
            Failure::MethodNotAllowed(allow) => r.header("Allow", *allow),
            Failure::RateLimited(secs) => r.header("Retry-After", secs.to_string()),
            // RFC 6750 §3: the challenge; `invalid_token` for a bad token.
            Failure::NoSession(_) => r.header("WWW-Authenticate", "Bearer realm=\"applegate\""),
            Failure::BadToken(_) => r.header(
                "WWW-Authenticate",
                "Bearer realm=\"applegate\", error=\"invalid_token\"",
            ),
            _ => r,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What was refused; the why is the source.
        match self {
            Failure::Login(_) => f.write_str("sign-in round trip refused"),
            Failure::Apple(_) => f.write_str("sign-in with Apple failed"),
            Failure::Denied(_) => f.write_str("access denied by policy"),
            Failure::NoSession(_) => f.write_str("no identity"),
            Failure::BadToken(_) => f.write_str("bearer token refused"),
            Failure::BadRequest(why) => write!(f, "bad request: {why}"),
            Failure::CrossSite => f.write_str("cross-site request refused"),
            Failure::BadNotification(_) => f.write_str("notification refused"),
            Failure::TooLarge => f.write_str("body too large"),
            Failure::MethodNotAllowed(allow) => write!(f, "method not allowed (allow: {allow})"),
            Failure::NotFound => f.write_str("not found"),
            Failure::HeadTooLarge => f.write_str("too many header fields"),
            Failure::RateLimited(_) => f.write_str("rate limited"),
            Failure::Proxy(code) => write!(f, "proxying failed with status {code}"),
            Failure::State(_) => f.write_str("a change could not be saved"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Login(e) => Some(e),
            Failure::Apple(e) | Failure::BadToken(e) | Failure::BadNotification(e) => Some(e),
            Failure::Denied(e) => Some(e),
            Failure::NoSession(e) => Some(e),
            Failure::State(e) => Some(e),
            _ => None,
        }
    }
}

/// An error and its causes, each after a `: `: what the log gets, since
/// an error's own message leaves its cause to [`std::error::Error::source`].
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl From<LoginError> for Failure {
    fn from(e: LoginError) -> Self {
        Failure::Login(e)
    }
}

impl From<AppleError> for Failure {
    fn from(e: AppleError) -> Self {
        Failure::Apple(e)
    }
}

impl From<Denied> for Failure {
    fn from(e: Denied) -> Self {
        Failure::Denied(e)
    }
}
