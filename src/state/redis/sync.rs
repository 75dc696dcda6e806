//! Keeping this replica current with Redis: the subscription to the change
//! channel, the snapshot read on every (re)connect, the revocations queued
//! while Redis was away written once it is back, and a ping each second so
//! a Redis that went silent is noticed.
//!
//! Order on (re)connect: subscribe first, then write what was queued, then
//! read the snapshot. A change made elsewhere in between arrives twice
//! (message and snapshot), never not at all; merging it twice is a no-op.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSub;
use redis::AsyncCommands;

use super::connect::Conn;
use super::scripts::ttl_args;
use super::{on, redis_error, scripts, Queued, Redis, Shared};
use crate::state::{Change, EmailStatus, Revoked, StoreError, SubRevocation};

/// How often a subscribed replica pings Redis (and writes what is queued).
const TICK: Duration = Duration::from_secs(1);

/// The longest pause between tries to reconnect: a sign-out answered
/// during an outage reaches the others about this soon after Redis is back.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Runs on the store's thread until the store is dropped.
pub(super) async fn keep_in_sync(s: Arc<Shared>, first: PubSub) {
    let mut backoff = Duration::from_millis(50);
    let mut first = Some(first);
    loop {
        let why = match subscribed(&s, first.take()).await {
            Ok(()) => "the subscription ended".to_string(),
            Err(e) => e.to_string(),
        };
        if s.in_sync.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %why, "state store: Redis is out of reach; serving from the last known view");
            backoff = Duration::from_millis(50);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription's life, on `pubsub` (what the store's open connected)
/// or on a new connection: returns when it breaks.
async fn subscribed(s: &Shared, pubsub: Option<PubSub>) -> Result<(), StoreError> {
    let redis_err = redis_error;
    let bounded = |what: &'static str| {
        move |_: tokio::time::error::Elapsed| {
            StoreError::Redis(format!("{what}: no answer in time"))
        }
    };
    let mut pubsub = match pubsub {
        Some(p) => p,
        None => {
            let (conn, pubsub) = tokio::time::timeout(s.timeout, s.target.connect(s.timeout))
                .await
                .map_err(bounded("connect"))?
                .map_err(redis_err)?;
            *s.conn.write().unwrap_or_else(|p| p.into_inner()) = conn;
            pubsub
        }
    };
    tokio::time::timeout(s.timeout, pubsub.subscribe(&s.keys.channel))
        .await
        .map_err(bounded("subscribe"))?
        .map_err(redis_err)?;
    flush(s).await?;
    let (revoked, emails) = tokio::time::timeout(s.timeout, async {
        Ok::<_, StoreError>((
            read_revoked(s, s.conn(), 0).await?,
            read_emails(s.conn(), &s.keys.emails).await?,
        ))
    })
    .await
    .map_err(bounded("snapshot"))??;
    s.emit(&Change::Snapshot { revoked, emails });
    if !s.in_sync.swap(true, Ordering::AcqRel) {
        tracing::info!("state store: subscribed to Redis, views in sync");
    }
    let mut messages = std::pin::pin!(pubsub.into_on_message());
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            m = messages.next() => {
                let m = m.ok_or_else(|| StoreError::Redis("the subscription was closed".into()))?;
                let payload: String = m.get_payload().unwrap_or_default();
                match scripts::parse(&payload) {
                    Some(change) => s.emit(&change),
                    None => tracing::warn!("state store: an unreadable change message ignored"),
                }
            }
            _ = tick.tick() => {
                let mut c = s.conn();
                let master = tokio::time::timeout(s.timeout, s.target.still_master(&mut c))
                    .await
                    .map_err(bounded("ping"))?
                    .map_err(redis_err)?;
                if !master {
                    return Err(StoreError::Redis("the server is no longer the master".into()));
                }
                flush(s).await?;
            }
        }
    }
}

