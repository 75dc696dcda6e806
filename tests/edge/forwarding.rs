//! Forwarding headers: replaced from an untrusted peer, extended from a
//! trusted proxy, and forward auth's original URI and route.

use super::common::raw::Recorder;
use super::common::{Options, Stack};
use super::{get, native_token, stack};

// ---- item 3: forwarding headers ----

/// From an untrusted peer, client-sent forwarding headers are replaced by
/// the gateway's own: peer address, real scheme, canonical host.
#[test]
fn client_forwarding_headers_are_replaced() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let r = get(
        &stack,
        "GET /public/x HTTP/1.1\r\nHost: App.Example.com.\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
         X-Forwarded-Proto: https\r\nX-Forwarded-Host: admin.example.com\r\nX-Forwarded-Port: 443\r\nForwarded: for=6.6.6.6\r\n\
         X_Forwarded_For: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nX_Forwarded_Host: admin.example.com\r\nX_Forwarded_Proto: https",
    );
    assert_eq!(r.status, 200);
    let seen = rec.take().pop().unwrap();
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.all("x-forwarded-host"), ["app.example.com"]);
    assert_eq!(seen.all("x-forwarded-port"), ["80"]);
    assert_eq!(
        seen.all("forwarded"),
        ["for=127.0.0.1;host=\"app.example.com\";proto=http"]
    );
    // WSGI, PHP and Rack read `X_Real_IP` as `X-Real-IP` and merge them.
    for n in [
        "x_forwarded_for",
        "x_real_ip",
        "x_forwarded_host",
        "x_forwarded_proto",
    ] {
        assert!(seen.header(n).is_none(), "{n} reached the upstream");
    }
}

/// From a trusted proxy, they are kept and extended.
#[test]
fn a_trusted_proxys_forwarding_headers_are_extended() {
    let rec = Recorder::start();
    let stack = stack(&rec, "trusted_proxies = [\"127.0.0.0/8\"]");
    let r = get(
        &stack,
        "GET /public/x HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 198.51.100.7\r\nX_Forwarded_For: 6.6.6.6",
    );
    assert_eq!(r.status, 200);
    let seen = rec.take().pop().unwrap();
    assert_eq!(seen.all("x-forwarded-for"), ["198.51.100.7, 127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.all("x-real-ip"), ["198.51.100.7"]);
    assert!(
        seen.header("x_forwarded_for").is_none(),
        "never a proxy's spelling"
    );
}

/// Forward auth reads `X-Original-URI` only from a trusted proxy, and
/// refuses an ambiguous one with the request-path rules.
#[test]
fn forward_auth_takes_the_original_uri_only_from_trusted_proxies() {
    let rec = Recorder::start();
    let untrusted = stack(&rec, "");
    let head = "GET /oauth2/auth HTTP/1.1\r\nHost: app.example.com\r\nX-Original-URI: /admin/..%2fpublic/x";
    assert_eq!(
        get(&untrusted, head).status,
        401,
        "ignored from anyone else"
    );
    let trusted = stack(&rec, "trusted_proxies = [\"127.0.0.1\"]");
    let r = get(&trusted, head);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = get(
        &trusted,
        "GET /oauth2/auth HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-Uri: /a/..;/b",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = get(
        &trusted,
        "GET /oauth2/auth HTTP/1.1\r\nHost: app.example.com\r\nX-Original-URI: /reports?q=1",
    );
    assert_eq!(r.status, 401, "a clean URI goes on to the identity check");
}

/// Forward auth decides on the original request's route: a bearer token
/// opens only bearer routes, a public route needs nothing.
#[test]
fn forward_auth_decides_on_the_original_route() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/public/", "public"), ("/api/", "bearer")],
        apple_toml: "bundle_ids = [\"com.example.ios\"]".into(),
        server_toml: "trusted_proxies = [\"127.0.0.1\"]".into(),
        ..Options::default()
    });
    let token = native_token(&stack);
    let ask = |uri: &str, bearer: bool| {
        let auth = if bearer {
            format!("\r\nAuthorization: Bearer {token}")
        } else {
            String::new()
        };
        get(
            &stack,
            &format!(
                "GET /oauth2/auth HTTP/1.1\r\nHost: app.example.com\r\nX-Original-URI: {uri}{auth}"
            ),
        )
        .status
    };
    assert_eq!(ask("/api/me", true), 202, "a bearer route takes the token");
    assert_eq!(ask("/reports", true), 401, "a session route does not");
    assert_eq!(
        ask("/API/me", true),
        401,
        "nor does any reading that is a session route"
    );
    assert_eq!(ask("/public/x", false), 202, "a public route needs nothing");
    assert_eq!(ask("/reports", false), 401);
}
