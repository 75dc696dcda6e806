//! Apple's server-to-server notifications through the real gateway: sent
//! by the emulator (signed as Apple signs them) over real sockets.

use std::sync::Arc;

use super::common::{self, Browser, Nav, Stack};
use applegate::clock::ManualClock;
use applegate::emulator::Emulator;
use serde_json::json;

/// A stack on a manual clock (a revocation is as of a second: tests step
/// past it instead of sleeping).
fn stack_on_manual_clock() -> (Arc<ManualClock>, Stack) {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    (clock, stack)
}

/// Posts `body` to the gateway's notifications path; the status.
async fn send(stack: &Stack, body: String) -> u16 {
    let url = stack.at(applegate::config::DEFAULT_NOTIFICATIONS_PATH);
    Emulator::send_notification(&url, body).await.unwrap()
}

/// The emulator's `kind` notification about the user who signs in as
/// `email`, sent; the status.
async fn notify(stack: &Stack, kind: &str, email: &str) -> u16 {
    let body = stack
        .emulator
        .notification(kind, &stack.emulator.sub_of(email));
    send(stack, body).await
}

/// A browser signed in as `email`.
async fn signed_in(stack: &Stack, email: &str) -> Browser {
    let mut b = Browser::new();
    stack.sign_in(&mut b, email).await;
    b
}

/// The status of `b`'s API call through the gateway.
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
    let (clock, stack) = stack_on_manual_clock();
    let mut a = signed_in(&stack, "jane@example.com").await;
    let mut b = signed_in(&stack, "jane@example.com").await;
    let mut other = signed_in(&stack, "john@example.com").await;
    assert_eq!(status(&mut a, &stack).await, 200);
    assert_eq!(
        notify(&stack, "consent-revoked", "jane@example.com").await,
        200
    );
    assert_eq!(status(&mut a, &stack).await, 401, "first session");
    assert_eq!(status(&mut b, &stack).await, 401, "second session");
    assert_eq!(status(&mut other, &stack).await, 200, "another user");

    clock.advance(1);
    let mut again = signed_in(&stack, "jane@example.com").await;
    assert_eq!(status(&mut again, &stack).await, 200, "signed in again");

    assert_eq!(
        notify(&stack, "account-delete", "john@example.com").await,
        200
    );
    assert_eq!(status(&mut other, &stack).await, 401, "account deleted");
}

/// Apple's retry (the same `jti`) is a 200 that changes nothing: a session
/// signed in after the first delivery survives the second.
#[tokio::test]
async fn a_duplicate_notification_is_a_no_op() {
    let (clock, stack) = stack_on_manual_clock();
    let sub = stack.emulator.sub_of("jane@example.com");
    let body = stack.emulator.notification("consent-revoked", &sub);
    assert_eq!(send(&stack, body.clone()).await, 200);
    clock.advance(10);
    let mut b = signed_in(&stack, "jane@example.com").await;
    assert_eq!(status(&mut b, &stack).await, 200);
    clock.advance(10);
    assert_eq!(send(&stack, body).await, 200);
    assert_eq!(
        status(&mut b, &stack).await,
        200,
        "the retry revoked nothing"
    );
}

/// Forged, foreign, expired, unsigned or malformed notifications get 400
/// and change nothing: the user's session still works.
#[tokio::test]
async fn forged_notifications_get_400_and_change_nothing() {
    let stack = Stack::start();
    let mut b = signed_in(&stack, "jane@example.com").await;
    let sub = stack.emulator.sub_of("jane@example.com");
    let now = applegate::clock::Clock::now(&applegate::clock::SystemClock);
    let claims = |aud: &str, iat: u64, exp: u64| {
        let events = json!({"type": "consent-revoked", "sub": sub, "event_time": iat * 1000});
        json!({
            "iss": stack.emulator.base_url(), "aud": aud, "iat": iat, "exp": exp,
            "jti": applegate::session::random_token(16),
            "events": events.to_string(),
        })
    };
    let signed = |c: &serde_json::Value| json!({"payload": stack.emulator.sign(c)}).to_string();
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let genuine = claims(common::SERVICES_ID, now, now + 3600);
    let mut no_events = genuine.clone();
    no_events.as_object_mut().unwrap().remove("events");
    let other_key = applegate::emulator::keys::SigningKey::generate();
    let header = json!({"alg": "none", "kid": stack.emulator.current_kid()});
    let unsigned = format!("{}.{}.", b64(header), b64(genuine.clone()));
    let forged = [
        (
            "other key",
            json!({"payload": other_key.sign(&genuine)}).to_string(),
        ),
        (
            "wrong aud",
            signed(&claims("com.attacker.app", now, now + 3600)),
        ),
        (
            "expired",
            signed(&claims(common::SERVICES_ID, now - 7200, now - 3600)),
        ),
        (
            "future",
            signed(&claims(common::SERVICES_ID, now + 3600, now + 7200)),
        ),
        ("unsigned", json!({"payload": unsigned}).to_string()),
        ("no events", signed(&no_events)),
        ("garbage jwt", json!({"payload": "not.a.jwt"}).to_string()),
        ("not json", "payload=x".into()),
        ("no payload", json!({"jwt": "x"}).to_string()),
    ];
    for (what, forged) in forged {
        assert_eq!(send(&stack, forged).await, 400, "{what}");
        assert_eq!(status(&mut b, &stack).await, 200, "{what} changed nothing");
    }
    // The same claims, signed by the emulator's key, do end the session.
    assert_eq!(send(&stack, signed(&genuine)).await, 200);
    assert_eq!(status(&mut b, &stack).await, 401);
}

