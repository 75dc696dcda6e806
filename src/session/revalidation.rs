//! Re-validation bookkeeping: at most one check with Apple in flight per
//! session, and its verdict remembered for a minute.
//!
//! Only requests already due for a check come here (the decision is
//! [`super::Lifetime::check`], made from the cookie alone), so the lock
//! below is never on the per-request path of a session that is not due.
//! What asks Apple is handed in by the caller: this module knows nothing
//! of Apple.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// How long a verdict stands for later requests of the session (seconds):
/// requests still carrying the cookie from before a successful check reuse
/// it, and after Apple could not be reached this is the pause before the
/// next try (Apple throttles, and a failing Apple must not be hammered by
/// every request of every due session).
pub const REMEMBER: u64 = 60;

/// Entries at which expired ones are swept. The map holds the sessions
/// that fell due within the last [`REMEMBER`] seconds, so it stays small
/// for any realistic number of active sessions; sweeping only past this
/// keeps the common insert cheap.
const SWEEP_AT: usize = 1024;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user's authorization stands, as confirmed at this time.
    Confirmed(u64),
    /// It does not (revoked at Apple, or nothing left to ask with): the
    /// session has been ended.
    Ended,
    /// No answer (Apple unreachable, or failing): try again later, within
    /// the grace.
    Unsure,
}

/// One session's check: the cell its requests wait on.
struct Flight {
    verdict: Arc<OnceCell<Verdict>>,
    started: u64,
}

/// The checks of sessions, by session id.
#[derive(Default)]
pub struct Checks {
    // A plain mutex: held only to find or insert an entry, never across
    // an await.
    flights: Mutex<HashMap<String, Flight>>,
}

impl Checks {
    /// The verdict on session `id` at `now`: the one of a check in flight
    /// or finished within [`REMEMBER`] seconds, else `check`'s, run once
    /// however many requests of the session ask at the same time (they all
    /// wait for it: none should pass while the answer may be "revoked").
    /// If the request running `check` goes away, a waiting one takes over.
    pub async fn verdict<F, Fut>(&self, id: &str, now: u64, check: F) -> Verdict
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Verdict>,
    {
        let cell = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(id) {
                Some(f) if now < f.started.saturating_add(REMEMBER) => f.verdict.clone(),
                _ => {
                    if flights.len() >= SWEEP_AT {
                        flights.retain(|_, f| now < f.started.saturating_add(REMEMBER));
                    }
                    let cell = Arc::new(OnceCell::new());
                    flights.insert(
                        id.to_string(),
                        Flight {
                            verdict: cell.clone(),
                            started: now,
                        },
                    );
                    cell
                }
            }
        };
        *cell.get_or_init(check).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Concurrent asks of one session run one check; its verdict stands
    /// for a minute, then a new check runs; other sessions are apart.
    #[tokio::test]
    async fn one_check_per_session_at_a_time() {
        let checks = Arc::new(Checks::default());
        let runs = Arc::new(AtomicU32::new(0));
        let ask = |id: &'static str, now: u64| {
            let (checks, runs) = (checks.clone(), runs.clone());
            tokio::spawn(async move {
                checks
                    .verdict(id, now, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Verdict::Unsure
                    })
                    .await
            })
        };
        let all: Vec<_> = (0..10).map(|_| ask("s1", 100)).collect();
        for t in all {
            assert_eq!(t.await.unwrap(), Verdict::Unsure);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        ask("s1", 100 + REMEMBER - 1).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "remembered");
        ask("s1", 100 + REMEMBER).await.unwrap();
        ask("s2", 100).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
