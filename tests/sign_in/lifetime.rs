//! How long a session lives, over real sockets on a manual clock: the
//! sliding idle timeout under the absolute lifetime, and re-validation
//! with Apple (the emulator's refresh grant) with its grace and its
//! single flight.

use std::sync::Arc;

use super::common::{self, browser::StoredCookie, Browser, Nav, Stack};
use applegate::clock::ManualClock;

/// A stack on a manual clock with `session` as its `[session]` keys.
fn stack(session: &str) -> (Arc<ManualClock>, Stack) {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        extra_toml: format!("[session]\n{session}\n"),
        clock: clock.clone(),
        ..Default::default()
    });
    (clock, stack)
}

/// A browser signed in as jane.
async fn signed_in(stack: &Stack) -> Browser {
    let mut b = Browser::new();
    assert_eq!(stack.sign_in(&mut b, "jane@example.com").await.status, 200);
    b
}

/// `GET url` from `b` as an API call: the status and the session cookie's
/// `Set-Cookie`, if the answer carried one.
async fn call(b: &mut Browser, stack: &Stack, url: &str) -> (u16, Option<String>) {
    let page = b.get(url, Nav::Api).await;
    let name = format!("{}=", stack.session_cookie());
    let set = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&name));
    (page.status, set)
}

/// Token calls the emulator has answered (sign-ins and refresh grants).
fn token_calls(stack: &Stack) -> u64 {
    stack.emulator.hits().token
}

/// A session unused for the idle timeout ends: 401 for an API call, a
/// sign-in redirect that clears the cookie for a browser.
#[tokio::test]
async fn an_unused_session_ends_after_the_idle_timeout() {
    let (clock, stack) = stack("lifetime = \"2h\"\nidle_timeout = \"1h\"");
    let mut b = signed_in(&stack).await;
    let api = stack.at("/api/items");
    let copy = b.cookie(stack.session_cookie()).unwrap().clone();
    clock.advance(3599);
    let (status, set) = call(&mut b, &stack, &api).await;
    assert_eq!((status, set.is_some()), (200, true));
    // The request at 3599 s slid the session; the copy from before it was
    // not, and is an hour idle a second later.
    let mut idle = Browser::new();
    idle.set(copy);
    clock.advance(1);
    assert_eq!(call(&mut idle, &stack, &api).await.0, 401);
    let nav = idle.get(&stack.at("/"), Nav::TopLevel).await;
    assert_eq!(nav.status, 302);
    assert!(nav
        .location()
        .unwrap()
        .starts_with(&stack.at("/oauth2/start")));
    assert!(nav.set_cookies().iter().any(|c| c.contains("Max-Age=0")));
    // The slid one still works, and ends an idle hour after its last use.
    assert_eq!(call(&mut b, &stack, &api).await.0, 200);
    clock.advance(3600);
    assert_eq!(call(&mut b, &stack, &api).await.0, 401);
}

/// A session used every 40 minutes outlives its 1-hour idle timeout but
/// not its 2-hour lifetime. The cookie is re-issued (proxied answers and
/// forward auth's 202 alike) only once a tenth of the idle timeout (6
/// minutes) has passed since the last one, with a Max-Age up to the
/// nearer of the idle end and the absolute end.
#[tokio::test]
async fn a_used_session_slides_up_to_its_lifetime() {
    let (clock, stack) = stack("lifetime = \"2h\"\nidle_timeout = \"1h\"");
    let mut b = signed_in(&stack).await;
    let (api, auth) = (stack.at("/api/items"), stack.at("/oauth2/auth"));
    clock.advance(300);
    assert_eq!(call(&mut b, &stack, &api).await, (200, None));
    clock.advance(100);
    let (status, set) = call(&mut b, &stack, &auth).await;
    assert_eq!(status, 202);
    assert!(set.unwrap().contains("Max-Age=3600"));
    clock.advance(1);
    assert_eq!(call(&mut b, &stack, &auth).await, (202, None));
    assert_eq!(call(&mut b, &stack, &api).await, (200, None));
    clock.advance(1999); // 40 minutes in
    let (status, set) = call(&mut b, &stack, &api).await;
    assert_eq!(status, 200);
    assert!(set.unwrap().contains("Max-Age=3600"));
    clock.advance(2400); // 80 minutes: past the first idle end
    let (status, set) = call(&mut b, &stack, &api).await;
    assert_eq!(status, 200);
    assert!(
        set.unwrap().contains("Max-Age=2400"),
        "the lifetime is nearer"
    );
    clock.advance(2200); // the idle end is past the lifetime: no re-issue
    assert_eq!(call(&mut b, &stack, &api).await, (200, None));
    clock.advance(200); // 2 hours
    assert_eq!(call(&mut b, &stack, &api).await.0, 401);
}

