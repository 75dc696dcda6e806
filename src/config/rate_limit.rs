//! `[rate_limit]`: per-second limits on the sign-in endpoints.

use serde::Deserialize;

use super::validate::Validator;

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

/// `[rate_limit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitSection {
    sign_in_per_client: Option<i64>,
    sign_in_total: Option<i64>,
    apple_token_calls: Option<i64>,
}

/// Reads and checks `[rate_limit]`.
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> RateLimit {
    let r: RateLimitSection = v.section(top, "rate_limit");
    let mut rate = |value: Option<i64>, name: &str, default: usize| {
        v.bounded(
            value,
            &format!("rate_limit.{name}"),
            "a number of requests per second",
            (1, 1_000_000),
            default,
        ) as u32
    };
    RateLimit {
        sign_in_per_client: rate(r.sign_in_per_client, "sign_in_per_client", 10),
        sign_in_total: rate(r.sign_in_total, "sign_in_total", 1000),
        apple_token_calls: rate(r.apple_token_calls, "apple_token_calls", 100),
    }
}
