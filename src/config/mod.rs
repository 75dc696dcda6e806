//! The typed configuration the rest of the gateway sees.
//!
//! Two layers, as in river and oauth2-proxy: [`file`] mirrors the TOML
//! (unknown keys are errors), [`validate`] turns it into [`Config`] and
//! collects *every* problem, each with its key path and what was expected.
//! Only [`Config`] leaves this module: URLs are parsed, durations are
//! durations, keys are loaded and upstream addresses are resolved, so nothing
//! downstream re-parses or can fail on config.

pub mod file;
pub mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

pub use validate::{parse_duration, Problem};

/// Environment variable holding the Apple private key (PEM text).
pub const ENV_APPLE_PRIVATE_KEY: &str = "APPLEGATE_APPLE_PRIVATE_KEY";
/// Environment variable holding the session secret(s).
pub const ENV_SESSION_SECRET: &str = "APPLEGATE_SESSION_SECRET";
/// Default per-connection read buffer (`server.read_buffer`).
pub const DEFAULT_READ_BUFFER: usize = 4096;
/// Apple's production base URL.
pub const APPLE_BASE_URL: &str = "https://appleid.apple.com";
/// Apple caps a client secret's lifetime at six months (15777000 s).
/// <https://developer.apple.com/documentation/accountorganizationaldatasharing/creating-a-client-secret>
pub const MAX_CLIENT_SECRET_LIFETIME: Duration = Duration::from_secs(15_777_000);

/// Everything the gateway needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub apple: Apple,
    pub session: Session,
    pub revocation: Revocation,
    pub rate_limit: RateLimit,
    pub policy: Policy,
    pub routes: Vec<Route>,
    pub log: Log,
    /// Things that work but that an operator should hear about (`check` prints them).
    pub warnings: Vec<String>,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub public_url: PublicUrl,
    pub threads: usize,
    pub grace_period: Duration,
    pub max_callback_body: usize,
    /// Per-connection read buffer in bytes; 0 reads straight into the
    /// request parser's buffer.
    pub read_buffer: usize,
    /// Paths with encoded slashes, unless a route says otherwise.
    pub encoded_slashes: EncodedSlashes,
    /// Peers whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are kept
    /// and extended; from anyone else they are replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Deadline for reading a whole request head (not reset per byte).
    pub head_timeout: Duration,
    /// Largest request head (request line and headers) in bytes.
    pub max_head_size: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// How long an idle keep-alive connection is kept open.
    pub keepalive_timeout: Duration,
    /// Most open client connections; one more is closed at once.
    pub max_connections: usize,
}

/// What a route does with a path holding an encoded `/` or `\` (`%2F`,
/// `%5C`). Default reject: servers disagree on whether it separates
/// segments. `Keep` is for apps that need it (Matrix, ArgoCD): `%2F` is
/// then neither decoded for routing nor for forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodedSlashes {
    Reject,
    Keep,
}

/// `[rate_limit]`: per-second limits that keep the sign-in endpoints from
/// being used to hammer Apple. Signed-in traffic is never limited.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// `/oauth2/start` and `/oauth2/callback` per client address.
    pub sign_in_per_client: u32,
    /// The same, all clients together.
    pub sign_in_total: u32,
    /// Code exchanges at Apple's token endpoint.
    pub apple_token_calls: u32,
}

/// The external origin of the gateway, e.g. `https://app.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, no trailing slash.
    pub origin: String,
    /// The host name (or IP literal), lowercase, without port.
    pub host: String,
    pub https: bool,
}

impl PublicUrl {
    /// The Return URL to register with Apple.
    pub fn callback_url(&self) -> String {
        format!("{}/oauth2/callback", self.origin)
    }
}

/// `[apple]`
#[derive(Clone)]
pub struct Apple {
    pub team_id: String,
    pub services_id: String,
    pub key_id: String,
    pub private_key: Secret<p256::ecdsa::SigningKey>,
    /// Without trailing slash; also the expected `iss` and the client secret's `aud`.
    pub base_url: String,
    pub scopes: Vec<String>,
    pub timeout: Duration,
    pub client_secret_lifetime: Duration,
    pub keys_refetch_interval: Duration,
    pub leeway: Duration,
    /// App bundle IDs whose native id_tokens are accepted as bearer tokens.
    pub bundle_ids: Vec<String>,
}

impl fmt::Debug for Apple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apple")
            .field("team_id", &self.team_id)
            .field("services_id", &self.services_id)
            .field("key_id", &self.key_id)
            .field("private_key", &self.private_key)
            .field("base_url", &self.base_url)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// `SameSite` of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
}

/// `[session]`
#[derive(Debug, Clone)]
pub struct Session {
    /// Cookie keys derived from the configured secrets; the first seals, all open.
    pub keys: Secret<Vec<cookie::Key>>,
    pub cookie_name: String,
    pub cookie_domain: Option<String>,
    pub lifetime: Duration,
    pub login_timeout: Duration,
    pub same_site: SameSite,
    /// Whether cookies carry `Secure` (the public URL is https).
    pub secure: bool,
}

/// `[revocation]`
#[derive(Debug, Clone, Default)]
pub struct Revocation {
    pub file: Option<PathBuf>,
}

/// `[policy]`: who may sign in. Emails and domains are lowercase.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allowed_emails: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub allowed_subs: Vec<String>,
    pub allow_private_relay: bool,
    pub require_verified_email: bool,
}

/// How a route authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A session is required; browsers are sent to sign in, APIs get 401.
    Required,
    /// No authentication; identity headers are still stripped.
    Public,
    /// An API: `Authorization: Bearer <Apple id_token>` (from a native app
    /// or the web) or a session cookie; never a redirect, 401 otherwise.
    Bearer,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// Lowercase host without port or trailing dot; `None` matches any host.
    pub host: Option<String>,
    /// The port the route's host names, if any; else any port matches.
    pub port: Option<u16>,
    pub path: String,
    pub encoded_slashes: EncodedSlashes,
    pub upstream: Upstream,
    pub auth: AuthMode,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// A resolved upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// As written, for messages.
    pub url: String,
    pub addr: SocketAddr,
    pub tls: bool,
    /// SNI and certificate name for https upstreams.
    pub sni: String,
}

/// Access and diagnostic log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`
#[derive(Debug, Clone)]
pub struct Log {
    /// A `tracing_subscriber::EnvFilter` directive, e.g. `info`.
    pub level: String,
    pub format: LogFormat,
    /// One access event per request (at info level).
    pub access: bool,
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
