//! The emulator's token and revoke endpoints, and its client-secret check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::Signature;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::keys::SigningKey;
use super::{Client, Grant, Shared, State, Tamper};
use crate::config::MAX_CLIENT_SECRET_LIFETIME;
use crate::httpd::{Reply, Request};
use crate::session::random_token;

/// Codes live five minutes.
const CODE_LIFETIME: u64 = 300;
/// id_tokens live a day.
const ID_TOKEN_LIFETIME: u64 = 86_400;

/// Apple's error answer.
fn oauth_error(error: &str, description: Option<&str>) -> Reply {
    let body = match description {
        Some(d) => json!({"error": error, "error_description": d}),
        None => json!({"error": error}),
    };
    apple_json(400, &body)
}

/// Apple's token responses say ISO-8859-1 and must not be cached.
fn apple_json(status: u16, body: &serde_json::Value) -> Reply {
    Reply::new(
        status,
        "application/json;charset=ISO-8859-1",
        body.to_string(),
    )
    .header("Pragma", "no-cache")
}

fn form(req: &Request) -> Result<Vec<(String, String)>, Reply> {
    let ct = req
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(oauth_error(
            "invalid_request",
            Some("Content-Type must be application/x-www-form-urlencoded"),
        ));
    }
    Ok(form_urlencoded::parse(&req.body).into_owned().collect())
}

#[derive(Deserialize)]
struct SecretHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct SecretClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Checks a client secret the way Apple does; `Err` carries why (for the
/// emulator's own tests; Apple's answer is a bare `invalid_client`).
fn verify_client_secret(s: &Shared, client: &Client, jwt: &str) -> Result<(), String> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT".into());
    };
    let header: SecretHeader = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad header")?;
    if header.alg != "ES256" {
        return Err(format!("alg {} is not ES256", header.alg));
    }
    if header.kid.as_deref() != Some(client.key_id.as_str()) {
        return Err("kid is not the registered Key ID".into());
    }
    let sig = B64.decode(sig).map_err(|_| "signature not base64url")?;
    // JOSE ES256 is exactly 64 bytes r‖s; a DER signature is refused.
    let sig = Signature::from_slice(&sig).map_err(|_| "signature is not 64-byte r||s")?;
    client
        .public_key
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "bad signature")?;
    let claims: SecretClaims = B64
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("bad claims")?;
    let now = s.opts.clock.now();
    if claims.iss != client.team_id {
        return Err("iss is not the Team ID".into());
    }
    if claims.sub != client.client_id {
        return Err("sub is not the client_id".into());
    }
    if claims.aud != s.base_url && claims.aud != crate::config::APPLE_BASE_URL {
        return Err("wrong aud".into());
    }
    if claims.iat > now + 60 {
        return Err("iat in the future".into());
    }
    if claims.exp <= now {
        return Err("expired".into());
    }
    if claims.exp.saturating_sub(claims.iat) > MAX_CLIENT_SECRET_LIFETIME.as_secs() {
        return Err("lifetime over 15777000 s".into());
    }
    Ok(())
}

/// Authenticates the client of a token or revoke request.
fn authenticate<'a>(
    s: &'a Shared,
    req: &Request,
    form: &[(String, String)],
) -> Result<&'a Client, Reply> {
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // client_secret_post only: Apple does not take HTTP Basic.
    if req.header("authorization").is_some() {
        return Err(oauth_error("invalid_client", None));
    }
    let client = get("client_id")
        .and_then(|id| s.client(id))
        .ok_or_else(|| oauth_error("invalid_client", None))?;
    let secret = get("client_secret").unwrap_or_default();
    if let Err(why) = verify_client_secret(s, client, secret) {
        tracing::debug!(target: "applegate::emulator", %why, "client secret refused");
        return Err(oauth_error("invalid_client", None));
    }
    s.state().client_secrets.insert(secret.to_string());
    Ok(client)
}

/// OpenID Connect's left-half hash (OpenID Connect Core §3.1.3.6 for
/// `at_hash`, §3.3.2.11 for `c_hash`): base64url of the first half of the
/// SHA-256 of the value, the hash of RS256.
///
/// The gateway has its own (`apple::id_token::half_hash`) and this one is
/// kept apart on purpose: the emulator stands for Apple, so a mistake in
/// the gateway's must show up as a mismatch here, not be mirrored.
fn left_half_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    B64.encode(&digest[..digest.len() / 2])
}

