//! `[policy]`: who may sign in, and a route's own policy keys
//! (`[[routes]] allowed_emails`, …) laid over it. Emails and domains are
//! kept lowercase.

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

/// A route's policy keys as written (`[[routes]]`); each one present
/// replaces the global key of the same name, the others are inherited.
#[derive(Debug, Default)]
pub(super) struct RouteKeys {
    pub allowed_emails: Option<Vec<String>>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub allowed_subs: Option<Vec<String>>,
    pub allow_private_relay: Option<bool>,
}

impl RouteKeys {
    fn is_empty(&self) -> bool {
        self.allowed_emails.is_none()
            && self.allowed_email_domains.is_none()
            && self.allowed_subs.is_none()
            && self.allow_private_relay.is_none()
    }
}

/// Reads and checks `[policy]`; an empty policy admits anyone (a warning).
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> Policy {
    let p: PolicySection = v.section(top, "policy");
    let policy = Policy {
        allowed_emails: emails(v, "policy", p.allowed_emails),
        allowed_email_domains: domains(v, "policy", p.allowed_email_domains),
        allowed_subs: p.allowed_subs.unwrap_or_default(),
        allow_private_relay: p.allow_private_relay.unwrap_or(true),
        require_verified_email: p.require_verified_email.unwrap_or(true),
    };
    if policy.is_open() {
        v.warn(
            "policy: no allowed_emails, allowed_email_domains or allowed_subs, so anyone with an Apple ID can sign in",
        );
    }
    policy
}

/// A route's effective policy, resolved once at load: `None` when the
/// route has no policy key of its own (it uses `[policy]` itself), else
/// `global` with each key the route names replaced (`key` is the route's
/// path, `routes[N]`). Checked like `[policy]`; a public route may not
/// have one (it checks no identity, so the keys would only mislead).
pub(super) fn for_route(
    v: &mut Validator<'_>,
    key: &str,
    keys: RouteKeys,
    public: bool,
    global: &Policy,
) -> Option<Policy> {
    if keys.is_empty() {
        return None;
    }
    if public {
        v.problem(
            key,
            "a public route checks no identity, so allowed_emails, allowed_email_domains, allowed_subs and allow_private_relay do nothing there; remove them or set auth = \"required\"",
        );
        return None;
    }
    let policy = Policy {
        allowed_emails: match keys.allowed_emails {
            Some(list) => emails(v, key, Some(list)),
            None => global.allowed_emails.clone(),
        },
        allowed_email_domains: match keys.allowed_email_domains {
            Some(list) => domains(v, key, Some(list)),
            None => global.allowed_email_domains.clone(),
        },
        allowed_subs: keys
            .allowed_subs
            .unwrap_or_else(|| global.allowed_subs.clone()),
        allow_private_relay: keys
            .allow_private_relay
            .unwrap_or(global.allow_private_relay),
        require_verified_email: global.require_verified_email,
    };
    if policy.is_open() && !global.is_open() {
        v.warn(format!(
            "{key}: its allow lists are all empty, so anyone with an Apple ID may use this route, although [policy] is narrower"
        ));
    }
    Some(policy)
}

impl Policy {
    /// Whether no allow list restricts who passes.
    fn is_open(&self) -> bool {
        self.allowed_emails.is_empty()
            && self.allowed_email_domains.is_empty()
            && self.allowed_subs.is_empty()
    }
}

/// A list as written, trimmed, without a leading `@`, lowercase.
fn lower(list: Option<Vec<String>>) -> Vec<String> {
    list.unwrap_or_default()
        .into_iter()
        .map(|s| s.trim().trim_start_matches('@').to_ascii_lowercase())
        .collect()
}

/// `<section>.allowed_emails`, parsed by the policy's own parser, so both
/// sides compare alike.
fn emails(v: &mut Validator<'_>, section: &str, list: Option<Vec<String>>) -> Vec<String> {
    let mut allowed = Vec::new();
    for e in lower(list) {
        match crate::identity::email::Email::parse(&e) {
            Some(m) => allowed.push(m.canonical(&e).into_owned()),
            None => v.problem(
                format!("{section}.allowed_emails"),
                format!("expected e-mail addresses, found {e:?}"),
            ),
        }
    }
    allowed
}

/// `<section>.allowed_email_domains`, without trailing dots.
fn domains(v: &mut Validator<'_>, section: &str, list: Option<Vec<String>>) -> Vec<String> {
    let domains: Vec<String> = lower(list)
        .into_iter()
        .map(|d| d.strip_suffix('.').unwrap_or(&d).to_string())
        .collect();
    for d in &domains {
        if d.is_empty() || d.contains('@') {
            v.problem(
                format!("{section}.allowed_email_domains"),
                format!("expected domains such as \"example.com\", found {d:?}"),
            );
        }
    }
    domains
}

#[cfg(test)]
mod tests {
    fn problems(text: &str) -> Vec<String> {
        super::super::validate::problems_with_env(text, &|_| None)
    }

    /// A route's policy keys get `[policy]`'s checks, under the route's
    /// key path; on a public route they are refused.
    #[test]
    fn route_keys_are_checked_with_their_path() {
        let found = problems(
            r#"
[[routes]]
path = "/"
upstream = "http://127.0.0.1:3000"

[[routes]]
path = "/admin/"
upstream = "http://127.0.0.1:3000"
allowed_emails = ["not-an-email"]
allowed_email_domains = ["@", "a@b.c"]
allow_private_relay = "no"

[[routes]]
path = "/assets/"
upstream = "http://127.0.0.1:3000"
auth = "public"
allowed_subs = ["001.x"]
"#,
        );
        for expected in [
            "routes[1].allowed_emails: expected e-mail addresses, found \"not-an-email\"",
            "routes[1].allowed_email_domains: expected domains such as \"example.com\", found \"\"",
            "routes[1].allowed_email_domains: expected domains such as \"example.com\", found \"a@b.c\"",
            "routes[1].allow_private_relay: invalid type: string \"no\", expected a boolean",
            "routes[2]: a public route checks no identity",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
        assert!(
            !found.iter().any(|p| p.starts_with("routes[0]")),
            "{found:#?}"
        );
    }
}
