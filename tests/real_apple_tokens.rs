//! Real id_tokens Apple issued, and a real server-to-server notification
//! Apple sent (../shared/apple), verify with our verifier under an
//! injected clock inside their lifetime, and fail once a byte is changed
//! or the clock passes `exp`.

mod common;

use applegate::apple::id_token::{self, half_hash, Expectations};
use applegate::apple::{AppleError, Jwks};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

const APPLE: &str = "https://appleid.apple.com";

struct Vector {
    name: String,
    jwt: String,
    claims: serde_json::Value,
    companion: serde_json::Value,
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(common::shared("apple/real_id_tokens.json")).unwrap();
    let all: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .map(|v| Vector {
            name: v["name"].as_str().unwrap().to_string(),
            jwt: v["jwt"].as_str().unwrap().to_string(),
            claims: v["claims"].clone(),
            companion: v["companion"].clone(),
        })
        .collect()
}

fn jwks() -> Jwks {
    Jwks::from_document(&std::fs::read(common::shared("apple/apple_jwks.json")).unwrap()).unwrap()
}

async fn verify(
    jwks: &Jwks,
    v: &Vector,
    jwt: &str,
    now: u64,
) -> Result<id_token::IdToken, AppleError> {
    let aud = vec![v.claims["aud"].as_str().unwrap().to_string()];
    let expect = Expectations {
        issuer: APPLE,
        audiences: &aud,
        nonce: None,
        now,
        leeway: 60,
    };
    id_token::verify(jwt, jwks, &expect).await
}

/// Changes one character of part `part` of a JWT at relative position `at`.
fn alter(jwt: &str, part: usize, at: f64) -> String {
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    let p = &mut parts[part];
    let i = ((p.len() as f64) * at) as usize;
    let c = p.as_bytes()[i];
    let replacement = if c == b'A' { 'B' } else { 'A' };
    p.replace_range(i..i + 1, &replacement.to_string());
    parts.join(".")
}

#[tokio::test]
async fn all_six_real_tokens_verify_inside_their_lifetime() {
    let jwks = jwks();
    let vs = vectors();
    assert_eq!(vs.len(), 6);
    for v in &vs {
        let iat = v.claims["iat"].as_u64().unwrap();
        let claims = verify(&jwks, v, &v.jwt, iat + 3600)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(claims.sub, v.claims["sub"].as_str().unwrap(), "{}", v.name);
        assert_eq!(
            claims.exp - claims.iat,
            86_400,
            "{}: Apple tokens live 24 h",
            v.name
        );
        // Booleans come as "true" strings in older tokens, as JSON booleans in newer ones.
        let want = |k: &str| v.claims.get(k).map(|x| x == "true" || x == true);
        assert_eq!(claims.email_verified, want("email_verified"), "{}", v.name);
        assert_eq!(
            claims.is_private_email,
            want("is_private_email"),
            "{}",
            v.name
        );
        if let Some(at) = v.companion["access_token"].as_str() {
            id_token::check_at_hash(&claims, at).unwrap();
            assert_eq!(
                claims.at_hash.as_deref(),
                Some(half_hash(at).as_str()),
                "{}",
                v.name
            );
        }
        if let Some(code) = v.companion["authorizationCode"].as_str() {
            assert_eq!(
                claims.c_hash.as_deref(),
                Some(half_hash(code).as_str()),
                "{}",
                v.name
            );
        }
    }
}

#[tokio::test]
async fn real_tokens_fail_once_altered() {
    let jwks = jwks();
    for v in &vectors() {
        let now = v.claims["iat"].as_u64().unwrap() + 3600;
        for part in 0..3 {
            for at in [0.1, 0.5, 0.9] {
                let bad = alter(&v.jwt, part, at);
                assert!(
                    verify(&jwks, v, &bad, now).await.is_err(),
                    "{} part {part} at {at} still verifies",
                    v.name
                );
            }
        }
        // A meaningful edit: same header and signature, payload with another email.
        let mut parts: Vec<&str> = v.jwt.split('.').collect();
        let mut claims = v.claims.clone();
        claims["email"] = "attacker@example.com".into();
        let payload = B64.encode(claims.to_string());
        parts[1] = &payload;
        let forged = parts.join(".");
        match verify(&jwks, v, &forged, now).await {
            Err(AppleError::InvalidToken(why)) => assert_eq!(why, "bad signature", "{}", v.name),
            other => panic!("{}: forged payload gave {other:?}", v.name),
        }
    }
}

