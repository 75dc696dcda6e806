//! The gateway's cookies: the upstream cannot set them, the login-state
//! cookie is host-only on https, and a cross-site sign-out asks first.

use super::common::raw::Recorder;
use super::common::{Browser, Nav, Options, Stack};
use super::{get, stack};

// ---- item 5: the upstream cannot set our cookies ----

/// `Set-Cookie` for the session or login-state cookie, under any prefix or
/// case, is removed from upstream responses; the app's own cookies pass.
#[test]
fn the_upstream_cannot_set_our_cookies() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    rec.set_extra_headers(
        "Set-Cookie: applegate=planted; Path=/\r\nSet-Cookie: __Host-applegate=planted; Path=/; Secure\r\n\
         Set-Cookie: __Secure-APPLEGATE=planted\r\nSet-Cookie: applegate-login-abcdefghijkl=planted\r\n\
         Set-Cookie: __Host-applegate-login-abcdefghijkl=planted; Path=/; Secure\r\n\
         Set-Cookie: app_session=kept; Path=/\r\nSet-Cookie: applegate_prefs=kept\r\n",
    );
    let r = get(&stack, "GET /public/x HTTP/1.1\r\nHost: app.example.com");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers_named("set-cookie"),
        ["app_session=kept; Path=/", "applegate_prefs=kept"]
    );
}

// ---- item 7: cross-site sign-out ----

/// A cross-site GET of the sign-out URL shows a button instead of signing
/// out; same-site links and the button's POST sign out.
#[tokio::test]
async fn cross_site_sign_out_asks_first() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        ..Options::default()
    });
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    for header in [
        ("Sec-Fetch-Site", "cross-site"),
        ("Origin", "https://evil.example"),
    ] {
        let page = b
            .get_with(&stack.at("/oauth2/sign_out"), Nav::TopLevel, &[header])
            .await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("method=\"post\""), "{}", page.body);
        assert!(page.set_cookies().is_empty(), "no cookie cleared");
        let still = b.get(&stack.at("/reports"), Nav::Api).await;
        assert_eq!(still.status, 200, "still signed in after {header:?}");
    }
    let out = b
        .get_with(
            &stack.at("/oauth2/sign_out"),
            Nav::TopLevel,
            &[("Sec-Fetch-Site", "same-origin")],
        )
        .await;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("signed out"), "{}", out.body);
    assert_eq!(b.get(&stack.at("/reports"), Nav::Api).await.status, 401);
}

// ---- item 8: the same decision everywhere ----

/// On https the login-state cookie is a `__Host-` cookie (path `/`, no
/// `Domain`), even with a shared `cookie_domain`: a sibling subdomain can
/// then not plant one and sign the victim in as itself (login CSRF).
#[test]
fn the_login_state_cookie_is_host_only_on_https() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        public_url: Some("https://app.example.com".into()),
        extra_toml: "[session]\ncookie_name = \"applegate\"\ncookie_domain = \"example.com\"\n"
            .into(),
        ..Options::default()
    });
    let r = get(
        &stack,
        "GET /oauth2/start?rd=/ HTTP/1.1\r\nHost: app.example.com",
    );
    assert_eq!(r.status, 302);
    let set = r.headers_named("set-cookie");
    let login: Vec<&&str> = set.iter().filter(|c| c.contains("-login-")).collect();
    assert_eq!(login.len(), 1, "{set:?}");
    let c = login[0];
    assert!(c.starts_with("__Host-applegate-login-"), "{c}");
    for attr in ["Path=/;", "Secure", "HttpOnly", "SameSite=None"] {
        assert!(
            c.contains(attr) || c.ends_with(attr.trim_end_matches(';')),
            "{c} lacks {attr}"
        );
    }
    assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");
}
