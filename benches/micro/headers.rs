//! Identity headers: stripping the client's copies and building the
//! upstream request with the gateway's own.

use applegate::identity;
use criterion::Criterion;
use pingora::http::RequestHeader;

use super::session;

fn request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/dashboard/reports?year=2026", None).unwrap();
    for (k, v) in [
        ("Host", "app.example.com"),
        (
            "User-Agent",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15",
        ),
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Language", "en-GB,en;q=0.9"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Connection", "keep-alive"),
        ("Referer", "https://app.example.com/"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Site", "same-origin"),
        ("Upgrade-Insecure-Requests", "1"),
        ("Cookie", "_ga=GA1.2.1; theme=dark"),
    ] {
        req.append_header(k, v).unwrap();
    }
    req
}

/// The spellings a naive stripper would check one by one.
const NAIVE_NAMES: &[&str] = &[
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-email-verified",
    "x-auth-request-private-email",
    "x-auth-request-name",
    "x-auth-request-groups",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-applegate-assertion",
];

pub(crate) fn bench_headers(c: &mut Criterion) {
    let s = session();
    let base = request();
    let mut g = c.benchmark_group("strip_and_inject_headers");
    // The gateway builds an identity's header values once (cached with
    // the session) and per request strips the client's copies, then builds
    // the upstream request with them (no peer: no forwarding headers here).
    let mut ctx = applegate::proxy::ctx::Ctx::new();
    ctx.caller = Some(std::sync::Arc::new(identity::Caller::new(s.clone())));
    let trusted = applegate::proxy::forwarded::TrustedProxies::default();
    g.bench_function("applegate", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |req| {
                identity::strip(req);
                applegate::proxy::upstream::prepare(req, &ctx, &trusted, |_| false).unwrap();
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // Naive: normalize every header name into a new String and compare
    // with each reserved name; build values with format!.
    g.bench_function("naive", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |req| {
                let names: Vec<String> = req
                    .headers
                    .keys()
                    .map(|k| k.as_str().to_lowercase().replace('_', "-"))
                    .collect();
                for (name, raw) in names
                    .iter()
                    .zip(req.headers.keys().cloned().collect::<Vec<_>>())
                {
                    if NAIVE_NAMES.iter().any(|n| n == name) || name.starts_with("x-auth-request-")
                    {
                        req.remove_header(&raw);
                    }
                }
                req.insert_header("X-Auth-Request-User", s.sub.clone())
                    .unwrap();
                req.insert_header("X-Forwarded-User", s.sub.clone())
                    .unwrap();
                let email = s.email.clone().unwrap();
                req.insert_header("X-Auth-Request-Email", email.clone())
                    .unwrap();
                req.insert_header("X-Forwarded-Email", email).unwrap();
                req.insert_header(
                    "X-Auth-Request-Email-Verified",
                    s.email_verified.to_string(),
                )
                .unwrap();
                req.insert_header(
                    "X-Auth-Request-Private-Email",
                    s.is_private_email.to_string(),
                )
                .unwrap();
                req.insert_header("X-Auth-Request-Name", s.name.clone().unwrap())
                    .unwrap();
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}
