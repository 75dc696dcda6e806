//! The request id: one per request, on every log line of it (the request
//! span's `id` field), sent upstream and returned to the client in
//! `X-Request-Id`, and printed on the gateway's error pages so a user can
//! quote it.
//!
//! A client's `X-Request-Id` is taken only from a peer in
//! `server.trusted_proxies` (a load balancer that already named the
//! request, so its logs and ours agree), and only if it is sane: 1 to
//! [`MAX_LEN`] visible ASCII characters, so it cannot break a log line or a
//! header. Otherwise the gateway makes one: 16 hex digits from the
//! thread's CSPRNG. Random rather than a counter: ids show on pages and in
//! upstream logs, and a counter would tell anyone the gateway's request
//! rate and let them guess other requests' ids.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::proxy::Session as Downstream;

use super::forwarded::TrustedProxies;

/// `X-Request-Id`, built at compile time.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a trusted proxy.
pub const MAX_LEN: usize = 128;

/// One request's id, held as the header value it travels as (cloning it
/// into the upstream request and the response copies no bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A fresh random id: 64 bits as 16 lower-case hex digits.
    pub fn generate() -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n: u64 = rand::random();
        let mut buf = [0u8; 16];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        RequestId(HeaderValue::from_bytes(&buf).expect("hex digits are a valid header value"))
    }

    /// The id a trusted proxy sent, if it sent exactly one and it is sane.
    pub fn from_trusted(headers: &HeaderMap) -> Option<RequestId> {
        let mut values = headers.get_all(HEADER).iter();
        let v = values.next()?;
        if values.next().is_some() || !is_sane(v.as_bytes()) {
            return None;
        }
        Some(RequestId(v.clone()))
    }

    /// The id as text (always visible ASCII).
    pub fn as_str(&self) -> &str {
        // Both constructors admit visible ASCII only.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id the request's peer sent, if the peer is a trusted proxy and the
/// id is sane; else `None` (the gateway's own id stands).
pub fn of_trusted(down: &Downstream, trusted: &TrustedProxies) -> Option<RequestId> {
    let peer = down.client_addr()?.as_inet()?.ip();
    if !trusted.contains(peer) {
        return None;
    }
    RequestId::from_trusted(&down.req_header().headers)
}

/// 1 to [`MAX_LEN`] bytes of visible ASCII (`!` to `~`): no spaces, no
/// control characters, nothing a log line or a page could misread.
fn is_sane(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_LEN && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn generated_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    /// Sane ids are kept as sent; empty, long, spaced, non-ASCII or
    /// repeated ones are not.
    #[test]
    fn only_sane_single_ids_are_taken() {
        let ok = "lb-7f3a:9c/01_x.y~z";
        assert_eq!(
            RequestId::from_trusted(&headers(&[ok.as_bytes()])).map(|r| r.to_string()),
            Some(ok.to_string())
        );
        let long = "a".repeat(MAX_LEN);
        assert!(RequestId::from_trusted(&headers(&[long.as_bytes()])).is_some());
        let too_long = "a".repeat(MAX_LEN + 1);
        for bad in [
            &b""[..],
            too_long.as_bytes(),
            b"a b",
            b"a\tb",
            "caf\u{e9}".as_bytes(),
        ] {
            assert_eq!(RequestId::from_trusted(&headers(&[bad])), None, "{bad:?}");
        }
        assert_eq!(RequestId::from_trusted(&headers(&[b"a", b"b"])), None);
        assert_eq!(RequestId::from_trusted(&HeaderMap::new()), None);
    }
}
