//! Revoking at Apple: `POST /oauth2/revoke` (account deletion) and
//! `apple.revoke_on_sign_out`, through the real gateway to the emulator's
//! `/auth/revoke`.

use std::sync::Arc;

use super::common::{self, Browser, Nav, Person, Stack};
use applegate::apple::{self, AppleError};
use applegate::clock::SharedClock;

/// What the gateway answered a revoke.
struct Answer {
    status: u16,
    json: serde_json::Value,
    set_cookies: Vec<String>,
}

/// `POST <base>/oauth2/revoke` as an app's `fetch` sends it: JSON wanted,
/// `Origin: <base>`, the session cookie `cookie` (name, value) if any, and
/// `extra` headers (which replace those).
async fn revoke(base: &str, cookie: Option<(&str, &str)>, extra: &[(&str, &str)]) -> Answer {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("accept", "application/json".parse().unwrap());
    headers.insert("origin", base.parse().unwrap());
    if let Some((name, value)) = cookie {
        headers.insert("cookie", format!("{name}={value}").parse().unwrap());
    }
    for (k, v) in extra {
        let name: reqwest::header::HeaderName = k.parse().unwrap();
        headers.insert(name, v.parse().unwrap());
    }
    let req = reqwest::Client::new()
        .post(format!("{base}/oauth2/revoke"))
        .headers(headers);
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let set_cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let json = resp.json().await.unwrap_or_default();
    Answer {
        status,
        json,
        set_cookies,
    }
}

/// `b`'s session cookie on `stack`, as (name, value).
fn session(stack: &Stack, b: &Browser) -> (String, String) {
    let c = b.cookie(stack.session_cookie()).expect("signed in");
    (c.name.clone(), c.value.clone())
}

/// Revokes as `b`'s app would, on `stack`.
async fn revoke_as(stack: &Stack, b: &Browser) -> Answer {
    let (name, value) = session(stack, b);
    revoke(&stack.url, Some((&name, &value)), &[]).await
}

/// The refresh tokens the emulator issued, oldest first.
fn refresh_tokens(stack: &Stack) -> Vec<String> {
    let issued = stack.emulator.secrets_seen();
    issued
        .into_iter()
        .filter(|t| t.starts_with('r') && t.contains(".0.mrqt."))
        .collect()
}

/// The gateway's own Apple client (the real one), to ask the emulator
/// whether a refresh token still stands.
fn apple_client(stack: &Stack, clock: SharedClock) -> apple::Client {
    apple::Client::new(&stack.config.apple, stack.at("/oauth2/callback"), clock).unwrap()
}

/// The status of `b`'s API call through the gateway at `base`.
async fn status(b: &mut Browser, base: &str) -> u16 {
    b.get(&format!("{base}/"), Nav::Api).await.status
}

/// A browser signed in as `email`.
async fn signed_in(stack: &Stack, email: &str) -> Browser {
    let mut b = Browser::new();
    stack.sign_in(&mut b, email).await;
    b
}

/// `POST /oauth2/revoke` reaches Apple's `/auth/revoke` with the session's
/// token (dead there afterwards), ends every session of the user and only
/// theirs, forgets the name and clears the cookie; `{"revoked":true}`.
#[tokio::test]
async fn revoke_ends_the_authorization_at_apple_and_every_session() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    let mut a = signed_in(&stack, "jane@example.com").await;
    let token_a = refresh_tokens(&stack).remove(0);
    let mut b = signed_in(&stack, "jane@example.com").await;
    let mut other = signed_in(&stack, "john@example.com").await;
    let apple = apple_client(&stack, clock.clone());
    assert!(apple.refresh(&token_a).await.is_ok(), "stands before");
    assert_eq!(stack.emulator.hits().revoke, 0);

    let r = revoke_as(&stack, &a).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json, serde_json::json!({"revoked": true}));
    assert!(
        r.set_cookies.iter().any(|c| c.contains("Max-Age=0")),
        "cookie cleared: {:?}",
        r.set_cookies
    );
    assert_eq!(stack.emulator.hits().revoke, 1, "Apple was asked");
    assert!(
        matches!(
            apple.refresh(&token_a).await,
            Err(AppleError::InvalidGrant { .. })
        ),
        "the token is dead at Apple"
    );
    assert_eq!(status(&mut a, &stack.url).await, 401, "this session");
    assert_eq!(status(&mut b, &stack.url).await, 401, "the other session");
    assert_eq!(status(&mut other, &stack.url).await, 200, "another user");
    assert_eq!(revoke_as(&stack, &a).await.status, 401, "once is all");

    clock.advance(1);
    let mut person = Person::new("jane@example.com");
    (person.first_name, person.last_name) = ("Again".into(), "Later".into());
    let mut again = Browser::new();
    again
        .sign_in(&stack.at("/oauth2/start?rd=/"), &person)
        .await;
    let echo = again.get(&stack.at("/"), Nav::Api).await.json();
    // As at Apple, a revoked authorization makes the next sign-in a first
    // consent, so the new name arrives and replaces the forgotten one.
    assert_eq!(
        super::header(&echo, "x-auth-request-name"),
        Some("Again Later"),
        "the next sign-in is a first consent again"
    );
}

/// A browser's form post from our own page is sent to `rd`, signed out.
#[tokio::test]
async fn a_browser_form_post_is_sent_to_rd() {
    let stack = Stack::start();
    let mut b = signed_in(&stack, "jane@example.com").await;
    let page = b
        .post_form(&stack.at("/oauth2/revoke?rd=/bye"), &[], &stack.url)
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location().unwrap(), stack.at("/bye"));
    assert!(b.cookie(stack.session_cookie()).is_none(), "cookie cleared");
    assert_eq!(stack.emulator.hits().revoke, 1);
}

