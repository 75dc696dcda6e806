//! Users whose private relay address no longer forwards mail: the
//! per-request view of the email statuses the state store keeps.
//!
//! Apple tells us with `email-disabled` / `email-enabled` notifications;
//! upstreams hear it as `X-Auth-Request-Email-Disabled: true`, so apps stop
//! mailing an address that goes nowhere. Like the revocation set, the view
//! is loaded at start and every change is written through: the store
//! commits first, then the view changes, so what Apple was told is
//! recorded is what a restart finds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::state::{blocking, Change, EmailStatus, Memory, Store, StoreError};

/// `sub`s whose relay email is switched off.
pub struct DisabledEmails {
    /// Why a lock: changes are rare (a notification), reads are every
    /// authenticated request. Bounded by the users who ever had one.
    /// Shared with the store's listener (what other replicas record).
    statuses: Arc<RwLock<HashMap<String, EmailStatus>>>,
    store: Arc<dyn Store>,
}

impl DisabledEmails {
    /// An empty view over a memory store, for benchmarks and tests.
    pub fn in_memory() -> Self {
        DisabledEmails::load(Arc::new(Memory::default()))
            .expect("an empty memory store cannot fail")
    }

    /// The view of what `store` keeps.
    pub fn load(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let statuses: Arc<RwLock<HashMap<String, EmailStatus>>> = Arc::default();
        // Listening before reading, as the revocation set does.
        let view = Arc::downgrade(&statuses);
        store.listen(Box::new(move |change| {
            let Some(view) = view.upgrade() else { return };
            match change {
                Change::Email { sub, status } => merge(&view, sub, *status),
                Change::Snapshot { emails, .. } => {
                    for (sub, status) in emails {
                        merge(&view, sub, *status);
                    }
                }
                _ => {}
            }
        }));
        for (sub, status) in store.email_statuses()? {
            merge(&statuses, &sub, status);
        }
        Ok(DisabledEmails { statuses, store })
    }

    /// Records `sub`'s status; returns once the store has it. An event no
    /// later than the one held changes nothing.
    pub async fn record(&self, sub: &str, status: EmailStatus) -> Result<(), StoreError> {
        let (store, key) = (self.store.clone(), sub.to_string());
        blocking(move || store.record_email_status(&key, status)).await?;
        merge(&self.statuses, sub, status);
        Ok(())
    }

    /// Whether `sub`'s relay email is switched off.
    pub fn is_disabled(&self, sub: &str) -> bool {
        // Poison cannot mean a half-written map (insert is atomic here).
        let statuses = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        statuses.get(sub).is_some_and(|s| s.disabled)
    }
}

/// `status` into the view: the later event wins.
fn merge(view: &RwLock<HashMap<String, EmailStatus>>, sub: &str, status: EmailStatus) {
    // Poison cannot mean a half-written map (insert is atomic here).
    let mut statuses = view.write().unwrap_or_else(|p| p.into_inner());
    if let Some(keep) = EmailStatus::merge(statuses.get(sub).copied(), status) {
        statuses.insert(sub.to_string(), keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The later event wins; a restart (a new view of the same store)
    /// finds what was recorded.
    #[tokio::test]
    async fn later_events_win_and_are_kept() {
        let store: Arc<dyn Store> = Arc::new(Memory::default());
        let d = DisabledEmails::load(store.clone()).unwrap();
        assert!(!d.is_disabled("u1"));
        let st = |disabled, at| EmailStatus { disabled, at };
        d.record("u1", st(true, 10)).await.unwrap();
        assert!(d.is_disabled("u1"));
        d.record("u1", st(false, 9)).await.unwrap();
        assert!(d.is_disabled("u1"), "an earlier event arriving late");
        let again = DisabledEmails::load(store).unwrap();
        assert!(again.is_disabled("u1"));
        d.record("u1", st(false, 11)).await.unwrap();
        assert!(!d.is_disabled("u1"));
    }
}
