//! Micro-benchmarks of the gateway's hot paths, each beside a naive
//! baseline measured in the same run; the closing table prints the ratios.
//!
//!     cargo bench --bench micro
//!
//! Targets (issue #3): session open + check ≤ 2 µs; cached bearer check ≤ 2 µs.
//! Ratios are baseline time / applegate time: above 1, applegate is faster.

use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use applegate::apple::id_token::{self, Expectations};
use applegate::apple::{BearerCache, ClientSecret, Jwks};
use applegate::canonical;
use applegate::clock::ManualClock;
use applegate::config::{self, AuthMode, Upstream};
use applegate::identity;
use applegate::identity::{Identity, Proof};
use applegate::kit;
use applegate::proxy::route::{path_matches, Routes};
use applegate::proxy::Gateway;
use applegate::secret::Secret;
use applegate::session::{find_cookie, Revocations, SessionCookie};
use criterion::Criterion;
use pingora::http::RequestHeader;
use std::sync::Arc;

const SECRET: &str = "b0f1c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5";

/// Polls a future that completes without waiting (a cache hit) once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a cache hit that completes at once"),
    }
}

/// A gateway for a fixed config, its clock inside the test session's life.
fn gateway() -> Gateway {
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let ids = kit::Ids::TEST;
    let toml = format!(
        "[server]\npublic_url = \"https://app.example.com\"\n[apple]\nteam_id = \"{}\"\n\
         services_id = \"{}\"\nkey_id = \"{}\"\n[[routes]]\nupstream = \"http://127.0.0.1:3000\"\n",
        ids.team_id, ids.services_id, ids.key_id
    );
    let secrets = kit::Secrets {
        apple_key: key,
        session: SECRET.into(),
    };
    let cfg = kit::config(&toml, &secrets).unwrap();
    Gateway::new(
        &cfg,
        ManualClock::at(1_700_000_100),
        Arc::new(Revocations::in_memory()),
    )
    .unwrap()
}

fn session_config() -> config::Session {
    config::Session {
        keys: Secret::new(vec![cookie::Key::derive_from(SECRET.as_bytes())]),
        cookie_name: "__Host-applegate".into(),
        cookie_domain: None,
        lifetime: Duration::from_secs(7 * 86_400),
        login_timeout: Duration::from_secs(600),
        same_site: config::SameSite::Lax,
        secure: true,
    }
}

fn session() -> Identity {
    Identity {
        sub: "001234.0123456789abcdef0123456789abcdef.0042".into(),
        email: Some("jane.appleseed@example.com".into()),
        email_verified: true,
        is_private_email: false,
        name: Some("Jane Appleseed".into()),
        proof: Proof::Session {
            id: "Yq3x9Q2mS0aL8wPz1cV7bA".into(),
            issued_at: 1_700_000_000,
            expires_at: 1_700_604_800,
        },
    }
}

/// A browser's Cookie header: analytics cookies around ours.
fn cookie_header(value: &str) -> String {
    format!("_ga=GA1.2.1234567890.1700000000; theme=dark; __Host-applegate={value}; _gid=GA1.2.987654321.1700000000")
}

