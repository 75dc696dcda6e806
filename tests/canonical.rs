//! The one canonical request, held over real sockets: a request admitted
//! without authentication is public under every reading an upstream may
//! give the path and host it received. The upstream here records the raw
//! request line and `Host`, so each test checks what an app would act on.

mod common;

use common::raw::{self, Recorder};
use common::{Options, Stack};
use proptest::prelude::*;

/// Routes `/` (sign-in required) and `/public/` (public) on one upstream.
fn required_root(rec: &Recorder) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/public/", "public")],
        extra_toml: "[[routes]]\npath = \"/repo/\"\nauth = \"public\"\nencoded_slashes = \"keep\"\nupstream = \"http://{upstream}\"\n".into(),
        ..Options::default()
    })
}

/// Routes `/` (public) and `/admin` (sign-in required), and a host route
/// `admin.example.com` (required).
fn public_root(rec: &Recorder) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        root_auth: "public",
        routes: vec![("/admin", "required")],
        extra_toml: "[[routes]]\nhost = \"admin.example.com\"\npath = \"/\"\nupstream = \"http://{upstream}\"\n".into(),
        ..Options::default()
    })
}

/// `GET <target>` with `Host: <host>`, no credentials, as an API client.
fn get(stack: &Stack, target: &str, host: &str) -> raw::Reply {
    raw::send(
        stack.gateway.addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json"),
    )
}

/// The single request the upstream saw, if any.
fn forwarded(rec: &Recorder) -> Option<raw::Seen> {
    let mut seen = rec.take();
    assert!(seen.len() <= 1, "one request forwarded at most: {seen:?}");
    seen.pop()
}

fn assert_refused(stack: &Stack, rec: &Recorder, target: &str, status: u16) {
    let r = get(stack, target, "app.example.com");
    assert_eq!(r.status, status, "{target}: {}", r.text());
    assert!(
        forwarded(rec).is_none(),
        "{target} must not reach the upstream"
    );
}

fn assert_forwarded_as(stack: &Stack, rec: &Recorder, target: &str, upstream_target: &str) {
    let r = get(stack, target, "app.example.com");
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    let seen = forwarded(rec).expect("forwarded");
    assert_eq!(
        seen.line,
        format!("GET {upstream_target} HTTP/1.1"),
        "{target}"
    );
}

/// `/admin/..%2fpublic/x` read as `/public/x` by the gateway and as an
/// `/admin/...` path by Express or Flask: refused.
#[test]
fn encoded_slash_traversal_out_of_admin_is_refused() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/admin/..%2fpublic/x", 400);
    assert_refused(&stack, &rec, "/admin/..%2Fpublic/x", 400);
}

/// `/admin/%2e%2e/public/x` is `/public/x` once decided, and `/public/x` is
/// what the upstream gets, not the raw path.
#[test]
fn encoded_dot_segments_are_resolved_and_forwarded_resolved() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_forwarded_as(&stack, &rec, "/admin/%2e%2e/public/x", "/public/x");
    assert_forwarded_as(&stack, &rec, "/admin/%2E%2e/public/x?a=1", "/public/x?a=1");
}

/// `/admin/x/..\..\public/x`: `\` is `/` to some servers and a name to others.
#[test]
fn backslash_traversal_is_refused() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/admin/x/..\\..\\public/x", 400);
    assert_refused(&stack, &rec, "/public/..%5cadmin", 400);
    assert_refused(&stack, &rec, "/public%5cx", 400);
}

/// `/admin/..;/public/x` is `/admin/../public/x` to Tomcat.
#[test]
fn tomcat_path_parameters_cannot_hide_a_dot_segment() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/admin/..;/public/x", 400);
    assert_refused(&stack, &rec, "/admin/..%3b/public/x", 400);
    // `/public;x/y` is `/public/y` to Tomcat but `/public;x/y` to others:
    // not public under every reading, so it needs a session.
    assert_refused(&stack, &rec, "/public;x/y", 401);
}

/// With a public root: `/admin/%2e%2e` is `/`, and `/` is what the upstream gets.
#[test]
fn public_root_encoded_dots_reach_only_the_root() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_forwarded_as(&stack, &rec, "/admin/%2e%2e", "/");
    assert_forwarded_as(&stack, &rec, "/admin/.%2E/x", "/x");
}

/// `/admin/users%2f..%2f..` would be `/admin/users/../..` after decoding.
#[test]
fn public_root_encoded_traversal_is_refused() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_refused(&stack, &rec, "/admin/users%2f..%2f..", 400);
}

