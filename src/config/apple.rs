//! `[apple]`: the identifiers and key from Apple's developer portal, and
//! how the gateway talks to Apple.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

use super::duration::DurationText;
use super::secrets::{self, Wanted};
use super::validate::{http_url, Validator};

/// Environment variable holding the Apple private key (PEM text).
pub const ENV_APPLE_PRIVATE_KEY: &str = "APPLEGATE_APPLE_PRIVATE_KEY";
/// Apple's production base URL.
pub const APPLE_BASE_URL: &str = "https://appleid.apple.com";
/// Where Apple's server-to-server notifications arrive unless configured.
pub const DEFAULT_NOTIFICATIONS_PATH: &str = "/oauth2/apple/notifications";
/// Apple caps a client secret's lifetime at six months (15777000 s).
/// <https://developer.apple.com/documentation/accountorganizationaldatasharing/creating-a-client-secret>
pub const MAX_CLIENT_SECRET_LIFETIME: Duration = Duration::from_secs(15_777_000);

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
    /// Where Apple POSTs server-to-server notifications (an absolute path).
    pub notifications_path: String,
    /// Whether sign-out also revokes the session's token at Apple (best
    /// effort); `POST /oauth2/revoke` always does.
    pub revoke_on_sign_out: bool,
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

/// `[apple]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppleSection {
    team_id: Option<String>,
    services_id: Option<String>,
    key_id: Option<String>,
    private_key_file: Option<String>,
    base_url: Option<String>,
    scopes: Option<Vec<String>>,
    timeout: Option<DurationText>,
    client_secret_lifetime: Option<DurationText>,
    keys_refetch_interval: Option<DurationText>,
    leeway: Option<DurationText>,
    bundle_ids: Option<Vec<String>>,
    notifications_path: Option<String>,
    revoke_on_sign_out: Option<bool>,
}

/// Reads and checks `[apple]`; `None` if it cannot be used.
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> Option<Apple> {
    let a: AppleSection = v.section(top, "apple");
    let team_id = apple_id(v, a.team_id, "apple.team_id", "Team ID");
    let key_id = apple_id(v, a.key_id, "apple.key_id", "Key ID");
    let services_id = match a.services_id {
        Some(s) if is_reverse_dns(&s) => Some(s),
        Some(s) => {
            v.problem(
                "apple.services_id",
                format!("expected the Services ID (reverse-DNS style, e.g. \"com.example.web\"), found {s:?}"),
            );
            None
        }
        None => {
            v.problem(
                "apple.services_id",
                "missing; expected the Services ID from Certificates, Identifiers & Profiles (e.g. \"com.example.web\"); it is the OAuth client_id",
            );
            None
        }
    };
    let private_key = private_key(v, a.private_key_file);
    let base_url = base_url(v, a.base_url.as_deref().unwrap_or(APPLE_BASE_URL));
    let scopes = a
        .scopes
        .unwrap_or_else(|| vec!["name".into(), "email".into()]);
    for s in &scopes {
        if s != "name" && s != "email" {
            v.problem(
                "apple.scopes",
                format!("expected a list of \"name\" and \"email\", found {s:?}"),
            );
        }
    }
    let client_secret_lifetime =
        DurationText::or(a.client_secret_lifetime, Duration::from_secs(86_400));
    if client_secret_lifetime > MAX_CLIENT_SECRET_LIFETIME
        || client_secret_lifetime < Duration::from_secs(120)
    {
        v.problem(
            "apple.client_secret_lifetime",
            "expected between 2 minutes and 15777000 seconds (Apple's limit of six months), e.g. \"1d\"",
        );
    }
    let bundle_ids = a.bundle_ids.unwrap_or_default();
    for b in bundle_ids.iter().filter(|b| !is_reverse_dns(b)) {
        v.problem(
            "apple.bundle_ids",
            format!("expected app bundle IDs such as \"com.example.app\", found {b:?}"),
        );
    }
    let leeway = DurationText::or(a.leeway, Duration::from_secs(60));
    if leeway > Duration::from_secs(300) {
        v.problem(
            "apple.leeway",
            "expected at most \"5m\" of clock-skew leeway",
        );
    }
    let notifications_path = notifications_path(
        v,
        a.notifications_path
            .unwrap_or_else(|| DEFAULT_NOTIFICATIONS_PATH.into()),
    );
    Some(Apple {
        team_id: team_id?,
        services_id: services_id?,
        key_id: key_id?,
        private_key: private_key?,
        base_url: base_url?,
        scopes,
        timeout: DurationText::or(a.timeout, Duration::from_secs(10)),
        client_secret_lifetime,
        keys_refetch_interval: DurationText::or(a.keys_refetch_interval, Duration::from_secs(60)),
        leeway,
        bundle_ids,
        notifications_path: notifications_path?,
        revoke_on_sign_out: a.revoke_on_sign_out.unwrap_or(false),
    })
}

