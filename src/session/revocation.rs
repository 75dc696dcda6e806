//! The revocation set: the per-request view of the revocations the state
//! store keeps.
//!
//! Sessions live in cookies, so ending one early needs a list of what was
//! ended: session ids (sign-out) and "sub revoked as of T" (an account
//! whose access was withdrawn). Every request reads the list from memory;
//! it is loaded from the store ([`crate::state`]) at start, and every new
//! revocation is written through to it: a revocation call returns only
//! once the store has committed it, so what a user was told is ended stays
//! ended across a restart or a crash. A store shared by several replicas
//! (Redis) also tells the view what the others revoke.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::identity::Identity;
use crate::state::{blocking, Change, Memory, Store, StoreError, SubRevocation};

/// A revocation in the view, and whether the store has it yet.
#[derive(Debug, Clone, Copy)]
struct Held<T> {
    value: T,
    /// False until the store committed it: a failed write leaves the
    /// revocation in force here (fail closed) and lets a retry write it.
    saved: bool,
}

/// Revoked sessions and subjects.
pub struct Revocations {
    /// Why a lock: writes (sign-outs) are rare, reads are every request;
    /// an uncontended RwLock read is a few nanoseconds. Bounded: entries
    /// leave when the session they revoke would have expired anyway.
    /// Shared with the store's listener (other replicas' revocations).
    sessions: Arc<RwLock<HashMap<String, Held<u64>>>>,
    /// sub ▶ its revocation; proofs issued at or before `at` are void.
    subs: Arc<RwLock<HashMap<String, Held<SubRevocation>>>>,
    store: Arc<dyn Store>,
}

/// What the store says is kept (by this replica or another) into the view:
/// merged, never replacing what is held (each entry only moves forward).
fn merge_saved(
    sessions: &RwLock<HashMap<String, Held<u64>>>,
    subs: &RwLock<HashMap<String, Held<SubRevocation>>>,
    change: &Change,
) {
    let session = |id: &str, expires_at: u64| {
        let mut s = sessions.write().unwrap_or_else(|p| p.into_inner());
        s.entry(id.to_string())
            .and_modify(|h| h.saved = true)
            .or_insert(Held {
                value: expires_at,
                saved: true,
            });
    };
    let sub = |sub: &str, r: SubRevocation| {
        let mut s = subs.write().unwrap_or_else(|p| p.into_inner());
        let held = s.get(sub).map(|h| h.value);
        if let Some(value) = SubRevocation::merge(held, r) {
            s.insert(sub.to_string(), Held { value, saved: true });
        }
    };
    match change {
        Change::Session { id, expires_at } => session(id, *expires_at),
        Change::Sub { sub: s, r } => sub(s, *r),
        Change::Snapshot { revoked, .. } => {
            for (id, exp) in &revoked.sessions {
                session(id, *exp);
            }
            for (s, r) in &revoked.subs {
                sub(s, *r);
            }
        }
        Change::Email { .. } => {}
    }
}

impl Revocations {
    /// An in-memory set, for benchmarks and tests that keep nothing.
    pub fn in_memory() -> Self {
        Revocations::load(Arc::new(Memory::default()), 0)
            .expect("an empty memory store cannot fail")
    }

    /// The view of `store` at `now`; what expired is first dropped from
    /// the store itself.
    pub fn load(store: Arc<dyn Store>, now: u64) -> Result<Self, StoreError> {
        store.sweep(now)?;
        let (sessions, subs) = (Arc::default(), Arc::default());
        // Listening before reading: a change between the two arrives
        // twice rather than not at all.
        let (s, u) = (Arc::downgrade(&sessions), Arc::downgrade(&subs));
        store.listen(Box::new(move |change| {
            if let (Some(s), Some(u)) = (s.upgrade(), u.upgrade()) {
                merge_saved(&s, &u, change);
            }
        }));
        let kept = store.revoked(now)?;
        merge_saved(
            &sessions,
            &subs,
            &Change::Snapshot {
                revoked: kept,
                emails: HashMap::new(),
            },
        );
        Ok(Revocations {
            sessions,
            subs,
            store,
        })
    }

    /// Ends session `id`, which would expire at `expires_at`; returns once
    /// the store has it. Revoking it again (a second sign-out with the same
    /// cookie) changes nothing and writes nothing.
    pub async fn revoke_session(&self, id: &str, expires_at: u64) -> Result<(), StoreError> {
        // The read lock first: a repeated sign-out need not stall readers.
        if self.read(&self.sessions).get(id).is_some_and(|h| h.saved) {
            return Ok(());
        }
        // In force here at once, before the (slower) durable write.
        self.write(&self.sessions)
            .entry(id.to_string())
            .or_insert(Held {
                value: expires_at,
                saved: false,
            });
        let (store, key) = (self.store.clone(), id.to_string());
        blocking(move || store.revoke_session(&key, expires_at)).await?;
        if let Some(h) = self.write(&self.sessions).get_mut(id) {
            h.saved = true;
        }
        Ok(())
    }

