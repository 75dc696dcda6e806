//! Apple's signing keys as the running gateway keeps them: fetched in the
//! background at start and when their `max-age` runs out, a rotated-in key
//! ready before its first token, a dropped key gone, and the last good
//! keys kept while Apple is down. Real sockets; time on a manual clock.

mod common;

use std::time::{Duration, Instant};

use applegate::clock::Clock;
use applegate::emulator::{Emulator, KEYS_MAX_AGE};
use applegate::kit::{Builder, Upstream};
use common::{Browser, Nav, Stack};
use serde_json::json;

/// A token as a native app presents it, signed by the emulator's current
/// key, for a `sub` of its own (so no earlier verification is cached).
fn token(emulator: &Emulator, now: u64, sub: &str) -> String {
    emulator.sign(&json!({
        "iss": emulator.base_url(),
        "aud": common::SERVICES_ID,
        "exp": now + 86_400,
        "iat": now,
        "sub": sub,
        "email": "jane@example.com",
        "email_verified": "true",
    }))
}

/// The status of an API call to the bearer route with `token`.
async fn call(stack_url: &str, token: &str) -> u16 {
    Browser::new()
        .get_with(
            &format!("{stack_url}/api/me"),
            Nav::Api,
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await
        .status
}

/// Waits (at most 5 s: the gateway looks each second) until the emulator
/// has served its keys `n` times.
async fn wait_for_fetches(emulator: &Emulator, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while emulator.hits().keys < n {
        assert!(
            Instant::now() < deadline,
            "keys fetched {:?}, wanted {n}",
            emulator.hits()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Without any sign-in the keys are fetched at start; after Apple rotates,
/// the refresh due by the answer's max-age brings the new key (its tokens
/// verify with no unknown-kid refetch), honours a shorter max-age, drops a
/// key Apple no longer publishes, and with Apple gone the last keys go on
/// verifying.
#[tokio::test]
async fn background_refresh_follows_rotation_and_outlives_apple() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        routes: vec![("/api/", "bearer")],
        ..Default::default()
    });
    let url = stack.url.clone();
    wait_for_fetches(&stack.emulator, 1).await;
    let first_key = token(&stack.emulator, clock.now(), "001.first.key");

    stack.emulator.set_keys_max_age(300);
    stack.emulator.rotate_keys();
    clock.advance(KEYS_MAX_AGE);
    wait_for_fetches(&stack.emulator, 2).await;
    let rotated = token(&stack.emulator, clock.now(), "001.rotated.key");
    assert_eq!(call(&url, &rotated).await, 200);
    assert_eq!(stack.emulator.hits().keys, 2, "no unknown-kid refetch");

    // Three keys stay published: two more rotations drop the first.
    stack.emulator.rotate_keys();
    stack.emulator.rotate_keys();
    clock.advance(300);
    wait_for_fetches(&stack.emulator, 3).await;
    assert_eq!(call(&url, &first_key).await, 401, "a dropped key leaves");

    let later = token(&stack.emulator, clock.now(), "001.after.apple.left");
    let Stack {
        emulator, gateway, ..
    } = stack;
    drop(emulator);
    clock.advance(300);
    // Two of the gateway's once-a-second looks: its refresh fails.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(call(&url, &later).await, 200, "the last good keys are kept");
    drop(gateway);
}

/// The gateway starts and serves while Apple cannot be reached: a browser
/// is sent to sign in, a bearer token is refused with 401, nothing hangs.
#[tokio::test]
async fn the_gateway_starts_without_apple() {
    let kit = Builder::new(common::manual_clock())
        .upstream(Upstream::Demo)
        .start()
        .unwrap();
    let toml = "[server]\nthreads = 1\ngrace_period = \"0s\"\n\
                [[routes]]\npath = \"/api/\"\nauth = \"bearer\"\nupstream = \"http://{upstream}\"\n\
                [[routes]]\npath = \"/\"\nupstream = \"http://{upstream}\"\n";
    let config = kit.config(toml, &kit.secrets()).unwrap();
    let now = applegate::clock::SystemClock.now();
    let bearer = token(&kit.emulator, now, "001.no.apple");
    drop(kit.emulator);
    let started = Instant::now();
    let gateway = applegate::server::spawn(&config, applegate::clock::system()).unwrap();
    let url = kit.public_url.clone();
    let page = Browser::new().get(&format!("{url}/"), Nav::TopLevel).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(call(&url, &bearer).await, 401);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(gateway);
}
