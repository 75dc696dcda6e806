//! The gateway's checks on what Apple returns, driven through the real
//! callback: bad id_tokens, expired codes, wrong credentials, key rotation,
//! and the caching of the client secret and Apple's keys.

mod common;

use applegate::clock::Clock;
use applegate::emulator::Tamper;
use common::{Browser, Nav, Person, Stack};

/// Each kind of bad id_token from the token endpoint is refused with 401
/// and no session results.
#[tokio::test]
async fn bad_id_tokens_are_refused_and_no_session_results() {
    let stack = Stack::start();
    for t in [
        Tamper::WrongNonce,
        Tamper::WrongAudience,
        Tamper::WrongIssuer,
        Tamper::Expired,
        Tamper::AlgNone,
        Tamper::UnknownKey,
        Tamper::BadSignature,
    ] {
        stack.emulator.tamper_next_token(t);
        let mut b = Browser::new();
        let steps = stack.sign_in_steps(&mut b, "jane@example.com").await;
        assert_eq!(
            steps.callback_page.status, 401,
            "{t:?}: {}",
            steps.callback_page.body
        );
        assert!(
            steps.callback_page.body.contains("Sign-in refused"),
            "{t:?}"
        );
        assert!(
            b.cookie(stack.session_cookie()).is_none(),
            "{t:?}: no session cookie"
        );
        assert_eq!(b.get(&stack.at("/"), Nav::Api).await.status, 401, "{t:?}");
    }
    // And an untampered sign-in still works afterwards.
    let mut b = Browser::new();
    let page = stack.sign_in(&mut b, "jane@example.com").await;
    assert_eq!(page.status, 200);
}

/// Many sign-ins cost one client secret and one fetch of Apple's keys.
#[tokio::test]
async fn client_secret_is_minted_once_and_keys_fetched_once() {
    let stack = Stack::start();
    for i in 0..12 {
        let mut b = Browser::new();
        let page = b
            .sign_in(
                &stack.at("/oauth2/start?rd=/"),
                &Person::new(&format!("user{i}@example.com")),
            )
            .await;
        assert_eq!(page.status, 200);
    }
    let hits = stack.emulator.hits();
    assert_eq!(hits.token, 12);
    assert_eq!(
        hits.client_secrets, 1,
        "one minted client secret for all sign-ins: {hits:?}"
    );
    assert_eq!(hits.keys, 1, "keys fetched once: {hits:?}");
}

/// When Apple rotates its signing key, the first token under the new kid
/// makes the gateway refetch the keys once, and sign-in goes on working.
#[tokio::test]
async fn rotated_keys_are_refetched_once() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    let mut b = Browser::new();
    stack.sign_in(&mut b, "a@example.com").await;
    assert_eq!(stack.emulator.hits().keys, 1);
    let old = stack.emulator.current_kid();
    let new = stack.emulator.rotate_keys();
    assert_ne!(old, new);
    // The refetch interval in tests is 1 s (at most one refetch a second,
    // so made-up kids cannot make us hammer Apple); step past it.
    clock.advance(2);
    for i in 0..3 {
        let mut b = Browser::new();
        let page = b
            .sign_in(
                &stack.at("/oauth2/start?rd=/"),
                &Person::new(&format!("r{i}@example.com")),
            )
            .await;
        assert_eq!(page.status, 200);
    }
    assert_eq!(stack.emulator.hits().keys, 2);

    // Tokens under made-up kids are refused without a refetch inside the
    // interval, and with exactly one after it.
    for _ in 0..2 {
        stack.emulator.tamper_next_token(Tamper::UnknownKey);
        let steps = Browser::new()
            .sign_in_steps(
                &stack.at("/oauth2/start?rd=/"),
                &Person::new("x@example.com"),
            )
            .await;
        assert_eq!(steps.callback_page.status, 401);
    }
    assert_eq!(stack.emulator.hits().keys, 2, "rate-limited");
    clock.advance(2);
    stack.emulator.tamper_next_token(Tamper::UnknownKey);
    let steps = Browser::new()
        .sign_in_steps(
            &stack.at("/oauth2/start?rd=/"),
            &Person::new("x@example.com"),
        )
        .await;
    assert_eq!(steps.callback_page.status, 401);
    assert_eq!(stack.emulator.hits().keys, 3);
}

/// A client secret signed with the wrong key is `invalid_client` at Apple:
/// the user sees a "misconfigured" page (502), and no session results.
#[tokio::test]
async fn wrong_credentials_are_reported_as_misconfiguration() {
    let stack = Stack::with(common::Options {
        wrong_key: true,
        ..Default::default()
    });
    let mut b = Browser::new();
    let steps = stack.sign_in_steps(&mut b, "jane@example.com").await;
    assert_eq!(steps.callback_page.status, 502);
    assert!(steps.callback_page.body.contains("misconfigured"));
    assert!(b.cookie(stack.session_cookie()).is_none());
}

/// Codes live five minutes at Apple; a callback after that is
/// `invalid_grant`, answered with "start again". The login state itself
/// lives ten minutes. Both are checked with an injected clock.
#[tokio::test]
async fn expired_codes_and_login_states_are_refused() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    let start = stack.at("/oauth2/start?rd=/");
    let mut b = Browser::new();
    let at = b
        .through_apple(&start, &Person::new("jane@example.com"))
        .await;
    clock.advance(301);
    let page = b.post_back(&at).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Sign-in expired"));

    let mut b = Browser::new();
    let at = b
        .through_apple(&start, &Person::new("jane@example.com"))
        .await;
    clock.advance(601);
    let page = b.post_back(&at).await;
    assert_eq!(page.status, 400);
    assert!(b.cookie(stack.session_cookie()).is_none());
}

/// Sessions end at their lifetime (7 days by default), by the injected clock.
#[tokio::test]
async fn sessions_expire() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        extra_toml: "[session]\nlifetime = \"1h\"\n".into(),
        ..Default::default()
    });
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    clock.advance(3599);
    assert_eq!(b.get(&stack.at("/"), Nav::Api).await.status, 200);
    clock.advance(1);
    assert_eq!(b.get(&stack.at("/"), Nav::Api).await.status, 401);
    assert!(clock.now() > 0);
}
