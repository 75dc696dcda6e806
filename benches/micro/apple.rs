//! Apple's side: verifying an id_token (warm), the bearer cache, and the
//! cached client secret.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use applegate::apple::id_token::{self, Expectations};
use applegate::apple::{BearerCache, ClientSecret, Jwks};
use applegate::clock::ManualClock;
use applegate::kit;
use applegate::secret::Secret;
use criterion::Criterion;

use super::ready;

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

pub(crate) fn bench_tokens(c: &mut Criterion) {
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
    assert_eq!(
        check().unwrap().identity.sub,
        t["claims"]["sub"].as_str().unwrap()
    );
    let mut g = c.benchmark_group("bearer_check");
    g.bench_function("applegate_cached", |b| b.iter(|| check().unwrap()));
    g.bench_function("verify_every_time", |b| {
        b.iter(|| ready(id_token::verify(black_box(&jwt), &jwks, &expect)).unwrap())
    });
    g.finish();
}

pub(crate) fn bench_client_secret(c: &mut Criterion) {
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
