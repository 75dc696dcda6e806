//! The endpoints' paths, and the paths a sign-in may return to.

use pingora::proxy::Session as Downstream;

use crate::proxy::gateway::Gateway;

/// Where a failed sign-in starts again.
pub(super) const START: &str = "/oauth2/start";

/// The gateway's endpoints, told apart by the canonical path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Start,
    Callback,
    SignOut,
    /// End the user's authorization at Apple, and here.
    Revoke,
    UserInfo,
    Auth,
    /// Apple's server-to-server notifications (`apple.notifications_path`).
    Notifications,
    /// The keys that verify `X-Applegate-Assertion` (a JWKS).
    Jwks,
    /// Under `/oauth2/` but none of the above.
    Unknown,
}

impl Endpoint {
    /// The endpoint a canonical path names, if it is under `/oauth2`, is
    /// `notifications` (the configured notifications path) or the JWKS.
    pub fn of(path: &str, notifications: &str) -> Option<Endpoint> {
        Some(match path {
            p if p == notifications => Endpoint::Notifications,
            "/oauth2/start" => Endpoint::Start,
            "/oauth2/callback" => Endpoint::Callback,
            "/oauth2/sign_out" => Endpoint::SignOut,
            "/oauth2/revoke" => Endpoint::Revoke,
            "/oauth2/userinfo" => Endpoint::UserInfo,
            "/oauth2/auth" => Endpoint::Auth,
            crate::assertion::JWKS_PATH => Endpoint::Jwks,
            p if p == "/oauth2" || p.starts_with("/oauth2/") => Endpoint::Unknown,
            _ => return None,
        })
    }
}

/// The first value of query parameter `name`.
pub(super) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The request's `rd` query parameter, if it is a path on our own origin
/// (see [`safe_return_path`]): where sign-out and revoke send a browser.
pub(super) fn return_path(gw: &Gateway, down: &Downstream) -> Option<String> {
    query_param(down.req_header().uri.query(), "rd")
        .and_then(|rd| safe_return_path(&gw.public.origin, &rd))
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
}