/// Once the interval has passed, one request asks Apple (one refresh
/// grant) and gets the cookie re-issued; the next asks nothing, and nor
/// does a copy of the cookie from before the check (the kept refresh
/// row's check time counts). After the user's token is revoked at Apple,
/// the next due request ends the session for good.
#[tokio::test]
async fn revalidation_asks_apple_once_per_interval_and_a_revoked_token_ends_the_session() {
    let (clock, stack) = stack("revalidate = \"1h\"");
    let mut b = signed_in(&stack).await;
    let api = stack.at("/api/items");
    let before = token_calls(&stack);
    clock.advance(3599);
    assert_eq!(call(&mut b, &stack, &api).await, (200, None));
    assert_eq!(token_calls(&stack), before, "not due yet");
    let stale = b.cookie(stack.session_cookie()).unwrap().clone();
    clock.advance(1);
    let (status, set) = call(&mut b, &stack, &api).await;
    assert_eq!((status, set.is_some()), (200, true));
    assert_eq!(token_calls(&stack), before + 1, "one refresh grant");
    assert_eq!(call(&mut b, &stack, &api).await, (200, None));
    clock.advance(120);
    let mut copy = Browser::new();
    copy.set(stale);
    let (status, set) = call(&mut copy, &stack, &api).await;
    assert_eq!((status, set.is_some()), (200, true));
    assert_eq!(token_calls(&stack), before + 1, "checked already");

    revoke_at_apple(&stack, clock.clone()).await;
    clock.advance(3600);
    assert_eq!(call(&mut b, &stack, &api).await.0, 401);
    assert_eq!(token_calls(&stack), before + 2);
    let cookie = b.cookie(stack.session_cookie()).unwrap().clone();
    let nav = b.get(&stack.at("/"), Nav::TopLevel).await;
    assert_eq!(nav.status, 302, "a browser is sent to sign in");
    let mut again = Browser::new();
    again.set(cookie);
    assert_eq!(call(&mut again, &stack, &api).await.0, 401, "stays dead");
    assert_eq!(token_calls(&stack), before + 2, "revoked: Apple not asked");
}

/// Revokes every refresh token the emulator issued, with the gateway's
/// own credentials, as a user's "Stop using Apple ID" does.
async fn revoke_at_apple(stack: &Stack, clock: Arc<ManualClock>) {
    let apple =
        applegate::apple::Client::new(&stack.config.apple, stack.at("/oauth2/callback"), clock)
            .unwrap();
    let tokens: Vec<String> = stack
        .emulator
        .secrets_seen()
        .into_iter()
        .filter(|t| t.starts_with('r') && t.contains(".0.mrqt."))
        .collect();
    assert!(!tokens.is_empty());
    for t in tokens {
        apple.revoke(&t).await.unwrap();
    }
}

/// Ten requests of one due session at once cause exactly one refresh
/// grant at Apple, and all pass.
#[tokio::test]
async fn concurrent_requests_of_a_due_session_ask_apple_once() {
    let (clock, stack) = stack("revalidate = \"1h\"");
    let b = signed_in(&stack).await;
    let before = token_calls(&stack);
    let c = b.cookie(stack.session_cookie()).unwrap();
    let cookie = format!("{}={}", c.name, c.value);
    clock.advance(3600);
    let http = reqwest::Client::new();
    let all: Vec<_> = (0..10)
        .map(|_| {
            let req = http
                .get(stack.at("/api/items"))
                .header("Cookie", &cookie)
                .header("Accept", "application/json");
            tokio::spawn(req.send())
        })
        .collect();
    for r in all {
        assert_eq!(r.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(token_calls(&stack), before + 1);
}

/// With Apple unreachable, a due session keeps working within the grace
/// (1 hour by default) and is refused once it has passed.
#[tokio::test]
async fn without_an_answer_from_apple_a_session_lasts_the_grace_only() {
    let (clock, stack) = stack("revalidate = \"1h\"");
    let mut b = signed_in(&stack).await;
    let api = format!("{}/api/items", stack.url);
    let (url, name) = (stack.url.clone(), stack.session_cookie().to_string());
    drop(stack.emulator);
    clock.advance(3600);
    let page = b.get(&api, Nav::Api).await;
    assert_eq!(page.status, 200);
    clock.advance(3599);
    assert_eq!(b.get(&api, Nav::Api).await.status, 200);
    clock.advance(1);
    assert_eq!(b.get(&api, Nav::Api).await.status, 401);
    let nav = b.get(&format!("{url}/"), Nav::TopLevel).await;
    assert_eq!(nav.status, 302);
    assert!(b.cookie(&name).is_none(), "cleared");
}

/// A session signed in where no refresh token was kept for it (here:
/// another gateway with the same session secret) works until its first
/// check falls due, then ends: there is nothing to ask Apple with.
#[tokio::test]
async fn a_session_without_a_kept_refresh_token_ends_when_due() {
    let clock = common::manual_clock();
    let opts = |session: &str| common::Options {
        extra_toml: format!("[session]\n{session}\n"),
        clock: clock.clone(),
        ..Default::default()
    };
    let elsewhere = Stack::with(opts(""));
    let stack = Stack::with(opts("revalidate = \"1h\""));
    let signed = signed_in(&elsewhere).await;
    let c = signed.cookie(elsewhere.session_cookie()).unwrap();
    let mut b = Browser::new();
    b.set(StoredCookie {
        host: "localhost".into(),
        ..c.clone()
    });
    let api = stack.at("/api/items");
    assert_eq!(call(&mut b, &stack, &api).await.0, 200);
    clock.advance(3600);
    assert_eq!(call(&mut b, &stack, &api).await.0, 401);
}