/// Writes what was queued while Redis was away, oldest first. A
/// revocation Redis answers with an error (it refuses it: a key of the
/// wrong type, say, or a read-only replica) goes to the back of the queue
/// and the next is tried: one that cannot be written holds back none of
/// the others, and stays queued (never dropped), logged, for the next
/// round. A lost connection or no answer ends the round; the rest stays
/// queued.
async fn flush(s: &Shared) -> Result<(), StoreError> {
    let round = s.outbox.lock().unwrap_or_else(|p| p.into_inner()).len();
    let mut refused = 0;
    for _ in 0..round {
        let Some(q) = s
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front()
            .cloned()
        else {
            break;
        };
        let written = tokio::time::timeout(s.timeout, write_on(s, s.conn(), &q))
            .await
            .map_err(|_| StoreError::Redis("a queued revocation: no answer in time".into()))?;
        let mut outbox = s.outbox.lock().unwrap_or_else(|p| p.into_inner());
        match written {
            Ok(_) => {
                outbox.pop_front();
            }
            Err(e) if refused_by_redis(&e) => {
                refused += 1;
                if refused == 1 {
                    tracing::error!(error = %e, "Redis refuses a queued revocation: it stays queued and is tried again each round; the others are written");
                }
                if let Some(q) = outbox.pop_front() {
                    outbox.push_back(q);
                }
            }
            Err(e) => return Err(redis_error(e)),
        }
    }
    if refused == 0
        && round > 0
        && s.outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    {
        tracing::info!("state store: every revocation queued while Redis was away is written");
    }
    Ok(())
}

/// Whether Redis answered `e` (an error reply: it refused the command),
/// rather than the connection failing.
fn refused_by_redis(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// Writes `q` (merged and published by its script); whether it changed
/// anything.
pub(super) fn write(store: &Redis, q: &Queued) -> Result<bool, StoreError> {
    let s = store.shared.clone();
    let q = q.clone();
    on(&store.shared.handle, store.shared.timeout, async move {
        write_on(&s, s.conn(), &q).await.map_err(redis_error)
    })
}

async fn write_on(s: &Shared, mut c: Conn, q: &Queued) -> redis::RedisResult<bool> {
    let k = &s.keys;
    let mut cmd = redis::cmd("EVAL");
    match q {
        Queued::Session(id, exp) => cmd
            .arg(scripts::REVOKE_SESSION)
            .arg(2)
            .arg(&k.sessions)
            .arg(&k.channel)
            .arg(id)
            .arg(exp)
            .arg(&ttl_args()),
        Queued::Sub(sub, SubRevocation { at, until }) => cmd
            .arg(scripts::REVOKE_SUB)
            .arg(2)
            .arg(&k.subs)
            .arg(&k.channel)
            .arg(sub)
            .arg(at)
            .arg(until)
            .arg(&ttl_args()),
    };
    cmd.query_async::<u32>(&mut c).await.map(|n| n == 1)
}

/// The revocations in force at `now`.
pub(super) fn revoked(store: &Redis, now: u64) -> Result<Revoked, StoreError> {
    let s = store.shared.clone();
    on(&store.shared.handle, store.shared.timeout, async move {
        read_revoked(&s, s.conn(), now).await
    })
}

async fn read_revoked(s: &Shared, mut c: Conn, now: u64) -> Result<Revoked, StoreError> {
    let err = redis_error;
    let sessions: Vec<(String, f64)> = c
        .zrangebyscore_withscores(&s.keys.sessions, format!("({now}"), "+inf")
        .await
        .map_err(err)?;
    let subs: std::collections::HashMap<String, String> =
        c.hgetall(&s.keys.subs).await.map_err(err)?;
    let mut revoked = Revoked::default();
    for (id, exp) in sessions {
        // Scores are exact: expiries are far below 2^53.
        revoked.sessions.insert(id, exp as u64);
    }
    for (sub, value) in subs {
        let (until, at) = value
            .split_once(' ')
            .and_then(|(u, a)| Some((u.parse().ok()?, a.parse().ok()?)))
            .ok_or_else(|| StoreError::Redis("a damaged revoked-user row".into()))?;
        if until > now {
            revoked.subs.insert(sub, SubRevocation { at, until });
        }
    }
    Ok(revoked)
}

/// Every relay email status.
pub(super) fn email_statuses(
    store: &Redis,
) -> Result<std::collections::HashMap<String, EmailStatus>, StoreError> {
    let (conn, key) = (store.shared.conn(), store.shared.keys.emails.clone());
    on(&store.shared.handle, store.shared.timeout, async move {
        read_emails(conn, &key).await
    })
}

async fn read_emails(
    mut c: Conn,
    key: &str,
) -> Result<std::collections::HashMap<String, EmailStatus>, StoreError> {
    let all: std::collections::HashMap<String, String> =
        c.hgetall(key).await.map_err(redis_error)?;
    all.into_iter()
        .map(|(sub, value)| {
            let (at, disabled) = value
                .split_once(' ')
                .and_then(|(a, d)| Some((a.parse().ok()?, d == "1")))
                .ok_or_else(|| StoreError::Redis("a damaged email status row".into()))?;
            Ok((sub, EmailStatus { disabled, at }))
        })
        .collect()
}
