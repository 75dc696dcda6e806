//! The Redis store: the state shared by several replicas of the gateway
//! (`[state] backend = "redis"`), through the maintained `redis` client.
//!
//! The seam stays synchronous (see [`crate::state`]): the store owns a
//! small runtime on its own thread, where the connection (a
//! `ConnectionManager`, which reconnects by itself, or a Cluster's) and the subscription
//! to the change channel live; a call hands its command to that thread
//! and waits for the answer, bounded by `state.redis_timeout`. Callers run
//! calls on tokio's blocking pool as they do for the embedded store.
//!
//! Every change is a Lua script that merges and publishes in one step
//! ([`scripts`]); [`sync`] keeps this replica's views current from the
//! channel and reloads a snapshot on every (re)connect. While Redis is
//! away, revocations are queued here (bounded: [`OUTBOX_MAX`]; past it a
//! sign-out fails instead of being dropped) and written once it is back.
//!
//! Expiry is by the gateway's clock, like the other backends: revoked
//! sessions and notification ids are sorted sets scored by their expiry,
//! other expiring rows begin with theirs, and `sweep` drops them. So a row
//! lives exactly as long as what it protects, and never shorter. Each key
//! of expiring rows also has a Redis TTL that outlives its longest row
//! ([`scripts::TTL_MARGIN`]), so what no gateway sweeps any more still goes.

mod connect;
mod rows;
mod scripts;
mod sync;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use connect::Conn;
use redis::AsyncCommands;
use rows::{b64, damaged, decode, encode, Row};
use scripts::ttl_args;

use super::{
    Change, EmailStatus, KeptKey, Listener, Refresh, Revoked, Store, StoreError, SubRevocation,
};
use crate::config;

/// Revocations held for Redis while it is away: a sign-out during an
/// outage of hours, at a busy site, fits; past it a sign-out is refused
/// (an error the user sees) rather than dropped.
pub const OUTBOX_MAX: usize = 100_000;

/// A revocation waiting for Redis.
#[derive(Debug, Clone)]
enum Queued {
    Session(String, u64),
    Sub(String, SubRevocation),
}

/// The names this gateway uses in Redis, all under `key_prefix`. The
/// keys of expiring rows (revoked sessions and users, notification ids,
/// refresh tokens) carry a TTL; `names` and `emails` have none (a name is
/// kept until forgotten, a relay status until Apple changes it), nor has
/// `signing_keys` (it always holds the key that signs; a replaced one is
/// swept); each lock expires by itself.
struct Keys {
    sessions: String,
    subs: String,
    notifications: String,
    names: String,
    emails: String,
    refresh: String,
    signing_keys: String,
    locks: String,
    channel: String,
}

impl Keys {
    /// In a Cluster the prefix is a hash tag (`{applegate:}`), unless it
    /// holds one: every key in one slot, as the scripts that touch several
    /// and the snapshot need.
    fn new(prefix: &str, cluster: bool) -> Keys {
        let prefix = match cluster && !prefix.contains('{') {
            true => format!("{{{prefix}}}"),
            false => prefix.to_string(),
        };
        let k = |name: &str| format!("{prefix}{name}");
        Keys {
            sessions: k("revoked:sessions"),
            subs: k("revoked:subs"),
            notifications: k("notifications"),
            names: k("names"),
            emails: k("emails"),
            refresh: k("refresh"),
            signing_keys: k("signing_keys"),
            locks: k("lock:"),
            channel: k("changes"),
        }
    }
}

/// What the store and its background task share.
struct Shared {
    /// The store's own runtime (on its thread), where every command runs.
    handle: tokio::runtime::Handle,
    target: Arc<connect::Target>,
    /// To the server written to now; replaced at every (re)connect (with
    /// Sentinel, it may be another server).
    conn: RwLock<Conn>,
    keys: Keys,
    timeout: Duration,
    /// Subscribed and the snapshot since then merged: the views miss
    /// nothing. Read by every request under `fail_closed`.
    in_sync: AtomicBool,
    listeners: Mutex<Vec<Listener>>,
    outbox: Mutex<VecDeque<Queued>>,
}

impl Shared {
    /// The connection for commands (a clone: they share one socket).
    fn conn(&self) -> Conn {
        self.conn.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Tells every view about `change`.
    fn emit(&self, change: &Change) {
        for l in self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            l(change);
        }
    }
}

