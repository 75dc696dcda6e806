//! The revocation set: the only session state the server keeps.
//!
//! Sessions live in cookies, so ending one early needs a list of what was
//! ended: session ids (sign-out) and "sub revoked at T" (an account whose
//! access was withdrawn). It is read on every request from memory; with a
//! file configured, each revocation is appended to it and the file is read
//! back at start, so revocations survive restarts.
//!
//! File format, one per line: `sid <id> <expires_at>` or `sub <sub> <at>`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Mutex, RwLock};

use super::Session;

/// Revoked sessions and subjects.
#[derive(Default)]
pub struct Revocations {
    /// Why a lock: writes (sign-outs) are rare, reads are every request;
    /// an uncontended RwLock read is a few nanoseconds. Bounded: entries
    /// leave when the session they revoke would have expired anyway.
    sessions: RwLock<HashMap<String, u64>>,
    /// sub ▶ time of revocation; sessions issued at or before it are void.
    subs: RwLock<HashMap<String, u64>>,
    file: Option<Mutex<File>>,
}

impl Revocations {
    /// An in-memory set.
    pub fn in_memory() -> Self {
        Revocations::default()
    }

    /// A set persisted in `path` (created if missing); entries that
    /// expired before `now` are dropped on load.
    pub fn open(path: &Path, now: u64) -> std::io::Result<Self> {
        let set = Revocations::default();
        if path.exists() {
            let reader = BufReader::new(File::open(path)?);
            for line in reader.lines() {
                let line = line?;
                let mut parts = line.split_whitespace();
                let (kind, id, t) = (
                    parts.next(),
                    parts.next(),
                    parts.next().and_then(|t| t.parse::<u64>().ok()),
                );
                match (kind, id, t) {
                    (Some("sid"), Some(id), Some(exp)) if exp > now => {
                        set.write(&set.sessions).insert(id.to_string(), exp);
                    }
                    (Some("sub"), Some(sub), Some(at)) => {
                        let mut subs = set.write(&set.subs);
                        let e = subs.entry(sub.to_string()).or_insert(at);
                        *e = (*e).max(at);
                    }
                    _ => {}
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Revocations {
            file: Some(Mutex::new(file)),
            ..set
        })
    }

    /// Ends session `id`, which would expire at `expires_at`.
    pub fn revoke_session(&self, id: &str, expires_at: u64) {
        self.write(&self.sessions)
            .insert(id.to_string(), expires_at);
        self.append(&format!("sid {id} {expires_at}\n"));
    }

    /// Ends every session of `sub` issued at or before `at`.
    pub fn revoke_sub(&self, sub: &str, at: u64) {
        self.write(&self.subs).insert(sub.to_string(), at);
        self.append(&format!("sub {sub} {at}\n"));
    }

    /// Whether `session` was revoked.
    pub fn is_revoked(&self, session: &Session) -> bool {
        let by_id = self
            .sessions
            .read()
            .map(|s| s.contains_key(&session.id))
            .unwrap_or(true);
        by_id
            || self
                .subs
                .read()
                .map(|s| {
                    s.get(&session.sub)
                        .is_some_and(|at| session.issued_at <= *at)
                })
                .unwrap_or(true)
    }

    /// Drops session entries that expired before `now`.
    pub fn prune(&self, now: u64) {
        self.write(&self.sessions).retain(|_, exp| *exp > now);
    }

    fn write<'a, T>(&self, lock: &'a RwLock<T>) -> std::sync::RwLockWriteGuard<'a, T> {
        // A panic while holding this lock cannot leave the map half-written
        // (insert and retain are atomic from our view), so poison is ignored.
        lock.write().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, line: &str) {
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = f.write_all(line.as_bytes()).and_then(|_| f.flush()) {
                tracing::error!(error = %e, "cannot persist revocation; it holds in memory until restart");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, sub: &str, issued_at: u64) -> Session {
        Session {
            id: id.into(),
            sub: sub.into(),
            email: None,
            email_verified: false,
            is_private_email: false,
            name: None,
            issued_at,
            expires_at: issued_at + 100,
        }
    }

    #[test]
    fn revocations_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("applegate-rev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("revoked");
        let _ = std::fs::remove_file(&path);
        {
            let r = Revocations::open(&path, 0).unwrap();
            r.revoke_session("s1", 500);
            r.revoke_sub("u2", 300);
        }
        let r = Revocations::open(&path, 100).unwrap();
        assert!(r.is_revoked(&session("s1", "u1", 10)));
        assert!(r.is_revoked(&session("s9", "u2", 300)));
        assert!(
            !r.is_revoked(&session("s9", "u2", 301)),
            "issued after the revocation"
        );
        assert!(!r.is_revoked(&session("s2", "u1", 10)));
        let r = Revocations::open(&path, 600).unwrap();
        assert!(
            !r.is_revoked(&session("s1", "u1", 10)),
            "expired entries are dropped"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
