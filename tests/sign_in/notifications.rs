//! Apple's server-to-server notifications through the real gateway: sent
//! by the emulator (signed as Apple signs them) over real sockets.

use super::common::{self, Browser, Nav, Stack};
use applegate::emulator::Emulator;
use serde_json::json;

/// The notifications URL of `stack`.
fn url(stack: &Stack) -> String {
    stack.at(applegate::config::DEFAULT_NOTIFICATIONS_PATH)
}

/// A user signed in twice (two browsers, two sessions).
async fn two_sessions(stack: &Stack, email: &str) -> (Browser, Browser) {
    let (mut a, mut b) = (Browser::new(), Browser::new());
    stack.sign_in(&mut a, email).await;
    stack.sign_in(&mut b, email).await;
    (a, b)
}

async fn status(b: &mut Browser, stack: &Stack) -> u16 {
    b.get(&stack.at("/"), Nav::Api).await.status
}

/// The `X-Auth-Request-Email-Disabled` the upstream got for `b`'s request
/// (which sends its own copy, to be removed).
async fn disabled(b: &mut Browser, stack: &Stack) -> Option<String> {
    let echo = b
        .get_with(
            &stack.at("/"),
            Nav::Api,
            &[("X-Auth-Request-Email-Disabled", "true")],
        )
        .await
        .json();
    super::header(&echo, "x-auth-request-email-disabled").map(str::to_string)
}

/// `consent-revoked` ends every session of that user on the next request,
/// and no other user's; a new sign-in afterwards works. `account-delete`
/// does the same.
#[tokio::test]
async fn consent_revoked_ends_every_session_of_that_user() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    let (mut a, mut b) = two_sessions(&stack, "jane@example.com").await;
    let mut other = Browser::new();
    stack.sign_in(&mut other, "john@example.com").await;
    assert_eq!(status(&mut a, &stack).await, 200);
    let sub = stack.emulator.sub_of("jane@example.com");
    let body = stack.emulator.notification("consent-revoked", &sub);
    assert_eq!(Emulator::send_notification(&url(&stack), body).await.unwrap(), 200);
    assert_eq!(status(&mut a, &stack).await, 401, "first session");
    assert_eq!(status(&mut b, &stack).await, 401, "second session");
    assert_eq!(status(&mut other, &stack).await, 200, "another user");

    // A session issued after the revocation's second works.
    clock.advance(1);
    let mut again = Browser::new();
    stack.sign_in(&mut again, "jane@example.com").await;
    assert_eq!(status(&mut again, &stack).await, 200, "signed in again");

    let sub = stack.emulator.sub_of("john@example.com");
    let body = stack.emulator.notification("account-delete", &sub);
    assert_eq!(Emulator::send_notification(&url(&stack), body).await.unwrap(), 200);
    assert_eq!(status(&mut other, &stack).await, 401, "account deleted");
}

/// Apple's retry (the same `jti`) is a 200 that changes nothing: a session
/// signed in after the first delivery survives the second.
#[tokio::test]
async fn a_duplicate_notification_is_a_no_op() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    let sub = stack.emulator.sub_of("jane@example.com");
    let body = stack.emulator.notification("consent-revoked", &sub);
    assert_eq!(Emulator::send_notification(&url(&stack), body.clone()).await.unwrap(), 200);
    clock.advance(10);
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    assert_eq!(status(&mut b, &stack).await, 200);
    clock.advance(10);
    assert_eq!(Emulator::send_notification(&url(&stack), body).await.unwrap(), 200);
    assert_eq!(status(&mut b, &stack).await, 200, "the retry revoked nothing");
}

