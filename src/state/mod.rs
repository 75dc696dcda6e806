//! What the server keeps: the state store, and its one seam, [`Store`].
//!
//! Sessions live in cookies, so the server keeps little: revoked sessions
//! (by id, until they would have expired anyway), revoked users (by `sub`,
//! as of a time), and room for what the Apple lifecycle adds: notification
//! ids already handled (Apple retries) and the names Apple sends only once
//! (sealed by the caller: personal data), and whether a user switched mail
//! to their private relay address off (Apple's `email-disabled`), and per
//! session Apple's refresh token (sealed by the caller: a credential) with
//! when Apple last confirmed it, for re-validation and revoke-at-Apple;
//! and the key the gateway generated to sign identity assertions to
//! upstreams (sealed by the caller: a private key), with a replaced one
//! until what it signed has expired.
//!
//! Three backends: [`Embedded`], a crash-safe single-file database (the
//! default: durable with no configuration), [`Memory`] (only when asked:
//! tests, `dev`), and [`Redis`], shared by several replicas. Every backend
//! passes the one shared [`suite`].
//!
//! The per-request path never touches a store: `session::Revocations`
//! loads what is in force at start into memory and writes each change
//! through, answering only once the store has committed it. Hence a
//! synchronous trait: calls are rare, and async callers run them on
//! tokio's blocking pool. The Redis store keeps that seam (its own task
//! talks to Redis; a call waits for it): what a shared store adds is that
//! others change it too, so a view also [`Store::listen`]s for their
//! [`Change`]s, and asks [`Store::in_sync`] whether it can be trusted.

mod embedded;
mod memory;
mod redis;
pub mod suite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use self::redis::Redis;
pub use embedded::{probe_writable, Embedded};
pub use memory::Memory;

use crate::config;

/// A revocation of every proof of one `sub` issued at or before `at`;
/// kept until `until`, when no such proof can still be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRevocation {
    pub at: u64,
    pub until: u64,
}

impl SubRevocation {
    /// What to keep when `new` arrives and `held` is kept: `None` when
    /// `new` changes nothing (it is no later), so nothing is written. A
    /// revocation only moves forward; it is kept as long as either needs.
    pub fn merge(held: Option<SubRevocation>, new: SubRevocation) -> Option<SubRevocation> {
        match held {
            Some(h) if h.at >= new.at => None,
            Some(h) => Some(SubRevocation {
                at: new.at,
                until: new.until.max(h.until),
            }),
            None => Some(new),
        }
    }
}

/// Whether mail to a user's private relay address is switched off, as of
/// Apple's `event_time` (milliseconds) of the notification that said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailStatus {
    pub disabled: bool,
    pub at: u64,
}

impl EmailStatus {
    /// What to keep when `new` arrives and `held` is kept: the later event
    /// wins (Apple's notifications may arrive out of order); `None` when
    /// `new` is no later, so nothing is written.
    pub fn merge(held: Option<EmailStatus>, new: EmailStatus) -> Option<EmailStatus> {
        match held {
            Some(h) if h.at >= new.at => None,
            _ => Some(new),
        }
    }
}

/// What re-validation and revoke-at-Apple keep for one session: Apple's
/// refresh token, sealed by the caller (a credential is never stored in the
/// clear), whose it is, when Apple last confirmed it (seconds), and until
/// when it matters (the session's expiry: then it is swept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    pub sub: String,
    pub sealed: Vec<u8>,
    pub checked_at: u64,
    pub until: u64,
}

/// A key the gateway generated to sign identity assertions
/// (`crate::assertion`): sealed by the caller (a private key is never
/// stored in the clear), when it was made, and until when it is kept
/// ([`KEPT_WHILE_SIGNING`] while it signs; once replaced, until the last
/// assertion it signed has expired, then it is swept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptKey {
    pub sealed: Vec<u8>,
    pub created_at: u64,
    pub until: u64,
}

/// [`KeptKey::until`] of the key that signs: never swept.
pub const KEPT_WHILE_SIGNING: u64 = u64::MAX;