fn bench_session(c: &mut Criterion) {
    let sc = SessionCookie::new(&session_config());
    let set = sc.set_cookie(&session(), 1_700_000_000).unwrap();
    let value = cookie::Cookie::parse(set).unwrap().value().to_string();
    let header = cookie_header(&value);
    let revoked = Revocations::in_memory();
    let key = cookie::Key::derive_from(SECRET.as_bytes());
    let gw = gateway();
    let mut g = c.benchmark_group("session_check");
    // What the gateway does per request: find the cookie, look up the
    // opened identity (cached after the first request), check expiry and
    // the revocation set.
    g.bench_function("applegate", |b| {
        b.iter(|| {
            gw.authenticate(std::iter::once(black_box(header.as_bytes())))
                .unwrap()
        })
    });
    // The same without the cache: base64, AES-GCM and JSON every time.
    g.bench_function("open_every_time", |b| {
        b.iter(|| {
            let v = find_cookie(
                std::iter::once(black_box(header.as_bytes())),
                "__Host-applegate",
            )
            .unwrap();
            let s = sc.open(v, 1_700_000_100).unwrap();
            assert!(!revoked.is_revoked(&s));
            s
        })
    });
    // Naive: parse the whole header into a jar, read the private cookie,
    // decode into a generic JSON value.
    g.bench_function("naive", |b| {
        b.iter(|| {
            let mut jar = cookie::CookieJar::new();
            for c in cookie::Cookie::split_parse(black_box(header.clone())).flatten() {
                jar.add_original(c);
            }
            let c = jar.private(&key).get("__Host-applegate").unwrap();
            let v: serde_json::Value = serde_json::from_str(c.value()).unwrap();
            assert!(v["x"].as_u64().unwrap() > 1_700_000_100);
            v
        })
    });
    g.finish();

    let mut g = c.benchmark_group("session_seal");
    let s = session();
    g.bench_function("applegate", |b| {
        b.iter(|| sc.set_cookie(black_box(&s), 1_700_000_000))
    });
    g.bench_function("naive", |b| {
        b.iter(|| {
            let json = serde_json::json!({"id": s.session_id(), "sub": s.sub, "email": s.email, "email_verified": s.email_verified,
                "is_private_email": s.is_private_email, "name": s.name, "issued_at": s.issued_at(), "expires_at": s.expires_at()});
            let mut jar = cookie::CookieJar::new();
            jar.private_mut(&key).add(cookie::Cookie::build(("__Host-applegate", json.to_string())).path("/").secure(true).http_only(true));
            jar.delta().map(|c| c.to_string()).collect::<Vec<_>>()
        })
    });
    g.finish();
}

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

fn bench_headers(c: &mut Criterion) {
    let s = session();
    let base = request();
    let mut g = c.benchmark_group("strip_and_inject_headers");
    // The gateway builds an identity's header values once (cached with
    // the session) and per request strips the client's copies, then builds
    // the upstream request with them (no peer: no forwarding headers here).
    let mut ctx = applegate::proxy::ctx::Ctx::new(0);
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

fn routes() -> Vec<config::Route> {
    (0..100)
        .map(|i| config::Route {
            host: (i % 4 == 0).then(|| format!("tenant{i}.example.com")),
            path: format!("/service{i}/{}", if i % 2 == 0 { "api/" } else { "" }),
            upstream: Upstream {
                url: "http://127.0.0.1:3000".into(),
                addr: "127.0.0.1:3000".parse().unwrap(),
                tls: false,
                sni: String::new(),
            },
            port: None,
            encoded_slashes: applegate::config::EncodedSlashes::Reject,
            auth: AuthMode::Required,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
        })
        .collect()
}

fn bench_routes(c: &mut Criterion) {
    let cfg = routes();
    let compiled = Routes::new(&cfg);
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
fn bench_canonical(c: &mut Criterion) {
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

fn shared(file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/apple")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (../shared must sit beside the repository)",
            p.display()
        )
    })
}

