//! The session cookie: sealed, self-contained, rotated keys.
//!
//! The cookie holds the whole session (`sub`, email, flags, name, times, a
//! session id), sealed with AES-256-GCM under the first configured key and
//! opened with any of them, so keys rotate without signing everyone out.

use std::borrow::Cow;

use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{Lifetime, SessionError};
use crate::config;
use crate::identity::{Identity, Proof};
use crate::secret::Secret;

/// Seals and opens values under the configured keys.
#[derive(Clone)]
pub struct Sealer {
    keys: Secret<Vec<Key>>,
}

impl Sealer {
    /// A sealer with `keys`; the first seals, all open. `keys` is never empty
    /// (config validation requires a secret).
    pub fn new(keys: Secret<Vec<Key>>) -> Self {
        Sealer { keys }
    }

    /// Seals `value` as the value of cookie `name`.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> String {
        // Serializing our own plain structs cannot fail.
        let json = serde_json::to_string(value).expect("session state serializes");
        let mut jar = CookieJar::new();
        let key = &self.keys.expose()[0];
        jar.private_mut(key)
            .add(Cookie::new(name.to_string(), json));
        jar.get(name)
            .map(|c| c.value().to_string())
            .unwrap_or_default()
    }

    /// Opens a value sealed by [`Self::seal`] under `name` and kept as
    /// bytes (a row of the state store); `None` if it does not open.
    pub fn open_bytes<T: DeserializeOwned>(&self, name: &str, sealed: &[u8]) -> Option<T> {
        self.open(name, std::str::from_utf8(sealed).ok()?)
    }

    /// Opens cookie `name`'s `value`, trying every key.
    pub fn open<T: DeserializeOwned>(&self, name: &str, value: &str) -> Option<T> {
        let jar = CookieJar::new();
        self.keys.expose().iter().find_map(|key| {
            let c = jar
                .private(key)
                .decrypt(Cookie::new(name.to_string(), value.to_string()))?;
            serde_json::from_str(c.value()).ok()
        })
    }
}

/// A session as sealed in the cookie: an [`Identity`] proven by a session
/// ([`Proof::Session`]). Short field names keep the cookie small; the
/// names are the cookie format, so they do not change.
#[derive(Serialize, Deserialize)]
struct Sealed<'a> {
    /// Random session id, what sign-out revokes.
    #[serde(rename = "i")]
    id: Cow<'a, str>,
    #[serde(rename = "s")]
    sub: Cow<'a, str>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    email: Option<Cow<'a, str>>,
    #[serde(rename = "v")]
    email_verified: bool,
    #[serde(rename = "p")]
    is_private_email: bool,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "t")]
    issued_at: u64,
    #[serde(rename = "x")]
    expires_at: u64,
    /// When the cookie was last re-issued. Cookies sealed before the idle
    /// timeout existed lack it and read as 0: then `issued_at` stands in
    /// (the last use we know of), so such a session older than the idle
    /// timeout ends once, and a younger one slides from there.
    #[serde(rename = "r", default)]
    seen_at: u64,
    /// When Apple last confirmed the user; missing (0) reads as
    /// `issued_at`, when the sign-in itself was Apple's word.
    #[serde(rename = "c", default)]
    checked_at: u64,
}

impl<'a> Sealed<'a> {
    /// The sealed form of `id`; `None` unless a session proves it.
    fn of(id: &'a Identity) -> Option<Self> {
        let Proof::Session {
            id: session,
            issued_at,
            expires_at,
            seen_at,
            checked_at,
        } = &id.proof
        else {
            return None;
        };
        Some(Sealed {
            id: Cow::Borrowed(session),
            sub: Cow::Borrowed(&id.sub),
            email: id.email.as_deref().map(Cow::Borrowed),
            email_verified: id.email_verified,
            is_private_email: id.is_private_email,
            name: id.name.as_deref().map(Cow::Borrowed),
            issued_at: *issued_at,
            expires_at: *expires_at,
            seen_at: *seen_at,
            checked_at: *checked_at,
        })
    }

    /// The identity a sealed session proves.
    fn into_identity(self) -> Identity {
        Identity {
            sub: self.sub.into_owned(),
            email: self.email.map(Cow::into_owned),
            email_verified: self.email_verified,
            is_private_email: self.is_private_email,
            name: self.name.map(Cow::into_owned),
            proof: Proof::Session {
                id: self.id.into_owned(),
                issued_at: self.issued_at,
                expires_at: self.expires_at,
                seen_at: or_issued(self.seen_at, self.issued_at),
                checked_at: or_issued(self.checked_at, self.issued_at),
            },
        }
    }
}

