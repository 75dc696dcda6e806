//! `[session]`: the session cookie and the secrets that seal it.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

use super::duration::DurationText;
use super::secrets::{self, Wanted};
use super::server::PublicUrl;
use super::validate::Validator;

/// Environment variable holding the session secret(s).
pub const ENV_SESSION_SECRET: &str = "APPLEGATE_SESSION_SECRET";

/// `[session]`
#[derive(Debug, Clone)]
pub struct Session {
    /// Cookie keys derived from the configured secrets; the first seals, all open.
    pub keys: Secret<Vec<cookie::Key>>,
    pub cookie_name: String,
    pub cookie_domain: Option<String>,
    /// Other hosts a sign-in or sign-out may return to (`rd`), all within
    /// `cookie_domain`.
    pub redirect_hosts: Vec<RedirectHost>,
    /// The absolute cap: a session ends this long after sign-in, used or not.
    pub lifetime: Duration,
    /// A session unused this long ends (at most `lifetime`).
    pub idle_timeout: Duration,
    /// Re-validation with Apple, when asked for.
    pub revalidate: Option<Revalidate>,
    pub login_timeout: Duration,
    pub same_site: SameSite,
    /// Whether cookies carry `Secure` (the public URL is https).
    pub secure: bool,
    /// Test only, never read from the file: the login-state cookie says
    /// `SameSite=Lax`, which loses Apple's cross-site `form_post`. Set by
    /// [`crate::kit::break_login_cookie`] for the browser tests' negative
    /// control; `false` from every config file.
    #[doc(hidden)]
    pub login_cookie_lax: bool,
}

/// One `session.redirect_hosts` entry: a host name (and port), or a
/// `.suffix` for any subdomain of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectHost {
    /// Lower case, without the leading dot of a suffix, without port.
    pub name: String,
    /// Whether any subdomain of `name` matches (not `name` itself).
    pub suffix: bool,
    /// The port, `None` for the public URL scheme's default port.
    pub port: Option<u16>,
}

/// `session.revalidate` and `session.revalidate_grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revalidate {
    /// How often each session's authorization is checked with Apple.
    pub every: Duration,
    /// How long past a due check a session may go on while Apple cannot be
    /// reached; then it fails closed.
    pub grace: Duration,
}

/// The shortest re-validation interval: Apple asks for at most one
/// refresh-token check a day and throttles frequent ones.
const MIN_REVALIDATE: Duration = Duration::from_secs(3600);

/// `SameSite` of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Lax,
    Strict,
}

/// `[session]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionSection {
    secret_file: Option<String>,
    cookie_name: Option<String>,
    cookie_domain: Option<String>,
    redirect_hosts: Option<Vec<String>>,
    lifetime: Option<DurationText>,
    idle_timeout: Option<DurationText>,
    revalidate: Option<DurationText>,
    revalidate_grace: Option<DurationText>,
    login_timeout: Option<DurationText>,
    same_site: Option<SameSite>,
}