/// Another site's POST (even one that carries the cookie) gets 403 and
/// changes nothing; no session gets 401; only POST.
#[tokio::test]
async fn foreign_or_anonymous_revokes_change_nothing() {
    let stack = Stack::start();
    let mut b = signed_in(&stack, "jane@example.com").await;
    let token = refresh_tokens(&stack).remove(0);
    let (name, value) = session(&stack, &b);
    let cookie = Some((name.as_str(), value.as_str()));
    for (what, headers) in [
        ("foreign Origin", vec![("Origin", "http://evil.example")]),
        ("cross-site fetch", vec![("Sec-Fetch-Site", "cross-site")]),
    ] {
        let r = revoke(&stack.url, cookie, &headers).await;
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.json["error"], "forbidden", "{what}");
        assert!(r.set_cookies.is_empty(), "{what}");
    }
    let r = revoke(&stack.url, None, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["error"], "unauthorized");
    let get = b.get(&stack.at("/oauth2/revoke"), Nav::Api).await;
    assert_eq!(get.status, 405);
    assert_eq!(stack.emulator.hits().revoke, 0, "Apple was not asked");
    assert_eq!(status(&mut b, &stack.url).await, 200, "still signed in");
    let apple = apple_client(&stack, applegate::clock::system());
    assert!(apple.refresh(&token).await.is_ok(), "the token stands");
}

/// Apple unreachable: 502 that says nothing was revoked, and nothing
/// changed, so the same call can be retried: still signed in.
#[tokio::test]
async fn apple_unreachable_revokes_nothing() {
    let Stack {
        gateway: _gateway,
        emulator,
        demo: _demo,
        config,
        url,
        ..
    } = Stack::start();
    let mut b = Browser::new();
    b.sign_in(
        &format!("{url}/oauth2/start?rd=/"),
        &Person::new("jane@example.com"),
    )
    .await;
    drop(emulator);
    let c = b.cookie(&config.session.cookie_name).unwrap().clone();
    let r = revoke(&url, Some((&c.name, &c.value)), &[]).await;
    assert_eq!(r.status, 502, "{}", r.json);
    assert_eq!(r.json["revoked"], false);
    assert_eq!(r.json["error"], "apple_unavailable");
    assert!(
        r.json["message"].as_str().unwrap().contains("not revoked"),
        "{}",
        r.json
    );
    assert!(r.set_cookies.is_empty(), "cookie kept");
    assert_eq!(status(&mut b, &url).await, 200, "still signed in");
}

/// A session that kept no Apple token (here: made by another gateway with
/// the same session secret, as one signed in before tokens were kept):
/// 409 saying Apple could not be told, and signed out everywhere anyway.
#[tokio::test]
async fn without_a_kept_token_apple_cannot_be_told() {
    let clock = common::manual_clock();
    let opts = || common::Options {
        clock: clock.clone(),
        ..Default::default()
    };
    let (stack, elsewhere) = (Stack::with(opts()), Stack::with(opts()));
    let mut here = signed_in(&stack, "jane@example.com").await;
    let old = signed_in(&elsewhere, "jane@example.com").await;
    let (name, value) = session(&elsewhere, &old);
    let r = revoke(&stack.url, Some((&name, &value)), &[]).await;
    assert_eq!(r.status, 409, "{}", r.json);
    assert_eq!(r.json["revoked"], false);
    assert_eq!(r.json["error"], "no_refresh_token");
    assert!(r.set_cookies.iter().any(|c| c.contains("Max-Age=0")));
    assert_eq!(stack.emulator.hits().revoke, 0);
    assert_eq!(status(&mut here, &stack.url).await, 401, "signed out here");
}

/// `apple.revoke_on_sign_out = true`: sign-out revokes the token at Apple
/// too (not without the key); with Apple unreachable, sign-out still works.
#[tokio::test]
async fn revoke_on_sign_out_revokes_at_apple() {
    let plain = Stack::start();
    let mut b = signed_in(&plain, "jane@example.com").await;
    b.get(&plain.at("/oauth2/sign_out"), Nav::TopLevel).await;
    assert_eq!(plain.emulator.hits().revoke, 0, "off by default");

    let with = || {
        Stack::with(common::Options {
            apple_toml: "revoke_on_sign_out = true".into(),
            ..Default::default()
        })
    };
    let stack = with();
    let mut b = signed_in(&stack, "jane@example.com").await;
    let token = refresh_tokens(&stack).remove(0);
    let out = b.get(&stack.at("/oauth2/sign_out"), Nav::TopLevel).await;
    assert_eq!(out.status, 200);
    assert_eq!(stack.emulator.hits().revoke, 1);
    let apple = apple_client(&stack, Arc::new(applegate::clock::SystemClock));
    assert!(matches!(
        apple.refresh(&token).await,
        Err(AppleError::InvalidGrant { .. })
    ));

    let Stack {
        gateway: _gateway,
        emulator,
        demo: _demo,
        url,
        ..
    } = with();
    let mut b = Browser::new();
    b.sign_in(
        &format!("{url}/oauth2/start?rd=/"),
        &Person::new("jane@example.com"),
    )
    .await;
    drop(emulator);
    let out = b
        .get(&format!("{url}/oauth2/sign_out"), Nav::TopLevel)
        .await;
    assert_eq!(out.status, 200, "signed out though Apple is away");
    assert_eq!(status(&mut b, &url).await, 401);
}
