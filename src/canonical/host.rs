//! The canonical request host: what host routes match and the upstream gets.
//!
//! A host route must not be skipped by writing the same host another way:
//! DNS names are case-insensitive and `admin.example.com.` (trailing dot,
//! the fully qualified form) is the same host (RFC 1034 §3.1); the port is
//! not part of the name. An absolute-form target names the host itself
//! (RFC 9112 §3.2.2), so it must agree with `Host`. Refused (400): two
//! `Host` fields, userinfo, characters outside a host name, a host that
//! disagrees with the target's authority, and a request naming no host.

use std::borrow::Cow;
use std::fmt;

/// Why a request's host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRefused {
    /// Neither a `Host` field nor an absolute-form target.
    Missing,
    /// More than one `Host` field (RFC 9112 §3.2).
    Duplicate,
    /// Not a host name, IP literal and optional port (userinfo, spaces, …).
    Invalid,
    /// The absolute-form target names another host than `Host`.
    Mismatch,
    /// An absolute-form target with a scheme other than http or https, or
    /// one whose authority parsers could read two ways.
    BadTarget,
}

impl HostRefused {
    /// What went wrong, for the client and the log.
    pub fn reason(&self) -> &'static str {
        match self {
            HostRefused::Missing => "no Host header",
            HostRefused::Duplicate => "more than one Host header",
            HostRefused::Invalid => "malformed Host",
            HostRefused::Mismatch => "Host differs from the request target's host",
            HostRefused::BadTarget => "unsupported absolute-form request target",
        }
    }
}

impl fmt::Display for HostRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HostRefused {}

/// A request's host in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalHost<'a> {
    /// Lower case, no trailing dot, no port; IPv6 literals keep brackets.
    pub name: Cow<'a, str>,
    /// The port the client named, if any.
    pub port: Option<u16>,
    /// Whether the `Host` to send upstream differs from the one received
    /// (or none was received: absolute-form).
    pub rewritten: bool,
}

impl CanonicalHost<'_> {
    /// The `Host` value for the upstream: name, and port if one was named.
    pub fn header_value(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// The canonical host of a request with these `Host` header values and
/// this raw request target.
pub fn canonicalize<'a>(
    mut host_headers: impl Iterator<Item = &'a [u8]>,
    target: &'a [u8],
) -> Result<CanonicalHost<'a>, HostRefused> {
    use pingora::http::authority::{raw_target_authority, RawTargetAuthority};
    let header = host_headers.next();
    if host_headers.next().is_some() {
        return Err(HostRefused::Duplicate);
    }
    let from_target = match raw_target_authority(target) {
        RawTargetAuthority::None if target.first() == Some(&b'/') => None,
        RawTargetAuthority::Absolute {
            scheme, authority, ..
        } if scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https") => {
            Some(parse(authority)?)
        }
        _ => return Err(HostRefused::BadTarget),
    };
    reconcile(header.map(parse).transpose()?, from_target)
}

/// The canonical host of an HTTP/2 request with these `Host` header values
/// and this `:authority`. `:authority` stands where HTTP/1's absolute-form
/// target does (RFC 9113 §8.3.1): when both are sent they must name the
/// same host, or the request is refused, as for HTTP/1; the upstream gets
/// the one host decided on.
pub fn canonicalize_h2<'a>(
    mut host_headers: impl Iterator<Item = &'a [u8]>,
    authority: Option<&'a [u8]>,
) -> Result<CanonicalHost<'a>, HostRefused> {
    let header = host_headers.next();
    if host_headers.next().is_some() {
        return Err(HostRefused::Duplicate);
    }
    let from_authority = authority.map(parse).transpose()?;
    reconcile(header.map(parse).transpose()?, from_authority)
}

/// One host from the `Host` field and the target's authority.
fn reconcile<'a>(
    from_header: Option<CanonicalHost<'a>>,
    from_target: Option<CanonicalHost<'a>>,
) -> Result<CanonicalHost<'a>, HostRefused> {
    match (from_header, from_target) {
        (Some(h), None) => Ok(h),
        (None, Some(mut t)) => {
            t.rewritten = true;
            Ok(t)
        }
        (Some(h), Some(mut t)) => {
            if h.name != t.name || h.port != t.port {
                return Err(HostRefused::Mismatch);
            }
            t.rewritten = true;
            Ok(t)
        }
        (None, None) => Err(HostRefused::Missing),
    }
}

