//! The one test suite every [`Store`] backend passes (memory and embedded
//! here; a Redis store later runs the same calls). Public so a backend
//! tested from `tests/` can run it too.
//!
//! [`check`] takes a constructor of fresh, empty stores; [`check_durable`]
//! one that opens the same place each time, for backends that keep.

use super::{EmailStatus, KeptKey, Refresh, Store, SubRevocation, KEPT_WHILE_SIGNING};

const NOW: u64 = 1_000;

/// Runs every check, each on a fresh store from `fresh`; panics with the
/// name of the first that fails.
pub fn check(fresh: &dyn Fn() -> Box<dyn Store>) {
    sessions(&*fresh());
    subs(&*fresh());
    notifications(&*fresh());
    names(&*fresh());
    emails(&*fresh());
    refresh(&*fresh());
    signing_keys(&*fresh());
    sweep(&*fresh());
}

/// What one store wrote, a second opened at the same place reads: `open`
/// must return the store at one place, the first time empty.
pub fn check_durable(open: &dyn Fn() -> Box<dyn Store>) {
    {
        let s = open();
        s.revoke_session("s1", NOW + 10).unwrap();
        s.revoke_sub("u1", sub(NOW, NOW + 50)).unwrap();
        s.first_notification("n1", NOW + 10).unwrap();
        s.remember_name("u1", b"sealed").unwrap();
        s.record_email_status("u1", email(true, 5)).unwrap();
        s.keep_refresh("s1", &kept("u1", b"r", NOW, NOW + 10))
            .unwrap();
        s.keep_signing_key("k1", &key(b"sealed", KEPT_WHILE_SIGNING))
            .unwrap();
    }
    let s = open();
    let r = s.revoked(NOW).unwrap();
    assert_eq!(r.sessions.get("s1"), Some(&(NOW + 10)), "durable: sessions");
    assert_eq!(r.subs.get("u1"), Some(&sub(NOW, NOW + 50)), "durable: subs");
    assert!(
        !s.first_notification("n1", NOW + 10).unwrap(),
        "durable: notifications"
    );
    assert_eq!(
        s.name("u1").unwrap().as_deref(),
        Some(&b"sealed"[..]),
        "durable: names"
    );
    assert_eq!(
        s.email_statuses().unwrap().get("u1"),
        Some(&email(true, 5)),
        "durable: email statuses"
    );
    assert_eq!(
        s.refresh("s1").unwrap(),
        Some(kept("u1", b"r", NOW, NOW + 10)),
        "durable: refresh tokens"
    );
    assert_eq!(
        s.signing_keys().unwrap(),
        vec![("k1".to_string(), key(b"sealed", KEPT_WHILE_SIGNING))],
        "durable: signing keys"
    );
}

fn key(sealed: &[u8], until: u64) -> KeptKey {
    KeptKey {
        sealed: sealed.to_vec(),
        created_at: NOW,
        until,
    }
}

/// Signing keys are kept by `kid`; a replaced one is kept with its new
/// `until` (the same row again writes nothing).
fn signing_keys(s: &dyn Store) {
    assert!(s.signing_keys().unwrap().is_empty(), "keys: fresh store");
    let signing = key(b"k1", KEPT_WHILE_SIGNING);
    assert!(s.keep_signing_key("k1", &signing).unwrap());
    assert!(
        !s.keep_signing_key("k1", &signing).unwrap(),
        "keys: the same again"
    );
    let retired = key(b"k1", NOW + 300);
    assert!(s.keep_signing_key("k1", &retired).unwrap(), "keys: retired");
    assert!(s
        .keep_signing_key("k2", &key(b"k2", KEPT_WHILE_SIGNING))
        .unwrap());
    let mut all = s.signing_keys().unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        all,
        vec![
            ("k1".to_string(), retired),
            ("k2".to_string(), key(b"k2", KEPT_WHILE_SIGNING))
        ]
    );
}

fn kept(sub: &str, sealed: &[u8], checked_at: u64, until: u64) -> Refresh {
    Refresh {
        sub: sub.into(),
        sealed: sealed.to_vec(),
        checked_at,
        until,
    }
}