/// The notifications path: matched against the canonical path, so it must
/// be canonical itself (one `/` first, no empty or dot segment, plain
/// characters), and not one of the other endpoints.
fn notifications_path(v: &mut Validator<'_>, p: String) -> Option<String> {
    let plain = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    let canonical = p.len() > 1
        && p.starts_with('/')
        && p[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    let taken = [
        "/oauth2/start",
        "/oauth2/callback",
        "/oauth2/sign_out",
        "/oauth2/revoke",
        "/oauth2/userinfo",
        "/oauth2/auth",
    ]
    .contains(&p.as_str());
    if plain && canonical && !taken {
        return Some(p);
    }
    v.problem(
        "apple.notifications_path",
        format!("expected an absolute path of letters, digits, '-', '_' and '.' segments, other than the gateway's own endpoints (e.g. \"{DEFAULT_NOTIFICATIONS_PATH}\"), found {p:?}"),
    );
    None
}

/// Services IDs and bundle IDs: letters, digits, dots and dashes.
fn is_reverse_dns(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Team ID and Key ID: ten upper-case letters and digits.
fn apple_id(v: &mut Validator<'_>, value: Option<String>, key: &str, what: &str) -> Option<String> {
    match value {
        Some(id)
            if id.len() == 10
                && id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) =>
        {
            Some(id)
        }
        Some(id) => {
            v.problem(
                key,
                format!("expected the 10-character {what} (upper-case letters and digits, e.g. \"ABCDE12345\"), found {id:?}"),
            );
            None
        }
        None => {
            v.problem(
                key,
                format!("missing; expected the 10-character {what} from Apple's developer portal"),
            );
            None
        }
    }
}

/// Apple's base URL: the emulator's in development, Apple's otherwise.
fn base_url(v: &mut Validator<'_>, u: &str) -> Option<String> {
    if http_url(u).is_none_or(|p| p.query().is_some()) {
        v.problem(
            "apple.base_url",
            format!("expected a URL such as \"https://appleid.apple.com\", found {u:?}"),
        );
        return None;
    }
    let base = u.trim_end_matches('/').to_string();
    if base != APPLE_BASE_URL {
        v.warn(format!(
            "apple.base_url: {base:?} is not Apple ({APPLE_BASE_URL}); fine for the emulator, wrong for production"
        ));
    }
    Some(base)
}

fn private_key(
    v: &mut Validator<'_>,
    file: Option<String>,
) -> Option<Secret<p256::ecdsa::SigningKey>> {
    let wanted = Wanted {
        key: "apple.private_key_file",
        env: ENV_APPLE_PRIVATE_KEY,
        noun: "key",
        missing: &format!("missing; expected the path of the AuthKey_<KeyID>.p8 file from Apple (or its PEM text in {ENV_APPLE_PRIVATE_KEY})"),
    };
    let loaded = secrets::load(v, &wanted, file)?;
    secrets::p256_key(
        v,
        wanted.key,
        &loaded,
        "the .p8 file Apple lets you download once, starting with \"-----BEGIN PRIVATE KEY-----\"",
    )
}
