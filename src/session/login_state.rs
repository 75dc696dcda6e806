//! The login-state cookie: what carries a sign-in across Apple and back.
//!
//! `/oauth2/start` makes a random `state` and `nonce` and seals them, with
//! the return path and the time, into a cookie. Apple's page POSTs the
//! callback cross-site, and browsers only send `SameSite=None` cookies on a
//! cross-site POST, so this cookie is `SameSite=None; Secure; HttpOnly`,
//! short-lived and single use (the session cookie itself stays `Lax`). Its
//! name carries a tag of the state, so two sign-ins in two tabs do not
//! overwrite each other.
//!
//! On https its name has the `__Host-` prefix, which browsers accept only
//! with `Secure`, `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2). Why: a
//! cookie without it can be planted by a sibling subdomain (`Domain=` the
//! parent), and a planted login state lets an attacker finish a sign-in of
//! their own in the victim's browser (login CSRF). So the path is `/`, not
//! the callback's, and `session.cookie_domain` never applies to it. `Path=/`
//! also lets `/oauth2/start` see the login states in flight, which the cap
//! ([`MAX_IN_FLIGHT`]) needs.

use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{cookie_pairs, random_token, LoginError, Sealer};
use crate::config;

/// State characters that name the cookie.
const TAG_LEN: usize = 12;
/// Login states a browser holds at once; `begin` deletes the oldest beyond
/// it. Why a cap: each `/oauth2/start` sets a cookie, and one whose sign-in
/// is never finished (a closed tab, a page polling a protected URL) stays
/// until it expires. Uncapped, 61 starts within the login timeout left 60
/// cookies and a 10.9 KB `Cookie` header, above nginx's default 8 KB per
/// header line (`large_client_header_buffers`), so every request to the
/// site failed with 400 until they expired. mod_auth_openidc caps them
/// too (`OIDCStateMaxNumberOfCookies` with delete-oldest). Why 4: sign-ins
/// started in a few tabs at once still all finish, and at about 200 bytes
/// per cookie (a short return path) four add under 1 KB to each request.
pub const MAX_IN_FLIGHT: usize = 4;

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

/// Issues and checks login-state cookies.
pub struct LoginCookie {
    sealer: Sealer,
    /// Cookie name up to the state tag.
    prefix: String,
    timeout: u64,
    /// `None`, as the cross-site `form_post` needs; `Lax` only under the
    /// test switch `config::Session::login_cookie_lax`.
    same_site: SameSite,
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
        // Always Secure (SameSite=None requires it); the __Host- prefix
        // only where the origin is https, as browsers require (see the
        // module doc for why __Host-).
        let prefix = if cfg.secure {
            format!("__Host-{base}-login-")
        } else {
            format!("{base}-login-")
        };
        LoginCookie {
            sealer: Sealer::new(cfg.keys.clone()),
            prefix,
            timeout: cfg.login_timeout.as_secs(),
            same_site: if cfg.login_cookie_lax {
                SameSite::Lax
            } else {
                SameSite::None
            },
            used: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(cfg.login_timeout)
                .build(),
        }
    }

    /// Whether `name` is a login-state cookie (to keep it from upstreams,
    /// which see it now that its path is `/`): our prefix and a state tag.
    pub fn is_login_cookie(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .is_some_and(|tag| tag.len() == TAG_LEN && tag.bytes().all(is_token_byte))
    }

    /// Starts a round trip returning to `return_to`. `cookies` are the
    /// request's `Cookie` header values: when they already hold
    /// [`MAX_IN_FLIGHT`] login states or more, the oldest are deleted so
    /// that at most that many remain with the new one. Returns the state
    /// and every `Set-Cookie` value to send (deletions, then the new one).
    pub fn begin<'a>(
        &self,
        return_to: String,
        now: u64,
        cookies: impl Iterator<Item = &'a [u8]>,
    ) -> (LoginState, Vec<String>) {
        let login = LoginState {
            state: random_token(16),
            nonce: random_token(16),
            return_to,
            created_at: now,
        };
        let name = self.name_for(&login.state).unwrap_or_default();
        let value = self.sealer.seal(&name, &login);
        let mut set_cookies = self.evict_oldest(cookies);
        set_cookies.push(self.cookie(name, value, self.timeout as i64));
        (login, set_cookies)
    }

    /// `Set-Cookie` values deleting the oldest login cookies among
    /// `cookies`, leaving room for one more under [`MAX_IN_FLIGHT`]. Age is
    /// the sealed `created_at`; a cookie that does not open counts as
    /// oldest (it could never finish a sign-in anyway).
    fn evict_oldest<'a>(&self, cookies: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
        let mut held: Vec<(&str, &str)> = cookie_pairs(cookies)
            .filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, std::str::from_utf8(v).ok()?)))
            .filter(|(n, _)| self.is_login_cookie(n))
            .collect();
        // A browser sends one cookie per name for one path; a repeat would
        // be deleted by the same Set-Cookie, so it counts once.
        held.sort_unstable_by_key(|(n, _)| *n);
        held.dedup_by_key(|(n, _)| *n);
        if held.len() < MAX_IN_FLIGHT {
            // The common case decrypts nothing.
            return Vec::new();
        }
        let mut aged: Vec<(u64, &str)> = held
            .iter()
            .map(|(n, v)| {
                let created = self
                    .sealer
                    .open::<LoginState>(n, v)
                    .map_or(0, |l| l.created_at);
                (created, *n)
            })
            .collect();
        aged.sort_unstable();
        // At least one, as held.len() >= MAX_IN_FLIGHT.
        let excess = aged.len() + 1 - MAX_IN_FLIGHT;
        aged.iter()
            .take(excess)
            .map(|(_, n)| self.cookie(n.to_string(), String::new(), 0))
            .collect()
    }

    /// The cookie name for `state`, if `state` could be one of ours.
    pub fn name_for(&self, state: &str) -> Option<String> {
        let ok = state.len() == 22 && state.bytes().all(is_token_byte);
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

    /// A `Set-Cookie` value. Never a `Domain`, always `Path=/`: what
    /// `__Host-` demands, and one rule on http too.
    fn cookie(&self, name: String, value: String, max_age: i64) -> String {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(true)
            .same_site(self.same_site)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
            .to_string()
    }
}