/// Parses `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2); also what
/// config's route hosts go through, so both sides compare alike.
pub fn parse(raw: &[u8]) -> Result<CanonicalHost<'_>, HostRefused> {
    let text = std::str::from_utf8(raw).map_err(|_| HostRefused::Invalid)?;
    let (name, port) = if text.starts_with('[') {
        let end = text.find(']').ok_or(HostRefused::Invalid)?;
        let literal = &text[1..end];
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return Err(HostRefused::Invalid);
        }
        let rest = &text[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err(HostRefused::Invalid),
        };
        (&text[..=end], port)
    } else {
        match text.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (text, None),
        }
    };
    let port_text = port;
    let port = match port {
        // `host:` is allowed by RFC 3986 (port = *DIGIT) and means no port.
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| HostRefused::Invalid)?)
        }
        Some(_) => return Err(HostRefused::Invalid),
    };
    let bare = if name.starts_with('[') {
        name
    } else {
        let bare = name.strip_suffix('.').unwrap_or(name);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        };
        if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) {
            return Err(HostRefused::Invalid);
        }
        bare
    };
    let lower = !bare.bytes().any(|c| c.is_ascii_uppercase());
    let folded = if lower {
        Cow::Borrowed(bare)
    } else {
        Cow::Owned(bare.to_ascii_lowercase())
    };
    // Rewritten when the value sent on would differ from the one received.
    let rewritten = !lower
        || bare.len() != name.len()
        || port_text.is_some_and(|p| p.is_empty() || (p.len() > 1 && p.starts_with('0')));
    Ok(CanonicalHost {
        name: folded,
        port,
        rewritten,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HTTP/2: `:authority` alone names the host (rewritten into `Host`
    /// upstream); with a `Host` it must name the same one, however each is
    /// written; two `Host` fields or none at all are refused.
    #[test]
    fn h2_authority_is_the_target_host() {
        let h2 = |hosts: &[&str], authority: Option<&str>| {
            canonicalize_h2(
                hosts.iter().map(|s| s.as_bytes()),
                authority.map(str::as_bytes),
            )
            .map(|c| (c.name.into_owned(), c.port, c.rewritten))
        };
        assert_eq!(
            h2(&[], Some("App.Example.com.:8443")),
            Ok(("app.example.com".into(), Some(8443), true))
        );
        assert_eq!(
            h2(&["app.example.com"], Some("APP.example.com")),
            Ok(("app.example.com".into(), None, true))
        );
        assert_eq!(
            h2(&["admin.example.com"], Some("app.example.com")),
            Err(HostRefused::Mismatch)
        );
        assert_eq!(
            h2(&["app.example.com:1"], Some("app.example.com")),
            Err(HostRefused::Mismatch)
        );
        assert_eq!(h2(&["a", "a"], Some("a")), Err(HostRefused::Duplicate));
        assert_eq!(h2(&[], None), Err(HostRefused::Missing));
        assert_eq!(h2(&[], Some("u@a")), Err(HostRefused::Invalid));
    }

    fn host(h: &[&str], target: &str) -> Result<(String, Option<u16>, bool), HostRefused> {
        canonicalize(h.iter().map(|s| s.as_bytes()), target.as_bytes())
            .map(|c| (c.name.into_owned(), c.port, c.rewritten))
    }

    #[test]
    fn hosts_are_folded() {
        assert_eq!(
            host(&["example.com"], "/"),
            Ok(("example.com".into(), None, false))
        );
        assert_eq!(
            host(&["Admin.Example.COM."], "/"),
            Ok(("admin.example.com".into(), None, true))
        );
        assert_eq!(
            host(&["admin.example.com.:8080"], "/"),
            Ok(("admin.example.com".into(), Some(8080), true))
        );
        assert_eq!(
            host(&["a.b:443"], "/"),
            Ok(("a.b".into(), Some(443), false))
        );
        assert_eq!(
            host(&["a.b:0443"], "/"),
            Ok(("a.b".into(), Some(443), true))
        );
        assert_eq!(
            host(&["[::1]:80"], "/"),
            Ok(("[::1]".into(), Some(80), false))
        );
        assert_eq!(
            host(&["127.0.0.1"], "/"),
            Ok(("127.0.0.1".into(), None, false))
        );
    }

    #[test]
    fn absolute_form_names_the_host() {
        assert_eq!(
            host(&[], "http://Admin.example.com/x"),
            Ok(("admin.example.com".into(), None, true))
        );
        assert_eq!(
            host(&["admin.example.com"], "http://admin.example.com./x"),
            Ok(("admin.example.com".into(), None, true))
        );
        assert_eq!(
            host(&["other.example.com"], "http://admin.example.com/x"),
            Err(HostRefused::Mismatch)
        );
        assert_eq!(host(&["a"], "ftp://a/x"), Err(HostRefused::BadTarget));
        assert_eq!(host(&["a"], "*"), Err(HostRefused::BadTarget));
    }

    #[test]
    fn malformed_hosts_are_refused() {
        assert_eq!(host(&["a", "b"], "/"), Err(HostRefused::Duplicate));
        assert_eq!(host(&[], "/"), Err(HostRefused::Missing));
        for bad in [
            "user@admin.example.com",
            "admin.example.com ",
            "admin example.com",
            "admin.example.com..",
            ".admin.example.com",
            "a..b",
            "",
            ".",
            "a:b",
            "a:99999",
            "a/b",
            "[::1",
            "[zz]",
            "a%2eb",
        ] {
            assert_eq!(host(&[bad], "/"), Err(HostRefused::Invalid), "{bad:?}");
        }
    }
}
