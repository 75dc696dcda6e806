//! Signed identity assertions (`X-Applegate-Assertion`): what the
//! upstream gets on a route with `assertion = true`, verified the way an
//! upstream would, with the gateway's JWKS fetched over HTTP.

use std::path::PathBuf;

use applegate::clock::Clock;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};

use super::common::{self, Browser, Nav, Options, Stack};
use super::header;

/// Routes asking for assertions: one for any host, one for a named host,
/// one bearer API; the catch-all `/` does not ask.
const ROUTES: &str = r#"
[[routes]]
path = "/signed"
assertion = true
upstream = "http://{upstream}"

[[routes]]
host = "app.example.test"
path = "/"
assertion = true
upstream = "http://{upstream}"

[[routes]]
path = "/api/"
auth = "bearer"
assertion = true
upstream = "http://{upstream}"
"#;

fn options(clock: applegate::clock::SharedClock, extra: &str) -> Options {
    Options {
        clock,
        extra_toml: format!("{extra}\n{ROUTES}"),
        apple_toml: "bundle_ids = [\"com.example.ios\"]".into(),
        ..Default::default()
    }
}

/// The assertion the upstream got for `b`'s GET of `path` (with `extra`
/// headers), or `None`; panics if it got more than one.
async fn assertion_at(
    b: &mut Browser,
    stack: &Stack,
    path: &str,
    extra: &[(&str, &str)],
) -> Option<String> {
    let page = b.get_with(&stack.at(path), Nav::Api, extra).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echo = page.json();
    let all = echo["headers"]["x-applegate-assertion"].as_array().cloned();
    assert!(all.as_ref().is_none_or(|a| a.len() == 1), "{echo}");
    header(&echo, "x-applegate-assertion").map(str::to_string)
}

