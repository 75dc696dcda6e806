//! Secrets from a file named in the config or from the environment.
//!
//! The Apple private key and the session secret are read the same way:
//! either the config names a file, or an environment variable holds the
//! text (containers inject secrets that way), never both, so it is clear
//! which one is used. Messages name the file or the variable, never the
//! secret itself.

use p256::pkcs8::DecodePrivateKey;

use crate::secret::Secret;

use super::validate::Validator;

/// One secret a section needs.
pub(super) struct Wanted<'a> {
    /// The config key naming the file, e.g. `apple.private_key_file`.
    pub key: &'a str,
    /// The environment variable that may hold the text instead.
    pub env: &'a str,
    /// What it is, for the "set both" message: `key`, `secret`.
    pub noun: &'a str,
    /// What to say when neither is set: how to get one.
    pub missing: &'a str,
}

/// A secret's text and where it came from (a quoted path or the variable's
/// name), for messages about its content.
pub(super) struct Loaded {
    pub text: Secret<String>,
    pub source: String,
}

/// Reads `wanted` from `file` (relative to the config) or the environment;
/// reports a problem under `wanted.key` and returns `None` if it cannot.
pub(super) fn load(
    v: &mut Validator<'_>,
    wanted: &Wanted<'_>,
    file: Option<String>,
) -> Option<Loaded> {
    let from_env = (v.env)(wanted.env);
    match (file, from_env) {
        (Some(_), Some(_)) => {
            v.problem(
                wanted.key,
                format!(
                    "set both here and in {}; keep one so it is clear which {} is used",
                    wanted.env, wanted.noun
                ),
            );
            None
        }
        (Some(f), None) => {
            let path = v.path(&f);
            let shown = format!("{:?}", path.display().to_string());
            match std::fs::read_to_string(&path) {
                Ok(text) => Some(Loaded {
                    text: Secret::new(text),
                    source: shown,
                }),
                Err(e) => {
                    v.problem(wanted.key, format!("cannot read {shown}: {e}"));
                    None
                }
            }
        }
        (None, Some(text)) => Some(Loaded {
            text: Secret::new(text),
            source: wanted.env.to_string(),
        }),
        (None, None) => {
            v.problem(wanted.key, wanted.missing);
            None
        }
    }
}

/// `loaded` as a P-256 private key in PKCS#8 PEM (Apple's `.p8`, the
/// assertion key); otherwise a problem under `key` naming the file or
/// variable (never its text) and, in `hint`, what the right one looks like.
pub(super) fn p256_key(
    v: &mut Validator<'_>,
    key: &str,
    loaded: &Loaded,
    hint: &str,
) -> Option<Secret<p256::ecdsa::SigningKey>> {
    match p256::ecdsa::SigningKey::from_pkcs8_pem(loaded.text.expose().trim()) {
        Ok(k) => Some(Secret::new(k)),
        Err(_) => {
            v.problem(
                key,
                format!(
                    "{} is not a P-256 private key in PKCS#8 PEM ({hint})",
                    loaded.source
                ),
            );
            None
        }
    }
}