/// Reads and checks `[session]`; `None` if it cannot be used. Whether the
/// cookie is `Secure` and which domains fit depend on the public URL.
pub(super) fn read(
    v: &mut Validator<'_>,
    top: &toml::Table,
    public_url: Option<&PublicUrl>,
) -> Option<Session> {
    let s: SessionSection = v.section(top, "session");
    // Asked for when a sign-in seems to lose its cookie; None is not offered
    // because it is not needed for that.
    v.hint(
        "session.same_site",
        "the sign-in round trip has its own SameSite=None cookie",
    );
    let secure = public_url.is_some_and(|u| u.https);
    let keys = keys(v, s.secret_file);
    let cookie_domain = s
        .cookie_domain
        .map(|d| d.trim_start_matches('.').to_ascii_lowercase());
    let cookie_name = s.cookie_name.unwrap_or_else(|| {
        match (secure, &cookie_domain) {
            (true, None) => "__Host-applegate",
            (true, Some(_)) => "__Secure-applegate",
            (false, _) => "applegate",
        }
        .to_string()
    });
    let key = "session.cookie_name";
    if cookie_name.is_empty() || !cookie_name.bytes().all(is_cookie_name_byte) {
        v.problem(
            key,
            format!("expected letters, digits and !#$%&'*+-.^_`|~ only, found {cookie_name:?}"),
        );
    } else if cookie_name.starts_with("__Host-") && (!secure || cookie_domain.is_some()) {
        v.problem(
            key,
            "a __Host- cookie needs an https public_url and no cookie_domain (browsers drop it otherwise)",
        );
    } else if cookie_name.starts_with("__Secure-") && !secure {
        v.problem(
            key,
            "a __Secure- cookie needs an https public_url (browsers drop it otherwise)",
        );
    }
    if let (Some(d), Some(u)) = (&cookie_domain, public_url) {
        if u.host != *d && !u.host.ends_with(&format!(".{d}")) {
            v.problem(
                "session.cookie_domain",
                format!("{d:?} does not contain the public_url host {:?}, so browsers would refuse the cookie", u.host),
            );
        }
    }
    let redirect_hosts = redirect_hosts(v, s.redirect_hosts, cookie_domain.as_deref(), public_url);
    let lifetime = DurationText::or(s.lifetime, Duration::from_secs(7 * 86_400));
    if lifetime < Duration::from_secs(60) {
        v.problem("session.lifetime", "expected at least \"1m\"");
    }
    let idle_timeout = idle_timeout(v, s.idle_timeout, lifetime);
    let revalidate = revalidate(v, s.revalidate, s.revalidate_grace);
    let login_timeout = DurationText::or(s.login_timeout, Duration::from_secs(600));
    if login_timeout < Duration::from_secs(60) || login_timeout > Duration::from_secs(600) {
        v.problem(
            "session.login_timeout",
            "expected between \"1m\" and \"10m\" (how long a sign-in round trip through Apple may take)",
        );
    }
    Some(Session {
        keys: keys?,
        cookie_name,
        cookie_domain,
        redirect_hosts,
        lifetime,
        idle_timeout,
        revalidate,
        login_timeout,
        same_site: s.same_site.unwrap_or(SameSite::Lax),
        secure,
        login_cookie_lax: false,
    })
}

/// `session.redirect_hosts`: host names with an optional port, or
/// `.suffix`; each within `cookie_domain`, which they need (else the
/// session cookie would not reach them, and the user would land signed
/// out). IP literals are refused: a cookie domain is a name.
fn redirect_hosts(
    v: &mut Validator<'_>,
    list: Option<Vec<String>>,
    domain: Option<&str>,
    public_url: Option<&PublicUrl>,
) -> Vec<RedirectHost> {
    let Some(list) = list else {
        return Vec::new();
    };
    let Some(domain) = domain else {
        v.problem(
            "session.redirect_hosts",
            "needs session.cookie_domain (the domain these hosts share), or the session cookie would not reach them",
        );
        return Vec::new();
    };
    let default_port = if public_url.is_some_and(|u| u.https) {
        443
    } else {
        80
    };
    let mut hosts = Vec::new();
    for (i, text) in list.iter().enumerate() {
        let key = format!("session.redirect_hosts[{i}]");
        let (suffix, rest) = match text.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let written = rest.split(':').next().unwrap_or_default();
        let host = crate::canonical::host::parse(rest.as_bytes())
            .ok()
            .filter(|c| {
                c.name.eq_ignore_ascii_case(written)
                    && c.name.parse::<std::net::IpAddr>().is_err()
                    && !c.name.starts_with('[')
            });
        let Some(host) = host else {
            v.problem(
                &key,
                format!("expected a host name with an optional port (\"app.example.com\", \"admin.example.com:8443\") or \".example.com\" for any subdomain, found {text:?}"),
            );
            continue;
        };
        let name = host.name.into_owned();
        if name != domain && !name.ends_with(&format!(".{domain}")) {
            v.problem(
                &key,
                format!("{text:?} is not within session.cookie_domain {domain:?}, so the session cookie would not reach it"),
            );
            continue;
        }
        hosts.push(RedirectHost {
            name,
            suffix,
            port: host.port.filter(|p| *p != default_port),
        });
    }
    hosts
}

