//! Who may pass: the `[policy]` rules (or a route's own, laid over them
//! at load) applied to a signed-in user.
//!
//! Identity is Apple's `sub`. Email rules only count a verified address
//! (unless `require_verified_email = false`), because only then did Apple
//! vouch for it. A user may hide their address behind Apple's private
//! relay (`…@privaterelay.appleid.com`); `allow_private_relay = false`
//! refuses such accounts, since the relay address says nothing about who
//! they are.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use crate::config;
use crate::identity::Identity;

/// The one strict email parser every rule reads addresses with (it lives
/// with the identity; config validation reads `[policy]` lists through
/// this name).
pub use crate::identity::email::Email;

/// Why a user was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not in any allow list.
    NotAllowed,
    /// A private relay address and `allow_private_relay = false`.
    PrivateRelay,
    /// The account's email is not one address (see [`Email::parse`]), so
    /// a rule on emails cannot vouch for it either way.
    MalformedEmail,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denied::NotAllowed => "not in the allowed emails, domains or subs",
            Denied::PrivateRelay => "private relay addresses are not allowed",
            Denied::MalformedEmail => "the account's email address is malformed",
        })
    }
}

impl std::error::Error for Denied {}

/// `s` in ASCII lower case, borrowed when it already is.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Canonical addresses (see [`Email::canonical`]).
    emails: HashSet<String>,
    /// Lower case, without a trailing dot.
    domains: HashSet<String>,
    subs: HashSet<String>,
    allow_private_relay: bool,
    require_verified_email: bool,
}

impl Policy {
    /// From `[policy]` (whose lists config validation lower-cased). The
    /// lists go through the same parser as users' emails; an entry that
    /// does not parse could match no one and is left out.
    pub fn new(cfg: &config::Policy) -> Self {
        Policy {
            emails: cfg
                .allowed_emails
                .iter()
                .filter_map(|e| Email::parse(e).map(|p| p.canonical(e).into_owned()))
                .collect(),
            domains: cfg
                .allowed_email_domains
                .iter()
                .map(|d| lower(d.strip_suffix('.').unwrap_or(d)).into_owned())
                .collect(),
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
    pub fn check(&self, s: &Identity) -> Result<(), Denied> {
        // Runs on every request. An open policy allowing relays never reads
        // the email; otherwise nothing allocates unless an allow list is
        // consulted with an address not already in lower case.
        if self.allow_private_relay && self.is_open() {
            return Ok(());
        }
        let email = s.email.as_deref().map(|e| (e, Email::parse(e)));
        if !self.allow_private_relay {
            if s.is_private_email {
                return Err(Denied::PrivateRelay);
            }
            match email {
                Some((_, Some(e))) if e.is_relay() => return Err(Denied::PrivateRelay),
                // Whether it is a relay address cannot be told: refuse.
                Some((_, None)) => return Err(Denied::MalformedEmail),
                _ => {}
            }
        }
        if self.is_open() || self.subs.contains(&s.sub) {
            return Ok(());
        }
        let trusted = s.email_verified || !self.require_verified_email;
        if let (Some((original, Some(e))), true) = (email, trusted) {
            if self.domains.contains(lower(e.domain()).as_ref())
                || self.emails.contains(e.canonical(original).as_ref())
            {
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

    fn user(sub: &str, email: &str, verified: bool, private: bool) -> Identity {
        Identity {
            sub: sub.into(),
            email: Some(email.into()),
            email_verified: verified,
            is_private_email: private,
            name: None,
            proof: crate::identity::Proof::Session {
                id: "x".into(),
                issued_at: 0,
                expires_at: 1,
                seen_at: 0,
                checked_at: 0,
            },
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

    #[test]
    fn two_at_signs_match_no_allow_list() {
        let forged = "a@evil.com@example.com";
        let p = policy(&["boss@example.com"], &["example.com"], true);
        assert_eq!(
            p.check(&user("9", forged, true, false)),
            Err(Denied::NotAllowed)
        );
        let p = policy(&[forged], &[], true);
        assert_eq!(
            p.check(&user("9", forged, true, false)),
            Err(Denied::NotAllowed),
            "an allowed_emails entry of the same shape matches no one"
        );
        // Still allowed by sub, which names the account itself.
        assert_eq!(p.check(&user("001.sub", forged, true, false)), Ok(()));
    }

    #[test]
    fn a_trailing_dot_is_the_same_domain() {
        let p = policy(&["boss@other.org"], &["example.com"], true);
        assert_eq!(
            p.check(&user("9", "Jane@Example.COM.", true, false)),
            Ok(())
        );
        assert_eq!(p.check(&user("9", "Boss@other.org.", true, false)), Ok(()));
        let p = policy(&[], &["example.com."], true);
        assert_eq!(p.check(&user("9", "jane@example.com", true, false)), Ok(()));

        let closed = policy(&[], &[], false);
        assert_eq!(
            closed.check(&user("9", "x@privaterelay.appleid.com.", true, false)),
            Err(Denied::PrivateRelay)
        );
        assert_eq!(
            closed.check(&user(
                "9",
                "x@evil.com@privaterelay.appleid.com",
                true,
                false
            )),
            Err(Denied::MalformedEmail),
            "an address that may be a relay one is not let through"
        );
    }
}
