//! Real peers in front of and around the real gateway: nginx
//! (`auth_request`) and Caddy (`forward_auth`) running the configs shipped
//! in `conf/`, and a headless Chromium signing in across two sites. Each
//! tool is a real process on a free loopback port, started by the test and
//! stopped when it ends; a missing tool fails the test with the command
//! that installs it (`.ci/test` installs them all).
//! `cargo test --test peers`.

mod caddy;
mod chromium;
#[path = "../common/mod.rs"]
mod common;
mod nginx;
mod procs;

use std::net::SocketAddr;

use common::{Browser, Nav, Options, Stack};

/// A free port for an ingress in front, and the gateway behind it: the
/// callback comes back through the ingress (`http://localhost:<port>`),
/// the ingress is a trusted proxy (so its `X-Original-URI` /
/// `X-Forwarded-Uri` picks the route), and `/public/` needs no session.
/// The demo app stands for the app behind.
fn gateway_behind() -> (u16, Stack) {
    loop {
        let port = common::free_port();
        let stack = Stack::with(Options {
            public_url: Some(format!("http://localhost:{port}")),
            server_toml: "trusted_proxies = [\"127.0.0.1\"]".into(),
            routes: vec![("/public/", "public")],
            ..Options::default()
        });
        // The ingress binds its port only later: the gateway may have
        // been given the same free port meanwhile.
        if stack.gateway.addr.port() != port {
            return (port, stack);
        }
    }
}

/// The app's address (the demo upstream the kit started).
fn app(stack: &Stack) -> SocketAddr {
    stack.demo.as_ref().expect("the demo app runs").addr
}

/// A shipped config from `conf/`, with each `(from, to)` replaced: only
/// addresses and names, so what runs is what users copy. Each `from` must
/// be there, or the file changed under the test.
fn shipped(file: &str, replace: &[(&str, String)]) -> String {
    let path = common::root().join("conf").join(file);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for (from, to) in replace {
        assert!(
            text.contains(from),
            "conf/{file} no longer has {from:?}: update the test's replacements"
        );
        text = text.replace(from, to);
    }
    text
}

/// The checks every ingress in front must pass, through `front`: without
/// a session a page sends the browser to sign in (and back), an API call
/// gets 401, and the app is never reached; a public path passes without
/// one; signed in through the emulator, the app gets the identity headers;
/// and a client's own identity headers never reach it.
async fn forward_auth_through(front: &str) {
    let at = |path: &str| format!("{front}{path}");
    let mut b = Browser::new();

    // No session: the browser is sent to sign in, coming back here after.
    let page = b.get(&at("/reports/q3?year=2024"), Nav::TopLevel).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(
        page.location().as_deref(),
        Some(at("/oauth2/start?rd=/reports/q3?year=2024").as_str())
    );
    // An API call gets the 401, even with a forged identity.
    let page = b
        .get_with(
            &at("/api/me"),
            Nav::Api,
            &[
                ("X-Auth-Request-Email", "mallory@example.com"),
                ("X-Auth-Request-User", "001234.forged.0001"),
            ],
        )
        .await;
    assert_eq!(page.status, 401, "{}", page.body);
    // The route decides, as reported by the ingress: /public/ passes.
    let page = b.get(&at("/public/notes"), Nav::Api).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = page.json();
    assert_eq!(seen["path"], "/public/notes");
    assert!(
        seen["headers"].get("x-auth-request-user").is_none(),
        "{seen}"
    );

    // Sign in through the emulator, entering at a page: back on that page.
    let home = b
        .sign_in(&at("/reports/q3"), &common::Person::new("jane@example.com"))
        .await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert_eq!(home.url, at("/reports/q3"));
    assert!(
        home.body.contains("Hello, jane@example.com"),
        "{}",
        home.body
    );

    // The app got the identity, once each, whatever the client sent.
    let me = b.get(&at("/oauth2/userinfo"), Nav::Api).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let sub = me.json()["user"]
        .as_str()
        .expect("userinfo has the user")
        .to_string();
    let page = b
        .get_with(
            &at("/api/me"),
            Nav::Api,
            &[
                ("X-Auth-Request-Email", "mallory@example.com"),
                ("X-Auth-Request-User", "001234.forged.0001"),
                ("X-Forwarded-Email", "mallory@example.com"),
                // Headers applegate sends only sometimes: a forged copy
                // must not stand in when it sends none.
                ("X-Auth-Request-Email-Disabled", "false"),
                ("X-Auth-Request-Name", "Mallory"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let headers = &page.json()["headers"];
    let got = |name: &str| headers.get(name).cloned().unwrap_or_default();
    assert_eq!(got("x-auth-request-user"), serde_json::json!([sub]));
    assert_eq!(got("x-forwarded-user"), serde_json::json!([sub]));
    assert_eq!(
        got("x-auth-request-email"),
        serde_json::json!(["jane@example.com"])
    );
    assert_eq!(
        got("x-forwarded-email"),
        serde_json::json!(["jane@example.com"])
    );
    assert_eq!(
        got("x-auth-request-email-verified"),
        serde_json::json!(["true"])
    );
    assert_eq!(
        got("x-auth-request-private-email"),
        serde_json::json!(["false"])
    );
    // Apple sent the name at this first consent: the session has it.
    assert_eq!(
        got("x-auth-request-name"),
        serde_json::json!(["Jane Appleseed"])
    );
    assert!(
        headers.get("x-auth-request-email-disabled").is_none(),
        "a forged header reached the app: {headers}"
    );
    let text = headers.to_string();
    assert!(
        !text.contains("mallory") && !text.contains("forged") && !text.contains("Mallory"),
        "a forged identity reached the app: {headers}"
    );
}
