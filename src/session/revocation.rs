//! The revocation set: the only session state the server keeps.
//!
//! Sessions live in cookies, so ending one early needs a list of what was
//! ended: session ids (sign-out) and "sub revoked at T" (an account whose
//! access was withdrawn). It is read on every request from memory; with a
//! file configured, each new revocation is appended to it and the file is
//! read back at start, so revocations survive restarts.
//!
//! File format, one per line: `sid <id> <expires_at>` or `sub <sub> <at>`.
//! An append-only log grows with every sign-out, so `open` compacts it:
//! the file is rewritten with what still counts (unexpired session ids, the
//! latest time per sub), keeping its size bounded by live revocations.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use crate::identity::Identity;

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

/// One line of the file.
#[derive(Debug, PartialEq, Eq)]
enum Entry<'a> {
    Session { id: &'a str, expires_at: u64 },
    Sub { sub: &'a str, at: u64 },
}

impl<'a> Entry<'a> {
    /// Parses a line; `None` for anything but exactly `kind id time`.
    fn parse(line: &'a str) -> Option<Self> {
        let mut parts = line.split_whitespace();
        let (kind, id, t) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let t = t.parse::<u64>().ok()?;
        match kind {
            "sid" => Some(Entry::Session { id, expires_at: t }),
            "sub" => Some(Entry::Sub { sub: id, at: t }),
            _ => None,
        }
    }
}

impl Revocations {
    /// An in-memory set.
    pub fn in_memory() -> Self {
        Revocations::default()
    }

    /// A set persisted in `path` (created if missing). Entries that expired
    /// before `now` are dropped, and the file is compacted to what remains
    /// (see [`Self::compact`]).
    pub fn open(path: &Path, now: u64) -> std::io::Result<Self> {
        let set = Revocations::default();
        if path.exists() {
            set.load(path, now)?;
            set.compact(path)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Revocations {
            file: Some(Mutex::new(file)),
            ..set
        })
    }

    /// Reads `path` into memory, skipping expired and malformed lines.
    fn load(&self, path: &Path, now: u64) -> std::io::Result<()> {
        let reader = BufReader::new(File::open(path)?);
        let (mut sessions, mut subs) = (self.write(&self.sessions), self.write(&self.subs));
        // Split on bytes, not `lines()`: a line that is not UTF-8 is one
        // more malformed line, not a reason to refuse to start.
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line?;
            match std::str::from_utf8(&line).ok().and_then(Entry::parse) {
                Some(Entry::Session { id, expires_at }) if expires_at > now => {
                    sessions.insert(id.to_string(), expires_at);
                }
                Some(Entry::Session { .. }) => {}
                Some(Entry::Sub { sub, at }) => {
                    let e = subs.entry(sub.to_string()).or_insert(at);
                    *e = (*e).max(at);
                }
                // The content is not logged: a torn or foreign line may hold
                // anything, and a session id is not for logs.
                None => tracing::warn!(
                    file = %path.display(),
                    line = i + 1,
                    "malformed revocation line dropped"
                ),
            }
        }
        Ok(())
    }

    /// Rewrites `path` with the entries in memory: to a temporary file in
    /// the same directory, synced, then renamed over `path`. Why this dance:
    /// a rename within a directory is atomic, so a crash leaves either the
    /// old file or the new one, never a half-written list (which would
    /// silently un-revoke sessions). It also drops a torn last line, which
    /// the next append would otherwise glue to a valid one.
    fn compact(&self, path: &Path) -> std::io::Result<()> {
        let tmp = temp_path(path);
        let mut lines: Vec<String> = self
            .read(&self.sessions)
            .iter()
            .map(|(id, exp)| format!("sid {id} {exp}\n"))
            .chain(
                self.read(&self.subs)
                    .iter()
                    .map(|(sub, at)| format!("sub {sub} {at}\n")),
            )
            .collect();
        // A stable order makes the file reproducible and diffable.
        lines.sort_unstable();
        let result = (|| {
            let file = File::create(&tmp)?;
            file.set_permissions(std::fs::metadata(path)?.permissions())?;
            let mut w = BufWriter::new(file);
            for line in &lines {
                w.write_all(line.as_bytes())?;
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename itself is durable only once the directory is synced.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Ends session `id`, which would expire at `expires_at`. Revoking it
    /// again (a second sign-out with the same cookie) changes nothing and
    /// writes nothing.
    pub fn revoke_session(&self, id: &str, expires_at: u64) {
        // The read lock first: a repeated sign-out need not stall readers.
        if self.read(&self.sessions).contains_key(id) {
            return;
        }
        {
            // Checked again under the write lock, so of two racing sign-outs
            // only one inserts and appends.
            let mut sessions = self.write(&self.sessions);
            if sessions.contains_key(id) {
                return;
            }
            sessions.insert(id.to_string(), expires_at);
        }
        self.append(&format!("sid {id} {expires_at}\n"));
    }

    /// Ends every session of `sub` issued at or before `at`. A revocation
    /// no later than one already held changes nothing and writes nothing.
    pub fn revoke_sub(&self, sub: &str, at: u64) {
        {
            let mut subs = self.write(&self.subs);
            match subs.get_mut(sub) {
                Some(held) if *held >= at => return,
                Some(held) => *held = at,
                None => {
                    subs.insert(sub.to_string(), at);
                }
            }
        }
        self.append(&format!("sub {sub} {at}\n"));
    }

    /// Whether `id`'s proof was revoked: its session signed out, or its
    /// `sub` revoked since the proof was issued (a bearer token too).
    pub fn is_revoked(&self, id: &Identity) -> bool {
        let by_session = id.session_id().is_some_and(|sid| {
            self.sessions
                .read()
                .map(|s| s.contains_key(sid))
                .unwrap_or(true)
        });
        by_session
            || self
                .subs
                .read()
                .map(|s| s.get(&id.sub).is_some_and(|at| id.issued_at() <= *at))
                .unwrap_or(true)
    }

    /// Drops session entries that expired before `now`.
    pub fn prune(&self, now: u64) {
        self.write(&self.sessions).retain(|_, exp| *exp > now);
    }

    fn read<'a, T>(&self, lock: &'a RwLock<T>) -> std::sync::RwLockReadGuard<'a, T> {
        // As for `write`: poison cannot mean a half-written map.
        lock.read().unwrap_or_else(|p| p.into_inner())
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

/// `dir/.name.compact`: beside `path`, so the rename stays in one file system.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.compact"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, sub: &str, issued_at: u64) -> Identity {
        Identity {
            sub: sub.into(),
            email: None,
            email_verified: false,
            is_private_email: false,
            name: None,
            proof: crate::identity::Proof::Session {
                id: id.into(),
                issued_at,
                expires_at: issued_at + 100,
            },
        }
    }

    /// A fresh directory for one test (tests run in parallel in one process).
    fn temp_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("applegate-rev-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn revocations_survive_a_restart() {
        let dir = temp_dir("restart");
        let path = dir.join("revoked");
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

    #[test]
    fn revoking_again_writes_nothing() {
        let dir = temp_dir("again");
        let path = dir.join("revoked");
        let r = Revocations::open(&path, 0).unwrap();
        r.revoke_session("s1", 500);
        r.revoke_session("s1", 500);
        r.revoke_session("s1", 900);
        r.revoke_sub("u1", 300);
        r.revoke_sub("u1", 300);
        r.revoke_sub("u1", 200);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sid s1 500\nsub u1 300\n"
        );
        assert_eq!(r.read(&r.sessions)["s1"], 500, "the first entry stands");
        assert_eq!(
            r.read(&r.subs)["u1"],
            300,
            "an earlier time does not shorten a revocation"
        );
        r.revoke_sub("u1", 400);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sid s1 500\nsub u1 300\nsub u1 400\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_compacts_the_file() {
        let dir = temp_dir("compact");
        let path = dir.join("revoked");
        std::fs::write(
            &path,
            b"sid old 50\n\
             sub u1 100\n\
             sid live 500\n\
             sub u1 300\n\
             not a line\n\
             sid x soon\n\
             sid y 600 extra\n\
             sub u1 200\n\
             sub u2 7\n\
             sid \xff\xfe 900\n\
             sid torn",
        )
        .unwrap();
        let r = Revocations::open(&path, 100).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sid live 500\nsub u1 300\nsub u2 7\n",
            "expired, repeated and malformed lines are gone"
        );
        assert!(r.is_revoked(&session("live", "u9", 10)));
        assert!(r.is_revoked(&session("s", "u1", 300)));
        assert!(!r.is_revoked(&session("y", "u9", 10)));
        // Appends go to the compacted file, and a later open keeps them.
        r.revoke_session("new", 700);
        drop(r);
        Revocations::open(&path, 550).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sid new 700\nsub u1 300\nsub u2 7\n"
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
