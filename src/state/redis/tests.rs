//! The Redis store against real `redis-server`s: the TTLs its keys carry.
//! (The shared suite and two replicas sharing one Redis are in
//! `crate::state`'s tests.)

use std::time::{Duration, Instant};

use super::scripts::{now_ms, TTL_MARGIN};
use super::Redis;
use crate::config;
use crate::kit::redis::RedisServer;
use crate::state::{EmailStatus, KeptKey, Refresh, Store, SubRevocation, KEPT_WHILE_SIGNING};

/// One Redis server at `url`, keys under `prefix`; the tests change
/// what they are about from here.
fn config(url: String, prefix: &str) -> config::Redis {
    config::Redis {
        url: crate::secret::Secret::new(url),
        sentinels: vec![],
        cluster: false,
        ca_pem: None,
        key_prefix: prefix.into(),
        timeout: Duration::from_secs(2),
        fail_closed: false,
    }
}

fn open(url: String, prefix: &str) -> Redis {
    Redis::open(&config(url, prefix)).unwrap()
}

fn pttl(c: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(c).unwrap()
}

/// Writes one entry of each expiring kind, living until `until`.
fn write_expiring(s: &Redis, until: u64) {
    s.revoke_session("s1", until).unwrap();
    s.revoke_sub(
        "u1",
        SubRevocation {
            at: until - 1,
            until,
        },
    )
    .unwrap();
    assert!(s.first_notification(&format!("n{until}"), until).unwrap());
    s.keep_refresh(
        "s1",
        &Refresh {
            sub: "u1".into(),
            sealed: b"r".to_vec(),
            checked_at: until - 1,
            until,
        },
    )
    .unwrap();
}

const EXPIRING: [&str; 4] = [
    "revoked:sessions",
    "revoked:subs",
    "notifications",
    "refresh",
];

/// Each key of expiring entries outlives its longest entry (a shorter one
/// written later does not shorten it; nor does a new entry in a key a
/// gateway from before TTLs left without one); the keys kept forever by
/// design have no TTL.
#[test]
fn keys_outlive_their_entries() {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let s = open(server.url(), "ttl:");
    let now = now_ms() / 1000;
    write_expiring(&s, now + 3600);
    write_expiring(&s, now + 60);
    s.revoke_session("s2", now + 60).unwrap();
    let life = (now + 3600) * 1000 - now_ms();
    for key in EXPIRING {
        let ttl = pttl(&mut c, &format!("ttl:{key}"));
        assert!(ttl as u64 >= life, "{key}: PTTL {ttl} ms < {life} ms");
        assert!(
            ttl as u64 <= life + TTL_MARGIN.as_millis() as u64 + 1000,
            "{key}: PTTL {ttl} ms"
        );
    }
    s.remember_name("u1", b"n").unwrap();
    s.record_email_status(
        "u1",
        EmailStatus {
            disabled: true,
            at: 1,
        },
    )
    .unwrap();
    s.keep_signing_key(
        "k1",
        &KeptKey {
            sealed: b"k".to_vec(),
            created_at: now,
            until: KEPT_WHILE_SIGNING,
        },
    )
    .unwrap();
    for key in ["names", "emails", "signing_keys"] {
        assert_eq!(pttl(&mut c, &format!("ttl:{key}")), -1, "{key}: no TTL");
    }

    // Keys a gateway from before TTLs wrote: persistent, with an entry
    // living two hours.
    let old = now + 7200;
    redis::cmd("ZADD")
        .arg("old:revoked:sessions")
        .arg(old)
        .arg("s-old")
        .exec(&mut c)
        .unwrap();
    redis::cmd("HSET")
        .arg("old:revoked:subs")
        .arg("u-old")
        .arg(format!("{old} 1"))
        .exec(&mut c)
        .unwrap();
    let s = open(server.url(), "old:");
    write_expiring(&s, now + 60);
    let life = old * 1000 - now_ms();
    for key in ["revoked:sessions", "revoked:subs"] {
        let ttl = pttl(&mut c, &format!("old:{key}"));
        assert!(ttl as u64 >= life, "{key}: PTTL {ttl} ms < {life} ms");
    }
}

