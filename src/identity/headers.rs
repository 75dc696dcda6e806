//! Identity headers: the ones clients must never set, and the ones the
//! gateway sets for the upstream, built once per identity.
//!
//! Names follow oauth2-proxy so existing apps work unchanged. Every
//! client-sent copy is removed first, whatever its case and whether it is
//! spelled with `-` or `_`: CGI-style servers (PHP, WSGI, Rack) map both
//! `X-Auth-Request-User` and `X_Auth_Request_User` to the same
//! `HTTP_X_AUTH_REQUEST_USER`, so an underscore copy would be an identity
//! spoof.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use super::Identity;

/// `X-Auth-Request-User`: Apple's `sub`.
pub const USER: &str = "X-Auth-Request-User";
/// `X-Auth-Request-Email`.
pub const EMAIL: &str = "X-Auth-Request-Email";
/// `X-Auth-Request-Email-Verified`: `true` or `false`.
pub const EMAIL_VERIFIED: &str = "X-Auth-Request-Email-Verified";
/// `X-Auth-Request-Private-Email`: `true` or `false`.
pub const PRIVATE_EMAIL: &str = "X-Auth-Request-Private-Email";
/// `X-Auth-Request-Name`: display name, percent-encoded UTF-8 when not plain ASCII.
pub const NAME: &str = "X-Auth-Request-Name";
/// `X-Auth-Request-Email-Disabled`: `true` when the user switched mail to
/// their private relay address off (Apple's `email-disabled`): mail sent
/// to it goes nowhere. Absent otherwise.
pub const EMAIL_DISABLED: &str = "X-Auth-Request-Email-Disabled";
/// `X-Forwarded-User`: Apple's `sub` (oauth2-proxy compatible).
pub const FORWARDED_USER: &str = "X-Forwarded-User";
/// `X-Forwarded-Email` (oauth2-proxy compatible).
pub const FORWARDED_EMAIL: &str = "X-Forwarded-Email";

/// Each identity header's name as `http` keys it (lower case), built at
/// compile time so inserting one per request neither parses nor allocates.
const KEYS: [(&str, HeaderName); 7] = [
    (USER, HeaderName::from_static("x-auth-request-user")),
    (EMAIL, HeaderName::from_static("x-auth-request-email")),
    (
        EMAIL_VERIFIED,
        HeaderName::from_static("x-auth-request-email-verified"),
    ),
    (
        PRIVATE_EMAIL,
        HeaderName::from_static("x-auth-request-private-email"),
    ),
    (NAME, HeaderName::from_static("x-auth-request-name")),
    (FORWARDED_USER, HeaderName::from_static("x-forwarded-user")),
    (
        FORWARDED_EMAIL,
        HeaderName::from_static("x-forwarded-email"),
    ),
];

/// Lower-case, `-`-spelled prefixes and names a client may not send.
const RESERVED_PREFIXES: &[&[u8]] = &[b"x-auth-request-", b"x-applegate-"];
const RESERVED_NAMES: &[&[u8]] = &[
    b"x-forwarded-user",
    b"x-forwarded-email",
    b"x-forwarded-preferred-username",
    b"x-forwarded-groups",
    b"x-forwarded-access-token",
];

/// Whether a header name is one only the gateway may set.
pub fn is_reserved(name: &[u8]) -> bool {
    // Byte-wise compare with `_` read as `-` and ASCII case folded, so no
    // normalized copy of the name is allocated per header.
    let eq = |a: &[u8], b: &[u8]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                let x = x.to_ascii_lowercase();
                (if x == b'_' { b'-' } else { x }) == *y
            })
    };
    RESERVED_PREFIXES
        .iter()
        .any(|p| name.len() >= p.len() && eq(&name[..p.len()], p))
        || RESERVED_NAMES.iter().any(|n| eq(name, n))
}

/// Removes every reserved header the client sent.
pub fn strip(req: &mut RequestHeader) {
    // Fast path: almost no request carries one, so look before allocating.
    if !req
        .headers
        .keys()
        .any(|k| is_reserved(k.as_str().as_bytes()))
    {
        return;
    }
    let names: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|k| is_reserved(k.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in names {
        // remove_header removes every value of the name.
        req.remove_header(&name);
    }
}

/// A header value for text we did not write: used as is when it is
/// visible ASCII, else percent-encoded, so it can never break the header.
fn value(text: &str) -> HeaderValue {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        if let Ok(v) = HeaderValue::from_str(text) {
            return v;
        }
    }
    let encoded =
        percent_encoding::utf8_percent_encode(text, percent_encoding::CONTROLS).to_string();
    let encoded = encoded
        .bytes()
        .map(|b| if b >= 0x7f { '?' } else { b as char })
        .collect::<String>();
    HeaderValue::from_str(&encoded).unwrap_or(HeaderValue::from_static(""))
}

