//! The request the upstream receives, built in one place.
//!
//! From the client's request the upstream gets: the canonical target and
//! host ([`Rewrite`]), the gateway's forwarding headers
//! ([`forwarded`]), the `Cookie` header without the gateway's own
//! cookies, and the identity headers of an authenticated request (with
//! the signed assertion, on a route that asks for one).
//!
//! Pingora's `RequestHeader` keeps two maps (values, and names in the case
//! the client wrote them) and parses a name on each insert. Building the
//! upstream request inserts a dozen headers, which through that API cost
//! more than everything else the gateway does to a request. So the header
//! is taken apart into `http`'s parts and built in one map, reserved once,
//! with names made at compile time. The one difference on the wire:
//! names reach the upstream in a canonical case (title case for the
//! standard ones, lower case for the rest) instead of the client's. Header
//! names are case-insensitive (RFC 9110 §5.1), HTTP/2 sends them in lower
//! case, and Envoy does the same by default.

use http::request::Parts;
use pingora::http::RequestHeader;

use super::ctx::Ctx;
use super::forwarded::{self, Hop, TrustedProxies};
use crate::{identity, session};

/// Room for what [`prepare`] adds: six forwarding headers, eight identity
/// headers and the assertion, `Host` and `Cookie`.
const ADDED: usize = 18;

/// Turns the request pingora is about to send upstream (a copy of the
/// client's) into the one the upstream must get.
pub fn prepare(
    req: &mut RequestHeader,
    ctx: &Ctx,
    trusted: &TrustedProxies,
    is_own_cookie: impl Fn(&str) -> bool,
) -> pingora::Result<()> {
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    // Only the target's raw bytes are lost with the wrapper, and they equal
    // the URI: `Target::of` refused a target that is not UTF-8, and any
    // other form than origin-form is rewritten to it.
    let mut parts: Parts = std::mem::replace(req, placeholder).into();
    let built = build(&mut parts, ctx, trusted, is_own_cookie);
    *req = RequestHeader::from(parts);
    built
}

fn build(
    parts: &mut Parts,
    ctx: &Ctx,
    trusted: &TrustedProxies,
    is_own_cookie: impl Fn(&str) -> bool,
) -> pingora::Result<()> {
    parts.headers.try_reserve(ADDED).map_err(|e| {
        pingora::Error::because(pingora::ErrorType::InvalidHTTPHeader, "too many headers", e)
    })?;
    ctx.rewrite.apply(parts)?;
    let headers = &mut parts.headers;
    if let Some(peer) = ctx.peer {
        // The canonical host, as just set; a reference-counted copy.
        let host = headers
            .get(http::header::HOST)
            .cloned()
            .unwrap_or(http::HeaderValue::from_static(""));
        let hop = Hop {
            peer,
            trusted: trusted.contains(peer),
            scheme: "http",
            host: &host,
            port: port_of(host.as_bytes()).unwrap_or(80),
        };
        forwarded::apply(headers, &hop)?;
    }
    session::strip_cookies(headers, is_own_cookie);
    if let Some(caller) = &ctx.caller {
        caller.headers.inject(headers);
        if ctx.email_disabled {
            let h = identity::headers::email_disabled();
            headers.insert(h.key, h.value);
        }
        if let Some(assertion) = &ctx.assertion {
            headers.insert(crate::assertion::HEADER, assertion.clone());
        }
    }
    Ok(())
}

/// The port of a canonical `host[:port]` (an IPv6 literal is bracketed).
fn port_of(host: &[u8]) -> Option<u16> {
    let colon = host.iter().rposition(|b| *b == b':')?;
    let port = &host[colon + 1..];
    if port.contains(&b']') {
        return None;
    }
    std::str::from_utf8(port).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn ports_of_canonical_hosts() {
        assert_eq!(port_of(b"app.example.com"), None);
        assert_eq!(port_of(b"app.example.com:8443"), Some(8443));
        assert_eq!(port_of(b"[::1]"), None);
        assert_eq!(port_of(b"[::1]:8080"), Some(8080));
        assert_eq!(port_of(b"127.0.0.1:99999"), None);
    }
}