/// Entries that all expired take their keys with them, though no gateway
/// sweeps: a Redis left behind empties itself.
#[test]
fn expired_keys_go_without_a_sweep() {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let s = open(server.url(), "short:");
    write_expiring(&s, now_ms() / 1000 + 1);
    let keys: Vec<String> = EXPIRING.iter().map(|k| format!("short:{k}")).collect();
    let exists =
        |c: &mut redis::Connection| -> u32 { redis::cmd("EXISTS").arg(&keys).query(c).unwrap() };
    assert_eq!(exists(&mut c), 4);
    let deadline = Instant::now() + TTL_MARGIN + Duration::from_secs(5);
    while exists(&mut c) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(exists(&mut c), 0, "every key is gone by itself");
}

/// `query` on the server at `port`.
fn ask<T: redis::FromRedisValue>(port: u16, query: &mut redis::Cmd) -> redis::RedisResult<T> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    query.query(&mut c)
}

/// Waits until `ready` or `within` has passed; whether it was.
fn wait_for(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready()
}

/// Through a Sentinel (`redis_sentinels`, the master by name in
/// `redis_url`): the store passes the shared suite on the master it names;
/// after a failover (`SENTINEL FAILOVER`) it writes to the new master, the
/// old one being a replica that refuses writes.
#[test]
fn sentinel_finds_the_master_and_follows_a_failover() {
    let master = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let replica = RedisServer::replica_of(&master).unwrap_or_else(|e| panic!("{e}"));
    let sentinel = RedisServer::sentinel(&master, "mymaster").unwrap_or_else(|e| panic!("{e}"));
    let open = |prefix: String| {
        Redis::open(&config::Redis {
            sentinels: vec![("127.0.0.1".into(), sentinel.port())],
            ..config("redis://mymaster/0".into(), &prefix)
        })
        .unwrap()
    };
    let n = std::sync::atomic::AtomicU32::new(0);
    crate::state::suite::check(&|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(open(format!("sentinel{i}:")))
    });
    let s = open("fo:".into());
    s.revoke_session("before", now_ms() / 1000 + 60).unwrap();
    let score = |port: u16, id: &str| -> Option<f64> {
        ask(
            port,
            redis::cmd("ZSCORE").arg("fo:revoked:sessions").arg(id),
        )
        .unwrap_or(None)
    };
    assert!(
        score(master.port(), "before").is_some(),
        "written to the master"
    );

    // Sentinel learns of the replica from the master's INFO (every 10 s).
    let known = wait_for(Duration::from_secs(30), || {
        ask::<Vec<redis::Value>>(
            sentinel.port(),
            redis::cmd("SENTINEL").arg("REPLICAS").arg("mymaster"),
        )
        .is_ok_and(|r| !r.is_empty())
    });
    assert!(known, "the Sentinel found the replica");
    let failed_over = wait_for(Duration::from_secs(30), || {
        let _ = ask::<String>(
            sentinel.port(),
            redis::cmd("SENTINEL").arg("FAILOVER").arg("mymaster"),
        );
        std::thread::sleep(Duration::from_millis(500));
        ask::<(String, u16)>(
            sentinel.port(),
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg("mymaster"),
        )
        .is_ok_and(|(_, port)| port == replica.port())
    });
    assert!(failed_over, "the replica was promoted");
    // A write the old master takes before it is turned into a replica is
    // lost (replication is asynchronous): write once it refuses writes.
    let demoted = wait_for(Duration::from_secs(30), || {
        ask::<Vec<redis::Value>>(master.port(), &mut redis::cmd("ROLE"))
            .is_ok_and(|r| matches!(r.first(), Some(redis::Value::BulkString(b)) if b == b"slave"))
    });
    assert!(demoted, "the old master is a replica");
    let at = Instant::now();
    s.revoke_session("after", now_ms() / 1000 + 60).unwrap();
    let written = wait_for(Duration::from_secs(10), || {
        score(replica.port(), "after").is_some()
    });
    assert!(written, "written to the new master");
    eprintln!(
        "after the failover, the write reached the new master in {} ms",
        at.elapsed().as_millis()
    );
    assert!(wait_for(Duration::from_secs(5), || s.in_sync()));
}

