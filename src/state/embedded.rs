//! The embedded store: one redb file, the default.
//!
//! Why redb: one file, no server, pure Rust, and ACID: a write returns only
//! after its transaction is committed and fsync'd (redb's default
//! `Durability::Immediate`), and a crash (kill -9, power loss) leaves the
//! last committed state, which redb checks and repairs on the next open.
//! redb also locks the file, so two gateways cannot share one by mistake.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{
    Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle, WriteTransaction,
};

use std::collections::HashMap;

use super::{EmailStatus, KeptKey, Refresh, Revoked, Store, StoreError, SubRevocation};

/// Session id ▶ when it would have expired.
const SESSIONS: TableDefinition<&str, u64> = TableDefinition::new("revoked_sessions");
/// `sub` ▶ (revoked as of, kept until).
const SUBS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("revoked_subs");
/// Notification `jti` ▶ kept until.
const NOTIFICATIONS: TableDefinition<&str, u64> = TableDefinition::new("notifications_seen");
/// `sub` ▶ (relay email disabled, as of Apple's event time).
const EMAILS: TableDefinition<&str, (bool, u64)> = TableDefinition::new("email_status");
/// `sub` ▶ the sealed name Apple sent once.
const NAMES: TableDefinition<&str, &[u8]> = TableDefinition::new("names");
/// Session id ▶ (`sub`, sealed refresh token, checked at, kept until).
const REFRESH: TableDefinition<&str, (&str, &[u8], u64, u64)> = TableDefinition::new("refresh");

/// `kid` ▶ (sealed assertion signing key, created at, kept until).
const SIGNING_KEYS: TableDefinition<&str, (&[u8], u64, u64)> = TableDefinition::new("signing_keys");

/// redb's page cache; its default (1 GiB) is sized for databases far
/// larger than a revocation list.
const CACHE_BYTES: usize = 16 << 20;

/// How long [`Embedded::open`] waits for a file another handle is closing.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// A store in one redb file.
pub struct Embedded {
    db: Database,
}

impl Embedded {
    /// Opens `path`, creating it (not its directory) if missing.
    pub fn open(path: &Path) -> Result<Embedded, StoreError> {
        let open_error = |cause| StoreError::Open {
            path: path.to_path_buf(),
            cause: Box::new(cause),
        };
        let mut builder = redb::Builder::new();
        // The format redb 3 and later read, so a later upgrade keeps the file.
        builder
            .create_with_file_format_v3(true)
            .set_cache_size(CACHE_BYTES);
        // A gateway restarted in place may find its predecessor still
        // closing the file (pingora drops a stopped server's tasks without
        // waiting for them): a moment's wait, then "in use" is the answer.
        let deadline = Instant::now() + RELEASE_WAIT;
        let mut db = loop {
            match builder.create(path) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.map_err(open_error)?,
            }
        };
        // A file created by an older redb 2 is moved to that format once.
        db.upgrade()?;
        let store = Embedded { db };
        // Every table exists from the start, so reads never meet a missing one.
        store.write(|txn| {
            txn.open_table(SESSIONS)?;
            txn.open_table(SUBS)?;
            txn.open_table(NOTIFICATIONS)?;
            txn.open_table(NAMES)?;
            txn.open_table(EMAILS)?;
            txn.open_table(REFRESH)?;
            txn.open_table(SIGNING_KEYS)?;
            Ok(((), true))
        })?;
        Ok(store)
    }

    /// Runs `f` in a write transaction: committed (and fsync'd) when `f`
    /// says it changed something, aborted otherwise, so a change that
    /// changes nothing writes nothing.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write()?;
        let (value, changed) = f(&txn)?;
        if changed {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(value)
    }

    /// Inserts `key` ▶ `value` unless `key` is there: the first entry
    /// stands, and a repeat writes nothing.
    fn insert_new(
        &self,
        table: TableDefinition<&str, u64>,
        key: &str,
        value: u64,
    ) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(table)?;
            let new = t.get(key)?.is_none();
            if new {
                t.insert(key, value)?;
            }
            Ok((new, new))
        })
    }

    /// Replaces `key`'s row of `table` with what `merge` makes of the row
    /// held; `merge` answering `None` changes nothing and writes nothing.
    fn merge_row<A>(
        &self,
        table: TableDefinition<&str, (A, u64)>,
        key: &str,
        merge: impl FnOnce(Option<(A, u64)>) -> Option<(A, u64)>,
    ) -> Result<bool, StoreError>
    where
        A: for<'a> redb::Value<SelfType<'a> = A> + Copy + 'static,
    {
        self.write(|txn| {
            let mut t = txn.open_table(table)?;
            let held = t.get(key)?.map(|v| v.value());
            match merge(held) {
                Some(keep) => {
                    t.insert(key, keep)?;
                    Ok((true, true))
                }
                None => Ok((false, false)),
            }
        })
    }

    /// Drops the rows of `table` whose time (from `until`) is at or before `now`.
    fn sweep_table<V: redb::Value + 'static>(
        txn: &WriteTransaction,
        table: TableDefinition<&str, V>,
        now: u64,
        until: impl Fn(V::SelfType<'_>) -> u64,
    ) -> Result<usize, StoreError> {
        let mut t = txn.open_table(table)?;
        let before = t.len()?;
        t.retain(|_, v| until(v) > now)?;
        let dropped = before - t.len()?;
        if dropped > 0 {
            tracing::debug!(
                table = table.name(),
                dropped,
                "expired state entries dropped"
            );
        }
        Ok(dropped as usize)
    }
}

