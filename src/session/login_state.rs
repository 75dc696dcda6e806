//! The login-state cookie: what carries a sign-in across Apple and back.
//!
//! `/oauth2/start` makes a random `state` and `nonce` and seals them, with
//! the return path and the time, into a cookie. Apple's page POSTs the
//! callback cross-site, and browsers only send `SameSite=None` cookies on a
//! cross-site POST, so this cookie is `SameSite=None; Secure; HttpOnly`,
//! scoped to the callback path, short-lived and single use (the session
//! cookie itself stays `Lax`). Its name carries a tag of the state, so two
//! sign-ins in two tabs do not overwrite each other.

use std::fmt;

use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{random_token, Sealer};
use crate::config;

/// The path Apple posts back to.
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// State characters that name the cookie.
const TAG_LEN: usize = 12;

/// One sign-in round trip in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// 128 random bits; echoed by Apple, compared in constant time.
    #[serde(rename = "s")]
    pub state: String,
    /// 128 random bits; must come back inside the id_token.
    #[serde(rename = "n")]
    pub nonce: String,
    /// Where to send the browser afterwards (a checked local path).
    #[serde(rename = "r")]
    pub return_to: String,
    #[serde(rename = "t")]
    pub created_at: u64,
}

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

/// Issues and checks login-state cookies.
pub struct LoginCookie {
    sealer: Sealer,
    /// Cookie name up to the state tag.
    prefix: String,
    timeout: u64,
    /// States already used. Why: a sealed cookie can be replayed until it
    /// expires; remembering used states for the login timeout makes each
    /// single use. Bounded by capacity and by the timeout.
    used: moka::sync::Cache<String, ()>,
}

impl LoginCookie {
    /// From `[session]`.
    pub fn new(cfg: &config::Session) -> Self {
        let base = cfg
            .cookie_name
            .trim_start_matches("__Host-")
            .trim_start_matches("__Secure-");
        // Always Secure (SameSite=None requires it); the __Secure- prefix
        // only where the origin is https, as browsers require.
        let prefix = if cfg.secure {
            format!("__Secure-{base}-login-")
        } else {
            format!("{base}-login-")
        };
        LoginCookie {
            sealer: Sealer::new(cfg.keys.clone()),
            prefix,
            timeout: cfg.login_timeout.as_secs(),
            used: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(cfg.login_timeout)
                .build(),
        }
    }

    /// Whether `name` is a login-state cookie (to keep it from upstreams).
    pub fn is_login_cookie(&self, name: &str) -> bool {
        name.starts_with(&self.prefix)
    }

    /// Starts a round trip returning to `return_to`: the state and the
    /// `Set-Cookie` value carrying it.
    pub fn begin(&self, return_to: String, now: u64) -> (LoginState, String) {
        let login = LoginState {
            state: random_token(16),
            nonce: random_token(16),
            return_to,
            created_at: now,
        };
        let name = self.name_for(&login.state).unwrap_or_default();
        let value = self.sealer.seal(&name, &login);
        (login, self.cookie(name, value, self.timeout as i64))
    }

    /// The cookie name for `state`, if `state` could be one of ours.
    pub fn name_for(&self, state: &str) -> Option<String> {
        let ok = state.len() == 22
            && state
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| format!("{}{}", self.prefix, &state[..TAG_LEN]))
    }

    /// Checks a callback: `cookie_value` is the cookie named for
    /// `form_state`. Marks the state used.
    pub fn finish(
        &self,
        form_state: &str,
        cookie_value: Option<&str>,
        now: u64,
    ) -> Result<LoginState, LoginError> {
        let name = self.name_for(form_state).ok_or(LoginError::BadState)?;
        let value = cookie_value.ok_or(LoginError::Missing)?;
        let login: LoginState = self.sealer.open(&name, value).ok_or(LoginError::Invalid)?;
        if !bool::from(login.state.as_bytes().ct_eq(form_state.as_bytes())) {
            return Err(LoginError::Mismatch);
        }
        if now > login.created_at.saturating_add(self.timeout) || login.created_at > now + 60 {
            return Err(LoginError::Expired);
        }
        // entry().or_insert reports whether we inserted, atomically.
        let entry = self.used.entry(login.state.clone()).or_insert(());
        if !entry.is_fresh() {
            return Err(LoginError::Replayed);
        }
        Ok(login)
    }

    /// The `Set-Cookie` value deleting the cookie for `state`.
    pub fn clear(&self, state: &str) -> Option<String> {
        self.name_for(state)
            .map(|n| self.cookie(n, String::new(), 0))
    }

    fn cookie(&self, name: String, value: String, max_age: i64) -> String {
        Cookie::build((name, value))
            .path(CALLBACK_PATH)
            .http_only(true)
            .secure(true)
            .same_site(SameSite::None)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::Duration;

    fn login_cookie() -> LoginCookie {
        LoginCookie::new(&config::Session {
            keys: Secret::new(vec![cookie::Key::derive_from(
                b"0123456789abcdef0123456789abcdef-login-test-secret",
            )]),
            cookie_name: "__Host-applegate".into(),
            cookie_domain: None,
            lifetime: Duration::from_secs(3600),
            login_timeout: Duration::from_secs(600),
            same_site: config::SameSite::Lax,
            secure: true,
        })
    }

    fn value(set_cookie: &str) -> String {
        Cookie::parse(set_cookie.to_string())
            .unwrap()
            .value()
            .to_string()
    }

    #[test]
    fn cookie_is_samesite_none_secure_and_path_scoped() {
        let lc = login_cookie();
        let (login, set) = lc.begin("/x".into(), 1000);
        assert!(set.starts_with(&format!("__Secure-applegate-login-{}=", &login.state[..12])));
        for attr in [
            "SameSite=None",
            "Secure",
            "HttpOnly",
            "Path=/oauth2/callback",
            "Max-Age=600",
        ] {
            assert!(set.contains(attr), "{set} lacks {attr}");
        }
    }

    #[test]
    fn finish_checks_state_age_and_single_use() {
        let lc = login_cookie();
        let (login, set) = lc.begin("/x".into(), 1000);
        let v = value(&set);
        assert_eq!(
            lc.finish(&login.state, None, 1001),
            Err(LoginError::Missing)
        );
        assert_eq!(
            lc.finish("short", Some(&v), 1001),
            Err(LoginError::BadState)
        );
        assert_eq!(
            lc.finish(&login.state, Some(&v), 1601),
            Err(LoginError::Expired)
        );
        let mut other = login.state.clone();
        other.replace_range(21.., if other.ends_with('A') { "B" } else { "A" });
        // Same tag, so the cookie opens, but the state in it is not the form's.
        assert_eq!(lc.finish(&other, Some(&v), 1001), Err(LoginError::Mismatch));
        assert_eq!(lc.finish(&login.state, Some(&v), 1001), Ok(login.clone()));
        assert_eq!(
            lc.finish(&login.state, Some(&v), 1002),
            Err(LoginError::Replayed)
        );
    }
}
