//! Email addresses as the gateway reads them: one strict parser, so the
//! policy's rules and the identity's private-relay flag never disagree on
//! what an address's domain is.

use std::borrow::Cow;

/// Apple's private relay domain.
pub const PRIVATE_RELAY_DOMAIN: &str = "privaterelay.appleid.com";

/// An email address, split once and strictly: every email rule reads it
/// through here, so no two rules can disagree on what the domain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Email<'a> {
    local: &'a str,
    /// Without the trailing dot of a fully qualified name.
    domain: &'a str,
}

impl<'a> Email<'a> {
    /// Exactly one `@` between a non-empty local part and a non-empty
    /// domain, no whitespace or control character; one trailing dot of the
    /// domain is dropped (`example.com.` is `example.com` in DNS). Why so
    /// strict: `a@evil.com@example.com` read from the left is at
    /// `evil.com`, from the right at `example.com`; a mail system and our
    /// allow list may pick differently, so such a string matches no rule.
    /// (RFC 5321 allows a quoted `@` in the local part; Apple issues no
    /// such address, and refusing it is the safe side.)
    pub fn parse(email: &'a str) -> Option<Self> {
        let (local, domain) = email.split_once('@')?;
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let clean = !email.chars().any(|c| c.is_whitespace() || c.is_control());
        (clean && !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
            .then_some(Email { local, domain })
    }

    /// The domain, as written, without its trailing dot.
    pub fn domain(&self) -> &'a str {
        self.domain
    }

    /// Whether the domain is `domain` (ASCII case-insensitive, as DNS is).
    pub fn is_at(&self, domain: &str) -> bool {
        self.domain.eq_ignore_ascii_case(domain)
    }

    /// Apple's private relay.
    pub fn is_relay(&self) -> bool {
        self.is_at(PRIVATE_RELAY_DOMAIN)
    }

    /// `local@domain` in lower case without the trailing dot: the form the
    /// allow list holds. Borrowed when the address is already in it.
    pub fn canonical(&self, original: &'a str) -> Cow<'a, str> {
        let lower = !original.bytes().any(|b| b.is_ascii_uppercase());
        if lower && original.len() == self.local.len() + 1 + self.domain.len() {
            return Cow::Borrowed(original);
        }
        Cow::Owned(format!("{}@{}", self.local, self.domain).to_ascii_lowercase())
    }
}

/// Whether `email` is a private relay address (for turning claims into an
/// identity, deciding `is_private_email` when Apple leaves it out). A
/// malformed one is not.
pub fn is_relay_address(email: &str) -> bool {
    Email::parse(email).is_some_and(|e| e.is_relay())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_parse_strictly() {
        let e = Email::parse("Jane@Example.com.").unwrap();
        assert_eq!(e.domain(), "Example.com");
        assert!(e.is_at("example.com"));
        for bad in [
            "a@evil.com@example.com",
            "@example.com",
            "a@",
            "a@.",
            "example.com",
            "a b@example.com",
            "a@example.com\n",
            "",
        ] {
            assert_eq!(Email::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn relay_addresses_by_their_one_domain() {
        assert!(is_relay_address("x@privaterelay.appleid.com."));
        assert!(is_relay_address("x@PrivateRelay.AppleID.com"));
        assert!(!is_relay_address("x@privaterelay.appleid.com@evil.com"));
        assert!(!is_relay_address("x@evil.com@privaterelay.appleid.com"));
    }
}
