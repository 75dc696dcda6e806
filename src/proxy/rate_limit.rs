//! Rate limits that keep the sign-in endpoints from hammering Apple.
//!
//! Every `/oauth2/start` leads to Apple's authorize page and every
//! `/oauth2/callback` with a valid login state to a token call under the
//! operator's Services ID; a flood of either could get that ID throttled
//! by Apple for everyone. So both endpoints are limited per client address
//! (trusted proxies respected, see [`super::forwarded`]) and for all
//! clients together, and token calls to Apple have a global cap. Signed-in
//! traffic never passes here. The estimator is pingora's own
//! (`pingora-limits`: count-min sketches swapped every interval), so memory
//! stays fixed however many addresses a flood uses; it may over-count on a
//! hash collision, never under-count.

use std::net::IpAddr;
use std::time::Duration;

use pingora_limits::rate::Rate;

use crate::config;

/// What a client waits before trying again, in seconds (one interval).
pub const RETRY_AFTER: u64 = 1;

/// The sign-in limits, per one-second interval.
pub struct SignInLimits {
    per_client: Rate,
    total: Rate,
    apple: Rate,
    cfg: config::RateLimit,
}

impl SignInLimits {
    pub fn new(cfg: &config::RateLimit) -> Self {
        // One second: shorter intervals can trip an assertion inside
        // `Rate` when threads race in its first interval.
        let interval = Duration::from_secs(RETRY_AFTER);
        SignInLimits {
            per_client: Rate::new(interval),
            total: Rate::new(interval),
            apple: Rate::new(interval),
            cfg: cfg.clone(),
        }
    }

    /// Counts one sign-in request from `client`; false when over a limit.
    pub fn admit_sign_in(&self, client: IpAddr) -> bool {
        let mine = self.per_client.observe(&client, 1);
        let all = self.total.observe(&(), 1);
        mine <= self.cfg.sign_in_per_client as isize && all <= self.cfg.sign_in_total as isize
    }

    /// Counts one token call to Apple; false when over the cap.
    pub fn admit_apple_call(&self) -> bool {
        self.apple.observe(&(), 1) <= self.cfg.apple_token_calls as isize
    }
}
