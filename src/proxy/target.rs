//! The request's canonical target, decided once per request.
//!
//! Step 0 of every request: before routing, endpoints or policy look at
//! it, the target and host are parsed into canonical values
//! ([`crate::canonical`]). Routing and policy decide on them, and
//! [`Rewrite`] makes the upstream request carry exactly them.

use std::borrow::Cow;

use pingora::http::RequestHeader;

use super::error::Failure;
use crate::canonical::{self, CanonicalHost, CanonicalPath};

/// The canonical path and host of one request, borrowed from its header
/// where nothing had to change.
pub struct Target<'a> {
    pub path: CanonicalPath<'a>,
    pub host: CanonicalHost<'a>,
    /// The target was absolute-form (`GET http://host/x`), or an h2 URI
    /// with its authority: the upstream gets origin-form.
    absolute: bool,
}

impl<'a> Target<'a> {
    /// Parses `req`'s target and host; a refusal is a 400.
    pub fn of(req: &'a RequestHeader) -> Result<Self, Failure> {
        if !req.raw_path_is_utf8() {
            return Err(Failure::BadRequest("request target is not UTF-8"));
        }
        let hosts = req
            .headers
            .get_all(http::header::HOST)
            .iter()
            .map(|v| v.as_bytes());
        // HTTP/2 names the host in `:authority` (the URI's authority here)
        // and its target is always origin-form: the same decision as an
        // HTTP/1 absolute-form target with `Host`.
        let h2 = req.version == http::Version::HTTP_2;
        let host = if h2 {
            let authority = req.uri.authority().map(|a| a.as_str().as_bytes());
            canonical::host::canonicalize_h2(hosts, authority)
        } else {
            canonical::host::canonicalize(hosts, req.raw_path())
        }
        .map_err(|e| Failure::BadRequest(e.reason()))?;
        let path = canonical::path::canonicalize(req.uri.path())
            .map_err(|e| Failure::BadRequest(e.reason()))?;
        // An h2 URI carries the authority: the upstream gets origin-form
        // and the decided host in `Host` only, so no second copy of the
        // host (the client's `:authority`) travels on.
        let absolute =
            req.raw_path().first() != Some(&b'/') || (h2 && req.uri.authority().is_some());
        Ok(Target {
            path,
            host,
            absolute,
        })
    }

    /// What must change on the way upstream, owned for the request context.
    pub fn rewrite(&self, req: &RequestHeader) -> Rewrite {
        let path = match (&self.path.path, self.absolute) {
            (Cow::Borrowed(_), false) => None,
            (p, _) => Some(match req.uri.query() {
                Some(q) => format!("{p}?{q}"),
                None => p.to_string(),
            }),
        };
        Rewrite {
            target: path,
            host: self.host.rewritten.then(|| self.host.header_value()),
        }
    }
}

/// The changes that make the upstream request carry the canonical target.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// Canonical path and the request's own query, in origin-form.
    pub target: Option<String>,
    /// Canonical `Host` value.
    pub host: Option<String>,
}

impl Rewrite {
    /// Applies the changes to the request sent upstream.
    pub fn apply(&self, req: &mut http::request::Parts) -> pingora::Result<()> {
        let invalid = |what: &'static str| {
            move |e: http::Error| {
                pingora::Error::because(pingora::ErrorType::InvalidHTTPHeader, what, e)
            }
        };
        if let Some(t) = &self.target {
            // Built from a checked path and the query pingora already parsed.
            req.uri = http::Uri::try_from(t.as_str())
                .map_err(|e| invalid("canonical target")(e.into()))?;
        }
        if let Some(h) = &self.host {
            let value = http::HeaderValue::try_from(h.as_str())
                .map_err(|e| invalid("canonical host")(e.into()))?;
            req.headers.insert(http::header::HOST, value);
        }
        Ok(())
    }
}
