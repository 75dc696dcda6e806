//! `[revocation]`: where revoked sessions are remembered across restarts.

use std::path::PathBuf;

use serde::Deserialize;

use super::validate::Validator;

/// `[revocation]`
#[derive(Debug, Clone, Default)]
pub struct Revocation {
    pub file: Option<PathBuf>,
}

/// `[revocation]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationSection {
    file: Option<String>,
}

/// Reads `[revocation]`; a relative file is taken from the config's directory.
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> Revocation {
    let r: RevocationSection = v.section(top, "revocation");
    Revocation {
        file: r.file.map(|f| v.path(&f)),
    }
}