/// The revocations in force: what the per-request view starts with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Session id ▶ when the session would have expired.
    pub sessions: HashMap<String, u64>,
    pub subs: HashMap<String, SubRevocation>,
}

/// A change another replica made (or this one: hearing its own is a
/// no-op, every merge being idempotent), as a shared store heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Session {
        id: String,
        expires_at: u64,
    },
    Sub {
        sub: String,
        r: SubRevocation,
    },
    Email {
        sub: String,
        status: EmailStatus,
    },
    /// Everything in force, read after (re)connecting: what was missed
    /// while away. Merged into a view, never replacing it (each entry only
    /// moves forward, and what this replica holds unsaved stays).
    Snapshot {
        revoked: Revoked,
        emails: HashMap<String, EmailStatus>,
    },
}

/// What a view calls on each [`Change`].
pub type Listener = Box<dyn Fn(&Change) + Send + Sync>;

/// What the server keeps, behind one seam. Writes are durable when they
/// return `Ok` (for a durable backend); each returns whether it changed
/// anything, and one that changes nothing writes nothing.
pub trait Store: Send + Sync {
    /// The revocations in force at `now` (nothing expired).
    fn revoked(&self, now: u64) -> Result<Revoked, StoreError>;
    /// Revokes session `id`, which would expire at `expires_at`. A session
    /// already revoked keeps its first entry.
    fn revoke_session(&self, id: &str, expires_at: u64) -> Result<bool, StoreError>;
    /// Revokes `sub`'s proofs as of `r.at` (see [`SubRevocation::merge`]).
    fn revoke_sub(&self, sub: &str, r: SubRevocation) -> Result<bool, StoreError>;
    /// Records notification `jti`, kept until `until`; `false` when it was
    /// already recorded (a retry to ignore).
    fn first_notification(&self, jti: &str, until: u64) -> Result<bool, StoreError>;
    /// Whether notification `jti` was recorded (and not yet swept): a
    /// read, so a notification is acted on before it is recorded.
    fn notification_seen(&self, jti: &str) -> Result<bool, StoreError>;
    /// Records `sub`'s relay email status (see [`EmailStatus::merge`]).
    fn record_email_status(&self, sub: &str, status: EmailStatus) -> Result<bool, StoreError>;
    /// Every relay email status recorded (they do not expire).
    fn email_statuses(&self) -> Result<HashMap<String, EmailStatus>, StoreError>;
    /// Keeps `sealed` (a name, sealed by the caller) for `sub`.
    fn remember_name(&self, sub: &str, sealed: &[u8]) -> Result<bool, StoreError>;
    /// The sealed name kept for `sub`.
    fn name(&self, sub: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Forgets `sub`'s name.
    fn forget_name(&self, sub: &str) -> Result<bool, StoreError>;
    /// Keeps `r` for session `id`, replacing what was kept; `false` when
    /// the same was kept already.
    fn keep_refresh(&self, id: &str, r: &Refresh) -> Result<bool, StoreError>;
    /// What is kept for session `id` (and not yet swept).
    fn refresh(&self, id: &str) -> Result<Option<Refresh>, StoreError>;
    /// Forgets session `id`'s refresh token.
    fn forget_refresh(&self, id: &str) -> Result<bool, StoreError>;
    /// Every assertion signing key kept (and not yet swept), by `kid`.
    fn signing_keys(&self) -> Result<Vec<(String, KeptKey)>, StoreError>;
    /// Keeps `key` under `kid`, replacing what was kept; `false` when the
    /// same was kept already.
    fn keep_signing_key(&self, kid: &str, key: &KeptKey) -> Result<bool, StoreError>;
    /// Drops every entry expired at `now`; how many.
    fn sweep(&self, now: u64) -> Result<usize, StoreError>;
    /// Calls `listener` on each change others make. A store no one else
    /// writes to never does (the default).
    fn listen(&self, _listener: Listener) {}
    /// Whether the views can be trusted: false while a shared store is out
    /// of reach (changes made elsewhere may be missed). Every request may
    /// ask (`state.fail_closed`): an atomic load at most.
    fn in_sync(&self) -> bool {
        true
    }
    /// Takes the lock `name` for `ttl` seconds unless another replica holds
    /// it: `false` then. A store of one process grants it always (the
    /// process's own single flight is enough).
    fn try_lock(&self, _name: &str, _ttl: u64) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Gives the lock `name` back (before its `ttl`).
    fn unlock(&self, _name: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Why the store failed.
#[derive(Debug)]
pub enum StoreError {
    /// The state file could not be opened or created: a missing directory,
    /// no permission, not a database, or held by another running gateway.
    /// (redb's errors are boxed: they are large, and travel in the
    /// proxy's `Failure`, which is returned on every request.)
    Open {
        path: PathBuf,
        cause: Box<redb::DatabaseError>,
    },
    /// A read or write failed (I/O error, disk full, a damaged file).
    Storage(Box<redb::Error>),
    /// The task writing the change was lost (the runtime shutting down).
    Interrupted,
    /// Redis did not answer in time, refused the call, or could not be
    /// reached; or a sign-out could not be queued while it is away (the
    /// queue is full).
    Redis(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Open { path, cause }
                if matches!(**cause, redb::DatabaseError::DatabaseAlreadyOpen) =>
            {
                write!(
                f,
                "state.path: {} is in use by another running applegate (each gateway needs its own state file)",
                path.display()
            )
            }
            StoreError::Open { path, .. } => {
                write!(f, "state.path: cannot open {}", path.display())
            }
            StoreError::Storage(_) => f.write_str("the state store failed"),
            StoreError::Interrupted => f.write_str("the state store's write was interrupted"),
            StoreError::Redis(why) => write!(f, "the state store (Redis) failed: {why}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Open { cause, .. }
                if matches!(**cause, redb::DatabaseError::DatabaseAlreadyOpen) =>
            {
                None
            }
            StoreError::Open { cause, .. } => Some(&**cause),
            StoreError::Storage(e) => Some(&**e),
            StoreError::Interrupted | StoreError::Redis(_) => None,
        }
    }
}

/// Each of redb's error types into [`StoreError::Storage`], for `?`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError,
    redb::UpgradeError
);

/// Runs a store call on tokio's blocking pool: a durable commit waits for
/// the disk (an fsync), which must not stall the proxy's request tasks.
pub async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|_| StoreError::Interrupted)?
}

