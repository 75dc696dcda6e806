//! The route matcher's tests: the rules by example, and the index against
//! the linear scan it replaced (kept here as the reference) over generated
//! route tables and paths.

use super::*;
use crate::canonical::{host, path};
use crate::config::Upstreams;
use proptest::prelude::*;
use std::time::Duration;

fn route(host: Option<&str>, path: &str, auth: AuthMode) -> config::Route {
    let (host, port) = match host {
        Some(h) => {
            let c = host::parse(h.as_bytes()).unwrap();
            (Some(c.name.into_owned()), c.port)
        }
        None => (None, None),
    };
    config::Route {
        host,
        port,
        path: path.into(),
        encoded_slashes: EncodedSlashes::Reject,
        upstream: Upstreams::at("127.0.0.1:1".parse().unwrap()),
        auth,
        connect_timeout: Duration::from_secs(1),
        upstream_http2: false,
        read_timeout: Duration::from_secs(1),
        assertion: false,
        policy: None,
    }
}

fn compile(routes: &[config::Route]) -> Routes {
    Routes::new(routes, &Arc::new(Policy::new(&open_policy())))
}

fn open_policy() -> config::Policy {
    config::Policy {
        allowed_emails: vec![],
        allowed_email_domains: vec![],
        allowed_subs: vec![],
        allow_private_relay: true,
        require_verified_email: true,
    }
}

fn find(routes: &Routes, h: &str, p: &str) -> Option<usize> {
    let h = host::canonicalize(std::iter::once(h.as_bytes()), b"/").unwrap();
    let p = path::canonicalize(p).unwrap();
    routes.find(&h, &p).map(|r| r.index)
}

#[test]
fn most_specific_route_wins() {
    let routes = compile(&[
        route(None, "/", AuthMode::Required),
        route(None, "/public/", AuthMode::Public),
        route(None, "/api", AuthMode::Required),
        route(Some("admin.example.com"), "/", AuthMode::Required),
        route(Some("admin.example.com:8443"), "/", AuthMode::Bearer),
    ]);
    let any = "app.example.com";
    assert_eq!(find(&routes, any, "/public/x"), Some(1));
    assert_eq!(
        find(&routes, any, "/public"),
        Some(1),
        "/public/ covers /public"
    );
    assert_eq!(find(&routes, any, "/publicity"), Some(0));
    assert_eq!(find(&routes, any, "/api"), Some(2));
    assert_eq!(find(&routes, any, "/api/v1"), Some(2));
    assert_eq!(find(&routes, any, "/apiary"), Some(0));
    assert_eq!(find(&routes, "Admin.Example.com:443", "/public/x"), Some(3));
    assert_eq!(find(&routes, "admin.example.com.", "/public/x"), Some(3));
    assert_eq!(find(&routes, "admin.example.com:8443", "/x"), Some(4));
    // Another port or none: the port-blind reading finds the stricter
    // required route of the same name, never a looser one.
    assert_eq!(find(&routes, "admin.example.com:1", "/x"), Some(3));
    assert_eq!(find(&routes, "other.example.com", "/public/x"), Some(1));
    let routes = compile(&[
        route(None, "/", AuthMode::Public),
        route(Some("admin.example.com:8443"), "/", AuthMode::Required),
    ]);
    for h in [
        "admin.example.com",
        "admin.example.com:1",
        "admin.example.com:",
    ] {
        assert_eq!(find(&routes, h, "/secret"), Some(1), "{h}");
    }
    assert_eq!(find(&routes, "app.example.com:8443", "/secret"), Some(0));
}

#[test]
fn the_strictest_reading_wins() {
    // Required root, public prefix.
    let routes = compile(&[
        route(None, "/", AuthMode::Required),
        route(None, "/public/", AuthMode::Public),
    ]);
    let h = "a.example";
    assert_eq!(find(&routes, h, "/public/x"), Some(1));
    assert_eq!(
        find(&routes, h, "/PUBLIC/x"),
        Some(0),
        "case-sensitive apps see another path"
    );
    assert_eq!(
        find(&routes, h, "/public;x/y"),
        Some(0),
        "`/public;x` is not `/public` to most apps"
    );
    assert_eq!(find(&routes, h, "/public/../admin"), Some(0));
    assert_eq!(find(&routes, h, "/public/%2e%2e/admin"), Some(0));
    assert_eq!(find(&routes, h, "//public/x"), Some(1));
    // Public root, required prefix.
    let routes = compile(&[
        route(None, "/", AuthMode::Public),
        route(None, "/admin", AuthMode::Required),
    ]);
    assert_eq!(find(&routes, h, "/ADMIN/users"), Some(1));
    assert_eq!(find(&routes, h, "/Admin"), Some(1));
    assert_eq!(
        find(&routes, h, "/admin;x/users"),
        Some(1),
        "Tomcat reads /admin/users"
    );
    assert_eq!(find(&routes, h, "/admin%3Bx/users"), Some(1));
    assert_eq!(find(&routes, h, "/x/../admin"), Some(1));
    assert_eq!(find(&routes, h, "/administrator"), Some(0));
}

