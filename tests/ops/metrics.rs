//! `/metrics`: each counter moves with what it counts.

use applegate::emulator::Tamper;

use crate::common::{Browser, Nav, Options};
use crate::{with_admin, Scrape};

/// A scripted sign-in, an authenticated request, a refused request, a
/// user the policy refuses, an Apple error and a sign-out each move their
/// counters; the exposition parses.
#[tokio::test]
async fn counters_move_with_what_they_count() {
    let (stack, admin) = with_admin(Options {
        extra_toml: "[policy]\nallowed_email_domains = [\"example.com\"]\n".into(),
        ..Options::default()
    });
    let before = Scrape::of(admin).await;

    // A sign-in, then a request it authenticates (proxied, route 0).
    let mut b = Browser::new();
    let page = stack.sign_in(&mut b, "jane@example.com").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = b.get(&stack.at("/app"), Nav::TopLevel).await;
    assert_eq!(page.status, 200);
    // A request refused: an API call without a session.
    let refused = Browser::new().get(&stack.at("/app"), Nav::Api).await;
    assert_eq!(refused.status, 401);
    // A user the policy refuses.
    let denied = stack
        .sign_in_steps(&mut Browser::new(), "mallory@elsewhere.org")
        .await;
    assert_eq!(denied.callback_page.status, 403);
    // An Apple error: an id_token with a bad signature.
    stack.emulator.tamper_next_token(Tamper::BadSignature);
    let bad = stack
        .sign_in_steps(&mut Browser::new(), "jane@example.com")
        .await;
    assert_eq!(bad.callback_page.status, 401, "{}", bad.callback_page.body);
    // A sign-out: one revocation held.
    let out = b.get(&stack.at("/oauth2/sign_out"), Nav::TopLevel).await;
    assert!(out.status < 400, "{}", out.status);

    let after = Scrape::of(admin).await;
    let moved = |key: &str| after.delta(&before, key);
    assert_eq!(moved("applegate_sign_ins_total{outcome=ok}"), 1.0);
    assert_eq!(moved("applegate_sign_ins_total{outcome=denied}"), 1.0);
    assert_eq!(
        moved("applegate_sign_ins_total{outcome=apple_invalid_token}"),
        1.0
    );
    // The sign-in's return to `/`, then `/app`.
    assert_eq!(
        moved("applegate_requests_total{outcome=authenticated,route=0,status=2xx}"),
        2.0
    );
    assert_eq!(
        moved("applegate_requests_total{outcome=unauthenticated,route=0,status=4xx}"),
        1.0
    );
    // start, callback and sign-out are the gateway's endpoints.
    assert!(moved("applegate_requests_total{outcome=endpoint,route=none,status=3xx}") >= 4.0);
    // Three code exchanges answered; keys fetched at least once (at start).
    assert_eq!(
        moved("applegate_apple_requests_total{endpoint=token,result=ok}"),
        3.0
    );
    assert_eq!(
        moved("applegate_apple_request_duration_seconds_count{endpoint=token}"),
        3.0
    );
    assert!(after.get("applegate_apple_requests_total{endpoint=keys,result=ok}") >= 1.0);
    assert!(after.get("applegate_apple_keys{}") >= 1.0);
    // The session was opened once (miss) and then found (hit).
    assert!(moved("applegate_cache_lookups_total{cache=session,result=miss}") >= 1.0);
    assert!(moved("applegate_cache_lookups_total{cache=session,result=hit}") >= 1.0);
    assert!(moved("applegate_upstream_duration_seconds_count{}") >= 1.0);
    assert!(moved("applegate_gateway_duration_seconds_count{}") >= 7.0);
    assert_eq!(after.get("applegate_revocations{}"), 1.0);
    assert_eq!(after.get("applegate_store_up{}"), 1.0);
}

/// Refusals by the sign-in rate limit are counted by limit; open
/// connections show a connection held open.
#[tokio::test]
async fn rate_limit_refusals_and_open_connections_are_counted() {
    let (stack, admin) = with_admin(Options {
        sign_in_per_client: 1,
        ..Options::default()
    });
    let before = Scrape::of(admin).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let p = Browser::new()
            .get(&stack.at("/oauth2/start?rd=/"), Nav::TopLevel)
            .await;
        statuses.push(p.status);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count() as f64;
    assert!(refused >= 1.0, "{statuses:?}");
    // A connection held open (keep-alive) while scraping.
    let held = std::net::TcpStream::connect(stack.gateway.addr).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let after = Scrape::of(admin).await;
    assert_eq!(
        after.delta(
            &before,
            "applegate_rate_limited_total{limit=sign_in_per_client}"
        ),
        refused
    );
    assert!(after.get("applegate_open_connections{}") >= 1.0);
    drop(held);
}
