//! The sign-in round trip through the real gateway, the Apple emulator and
//! the demo upstream, over real sockets.

mod common;

use common::{Browser, Nav, Person, Stack};

fn header<'a>(echo: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

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

/// The login-state cookie is SameSite=None; Secure; HttpOnly (with Path=/
/// and no Domain, as `__Host-` requires on https), so it travels with
/// Apple's cross-site POST, on which the (Lax) session cookie does not; the
/// session cookie is Lax and HttpOnly.
#[tokio::test]
async fn login_state_survives_the_cross_site_post_and_the_session_is_lax() {
    let stack = Stack::start();
    let mut b = Browser::new();
    // A first sign-in, so the browser holds a Lax session cookie.
    let page = stack.sign_in(&mut b, "jane@example.com").await;
    assert_eq!(page.status, 200);
    let session = b
        .cookie(stack.session_cookie())
        .expect("session cookie")
        .clone();
    assert_eq!(session.same_site, common::browser::SameSite::Lax);
    assert!(session.http_only);
    assert_eq!(session.path, "/");

    let start = b.get(&stack.at("/oauth2/start?rd=/x"), Nav::TopLevel).await;
    let login = b
        .cookie_starting("applegate-login-")
        .expect("login-state cookie")
        .clone();
    assert_eq!(login.same_site, common::browser::SameSite::None);
    assert!(login.secure && login.http_only);
    assert_eq!(login.path, "/", "__Host- rules: Path=/ and no Domain");
    let set = start.set_cookies().join("\n");
    assert!(
        set.contains("Max-Age=600"),
        "lives at most 10 minutes: {set}"
    );

    let steps = b
        .sign_in_steps(&start.location().unwrap(), &Person::new("jane@example.com"))
        .await;
    assert_eq!(
        steps.callback_page.status, 303,
        "{}",
        steps.callback_page.body
    );
    assert_eq!(
        b.last_sent,
        vec![login.name.clone()],
        "only the SameSite=None cookie crossed sites"
    );
    assert!(
        b.cookie_starting("applegate-login-").is_none(),
        "the login state is single use and cleared"
    );
}

/// The same callback posted twice: the second gets 4xx and no session.
#[tokio::test]
async fn replayed_callback_is_refused() {
    let stack = Stack::start();
    let mut b = Browser::new();
    let start = b.get(&stack.at("/oauth2/start?rd=/"), Nav::TopLevel).await;
    let login = b.cookie_starting("applegate-login-").unwrap().clone();
    let steps = b
        .sign_in_steps(&start.location().unwrap(), &Person::new("jane@example.com"))
        .await;
    assert_eq!(steps.callback_page.status, 303);

    // An attacker who captured the whole POST (cookie included) replays it.
    let mut attacker = Browser::new();
    attacker.set(login);
    let replay = attacker
        .post_form(&steps.callback, &steps.fields, stack.emulator.base_url())
        .await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("Sign-in expired"));
    assert!(attacker.cookie(stack.session_cookie()).is_none());
}

/// A callback without its login-state cookie (a CSRF or login fixation
/// attempt, or a different browser) gets 4xx and no session.
#[tokio::test]
async fn callback_without_login_state_is_refused() {
    let stack = Stack::start();
    let mut victim = Browser::new();
    let start = victim
        .get(&stack.at("/oauth2/start?rd=/"), Nav::TopLevel)
        .await;
    // The attacker gets a code for their own account and makes the victim's
    // browser post it... but the attacker's browser never had the cookie.
    let mut attacker = Browser::new();
    let at = attacker
        .through_apple(
            &start.location().unwrap(),
            &Person::new("mallory@example.com"),
        )
        .await;
    let callback = at.callback.clone();
    let page = attacker.post_back(&at).await;
    assert_eq!(page.status, 400);
    assert!(attacker.cookie(stack.session_cookie()).is_none());

    // A made-up state is refused the same way.
    let forged = vec![
        ("state".to_string(), "A".repeat(22)),
        ("code".to_string(), "c123".to_string()),
    ];
    let page = attacker
        .post_form(&callback, &forged, stack.emulator.base_url())
        .await;
    assert_eq!(page.status, 400);
    let page = attacker
        .post_form(
            &callback,
            &[("code".into(), "c".into())],
            stack.emulator.base_url(),
        )
        .await;
    assert_eq!(page.status, 400);
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

/// The callback body is capped, and wrong methods and content types are refused.
#[tokio::test]
async fn malformed_callbacks_get_4xx() {
    let stack = Stack::start();
    let http = reqwest::Client::new();
    let big = "a".repeat(100 * 1024);
    let r = http
        .post(stack.at("/oauth2/callback"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("state={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = http.get(stack.at("/oauth2/callback")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = http
        .post(stack.at("/oauth2/callback"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(stack.at("/oauth2/callback"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("state=a&state=b&code=%ff%fe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http.get(stack.at("/oauth2/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
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
