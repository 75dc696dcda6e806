//! `[state]`: where the server keeps what it keeps (revocations and the
//! rest of the state store, `crate::state`). Durable by default: with no
//! `[state]` at all, a file beside the config file.

use std::path::PathBuf;

use serde::Deserialize;

use super::validate::Validator;

/// The state file's name when `[state] path` is not set, in the config
/// file's directory.
pub const DEFAULT_STATE_FILE: &str = "applegate.state";

/// `[state]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// A crash-safe single-file database at `path` (the default).
    Embedded { path: PathBuf },
    /// Memory only: everything kept is lost at exit (tests, `dev`).
    Memory,
}

/// `backend` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Embedded,
    Memory,
}

/// `[state]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    backend: Option<Backend>,
    path: Option<String>,
}

/// Reads `[state]`; a relative path is taken from the config's directory.
/// The `[revocation]` section it replaces is a problem that says so.
pub(super) fn read(v: &mut Validator<'_>, top: &toml::Table) -> State {
    if top.contains_key("revocation") {
        v.problem(
            "revocation",
            "replaced by [state]: revocations are now kept in the state store, by default \
             the file applegate.state beside this config; remove [revocation] (set \
             [state] path = \"...\" to keep the file elsewhere)",
        );
    }
    let s: StateSection = v.section(top, "state");
    match (s.backend.unwrap_or(Backend::Embedded), s.path) {
        (Backend::Embedded, path) => State::Embedded {
            path: v.path(path.as_deref().unwrap_or(DEFAULT_STATE_FILE)),
        },
        (Backend::Memory, None) => State::Memory,
        (Backend::Memory, Some(_)) => {
            v.problem(
                "state.path",
                "set with backend = \"memory\", which keeps no file; remove one of the two",
            );
            State::Memory
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn read_state(text: &str) -> (State, Vec<String>) {
        let top: toml::Table = text.parse().unwrap();
        let mut v = Validator::new(Path::new("/etc/applegate"), &|_| None);
        let state = read(&mut v, &top);
        (
            state,
            v.into_problems().iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn durable_by_default_beside_the_config() {
        assert_eq!(
            read_state(""),
            (
                State::Embedded {
                    path: "/etc/applegate/applegate.state".into()
                },
                vec![]
            )
        );
        assert_eq!(
            read_state("[state]\npath = \"data/gate.db\"\n").0,
            State::Embedded {
                path: "/etc/applegate/data/gate.db".into()
            }
        );
        assert_eq!(
            read_state("[state]\nbackend = \"memory\"\n"),
            (State::Memory, vec![])
        );
    }

    #[test]
    fn bad_state_config_says_what_to_do() {
        let (_, problems) = read_state("[state]\nbackend = \"redis\"\npath = \"x\"\n");
        assert_eq!(
            problems,
            ["state.backend: expected \"embedded\" or \"memory\", found \"redis\""]
        );
        let (_, problems) = read_state("[state]\nbackend = \"memory\"\npath = \"x\"\n");
        assert_eq!(
            problems,
            ["state.path: set with backend = \"memory\", which keeps no file; remove one of the two"]
        );
        let (_, problems) = read_state("[revocation]\nfile = \"revoked.log\"\n");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("revocation: replaced by [state]"),
            "{problems:?}"
        );
    }
}
