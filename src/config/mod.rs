//! The typed configuration the rest of the gateway sees.
//!
//! Two layers, as in river and oauth2-proxy: each section's file mirrors
//! its TOML table (unknown keys are errors, enums for choices) and turns it
//! into that section's typed struct; [`validate`] runs every section and
//! collects *every* problem, each with its key path and what was expected.
//! Only [`Config`] leaves this module: URLs are parsed, durations are
//! durations, keys are loaded and upstream addresses are resolved, so nothing
//! downstream re-parses or can fail on config.
//!
//! Layout: [`file`] reads a table into its mirror with errors as data;
//! [`validate`] holds the problem list and runs every section; `duration`
//! and `secrets` read the values several sections share (durations, and a
//! secret from a file or the environment); then one file per section:
//! `server`, `apple`, `session`, `state`, `rate_limit`, `policy`,
//! `routes` (with `upstream`, a route's URL or pool), `log`, `assertion`, `admin` (and `tls`, `[server.tls]`), each with its mirror, its typed struct and its checks.

mod admin;
mod apple;
mod assertion;
mod duration;
pub mod file;
mod log;
mod policy;
mod rate_limit;
mod routes;
mod secrets;
mod server;
mod session;
mod state;
pub mod tls;
pub mod upstream;
pub mod validate;

use std::fmt;
use std::path::Path;

pub use admin::Admin;
pub use apple::{
    Apple, APPLE_BASE_URL, DEFAULT_NOTIFICATIONS_PATH, ENV_APPLE_PRIVATE_KEY,
    MAX_CLIENT_SECRET_LIFETIME,
};
pub use assertion::{Assertion, ENV_ASSERTION_KEY, ENV_ASSERTION_PREVIOUS_KEY};
pub use duration::parse_duration;
pub use log::{Log, LogFormat};
pub use policy::Policy;
pub use rate_limit::RateLimit;
pub use routes::{AuthMode, Route};
pub use server::{EncodedSlashes, PublicUrl, Server, DEFAULT_READ_BUFFER, DEFAULT_UPGRADE_SOCK};
pub use session::{RedirectHost, Revalidate, SameSite, Session, ENV_SESSION_SECRET};
pub use state::{
    Redis, State, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT, DEFAULT_STATE_FILE,
    ENV_REDIS_URL,
};
pub use tls::Tls;
pub use upstream::{Balance, HealthCheck, Upstream, UpstreamCa, Upstreams};
pub use validate::Problem;

/// Everything the gateway needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub apple: Apple,
    pub session: Session,
    /// Where what the server keeps lives (durable by default).
    pub state: State,
    pub rate_limit: RateLimit,
    pub policy: Policy,
    pub routes: Vec<Route>,
    pub log: Log,
    /// The key and lifetime of the identity assertions sent upstream.
    pub assertion: Assertion,
    /// The admin listener, if any.
    pub admin: Admin,
    /// Things that work but that an operator should hear about (`check` prints them).
    pub warnings: Vec<String>,
}

/// Why a config could not be loaded: every problem found.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// This process's soft limit on open files (each client connection holds
/// one), for the default and the check of `server.max_connections`.
pub fn fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok {
        lim.rlim_cur
    } else {
        1024
    }
}

/// Where secrets from the environment come from; injected so tests need not
/// touch the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem::new(
                "",
                format!("cannot read config file {}: {e}", path.display()),
            )],
        })?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        Config::from_toml(&text, base_dir, env)
    }

    /// Validates config text; relative file paths are taken from `base_dir`.
    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        validate::validate(text, base_dir, env).map_err(|problems| ConfigError { problems })
    }
}
