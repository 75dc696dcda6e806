//! The config file as written: a serde mirror of the TOML.
//!
//! Nothing here is checked beyond TOML types and key names (unknown keys are
//! errors, so a typo never silently falls back to a default). Values the
//! operator must supply are `Option` so that [`super::validate`] can report
//! *every* missing one at once with its key path, instead of serde stopping
//! at the first.

use serde::Deserialize;

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Socket address the gateway listens on.
    pub listen: Option<String>,
    /// The external origin browsers use, e.g. `https://app.example.com`.
    pub public_url: Option<String>,
    /// Worker threads for the proxy.
    pub threads: Option<i64>,
    /// Seconds in-flight requests get to finish on SIGTERM.
    pub grace_period: Option<String>,
    /// Largest accepted callback body.
    pub max_callback_body: Option<i64>,
    /// Per-connection read buffer in bytes (0: none).
    pub read_buffer: Option<i64>,
    /// `"reject"` (default) or `"keep"`: paths with `%2F` / `%5C`.
    pub encoded_slashes: Option<String>,
    /// CIDRs whose forwarding headers are believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// Deadline for a whole request head.
    pub head_timeout: Option<String>,
    /// Largest request head in bytes.
    pub max_head_size: Option<i64>,
    /// Most header fields in one request.
    pub max_headers: Option<i64>,
    /// How long an idle keep-alive connection is kept.
    pub keepalive_timeout: Option<String>,
    /// Most open client connections.
    pub max_connections: Option<i64>,
}

/// `[rate_limit]`: the sign-in endpoints, per second.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    pub sign_in_per_client: Option<i64>,
    pub sign_in_total: Option<i64>,
    pub apple_token_calls: Option<i64>,
}

/// `[apple]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppleSection {
    pub team_id: Option<String>,
    pub services_id: Option<String>,
    pub key_id: Option<String>,
    pub private_key_file: Option<String>,
    pub base_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub client_secret_lifetime: Option<String>,
    pub keys_refetch_interval: Option<String>,
    pub leeway: Option<String>,
    pub bundle_ids: Option<Vec<String>>,
}

/// `[session]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    pub secret_file: Option<String>,
    pub cookie_name: Option<String>,
    pub cookie_domain: Option<String>,
    pub lifetime: Option<String>,
    pub login_timeout: Option<String>,
    pub same_site: Option<String>,
}

/// `[revocation]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationSection {
    pub file: Option<String>,
}

/// `[policy]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    pub allowed_emails: Option<Vec<String>>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub allowed_subs: Option<Vec<String>>,
    pub allow_private_relay: Option<bool>,
    pub require_verified_email: Option<bool>,
}

/// One `[[routes]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub host: Option<String>,
    pub path: Option<String>,
    pub upstream: Option<String>,
    pub auth: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    /// Overrides `server.encoded_slashes` for this route.
    pub encoded_slashes: Option<String>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub level: Option<String>,
    pub format: Option<String>,
    pub access: Option<bool>,
}

/// The names of the top-level tables, for the unknown-section message.
pub const SECTIONS: &[&str] = &[
    "server",
    "apple",
    "session",
    "revocation",
    "rate_limit",
    "policy",
    "routes",
    "log",
];