/// A session's refresh token is kept, replaced and forgotten by session id.
fn refresh(s: &dyn Store) {
    assert_eq!(s.refresh("s1").unwrap(), None, "refresh: fresh store");
    let first = kept("u1", b"token", NOW, NOW + 10);
    assert!(s.keep_refresh("s1", &first).unwrap());
    assert!(
        !s.keep_refresh("s1", &first).unwrap(),
        "refresh: the same again"
    );
    let checked = kept("u1", b"token", NOW + 5, NOW + 10);
    assert!(
        s.keep_refresh("s1", &checked).unwrap(),
        "refresh: checked later"
    );
    assert!(s
        .keep_refresh("s2", &kept("u2", b"other", NOW, NOW + 10))
        .unwrap());
    assert_eq!(s.refresh("s1").unwrap(), Some(checked));
    assert!(s.forget_refresh("s1").unwrap());
    assert!(!s.forget_refresh("s1").unwrap(), "refresh: forgotten once");
    assert_eq!(s.refresh("s1").unwrap(), None);
    assert_eq!(s.refresh("s2").unwrap().map(|r| r.sub), Some("u2".into()));
}

fn email(disabled: bool, at: u64) -> EmailStatus {
    EmailStatus { disabled, at }
}

/// The later event wins, whatever order they arrive in; a repeat or an
/// earlier one changes nothing.
fn emails(s: &dyn Store) {
    assert!(
        s.email_statuses().unwrap().is_empty(),
        "emails: fresh store"
    );
    assert!(s.record_email_status("u1", email(true, 10)).unwrap());
    assert!(
        !s.record_email_status("u1", email(true, 10)).unwrap(),
        "emails: a repeat"
    );
    assert!(
        !s.record_email_status("u1", email(false, 9)).unwrap(),
        "emails: an earlier event"
    );
    assert_eq!(s.email_statuses().unwrap()["u1"], email(true, 10));
    assert!(s.record_email_status("u1", email(false, 11)).unwrap());
    assert!(s.record_email_status("u2", email(true, 1)).unwrap());
    let all = s.email_statuses().unwrap();
    assert_eq!(all.len(), 2, "emails: {all:?}");
    assert_eq!(all["u1"], email(false, 11), "emails: the later wins");
}

fn sub(at: u64, until: u64) -> SubRevocation {
    SubRevocation { at, until }
}

/// A session revoked is in force until it expires; a repeat changes nothing.
fn sessions(s: &dyn Store) {
    assert!(
        s.revoked(NOW).unwrap().sessions.is_empty(),
        "sessions: fresh store"
    );
    assert!(
        s.revoke_session("s1", NOW + 10).unwrap(),
        "sessions: first revocation"
    );
    assert!(
        !s.revoke_session("s1", NOW + 10).unwrap(),
        "sessions: a repeat changes nothing"
    );
    assert!(
        !s.revoke_session("s1", NOW + 99).unwrap(),
        "sessions: the first entry stands"
    );
    assert!(s.revoke_session("s2", NOW + 20).unwrap());
    let r = s.revoked(NOW).unwrap();
    assert_eq!(r.sessions.len(), 2, "sessions: {r:?}");
    assert_eq!(
        r.sessions["s1"],
        NOW + 10,
        "sessions: the first entry stands"
    );
    let later = s.revoked(NOW + 10).unwrap();
    assert_eq!(
        later.sessions.keys().collect::<Vec<_>>(),
        ["s2"],
        "sessions: what expired is not in force"
    );
}

/// A revocation of a `sub` only moves forward, and is kept as long as needed.
fn subs(s: &dyn Store) {
    assert!(s.revoke_sub("u1", sub(NOW, NOW + 50)).unwrap());
    assert!(
        !s.revoke_sub("u1", sub(NOW, NOW + 90)).unwrap(),
        "subs: same time"
    );
    assert!(
        !s.revoke_sub("u1", sub(NOW - 1, NOW + 90)).unwrap(),
        "subs: earlier"
    );
    assert_eq!(s.revoked(NOW).unwrap().subs["u1"], sub(NOW, NOW + 50));
    assert!(
        s.revoke_sub("u1", sub(NOW + 5, NOW + 20)).unwrap(),
        "subs: later"
    );
    assert_eq!(
        s.revoked(NOW).unwrap().subs["u1"],
        sub(NOW + 5, NOW + 50),
        "subs: kept as long as the longer needs"
    );
    assert!(s.revoke_sub("u2", sub(NOW, NOW + 1)).unwrap());
    let r = s.revoked(NOW + 1).unwrap();
    assert_eq!(r.subs.keys().collect::<Vec<_>>(), ["u1"], "subs: {r:?}");
}

