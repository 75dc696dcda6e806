//! Edges of sessions over real sockets: repeated sign-outs and the
//! state file across a restart, the cap on login states in flight,
//! and an email with two `@` against an allow list.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use applegate::clock::Clock;
use applegate::session::login_state::MAX_IN_FLIGHT;
use common::{Browser, Nav, Options, Stack};

/// A fresh directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("applegate-edge-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The revocations the state file at `path` holds (its gateway stopped).
fn kept(path: &std::path::Path) -> Vec<(String, u64)> {
    let store = applegate::state::Embedded::open(path).unwrap();
    let mut kept: Vec<_> = applegate::state::Store::revoked(&store, 0)
        .unwrap()
        .sessions
        .into_iter()
        .collect();
    kept.sort();
    kept
}

/// Signing out twice with the same cookie keeps one revocation in the
/// state file, and a gateway restarted on the file drops the entry of a
/// session that has expired meanwhile: the live one stays and still
/// refuses the copied cookie.
#[tokio::test]
async fn a_restart_keeps_live_revocations_and_drops_expired_ones() {
    let dir = temp_dir("revocation");
    let path = dir.join("applegate.state");
    let clock = common::manual_clock();
    let opts = || Options {
        extra_toml: format!(
            "[session]\nlifetime = \"1h\"\n\n[state]\npath = \"{}\"\n",
            path.display()
        ),
        clock: clock.clone(),
        ..Default::default()
    };
    let stack = Stack::with(opts());
    let name = stack.session_cookie().to_string();

    let mut early = Browser::new();
    assert_eq!(
        stack.sign_in(&mut early, "early@example.com").await.status,
        200
    );
    clock.advance(1800);
    let mut late = Browser::new();
    assert_eq!(
        stack.sign_in(&mut late, "late@example.com").await.status,
        200
    );
    let late_expiry = clock.now() + 3600;
    let copied = late.cookie(&name).unwrap().clone();

    for _ in 0..2 {
        // The sign-out clears the cookie; a copy of it comes back.
        late.set(copied.clone());
        let page = late.get(&stack.at("/oauth2/sign_out"), Nav::TopLevel).await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let page = early
        .get(&stack.at("/oauth2/sign_out"), Nav::TopLevel)
        .await;
    assert_eq!(page.status, 200);
    late.set(copied.clone());
    assert_eq!(
        late.get(&stack.at("/oauth2/userinfo"), Nav::Api)
            .await
            .status,
        401
    );
    drop(stack);
    assert_eq!(kept(&path).len(), 2, "one entry per session");

    // The early session (1 h from its sign-in) is over; the late one is not.
    clock.advance(1801);
    let stack = Stack::with(opts());
    late.set(copied);
    assert_eq!(
        late.get(&stack.at("/oauth2/userinfo"), Nav::Api)
            .await
            .status,
        401,
        "still revoked after the restart"
    );
    drop(stack);
    let kept = kept(&path);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].1, late_expiry, "the late session's entry stays");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ten sign-in starts, each carrying the login cookies set so far, leave
/// at most MAX_IN_FLIGHT of them: every start adds one and, past the cap,
/// deletes the oldest.
#[tokio::test]
async fn login_states_in_flight_are_capped() {
    let clock = common::manual_clock();
    let stack = Stack::with(Options {
        clock: clock.clone(),
        ..Default::default()
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // name ▶ value, in the order set.
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let (mut added, mut deleted) = (0, 0);
    for i in 0..10 {
        let mut req = http.get(stack.at("/oauth2/start?rd=/"));
        if !jar.is_empty() {
            let header = jar
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("Cookie", header);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 302);
        for set in resp.headers().get_all("set-cookie") {
            let c = cookie::Cookie::parse(set.to_str().unwrap().to_string()).unwrap();
            assert!(c.name().starts_with("applegate-login-"), "{c}");
            assert_eq!(c.path(), Some("/"), "{c}");
            if c.max_age() == Some(cookie::time::Duration::ZERO) {
                deleted += 1;
                assert_eq!(
                    order.first().map(String::as_str),
                    Some(c.name()),
                    "the oldest goes first"
                );
                order.remove(0);
                jar.remove(c.name());
            } else {
                added += 1;
                jar.insert(c.name().to_string(), c.value().to_string());
                order.push(c.name().to_string());
            }
        }
        assert!(
            jar.len() <= MAX_IN_FLIGHT,
            "{} after {} starts",
            jar.len(),
            i + 1
        );
        // Ages are in seconds: one apart, the oldest is unambiguous.
        clock.advance(1);
    }
    assert_eq!((added, deleted), (10, 10 - MAX_IN_FLIGHT));
    assert_eq!(jar.len(), MAX_IN_FLIGHT);
}

/// An address with two `@` whose right end is an allowed domain is not in
/// that domain: refused at sign-in, no session (the emulator, like a
/// careless provider would, issues whatever address is typed).
#[tokio::test]
async fn an_email_with_two_at_signs_is_not_in_the_allowed_domain() {
    let stack = Stack::with(Options {
        extra_toml: "[policy]\nallowed_email_domains = [\"example.com\"]\n".into(),
        ..Default::default()
    });
    let mut b = Browser::new();
    let steps = stack.sign_in_steps(&mut b, "a@evil.com@example.com").await;
    assert_eq!(
        steps.callback_page.status, 403,
        "{}",
        steps.callback_page.body
    );
    assert!(b.cookie(stack.session_cookie()).is_none());
    let steps = stack.sign_in_steps(&mut b, "a@example.com").await;
    assert_eq!(
        steps.callback_page.status, 303,
        "an address in the domain passes"
    );
}