/// Forged, foreign, expired, unsigned or malformed notifications get 400
/// and change nothing: the user's session still works.
#[tokio::test]
async fn forged_notifications_get_400_and_change_nothing() {
    let stack = Stack::start();
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let sub = stack.emulator.sub_of("jane@example.com");
    let now = applegate::clock::Clock::now(&applegate::clock::SystemClock);
    let claims = |aud: &str, iat: u64, exp: u64| {
        json!({
            "iss": stack.emulator.base_url(), "aud": aud, "iat": iat, "exp": exp,
            "jti": applegate::session::random_token(16),
            "events": json!({"type": "consent-revoked", "sub": sub, "event_time": iat * 1000}).to_string(),
        })
    };
    let body = |jwt: String| json!({"payload": jwt}).to_string();
    let other_key = applegate::emulator::keys::SigningKey::generate();
    let genuine = claims(common::SERVICES_ID, now, now + 3600);
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let mut no_events = genuine.clone();
    no_events.as_object_mut().unwrap().remove("events");
    let forged = [
        ("other key", body(other_key.sign(&genuine))),
        ("wrong aud", body(stack.emulator.sign(&claims("com.attacker.app", now, now + 3600)))),
        ("expired", body(stack.emulator.sign(&claims(common::SERVICES_ID, now - 7200, now - 3600)))),
        ("future", body(stack.emulator.sign(&claims(common::SERVICES_ID, now + 3600, now + 7200)))),
        (
            "unsigned",
            body(format!("{}.{}.", b64(json!({"alg": "none", "kid": stack.emulator.current_kid()})), b64(genuine.clone()))),
        ),
        ("no events", body(stack.emulator.sign(&no_events))),
        ("garbage jwt", body("not.a.jwt".into())),
        ("not json", "payload=x".into()),
        ("no payload", json!({"jwt": "x"}).to_string()),
    ];
    for (what, forged) in forged {
        let got = Emulator::send_notification(&url(&stack), forged).await.unwrap();
        assert_eq!(got, 400, "{what}");
        assert_eq!(status(&mut b, &stack).await, 200, "{what} changed nothing");
    }
    // The same claims, signed by the emulator, do end the session.
    let real = body(stack.emulator.sign(&genuine));
    assert_eq!(Emulator::send_notification(&url(&stack), real).await.unwrap(), 200);
    assert_eq!(status(&mut b, &stack).await, 401);
}

/// Only POST; a body over the cap is refused unread.
#[tokio::test]
async fn only_bounded_posts() {
    let stack = Stack::start();
    let mut b = Browser::new();
    let page = b.get(&url(&stack), Nav::Api).await;
    assert_eq!(page.status, 405);
    let big = "x".repeat(stack.config.server.max_callback_body + 1);
    let got = Emulator::send_notification(&url(&stack), json!({"payload": big}).to_string())
        .await
        .unwrap();
    assert_eq!(got, 413);
}

/// `email-disabled` reaches the user's upstream requests as
/// `X-Auth-Request-Email-Disabled: true` (on the session it already has),
/// and nobody else's; `email-enabled` takes it away again; a client-sent
/// copy never passes.
#[tokio::test]
async fn email_disabled_reaches_the_upstream_until_enabled() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    let (mut jane, mut john) = (Browser::new(), Browser::new());
    stack.sign_in(&mut jane, "jane@example.com").await;
    stack.sign_in(&mut john, "john@example.com").await;
    assert_eq!(disabled(&mut jane, &stack).await, None, "a client-sent copy is removed");
    let sub = stack.emulator.sub_of("jane@example.com");
    let body = stack.emulator.notification("email-disabled", &sub);
    assert_eq!(Emulator::send_notification(&url(&stack), body).await.unwrap(), 200);
    assert_eq!(disabled(&mut jane, &stack).await.as_deref(), Some("true"));
    assert_eq!(disabled(&mut john, &stack).await, None, "another user");
    assert_eq!(status(&mut jane, &stack).await, 200, "the session still works");
    clock.advance(1);
    let body = stack.emulator.notification("email-enabled", &sub);
    assert_eq!(Emulator::send_notification(&url(&stack), body).await.unwrap(), 200);
    assert_eq!(disabled(&mut jane, &stack).await, None, "enabled again");
}
