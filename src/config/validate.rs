//! Runs every section and collects every problem.
//!
//! The validator never stops at the first error: each section is read on
//! its own ([`super::file`]), a bad key is set aside and the section read
//! again, and each section's checks add to one list. Every [`Problem`]
//! names its key path and says what was expected, so one run of
//! `applegate check` shows the operator all there is to fix.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::file;
use super::{admin, apple, assertion, log, policy, rate_limit, routes, server, session, state};
use super::{Config, EnvLookup};

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `apple.team_id` or `routes[0].upstream`; empty
    /// for problems with the file as a whole.
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// The top-level tables, for the unknown-section message; each is read by
/// its own module in [`validate`].
const SECTIONS: &[&str] = &[
    "server",
    "apple",
    "session",
    "state",
    "rate_limit",
    "policy",
    "routes",
    "log",
    "assertion",
    "admin",
];

/// Validates `text`; see [`Config::from_toml`].
pub fn validate(text: &str, base_dir: &Path, env: EnvLookup<'_>) -> Result<Config, Vec<Problem>> {
    // toml's syntax message is kept whole: it shows the line and column.
    let top: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![Problem::new("", format!("invalid TOML: {e}"))])?;
    let mut v = Validator::new(base_dir, env);
    for key in top.keys() {
        // `revocation` (replaced by `state`) has its own message there.
        if !SECTIONS.contains(&key.as_str()) && key != "revocation" {
            v.problem(
                key,
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            );
        }
    }
    let state = state::read(&mut v, &top);
    let server = server::read(&mut v, &top, &state);
    let apple = apple::read(&mut v, &top);
    let session = session::read(&mut v, &top, server.as_ref().map(|s| &s.public_url));
    let rate_limit = rate_limit::read(&mut v, &top);
    let policy = policy::read(&mut v, &top);
    let log = log::read(&mut v, &top);
    let assertion = assertion::read(&mut v, &top);
    let admin = admin::read(&mut v, &top, server.as_ref());
    let slashes = server
        .as_ref()
        .map_or(server::EncodedSlashes::Reject, |s| s.encoded_slashes);
    let routes = routes::read(&mut v, &top, slashes, &policy);

    match (server, apple, session) {
        (Some(server), Some(apple), Some(session)) if v.problems.is_empty() => Ok(Config {
            server,
            apple,
            session,
            state,
            rate_limit,
            policy,
            routes,
            log,
            assertion,
            admin,
            warnings: v.warnings,
        }),
        _ => Err(v.problems),
    }
}

/// `text` as an http or https URL with a host (an origin, an upstream,
/// Apple's base URL), or `None`.
pub(super) fn http_url(text: &str) -> Option<url::Url> {
    url::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// What every section's checks share: the list of problems and warnings,
/// and where relative paths and secrets come from.
pub(super) struct Validator<'a> {
    problems: Vec<Problem>,
    warnings: Vec<String>,
    base_dir: &'a Path,
    pub(super) env: EnvLookup<'a>,
}

impl<'a> Validator<'a> {
    /// No problems yet; relative paths from `base_dir`, secrets from `env`.
    pub(super) fn new(base_dir: &'a Path, env: EnvLookup<'a>) -> Self {
        Validator {
            problems: Vec::new(),
            warnings: Vec::new(),
            base_dir,
            env,
        }
    }

    /// The problems found (for one section's own tests).
    #[cfg(test)]
    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    pub(super) fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    /// Something that works but that an operator should hear about.
    pub(super) fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// How many problems so far; a section compares before and after.
    pub(super) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Adds `hint` to the problems already reported for `key`.
    pub(super) fn hint(&mut self, key: &str, hint: &str) {
        for p in self.problems.iter_mut().filter(|p| p.key == key) {
            p.message = format!("{} ({hint})", p.message);
        }
    }

    /// A path from the config, relative to the config file's directory.
    pub(super) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Reads table `name` of the file into its mirror (defaults if absent).
    pub(super) fn section<T: DeserializeOwned + Default>(
        &mut self,
        top: &toml::Table,
        name: &str,
    ) -> T {
        match top.get(name) {
            None => T::default(),
            Some(toml::Value::Table(t)) => self.table(t.clone(), name),
            Some(other) => {
                self.problem(
                    name,
                    format!("expected a table [{name}], found {}", other.type_str()),
                );
                T::default()
            }
        }
    }

    /// Reads `t` (at key path `at`) into its mirror. Serde stops at the
    /// first bad key; it is reported and set aside and the rest read again,
    /// so all bad keys of a table are reported together.
    pub(super) fn table<T: DeserializeOwned + Default>(
        &mut self,
        mut t: toml::Table,
        at: &str,
    ) -> T {
        // Each round reports and removes one key, so this ends.
        loop {
            match file::read::<T>(t.clone()) {
                Ok(mirror) => return mirror,
                Err(e) => {
                    self.problem(format!("{at}{}", e.path_text()), e.message());
                    match e.key() {
                        Some(k) if t.remove(k).is_some() => {}
                        _ => return T::default(),
                    }
                }
            }
        }
    }

