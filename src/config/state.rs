//! `[state]`: where the server keeps what it keeps (revocations and the
//! rest of the state store, `crate::state`). Durable by default: with no
//! `[state]` at all, a file beside the config file. Several replicas share
//! theirs in Redis (`backend = "redis"`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::secrets::{self, Wanted};
use super::validate::Validator;
use crate::secret::Secret;

/// The environment variable that may hold `redis_url` instead of the file
/// (a URL with a password is a secret).
pub const ENV_REDIS_URL: &str = "APPLEGATE_REDIS_URL";

/// `redis_key_prefix` when not set.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "applegate:";

/// `redis_timeout` when not set: a connect or a command slower than this
/// counts as Redis being away.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Shared with other replicas in Redis.
    Redis(Redis),
}

/// `[state] backend = "redis"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redis {
    /// `redis://` or `rediss://` (TLS), with user, password and database
    /// as Redis URLs have them: a secret (never logged). With `sentinels`,
    /// its host is the master's name as the Sentinels know it.
    pub url: Secret<String>,
    /// `redis_sentinels`: host and port of each Sentinel; empty for one
    /// server at `url`.
    pub sentinels: Vec<(String, u16)>,
    /// `redis_cluster`: `url` is one node of a Redis Cluster.
    pub cluster: bool,
    /// `redis_ca_file`, read: PEM CA certificates a `rediss://` server's
    /// certificate must chain to, instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Before every key and the change channel: several gateways (or other
    /// apps) can share one Redis.
    pub key_prefix: String,
    /// For a connect and for each command.
    pub timeout: Duration,
    /// Refuse sessions while the view of the revocations cannot be trusted
    /// (Redis away); by default they are served from the last known view.
    pub fail_closed: bool,
}

impl State {
    /// Whether sessions are refused while the store is out of reach.
    pub fn fail_closed(&self) -> bool {
        matches!(self, State::Redis(r) if r.fail_closed)
    }
}

/// `backend` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Embedded,
    Memory,
    Redis,
}

