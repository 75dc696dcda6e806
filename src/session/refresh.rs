//! The refresh token each session was signed in with, kept server-side.
//!
//! Apple's refresh token is what lets the gateway ask Apple later whether
//! a user's authorization still stands (re-validation) and end it there
//! (revoke at Apple, when a user deletes their account). It is a
//! credential: it stays in the state store, sealed with the session keys
//! under the session id (so one row cannot stand in for another), and is
//! never sent to the browser or upstream, nor logged. One row per session,
//! swept when the session would have expired.

use std::sync::Arc;

use super::Sealer;
use crate::secret::Secret;
use crate::state::{blocking, Refresh, Store, StoreError};

/// A session's refresh token, opened.
pub struct Kept {
    pub sub: String,
    pub token: Secret<String>,
    /// When Apple last confirmed the token (seconds): at sign-in, then at
    /// each successful re-validation.
    pub checked_at: u64,
    /// When the session would expire; the row is swept then.
    pub until: u64,
}

/// The refresh tokens of sessions, sealed in the state store.
pub struct RefreshTokens {
    store: Arc<dyn Store>,
    sealer: Sealer,
}

impl RefreshTokens {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer) -> Self {
        RefreshTokens { store, sealer }
    }

    /// Keeps `kept` for session `id`; returns once the store has it.
    pub async fn keep(&self, id: &str, kept: &Kept) -> Result<(), StoreError> {
        let row = Refresh {
            sub: kept.sub.clone(),
            sealed: self
                .sealer
                .seal(&label(id), kept.token.expose())
                .into_bytes(),
            checked_at: kept.checked_at,
            until: kept.until,
        };
        let (store, id) = (self.store.clone(), id.to_string());
        blocking(move || store.keep_refresh(&id, &row)).await?;
        Ok(())
    }

    /// What is kept for session `id`; `None` when nothing is, or when it
    /// no longer opens (sealed under a key since retired).
    pub async fn get(&self, id: &str) -> Result<Option<Kept>, StoreError> {
        let (store, key) = (self.store.clone(), id.to_string());
        let Some(row) = blocking(move || store.refresh(&key)).await? else {
            return Ok(None);
        };
        let token = self.sealer.open_bytes::<String>(&label(id), &row.sealed);
        Ok(token.map(|t| Kept {
            sub: row.sub,
            token: Secret::new(t),
            checked_at: row.checked_at,
            until: row.until,
        }))
    }

    /// Forgets session `id`'s token; returns once the store has.
    pub async fn forget(&self, id: &str) -> Result<(), StoreError> {
        let (store, id) = (self.store.clone(), id.to_string());
        blocking(move || store.forget_refresh(&id)).await?;
        Ok(())
    }
}

/// What a session's token is sealed under: its session id, so a sealed
/// token copied to another session's row does not open.
fn label(id: &str) -> String {
    format!("refresh.{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Memory;

    use crate::session::cookie::test_keys::{sealer, A, B};

    /// Kept sealed (the store never sees the token), opened only under the
    /// session it was kept for and with a key that sealed it.
    #[tokio::test]
    async fn tokens_are_sealed_per_session() {
        let store: Arc<dyn Store> = Arc::new(Memory::default());
        let tokens = RefreshTokens::new(store.clone(), sealer(A));
        let kept = Kept {
            sub: "u1".into(),
            token: Secret::new("r-secret-token".into()),
            checked_at: 10,
            until: 99,
        };
        tokens.keep("s1", &kept).await.unwrap();
        let row = store.refresh("s1").unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&row.sealed).contains("r-secret-token"));
        let got = tokens.get("s1").await.unwrap().unwrap();
        assert_eq!(
            (
                got.sub.as_str(),
                got.token.expose().as_str(),
                got.checked_at,
                got.until
            ),
            ("u1", "r-secret-token", 10, 99)
        );
        // The row moved to another session does not open there.
        store.keep_refresh("s2", &row).unwrap();
        assert!(tokens.get("s2").await.unwrap().is_none());
        // Nor under keys that did not seal it.
        let other = RefreshTokens::new(store.clone(), sealer(B));
        assert!(other.get("s1").await.unwrap().is_none());
        tokens.forget("s1").await.unwrap();
        assert!(tokens.get("s1").await.unwrap().is_none());
    }
}
