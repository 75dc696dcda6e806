//! Sessions: the per-request check (cached, opened every time, naive) and
//! sealing a new one.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use applegate::assertion::Assertions;
use applegate::clock::ManualClock;
use applegate::config;
use applegate::kit;
use applegate::proxy::Gateway;
use applegate::secret::Secret;
use applegate::session::{find_cookie, DisabledEmails, Revocations, SessionCookie};
use criterion::Criterion;

use super::{session, SECRET};

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
    let clock = ManualClock::at(1_700_000_100);
    let store = applegate::state::Memory::default();
    let assertions = Assertions::load(&cfg, &store, clock.clone()).unwrap();
    Gateway::new(
        &cfg,
        clock,
        Arc::new(Revocations::in_memory()),
        Arc::new(DisabledEmails::in_memory()),
        assertions,
    )
    .unwrap()
}

fn session_config() -> config::Session {
    config::Session {
        keys: Secret::new(vec![cookie::Key::derive_from(SECRET.as_bytes())]),
        cookie_name: "__Host-applegate".into(),
        cookie_domain: None,
        redirect_hosts: Vec::new(),
        lifetime: Duration::from_secs(7 * 86_400),
        idle_timeout: Duration::from_secs(86_400),
        revalidate: None,
        login_timeout: Duration::from_secs(600),
        same_site: config::SameSite::Lax,
        secure: true,
        login_cookie_lax: false,
    }
}

/// A browser's Cookie header: analytics cookies around ours.
fn cookie_header(value: &str) -> String {
    format!("_ga=GA1.2.1234567890.1700000000; theme=dark; __Host-applegate={value}; _gid=GA1.2.987654321.1700000000")
}

pub(crate) fn bench_session(c: &mut Criterion) {
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
            gw.authenticate(
                std::iter::once(black_box(header.as_bytes())),
                gw.clock.now(),
            )
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