/// A notification id is new once.
fn notifications(s: &dyn Store) {
    assert!(
        !s.notification_seen("n1").unwrap(),
        "notifications: fresh store"
    );
    assert!(s.first_notification("n1", NOW + 10).unwrap());
    assert!(
        s.notification_seen("n1").unwrap(),
        "notifications: seen once recorded"
    );
    assert!(!s.notification_seen("n2").unwrap());
    assert!(
        !s.first_notification("n1", NOW + 10).unwrap(),
        "notifications: a retry"
    );
    assert!(s.first_notification("n2", NOW + 10).unwrap());
}

/// A name is kept until forgotten, per `sub`.
fn names(s: &dyn Store) {
    assert_eq!(s.name("u1").unwrap(), None);
    assert!(s.remember_name("u1", b"one").unwrap());
    assert!(
        !s.remember_name("u1", b"one").unwrap(),
        "names: the same again"
    );
    assert!(s.remember_name("u1", b"two").unwrap(), "names: replaced");
    assert!(s.remember_name("u2", b"other").unwrap());
    assert_eq!(s.name("u1").unwrap().as_deref(), Some(&b"two"[..]));
    assert!(s.forget_name("u1").unwrap());
    assert!(!s.forget_name("u1").unwrap(), "names: forgotten once");
    assert_eq!(s.name("u1").unwrap(), None);
    assert_eq!(s.name("u2").unwrap().as_deref(), Some(&b"other"[..]));
}

/// A sweep drops what expired, and only that; names and email statuses
/// do not expire.
fn sweep(s: &dyn Store) {
    s.revoke_session("old", NOW).unwrap();
    s.revoke_session("live", NOW + 1).unwrap();
    s.revoke_sub("u-old", sub(NOW - 9, NOW)).unwrap();
    s.revoke_sub("u-live", sub(NOW - 9, NOW + 1)).unwrap();
    s.first_notification("n-old", NOW).unwrap();
    s.first_notification("n-live", NOW + 1).unwrap();
    s.remember_name("u-old", b"kept").unwrap();
    s.record_email_status("u-old", email(true, 1)).unwrap();
    s.keep_refresh("old", &kept("u-old", b"r", NOW - 9, NOW))
        .unwrap();
    s.keep_refresh("live", &kept("u-live", b"r", NOW - 9, NOW + 1))
        .unwrap();
    s.keep_signing_key("k-old", &key(b"o", NOW)).unwrap();
    s.keep_signing_key("k-live", &key(b"l", KEPT_WHILE_SIGNING))
        .unwrap();
    assert_eq!(s.sweep(NOW).unwrap(), 5, "sweep: five expired");
    assert_eq!(s.sweep(NOW).unwrap(), 0, "sweep: nothing more");
    let r = s.revoked(0).unwrap();
    assert_eq!(
        r.sessions.keys().collect::<Vec<_>>(),
        ["live"],
        "sweep: {r:?}"
    );
    assert_eq!(
        r.subs.keys().collect::<Vec<_>>(),
        ["u-live"],
        "sweep: {r:?}"
    );
    assert!(
        s.first_notification("n-old", NOW + 1).unwrap(),
        "sweep: forgotten"
    );
    assert!(!s.first_notification("n-live", NOW + 1).unwrap());
    assert_eq!(s.name("u-old").unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(s.email_statuses().unwrap().len(), 1, "sweep: statuses kept");
    assert_eq!(s.refresh("old").unwrap(), None, "sweep: refresh dropped");
    assert!(s.refresh("live").unwrap().is_some(), "sweep: refresh kept");
    let keys: Vec<String> = s.signing_keys().unwrap().into_iter().map(|k| k.0).collect();
    assert_eq!(keys, ["k-live"], "sweep: the signing key kept");
}
