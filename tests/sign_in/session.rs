//! The session afterwards: no session on APIs, tampered or foreign
//! cookies, spoofed identity headers, and sign-out.

use super::common::{self, Browser, Nav, Person, Stack};

/// An API call without a session gets 401 JSON, never a redirect; so do
/// POSTs and XHRs that accept HTML.
#[tokio::test]
async fn api_call_without_session_gets_401() {
    let stack = Stack::start();
    let mut b = Browser::new();
    let page = b.get(&stack.at("/api/items"), Nav::Api).await;
    assert_eq!(page.status, 401);
    assert_eq!(page.json()["error"], "unauthorized");
    assert!(page.headers.get("location").is_none());
    let xhr = b
        .get_with(
            &stack.at("/api/items"),
            Nav::TopLevel,
            &[("X-Requested-With", "XMLHttpRequest")],
        )
        .await;
    assert_eq!(xhr.status, 401);
    let fetch = b
        .get_with(
            &stack.at("/api/items"),
            Nav::Api,
            &[("Accept", "text/html"), ("Sec-Fetch-Mode", "cors")],
        )
        .await;
    assert_eq!(fetch.status, 401);
    let post = reqwest::Client::new()
        .post(stack.at("/api/items"))
        .header("Accept", "text/html")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401);
}

/// A tampered session cookie, or one sealed under another key, gets 401
/// (API) or a sign-in redirect that clears it (browser).
#[tokio::test]
async fn tampered_or_foreign_session_cookies_are_refused() {
    let stack = Stack::start();
    let other = Stack::with(common::Options {
        session_secret: "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100".into(),
        ..Default::default()
    });
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let good = b.cookie(stack.session_cookie()).unwrap().clone();
    assert_eq!(b.get(&stack.at("/"), Nav::Api).await.status, 200);

    let mut flipped = good.clone();
    let mut bytes = flipped.value.into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    flipped.value = String::from_utf8(bytes).unwrap();
    let mut truncated = good.clone();
    truncated.value.truncate(good.value.len() - 4);

    // A real session from a gateway with another secret.
    let mut ob = Browser::new();
    ob.sign_in(
        &other.at("/oauth2/start?rd=/"),
        &Person::new("jane@example.com"),
    )
    .await;
    let mut foreign = ob.cookie(other.session_cookie()).unwrap().clone();
    foreign.host = "localhost".into();

    for (what, c) in [
        ("flipped", flipped),
        ("truncated", truncated),
        ("foreign key", foreign),
    ] {
        let mut t = Browser::new();
        t.set(c);
        let api = t.get(&stack.at("/"), Nav::Api).await;
        assert_eq!(api.status, 401, "{what}");
        let nav = t.get(&stack.at("/"), Nav::TopLevel).await;
        assert_eq!(nav.status, 302, "{what}");
        assert!(
            nav.location()
                .unwrap()
                .starts_with(&stack.at("/oauth2/start")),
            "{what}"
        );
        assert!(
            nav.set_cookies().iter().any(|c| c.contains("Max-Age=0")),
            "{what}: bad cookie cleared"
        );
    }
}

/// Identity headers a client sends, in any case or spelling, never reach
/// the upstream: not without a session, not on a public route, and not
/// beside the gateway's own.
#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let stack = Stack::with(common::Options {
        routes: vec![("/public/", "public")],
        ..Default::default()
    });
    let spoof: &[(&str, &str)] = &[
        ("X-Auth-Request-User", "admin"),
        ("x-auth-request-email", "ceo@example.com"),
        ("X_Auth_Request_Email_Verified", "true"),
        ("X-AUTH-REQUEST-PRIVATE-EMAIL", "false"),
        ("x_auth_request_name", "Mallory"),
        ("X-Forwarded-User", "admin"),
        ("X_Forwarded_Email", "ceo@example.com"),
        ("X-Auth-Request-Groups", "admins"),
        ("X-Applegate-Assertion", "forged"),
    ];
    let mut b = Browser::new();
    // Public route, no session: nothing identity-like arrives.
    let echo = b
        .get_with(&stack.at("/public/page"), Nav::Api, spoof)
        .await
        .json();
    for (name, _) in spoof {
        let n = name.to_ascii_lowercase();
        assert!(
            echo["headers"].get(&n).is_none(),
            "{name} reached a public upstream: {echo}"
        );
    }
    // Signed in: only the gateway's values arrive, once each.
    stack.sign_in(&mut b, "jane@example.com").await;
    let echo = b
        .get_with(&stack.at("/private"), Nav::Api, spoof)
        .await
        .json();
    let h = &echo["headers"];
    assert_eq!(
        h["x-auth-request-email"],
        serde_json::json!(["jane@example.com"])
    );
    assert_eq!(
        h["x-forwarded-email"],
        serde_json::json!(["jane@example.com"])
    );
    assert_eq!(
        h["x-auth-request-name"],
        serde_json::json!(["Jane Appleseed"])
    );
    assert_ne!(h["x-auth-request-user"][0], "admin");
    assert_eq!(h["x-auth-request-user"].as_array().unwrap().len(), 1);
    for name in [
        "x_auth_request_email",
        "x_forwarded_email",
        "x_auth_request_name",
        "x-auth-request-groups",
        "x-applegate-assertion",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {echo}");
    }
}

/// Sign-out clears the cookie and revokes the session, so a copy of the
/// old cookie no longer works either.
#[tokio::test]
async fn sign_out_ends_the_session() {
    let stack = Stack::start();
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let stolen = b.cookie(stack.session_cookie()).unwrap().clone();
    assert_eq!(b.get(&stack.at("/"), Nav::Api).await.status, 200);
    let out = b.get(&stack.at("/oauth2/sign_out"), Nav::TopLevel).await;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("signed out"));
    assert!(b.cookie(stack.session_cookie()).is_none(), "cookie cleared");
    assert_eq!(b.get(&stack.at("/"), Nav::Api).await.status, 401);
    let mut thief = Browser::new();
    thief.set(stolen);
    assert_eq!(
        thief.get(&stack.at("/"), Nav::Api).await.status,
        401,
        "revoked, not just forgotten"
    );
    // sign_out with a local rd redirects there; an off-site rd is ignored.
    let r = b
        .get(&stack.at("/oauth2/sign_out?rd=/bye"), Nav::TopLevel)
        .await;
    assert_eq!(r.location().unwrap(), stack.at("/bye"));
    let r = b
        .get(
            &stack.at("/oauth2/sign_out?rd=https://evil.example"),
            Nav::TopLevel,
        )
        .await;
    assert_eq!(r.status, 200);
}
