//! The display name Apple sends once, remembered per user.
//!
//! Apple posts the user's name in the callback's `user` field on the
//! first consent only; every later sign-in comes without it. So the
//! gateway remembers it per `sub` in the state store and gives it to each
//! later session. It is personal data: sealed with the session keys under
//! the `sub` (so one user's row cannot stand in for another's), never
//! logged, and forgotten when the user's authorization ends (Apple's
//! `consent-revoked` and `account-delete`, a revoke at Apple). The field is
//! unsigned: it is a display name, never part of who the user is.

use std::sync::Arc;

use super::Sealer;
use crate::state::{blocking, Store, StoreError};

/// Users' display names, sealed in the state store.
pub struct Names {
    store: Arc<dyn Store>,
    sealer: Sealer,
}

impl Names {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        Names { store, sealer }
    }

    /// Remembers `name` for `sub`, replacing what was remembered; returns
    /// once the store has it.
    pub async fn remember(&self, sub: &str, name: &str) -> Result<(), StoreError> {
        let sealed = self.sealer.seal(&label(sub), &name).into_bytes();
        let (store, sub) = (self.store.clone(), sub.to_string());
        blocking(move || store.remember_name(&sub, &sealed)).await?;
        Ok(())
    }

    /// The name remembered for `sub`; `None` when there is none, or when it
    /// no longer opens (sealed under a key since retired).
    pub async fn get(&self, sub: &str) -> Result<Option<String>, StoreError> {
        let (store, key) = (self.store.clone(), sub.to_string());
        let Some(sealed) = blocking(move || store.name(&key)).await? else {
            return Ok(None);
        };
        Ok(self.sealer.open_bytes(&label(sub), &sealed))
    }

    /// Forgets `sub`'s name; returns once the store has.
    pub async fn forget(&self, sub: &str) -> Result<(), StoreError> {
        let (store, sub) = (self.store.clone(), sub.to_string());
        blocking(move || store.forget_name(&sub)).await?;
        Ok(())
    }
}

/// What a name is sealed under: its `sub`, so a row copied to another
/// user does not open there.
fn label(sub: &str) -> String {
    format!("name.{sub}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Memory;

    use crate::session::cookie::test_keys::{sealer, A, B};

    /// Kept sealed (the store never sees the name), opened only for the
    /// user it was kept for and with a key that sealed it; a new name
    /// replaces the old; forgotten, it is gone.
    #[tokio::test]
    async fn names_are_sealed_per_user() {
        let store: Arc<dyn Store> = Arc::new(Memory::default());
        let names = Names::new(store.clone(), sealer(A));
        names.remember("u1", "Jane Appleseed").await.unwrap();
        let row = store.name("u1").unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&row).contains("Jane"));
        assert_eq!(
            names.get("u1").await.unwrap().as_deref(),
            Some("Jane Appleseed")
        );
        store.remember_name("u2", &row).unwrap();
        assert_eq!(names.get("u2").await.unwrap(), None, "moved to another sub");
        let other = Names::new(store.clone(), sealer(B));
        assert_eq!(other.get("u1").await.unwrap(), None, "another key");
        names.remember("u1", "Janet Doe").await.unwrap();
        assert_eq!(names.get("u1").await.unwrap().as_deref(), Some("Janet Doe"));
        names.forget("u1").await.unwrap();
        assert_eq!(names.get("u1").await.unwrap(), None);
    }
}
