//! The callback: the login-state cookie across Apple's cross-site POST,
//! replays, missing or forged login state, and malformed requests.

use super::common::{self, Browser, Nav, Person, Stack};

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