impl Store for Embedded {
    fn revoked(&self, now: u64) -> Result<Revoked, StoreError> {
        let txn = self.db.begin_read()?;
        let mut r = Revoked::default();
        for row in txn.open_table(SESSIONS)?.iter()? {
            let (id, exp) = row?;
            if exp.value() > now {
                r.sessions.insert(id.value().to_string(), exp.value());
            }
        }
        for row in txn.open_table(SUBS)?.iter()? {
            let (sub, held) = row?;
            let (at, until) = held.value();
            if until > now {
                r.subs
                    .insert(sub.value().to_string(), SubRevocation { at, until });
            }
        }
        Ok(r)
    }

    fn revoke_session(&self, id: &str, expires_at: u64) -> Result<bool, StoreError> {
        self.insert_new(SESSIONS, id, expires_at)
    }

    fn revoke_sub(&self, sub: &str, r: SubRevocation) -> Result<bool, StoreError> {
        self.merge_row(SUBS, sub, |held| {
            let held = held.map(|(at, until)| SubRevocation { at, until });
            SubRevocation::merge(held, r).map(|k| (k.at, k.until))
        })
    }

    fn first_notification(&self, jti: &str, until: u64) -> Result<bool, StoreError> {
        self.insert_new(NOTIFICATIONS, jti, until)
    }

    fn notification_seen(&self, jti: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let seen = txn.open_table(NOTIFICATIONS)?.get(jti)?.is_some();
        Ok(seen)
    }

    fn record_email_status(&self, sub: &str, status: EmailStatus) -> Result<bool, StoreError> {
        self.merge_row(EMAILS, sub, |held| {
            let held = held.map(|(disabled, at)| EmailStatus { disabled, at });
            EmailStatus::merge(held, status).map(|k| (k.disabled, k.at))
        })
    }

    fn email_statuses(&self) -> Result<HashMap<String, EmailStatus>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut all = HashMap::new();
        for row in txn.open_table(EMAILS)?.iter()? {
            let (sub, v) = row?;
            let (disabled, at) = v.value();
            all.insert(sub.value().to_string(), EmailStatus { disabled, at });
        }
        Ok(all)
    }

    fn remember_name(&self, sub: &str, sealed: &[u8]) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(NAMES)?;
            if t.get(sub)?.is_some_and(|held| held.value() == sealed) {
                return Ok((false, false));
            }
            t.insert(sub, sealed)?;
            Ok((true, true))
        })
    }

    fn name(&self, sub: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let name = txn.open_table(NAMES)?.get(sub)?.map(|v| v.value().to_vec());
        Ok(name)
    }

    fn forget_name(&self, sub: &str) -> Result<bool, StoreError> {
        self.write(|txn| {
            let gone = txn.open_table(NAMES)?.remove(sub)?.is_some();
            Ok((gone, gone))
        })
    }

    fn keep_refresh(&self, id: &str, r: &Refresh) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(REFRESH)?;
            let same = t.get(id)?.is_some_and(|held| {
                held.value() == (r.sub.as_str(), r.sealed.as_slice(), r.checked_at, r.until)
            });
            if !same {
                t.insert(
                    id,
                    (r.sub.as_str(), r.sealed.as_slice(), r.checked_at, r.until),
                )?;
            }
            Ok((!same, !same))
        })
    }

    fn refresh(&self, id: &str) -> Result<Option<Refresh>, StoreError> {
        let txn = self.db.begin_read()?;
        let kept = txn.open_table(REFRESH)?.get(id)?.map(|v| {
            let (sub, sealed, checked_at, until) = v.value();
            Refresh {
                sub: sub.to_string(),
                sealed: sealed.to_vec(),
                checked_at,
                until,
            }
        });
        Ok(kept)
    }

    fn forget_refresh(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|txn| {
            let gone = txn.open_table(REFRESH)?.remove(id)?.is_some();
            Ok((gone, gone))
        })
    }

    fn signing_keys(&self) -> Result<Vec<(String, KeptKey)>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut all = Vec::new();
        for row in txn.open_table(SIGNING_KEYS)?.iter()? {
            let (kid, v) = row?;
            let (sealed, created_at, until) = v.value();
            let key = KeptKey {
                sealed: sealed.to_vec(),
                created_at,
                until,
            };
            all.push((kid.value().to_string(), key));
        }
        Ok(all)
    }

    fn keep_signing_key(&self, kid: &str, key: &KeptKey) -> Result<bool, StoreError> {
        let row = (key.sealed.as_slice(), key.created_at, key.until);
        self.write(|txn| {
            let mut t = txn.open_table(SIGNING_KEYS)?;
            let same = t.get(kid)?.is_some_and(|held| held.value() == row);
            if !same {
                t.insert(kid, row)?;
            }
            Ok((!same, !same))
        })
    }

    fn sweep(&self, now: u64) -> Result<usize, StoreError> {
        self.write(|txn| {
            let n = Self::sweep_table(txn, SESSIONS, now, |exp| exp)?
                + Self::sweep_table(txn, SUBS, now, |(_, until)| until)?
                + Self::sweep_table(txn, NOTIFICATIONS, now, |until| until)?
                + Self::sweep_table(txn, REFRESH, now, |(_, _, _, until)| until)?
                + Self::sweep_table(txn, SIGNING_KEYS, now, |(_, _, until)| until)?;
            Ok((n, n > 0))
        })
    }
}

/// Whether the state file at `path` could be written: an existing file
/// opened for writing, or else a file created beside it (and removed).
/// For `check`, which must not open the database itself: a running
/// gateway holds its lock.
pub fn probe_writable(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return OpenOptions::new().write(true).open(path).map(drop);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let probe: PathBuf = path.with_file_name(format!(".{name}.check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}
