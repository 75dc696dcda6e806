//! How long a session lives: the absolute cap (`session.lifetime`), the
//! sliding idle timeout (`session.idle_timeout`), and when it is due for a
//! check with Apple (`session.revalidate`).
//!
//! All of it is arithmetic on the times the cookie carries
//! ([`Proof::Session`]), so the per-request decision reads no store, takes
//! no lock and allocates nothing. Sliding works by re-issuing the cookie
//! with a new `seen_at`, at most once per tenth of the idle timeout: most
//! requests send no `Set-Cookie`, and the idle timeout holds to within a
//! tenth (a session ends between 0.9 and 1 idle timeout after its last use).

use super::SessionError;
use crate::config;
use crate::identity::{Identity, Proof};

/// The lifetime rules, from `[session]`; all in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    absolute: u64,
    idle: u64,
    /// How long after `seen_at` the cookie is re-issued.
    slide_every: u64,
    /// `(interval, grace)` of re-validation with Apple, when on.
    revalidate: Option<(u64, u64)>,
}

/// What a live session needs on this request, beside letting it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Re-issue the cookie, so the idle timeout counts from now.
    pub reissue: bool,
    /// Ask Apple whether the user's authorization still stands.
    pub check: bool,
}

impl Lifetime {
    /// From `[session]`.
    pub fn new(cfg: &config::Session) -> Self {
        let idle = cfg.idle_timeout.as_secs();
        Lifetime {
            absolute: cfg.lifetime.as_secs(),
            idle,
            // Config validation keeps idle_timeout at 5 minutes or more,
            // so this is 30 seconds or more.
            slide_every: idle / 10,
            revalidate: cfg
                .revalidate
                .map(|r| (r.every.as_secs(), r.grace.as_secs())),
        }
    }

    /// The absolute lifetime.
    pub fn absolute(&self) -> u64 {
        self.absolute
    }

    /// A fresh session proof issued at `now` under session id `id`: Apple
    /// has just vouched for the user, and it is in use.
    pub fn proof(&self, id: String, now: u64) -> Proof {
        Proof::Session {
            id,
            issued_at: now,
            expires_at: now + self.absolute,
            seen_at: now,
            checked_at: now,
        }
    }

    /// When `identity`'s proof stops holding unless the session is used
    /// again: the absolute end, or sooner the idle timeout.
    pub fn ends_at(&self, identity: &Identity) -> u64 {
        match identity.proof {
            Proof::Session {
                expires_at,
                seen_at,
                ..
            } => expires_at.min(seen_at.saturating_add(self.idle)),
            Proof::Bearer { expires_at, .. } => expires_at,
        }
    }

    /// Whether the session proven by `identity` still holds at `now`, and
    /// what it is due. Re-issuing is skipped once it would not move the
    /// end (the absolute cap is nearer than the idle timeout).
    pub fn check(&self, identity: &Identity, now: u64) -> Result<Due, SessionError> {
        let Proof::Session {
            expires_at,
            seen_at,
            checked_at,
            ..
        } = identity.proof
        else {
            return Ok(Due::default());
        };
        if now >= expires_at {
            return Err(SessionError::Expired);
        }
        if now >= seen_at.saturating_add(self.idle) {
            return Err(SessionError::Idle);
        }
        Ok(Due {
            reissue: now >= seen_at.saturating_add(self.slide_every)
                && seen_at.saturating_add(self.idle) < expires_at,
            check: self
                .revalidate
                .is_some_and(|(every, _)| now >= checked_at.saturating_add(every)),
        })
    }

    /// Whether a session last confirmed at `checked_at` may go on at `now`
    /// while Apple cannot answer: until its check is `grace` overdue.
    pub fn within_grace(&self, checked_at: u64, now: u64) -> bool {
        self.revalidate
            .is_some_and(|(every, grace)| now < checked_at.saturating_add(every + grace))
    }

    /// The re-validation interval, when on.
    pub fn revalidate_every(&self) -> Option<u64> {
        self.revalidate.map(|(every, _)| every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetime(revalidate: bool) -> Lifetime {
        Lifetime {
            absolute: 7 * 86_400,
            idle: 86_400,
            slide_every: 8_640,
            revalidate: revalidate.then_some((86_400, 3_600)),
        }
    }

    fn at(seen_at: u64, checked_at: u64) -> Identity {
        Identity {
            sub: "u".into(),
            email: None,
            email_verified: false,
            is_private_email: false,
            name: None,
            proof: Proof::Session {
                id: "s".into(),
                issued_at: 0,
                expires_at: 7 * 86_400,
                seen_at,
                checked_at,
            },
        }
    }

    const NOTHING: Due = Due {
        reissue: false,
        check: false,
    };

    /// Idle past the timeout ends the session; use within a tenth of it
    /// re-issues nothing; later use re-issues; the absolute cap holds.
    #[test]
    fn idle_timeout_slides_and_the_cap_holds() {
        let l = lifetime(false);
        assert_eq!(l.check(&at(0, 0), 100), Ok(NOTHING));
        let reissue = Due {
            reissue: true,
            check: false,
        };
        assert_eq!(l.check(&at(0, 0), 8_640), Ok(reissue));
        assert_eq!(l.check(&at(0, 0), 86_400), Err(SessionError::Idle));
        assert_eq!(l.ends_at(&at(1000, 0)), 87_400);
        // Seen a day before the cap: the cap is the end, nothing to slide.
        let late = 6 * 86_400;
        assert_eq!(l.ends_at(&at(late, 0)), 7 * 86_400);
        assert_eq!(l.check(&at(late, 0), late + 10_000), Ok(NOTHING));
        assert_eq!(
            l.check(&at(late, 0), 7 * 86_400),
            Err(SessionError::Expired)
        );
    }

    /// Due for a check once the interval has passed since the last one;
    /// Apple's silence is tolerated for the grace only.
    #[test]
    fn revalidation_falls_due_and_grace_ends() {
        let l = lifetime(true);
        assert_eq!(l.check(&at(80_000, 0), 86_399).map(|d| d.check), Ok(false));
        assert_eq!(l.check(&at(80_000, 0), 86_400).map(|d| d.check), Ok(true));
        assert!(l.within_grace(0, 86_400 + 3_599));
        assert!(!l.within_grace(0, 86_400 + 3_600));
        assert!(!lifetime(false).within_grace(0, 0));
        assert_eq!(lifetime(false).revalidate_every(), None);
    }
}
