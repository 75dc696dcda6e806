//! Several replicas sharing one Redis (`[state] backend = "redis"`): two
//! gateways, each with its own store connection and in-memory views,
//! sharing nothing but a real `redis-server` (started here on a free port;
//! the tests fail, never skip, when it is not installed). The browser's
//! cookies go to both, as behind one load balancer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use applegate::clock::ManualClock;
use applegate::emulator::Emulator;
use applegate::kit::redis::RedisServer;
use applegate::server;

use super::common::{self, Browser, Nav, Person, Stack};

/// Two replicas, A (with the emulator and upstream) and B, on one Redis.
struct Replicas {
    a: Stack,
    /// B's base URL.
    b: String,
    /// Each replica's admin listener (`/ready`).
    admin: [SocketAddr; 2],
    clock: Arc<ManualClock>,
    redis: RedisServer,
    _b: server::Running,
}

fn replicas(fail_closed: bool) -> Replicas {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let clock = common::manual_clock();
    let admin =
        [common::free_port(), common::free_port()].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let a = Stack::with(common::Options {
        clock: clock.clone(),
        extra_toml: format!(
            "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_timeout = \"1s\"\n\
             fail_closed = {fail_closed}\n\n[admin]\nlisten = \"{}\"\n",
            redis.url(),
            admin[0]
        ),
        ..Default::default()
    });
    // The same config everywhere but the addresses, as the README says.
    let mut config = a.config.clone();
    let port = common::free_port();
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], port));
    config.admin.listen = Some(admin[1]);
    let b = server::spawn(&config, clock.clone()).unwrap();
    Replicas {
        a,
        b: format!("http://localhost:{port}"),
        admin,
        clock,
        redis,
        _b: b,
    }
}

/// The status of `b`'s API call to `base`.
async fn status(b: &mut Browser, base: &str) -> u16 {
    b.get(&format!("{base}/"), Nav::Api).await.status
}