/// `session.idle_timeout`: 24 hours by default (someone who uses the app
/// every working day is never asked again within `lifetime`; a cookie left
/// behind on a shared machine dies within a day), capped by `lifetime`
/// when that is shorter. At least 5 minutes: the cookie is re-issued at
/// most every tenth of it, so shorter would mean a Set-Cookie every few
/// seconds.
fn idle_timeout(v: &mut Validator<'_>, set: Option<DurationText>, lifetime: Duration) -> Duration {
    let key = "session.idle_timeout";
    let Some(DurationText(idle)) = set else {
        return lifetime.min(Duration::from_secs(86_400));
    };
    if idle < Duration::from_secs(300) {
        v.problem(key, "expected at least \"5m\"");
    } else if idle > lifetime {
        v.problem(
            key,
            "expected at most session.lifetime (the absolute cap); leave it out to follow lifetime",
        );
    }
    idle
}

/// `session.revalidate` (off unless set; at least an hour) and
/// `session.revalidate_grace` (1 hour by default: Apple outages are short,
/// and each session is due at its own time, so an hour rides one out while
/// a revoked user keeps access at most interval + grace; at most the
/// interval, and at least a minute, the pause between retries).
fn revalidate(
    v: &mut Validator<'_>,
    every: Option<DurationText>,
    grace: Option<DurationText>,
) -> Option<Revalidate> {
    let Some(DurationText(every)) = every else {
        if grace.is_some() {
            v.problem(
                "session.revalidate_grace",
                "has no effect without session.revalidate; set both or neither",
            );
        }
        return None;
    };
    if every < MIN_REVALIDATE {
        v.problem(
            "session.revalidate",
            "expected at least \"1h\" (Apple throttles frequent refresh-token checks; it asks for one a day)",
        );
    }
    let grace = DurationText::or(grace, Duration::from_secs(3600));
    if grace < Duration::from_secs(60) || grace > every {
        v.problem(
            "session.revalidate_grace",
            "expected between \"1m\" and session.revalidate",
        );
    }
    Some(Revalidate { every, grace })
}

/// The cookie keys, one per configured secret.
fn keys(v: &mut Validator<'_>, file: Option<String>) -> Option<Secret<Vec<cookie::Key>>> {
    let wanted = Wanted {
        key: "session.secret_file",
        env: ENV_SESSION_SECRET,
        noun: "secret",
        missing: &format!("missing; expected a file holding a random secret (make one with `openssl rand -base64 48`), or the secret in {ENV_SESSION_SECRET}"),
    };
    let loaded = secrets::load(v, &wanted, file)?;
    let secrets: Vec<&str> = loaded
        .text
        .expose()
        .lines()
        .flat_map(|l| l.split([',', ' ', '\t']))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if secrets.is_empty() {
        v.problem(
            wanted.key,
            "no secret found; expected one secret per line (the first seals, all open)",
        );
        return None;
    }
    let mut keys = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        if !has_enough_entropy(s) {
            v.problem(
                wanted.key,
                format!("secret #{} looks weaker than 32 random bytes; make one with `openssl rand -base64 48`", i + 1),
            );
            continue;
        }
        // derive_from needs at least 32 bytes, which has_enough_entropy ensures.
        keys.push(cookie::Key::derive_from(s.as_bytes()));
    }
    (keys.len() == secrets.len()).then(|| Secret::new(keys))
}

/// RFC 6265 cookie-name characters (an HTTP token).
fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A rough estimate of whether `s` carries 256 bits: its length times the
/// bits per character of the smallest alphabet it fits (hex, base64, any
/// printable), and no fewer than ten distinct characters.
fn has_enough_entropy(s: &str) -> bool {
    let bits_per_char = if s.bytes().all(|b| b.is_ascii_digit()) {
        3.32
    } else if s.bytes().all(|b| b.is_ascii_hexdigit()) {
        4.0
    } else if s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b))
    {
        6.0
    } else {
        6.5
    };
    let distinct: std::collections::HashSet<u8> = s.bytes().collect();
    s.len() >= 32 && distinct.len() >= 10 && s.len() as f64 * bits_per_char >= 256.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_estimate_accepts_generated_secrets_only() {
        // `openssl rand -base64 48` and `-hex 32` style secrets pass.
        assert!(has_enough_entropy(
            "q3J0bXk2c0FkZ2VGcGxhbnRzK2FyZS9nb29kLWZvci15b3U9PQ"
        ));
        assert!(has_enough_entropy(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ));
        assert!(!has_enough_entropy("correct horse battery staple"));
        assert!(!has_enough_entropy(&"ab".repeat(40)));
        assert!(!has_enough_entropy(
            "0123456789012345678901234567890123456789"
        ));
    }
}