/// A time an older cookie did not carry (0) read as `issued_at`.
fn or_issued(t: u64, issued_at: u64) -> u64 {
    match t {
        0 => issued_at,
        t => t,
    }
}

/// The session cookie's name, attributes and keys.
#[derive(Clone)]
pub struct SessionCookie {
    sealer: Sealer,
    name: String,
    domain: Option<String>,
    secure: bool,
    same_site: SameSite,
    lifetime: Lifetime,
}

impl SessionCookie {
    /// From `[session]`.
    pub fn new(cfg: &config::Session) -> Self {
        SessionCookie {
            sealer: Sealer::new(cfg.keys.clone()),
            name: cfg.cookie_name.clone(),
            domain: cfg.cookie_domain.clone(),
            secure: cfg.secure,
            same_site: match cfg.same_site {
                config::SameSite::Lax => SameSite::Lax,
                config::SameSite::Strict => SameSite::Strict,
            },
            lifetime: Lifetime::new(cfg),
        }
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lifetime rules: absolute, idle, re-validation.
    pub fn lifetime(&self) -> &Lifetime {
        &self.lifetime
    }

    /// A fresh session proof issued at `now`: a random id, and the
    /// configured lifetime.
    pub fn new_proof(&self, now: u64) -> Proof {
        self.lifetime.proof(super::random_token(16), now)
    }

    /// Opens a cookie value into the identity it proves and checks at
    /// `now` that it still holds (absolute and idle timeouts).
    pub fn open(&self, value: &str, now: u64) -> Result<Identity, SessionError> {
        let id = self
            .sealer
            .open::<Sealed<'static>>(&self.name, value)
            .ok_or(SessionError::Invalid)?
            .into_identity();
        self.lifetime.check(&id, now)?;
        Ok(id)
    }

    /// The `Set-Cookie` value that stores a session-proven `identity`;
    /// `None` for any other proof (a bearer token never becomes a cookie).
    /// It lasts as long as the session holds unless used again.
    pub fn set_cookie(&self, identity: &Identity, now: u64) -> Option<String> {
        let value = self.sealer.seal(&self.name, &Sealed::of(identity)?);
        let max_age = self.lifetime.ends_at(identity).saturating_sub(now) as i64;
        Some(self.cookie(value, max_age))
    }

    /// The `Set-Cookie` that carries `identity`'s session on, seen at
    /// `now` and, when Apple has just confirmed it, checked at
    /// `checked_at`: sliding and re-validation re-issue the cookie here.
    pub fn renew(&self, identity: &Identity, now: u64, checked_at: Option<u64>) -> Option<String> {
        let mut renewed = identity.clone();
        let Proof::Session {
            seen_at,
            checked_at: checked,
            ..
        } = &mut renewed.proof
        else {
            return None;
        };
        *seen_at = now;
        if let Some(at) = checked_at {
            *checked = at;
        }
        self.set_cookie(&renewed, now)
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub fn clear_cookie(&self) -> String {
        self.cookie(String::new(), 0)
    }

    fn cookie(&self, value: String, max_age: i64) -> String {
        let mut c = Cookie::build((self.name.clone(), value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .max_age(cookie::time::Duration::seconds(max_age));
        if let Some(d) = &self.domain {
            c = c.domain(d.clone());
        }
        c.build().to_string()
    }
}

/// Two session secrets and a sealer of one, for the tests of whatever
/// seals (cookies, names, refresh tokens, signing keys).
#[cfg(test)]
pub(crate) mod test_keys {
    use super::*;

    pub const A: &str = "0123456789abcdef0123456789abcdef-first-secret-AAAAAAAA";
    pub const B: &str = "fedcba9876543210fedcba9876543210-other-secret-BBBBBBBB";

    /// A sealer with the one key derived from `secret`.
    pub fn sealer(secret: &str) -> Sealer {
        Sealer::new(Secret::new(vec![Key::derive_from(secret.as_bytes())]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(secret: &str) -> config::Session {
        config::Session {
            keys: Secret::new(vec![Key::derive_from(secret.as_bytes())]),
            cookie_name: "__Host-applegate".into(),
            cookie_domain: None,
            redirect_hosts: Vec::new(),
            lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
            revalidate: None,
            login_timeout: Duration::from_secs(600),
            same_site: config::SameSite::Lax,
            secure: true,
            login_cookie_lax: false,
        }
    }

    fn session() -> Identity {
        Identity {
            sub: "001234.abc.0001".into(),
            email: Some("a@example.com".into()),
            email_verified: true,
            is_private_email: false,
            name: Some("Jane Appleseed".into()),
            proof: Proof::Session {
                id: "sid".into(),
                issued_at: 1000,
                expires_at: 4600,
                seen_at: 1000,
                checked_at: 1000,
            },
        }
    }

    fn value_of(set_cookie: &str) -> String {
        Cookie::parse(set_cookie.to_string())
            .unwrap()
            .value()
            .to_string()
    }

    use super::test_keys::{A, B};

    #[test]
    fn seals_and_opens() {
        let c = SessionCookie::new(&cfg(A));
        let v = value_of(&c.set_cookie(&session(), 1000).unwrap());
        assert_eq!(c.open(&v, 1001), Ok(session()));
        assert_eq!(c.open(&v, 4600), Err(SessionError::Expired));
    }

    #[test]
    fn tampered_or_foreign_cookies_do_not_open() {
        let c = SessionCookie::new(&cfg(A));
        let v = value_of(&c.set_cookie(&session(), 1000).unwrap());
        let mut bytes = v.clone().into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            c.open(std::str::from_utf8(&bytes).unwrap(), 1001),
            Err(SessionError::Invalid)
        );
        let other = SessionCookie::new(&cfg(B));
        assert_eq!(other.open(&v, 1001), Err(SessionError::Invalid));
        assert_eq!(
            c.open("not base64 at all!", 1001),
            Err(SessionError::Invalid)
        );
    }

    #[test]
    fn rotation_opens_old_cookies_and_seals_with_the_first_key() {
        let old = SessionCookie::new(&cfg(A));
        let v = value_of(&old.set_cookie(&session(), 1000).unwrap());
        let mut rotated = cfg(B);
        rotated.keys = Secret::new(vec![
            Key::derive_from(B.as_bytes()),
            Key::derive_from(A.as_bytes()),
        ]);
        let rotated = SessionCookie::new(&rotated);
        assert_eq!(rotated.open(&v, 1001), Ok(session()));
        let fresh = value_of(&rotated.set_cookie(&session(), 1000).unwrap());
        assert_eq!(
            SessionCookie::new(&cfg(B)).open(&fresh, 1001),
            Ok(session())
        );
        assert_eq!(old.open(&fresh, 1001), Err(SessionError::Invalid));
    }

    #[test]
    fn cookie_attributes() {
        let c = SessionCookie::new(&cfg(A));
        let s = c.set_cookie(&session(), 1000).unwrap();
        assert!(s.starts_with("__Host-applegate="));
        for attr in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
    }

    /// A cookie sealed before the idle timeout and re-validation existed
    /// (no `r`, no `c`) opens, its last use and last check read as its
    /// sign-in; a renewed cookie carries the new times and a Max-Age up to
    /// the idle end.
    #[test]
    fn older_cookies_open_and_renewal_moves_the_times() {
        let mut short_idle = cfg(A);
        short_idle.idle_timeout = Duration::from_secs(600);
        let c = SessionCookie::new(&short_idle);
        let old = serde_json::json!({"i": "sid", "s": "001234.abc.0001", "e": "a@example.com",
            "v": true, "p": false, "n": "Jane Appleseed", "t": 1000, "x": 4600});
        let v = Sealer::new(short_idle.keys.clone()).seal(c.name(), &old);
        assert_eq!(c.open(&v, 1001), Ok(session()));
        assert_eq!(c.open(&v, 1600), Err(SessionError::Idle));
        let renewed = c.renew(&session(), 1500, Some(1400)).unwrap();
        assert!(renewed.contains("Max-Age=600"), "{renewed}");
        let Proof::Session {
            seen_at,
            checked_at,
            ..
        } = c.open(&value_of(&renewed), 1600).unwrap().proof
        else {
            panic!("a session proof");
        };
        assert_eq!((seen_at, checked_at), (1500, 1400));
    }
}