/// The gateway's JWKS, fetched as an upstream would (no session).
async fn jwks(stack: &Stack) -> Value {
    let resp = reqwest::get(stack.at("/.well-known/applegate/jwks.json"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// `jwt` verified as an upstream would: the key by `kid` from `jwks`,
/// ES256, issuer the gateway's origin, audience `aud`, not expired.
fn verify(jwt: &str, jwks: &Value, iss: &str, aud: &str) -> jsonwebtoken::errors::Result<Value> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let kid = decode_header(jwt)?.kid.expect("a kid in the header");
    let jwk = set.find(&kid).expect("the kid is published");
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[iss]);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(jwt, &DecodingKey::from_jwk(jwk)?, &v).map(|d| d.claims)
}

/// A native iOS token as Apple issues it (see tests/api.rs).
fn native_token(stack: &Stack, now: u64) -> String {
    stack.emulator.sign(&json!({
        "iss": stack.emulator.base_url(), "aud": "com.example.ios",
        "exp": now + 86_400, "iat": now,
        "sub": "001234.0123456789abcdef0123456789abcdef.0042",
        "email": "x7k2@privaterelay.appleid.com",
        "email_verified": "true", "is_private_email": "true",
    }))
}

/// The upstream of an asserting route gets one ES256 JWT that verifies
/// with the JWKS the gateway publishes: issuer its origin, audience the
/// route's host (the public host for a route without one), the identity's
/// claims, five minutes of life. A route that does not ask gets none; a
/// client's own copies, in any spelling, never arrive; an assertion for
/// one host does not pass as another's.
#[tokio::test]
async fn upstreams_get_an_assertion_that_verifies_with_the_jwks() {
    let stack = Stack::with(options(applegate::clock::system(), ""));
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let keys = jwks(&stack).await;
    let jwk = &keys["keys"][0];
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    for (k, v) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(jwk[k], v, "{jwk}");
    }
    assert!(jwk.get("d").is_none(), "no private part: {jwk}");

    let jwt = assertion_at(&mut b, &stack, "/signed/x", &[])
        .await
        .unwrap();
    let claims = verify(&jwt, &keys, &stack.url, "localhost").unwrap();
    assert_eq!(
        decode_header(&jwt).unwrap().kid.as_ref(),
        jwk["kid"].as_str().map(String::from).as_ref()
    );
    let echo = b.get(&stack.at("/signed/x"), Nav::Api).await.json();
    assert_eq!(claims["sub"].as_str(), header(&echo, "x-auth-request-user"));
    assert_eq!(claims["email"], "jane@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["is_private_email"], false);
    assert_eq!(claims["name"], "Jane Appleseed");
    assert!(
        claims["jti"].as_str().is_some_and(|j| j.len() >= 16),
        "{claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 300, "{claims}");

    assert_eq!(
        assertion_at(&mut b, &stack, "/plain", &[]).await,
        None,
        "a route that does not ask"
    );
    let spoofs = [
        ("X-Applegate-Assertion", "forged"),
        ("x_applegate_assertion", "forged"),
    ];
    assert_eq!(
        assertion_at(&mut b, &stack, "/plain", &spoofs).await,
        None,
        "client copies stripped"
    );
    let ours = assertion_at(&mut b, &stack, "/signed/x", &spoofs)
        .await
        .unwrap();
    assert_eq!(ours, jwt, "only the gateway's, the cached one");

    let host = [("Host", "app.example.test")];
    let other = assertion_at(&mut b, &stack, "/", &host).await.unwrap();
    verify(&other, &keys, &stack.url, "app.example.test").unwrap();
    let e = verify(&jwt, &keys, &stack.url, "app.example.test").unwrap_err();
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidAudience);
}

/// Two requests within half an assertion's life carry the identical
/// assertion (it is not signed per request); once half its life has passed
/// on the gateway's clock, a new one (new `jti`, later `iat`) arrives. A
/// bearer-token caller gets one too, cached per token the same way.
#[tokio::test]
async fn assertions_are_reused_until_half_life_then_signed_again() {
    let clock = common::manual_clock();
    let stack = Stack::with(options(clock.clone(), ""));
    let keys = jwks(&stack).await;
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let first = assertion_at(&mut b, &stack, "/signed", &[]).await.unwrap();
    assert_eq!(
        assertion_at(&mut b, &stack, "/signed", &[]).await.unwrap(),
        first
    );
    clock.advance(149);
    assert_eq!(
        assertion_at(&mut b, &stack, "/signed", &[]).await.unwrap(),
        first,
        "within half-life"
    );
    clock.advance(1);
    let second = assertion_at(&mut b, &stack, "/signed", &[]).await.unwrap();
    assert_ne!(second, first, "signed again at half-life");
    let (c1, c2) = (
        verify(&first, &keys, &stack.url, "localhost").unwrap(),
        verify(&second, &keys, &stack.url, "localhost").unwrap(),
    );
    assert_ne!(c1["jti"], c2["jti"]);
    assert_eq!(
        c2["iat"].as_u64().unwrap(),
        c1["iat"].as_u64().unwrap() + 150
    );

    let token = native_token(&stack, clock.now());
    let bearer = [("Authorization", format!("Bearer {token}"))];
    let bearer: Vec<(&str, &str)> = bearer.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut api = Browser::new();
    let a1 = assertion_at(&mut api, &stack, "/api/x", &bearer)
        .await
        .unwrap();
    let claims = verify(&a1, &keys, &stack.url, "localhost").unwrap();
    assert_eq!(
        claims["sub"],
        "001234.0123456789abcdef0123456789abcdef.0042"
    );
    assert_eq!(claims["is_private_email"], true);
    assert!(
        claims.get("name").is_none(),
        "no name: none is sent, {claims}"
    );
    assert_eq!(
        assertion_at(&mut api, &stack, "/api/y", &bearer)
            .await
            .unwrap(),
        a1,
        "cached per token"
    );
}

/// A temporary directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "applegate-assert-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// With no key configured, the key the gateway generates is kept in the
/// state file: a gateway restarted on the same file publishes and signs
/// with the same `kid`.
#[tokio::test]
async fn a_generated_key_survives_a_restart() {
    let dir = Dir::new("restart");
    let state = format!(
        "[state]\npath = \"{}\"\n",
        dir.0.join("applegate.state").display()
    );
    let kid = |keys: &Value| keys["keys"][0]["kid"].as_str().unwrap().to_string();
    let first = Stack::with(options(applegate::clock::system(), &state));
    let before = kid(&jwks(&first).await);
    drop(first);
    let second = Stack::with(options(applegate::clock::system(), &state));
    let keys = jwks(&second).await;
    assert_eq!(kid(&keys), before, "the same key after a restart");
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let mut b = Browser::new();
    second.sign_in(&mut b, "jane@example.com").await;
    let jwt = assertion_at(&mut b, &second, "/signed", &[]).await.unwrap();
    assert_eq!(decode_header(&jwt).unwrap().kid.unwrap(), before);
}

/// `[assertion] key_file` signs; `previous_key_file` is published beside
/// it (second) and never signs; each `kid` is the key's RFC 7638 thumbprint.
#[tokio::test]
async fn a_key_file_signs_and_the_previous_key_is_published() {
    let dir = Dir::new("keyfile");
    let (key, previous) = (
        SigningKey::random(&mut rand::thread_rng()),
        SigningKey::random(&mut rand::thread_rng()),
    );
    let write = |name: &str, k: &SigningKey| {
        let path = dir.0.join(name);
        std::fs::write(&path, k.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        path.display().to_string()
    };
    let extra = format!(
        "[assertion]\nkey_file = \"{}\"\nprevious_key_file = \"{}\"\n",
        write("assertion.pem", &key),
        write("previous.pem", &previous)
    );
    let stack = Stack::with(options(applegate::clock::system(), &extra));
    let keys = jwks(&stack).await;
    let kid = applegate::es256::thumbprint(key.verifying_key());
    assert_eq!(
        keys["keys"][0],
        applegate::es256::jwk(key.verifying_key(), &kid)
    );
    let old = applegate::es256::thumbprint(previous.verifying_key());
    assert_eq!(
        keys["keys"][1],
        applegate::es256::jwk(previous.verifying_key(), &old)
    );
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let jwt = assertion_at(&mut b, &stack, "/signed", &[]).await.unwrap();
    assert_eq!(decode_header(&jwt).unwrap().kid.unwrap(), kid);
    verify(&jwt, &keys, &stack.url, "localhost").unwrap();
}
