//! The endpoints' paths, and where a sign-in or sign-out may return to.

use pingora::proxy::Session as Downstream;

use crate::config::RedirectHost;
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

/// The request's `rd` query parameter, if it is a safe return target (see
/// [`safe_return`]): where sign-out and revoke send a browser.
pub(super) fn return_to(gw: &Gateway, down: &Downstream) -> Option<String> {
    query_param(down.req_header().uri.query(), "rd")
        .and_then(|rd| safe_return(&gw.public.origin, &gw.redirect_hosts, &rd))
}

/// `rd` as a place a sign-in or sign-out may send the browser to (a path
/// on our origin, or an absolute URL on a listed host: itself a valid
/// `rd`, see [`location`]), or `None` if it could lead anywhere else. The
/// one check of `rd`.
///
/// A local path: it must start with one `/` (not `//` or `/\`, which
/// browsers read as another host), carry no backslash, whitespace or
/// control character, and, joined to our origin, still be on our origin
/// (checked with a WHATWG URL parser, as browsers parse); after the parser
/// resolved its dot segments (`/..//evil.example` is `//evil.example`) it
/// still does not start with `//` or `/\`.
///
/// An absolute URL, only with `session.redirect_hosts`: the public URL's
/// scheme, written in lower case (no downgrade from https, and http only
/// for an http gateway, as in dev), then an authority that is exactly a
/// listed host and port as the parser reads it: no userinfo
/// (`https://app.example.com@evil.example`), no escapes, no trailing dot,
/// nothing the parser would map. `.suffix` entries match subdomains only.
///
/// The result is ASCII (non-ASCII percent-encoded) and at most
/// [`MAX_RETURN_PATH`] bytes.
pub fn safe_return(origin: &str, hosts: &[RedirectHost], rd: &str) -> Option<String> {
    let b = rd.as_bytes();
    let shape_ok = rd.len() <= MAX_RETURN_PATH
        && !rd
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if !shape_ok {
        return None;
    }
    let base = url::Url::parse(origin).ok()?;
    if b.first() != Some(&b'/') {
        return listed_url(&base, hosts, rd);
    }
    if matches!(b.get(1), Some(b'/' | b'\\')) {
        return None;
    }
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

/// The `Location` for a return target of [`safe_return`]: a path is made
/// absolute on our origin, a URL is kept.
pub(super) fn location(origin: &str, target: &str) -> String {
    if target.starts_with('/') {
        format!("{origin}{target}")
    } else {
        target.to_string()
    }
}

/// The absolute `rd` of [`safe_return`], if it names a listed host.
fn listed_url(base: &url::Url, hosts: &[RedirectHost], rd: &str) -> Option<String> {
    if hosts.is_empty() {
        return None;
    }
    let rest = rd.strip_prefix(base.scheme())?.strip_prefix("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let u = url::Url::parse(rd).ok()?;
    if u.scheme() != base.scheme() || !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    let Some(url::Host::Domain(host)) = u.host() else {
        return None;
    };
    let read = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    if !authority.eq_ignore_ascii_case(&read) {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let listed = hosts.iter().any(|h| {
        h.port == u.port()
            && if h.suffix {
                host.strip_suffix(h.name.as_str())
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
            } else {
                host == h.name
            }
    });
    (listed && u.as_str().len() <= MAX_RETURN_PATH).then(|| u.to_string())
}

/// The longest return path kept, after encoding: it travels in the
/// login-state cookie, which must stay well under 4 KB.
pub const MAX_RETURN_PATH: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://app.example.com";

    fn host(name: &str, suffix: bool, port: Option<u16>) -> RedirectHost {
        RedirectHost {
            name: name.into(),
            suffix,
            port,
        }
    }

    #[test]
    fn return_paths_stay_on_our_origin() {
        let p = |rd| safe_return(O, &[], rd);
        assert_eq!(p("/a/b?c=d").as_deref(), Some("/a/b?c=d"));
        assert_eq!(p("/caf\u{e9}").as_deref(), Some("/caf%C3%A9"));
        for bad in [
            "https://evil.example",
            "https://app.example.com/x",
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
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn absolute_returns_go_to_listed_hosts_only() {
        let hosts = [
            host("admin.example.com", false, None),
            host("ops.example.com", false, Some(8443)),
            host("apps.example.com", true, None),
        ];
        let r = |rd| safe_return(O, &hosts, rd);
        for good in [
            "https://admin.example.com/",
            "https://admin.example.com/users?x=1#top",
            "https://Admin.Example.com/x",
            "https://ops.example.com:8443/x",
            "https://a.apps.example.com/x",
            "https://b.c.apps.example.com/x",
        ] {
            assert!(r(good).is_some(), "{good:?}");
        }
        assert_eq!(r("https://ADMIN.example.com/a b").as_deref(), None);
        assert_eq!(
            r("https://Admin.example.com/x").as_deref(),
            Some("https://admin.example.com/x")
        );
        for bad in [
            "http://admin.example.com/",
            "HTTPS://admin.example.com/",
            "https:admin.example.com/",
            "https:/admin.example.com/",
            "https://admin.example.com:8443/",
            "https://ops.example.com/",
            "https://apps.example.com/",
            "https://xapps.example.com/",
            "https://evil.example/",
            "https://admin.example.com@evil.example/",
            "https://admin.example.com:@evil.example/",
            "https://evil.example\\@admin.example.com/",
            "https://evil.example#@admin.example.com/",
            "https://evil.example?@admin.example.com/",
            "https://admin.example.com.evil.example/",
            "https://admin.example.com./",
            "https://admin%2eexample.com/",
            "https://admin.example.com%2f@evil.example/",
            "https://admin.example.com:443/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://evil.example/https://admin.example.com/",
            "//admin.example.com/",
            "/\\admin.example.com/",
            "admin.example.com/",
            "https://ad\tmin.example.com/",
            "javascript://admin.example.com/%0aalert(1)",
        ] {
            assert_eq!(r(bad), None, "{bad:?}");
        }
    }
}