/// A store in Redis, shared with the other replicas.
pub struct Redis {
    shared: Arc<Shared>,
    /// Dropped with the store: ends its thread (and the task on it).
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Redis {
    /// Connects to `config.url` and subscribes to the change channel; fails
    /// (the gateway does not start) when Redis cannot be reached now:
    /// there is no last known view to serve from yet.
    pub fn open(config: &config::Redis) -> Result<Redis, StoreError> {
        let at = connect::describe(config);
        let failed =
            |e: &dyn std::fmt::Display| StoreError::Redis(format!("cannot connect to {at}: {e}"));
        let target = connect::Target::new(config).map_err(|e| failed(&e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(&e))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("applegate-redis".into())
            .spawn(move || {
                // Drives every command and the subscription until the
                // store is dropped.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| failed(&e))?;
        let timeout = config.timeout;
        let target = Arc::new(target);
        let connecting = target.clone();
        let (conn, pubsub) = on(&handle, timeout, async move {
            connecting.connect(timeout).await.map_err(redis_error)
        })
        .map_err(|e| match e {
            StoreError::Redis(why) => failed(&why),
            e => failed(&e),
        })?;
        let shared = Arc::new(Shared {
            handle: handle.clone(),
            target,
            conn: RwLock::new(conn),
            keys: Keys::new(&config.key_prefix, config.cluster),
            timeout,
            in_sync: AtomicBool::new(false),
            listeners: Mutex::default(),
            outbox: Mutex::default(),
        });
        handle.spawn(sync::keep_in_sync(shared.clone(), pubsub));
        // The first subscription, so no change is missed from the start.
        let deadline = std::time::Instant::now() + timeout;
        while !shared.in_sync.load(Ordering::Acquire) {
            if std::time::Instant::now() > deadline {
                return Err(failed(&"cannot subscribe to the change channel"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Redis {
            shared,
            _stop: stop,
        })
    }

    /// Runs `command` on a connection, on the store's thread; waits for it.
    fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let s = &self.shared;
        let fut = command(s.conn());
        on(&s.handle, s.timeout, async move {
            fut.await.map_err(redis_error)
        })
    }

    /// Runs `script` with `keys` and `args`.
    fn eval<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &'static str,
        keys: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<T, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
        self.run(move |mut c| async move { cmd.query_async(&mut c).await })
    }

    /// A revocation written, or queued while Redis is away.
    fn revoke(&self, q: Queued) -> Result<bool, StoreError> {
        match sync::write(self, &q) {
            Ok(changed) => Ok(changed),
            Err(e) => {
                let mut outbox = self.shared.outbox.lock().unwrap_or_else(|p| p.into_inner());
                if outbox.len() >= OUTBOX_MAX {
                    tracing::error!(error = %e, "Redis is away and {OUTBOX_MAX} revocations wait for it: this one is refused");
                    return Err(e);
                }
                tracing::warn!(error = %e, queued = outbox.len() + 1, "Redis is away: the revocation holds here and is written once Redis is back");
                outbox.push_back(q);
                Ok(true)
            }
        }
    }

    /// `key`'s hash, every field and value.
    fn hash(&self, key: &str) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.run(move |mut c| async move { c.hgetall(key).await })
    }

    fn hash_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (key, field) = (key.to_string(), field.to_string());
        self.run(move |mut c| async move { c.hget(key, field).await })
    }

    fn hash_del(&self, key: &str, field: &str) -> Result<bool, StoreError> {
        let (key, field) = (key.to_string(), field.to_string());
        self.run(move |mut c| async move { c.hdel::<_, _, u32>(key, field).await.map(|n| n > 0) })
    }

    /// Sets `field` to `value` unless it is so; with `until`, the key's TTL
    /// outlives it.
    fn set_if_changed(
        &self,
        key: &str,
        field: &str,
        value: Vec<u8>,
        until: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut args = vec![field.as_bytes().to_vec(), value];
        if let Some(until) = until {
            args.push(until.to_string().into_bytes());
            args.extend(ttl_args());
        }
        self.eval::<u32>(scripts::SET_IF_CHANGED, &[key], args)
            .map(|n| n == 1)
    }
}

/// Runs `fut` on `handle`'s runtime, bounded by `timeout`; waits here.
fn on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    timeout: Duration,
    fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let r = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Redis(format!(
                "no answer within {}ms (state.redis_timeout)",
                timeout.as_millis()
            ))),
        };
        let _ = tx.send(r);
    });
    rx.recv().map_err(|_| StoreError::Interrupted)?
}

/// The client's error, as the store's (its text names no secret: the
/// client never repeats the URL).
fn redis_error(e: redis::RedisError) -> StoreError {
    StoreError::Redis(e.to_string())
}

impl Store for Redis {
    fn revoked(&self, now: u64) -> Result<Revoked, StoreError> {
        sync::revoked(self, now)
    }

    fn revoke_session(&self, id: &str, expires_at: u64) -> Result<bool, StoreError> {
        self.revoke(Queued::Session(id.to_string(), expires_at))
    }

    fn revoke_sub(&self, sub: &str, r: SubRevocation) -> Result<bool, StoreError> {
        self.revoke(Queued::Sub(sub.to_string(), r))
    }

