//! The memory store: lost at exit, so only when asked (`backend = "memory"`:
//! tests, `dev`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{EmailStatus, KeptKey, Refresh, Revoked, Store, StoreError, SubRevocation};

/// A store in maps.
#[derive(Default)]
pub struct Memory {
    /// Why one mutex: calls are rare (sign-outs, notifications), never on
    /// the per-request path, and one lock keeps each call atomic as a
    /// transaction is in the embedded store.
    tables: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    revoked: Revoked,
    notifications: HashMap<String, u64>,
    names: HashMap<String, Vec<u8>>,
    emails: HashMap<String, EmailStatus>,
    refresh: HashMap<String, Refresh>,
    signing_keys: HashMap<String, KeptKey>,
}

impl Memory {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Each call below changes one map entry at most: poison cannot mean
        // a half-made change.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for Memory {
    fn revoked(&self, now: u64) -> Result<Revoked, StoreError> {
        let t = self.tables();
        Ok(Revoked {
            sessions: t
                .revoked
                .sessions
                .iter()
                .filter(|(_, exp)| **exp > now)
                .map(|(id, exp)| (id.clone(), *exp))
                .collect(),
            subs: t
                .revoked
                .subs
                .iter()
                .filter(|(_, r)| r.until > now)
                .map(|(sub, r)| (sub.clone(), *r))
                .collect(),
        })
    }

    fn revoke_session(&self, id: &str, expires_at: u64) -> Result<bool, StoreError> {
        let sessions = &mut self.tables().revoked.sessions;
        if sessions.contains_key(id) {
            return Ok(false);
        }
        sessions.insert(id.to_string(), expires_at);
        Ok(true)
    }

    fn revoke_sub(&self, sub: &str, r: SubRevocation) -> Result<bool, StoreError> {
        let subs = &mut self.tables().revoked.subs;
        match SubRevocation::merge(subs.get(sub).copied(), r) {
            Some(keep) => {
                subs.insert(sub.to_string(), keep);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn first_notification(&self, jti: &str, until: u64) -> Result<bool, StoreError> {
        let seen = &mut self.tables().notifications;
        if seen.contains_key(jti) {
            return Ok(false);
        }
        seen.insert(jti.to_string(), until);
        Ok(true)
    }

    fn notification_seen(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.tables().notifications.contains_key(jti))
    }

    fn record_email_status(&self, sub: &str, status: EmailStatus) -> Result<bool, StoreError> {
        let emails = &mut self.tables().emails;
        match EmailStatus::merge(emails.get(sub).copied(), status) {
            Some(keep) => {
                emails.insert(sub.to_string(), keep);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn email_statuses(&self) -> Result<HashMap<String, EmailStatus>, StoreError> {
        Ok(self.tables().emails.clone())
    }

    fn remember_name(&self, sub: &str, sealed: &[u8]) -> Result<bool, StoreError> {
        let names = &mut self.tables().names;
        if names.get(sub).is_some_and(|held| held == sealed) {
            return Ok(false);
        }
        names.insert(sub.to_string(), sealed.to_vec());
        Ok(true)
    }

    fn name(&self, sub: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tables().names.get(sub).cloned())
    }

    fn forget_name(&self, sub: &str) -> Result<bool, StoreError> {
        Ok(self.tables().names.remove(sub).is_some())
    }

    fn keep_refresh(&self, id: &str, r: &Refresh) -> Result<bool, StoreError> {
        let kept = &mut self.tables().refresh;
        if kept.get(id) == Some(r) {
            return Ok(false);
        }
        kept.insert(id.to_string(), r.clone());
        Ok(true)
    }

    fn refresh(&self, id: &str) -> Result<Option<Refresh>, StoreError> {
        Ok(self.tables().refresh.get(id).cloned())
    }

    fn forget_refresh(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.tables().refresh.remove(id).is_some())
    }

    fn signing_keys(&self) -> Result<Vec<(String, KeptKey)>, StoreError> {
        let t = self.tables();
        Ok(t.signing_keys
            .iter()
            .map(|(kid, k)| (kid.clone(), k.clone()))
            .collect())
    }

    fn keep_signing_key(&self, kid: &str, key: &KeptKey) -> Result<bool, StoreError> {
        let kept = &mut self.tables().signing_keys;
        if kept.get(kid) == Some(key) {
            return Ok(false);
        }
        kept.insert(kid.to_string(), key.clone());
        Ok(true)
    }

    fn sweep(&self, now: u64) -> Result<usize, StoreError> {
        let mut t = self.tables();
        let count = |t: &Tables| {
            t.revoked.sessions.len()
                + t.revoked.subs.len()
                + t.notifications.len()
                + t.refresh.len()
                + t.signing_keys.len()
        };
        let before = count(&t);
        t.revoked.sessions.retain(|_, exp| *exp > now);
        t.revoked.subs.retain(|_, r| r.until > now);
        t.notifications.retain(|_, until| *until > now);
        t.refresh.retain(|_, r| r.until > now);
        t.signing_keys.retain(|_, k| k.until > now);
        Ok(before - count(&t))
    }
}