/// `[state]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    backend: Option<Backend>,
    path: Option<String>,
    redis_url: Option<String>,
    redis_url_file: Option<String>,
    redis_key_prefix: Option<String>,
    redis_timeout: Option<DurationText>,
    redis_sentinels: Option<Vec<String>>,
    redis_cluster: Option<bool>,
    redis_ca_file: Option<String>,
    fail_closed: Option<bool>,
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
    let mut s: StateSection = v.section(top, "state");
    let backend = s.backend.unwrap_or(Backend::Embedded);
    if backend != Backend::Redis {
        for (key, set) in [
            ("redis_url", s.redis_url.is_some()),
            ("redis_url_file", s.redis_url_file.is_some()),
            ("redis_key_prefix", s.redis_key_prefix.is_some()),
            ("redis_timeout", s.redis_timeout.is_some()),
            ("redis_sentinels", s.redis_sentinels.is_some()),
            ("redis_cluster", s.redis_cluster.is_some()),
            ("redis_ca_file", s.redis_ca_file.is_some()),
            ("fail_closed", s.fail_closed.is_some()),
        ] {
            if set {
                v.problem(
                    format!("state.{key}"),
                    "only for backend = \"redis\" (this backend is never out of reach); set backend = \"redis\" or remove it",
                );
            }
        }
    }
    match (backend, s.path.take()) {
        (Backend::Redis, Some(_)) => {
            v.problem(
                "state.path",
                "set with backend = \"redis\", which keeps no file; remove one of the two",
            );
            State::Memory
        }
        (Backend::Redis, None) => redis(v, s),
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

/// `[state]` for Redis: the URL from exactly one of `redis_url`,
/// `redis_url_file` or the environment.
fn redis(v: &mut Validator<'_>, s: StateSection) -> State {
    let wanted = Wanted {
        key: "state.redis_url_file",
        env: ENV_REDIS_URL,
        noun: "URL",
        missing: "",
    };
    let url = match s.redis_url {
        Some(url) if s.redis_url_file.is_some() || (v.env)(ENV_REDIS_URL).is_some() => {
            v.problem(
                "state.redis_url",
                format!("set with redis_url_file or {ENV_REDIS_URL}; keep one so it is clear which URL is used"),
            );
            Some(url)
        }
        Some(url) => Some(url),
        None if s.redis_url_file.is_none() && (v.env)(ENV_REDIS_URL).is_none() => {
            v.problem(
                "state.redis_url",
                format!(
                    "backend = \"redis\" needs the server's URL: redis_url = \"redis://host:6379/0\" \
                     (or redis_url_file, or {ENV_REDIS_URL}, when it holds a password)"
                ),
            );
            None
        }
        None => {
            secrets::load(v, &wanted, s.redis_url_file).map(|l| l.text.expose().trim().to_string())
        }
    };
    let url = url.unwrap_or_default();
    // The URL itself is never repeated: it may hold a password.
    let tls = match url::Url::parse(&url) {
        _ if url.is_empty() => false,
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {
            u.scheme() == "rediss"
        }
        _ => {
            v.problem(
                "state.redis_url",
                "not a Redis URL: expected redis://[user:password@]host[:port][/db] or rediss:// for TLS",
            );
            false
        }
    };
    let sentinels = sentinels(v, s.redis_sentinels.unwrap_or_default());
    let cluster = s.redis_cluster.unwrap_or(false);
    if cluster && !sentinels.is_empty() {
        v.problem(
            "state.redis_cluster",
            "set with redis_sentinels: a Cluster fails over by itself; keep one of the two",
        );
    }
    let ca_pem = s.redis_ca_file.and_then(|f| {
        if !tls && !url.is_empty() {
            v.problem(
                "state.redis_ca_file",
                "only for rediss:// (it names the CA the server's certificate is checked against); remove it or use rediss://",
            );
            return None;
        }
        let file = v.path(&f);
        match super::upstream::read_ca(&file).and_then(|_| {
            std::fs::read(&file).map_err(|e| format!("cannot read {file:?}: {e}"))
        }) {
            Ok(pem) => Some(pem),
            Err(e) => {
                v.problem("state.redis_ca_file", e);
                None
            }
        }
    });
    let timeout = DurationText::or(s.redis_timeout, DEFAULT_REDIS_TIMEOUT);
    if timeout.is_zero() {
        v.problem("state.redis_timeout", "must be more than 0s");
    }
    State::Redis(Redis {
        url: Secret::new(url),
        sentinels,
        cluster,
        ca_pem,
        key_prefix: s
            .redis_key_prefix
            .unwrap_or_else(|| DEFAULT_REDIS_KEY_PREFIX.to_string()),
        timeout,
        fail_closed: s.fail_closed.unwrap_or(false),
    })
}

/// `redis_sentinels`: each `host:port` (a Sentinel's, 26379 by custom).
fn sentinels(v: &mut Validator<'_>, written: Vec<String>) -> Vec<(String, u16)> {
    let mut all = Vec::new();
    for (i, text) in written.iter().enumerate() {
        match text.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
            Some((host, Ok(port))) if !host.is_empty() && port > 0 => {
                all.push((host.trim_matches(['[', ']']).to_string(), port));
            }
            _ => v.problem(
                format!("state.redis_sentinels[{i}]"),
                "not host:port: expected e.g. \"10.0.0.1:26379\" (credentials go in redis_url)",
            ),
        }
    }
    all
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
        assert_eq!(
            read_state("[state]\nbackend = \"redis\"\nredis_url = \"rediss://u:p@cache:6380/2\"\nfail_closed = true\n"),
            (
                State::Redis(Redis {
                    url: Secret::new("rediss://u:p@cache:6380/2".into()),
                    sentinels: vec![],
                    cluster: false,
                    ca_pem: None,
                    key_prefix: DEFAULT_REDIS_KEY_PREFIX.into(),
                    timeout: DEFAULT_REDIS_TIMEOUT,
                    fail_closed: true,
                }),
                vec![]
            )
        );
    }

    #[test]
    fn bad_state_config_says_what_to_do() {
        let (_, problems) = read_state("[state]\nbackend = \"redis\"\npath = \"x\"\n");
        assert_eq!(
            problems,
            ["state.path: set with backend = \"redis\", which keeps no file; remove one of the two"]
        );
        let (_, problems) = read_state("[state]\nbackend = \"redis\"\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("state.redis_url: backend = \"redis\" needs"));
        let (_, problems) =
            read_state("[state]\nbackend = \"redis\"\nredis_url = \"http://user:hunter2@host\"\n");
        assert_eq!(
            problems,
            ["state.redis_url: not a Redis URL: expected redis://[user:password@]host[:port][/db] or rediss:// for TLS"],
            "and the password is not repeated"
        );
        let (state, problems) = read_state(
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://mymaster/0\"\nredis_sentinels = [\"10.0.0.1:26379\", \"[::1]:26380\", \"nope\"]\nredis_ca_file = \"ca.pem\"\n",
        );
        assert_eq!(
            problems,
            [
                "state.redis_sentinels[2]: not host:port: expected e.g. \"10.0.0.1:26379\" (credentials go in redis_url)",
                "state.redis_ca_file: only for rediss:// (it names the CA the server's certificate is checked against); remove it or use rediss://",
            ]
        );
        let State::Redis(r) = state else {
            panic!("{state:?}")
        };
        assert_eq!(
            r.sentinels,
            [("10.0.0.1".to_string(), 26379), ("::1".to_string(), 26380)]
        );
        let (_, problems) = read_state(
            "[state]\nbackend = \"redis\"\nredis_url = \"rediss://cache/0\"\nredis_ca_file = \"/no/such/ca.pem\"\n",
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("state.redis_ca_file: cannot read \"/no/such/ca.pem\""),
            "{problems:?}"
        );
        let (_, problems) = read_state(
            "[state]\nbackend = \"redis\"\nredis_url = \"redis://m/0\"\nredis_sentinels = [\"s:26379\"]\nredis_cluster = true\n",
        );
        assert_eq!(
            problems,
            ["state.redis_cluster: set with redis_sentinels: a Cluster fails over by itself; keep one of the two"]
        );
        let (_, problems) = read_state("[state]\nredis_sentinels = []\n");
        assert!(problems[0].starts_with("state.redis_sentinels: only for backend = \"redis\""));
        let (_, problems) = read_state("[state]\nfail_closed = true\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("state.fail_closed: only for backend = \"redis\""));
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