/// Express routes without case: `/ADMIN/users` is its admin handler.
#[test]
fn protected_prefixes_win_on_case() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_refused(&stack, &rec, "/ADMIN/users", 401);
    assert_refused(&stack, &rec, "/Admin", 401);
    assert_refused(&stack, &rec, "/admin;jsessionid=1/users", 401);
    assert_forwarded_as(&stack, &rec, "/administrator", "/administrator");
}

/// A route `path = "/admin/"` covers `/admin` itself (an app mounted at
/// `/admin` serves it).
#[test]
fn a_directory_route_covers_its_bare_name() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        root_auth: "public",
        routes: vec![("/admin/", "required")],
        ..Options::default()
    });
    assert_refused(&stack, &rec, "/admin", 401);
    assert_refused(&stack, &rec, "/admin/", 401);
    assert_forwarded_as(&stack, &rec, "/adminx", "/adminx");
}

/// Query strings never change which route applies.
#[test]
fn the_query_never_picks_the_route() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    assert_refused(&stack, &rec, "/admin?/public/", 401);
    assert_refused(&stack, &rec, "/admin?x=/../", 401);
    assert_forwarded_as(&stack, &rec, "/x?/admin/", "/x?/admin/");
}

/// `%20`, UTF-8 and `file%2Etxt` keep working; escapes of unreserved
/// characters are forwarded decoded.
#[test]
fn legitimate_escapes_pass() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_forwarded_as(
        &stack,
        &rec,
        "/public/caf%c3%a9%20x",
        "/public/caf%C3%A9%20x",
    );
    assert_forwarded_as(&stack, &rec, "/public/file%2Etxt", "/public/file.txt");
    assert_forwarded_as(&stack, &rec, "/public//a/./b", "/public/a/b");
}

/// Malformed escapes and control characters are refused.
#[test]
fn malformed_paths_are_refused() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    for t in [
        "/public/%zz",
        "/public/%2",
        "/public/a%00",
        "/public/a%0d%0aX:1",
        "/public/%c0%ae",
    ] {
        assert_refused(&stack, &rec, t, 400);
    }
}

/// Encoded slashes: refused by default, kept (not decoded) where a route
/// says `encoded_slashes = "keep"`, and never a way to traverse.
#[test]
fn encoded_slashes_are_switchable_per_route() {
    let rec = Recorder::start();
    let stack = required_root(&rec);
    assert_refused(&stack, &rec, "/public/a%2Fb", 400);
    assert_forwarded_as(&stack, &rec, "/repo/a%2fb", "/repo/a%2Fb");
    assert_refused(&stack, &rec, "/repo/..%2Fadmin", 400);
    assert_refused(&stack, &rec, "/repo/a%2F..%2F..%2Fadmin", 400);
}

