//! Sessions: the sealed session cookie, the sign-in round trip's
//! login-state cookie, the revocation set, the users whose relay
//! email is switched off ([`DisabledEmails`]), the refresh token each
//! session was signed in with ([`RefreshTokens`], kept server-side), and
//! the display name Apple sends only once ([`Names`], kept per user).
//!
//! This module knows nothing of Apple: a session is who signed in and until
//! when, sealed with AES-256-GCM (the `cookie` crate's private jar, with the
//! cookie name as associated data so one sealed cookie cannot stand in for
//! another). The server keeps no session store, only the set of revoked
//! sessions, and a cache of cookies already opened ([`Cache`]). The one
//! `Cookie` header parser is here ([`cookie_pairs`]): whatever reads or
//! removes a cookie reads it the same way.

pub mod cache;
pub mod cookie;
pub mod disabled_emails;
pub mod lifetime;
pub mod login_state;
pub mod names;
pub mod refresh;
pub mod revalidation;
pub mod revocation;

use std::fmt;

use http::{HeaderMap, HeaderValue};

pub use self::cookie::{Sealer, SessionCookie};
pub use cache::Cache;
pub use disabled_emails::DisabledEmails;
pub use lifetime::{Due, Lifetime};
pub use login_state::{LoginCookie, LoginState};
pub use names::Names;
pub use refresh::RefreshTokens;
pub use revalidation::{Checks, Verdict};
pub use revocation::Revocations;

/// Why a cookie did not yield a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// No session cookie in the request.
    Missing,
    /// The cookie did not open under any key: tampered, truncated, or
    /// sealed under a key we do not hold.
    Invalid,
    /// The session's lifetime has passed.
    Expired,
    /// The session went unused longer than `session.idle_timeout`.
    Idle,
    /// Apple could not be asked whether the user's authorization stands
    /// within `session.revalidate_grace` of the check falling due.
    Unconfirmed,
    /// The session was signed out or its user's access revoked.
    Revoked,
    /// Two cookies of the session's name: a sibling subdomain can plant
    /// one under a shared `cookie_domain`, and first-one-wins would let it
    /// choose whose session this is.
    Duplicate,
    /// The state store is out of reach, so a revocation made on another
    /// replica may be missed, and `state.fail_closed` refuses sessions
    /// until it is back.
    Untrusted,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::Missing => "no session cookie",
            SessionError::Invalid => "session cookie does not open under any key",
            SessionError::Expired => "session expired",
            SessionError::Idle => "session unused past its idle timeout",
            SessionError::Unconfirmed => "Apple did not confirm the session in time",
            SessionError::Revoked => "session revoked",
            SessionError::Duplicate => "more than one session cookie",
            SessionError::Untrusted => {
                "the state store is out of reach and state.fail_closed refuses sessions"
            }
        })
    }
}

impl std::error::Error for SessionError {}

/// Why a callback's login state was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// No `state` field, or one we could not have issued.
    BadState,
    /// No login-state cookie for this state: it expired in the browser, was
    /// never set, or the browser withheld it.
    Missing,
    /// The cookie did not open under our keys.
    Invalid,
    /// The round trip took longer than `session.login_timeout`.
    Expired,
    /// The form's state is not the cookie's.
    Mismatch,
    /// This login state was already used.
    Replayed,
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoginError::BadState => "callback without a valid state",
            LoginError::Missing => "no login-state cookie for this state",
            LoginError::Invalid => "login-state cookie does not open",
            LoginError::Expired => "sign-in took too long",
            LoginError::Mismatch => "state does not match the login-state cookie",
            LoginError::Replayed => "login state already used",
        })
    }
}

impl std::error::Error for LoginError {}

/// `n` random bytes as unpadded base64url: state, nonce and session ids.
pub fn random_token(n: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The names of the gateway's cookies (the session cookie and the
/// login-state cookies) in every form a browser or an app may give them:
/// with a `__Host-` or `__Secure-` prefix or none, in any case. What is
/// ours never reaches the upstream, and the upstream may not set it.
#[derive(Debug, Clone)]
pub struct OwnCookies {
    /// The session cookie's name without prefix, lower case.
    base: String,
    /// `<base>-login-`: what every login-state cookie's name starts with.
    login: String,
}

impl OwnCookies {
    /// From the configured session cookie name.
    pub fn new(cookie_name: &str) -> Self {
        let base = strip_prefix(cookie_name).to_ascii_lowercase();
        OwnCookies {
            login: format!("{base}-login-"),
            base,
        }
    }

    /// Whether `name` is one of ours (no allocation: runs per cookie).
    pub fn is_ours(&self, name: &str) -> bool {
        let n = strip_prefix(name).as_bytes();
        n.eq_ignore_ascii_case(self.base.as_bytes())
            || (n.len() > self.login.len()
                && n[..self.login.len()].eq_ignore_ascii_case(self.login.as_bytes()))
    }
}

/// `name` without a `__Host-` or `__Secure-` prefix, matched without case
/// as browsers match them.
fn strip_prefix(name: &str) -> &str {
    for p in ["__host-", "__secure-"] {
        if name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()) {
            return &name[p.len()..];
        }
    }
    name
}