#[tokio::test]
async fn real_tokens_fail_once_expired_or_for_another_audience() {
    let jwks = jwks();
    for v in &vectors() {
        let exp = v.claims["exp"].as_u64().unwrap();
        assert!(
            verify(&jwks, v, &v.jwt, exp + 60).await.is_ok(),
            "{}: within leeway",
            v.name
        );
        match verify(&jwks, v, &v.jwt, exp + 61).await {
            Err(AppleError::InvalidToken(why)) => assert_eq!(why, "expired", "{}", v.name),
            other => panic!("{}: past exp gave {other:?}", v.name),
        }
        let other = vec!["com.example.other".to_string()];
        let expect = Expectations {
            issuer: APPLE,
            audiences: &other,
            nonce: None,
            now: exp - 10,
            leeway: 60,
        };
        assert!(matches!(
            id_token::verify(&v.jwt, &jwks, &expect).await,
            Err(AppleError::InvalidToken(ref w)) if w == "wrong audience"
        ));
        let nonce = Expectations {
            audiences: &[v.claims["aud"].as_str().unwrap().to_string()],
            nonce: Some("a-nonce-we-sent"),
            ..expect
        };
        assert!(
            id_token::verify(&v.jwt, &jwks, &nonce).await.is_err(),
            "{}: nonce required but absent",
            v.name
        );
    }
}

/// A token naming a key Apple does not publish is refused.
#[tokio::test]
async fn unknown_kid_is_refused() {
    let jwks = jwks();
    let v = &vectors()[0];
    let header = B64.encode(r#"{"kid":"NOPE123","alg":"RS256"}"#);
    let rest = v.jwt.split_once('.').unwrap().1;
    let token = format!("{header}.{rest}");
    assert!(matches!(
        verify(&jwks, v, &token, v.claims["iat"].as_u64().unwrap()).await,
        Err(AppleError::UnknownKey(_))
    ));
}

/// The real `consent-revoked` notification Apple sent verifies and decodes
/// through the gateway's own code (its `aud` is another app's: the
/// expectations come from the file), its `events` string included; one
/// byte changed, a clock past `exp`, or another audience, and it is refused.
#[tokio::test]
async fn the_real_notification_verifies_and_decodes() {
    use applegate::apple::{notification, EventKind};
    let text = std::fs::read_to_string(common::shared("apple/real_s2s_notification.json")).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let payload = file["http_body"]["payload"].as_str().unwrap();
    let claims = &file["claims"];
    let aud = [claims["aud"].as_str().unwrap().to_string()];
    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    fn expect(now: u64, aud: &[String]) -> Expectations<'_> {
        Expectations {
            issuer: APPLE,
            audiences: aud,
            nonce: None,
            now,
            leeway: 60,
        }
    }
    let aud = &aud[..];
    let jwks = jwks();
    let n = notification::verify(payload, &jwks, &expect(iat + 5, aud))
        .await
        .unwrap();
    let events = &file["events_decoded"];
    assert_eq!(n.jti, claims["jti"].as_str().unwrap());
    assert_eq!(n.event.kind, EventKind::ConsentRevoked);
    assert_eq!(n.event.sub, events["sub"].as_str().unwrap());
    assert_eq!(n.event.event_time, events["event_time"].as_u64().unwrap());
    assert_eq!(
        (n.event.email.as_deref(), n.event.is_private_email),
        (None, None)
    );
    assert_eq!((n.iat, n.exp), (iat, Some(exp)));

    for part in 0..3 {
        let altered = alter(payload, part, 0.5);
        assert!(
            notification::verify(&altered, &jwks, &expect(iat + 5, aud))
                .await
                .is_err(),
            "part {part} altered"
        );
    }
    let late = notification::verify(payload, &jwks, &expect(exp + 61, aud)).await;
    assert!(
        matches!(late, Err(AppleError::InvalidToken(ref w)) if w == "notification: expired"),
        "{late:?}"
    );
    let ours = ["com.example.web".to_string()];
    let other = notification::verify(payload, &jwks, &expect(iat + 5, &ours)).await;
    assert!(
        matches!(other, Err(AppleError::InvalidToken(ref w)) if w == "wrong audience"),
        "{other:?}"
    );
}