/// `GET http://admin.example.com/x` with no `Host`, or another `Host`,
/// cannot skip the host route.
#[test]
fn absolute_form_targets_cannot_skip_a_host_route() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    let addr = stack.gateway.addr;
    let r = raw::send(
        addr,
        "GET http://admin.example.com/x HTTP/1.1\r\nAccept: application/json",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let r = raw::send(
        addr,
        "GET http://admin.example.com/x HTTP/1.1\r\nHost: app.example.com\r\nAccept: application/json",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Spelled differently from `Host`: refused before anything else (the
    // edge wants the two byte for byte), so never public either.
    let r = raw::send(
        addr,
        "GET http://ADMIN.example.com./x HTTP/1.1\r\nHost: admin.example.com\r\nAccept: application/json",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.header("server").is_none(), "our page, not pingora's");
    let r = raw::send(
        addr,
        "GET http://ADMIN.example.com./x HTTP/1.1\r\nHost: ADMIN.example.com.\r\nAccept: application/json",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(forwarded(&rec).is_none());
    // A public host in absolute form reaches the upstream in origin form.
    let r = raw::send(
        addr,
        "GET http://App.Example.com/x?y=1 HTTP/1.1\r\nAccept: application/json",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = forwarded(&rec).unwrap();
    assert_eq!(seen.line, "GET /x?y=1 HTTP/1.1");
    assert_eq!(seen.header("host"), Some("app.example.com"));
}

/// `Host: admin.example.com.` (trailing dot), other case or a port: the
/// same host.
#[test]
fn host_spellings_cannot_skip_a_host_route() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    for h in [
        "admin.example.com.",
        "ADMIN.Example.Com",
        "admin.example.com:8080",
        "admin.example.com.:80",
    ] {
        let r = get(&stack, "/x", h);
        assert_eq!(r.status, 401, "Host: {h}");
    }
    assert!(forwarded(&rec).is_none());
}

/// Duplicate `Host`, userinfo, spaces and junk are refused; the upstream
/// gets the canonical host.
#[test]
fn malformed_hosts_are_refused_and_good_ones_canonicalized() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    let addr = stack.gateway.addr;
    for head in [
        "GET /x HTTP/1.1\r\nHost: app.example.com\r\nHost: admin.example.com",
        "GET /x HTTP/1.1\r\nHost: user@admin.example.com",
        "GET /x HTTP/1.1\r\nHost: admin.example.com..",
        "GET /x HTTP/1.1\r\nHost: admin_example.com:99999",
        "GET /x HTTP/1.1\r\nHost: a%2eb",
        "GET /x HTTP/1.1",
    ] {
        let r = raw::send(addr, head);
        assert_eq!(r.status, 400, "{head:?}: {}", r.text());
    }
    assert!(forwarded(&rec).is_none());
    let r = get(&stack, "/x", "App.Example.COM.:8080");
    assert_eq!(r.status, 200);
    assert_eq!(
        forwarded(&rec).unwrap().header("host"),
        Some("app.example.com:8080")
    );
}

/// A route naming a port is not skipped by another port or none: apps
/// routing by host name ignore the port.
#[test]
fn a_port_scoped_host_route_is_not_skipped_by_the_port() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        root_auth: "public",
        extra_toml: "[[routes]]\nhost = \"admin.example.com:8443\"\npath = \"/\"\nupstream = \"http://{upstream}\"\n".into(),
        ..Options::default()
    });
    for h in [
        "admin.example.com:8443",
        "admin.example.com:1",
        "admin.example.com",
        "admin.example.com:",
    ] {
        let r = get(&stack, "/secret", h);
        assert_eq!(r.status, 401, "Host: {h}");
    }
    assert!(forwarded(&rec).is_none());
    assert_forwarded_as(&stack, &rec, "/secret", "/secret");
}

