//! `[policy]`: who may sign in. Emails and domains are kept lowercase.

use serde::Deserialize;

use super::validate::Validator;

/// `[policy]`: who may sign in. Emails and domains are lowercase.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allowed_emails: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub allowed_subs: Vec<String>,
    pub allow_private_relay: bool,
    pub require_verified_email: bool,
}

/// `[policy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    allowed_emails: Option<Vec<String>>,
    allowed_email_domains: Option<Vec<String>>,
    allowed_subs: Option<Vec<String>>,
    allow_private_relay: Option<bool>,
    require_verified_email: Option<bool>,
}

/// Reads and checks `[policy]`; an empty policy admits anyone (a warning).
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> Policy {
    let p: PolicySection = v.section(top, "policy");
    let lower = |list: Option<Vec<String>>| {
        list.unwrap_or_default()
            .into_iter()
            .map(|s| s.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    // Parsed by the policy's own parser, so both sides compare alike.
    let mut allowed_emails = Vec::new();
    for e in lower(p.allowed_emails) {
        match crate::identity::email::Email::parse(&e) {
            Some(m) => allowed_emails.push(m.canonical(&e).into_owned()),
            None => v.problem(
                "policy.allowed_emails",
                format!("expected e-mail addresses, found {e:?}"),
            ),
        }
    }
    let allowed_email_domains: Vec<String> = lower(p.allowed_email_domains)
        .into_iter()
        .map(|d| d.strip_suffix('.').unwrap_or(&d).to_string())
        .collect();
    for d in &allowed_email_domains {
        if d.is_empty() || d.contains('@') {
            v.problem(
                "policy.allowed_email_domains",
                format!("expected domains such as \"example.com\", found {d:?}"),
            );
        }
    }
    let allowed_subs = p.allowed_subs.unwrap_or_default();
    if allowed_emails.is_empty() && allowed_email_domains.is_empty() && allowed_subs.is_empty() {
        v.warn(
            "policy: no allowed_emails, allowed_email_domains or allowed_subs, so anyone with an Apple ID can sign in",
        );
    }
    Policy {
        allowed_emails,
        allowed_email_domains,
        allowed_subs,
        allow_private_relay: p.allow_private_relay.unwrap_or(true),
        require_verified_email: p.require_verified_email.unwrap_or(true),
    }
}
