//! Who may pass: the `[policy]` rules applied to a signed-in user.
//!
//! Identity is Apple's `sub`. Email rules only count a verified address
//! (unless `require_verified_email = false`), because only then did Apple
//! vouch for it. A user may hide their address behind Apple's private
//! relay (`…@privaterelay.appleid.com`); `allow_private_relay = false`
//! refuses such accounts, since the relay address says nothing about who
//! they are.

use std::collections::HashSet;
use std::fmt;

use crate::config;
use crate::session::Session;

/// Apple's private relay domain.
pub const PRIVATE_RELAY_DOMAIN: &str = "privaterelay.appleid.com";

/// Why a user was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not in any allow list.
    NotAllowed,
    /// A private relay address and `allow_private_relay = false`.
    PrivateRelay,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denied::NotAllowed => "not in the allowed emails, domains or subs",
            Denied::PrivateRelay => "private relay addresses are not allowed",
        })
    }
}

/// Whether the user hides behind Apple's private relay.
pub fn is_private_relay(s: &Session) -> bool {
    s.is_private_email
        || s.email.as_deref().is_some_and(|e| {
            e.rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(PRIVATE_RELAY_DOMAIN))
        })
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    emails: HashSet<String>,
    domains: HashSet<String>,
    subs: HashSet<String>,
    allow_private_relay: bool,
    require_verified_email: bool,
}

impl Policy {
    /// From `[policy]`.
    pub fn new(cfg: &config::Policy) -> Self {
        Policy {
            emails: cfg.allowed_emails.iter().cloned().collect(),
            domains: cfg.allowed_email_domains.iter().cloned().collect(),
            subs: cfg.allowed_subs.iter().cloned().collect(),
            allow_private_relay: cfg.allow_private_relay,
            require_verified_email: cfg.require_verified_email,
        }
    }

    /// Whether anyone with an Apple ID may pass.
    fn is_open(&self) -> bool {
        self.emails.is_empty() && self.domains.is_empty() && self.subs.is_empty()
    }

    /// Decides for a signed-in user.
    pub fn check(&self, s: &Session) -> Result<(), Denied> {
        // Runs on every request: no allocation until an allow list is consulted.
        if !self.allow_private_relay && is_private_relay(s) {
            return Err(Denied::PrivateRelay);
        }
        if self.is_open() || self.subs.contains(&s.sub) {
            return Ok(());
        }
        let trusted = s.email_verified || !self.require_verified_email;
        if let (Some(email), true) = (s.email.as_deref().map(str::to_ascii_lowercase), trusted) {
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if self.emails.contains(&email) || self.domains.contains(domain) {
                return Ok(());
            }
        }
        Err(Denied::NotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(emails: &[&str], domains: &[&str], relay: bool) -> Policy {
        let subs = if emails.is_empty() && domains.is_empty() {
            vec![]
        } else {
            vec!["001.sub".into()]
        };
        Policy::new(&config::Policy {
            allowed_emails: emails.iter().map(|s| s.to_string()).collect(),
            allowed_email_domains: domains.iter().map(|s| s.to_string()).collect(),
            allowed_subs: subs,
            allow_private_relay: relay,
            require_verified_email: true,
        })
    }

    fn user(sub: &str, email: &str, verified: bool, private: bool) -> Session {
        Session {
            id: "x".into(),
            sub: sub.into(),
            email: Some(email.into()),
            email_verified: verified,
            is_private_email: private,
            name: None,
            issued_at: 0,
            expires_at: 1,
        }
    }

    #[test]
    fn allow_lists() {
        let p = policy(&["boss@other.org"], &["example.com"], true);
        assert_eq!(p.check(&user("9", "Jane@Example.com", true, false)), Ok(()));
        assert_eq!(p.check(&user("9", "boss@other.org", true, false)), Ok(()));
        assert_eq!(
            p.check(&user("001.sub", "x@nowhere.net", false, false)),
            Ok(())
        );
        assert_eq!(
            p.check(&user("9", "x@nowhere.net", true, false)),
            Err(Denied::NotAllowed)
        );
        assert_eq!(
            p.check(&user("9", "jane@example.com", false, false)),
            Err(Denied::NotAllowed),
            "unverified email does not count"
        );
        assert_eq!(
            p.check(&user("9", "a@sub.example.com", true, false)),
            Err(Denied::NotAllowed),
            "domains match exactly"
        );
    }

    #[test]
    fn private_relay_can_be_refused() {
        let p = policy(&[], &[], false);
        assert_eq!(
            p.check(&user("9", "abc@privaterelay.appleid.com", true, true)),
            Err(Denied::PrivateRelay)
        );
        assert_eq!(
            p.check(&user("9", "abc@privaterelay.appleid.com", true, false)),
            Err(Denied::PrivateRelay)
        );
        assert_eq!(p.check(&user("9", "a@b.c", true, false)), Ok(()));
        assert_eq!(
            policy(&[], &[], true).check(&user("9", "abc@privaterelay.appleid.com", true, true)),
            Ok(())
        );
    }
}