    /// Ends every proof of `sub` issued at or before `r.at`, kept until
    /// `r.until`; returns once the store has it. A revocation no later than
    /// one already held changes nothing and writes nothing.
    pub async fn revoke_sub(&self, sub: &str, r: SubRevocation) -> Result<(), StoreError> {
        {
            let mut subs = self.write(&self.subs);
            let held = subs.get(sub).copied();
            match SubRevocation::merge(held.map(|h| h.value), r) {
                Some(value) => {
                    subs.insert(
                        sub.to_string(),
                        Held {
                            value,
                            saved: false,
                        },
                    );
                }
                None if held.is_some_and(|h| h.saved) => return Ok(()),
                None => {}
            }
        }
        let (store, key) = (self.store.clone(), sub.to_string());
        blocking(move || store.revoke_sub(&key, r)).await?;
        if let Some(h) = self.write(&self.subs).get_mut(sub) {
            h.saved = h.value.at <= r.at || h.saved;
        }
        Ok(())
    }

    /// The store behind this view, for what else the server keeps
    /// (notification ids) beside the revocations.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
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
                .map(|s| s.get(&id.sub).is_some_and(|r| id.issued_at() <= r.value.at))
                .unwrap_or(true)
    }

    /// Whether the view can be trusted (see [`Store::in_sync`]): false
    /// while a shared store is out of reach.
    pub fn in_sync(&self) -> bool {
        self.store.in_sync()
    }

    /// Whether session `id` was signed out (here or, by a shared store,
    /// on another replica).
    pub fn is_session_revoked(&self, id: &str) -> bool {
        self.read(&self.sessions).contains_key(id)
    }

    /// How many revocations are held (sessions and users), for `/metrics`.
    pub fn len(&self) -> usize {
        self.read(&self.sessions).len() + self.read(&self.subs).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops what expired before `now`, here and in the store.
    pub async fn sweep(&self, now: u64) {
        self.write(&self.sessions).retain(|_, h| h.value > now);
        self.write(&self.subs).retain(|_, h| h.value.until > now);
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.sweep(now)).await {
            tracing::warn!(error = %e, "cannot drop expired entries from the state store; next sweep retries");
        }
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
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::state::{EmailStatus, KeptKey, Refresh, Revoked};

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
                seen_at: issued_at,
                checked_at: issued_at,
            },
        }
    }

    /// A memory store that counts the calls that reach it and can be
    /// told to fail them.
    #[derive(Default)]
    struct Counting {
        inner: Memory,
        writes: AtomicUsize,
        failing: std::sync::atomic::AtomicBool,
    }

    impl Counting {
        fn call<T>(
            &self,
            f: impl FnOnce(&Memory) -> Result<T, StoreError>,
        ) -> Result<T, StoreError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Interrupted);
            }
            f(&self.inner)
        }
    }

    impl Store for Counting {
        fn revoked(&self, now: u64) -> Result<Revoked, StoreError> {
            self.inner.revoked(now)
        }
        fn revoke_session(&self, id: &str, exp: u64) -> Result<bool, StoreError> {
            self.call(|m| m.revoke_session(id, exp))
        }
        fn revoke_sub(&self, sub: &str, r: SubRevocation) -> Result<bool, StoreError> {
            self.call(|m| m.revoke_sub(sub, r))
        }
        fn first_notification(&self, jti: &str, until: u64) -> Result<bool, StoreError> {
            self.call(|m| m.first_notification(jti, until))
        }
        fn notification_seen(&self, jti: &str) -> Result<bool, StoreError> {
            self.inner.notification_seen(jti)
        }
        fn record_email_status(&self, sub: &str, st: EmailStatus) -> Result<bool, StoreError> {
            self.call(|m| m.record_email_status(sub, st))
        }
        fn email_statuses(&self) -> Result<HashMap<String, EmailStatus>, StoreError> {
            self.inner.email_statuses()
        }
        fn remember_name(&self, sub: &str, sealed: &[u8]) -> Result<bool, StoreError> {
            self.call(|m| m.remember_name(sub, sealed))
        }
        fn name(&self, sub: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.name(sub)
        }
        fn forget_name(&self, sub: &str) -> Result<bool, StoreError> {
            self.call(|m| m.forget_name(sub))
        }
        fn keep_refresh(&self, id: &str, r: &Refresh) -> Result<bool, StoreError> {
            self.call(|m| m.keep_refresh(id, r))
        }
        fn refresh(&self, id: &str) -> Result<Option<Refresh>, StoreError> {
            self.inner.refresh(id)
        }
        fn forget_refresh(&self, id: &str) -> Result<bool, StoreError> {
            self.call(|m| m.forget_refresh(id))
        }
        fn signing_keys(&self) -> Result<Vec<(String, KeptKey)>, StoreError> {
            self.inner.signing_keys()
        }
        fn keep_signing_key(&self, kid: &str, k: &KeptKey) -> Result<bool, StoreError> {
            self.call(|m| m.keep_signing_key(kid, k))
        }
        fn sweep(&self, now: u64) -> Result<usize, StoreError> {
            self.inner.sweep(now)
        }
    }

    fn sub(at: u64, until: u64) -> SubRevocation {
        SubRevocation { at, until }
    }

    /// What a store holds is in force after loading it; what expired is not.
    #[tokio::test]
    async fn a_loaded_view_holds_what_the_store_keeps() {
        let store: Arc<dyn Store> = Arc::new(Memory::default());
        let r = Revocations::load(store.clone(), 0).unwrap();
        r.revoke_session("s1", 500).await.unwrap();
        r.revoke_sub("u2", sub(300, 900)).await.unwrap();
        let r = Revocations::load(store.clone(), 100).unwrap();
        assert!(r.is_revoked(&session("s1", "u1", 10)));
        assert!(r.is_revoked(&session("s9", "u2", 300)));
        assert!(
            !r.is_revoked(&session("s9", "u2", 301)),
            "issued after the revocation"
        );
        assert!(!r.is_revoked(&session("s2", "u1", 10)));
        let r = Revocations::load(store.clone(), 600).unwrap();
        assert!(
            !r.is_revoked(&session("s1", "u1", 10)),
            "expired entries are dropped"
        );
        assert!(
            store.revoked(0).unwrap().sessions.is_empty(),
            "from the store too"
        );
    }

    /// A repeat reaches the store not at all; an earlier time does not
    /// shorten a sub's revocation.
    #[tokio::test]
    async fn revoking_again_writes_nothing() {
        let store = Arc::new(Counting::default());
        let r = Revocations::load(store.clone(), 0).unwrap();
        r.revoke_session("s1", 500).await.unwrap();
        r.revoke_session("s1", 500).await.unwrap();
        r.revoke_session("s1", 900).await.unwrap();
        r.revoke_sub("u1", sub(300, 900)).await.unwrap();
        r.revoke_sub("u1", sub(300, 900)).await.unwrap();
        r.revoke_sub("u1", sub(200, 900)).await.unwrap();
        assert_eq!(store.writes.load(Ordering::SeqCst), 2);
        assert_eq!(
            store.revoked(0).unwrap().sessions["s1"],
            500,
            "the first entry stands"
        );
        assert!(r.is_revoked(&session("x", "u1", 300)));
        r.revoke_sub("u1", sub(400, 900)).await.unwrap();
        assert_eq!(store.writes.load(Ordering::SeqCst), 3);
        assert!(r.is_revoked(&session("x", "u1", 400)));
    }

    /// A failed write is an error to the caller, the revocation holds here
    /// all the same (fail closed), and a retry writes it.
    #[tokio::test]
    async fn a_failed_write_holds_here_and_is_retried() {
        let store = Arc::new(Counting::default());
        let r = Revocations::load(store.clone(), 0).unwrap();
        store.failing.store(true, Ordering::SeqCst);
        assert!(r.revoke_session("s1", 500).await.is_err());
        assert!(r.is_revoked(&session("s1", "u1", 10)));
        store.failing.store(false, Ordering::SeqCst);
        r.revoke_session("s1", 500).await.unwrap();
        assert_eq!(store.revoked(0).unwrap().sessions["s1"], 500);
        assert_eq!(store.writes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_sweep_drops_what_expired() {
        let store: Arc<dyn Store> = Arc::new(Memory::default());
        let r = Revocations::load(store.clone(), 0).unwrap();
        r.revoke_session("old", 100).await.unwrap();
        r.revoke_session("live", 200).await.unwrap();
        r.revoke_sub("u1", sub(50, 100)).await.unwrap();
        r.sweep(100).await;
        assert!(!r.is_revoked(&session("old", "u9", 10)));
        assert!(r.is_revoked(&session("live", "u9", 10)));
        assert!(!r.is_revoked(&session("x", "u1", 10)));
        assert_eq!(store.revoked(0).unwrap().sessions.len(), 1);
    }
}
