//! Routes and the canonical request they match on: a 100-route table, and
//! canonicalizing paths and a host.

use std::hint::black_box;
use std::time::Duration;

use applegate::canonical;
use applegate::config::{self, AuthMode, Upstreams};
use applegate::proxy::route::{path_matches, Routes};
use criterion::Criterion;

fn routes() -> Vec<config::Route> {
    (0..100)
        .map(|i| config::Route {
            host: (i % 4 == 0).then(|| format!("tenant{i}.example.com")),
            path: format!("/service{i}/{}", if i % 2 == 0 { "api/" } else { "" }),
            upstream: Upstreams::at("127.0.0.1:3000".parse().unwrap()),
            port: None,
            encoded_slashes: applegate::config::EncodedSlashes::Reject,
            auth: AuthMode::Required,
            connect_timeout: Duration::from_secs(5),
            upstream_http2: false,
            read_timeout: Duration::from_secs(60),
            policy: None,
            assertion: false,
        })
        .collect()
}

pub(crate) fn bench_routes(c: &mut Criterion) {
    let cfg = routes();
    let global = std::sync::Arc::new(applegate::policy::Policy::new(&config::Policy {
        allowed_emails: vec![],
        allowed_email_domains: vec![],
        allowed_subs: vec![],
        allow_private_relay: true,
        require_verified_email: true,
    }));
    let compiled = Routes::new(&cfg, &global);
    let host = b"app.example.com:443";
    let path = "/service97/reports/2026";
    let mut g = c.benchmark_group("route_match_100");
    g.bench_function("applegate", |b| {
        b.iter(|| {
            let h =
                canonical::host::canonicalize(std::iter::once(&black_box(host)[..]), b"/").unwrap();
            let p = canonical::path::canonicalize(black_box(path)).unwrap();
            compiled.find(&h, &p).map(|r| r.index)
        })
    });
    // Naive: scan every route, lower-casing the host each time, keep the
    // longest matching prefix.
    g.bench_function("naive", |b| {
        b.iter(|| {
            let h = std::str::from_utf8(black_box(host))
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_lowercase();
            cfg.iter()
                .enumerate()
                .filter(|(_, r)| r.host.as_deref().is_none_or(|rh| rh == h))
                .filter(|(_, r)| path_matches(&r.path, black_box(path), false))
                .max_by_key(|(_, r)| (r.host.is_some(), r.path.len()))
                .map(|(i, _)| i)
        })
    });
    g.finish();
}

/// The one canonical request: a typical path (nothing to rewrite), one
/// with escapes and a dot segment (rewritten), and a host; the baseline is
/// a plain copy of the path, the least any rewrite costs.
pub(crate) fn bench_canonical(c: &mut Criterion) {
    let typical = "/reports/q3/summary";
    let escaped = "/reports/./q3%20draft/caf%c3%a9/%7Euser";
    let mut g = c.benchmark_group("canonicalize");
    g.bench_function("typical_path", |b| {
        b.iter(|| canonical::path::canonicalize(black_box(typical)).map(|c| c.path.len()))
    });
    g.bench_function("escaped_path", |b| {
        b.iter(|| canonical::path::canonicalize(black_box(escaped)).map(|c| c.path.len()))
    });
    g.bench_function("host", |b| {
        b.iter(|| {
            canonical::host::canonicalize(
                std::iter::once(&black_box(b"App.Example.com:443")[..]),
                b"/",
            )
            .map(|c| c.name.len())
        })
    });
    g.bench_function("baseline_copy", |b| {
        b.iter(|| black_box(typical).to_string().len())
    });
    g.finish();
}