/// What an id_token is issued beside, and hashed into it.
pub(super) enum Beside<'a> {
    /// The token endpoint's access token (`at_hash`).
    AccessToken(&'a str),
    /// The authorization code of a `code id_token` response (`c_hash`).
    Code(&'a str),
}

/// An id_token for `grant`, signed with the current key unless tampered.
pub(super) fn id_token(s: &Shared, state: &State, grant: &Grant, beside: Beside) -> String {
    let now = s.opts.clock.now();
    let mut claims = json!({
        "iss": s.base_url,
        "aud": grant.client_id,
        "exp": now + ID_TOKEN_LIFETIME,
        "iat": now,
        "sub": grant.user.sub,
        "email": grant.user.email,
        "email_verified": "true",
        "auth_time": grant.issued_at,
        "nonce_supported": true,
    });
    if grant.user.is_private {
        claims["is_private_email"] = "true".into();
    }
    if let Some(n) = &grant.nonce {
        claims["nonce"] = n.clone().into();
    }
    match beside {
        Beside::AccessToken(at) => claims["at_hash"] = left_half_hash(at).into(),
        Beside::Code(code) => claims["c_hash"] = left_half_hash(code).into(),
    }
    let key = state.keys.current();
    match state.tamper {
        None => key.sign(&claims),
        Some(t) => tampered(key, claims, t, now),
    }
}

fn tampered(key: &SigningKey, mut claims: serde_json::Value, t: Tamper, now: u64) -> String {
    match t {
        Tamper::WrongNonce => claims["nonce"] = "not-the-nonce-you-sent".into(),
        Tamper::WrongAudience => claims["aud"] = "com.attacker.app".into(),
        Tamper::WrongIssuer => claims["iss"] = "https://appleid.attacker.example".into(),
        Tamper::Expired => {
            claims["iat"] = (now - 2 * ID_TOKEN_LIFETIME).into();
            claims["exp"] = (now - ID_TOKEN_LIFETIME).into();
        }
        Tamper::AlgNone => {
            let header = B64.encode(json!({"alg": "none", "kid": key.kid}).to_string());
            return format!("{header}.{}.", B64.encode(claims.to_string()));
        }
        Tamper::UnknownKey => return SigningKey::generate().sign(&claims),
        Tamper::BadSignature => {
            let jwt = key.sign(&claims);
            let (rest, sig) = jwt.rsplit_once('.').unwrap_or((&jwt, ""));
            let mut sig = B64.decode(sig).unwrap_or_default();
            if let Some(b) = sig.first_mut() {
                *b ^= 0x01;
            }
            return format!("{rest}.{}", B64.encode(sig));
        }
    }
    key.sign(&claims)
}

/// `POST /auth/token`.
pub fn token(s: &Shared, req: &Request) -> Reply {
    let form = match form(req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let client = match authenticate(s, req, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let now = s.opts.clock.now();
    let mut state = s.state();
    match get("grant_type") {
        Some("authorization_code") => {
            let code = get("code").unwrap_or_default();
            let Some(grant) = state.codes.get_mut(code) else {
                return oauth_error(
                    "invalid_grant",
                    Some("The code has expired or has been revoked."),
                );
            };
            if grant.used {
                return oauth_error("invalid_grant", Some("The code has already been used."));
            }
            if now > grant.issued_at + CODE_LIFETIME {
                return oauth_error(
                    "invalid_grant",
                    Some("The code has expired or has been revoked."),
                );
            }
            if grant.client_id != client.client_id {
                return oauth_error(
                    "invalid_grant",
                    Some("The code was issued to another client."),
                );
            }
            // Apple lists a mismatched redirect URI under invalid_client.
            if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return oauth_error("invalid_client", None);
            }
            grant.used = true;
            let grant = grant.clone();
            let access = format!("a{}.0.mrqt.{}", random_token(16), random_token(12));
            let refresh = format!("r{}.0.mrqt.{}", random_token(16), random_token(12));
            let id_token = id_token(s, &state, &grant, Beside::AccessToken(&access));
            state.tamper = None;
            state
                .issued
                .extend([access.clone(), refresh.clone(), id_token.clone()]);
            state.grants.issue(refresh.clone(), access.clone(), grant);
            apple_json(
                200,
                &json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                        "refresh_token": refresh, "id_token": id_token}),
            )
        }
        Some("refresh_token") => {
            let token = get("refresh_token").unwrap_or_default();
            let Some(grant) = state.grants.by_refresh(token).cloned() else {
                return oauth_error(
                    "invalid_grant",
                    Some("The refresh token is invalid or has been revoked."),
                );
            };
            if grant.client_id != client.client_id {
                return oauth_error(
                    "invalid_grant",
                    Some("The refresh token was issued to another client."),
                );
            }
            let access = format!("a{}.0.mrqt.{}", random_token(16), random_token(12));
            let mut g = grant;
            g.nonce = None;
            let id_token = id_token(s, &state, &g, Beside::AccessToken(&access));
            state.issued.extend([access.clone(), id_token.clone()]);
            state.grants.add_access(token, access.clone());
            apple_json(
                200,
                &json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "id_token": id_token}),
            )
        }
        _ => oauth_error("unsupported_grant_type", None),
    }
}

/// `POST /auth/revoke`: ends the grant of a refresh or access token
/// (`token`); Apple answers 200 whether or not the token was live.
pub fn revoke(s: &Shared, req: &Request) -> Reply {
    let form = match form(req) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let client = match authenticate(s, req, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some((_, t)) = form.iter().find(|(k, _)| k == "token") {
        let mut st = s.state();
        // Apple's revoke ends the user's authorization of the app, not
        // only the token: their next sign-in is a first consent again, and
        // Apple sends the `user` field (the name) once more.
        if let Some(sub) = st.grants.revoke(&client.client_id, t) {
            st.consented.remove(&(client.client_id.clone(), sub));
        }
    }
    Reply::new(200, "text/plain", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_half_hashes_are_openid_connects() {
        // The examples of OpenID Connect Core, Appendix A.3 and A.4.
        assert_eq!(
            left_half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(
            left_half_hash("Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"),
            "LDktKdoQak3Pk0cnXxCltA"
        );
    }
}