/// `email-disabled` reaches the user's upstream requests as
/// `X-Auth-Request-Email-Disabled: true` (on the session it already has),
/// and nobody else's; `email-enabled` takes it away again; a client-sent
/// copy never passes.
#[tokio::test]
async fn email_disabled_reaches_the_upstream_until_enabled() {
    let (clock, stack) = stack_on_manual_clock();
    let mut jane = signed_in(&stack, "jane@example.com").await;
    let mut john = signed_in(&stack, "john@example.com").await;
    assert_eq!(disabled(&mut jane, &stack).await, None, "a client's copy");
    assert_eq!(
        notify(&stack, "email-disabled", "jane@example.com").await,
        200
    );
    assert_eq!(disabled(&mut jane, &stack).await.as_deref(), Some("true"));
    assert_eq!(disabled(&mut john, &stack).await, None, "another user");
    assert_eq!(status(&mut jane, &stack).await, 200, "the session stays");
    clock.advance(1);
    assert_eq!(
        notify(&stack, "email-enabled", "jane@example.com").await,
        200
    );
    assert_eq!(disabled(&mut jane, &stack).await, None, "enabled again");
}

/// Only POST; a body over the cap is refused unread.
#[tokio::test]
async fn only_bounded_posts() {
    let stack = Stack::start();
    let mut b = Browser::new();
    let url = stack.at(applegate::config::DEFAULT_NOTIFICATIONS_PATH);
    assert_eq!(b.get(&url, Nav::Api).await.status, 405);
    let big = "x".repeat(stack.config.server.max_callback_body + 1);
    let body = json!({ "payload": big }).to_string();
    assert_eq!(send(&stack, body).await, 413);
}

/// `apple.notifications_path` moves the endpoint: notifications arrive
/// there, and the default path is then no endpoint (404, like any unknown
/// `/oauth2/` path).
#[tokio::test]
async fn the_path_is_configurable() {
    let stack = Stack::with(common::Options {
        apple_toml: "notifications_path = \"/hooks/apple\"".into(),
        ..Default::default()
    });
    let mut b = signed_in(&stack, "jane@example.com").await;
    let sub = stack.emulator.sub_of("jane@example.com");
    let body = stack.emulator.notification("consent-revoked", &sub);
    let default = stack.at(applegate::config::DEFAULT_NOTIFICATIONS_PATH);
    let status_at = |url: String, body: String| async move {
        Emulator::send_notification(&url, body).await.unwrap()
    };
    assert_eq!(
        status_at(default, body.clone()).await,
        404,
        "not the endpoint"
    );
    assert_eq!(status(&mut b, &stack).await, 200);
    assert_eq!(status_at(stack.at("/hooks/apple"), body).await, 200);
    assert_eq!(status(&mut b, &stack).await, 401);
}

/// `applegate dev`'s emulator admin page (the kit's emulator knows the
/// gateway's notification URL): its button for a signed-in user sends
/// `consent-revoked`, the gateway ends that user's sessions and no one
/// else's, and the emulator forgets the user's grants.
#[tokio::test]
async fn the_emulator_admin_button_revokes_consent() {
    let (_clock, stack) = stack_on_manual_clock();
    let mut jane = signed_in(&stack, "jane@example.com").await;
    let mut john = signed_in(&stack, "john@example.com").await;
    let base = stack.emulator.base_url();
    let http = reqwest::Client::new();
    let admin = || async {
        let page = http.get(format!("{base}/admin")).send().await.unwrap();
        page.text().await.unwrap()
    };
    let sub = stack.emulator.sub_of("jane@example.com");
    let page = admin().await;
    assert!(
        page.contains("jane@example.com") && page.contains(&format!("value=\"{sub}\"")),
        "{page}"
    );
    let revoke = |form: Vec<(&'static str, String)>| {
        http.post(format!("{base}/admin/revoke-consent"))
            .form(&form)
            .send()
    };
    assert_eq!(revoke(vec![]).await.unwrap().status(), 400, "no user");
    let answer = revoke(vec![("sub", sub.clone())]).await.unwrap();
    assert_eq!(answer.status(), 200);
    let page = answer.text().await.unwrap();
    assert!(
        page.contains("1 grant(s) ended") && page.contains("the gateway answered 200"),
        "{page}"
    );
    assert_eq!(status(&mut jane, &stack).await, 401);
    assert_eq!(status(&mut john, &stack).await, 200);
    let page = admin().await;
    assert!(
        !page.contains("jane@example.com") && page.contains("john@example.com"),
        "{page}"
    );
}
