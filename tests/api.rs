//! API access: bearer id_tokens from native apps (verified once, then
//! cached) and forward auth (`/oauth2/auth`) for an ingress in front.

mod common;

use applegate::clock::Clock;
use common::{Browser, Nav, Stack};
use serde_json::json;

fn stack(clock: applegate::clock::SharedClock) -> Stack {
    Stack::with(common::Options {
        clock,
        apple_toml: "bundle_ids = [\"com.example.ios\"]".into(),
        routes: vec![("/api/", "bearer")],
        ..Default::default()
    })
}

/// GET `url` as an API client with `Authorization: Bearer <token>`.
async fn bearer_get(b: &mut Browser, url: &str, token: &str) -> common::browser::Page {
    b.get_with(
        url,
        Nav::Api,
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
}

/// A native iOS token as Apple issues it: audience the app's bundle ID,
/// string booleans, private relay email, no nonce.
fn native_token(stack: &Stack, now: u64, aud: &str) -> String {
    stack.emulator.sign(&json!({
        "iss": stack.emulator.base_url(),
        "aud": aud,
        "exp": now + 86_400,
        "iat": now,
        "sub": "001234.0123456789abcdef0123456789abcdef.0042",
        "email": "x7k2@privaterelay.appleid.com",
        "email_verified": "true",
        "is_private_email": "true",
        "real_user_status": 2,
        "nonce_supported": true,
    }))
}

/// A bearer token is verified (signature, issuer, audience among the
/// Services ID and bundle IDs, expiry) and its identity reaches the API;
/// the keys are fetched once for many requests.
#[tokio::test]
async fn native_bearer_tokens_reach_the_api_with_identity() {
    let clock = common::manual_clock();
    let stack = stack(clock.clone());
    let token = native_token(&stack, clock.now(), "com.example.ios");
    let mut b = Browser::new();
    for _ in 0..20 {
        let page = bearer_get(&mut b, &stack.at("/api/me"), &token).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let echo = page.json();
        assert_eq!(
            echo["headers"]["x-auth-request-user"][0],
            "001234.0123456789abcdef0123456789abcdef.0042"
        );
        assert_eq!(echo["headers"]["x-auth-request-private-email"][0], "true");
        assert_eq!(
            echo["headers"]["authorization"][0],
            format!("Bearer {token}"),
            "the app's own header passes"
        );
    }
    assert_eq!(stack.emulator.hits().keys, 1);

    // Expired: refused even though cached.
    clock.advance(86_400 + 61);
    let page = bearer_get(&mut b, &stack.at("/api/me"), &token).await;
    assert_eq!(page.status, 401);
    assert!(page.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

/// Tokens for another app, altered tokens and junk get 401 (never a
/// redirect); a bearer route without a token gets 401 too.
#[tokio::test]
async fn bad_bearer_tokens_get_401() {
    let clock = common::manual_clock();
    let stack = stack(clock.clone());
    let other_app = native_token(&stack, clock.now(), "com.attacker.app");
    let good = native_token(&stack, clock.now(), "com.example.ios");
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut forged_payload = payload.to_string();
    forged_payload.replace_range(10..11, if &payload[10..11] == "A" { "B" } else { "A" });
    let altered = format!("{head}.{forged_payload}.{sig}");
    let mut b = Browser::new();
    for (what, auth) in [
        ("other audience", format!("Bearer {other_app}")),
        ("altered", format!("Bearer {altered}")),
        ("junk", "Bearer not.a.jwt".to_string()),
        ("empty", "Bearer ".to_string()),
        ("basic", "Basic dXNlcjpwYXNz".to_string()),
    ] {
        let page = b
            .get_with(&stack.at("/api/me"), Nav::Api, &[("Authorization", &auth)])
            .await;
        assert_eq!(page.status, 401, "{what}");
    }
    let page = b.get(&stack.at("/api/me"), Nav::TopLevel).await;
    assert_eq!(page.status, 401, "bearer routes never redirect");
}

/// A web session also works on bearer routes (a web app calling its API).
#[tokio::test]
async fn sessions_work_on_bearer_routes() {
    let stack = stack(common::manual_clock());
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let page = b.get(&stack.at("/api/me"), Nav::Api).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.json()["headers"]["x-auth-request-email"][0],
        "jane@example.com"
    );
}

/// Forward auth answers 202 with the identity headers for a session or a
/// bearer token, and 401 without.
#[tokio::test]
async fn forward_auth_answers_with_identity_headers() {
    let clock = common::manual_clock();
    let stack = stack(clock.clone());
    let mut b = Browser::new();
    let page = b.get(&stack.at("/oauth2/auth"), Nav::Api).await;
    assert_eq!(page.status, 401);
    stack.sign_in(&mut b, "jane@example.com").await;
    let page = b.get(&stack.at("/oauth2/auth"), Nav::Api).await;
    assert_eq!(page.status, 202);
    assert_eq!(page.headers["x-auth-request-email"], "jane@example.com");
    assert_eq!(page.headers["x-forwarded-email"], "jane@example.com");
    assert!(page.body.is_empty());
    let token = native_token(&stack, clock.now(), "com.example.ios");
    let page = Browser::new()
        .get_with(
            &stack.at("/oauth2/auth"),
            Nav::Api,
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(page.status, 202);
    assert_eq!(
        page.headers["x-auth-request-user"],
        "001234.0123456789abcdef0123456789abcdef.0042"
    );
}
