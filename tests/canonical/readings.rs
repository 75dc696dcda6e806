//! The readings rule, over generated paths and hosts (proptest): what
//! reaches the upstream without a session is public in every reading.

use proptest::prelude::*;

use super::common::raw::{self, Recorder};
use super::common::Stack;
use super::{forwarded, get, public_root, required_root};

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