/// Every `name=value` pair in a request's `Cookie` header values, in
/// order: the one cookie parser (RFC 6265 §5.4 form; names and values
/// trimmed as §5.2 parses them; a pair without `=` is skipped). A plain
/// loop over the bytes: it runs on every request, over long values.
pub fn cookie_pairs<'a>(
    headers: impl Iterator<Item = &'a [u8]>,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    headers.flat_map(Pairs)
}

/// The pairs of one `Cookie` header value.
struct Pairs<'a>(&'a [u8]);

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.0.is_empty() {
            let end = memchr(b';', self.0).unwrap_or(self.0.len());
            let pair = &self.0[..end];
            self.0 = self.0.get(end + 1..).unwrap_or_default();
            if let Some(eq) = memchr(b'=', pair) {
                return Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()));
            }
        }
        None
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

/// The value of cookie `name` in a request's `Cookie` header values.
pub fn find_cookie<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    cookie_pairs(headers)
        .find(|(n, _)| *n == name.as_bytes())
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// The value of cookie `name`, refusing a request that carries it twice
/// (see [`SessionError::Duplicate`]).
pub fn find_only_cookie<'a>(
    headers: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Result<Option<&'a str>, SessionError> {
    let mut found = None;
    for (n, v) in cookie_pairs(headers) {
        if n == name.as_bytes() {
            if found.is_some() {
                return Err(SessionError::Duplicate);
            }
            found = Some(std::str::from_utf8(v).map_err(|_| SessionError::Invalid)?);
        }
    }
    Ok(found)
}

/// Removes the gateway's own cookies from the `Cookie` header so the
/// upstream never sees the session. Read with the one cookie parser
/// ([`cookie_pairs`]), so what counts as ours here is what the gateway
/// reads as ours.
pub fn strip_cookies(headers: &mut HeaderMap, is_ours: impl Fn(&str) -> bool) {
    let ours = |name: &[u8]| std::str::from_utf8(name).is_ok_and(&is_ours);
    let values = || {
        headers
            .get_all(http::header::COOKIE)
            .into_iter()
            .map(|v| v.as_bytes())
    };
    if !cookie_pairs(values()).any(|(n, _)| ours(n)) {
        return;
    }
    let kept: Vec<Vec<u8>> = cookie_pairs(values())
        .filter(|(n, _)| !ours(n))
        .map(|(n, v)| [n, b"=", v].concat())
        .collect();
    headers.remove(http::header::COOKIE);
    if !kept.is_empty() {
        let joined = kept.join(&b"; "[..]);
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            headers.insert(http::header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookie_by_exact_name() {
        let h: Vec<&[u8]> = vec![b"a=1; applegate-x=2", b"applegate=3; b=4"];
        assert_eq!(find_cookie(h.iter().copied(), "applegate"), Some("3"));
        assert_eq!(find_cookie(h.iter().copied(), "applegate-x"), Some("2"));
        assert_eq!(find_cookie(h.iter().copied(), "c"), None);
        assert_eq!(
            find_only_cookie(h.iter().copied(), "applegate"),
            Ok(Some("3"))
        );
        let twice: Vec<&[u8]> = vec![b"applegate=mine", b"a=1; applegate=planted"];
        assert_eq!(
            find_only_cookie(twice.iter().copied(), "applegate"),
            Err(SessionError::Duplicate)
        );
        // Names and values are trimmed as RFC 6265 §5.2 parses them, so a
        // padded copy counts as a second cookie of the name.
        let h: Vec<&[u8]> = vec![b"applegate; applegate =1; applegate=a=b"];
        assert_eq!(find_cookie(h.iter().copied(), "applegate"), Some("1"));
        assert_eq!(
            find_only_cookie(h.iter().copied(), "applegate"),
            Err(SessionError::Duplicate)
        );
    }

    #[test]
    fn own_cookies_in_every_form() {
        let own = OwnCookies::new("__Host-applegate");
        for n in [
            "applegate",
            "__Host-applegate",
            "__secure-APPLEGATE",
            "applegate-login-abcdefghijkl",
            "__Host-applegate-login-x",
        ] {
            assert!(own.is_ours(n), "{n}");
        }
        for n in [
            "app",
            "applegate_prefs",
            "applegate-login-",
            "x__Host-applegate",
            "é",
        ] {
            assert!(!own.is_ours(n), "{n}");
        }
    }

    #[test]
    fn random_tokens_differ_and_carry_enough_bits() {
        let a = random_token(16);
        assert_eq!(a.len(), 22);
        assert_ne!(a, random_token(16));
    }

    #[test]
    fn own_cookies_are_not_forwarded() {
        let cookies = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.append(http::header::COOKIE, HeaderValue::from_static(v));
            h
        };
        let mut req = cookies("a=1; applegate=secret; b=2");
        strip_cookies(&mut req, |n| n == "applegate");
        assert_eq!(req.get("cookie").unwrap(), "a=1; b=2");
        let mut req = cookies("applegate=secret");
        strip_cookies(&mut req, |n| n == "applegate");
        assert!(req.get("cookie").is_none());
        // As the gateway reads cookies: a padded name is the same cookie.
        let mut req = cookies("a=1; applegate =secret");
        strip_cookies(&mut req, |n| n == "applegate");
        assert_eq!(req.get("cookie").unwrap(), "a=1");
    }
}