    fn first_notification(&self, jti: &str, until: u64) -> Result<bool, StoreError> {
        let mut args = vec![jti.as_bytes().to_vec(), until.to_string().into_bytes()];
        args.extend(ttl_args());
        self.eval::<u32>(
            scripts::FIRST_NOTIFICATION,
            &[&self.shared.keys.notifications],
            args,
        )
        .map(|n| n == 1)
    }

    fn notification_seen(&self, jti: &str) -> Result<bool, StoreError> {
        let (key, jti) = (self.shared.keys.notifications.clone(), jti.to_string());
        self.run(move |mut c| async move {
            c.zscore::<_, _, Option<f64>>(key, jti)
                .await
                .map(|s| s.is_some())
        })
    }

    fn record_email_status(&self, sub: &str, status: EmailStatus) -> Result<bool, StoreError> {
        let k = &self.shared.keys;
        self.eval::<u32>(
            scripts::RECORD_EMAIL,
            &[&k.emails, &k.channel],
            vec![
                sub.as_bytes().to_vec(),
                status.at.to_string().into_bytes(),
                if status.disabled { b"1" } else { b"0" }.to_vec(),
            ],
        )
        .map(|n| n == 1)
    }

    fn email_statuses(&self) -> Result<HashMap<String, EmailStatus>, StoreError> {
        sync::email_statuses(self)
    }

    fn remember_name(&self, sub: &str, sealed: &[u8]) -> Result<bool, StoreError> {
        self.set_if_changed(&self.shared.keys.names, sub, sealed.to_vec(), None)
    }

    fn name(&self, sub: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.hash_get(&self.shared.keys.names, sub)
    }

    fn forget_name(&self, sub: &str) -> Result<bool, StoreError> {
        self.hash_del(&self.shared.keys.names, sub)
    }

    fn keep_refresh(&self, id: &str, r: &Refresh) -> Result<bool, StoreError> {
        let row = Row {
            sub: r.sub.clone(),
            sealed: b64(&r.sealed),
            at: r.checked_at,
        };
        self.set_if_changed(
            &self.shared.keys.refresh,
            id,
            encode(r.until, &row),
            Some(r.until),
        )
    }

    fn refresh(&self, id: &str) -> Result<Option<Refresh>, StoreError> {
        let Some(value) = self.hash_get(&self.shared.keys.refresh, id)? else {
            return Ok(None);
        };
        let (until, row, sealed) = decode(&value).ok_or_else(|| damaged("refresh"))?;
        Ok(Some(Refresh {
            sub: row.sub,
            sealed,
            checked_at: row.at,
            until,
        }))
    }

    fn forget_refresh(&self, id: &str) -> Result<bool, StoreError> {
        self.hash_del(&self.shared.keys.refresh, id)
    }

    fn signing_keys(&self) -> Result<Vec<(String, KeptKey)>, StoreError> {
        self.hash(&self.shared.keys.signing_keys)?
            .into_iter()
            .map(|(kid, value)| {
                let (until, row, sealed) = decode(&value).ok_or_else(|| damaged("signing key"))?;
                Ok((
                    kid,
                    KeptKey {
                        sealed,
                        created_at: row.at,
                        until,
                    },
                ))
            })
            .collect()
    }

    fn keep_signing_key(&self, kid: &str, key: &KeptKey) -> Result<bool, StoreError> {
        let row = Row {
            sub: String::new(),
            sealed: b64(&key.sealed),
            at: key.created_at,
        };
        self.set_if_changed(
            &self.shared.keys.signing_keys,
            kid,
            encode(key.until, &row),
            None,
        )
    }

    fn sweep(&self, now: u64) -> Result<usize, StoreError> {
        let k = &self.shared.keys;
        self.eval::<usize>(
            scripts::SWEEP,
            &[
                &k.sessions,
                &k.notifications,
                &k.subs,
                &k.refresh,
                &k.signing_keys,
            ],
            vec![now.to_string().into_bytes()],
        )
    }

    fn listen(&self, listener: Listener) {
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }

    fn in_sync(&self) -> bool {
        self.shared.in_sync.load(Ordering::Acquire)
    }

    fn try_lock(&self, name: &str, ttl: u64) -> Result<bool, StoreError> {
        let key = format!("{}{name}", self.shared.keys.locks);
        self.run(move |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl.max(1))
                .query_async::<Option<String>>(&mut c)
                .await
                .map(|ok| ok.is_some())
        })
    }

    fn unlock(&self, name: &str) -> Result<(), StoreError> {
        let key = format!("{}{name}", self.shared.keys.locks);
        self.run(move |mut c| async move { c.del::<_, ()>(key).await })
    }
}

#[cfg(test)]
mod tests;
