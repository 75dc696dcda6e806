//! The edge, over real sockets: forwarding headers, head limits, the
//! connection cap, pipelining, our own error pages, cookies the upstream
//! may not set, sign-in rate limits, cross-site sign-out, and the same
//! decision at `/oauth2/userinfo` as everywhere.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::raw::{self, Recorder};
use common::{Browser, Nav, Options, Person, Stack};

/// A stack with every route on a recording upstream, `/public/` public.
fn stack(rec: &Recorder, server_toml: &str) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/public/", "public")],
        server_toml: server_toml.into(),
        ..Options::default()
    })
}

fn get(stack: &Stack, head: &str) -> raw::Reply {
    raw::send(stack.gateway.addr, head)
}

/// An id_token from the app `com.example.ios`, as a native client sends it.
fn native_token(stack: &Stack) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    stack.emulator.sign(&serde_json::json!({
        "iss": stack.emulator.base_url(), "aud": "com.example.ios", "exp": now + 3600, "iat": now,
        "sub": "001234.0123456789abcdef0123456789abcdef.0042", "email": "a@example.com",
        "email_verified": "true",
    }))
}

/// Reads what `s` gets until the gateway closes it, and checks it was a
/// 408 within 4 s of `started`.
fn expect_408(mut s: TcpStream, started: Instant) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(raw::parse(&got).map(|r| r.status), Some(408), "{got:?}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

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

// ---- item 4: limits at the edge ----

/// One header line a second does not hold a connection open: the head has
/// one deadline, and the client gets 408.
#[test]
fn a_slow_head_is_cut_at_its_deadline() {
    let rec = Recorder::start();
    let stack = stack(&rec, "head_timeout = \"1s\"");
    let mut s = TcpStream::connect(stack.gateway.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.example.com\r\n")
        .unwrap();
    let mut got = Vec::new();
    // Trickle a header byte every 300 ms for at most 6 s.
    for i in 0..20 {
        if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .is_err()
        {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if got.ends_with(b"}") || started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let reply = raw::parse(&got).expect("an answer before the head was done");
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(rec.take().is_empty());
}

/// A parser skips blank lines before a request line; they must not switch
/// the head limits off (a guard that took the first blank line for the
/// end of the head would wave through a 900 KB or endless head).
#[test]
fn leading_blank_lines_do_not_lift_the_head_limits() {
    let rec = Recorder::start();
    let stack = stack(&rec, "head_timeout = \"1s\"");
    let big = "a".repeat(100 * 1024);
    let reply = raw::send_bytes(
        stack.gateway.addr,
        format!("\r\n\r\nGET /public/x HTTP/1.1\r\nHost: app.example.com\r\nX-Pad: {big}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(reply.status, 431);
    let mut s = TcpStream::connect(stack.gateway.addr).unwrap();
    let started = Instant::now();
    s.write_all(b"\r\n\r\nGET /public/x HTTP/1.1\r\n").unwrap();
    expect_408(s, started);
    assert!(rec.take().is_empty());
}

/// A connection that sends nothing holds its place for `head_timeout`,
/// not pingora's 60 s.
#[test]
fn a_silent_connection_is_closed_at_the_head_deadline() {
    let rec = Recorder::start();
    let stack = stack(&rec, "head_timeout = \"1s\"");
    let started = Instant::now();
    let s = TcpStream::connect(stack.gateway.addr).unwrap();
    expect_408(s, started);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "not before the deadline: {:?}",
        started.elapsed()
    );
}

/// `Transfer-Encoding` with `Content-Length` (a smuggling shape, RFC 9112
/// §6.1) closes the connection after the answer: what follows is never
/// read as a second request.
#[test]
fn a_request_that_must_close_the_connection_does() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let all = raw::exchange(
        stack.gateway.addr,
        b"POST /public/a HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: app.example.com\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&all);
    assert!(text.matches("HTTP/1.1 ").count() <= 1, "{text}");
    let targets: Vec<String> = rec.take().into_iter().map(|s| s.target).collect();
    assert!(
        !targets.contains(&"/public/smuggled".to_string()),
        "{targets:?}"
    );
}

/// A head over `max_head_size` gets 431 and never reaches the upstream.
#[test]
fn an_oversized_head_gets_431() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let big = "a".repeat(40 * 1024);
    let reply = raw::send_bytes(
        stack.gateway.addr,
        format!("GET /public/x HTTP/1.1\r\nHost: app.example.com\r\nX-Big: {big}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(reply.status, 431);
    assert!(reply.header("server").is_none());
    assert!(rec.take().is_empty());
    // Just under the cap passes.
    let fine = "a".repeat(30 * 1024);
    let reply = get(
        &stack,
        &format!("GET /public/x HTTP/1.1\r\nHost: app.example.com\r\nX-Big: {fine}"),
    );
    assert_eq!(reply.status, 200);
}

/// More header fields than `max_headers` get 431.
#[test]
fn too_many_header_fields_get_431() {
    let rec = Recorder::start();
    let stack = stack(&rec, "max_headers = 20");
    let many: String = (0..30).map(|i| format!("\r\nX-H{i}: v")).collect();
    let reply = get(
        &stack,
        &format!("GET /public/x HTTP/1.1\r\nHost: app.example.com{many}"),
    );
    assert_eq!(reply.status, 431, "{}", reply.text());
    assert!(rec.take().is_empty());
}

/// An idle keep-alive connection is closed after `keepalive_timeout`,
/// whatever the client asks for in `Keep-Alive` (pingora would take its
/// `timeout=`, and `0` there means no limit at all).
#[test]
fn idle_keep_alive_connections_are_closed() {
    let rec = Recorder::start();
    let stack = stack(&rec, "keepalive_timeout = \"1s\"");
    for asked in [
        "",
        "\r\nKeep-Alive: timeout=0",
        "\r\nKeep-Alive: timeout=3600",
    ] {
        let mut s = TcpStream::connect(stack.gateway.addr).unwrap();
        // Two requests: the second one's wait is the one after a request.
        for _ in 0..2 {
            s.write_all(
                format!("GET /public/x HTTP/1.1\r\nHost: app.example.com{asked}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(
                raw::parse(&buf[..n]).is_some_and(|r| r.status == 200),
                "{asked:?}"
            );
        }
        let idle = Instant::now();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed, not answered ({asked:?})");
        let waited = idle.elapsed();
        assert!(
            waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
            "{asked:?}: {waited:?}"
        );
    }
}

/// Connections over `max_connections` are closed at once; the others work.
#[test]
fn connections_over_the_cap_are_closed() {
    let rec = Recorder::start();
    let stack = stack(&rec, "max_connections = 3");
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(stack.gateway.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(stack.gateway.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.example.com\r\n\r\n");
    let mut buf = [0u8; 64];
    assert_eq!(
        extra.read(&mut buf).unwrap_or(0),
        0,
        "closed without an answer"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let r = get(&stack, "GET /public/x HTTP/1.1\r\nHost: app.example.com");
    assert_eq!(r.status, 200, "served again once under the cap");
}

/// Pipelined requests are answered, in order.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let all = raw::exchange(
        stack.gateway.addr,
        b"GET /public/1 HTTP/1.1\r\nHost: app.example.com\r\n\r\nGET /public/2 HTTP/1.1\r\nHost: app.example.com\r\n\r\nGET /public/3 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    let targets: Vec<String> = rec.take().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/public/1", "/public/2", "/public/3"]);
}

/// Error pages are the gateway's: a malformed request and an upstream
/// that is down get our JSON, without `Server: Pingora`.
#[test]
fn error_pages_are_ours() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let r = raw::send_bytes(
        stack.gateway.addr,
        b"GET /public/x HTTP/1.1\r\nHost app.example.com\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.header("server").is_none(), "{:?}", r.headers);
    assert!(r.text().contains("bad_request"), "{}", r.text());
    let down = Stack::with(Options {
        upstream: Some("127.0.0.1:1".parse().unwrap()),
        routes: vec![("/public/", "public")],
        ..Options::default()
    });
    let r = get(&down, "GET /public/x HTTP/1.1\r\nHost: app.example.com");
    assert_eq!(r.status, 502);
    assert!(r.header("server").is_none(), "{:?}", r.headers);
    assert!(r.text().contains("bad_gateway"), "{}", r.text());
}

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

// ---- item 6: sign-in rate limits ----

/// `/oauth2/start` is limited per client (429 with `Retry-After`) while
/// signed-in traffic is not.
#[tokio::test]
async fn sign_in_is_rate_limited_per_client_but_signed_in_traffic_is_not() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        sign_in_per_client: 3,
        ..Options::default()
    });
    let mut b = Browser::new();
    let page = stack.sign_in(&mut b, "jane@example.com").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // A burst of starts: within two one-second windows at most, so the 7th
    // is over the limit at the latest.
    let mut limited = None;
    for i in 0..7 {
        let r = get(&stack, "GET /oauth2/start?rd=/ HTTP/1.1\r\nHost: localhost");
        if r.status == 429 {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status, 302);
    }
    let (_, r) = limited.expect("a burst of starts is limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    for _ in 0..30 {
        let page = b.get(&stack.at("/reports"), Nav::Api).await;
        assert_eq!(page.status, 200, "signed-in traffic is never limited");
    }
}

/// Behind a trusted proxy, each client address has its own budget.
#[test]
fn rate_limits_count_the_client_behind_a_trusted_proxy() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        sign_in_per_client: 2,
        server_toml: "trusted_proxies = [\"127.0.0.1\"]".into(),
        ..Options::default()
    });
    let from = |ip: &str| {
        get(
            &stack,
            &format!("GET /oauth2/start HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {ip}"),
        )
        .status
    };
    let statuses: Vec<u16> = (0..5).map(|_| from("198.51.100.1")).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(from("198.51.100.2"), 302, "another client is not limited");
}

/// A callback without a valid login state never calls Apple, and token
/// calls to Apple have a global cap.
#[tokio::test]
async fn apple_is_called_only_for_valid_callbacks_and_within_the_cap() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        apple_token_calls: 1,
        ..Options::default()
    });
    let r = get(
        &stack,
        "POST /oauth2/callback HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 49\r\n\r\ncode=c0123456789&state=AAAAAAAAAAAAAAAAAAAAAA&x=1",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        stack.emulator.hits().token,
        0,
        "no login state, no call to Apple"
    );
    // Three sign-ins brought to Apple's page, then posted back at once:
    // within two one-second windows, so one at least is over the cap.
    let mut at = Vec::new();
    for _ in 0..3 {
        let mut b = Browser::new();
        let a = b
            .through_apple(
                &stack.at("/oauth2/start?rd=/"),
                &Person::new("jane@example.com"),
            )
            .await;
        at.push((b, a));
    }
    let mut statuses = Vec::new();
    for (b, a) in &mut at {
        statuses.push(b.post_back(a).await.status);
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 1, "{statuses:?}");
    assert_eq!(
        stack.emulator.hits().token as usize,
        statuses.iter().filter(|s| **s == 303).count(),
        "Apple saw only the calls within the cap: {statuses:?}"
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
