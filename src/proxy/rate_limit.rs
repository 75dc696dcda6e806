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
use crate::metrics::RateLimited;

/// What a client waits before trying again, in seconds (one interval).
pub const RETRY_AFTER: u64 = 1;

/// The sign-in limits, per one-second interval.
pub struct SignInLimits {
    per_client: Rate,
    total: Rate,
    apple: Rate,
    cfg: config::RateLimit,
    /// Refusals by limit, for `/metrics`.
    refused: RateLimited,
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
            refused: RateLimited::default(),
        }
    }

    /// These limits with their refusals counted in `refused`.
    pub fn counted(self, refused: RateLimited) -> Self {
        SignInLimits { refused, ..self }
    }

    /// Counts one sign-in request from `client`; false when over a limit.
    /// A request refused for its client's own rate does not count toward
    /// the total, so one flooding address cannot use up everyone's budget.
    pub fn admit_sign_in(&self, client: IpAddr) -> bool {
        if self.per_client.observe(&client, 1) > self.cfg.sign_in_per_client as isize {
            self.refused.per_client.inc();
            return false;
        }
        let admitted = self.total.observe(&(), 1) <= self.cfg.sign_in_total as isize;
        if !admitted {
            self.refused.total.inc();
        }
        admitted
    }

    /// Counts one token call to Apple; false when over the cap.
    pub fn admit_apple_call(&self) -> bool {
        let admitted = self.apple.observe(&(), 1) <= self.cfg.apple_token_calls as isize;
        if !admitted {
            self.refused.apple.inc();
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One address over its own limit cannot use up everyone's budget.
    #[test]
    fn a_flooding_client_does_not_spend_the_total() {
        let limits = SignInLimits::new(&config::RateLimit {
            sign_in_per_client: 2,
            sign_in_total: 3,
            apple_token_calls: 1,
        });
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let admitted = (0..10).filter(|_| limits.admit_sign_in(a)).count();
        assert_eq!(admitted, 2);
        assert!(
            limits.admit_sign_in(b),
            "b's first request is within the total"
        );
    }
}