/// Opens the store `[state]` names. Fails closed: a file that cannot be
/// opened is an error, never a silent fall back to memory.
pub fn open(state: &config::State) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match state {
        config::State::Embedded { path } => Arc::new(Embedded::open(path)?),
        config::State::Memory => Arc::new(Memory::default()),
        config::State::Redis(r) => Arc::new(Redis::open(r)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test (tests run in parallel in one process).
    fn temp_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "applegate-state-{}-{test}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn memory_passes_the_suite() {
        suite::check(&|| Box::new(Memory::default()));
    }

    #[test]
    fn embedded_passes_the_suite() {
        let dir = temp_dir("suite");
        let n = std::sync::atomic::AtomicU32::new(0);
        suite::check(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::new(Embedded::open(&dir.join(format!("{i}.state"))).unwrap())
        });
        let path = dir.join("kept.state");
        suite::check_durable(&|| Box::new(Embedded::open(&path).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Against a real `redis-server`: each fresh store under its own key
    /// prefix on one server (which also shows prefixes keep gateways
    /// apart), and a store opened again under the same prefix reads what
    /// the first wrote.
    #[test]
    fn redis_passes_the_suite() {
        let server = crate::kit::redis::RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let open = |prefix: String| -> Box<dyn Store> {
            Box::new(
                Redis::open(&config::Redis {
                    url: crate::secret::Secret::new(server.url()),
                    sentinels: vec![],
                    cluster: false,
                    ca_pem: None,
                    key_prefix: prefix,
                    timeout: std::time::Duration::from_secs(2),
                    fail_closed: false,
                })
                .unwrap(),
            )
        };
        let n = std::sync::atomic::AtomicU32::new(0);
        suite::check(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            open(format!("suite{i}:"))
        });
        suite::check_durable(&|| open("kept:".into()));
    }

    /// Two stores on one Redis (two replicas): what one revokes or records,
    /// the other's listener hears; the lock is held by one at a time; and a
    /// Redis that cannot be reached fails the open, without the URL (it
    /// may hold a password) in the message.
    #[test]
    fn redis_stores_share_changes_and_locks() {
        let server = crate::kit::redis::RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let conf = |url: String| config::Redis {
            url: crate::secret::Secret::new(url),
            sentinels: vec![],
            cluster: false,
            ca_pem: None,
            key_prefix: "share:".into(),
            timeout: std::time::Duration::from_secs(2),
            fail_closed: false,
        };
        let (a, b) = (
            Redis::open(&conf(server.url())).unwrap(),
            Redis::open(&conf(server.url())).unwrap(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        b.listen(Box::new(move |c| {
            let _ = tx.lock().unwrap().send(c.clone());
        }));
        assert!(a.revoke_session("s1", 500).unwrap());
        let r = SubRevocation {
            at: 300,
            until: 900,
        };
        assert!(a.revoke_sub("u1", r).unwrap());
        let st = EmailStatus {
            disabled: true,
            at: 7,
        };
        assert!(a.record_email_status("u1", st).unwrap());
        let heard: Vec<Change> = (0..3)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(1)).unwrap())
            .collect();
        assert_eq!(
            heard,
            [
                Change::Session {
                    id: "s1".into(),
                    expires_at: 500
                },
                Change::Sub {
                    sub: "u1".into(),
                    r
                },
                Change::Email {
                    sub: "u1".into(),
                    status: st
                },
            ]
        );
        assert!(!b.revoke_session("s1", 500).unwrap(), "already there");
        assert!(a.in_sync() && b.in_sync());
        assert!(a.try_lock("revalidate:s1", 10).unwrap());
        assert!(!b.try_lock("revalidate:s1", 10).unwrap(), "held by a");
        assert!(b.try_lock("revalidate:s2", 10).unwrap());
        a.unlock("revalidate:s1").unwrap();
        assert!(b.try_lock("revalidate:s1", 10).unwrap(), "given back");
        let closed = crate::kit::free_port();
        let e = Redis::open(&conf(format!("redis://user:hunter2@127.0.0.1:{closed}/0")))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "the state store (Redis) failed: cannot connect to Redis at 127.0.0.1:{closed} (state.redis_url): "
            )),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    /// Open fails closed, with the path and the reason: a missing
    /// directory, a file that is not a database, a file in use.
    #[test]
    fn embedded_open_failures_say_why() {
        let dir = temp_dir("open");
        let missing = dir.join("no/such/dir/x.state");
        let e = Embedded::open(&missing).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!("state.path: cannot open {}", missing.display())
        );
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert!(cause.contains("No such file or directory"), "{cause}");
        let junk = dir.join("junk.state");
        std::fs::write(
            &junk,
            b"this is not a redb file, but long enough to look at",
        )
        .unwrap();
        assert!(matches!(
            Embedded::open(&junk),
            Err(StoreError::Open { .. })
        ));
        let path = dir.join("held.state");
        let _held = Embedded::open(&path).unwrap();
        let e = Embedded::open(&path).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "state.path: {} is in use by another running applegate (each gateway needs its own state file)",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn probe_tells_writable_from_not() {
        let dir = temp_dir("probe");
        probe_writable(&dir.join("new.state")).unwrap();
        assert!(!dir.join("new.state").exists(), "the probe leaves nothing");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(probe_writable(&dir.join("missing/x.state")).is_err());
        std::fs::write(dir.join("file"), "").unwrap();
        assert!(
            probe_writable(&dir.join("file/x.state")).is_err(),
            "parent is a file"
        );
        assert!(
            probe_writable(&dir).is_err(),
            "a directory is not a state file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