    /// A whole number within `range` (inclusive), or `default` when unset.
    pub(super) fn bounded(
        &mut self,
        value: Option<i64>,
        key: &str,
        what: &str,
        range: (i64, i64),
        default: usize,
    ) -> usize {
        match value {
            None => default,
            Some(n) if (range.0..=range.1).contains(&n) => n as usize,
            Some(n) => {
                self.problem(
                    key,
                    format!("expected {what} from {} to {}, found {n}", range.0, range.1),
                );
                default
            }
        }
    }
}

/// Every problem of config `text` (read beside `.`), as printed: for the
/// tests of each section.
#[cfg(test)]
pub(super) fn problems_with_env(text: &str, env: EnvLookup<'_>) -> Vec<String> {
    validate(text, Path::new("."), env)
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        problems_with_env(text, &|_| None)
    }

    #[test]
    fn every_bad_key_of_a_section_is_reported() {
        let found = problems(
            "[server]\nlistn = 1\nthreads = \"two\"\ntrusted_proxies = [1]\ngrace_period = \"soon\"\nencoded_slashes = \"sometimes\"\n",
        );
        for expected in [
            "server.listn: unknown key; expected one of listen, public_url",
            "server.threads: invalid type: string \"two\", expected i64",
            "server.trusted_proxies[0]: invalid type: integer `1`, expected a string",
            "server.grace_period: expected a duration such as",
            "server.encoded_slashes: expected \"reject\" or \"keep\", found \"sometimes\"",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn hints_stay_on_their_key() {
        let found = problems("[session]\nsame_site = \"none\"\n");
        assert!(
            found.contains(&"session.same_site: expected \"lax\" or \"strict\", found \"none\" (the sign-in round trip has its own SameSite=None cookie)".to_string()),
            "{found:#?}"
        );
    }

    /// Both secrets go through one loader: the file or the variable, never
    /// both, and messages name where a secret came from, not what it is.
    #[test]
    fn secrets_come_from_a_file_or_the_environment() {
        let env = |name: &str| match name {
            crate::config::ENV_SESSION_SECRET => Some("s3cr3t-in-env".to_string()),
            crate::config::ENV_APPLE_PRIVATE_KEY => Some("not-a-pem-key".to_string()),
            _ => None,
        };
        let found = problems_with_env("[session]\nsecret_file = \"session.key\"\n", &env);
        for expected in [
            "session.secret_file: set both here and in APPLEGATE_SESSION_SECRET; keep one so it is clear which secret is used",
            "apple.private_key_file: APPLEGATE_APPLE_PRIVATE_KEY is not a P-256 private key in PKCS#8 PEM",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
        assert!(!found
            .iter()
            .any(|p| p.contains("s3cr3t") || p.contains("not-a-pem")));
        let found = problems("");
        assert!(
            found.iter().any(|p| p.starts_with(
                "session.secret_file: missing; expected a file holding a random secret"
            )),
            "{found:#?}"
        );
    }

    /// The idle timeout stays within the lifetime; re-validation no more
    /// often than hourly, its grace between a minute and the interval, and
    /// never without it.
    #[test]
    fn session_timeouts_are_checked() {
        let found = problems(
            "[session]\nlifetime = \"1d\"\nidle_timeout = \"2d\"\nrevalidate = \"10m\"\nrevalidate_grace = \"1h\"\n",
        );
        for expected in [
            "session.idle_timeout: expected at most session.lifetime",
            "session.revalidate: expected at least \"1h\"",
            "session.revalidate_grace: expected between \"1m\" and session.revalidate",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
        let found = problems("[session]\nidle_timeout = \"1m\"\nrevalidate_grace = \"1h\"\n");
        for expected in [
            "session.idle_timeout: expected at least \"5m\"",
            "session.revalidate_grace: has no effect without session.revalidate",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
    }

    /// `session.redirect_hosts` needs `cookie_domain` and names only
    /// hosts within it; a pool keeps one scheme; each problem has its key.
    #[test]
    fn redirect_hosts_and_pools_are_checked() {
        let found = problems("[session]\nredirect_hosts = [\"app.example.com\"]\n");
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("session.redirect_hosts: needs session.cookie_domain")),
            "{found:#?}"
        );
        let found = problems(
            "[session]\ncookie_domain = \"example.com\"\nredirect_hosts = [\"app.example.com\", \"evil.com\", \"https://x.example.com\", \"127.0.0.1\", \".example.com\", \"a.example.com.\"]\n\
             [[routes]]\nupstream = [\"http://127.0.0.1:1\", \"https://127.0.0.1:2\"]\n\
             [[routes]]\npath = \"/b\"\nupstream = []\n",
        );
        for expected in [
            "session.redirect_hosts[1]: \"evil.com\" is not within session.cookie_domain",
            "session.redirect_hosts[2]: expected a host name",
            "session.redirect_hosts[3]: expected a host name",
            "session.redirect_hosts[5]: expected a host name",
            "routes[0].upstream: mixes http:// and https://",
            "routes[1].upstream: empty list",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
        for fine in ["redirect_hosts[0]", "redirect_hosts[4]"] {
            assert!(!found.iter().any(|p| p.contains(fine)), "{found:#?}");
        }
    }
}