/// `rediss://` to a real `redis-server --tls-port` whose certificate a
/// private CA signed: with `redis_ca_file` the store passes the shared
/// suite over TLS; trusting the system's roots instead, it does not
/// connect.
#[test]
fn rediss_trusts_a_private_ca() {
    let pki = std::env::temp_dir().join(format!("applegate-redis-pki-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&pki).unwrap();
    let made = crate::kit::pki::Pki::make(&pki);
    let file = |path: &std::path::Path| path.to_string_lossy().into_owned();
    let server = RedisServer::start_with(None, |port| {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file(&made.crt),
            "--tls-key-file",
            &file(&made.key),
            "--tls-ca-cert-file",
            &file(&made.ca),
            "--tls-auth-clients",
            "no",
        ]
        .map(String::from)
        .to_vec()
    })
    .unwrap_or_else(|e| panic!("{e} (Debian's redis-server is built with TLS)"));
    let url = format!("rediss://127.0.0.1:{}/0", server.port());
    let conf = |prefix: String, ca_pem: Option<Vec<u8>>| config::Redis {
        ca_pem,
        ..config(url.clone(), &prefix)
    };
    let ca = std::fs::read(&made.ca).unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    crate::state::suite::check(&|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(Redis::open(&conf(format!("tls{i}:"), Some(ca.clone()))).unwrap())
    });
    let e = Redis::open(&conf("roots:".into(), None))
        .err()
        .expect("the system's roots do not know the test CA")
        .to_string();
    assert!(e.contains("cannot connect to Redis at 127.0.0.1:"), "{e}");
    std::fs::remove_dir_all(&pki).unwrap();
}

/// A real 3-node Redis Cluster (`redis_cluster`): the store passes the
/// shared suite, its keys all in one slot (the prefix a hash tag); and a
/// change made by a store introduced by one node is heard by a store
/// introduced by another (a `PUBLISH` reaches every node's subscribers).
#[test]
fn cluster_passes_the_suite_and_shares_changes() {
    let cluster = crate::kit::redis::RedisCluster::start(3).unwrap_or_else(|e| panic!("{e}"));
    let open = |node: usize, prefix: String| {
        Redis::open(&config::Redis {
            cluster: true,
            ..config(cluster.nodes[node].url(), &prefix)
        })
        .unwrap()
    };
    let n = std::sync::atomic::AtomicU32::new(0);
    crate::state::suite::check(&|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(open(i as usize % 3, format!("cluster{i}:")))
    });
    crate::state::suite::check_durable(&|| Box::new(open(1, "kept:".into())));
    let (a, b) = (open(0, "share:".into()), open(2, "share:".into()));
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    b.listen(Box::new(move |c| {
        let _ = tx.lock().unwrap().send(c.clone());
    }));
    assert!(a.revoke_session("s1", 500).unwrap());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).unwrap(),
        crate::state::Change::Session {
            id: "s1".into(),
            expires_at: 500
        }
    );
    assert_eq!(
        b.revoked(0).unwrap().sessions.get("s1"),
        Some(&500),
        "read back through another node"
    );
}

/// A revocation Redis refuses (here: the sessions key taken by a string,
/// so the script gets WRONGTYPE) does not hold back the ones queued after
/// it: once Redis is back, the user revocation queued behind it is
/// written, and the refused one stays queued rather than dropped.
#[test]
fn a_refused_revocation_holds_back_no_other() {
    let mut server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let port = server.port();
    let store = open(server.url(), "refused:");
    ask::<()>(
        port,
        redis::cmd("SET")
            .arg("refused:revoked:sessions")
            .arg("not a sorted set"),
    )
    .unwrap();
    server.stop();
    let now = now_ms() / 1000;
    // Redis is away: both are queued, the session's first.
    assert!(store.revoke_session("s-refused", now + 3600).unwrap());
    let r = SubRevocation {
        at: now,
        until: now + 3600,
    };
    assert!(store.revoke_sub("001.behind", r).unwrap());
    server.restart().unwrap();
    let written = || {
        ask::<Option<String>>(
            port,
            redis::cmd("HGET")
                .arg("refused:revoked:subs")
                .arg("001.behind"),
        )
        .ok()
        .flatten()
        .is_some()
    };
    assert!(
        wait_for(Duration::from_secs(15), written),
        "the user revocation queued behind a refused one reached Redis"
    );
    let queued = store
        .shared
        .outbox
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    assert_eq!(queued, 1, "the refused revocation stays queued");
}