/// Whether `b`'s calls to `base` get `want` within `limit` (asked every
/// 20 ms).
async fn becomes(b: &mut Browser, base: &str, want: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if status(b, base).await == want {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A replica's `/ready`: status and the `store` field.
async fn ready(admin: SocketAddr) -> (u16, String) {
    let r = reqwest::get(format!("http://{admin}/ready")).await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        body["store"].as_str().unwrap_or_default().to_string(),
    )
}

/// Waits (bounded) until `admin`'s `/ready` says `store`; its status.
async fn store_becomes(admin: SocketAddr, store: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, now) = ready(admin).await;
        if now == store {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "/ready store stayed {now:?}, not {store:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A browser signed in as `email` through A.
async fn signed_in(r: &Replicas, email: &str) -> Browser {
    let mut b = Browser::new();
    r.a.sign_in(&mut b, email).await;
    b
}

/// A sign-out on A makes the session's (stolen) cookie fail on B within a
/// second.
#[tokio::test]
async fn a_sign_out_on_one_replica_ends_the_session_on_the_other() {
    let r = replicas(false);
    let mut b = signed_in(&r, "jane@example.com").await;
    let stolen = b.cookie(r.a.session_cookie()).unwrap().clone();
    assert_eq!(status(&mut b, &r.b).await, 200, "B serves A's session");
    let out = b.get(&r.a.at("/oauth2/sign_out"), Nav::TopLevel).await;
    assert_eq!(out.status, 200);
    let mut thief = Browser::new();
    thief.set(stolen);
    assert!(
        becomes(&mut thief, &r.b, 401, Duration::from_secs(1)).await,
        "B refuses the signed-out cookie within 1 s"
    );
    assert_eq!(status(&mut thief, &r.a.url).await, 401);
}

/// `consent-revoked` delivered to A revokes the user on B; the same
/// notification delivered to B (Apple's retry reaching another replica) is
/// a no-op: it does not revoke again, which would end a session signed in
/// since.
#[tokio::test]
async fn a_notification_on_one_replica_is_acted_on_once_for_all() {
    let r = replicas(false);
    let mut before = signed_in(&r, "jane@example.com").await;
    assert_eq!(status(&mut before, &r.b).await, 200);
    let sub = r.a.emulator.sub_of("jane@example.com");
    let body = r.a.emulator.notification("consent-revoked", &sub);
    let path = applegate::config::DEFAULT_NOTIFICATIONS_PATH;
    let sent = Emulator::send_notification(&r.a.at(path), body.clone()).await;
    assert_eq!(sent.unwrap(), 200);
    assert!(
        becomes(&mut before, &r.b, 401, Duration::from_secs(1)).await,
        "B refuses the user within 1 s"
    );
    r.clock.advance(5);
    let mut after = signed_in(&r, "jane@example.com").await;
    assert_eq!(status(&mut after, &r.b).await, 200, "a new sign-in");
    let again = Emulator::send_notification(&format!("{}{path}", r.b), body).await;
    assert_eq!(again.unwrap(), 200, "acknowledged");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        status(&mut after, &r.b).await,
        200,
        "not acted on again by B"
    );
    assert_eq!(status(&mut after, &r.a.url).await, 200, "nor heard by A");
}

/// The name Apple sent once, remembered by A, is given by B to a later
/// sign-in that B completes (Apple's callback reaching B).
#[tokio::test]
async fn a_name_remembered_on_one_replica_is_given_on_the_other() {
    let r = replicas(false);
    let mut first = signed_in(&r, "jane@example.com").await;
    let echo = first.get(&format!("{}/", r.b), Nav::Api).await.json();
    assert_eq!(
        super::header(&echo, "x-auth-request-name"),
        Some("Jane Appleseed")
    );
    let mut later = Browser::new();
    let mut person = Person::new("jane@example.com");
    person.first_name = "Typed".into();
    let mut at = later
        .through_apple(&r.a.at("/oauth2/start?rd=/"), &person)
        .await;
    assert!(at.fields.iter().all(|(k, _)| k != "user"), "no name now");
    at.callback = at.callback.replace(&r.a.url, &r.b);
    assert!(at.callback.starts_with(&r.b));
    let page = later.post_back(&at).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let echo = later.get(&format!("{}/", r.b), Nav::Api).await.json();
    assert_eq!(
        super::header(&echo, "x-auth-request-name"),
        Some("Jane Appleseed"),
        "B read what A remembered"
    );
}

/// Redis stopped: signed-in users are still served by both replicas from
/// their last known view (`/ready` says degraded, and stays 200); a
/// sign-out answered by A meanwhile takes effect on B once Redis is back.
#[tokio::test]
async fn while_redis_is_away_users_are_served_and_sign_outs_wait_for_it() {
    let mut r = replicas(false);
    let mut leaving = signed_in(&r, "jane@example.com").await;
    let mut staying = signed_in(&r, "john@example.com").await;
    let stolen = leaving.cookie(r.a.session_cookie()).unwrap().clone();
    assert_eq!(ready(r.admin[0]).await, (200, "ok".to_string()));
    r.redis.stop();
    for admin in r.admin {
        assert_eq!(store_becomes(admin, "degraded").await, 200, "still ready");
    }
    for base in [&r.a.url, &r.b] {
        assert_eq!(status(&mut staying, base).await, 200, "served at {base}");
    }
    let out = leaving
        .get(&r.a.at("/oauth2/sign_out"), Nav::TopLevel)
        .await;
    assert_eq!(out.status, 200, "the sign-out is answered: {}", out.body);
    let mut thief = Browser::new();
    thief.set(stolen);
    assert_eq!(status(&mut thief, &r.a.url).await, 401, "at once on A");
    r.redis.restart().unwrap();
    assert!(
        becomes(&mut thief, &r.b, 401, Duration::from_secs(5)).await,
        "B refuses it once Redis is back"
    );
    for admin in r.admin {
        assert_eq!(store_becomes(admin, "ok").await, 200);
    }
    assert_eq!(status(&mut staying, &r.b).await, 200);
}

/// `fail_closed = true`: while Redis is away sessions are refused on every
/// replica (and `/ready` is 503); once it is back they are served again.
#[tokio::test]
async fn fail_closed_refuses_sessions_while_redis_is_away() {
    let mut r = replicas(true);
    let mut b = signed_in(&r, "jane@example.com").await;
    assert_eq!(status(&mut b, &r.b).await, 200);
    r.redis.stop();
    for admin in r.admin {
        assert_eq!(store_becomes(admin, "degraded").await, 503);
    }
    for base in [&r.a.url, &r.b] {
        assert_eq!(status(&mut b, base).await, 401, "refused at {base}");
    }
    r.redis.restart().unwrap();
    for admin in r.admin {
        assert_eq!(store_becomes(admin, "ok").await, 200);
    }
    for base in [&r.a.url, &r.b] {
        assert_eq!(status(&mut b, base).await, 200, "served again at {base}");
    }
}
