//! The round trip and what it ends with: identity headers at the upstream,
//! a friendly cancel, `/oauth2/userinfo`, the display-only `user` field,
//! and the policy at sign-in.

use super::common::{self, Browser, Nav, Person, Stack};
use super::header;

/// A browser that opens a protected page signs in with Apple and lands on
/// that page, which the upstream serves with the identity headers.
#[tokio::test]
async fn round_trip_ends_at_the_upstream_with_identity_headers() {
    let stack = Stack::start();
    let mut b = Browser::new();
    let first = b
        .get(&stack.at("/reports/q3?year=2026"), Nav::TopLevel)
        .await;
    assert_eq!(first.status, 302);
    assert_eq!(
        first.location().unwrap(),
        stack.at("/oauth2/start?rd=%2Freports%2Fq3%3Fyear%3D2026")
    );
    let start = b.get(&first.location().unwrap(), Nav::TopLevel).await;
    assert_eq!(start.status, 302);
    let apple = url::Url::parse(&start.location().unwrap()).unwrap();
    assert_eq!(
        format!("{}/auth/authorize", stack.emulator.base_url()),
        apple[..url::Position::AfterPath]
    );
    let q: std::collections::HashMap<_, _> = apple.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(q["client_id"], common::SERVICES_ID);
    assert_eq!(q["redirect_uri"], stack.at("/oauth2/callback"));
    assert_eq!(q["scope"], "name email");
    assert!(
        q["state"].len() >= 22 && q["nonce"].len() >= 22,
        "128-bit state and nonce"
    );
    assert!(apple.query().unwrap().contains("scope=name%20email"));

    let steps = b
        .sign_in_steps(&start.location().unwrap(), &Person::new("jane@example.com"))
        .await;
    assert_eq!(
        steps.callback_page.status, 303,
        "{}",
        steps.callback_page.body
    );
    assert_eq!(
        steps.callback_page.location().unwrap(),
        stack.at("/reports/q3?year=2026")
    );
    let page = b.get(&stack.at("/reports/q3?year=2026"), Nav::Api).await;
    assert_eq!(page.status, 200);
    let echo = page.json();
    assert_eq!(echo["path"], "/reports/q3");
    assert_eq!(echo["query"], "year=2026");
    let sub = header(&echo, "x-auth-request-user").unwrap();
    assert_eq!(sub.split('.').count(), 3, "an Apple-shaped sub: {sub}");
    assert_eq!(header(&echo, "x-forwarded-user"), Some(sub));
    assert_eq!(
        header(&echo, "x-auth-request-email"),
        Some("jane@example.com")
    );
    assert_eq!(header(&echo, "x-forwarded-email"), Some("jane@example.com"));
    assert_eq!(header(&echo, "x-auth-request-email-verified"), Some("true"));
    assert_eq!(header(&echo, "x-auth-request-private-email"), Some("false"));
    assert_eq!(header(&echo, "x-auth-request-name"), Some("Jane Appleseed"));
    assert!(
        echo["headers"].get("cookie").is_none(),
        "the gateway's cookies stay with the gateway: {echo}"
    );

    // The HTML page a person sees shows the same identity.
    let html = b.get(&stack.at("/"), Nav::TopLevel).await;
    assert!(
        html.body.contains("Hello, jane@example.com"),
        "{}",
        html.body
    );
}

/// Cancelling on Apple's page shows a friendly page with a way back.
#[tokio::test]
async fn cancel_shows_a_friendly_page() {
    let stack = Stack::start();
    let mut b = Browser::new();
    let mut p = Person::new("jane@example.com");
    p.cancel = true;
    let steps = b
        .sign_in_steps(&stack.at("/oauth2/start?rd=/deep/link"), &p)
        .await;
    assert_eq!(steps.callback_page.status, 200);
    assert!(steps.callback_page.body.contains("Sign-in cancelled"));
    assert!(
        steps
            .callback_page
            .body
            .contains("/oauth2/start?rd=%2Fdeep%2Flink"),
        "{}",
        steps.callback_page.body
    );
    assert!(b.cookie(stack.session_cookie()).is_none());
}

/// `/oauth2/userinfo` answers the identity as JSON, or 401.
#[tokio::test]
async fn userinfo_answers_the_identity() {
    let stack = Stack::start();
    let mut b = Browser::new();
    assert_eq!(
        b.get(&stack.at("/oauth2/userinfo"), Nav::Api).await.status,
        401
    );
    let mut p = Person::new("jane@example.com");
    p.hide_my_email = true;
    b.sign_in(&stack.at("/oauth2/start?rd=/"), &p).await;
    let info = b.get(&stack.at("/oauth2/userinfo"), Nav::Api).await.json();
    assert!(
        info["email"]
            .as_str()
            .unwrap()
            .ends_with("@privaterelay.appleid.com"),
        "{info}"
    );
    assert_eq!(info["is_private_email"], true);
    assert_eq!(info["email_verified"], true);
}

/// Apple sends the name only on first consent; the second sign-in of the
/// same user has no `user` field, and the gateway never takes identity
/// from it.
#[tokio::test]
async fn user_field_comes_once_and_is_display_only() {
    let stack = Stack::start();
    let mut b = Browser::new();
    let first = stack.sign_in_steps(&mut b, "jane@example.com").await;
    assert!(first.fields.iter().any(|(k, _)| k == "user"));
    let mut b2 = Browser::new();
    let second = stack.sign_in_steps(&mut b2, "jane@example.com").await;
    assert!(!second.fields.iter().any(|(k, _)| k == "user"));

    // A forged `user` field cannot change who signs in.
    let mut b3 = Browser::new();
    let mut at = b3
        .through_apple(
            &stack.at("/oauth2/start?rd=/"),
            &Person::new("nobody@example.com"),
        )
        .await;
    at.fields.retain(|(k, _)| k != "user");
    at.fields.push((
        "user".into(),
        r#"{"name":{"firstName":"Tim","lastName":"Cook"},"email":"tim@apple.com"}"#.into(),
    ));
    let page = b3.post_back(&at).await;
    assert_eq!(page.status, 303);
    let echo = b3.get(&stack.at("/"), Nav::Api).await.json();
    assert_eq!(
        header(&echo, "x-auth-request-email"),
        Some("nobody@example.com")
    );
    assert_eq!(
        header(&echo, "x-auth-request-name"),
        Some("Tim Cook"),
        "display name only"
    );
}

/// A user outside the policy is refused at sign-in (no session) with 403.
#[tokio::test]
async fn policy_refuses_users_outside_it() {
    let stack = Stack::with(common::Options {
        extra_toml:
            "[policy]\nallowed_email_domains = [\"example.com\"]\nallow_private_relay = false\n"
                .into(),
        ..Default::default()
    });
    let mut b = Browser::new();
    let steps = stack.sign_in_steps(&mut b, "eve@evil.example").await;
    assert_eq!(steps.callback_page.status, 403);
    assert!(b.cookie(stack.session_cookie()).is_none());
    let mut p = Person::new("jane@example.com");
    p.hide_my_email = true;
    let steps = b.sign_in_steps(&stack.at("/oauth2/start?rd=/"), &p).await;
    assert_eq!(steps.callback_page.status, 403, "private relay refused");
    let steps = stack.sign_in_steps(&mut b, "jane@example.com").await;
    assert_eq!(steps.callback_page.status, 303);
}