fn flag(b: bool) -> HeaderValue {
    HeaderValue::from_static(if b { "true" } else { "false" })
}

/// Calls `f` with each identity header for `id`, name and value.
fn each(id: &Identity, mut f: impl FnMut(&'static str, HeaderValue)) {
    let sub = value(&id.sub);
    f(USER, sub.clone());
    f(FORWARDED_USER, sub);
    if let Some(email) = &id.email {
        let email = value(email);
        f(EMAIL, email.clone());
        f(FORWARDED_EMAIL, email);
    }
    f(EMAIL_VERIFIED, flag(id.email_verified));
    f(PRIVATE_EMAIL, flag(id.is_private_email));
    if let Some(name) = &id.name {
        let encoded: String = percent_encoding::utf8_percent_encode(name, NAME_ENCODE).to_string();
        f(NAME, value(&encoded));
    }
}

/// One identity header, built once per identity.
#[derive(Debug)]
pub struct Header {
    /// The name as written to a forward-auth answer (oauth2-proxy's case).
    pub title: &'static str,
    /// The name as the upstream request's map keys it.
    pub key: HeaderName,
    pub value: HeaderValue,
}

/// An identity's headers, built once.
#[derive(Debug)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// The headers that carry `id`.
    pub fn of(id: &Identity) -> Self {
        let mut headers = Vec::with_capacity(KEYS.len());
        each(id, |title, value| {
            if let Some((_, key)) = KEYS.into_iter().find(|(t, _)| *t == title) {
                headers.push(Header { title, key, value });
            }
        });
        Headers(headers)
    }

    /// Each header, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Sets the headers on the upstream request's map (cloning a static
    /// name or a `HeaderValue` only bumps a reference count, if that).
    pub fn inject(&self, headers: &mut HeaderMap) {
        for h in &self.0 {
            headers.insert(h.key.clone(), h.value.clone());
        }
    }
}

/// `X-Auth-Request-Email-Disabled: true`. Not among an identity's cached
/// [`Headers`]: it changes while a session lives, so it is added per
/// request.
pub fn email_disabled() -> Header {
    Header {
        title: EMAIL_DISABLED,
        key: HeaderName::from_static("x-auth-request-email-disabled"),
        value: HeaderValue::from_static("true"),
    }
}

/// Bytes percent-encoded in the name header: controls, non-ASCII, and `%`.
const NAME_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_in_every_spelling() {
        for n in [
            "x-auth-request-user",
            "X-Auth-Request-Email",
            "x_auth_request_user",
            "X_AUTH_REQUEST_NAME",
            "x-Auth_Request-anything",
            "x-forwarded-user",
            "X_Forwarded_Email",
            "x-applegate-assertion",
        ] {
            assert!(is_reserved(n.as_bytes()), "{n}");
        }
        for n in [
            "x-forwarded-for",
            "x-auth",
            "accept",
            "x-forwarded-users",
            "authorization",
        ] {
            assert!(!is_reserved(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn strip_removes_all_copies() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Auth-Request-User", "evil").unwrap();
        req.append_header("x-auth-request-user", "evil2").unwrap();
        req.append_header("X_Auth_Request_Email", "evil@x").unwrap();
        req.append_header("Accept", "text/html").unwrap();
        strip(&mut req);
        assert_eq!(req.headers.len(), 1);
        assert!(req.headers.get("accept").is_some());
    }

    #[test]
    fn names_are_encoded_safely() {
        let mut req = HeaderMap::new();
        let id = Identity {
            sub: "001.abc.1".into(),
            email: Some("a@b.c".into()),
            email_verified: true,
            is_private_email: false,
            name: Some("José\r\nX-Evil: 1".into()),
            proof: crate::identity::Proof::Bearer {
                issued_at: 0,
                expires_at: 1,
            },
        };
        let headers = Headers::of(&id);
        assert_eq!(headers.iter().count(), 7, "every header has its key");
        headers.inject(&mut req);
        assert_eq!(req.get(NAME).unwrap(), "Jos%C3%A9%0D%0AX-Evil: 1");
        assert_eq!(req.get(USER).unwrap(), "001.abc.1");
        assert_eq!(req.get(FORWARDED_USER).unwrap(), "001.abc.1");
        assert_eq!(req.get(EMAIL).unwrap(), "a@b.c");
        assert_eq!(req.get(EMAIL_VERIFIED).unwrap(), "true");
        assert_eq!(req.get(PRIVATE_EMAIL).unwrap(), "false");
    }
}
