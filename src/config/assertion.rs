//! `[assertion]`: the key that signs the identity assertions routes with
//! `assertion = true` send upstream (`crate::assertion`), and how long one
//! lives. Every key is optional: with none, the gateway generates a key
//! and keeps it in the state store.

use std::time::Duration;

use p256::ecdsa::SigningKey;
use serde::Deserialize;

use crate::secret::Secret;

use super::duration::DurationText;
use super::secrets::{self, Wanted};
use super::validate::Validator;

/// Environment variable that may hold the signing key's PEM text instead
/// of `assertion.key_file`.
pub const ENV_ASSERTION_KEY: &str = "APPLEGATE_ASSERTION_KEY";
/// Environment variable that may hold the previous key's PEM text instead
/// of `assertion.previous_key_file`.
pub const ENV_ASSERTION_PREVIOUS_KEY: &str = "APPLEGATE_ASSERTION_PREVIOUS_KEY";

/// How long an assertion is valid unless configured: long enough for a
/// request to reach the upstream, short enough that a revoked user's
/// assertion dies soon.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
const MIN_LIFETIME: Duration = Duration::from_secs(30);
const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a generated key signs before a start replaces it, unless configured.
const DEFAULT_ROTATE_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// `[assertion]`
#[derive(Debug, Clone)]
pub struct Assertion {
    /// The key that signs, from `key_file`; `None`: a key the gateway
    /// generates and keeps (sealed) in the state store.
    pub key: Option<Secret<SigningKey>>,
    /// A key published but not used to sign: the one `key_file` named
    /// before a rotation, while assertions it signed may still be valid.
    pub previous_key: Option<Secret<SigningKey>>,
    /// How long an assertion is valid (`exp - iat`), at most.
    pub lifetime: Duration,
    /// How long a generated key signs before a start replaces it.
    pub rotate_after: Duration,
}

impl Default for Assertion {
    fn default() -> Self {
        Assertion {
            key: None,
            previous_key: None,
            lifetime: DEFAULT_LIFETIME,
            rotate_after: DEFAULT_ROTATE_AFTER,
        }
    }
}

/// `[assertion]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertionSection {
    key_file: Option<String>,
    previous_key_file: Option<String>,
    lifetime: Option<DurationText>,
    rotate_after: Option<DurationText>,
}

/// Reads `[assertion]`.
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> Assertion {
    let a: AssertionSection = v.section(top, "assertion");
    let key_given = a.key_file.is_some() || (v.env)(ENV_ASSERTION_KEY).is_some();
    let key = load_key(v, "assertion.key_file", ENV_ASSERTION_KEY, a.key_file);
    let previous_key = load_key(
        v,
        "assertion.previous_key_file",
        ENV_ASSERTION_PREVIOUS_KEY,
        a.previous_key_file,
    );
    if previous_key.is_some() && !key_given {
        v.problem(
            "assertion.previous_key_file",
            "set without assertion.key_file; a previous key is the one key_file named before a rotation",
        );
    }
    if key_given && a.rotate_after.is_some() {
        v.problem(
            "assertion.rotate_after",
            "applies to a generated key only; with key_file you rotate by replacing the file (and naming the old one in previous_key_file)",
        );
    }
    let lifetime = DurationText::or(a.lifetime, DEFAULT_LIFETIME);
    if !(MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime) {
        v.problem(
            "assertion.lifetime",
            format!("expected between 30s and 1h, found {}s", lifetime.as_secs()),
        );
    }
    let rotate_after = DurationText::or(a.rotate_after, DEFAULT_ROTATE_AFTER);
    if rotate_after < Duration::from_secs(86_400) {
        v.problem(
            "assertion.rotate_after",
            format!("expected a day or more, found {}s", rotate_after.as_secs()),
        );
    }
    Assertion {
        key,
        previous_key,
        lifetime,
        rotate_after,
    }
}

/// The key at `file` or in `env`, or `None` when neither is set (or it is
/// unusable: then a problem says why).
fn load_key(
    v: &mut Validator<'_>,
    key: &str,
    env: &str,
    file: Option<String>,
) -> Option<Secret<SigningKey>> {
    if file.is_none() && (v.env)(env).is_none() {
        return None;
    }
    // Never missing here: both unset was answered above.
    let wanted = Wanted {
        key,
        env,
        noun: "key",
        missing: "",
    };
    let loaded = secrets::load(v, &wanted, file)?;
    secrets::p256_key(
        v,
        key,
        &loaded,
        "make one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",
    )
}
