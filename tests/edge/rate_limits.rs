//! Sign-in rate limits: per client (behind a trusted proxy too), and a
//! global cap on token calls to Apple.

use super::common::raw::Recorder;
use super::common::{Browser, Nav, Options, Person, Stack};
use super::get;

// ---- item 6: sign-in rate limits ----

/// `/oauth2/start` is limited per client (429 with `Retry-After`) while
/// signed-in traffic is not.
#[tokio::test]
async fn sign_in_is_rate_limited_per_client_but_signed_in_traffic_is_not() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        sign_in_per_client: 3,
        ..Options::default()
    });
    let mut b = Browser::new();
    let page = stack.sign_in(&mut b, "jane@example.com").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // A burst of starts: within two one-second windows at most, so the 7th
    // is over the limit at the latest.
    let mut limited = None;
    for i in 0..7 {
        let r = get(&stack, "GET /oauth2/start?rd=/ HTTP/1.1\r\nHost: localhost");
        if r.status == 429 {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status, 302);
    }
    let (_, r) = limited.expect("a burst of starts is limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    for _ in 0..30 {
        let page = b.get(&stack.at("/reports"), Nav::Api).await;
        assert_eq!(page.status, 200, "signed-in traffic is never limited");
    }
}

/// Behind a trusted proxy, each client address has its own budget.
#[test]
fn rate_limits_count_the_client_behind_a_trusted_proxy() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        sign_in_per_client: 2,
        server_toml: "trusted_proxies = [\"127.0.0.1\"]".into(),
        ..Options::default()
    });
    let from = |ip: &str| {
        get(
            &stack,
            &format!("GET /oauth2/start HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {ip}"),
        )
        .status
    };
    let statuses: Vec<u16> = (0..5).map(|_| from("198.51.100.1")).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(from("198.51.100.2"), 302, "another client is not limited");
}

/// A callback without a valid login state never calls Apple, and token
/// calls to Apple have a global cap.
#[tokio::test]
async fn apple_is_called_only_for_valid_callbacks_and_within_the_cap() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        apple_token_calls: 1,
        ..Options::default()
    });
    let r = get(
        &stack,
        "POST /oauth2/callback HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 49\r\n\r\ncode=c0123456789&state=AAAAAAAAAAAAAAAAAAAAAA&x=1",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        stack.emulator.hits().token,
        0,
        "no login state, no call to Apple"
    );
    // Three sign-ins brought to Apple's page, then posted back at once:
    // within two one-second windows, so one at least is over the cap.
    let mut at = Vec::new();
    for _ in 0..3 {
        let mut b = Browser::new();
        let a = b
            .through_apple(
                &stack.at("/oauth2/start?rd=/"),
                &Person::new("jane@example.com"),
            )
            .await;
        at.push((b, a));
    }
    let mut statuses = Vec::new();
    for (b, a) in &mut at {
        statuses.push(b.post_back(a).await.status);
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 1, "{statuses:?}");
    assert_eq!(
        stack.emulator.hits().token as usize,
        statuses.iter().filter(|s| **s == 303).count(),
        "Apple saw only the calls within the cap: {statuses:?}"
    );
}
