//! The same decision everywhere (issue #7, item 8): `/oauth2/userinfo`
//! applies the policy and the bearer rules, duplicate credentials are
//! refused, return paths stay local; and what the unsigned name and the
//! email can do.

use super::common::raw::Recorder;
use super::common::{Browser, Options, Person, Stack};
use super::{get, native_token};

/// `/oauth2/userinfo` applies the policy, like `/oauth2/auth` and routes.
#[tokio::test]
async fn userinfo_applies_the_policy() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        extra_toml: "[policy]\nallowed_email_domains = [\"example.com\"]\n".into(),
        ..Options::default()
    });
    let mut b = Browser::new();
    let page = b
        .sign_in(
            &stack.at("/oauth2/start?rd=/"),
            &Person::new("mallory@elsewhere.org"),
        )
        .await;
    assert_eq!(page.status, 403, "refused at sign-in");
    // A session minted before the policy changed is the same case: sign
    // in on an open gateway with the same keys, then ask the strict one.
    let open = Stack::with(Options {
        upstream: Some(rec.addr),
        ..Options::default()
    });
    let mut b = Browser::new();
    open.sign_in(&mut b, "mallory@elsewhere.org").await;
    let cookie = b.cookie("applegate").unwrap().value.clone();
    let head = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nCookie: applegate={cookie}")
    };
    assert_eq!(get(&stack, &head("/oauth2/auth")).status, 403);
    assert_eq!(get(&stack, &head("/oauth2/userinfo")).status, 403);
    assert_eq!(get(&open, &head("/oauth2/userinfo")).status, 200);
}

/// Without a bearer route, no endpoint accepts a bearer token.
#[test]
fn userinfo_takes_bearer_tokens_only_where_a_route_does() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        apple_toml: "bundle_ids = [\"com.example.ios\"]".into(),
        ..Options::default()
    });
    let token = native_token(&stack);
    let r = get(
        &stack,
        &format!(
            "GET /oauth2/userinfo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}"
        ),
    );
    assert_eq!(r.status, 401, "{}", r.text());
}

/// Two `Authorization` headers on a bearer route, or two session cookies,
/// are refused: one would be checked and another used.
#[tokio::test]
async fn duplicate_credentials_are_refused() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/api/", "bearer")],
        ..Options::default()
    });
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let cookie = b.cookie("applegate").unwrap().value.clone();
    let ok = get(
        &stack,
        &format!("GET /api/me HTTP/1.1\r\nHost: localhost\r\nCookie: applegate={cookie}"),
    );
    assert_eq!(ok.status, 200);
    rec.take();
    let r = get(
        &stack,
        &format!("GET /api/me HTTP/1.1\r\nHost: localhost\r\nCookie: applegate={cookie}\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = get(
        &stack,
        &format!(
            "GET /me HTTP/1.1\r\nHost: localhost\r\nCookie: applegate={cookie}; applegate=planted"
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(rec.take().is_empty());
}

/// `rd=/..//evil.example` (and its spellings) never comes back as a
/// path starting with `//`: the sign-in returns home instead.
#[tokio::test]
async fn return_paths_never_become_protocol_relative() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        ..Options::default()
    });
    for rd in [
        "/..//evil.example",
        "/.//evil.example",
        "/%2e%2e//evil.example",
    ] {
        let mut b = Browser::new();
        let start = format!(
            "/oauth2/start?rd={}",
            form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        let steps = b
            .sign_in_steps(&stack.at(&start), &Person::new("jane@example.com"))
            .await;
        assert_eq!(steps.callback_page.status, 303);
        assert_eq!(
            steps.callback_page.location().unwrap(),
            stack.at("/"),
            "rd={rd}"
        );
    }
}

// ---- item 7 and 8: what the unsigned name and the email can do ----

/// The first-consent name is unsigned display data: length-capped and
/// without control characters by the time it reaches the upstream.
#[tokio::test]
async fn the_unsigned_name_is_capped_and_cleaned() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        ..Options::default()
    });
    let mut person = Person::new("jane@example.com");
    person.first_name = format!("Jane\u{7}\u{1b}[31m{}", "x".repeat(5000));
    person.last_name = "Apple\u{0}seed".into();
    let mut b = Browser::new();
    let page = b.sign_in(&stack.at("/oauth2/start?rd=/"), &person).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = rec.take().pop().unwrap();
    let name = seen.header("x-auth-request-name").unwrap();
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    assert!(decoded.starts_with("Jane[31mxxx"), "{decoded}");
    assert!(
        decoded.chars().count() <= 200,
        "{} chars",
        decoded.chars().count()
    );
    assert!(!decoded.chars().any(char::is_control), "{decoded:?}");
}

/// `x@privaterelay.appleid.com.` (trailing dot) is a relay address too.
#[tokio::test]
async fn a_relay_address_with_a_trailing_dot_is_a_relay_address() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        extra_toml: "[policy]\nallow_private_relay = false\n".into(),
        ..Options::default()
    });
    let mut b = Browser::new();
    let page = b
        .sign_in(
            &stack.at("/oauth2/start?rd=/"),
            &Person::new("x7k2@privaterelay.appleid.com."),
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(rec.take().is_empty());
}