/// Routes to the same upstream (alike) share one pool; another upstream,
/// or the same one with other timeouts, gets its own.
#[test]
fn routes_to_one_upstream_share_its_pool() {
    let mut slow = route(None, "/slow", AuthMode::Required);
    slow.read_timeout = Duration::from_secs(60);
    let mut other = route(None, "/other", AuthMode::Required);
    other.upstream = Upstreams::at("127.0.0.1:2".parse().unwrap());
    let routes = compile(&[
        route(None, "/", AuthMode::Required),
        route(None, "/a", AuthMode::Public),
        route(Some("admin.example.com"), "/", AuthMode::Bearer),
        slow,
        other,
    ]);
    let pool = |i: usize| &routes.get(i).unwrap().pool;
    assert!(Arc::ptr_eq(pool(0), pool(1)));
    assert!(Arc::ptr_eq(pool(0), pool(2)));
    assert!(!Arc::ptr_eq(pool(0), pool(3)));
    assert!(!Arc::ptr_eq(pool(0), pool(4)));
    assert_eq!(routes.pools().len(), 3, "one pool per distinct upstream");
}

// ---- the index against the linear scan ----

/// The matcher the index replaced: each host's routes, longest prefix
/// first (among equal ones, a route naming a port first), scanned in
/// order, then the routes for any host the same way.
struct Linear {
    by_host: std::collections::HashMap<String, Vec<usize>>,
    any_host: Vec<usize>,
}

impl Linear {
    fn new(routes: &[config::Route]) -> Linear {
        let mut by_host: std::collections::HashMap<String, Vec<usize>> = Default::default();
        let mut any_host = Vec::new();
        for (index, r) in routes.iter().enumerate() {
            match &r.host {
                Some(h) => by_host.entry(h.clone()).or_default().push(index),
                None => any_host.push(index),
            }
        }
        let order = |v: &mut Vec<usize>| {
            v.sort_by_key(|i| {
                let r = &routes[*i];
                (std::cmp::Reverse(r.path.len()), r.port.is_none())
            })
        };
        by_host.values_mut().for_each(order);
        order(&mut any_host);
        Linear { by_host, any_host }
    }

    fn find_one<'a>(
        &self,
        all: &'a Routes,
        host: &CanonicalHost<'_>,
        path: &str,
        fold: bool,
        any_port: bool,
    ) -> Option<&'a Route> {
        self.by_host
            .get(host.name.as_ref())
            .into_iter()
            .flatten()
            .map(|i| &all.all[*i])
            .filter(|r| any_port || r.port.is_none() || r.port == host.port)
            .chain(self.any_host.iter().map(|i| &all.all[*i]))
            .find(|r| path_matches(&r.path, path, fold))
    }
}

/// A generated route: host (with or without a port) or any host, a prefix
/// of short tokens in both cases (some with `;`, some empty: `//`), with
/// or without a trailing `/`, and an auth mode. Not all would pass the
/// config's checks: the index must agree with the scan on any table.
fn arb_route() -> impl Strategy<Value = config::Route> {
    let host = prop_oneof![
        Just((None, None)),
        Just((Some("a.example"), None)),
        Just((Some("a.example"), Some(8443u16))),
        Just((Some("a.example"), Some(80u16))),
        Just((Some("b.example"), None)),
    ];
    let token = prop::sample::select(vec!["a", "A", "ab", "aB", "b", "B", "x;y", ""]);
    let prefix = (prop::collection::vec(token, 0..4), any::<bool>()).prop_map(|(t, slash)| {
        let mut p = format!("/{}", t.join("/"));
        if slash && !p.ends_with('/') {
            p.push('/');
        }
        p
    });
    let auth = prop::sample::select(vec![AuthMode::Public, AuthMode::Bearer, AuthMode::Required]);
    (host, prefix, auth).prop_map(|((h, port), path, auth)| {
        let mut r = route(None, &path, auth);
        r.host = h.map(str::to_string);
        r.port = port;
        r
    })
}

/// A generated request path (before canonicalization): tokens that meet
/// the routes' in both cases, with `;` parameters, empty segments and dots.
fn arb_path() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "a", "A", "ab", "AB", "aB", "b", "B", "a;x", "b;", "x;y", "", "c", "..", "%41",
    ]);
    (prop::collection::vec(token, 0..6), any::<bool>()).prop_map(|(t, slash)| {
        let mut p = format!("/{}", t.join("/"));
        if slash {
            p.push('/');
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every single match (each reading, case kept or folded, port or
    /// port-blind) and the final choice are the linear scan's.
    #[test]
    fn the_index_matches_as_the_linear_scan(
        table in prop::collection::vec(arb_route(), 1..12),
        raw_path in arb_path(),
        raw_host in prop::sample::select(vec![
            "a.example", "A.example:8443", "a.example:80", "a.example:1", "b.example", "c.example",
        ]),
    ) {
        let routes = compile(&table);
        let linear = Linear::new(&table);
        let h = host::canonicalize(std::iter::once(raw_host.as_bytes()), b"/").unwrap();
        let Ok(p) = path::canonicalize(&raw_path) else { return Ok(()) };
        let index = |r: Option<&Route>| r.map(|r| r.index);
        for reading in p.readings() {
            for fold in [false, true] {
                for any_port in [false, true] {
                    prop_assert_eq!(
                        index(routes.find_one(&h, reading, fold, any_port)),
                        index(linear.find_one(&routes, &h, reading, fold, any_port)),
                        "reading {:?} fold {} any_port {}", reading, fold, any_port
                    );
                }
            }
        }
        let reference = routes.strictest(&p, |reading, fold, any_port| {
            linear.find_one(&routes, &h, reading, fold, any_port)
        });
        prop_assert_eq!(index(routes.find(&h, &p)), index(reference));
    }
}