fn bench_tokens(c: &mut Criterion) {
    let tokens: Vec<serde_json::Value> =
        serde_json::from_str(&shared("real_id_tokens.json")).unwrap();
    let t = &tokens[0];
    let jwt = t["jwt"].as_str().unwrap().to_string();
    let aud = vec![t["claims"]["aud"].as_str().unwrap().to_string()];
    let iat = t["claims"]["iat"].as_u64().unwrap();
    let jwks_text = shared("apple_jwks.json");
    let jwks = Jwks::from_document(jwks_text.as_bytes()).unwrap();
    let expect = Expectations {
        issuer: "https://appleid.apple.com",
        audiences: &aud,
        nonce: None,
        now: iat + 60,
        leeway: 60,
    };
    let doc: serde_json::Value = serde_json::from_str(&jwks_text).unwrap();
    let k = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == t["header"]["kid"])
        .unwrap();
    let raw_key = jsonwebtoken::DecodingKey::from_rsa_components(
        k["n"].as_str().unwrap(),
        k["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut g = c.benchmark_group("id_token_verify_warm");
    g.bench_function("applegate", |b| {
        b.iter(|| ready(id_token::verify(black_box(&jwt), &jwks, &expect)).unwrap())
    });
    // Baseline: jsonwebtoken's RS256 decode alone, key already in hand.
    g.bench_function("jsonwebtoken_only", |b| {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_exp = false;
        v.set_audience(&aud);
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(black_box(&jwt), &raw_key, &v).unwrap())
    });
    g.finish();

    // A bearer cache that verified the token once.
    let cache = BearerCache::new(1000);
    let check = || {
        ready(cache.verify(&jwt, iat + 60, 60, || async {
            id_token::verify(&jwt, &jwks, &expect).await
        }))
    };
    assert_eq!(check().unwrap().aud, aud[0]);
    let mut g = c.benchmark_group("bearer_check");
    g.bench_function("applegate_cached", |b| b.iter(|| check().unwrap()));
    g.bench_function("verify_every_time", |b| {
        b.iter(|| ready(id_token::verify(black_box(&jwt), &jwks, &expect)).unwrap())
    });
    g.finish();
}

fn bench_client_secret(c: &mut Criterion) {
    let clock = ManualClock::at(1_700_000_000);
    let ids = kit::Ids::TEST;
    let cs = ClientSecret::new(
        ids.team_id,
        ids.services_id,
        ids.key_id,
        Secret::new(p256::ecdsa::SigningKey::random(&mut rand::thread_rng())),
        "https://appleid.apple.com",
        Duration::from_secs(86_400),
        clock,
    );
    let mut g = c.benchmark_group("client_secret");
    g.bench_function("applegate_cached", |b| b.iter(|| cs.get()));
    g.bench_function("mint_every_time", |b| {
        b.iter(|| cs.mint(black_box(1_700_000_000)))
    });
    g.finish();
}

/// Reads criterion's estimate (mean, ns) for `group/function`.
fn estimate(group: &str, function: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let path = Path::new(&dir)
        .join("criterion")
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn report() {
    let fmt = |ns: f64| {
        if ns >= 1000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.0} ns")
        }
    };
    println!(
        "\n{:<44} {:>10}   {:<36} {:>10} {:>8}",
        "hot path", "time", "baseline (same run)", "time", "ratio"
    );
    for (group, ours, base) in [
        ("session_check", "applegate", "naive"),
        ("session_check", "open_every_time", "naive"),
        ("session_seal", "applegate", "naive"),
        ("strip_and_inject_headers", "applegate", "naive"),
        ("route_match_100", "applegate", "naive"),
        ("id_token_verify_warm", "applegate", "jsonwebtoken_only"),
        ("bearer_check", "applegate_cached", "verify_every_time"),
        ("client_secret", "applegate_cached", "mint_every_time"),
    ] {
        let label = format!("{group}/{ours}");
        let (Some(a), Some(b)) = (estimate(group, ours), estimate(group, base)) else {
            println!("{label:<44} (not measured in this run)");
            continue;
        };
        println!(
            "{label:<44} {:>10}   {base:<36} {:>10} {:>7.2}×",
            fmt(a),
            fmt(b),
            b / a
        );
    }
    println!("(ratio = baseline time / applegate time; above 1 means applegate is faster)");
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_session(&mut c);
    bench_headers(&mut c);
    bench_routes(&mut c);
    bench_canonical(&mut c);
    bench_tokens(&mut c);
    bench_client_secret(&mut c);
    c.final_summary();
    report();
}