/// A base64url character, as in our state tokens.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::Duration;

    fn config(secure: bool, cookie_domain: Option<&str>) -> config::Session {
        config::Session {
            keys: Secret::new(vec![cookie::Key::derive_from(
                b"0123456789abcdef0123456789abcdef-login-test-secret",
            )]),
            cookie_name: "__Host-applegate".into(),
            cookie_domain: cookie_domain.map(str::to_string),
            redirect_hosts: Vec::new(),
            lifetime: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
            revalidate: None,
            login_timeout: Duration::from_secs(600),
            same_site: config::SameSite::Lax,
            secure,
            login_cookie_lax: false,
        }
    }

    fn login_cookie() -> LoginCookie {
        LoginCookie::new(&config(true, None))
    }

    /// `begin` with no cookies in the request: the state and its one Set-Cookie.
    fn begin(lc: &LoginCookie, now: u64) -> (LoginState, String) {
        let (login, mut set) = lc.begin("/x".into(), now, std::iter::empty());
        assert_eq!(set.len(), 1);
        (login, set.remove(0))
    }

    fn value(set_cookie: &str) -> String {
        Cookie::parse(set_cookie.to_string())
            .unwrap()
            .value()
            .to_string()
    }

    #[test]
    fn cookie_is_host_prefixed_samesite_none_and_never_has_a_domain() {
        // cookie_domain is for the session cookie; the login state ignores it.
        let lc = LoginCookie::new(&config(true, Some("example.com")));
        let (login, set) = begin(&lc, 1000);
        let name = format!("__Host-applegate-login-{}", &login.state[..12]);
        assert!(set.starts_with(&format!("{name}=")), "{set}");
        let parsed = Cookie::parse(set.clone()).unwrap();
        assert_eq!(parsed.path(), Some("/"), "{set}");
        assert_eq!(parsed.domain(), None, "{set}");
        for attr in ["SameSite=None", "Secure", "HttpOnly", "Max-Age=600"] {
            assert!(set.contains(attr), "{set} lacks {attr}");
        }
        assert!(lc.is_login_cookie(&name));
        let clear = lc.clear(&login.state).unwrap();
        assert!(
            clear.starts_with(&format!("{name}=;")) && clear.contains("Path=/;"),
            "{clear}"
        );
        for other in [
            "__Host-applegate",
            "__Secure-applegate-login-AAAAAAAAAAAA",
            "__Host-applegate-login-",
            "__Host-applegate-login-AAAAAAAAAAAAA",
            "__Host-applegate-login-AAAAAAAAAAA.",
        ] {
            assert!(!lc.is_login_cookie(other), "{other}");
        }
    }

    #[test]
    fn on_plain_http_no_prefix_and_the_same_path() {
        let lc = LoginCookie::new(&config(false, Some("example.com")));
        let (login, set) = begin(&lc, 1000);
        let name = format!("applegate-login-{}", &login.state[..12]);
        assert!(set.starts_with(&format!("{name}=")), "{set}");
        let parsed = Cookie::parse(set.clone()).unwrap();
        assert_eq!((parsed.path(), parsed.domain()), (Some("/"), None), "{set}");
        assert!(lc.is_login_cookie(&name));
    }

    /// A browser's jar for one origin: name ▶ value.
    fn apply(jar: &mut Vec<(String, String)>, set_cookies: &[String]) -> (usize, usize) {
        let (mut added, mut deleted) = (0, 0);
        for set in set_cookies {
            let c = Cookie::parse(set.clone()).unwrap();
            jar.retain(|(n, _)| n != c.name());
            if c.max_age() == Some(cookie::time::Duration::ZERO) {
                deleted += 1;
            } else {
                added += 1;
                jar.push((c.name().to_string(), c.value().to_string()));
            }
        }
        (added, deleted)
    }

    fn header(jar: &[(String, String)]) -> String {
        jar.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn at_most_max_in_flight_login_states_the_oldest_go_first() {
        let lc = login_cookie();
        let mut jar = vec![("__Host-applegate".to_string(), "session".to_string())];
        let mut states = Vec::new();
        for i in 0..10u64 {
            let h = header(&jar);
            let (login, set) = lc.begin("/x".into(), 1000 + i, std::iter::once(h.as_bytes()));
            let (added, deleted) = apply(&mut jar, &set);
            assert_eq!(added, 1);
            assert_eq!(
                deleted,
                usize::from(i as usize >= MAX_IN_FLIGHT),
                "start {i}"
            );
            states.push(login.state);
            let held: Vec<_> = jar.iter().filter(|(n, _)| lc.is_login_cookie(n)).collect();
            assert!(
                held.len() <= MAX_IN_FLIGHT,
                "{} after {} starts",
                held.len(),
                i + 1
            );
        }
        assert!(
            jar.iter().any(|(n, _)| n == "__Host-applegate"),
            "other cookies stay"
        );
        // The newest ones remain, and each still finishes its sign-in.
        for (i, state) in states.iter().enumerate() {
            let name = lc.name_for(state).unwrap();
            let held = jar.iter().find(|(n, _)| *n == name);
            assert_eq!(held.is_some(), i >= 10 - MAX_IN_FLIGHT, "start {i}");
            if let Some((_, v)) = held {
                assert!(lc.finish(state, Some(v), 1010).is_ok());
            }
        }
    }

    #[test]
    fn login_cookies_that_do_not_open_are_evicted_first() {
        let lc = login_cookie();
        let mut jar = Vec::new();
        for i in 0..MAX_IN_FLIGHT as u64 - 1 {
            let (_, set) = begin(&lc, 1000 + i);
            apply(&mut jar, &[set]);
        }
        let forged = "__Host-applegate-login-AAAAAAAAAAAA".to_string();
        jar.push((forged.clone(), "tampered".into()));
        let h = header(&jar);
        let (_, set) = lc.begin("/x".into(), 2000, std::iter::once(h.as_bytes()));
        assert_eq!(set.len(), 2, "{set:?}");
        assert!(set[0].starts_with(&format!("{forged}=;")), "{set:?}");
        // Under the cap, nothing is deleted.
        let mut few = jar.clone();
        few.truncate(2);
        let h = header(&few);
        assert_eq!(
            lc.begin("/x".into(), 2000, std::iter::once(h.as_bytes()))
                .1
                .len(),
            1
        );
    }

    #[test]
    fn finish_checks_state_age_and_single_use() {
        let lc = login_cookie();
        let (login, set) = begin(&lc, 1000);
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