// ---- the readings rule, over generated paths and hosts ----

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn drop_params(s: &str) -> String {
    s.split('/')
        .map(|seg| seg.split(';').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/")
}

fn merge_slashes(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn resolve_dots(s: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = s.split('/').skip(1).collect();
    let n = segs.len();
    for (i, seg) in segs.into_iter().enumerate() {
        match seg {
            "." => {
                if i == n - 1 {
                    out.push("")
                }
            }
            ".." => {
                out.pop();
                if i == n - 1 {
                    out.push("")
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Every reading an upstream may give path `p`: raw; decoded once; `\` as
/// `/`; `;` parameters dropped (before or after decoding); slashes merged;
/// dot segments resolved; case folded; in every combination.
fn readings(p: &str) -> Vec<String> {
    let mut all = Vec::new();
    for mask in 0u32..128 {
        let mut s = p.to_string();
        let on = |bit: u32| mask & (1 << bit) != 0;
        if on(6) && on(2) {
            s = drop_params(&s);
        }
        if on(0) {
            s = percent_decode(&s);
        }
        if on(1) {
            s = s.replace('\\', "/");
        }
        if on(2) && !on(6) {
            s = drop_params(&s);
        }
        if on(3) {
            s = merge_slashes(&s);
        }
        if on(4) {
            s = resolve_dots(&s);
        }
        if on(5) {
            s = s.to_ascii_lowercase();
        }
        all.push(s);
    }
    all
}

fn under(prefix: &str, path: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

fn path_strategy(prefixes: &'static [&'static str]) -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "/", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", ";", "%3b", "%3B", "a", "A", "x",
        "admin", "ADMIN", "Admin", "public", "PUBLIC", "/admin", "/public",
    ]);
    (
        prop::sample::select(prefixes.to_vec()),
        prop::collection::vec(token, 0..8),
    )
        .prop_map(|(prefix, tokens)| format!("{prefix}{}", tokens.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Required root, public `/public/`: whatever reaches the upstream
    /// without a session is under `/public` in every reading.
    #[test]
    fn required_root_admits_only_what_every_reading_calls_public(
        path in path_strategy(&["/", "/public/", "/admin/", "/public", "/x/"])
    ) {
        let (rec, stack) = shared_required();
        let r = get(stack, &path, "app.example.com");
        match forwarded(rec) {
            Some(seen) => {
                prop_assert_eq!(r.status, 200);
                for reading in readings(&seen.target) {
                    prop_assert!(under("/public", &reading),
                        "{} was admitted as public and forwarded as {}, which reads as {}", path, seen.target, reading);
                }
            }
            None => prop_assert!(matches!(r.status, 400 | 401), "{}: {}", path, r.status),
        }
    }

    /// Public root, required `/admin`: nothing that reaches the upstream
    /// without a session reads as `/admin` in any reading.
    #[test]
    fn public_root_never_admits_an_admin_reading(
        path in path_strategy(&["/", "/admin", "/admin/", "/x/", "/public/"])
    ) {
        let (rec, stack) = shared_public();
        let r = get(stack, &path, "app.example.com");
        if let Some(seen) = forwarded(rec) {
            prop_assert_eq!(r.status, 200);
            for reading in readings(&seen.target) {
                prop_assert!(!under("/admin", &reading),
                    "{} was admitted as public and forwarded as {}, which reads as {}", path, seen.target, reading);
            }
        } else {
            prop_assert!(matches!(r.status, 400 | 401), "{}: {}", path, r.status);
        }
    }

    /// Host route `admin.example.com` (required), public elsewhere: a
    /// request admitted without a session names another host however it
    /// is spelled, and the upstream gets the canonical host.
    #[test]
    fn host_routes_hold_under_every_spelling(
        base in prop::sample::select(vec!["admin.example.com", "app.example.com"]),
        upper in prop::collection::vec(any::<bool>(), 17),
        dot in any::<bool>(),
        port in prop::sample::select(vec!["", ":80", ":8080", ":"]),
        form in 0u8..4,
        other in prop::sample::select(vec!["admin.example.com", "app.example.com", "ADMIN.example.com."]),
    ) {
        let (rec, stack) = shared_public();
        let host: String = base.chars().zip(upper.iter().cycle())
            .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c }).collect();
        let host = format!("{host}{}{port}", if dot { "." } else { "" });
        let head = match form {
            0 => format!("GET /x HTTP/1.1\r\nHost: {host}"),
            1 => format!("GET http://{host}/x HTTP/1.1\r\nHost: {host}"),
            2 => format!("GET http://{host}/x HTTP/1.1"),
            _ => format!("GET /x HTTP/1.1\r\nHost: {host}\r\nHost: {other}"),
        };
        let r = raw::send(stack.gateway.addr, &format!("{head}\r\nAccept: application/json"));
        let name = |h: &str| {
            let h = h.to_ascii_lowercase();
            let h = h.rsplit_once(':').map_or(h.as_str(), |(n, _)| n).to_string();
            h.trim_end_matches('.').to_string()
        };
        match forwarded(rec) {
            Some(seen) => {
                prop_assert_eq!(r.status, 200);
                prop_assert!(name(&host) != "admin.example.com", "{:?} admitted", head);
                prop_assert_eq!(seen.line.as_str(), "GET /x HTTP/1.1");
                let sent = seen.header("host").unwrap_or_default().to_string();
                prop_assert_eq!(name(&sent), "app.example.com");
                prop_assert_eq!(sent.to_ascii_lowercase(), sent.clone());
                prop_assert!(!sent.contains(".:") && !sent.ends_with('.'), "{}", sent);
            }
            None => prop_assert!(matches!(r.status, 400 | 401), "{:?}: {}", head, r.status),
        }
    }
}

/// A stack that lives as long as the test process: one per layout and
/// test thread for all generated cases (starting a gateway per case would
/// dominate the run; one per thread keeps the recorders apart).
fn leaked(make: fn(&Recorder) -> Stack) -> (&'static Recorder, &'static Stack) {
    let rec: &'static Recorder = Box::leak(Box::new(Recorder::start()));
    let stack: &'static Stack = Box::leak(Box::new(make(rec)));
    (rec, stack)
}

thread_local! {
    static REQUIRED: (&'static Recorder, &'static Stack) = leaked(required_root);
    static PUBLIC: (&'static Recorder, &'static Stack) = leaked(public_root);
}

fn shared_required() -> (&'static Recorder, &'static Stack) {
    REQUIRED.with(|s| *s)
}

fn shared_public() -> (&'static Recorder, &'static Stack) {
    PUBLIC.with(|s| *s)
}
