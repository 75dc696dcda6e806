//! The emulator's authorize page and its `form_post` back to the client.

use sha2::{Digest, Sha256};

use super::{Grant, Shared, User};
use crate::html::escape;
use crate::httpd::{Reply, Request};
use crate::session::random_token;

/// A checked authorization request.
struct AuthRequest {
    client_id: String,
    team_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    id_token_in_response: bool,
}

/// Apple shows an error page (it does not redirect) for a bad request.
fn error_page(what: &str) -> Reply {
    Reply::html(
        400,
        format!(
            "<!doctype html><title>Error</title><h1>invalid_request</h1><p>{}</p>",
            escape(what)
        ),
    )
}

fn check(s: &Shared, get: impl Fn(&str) -> Option<String>) -> Result<AuthRequest, Reply> {
    let client_id = get("client_id").unwrap_or_default();
    let client = s
        .client(&client_id)
        .ok_or_else(|| error_page("invalid_client"))?;
    let redirect_uri = get("redirect_uri").unwrap_or_default();
    if !client.redirect_uris.contains(&redirect_uri) {
        return Err(error_page("Invalid web redirect url."));
    }
    let response_type = get("response_type").unwrap_or_default();
    let id_token_in_response = match response_type.as_str() {
        "code" => false,
        "code id_token" | "id_token code" => true,
        _ => {
            return Err(error_page(
                "Invalid response_type: expected code or code id_token.",
            ))
        }
    };
    let scopes: Vec<String> = get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes
        .iter()
        .any(|sc| sc != "name" && sc != "email" && sc != "openid")
    {
        return Err(error_page("Invalid scope."));
    }
    let wants_user_data = scopes.iter().any(|sc| sc == "name" || sc == "email");
    if wants_user_data && get("response_mode").as_deref() != Some("form_post") {
        return Err(error_page(
            "response_mode must be form_post when name or email scope is requested.",
        ));
    }
    Ok(AuthRequest {
        client_id,
        team_id: client.team_id.clone(),
        redirect_uri,
        scopes,
        state: get("state"),
        nonce: get("nonce"),
        id_token_in_response,
    })
}

const STYLE: &str = "body{font:16px/1.5 -apple-system,system-ui,sans-serif;max-width:26em;margin:3em auto;padding:0 1em}\
label{display:block;margin:.8em 0}input[type=text],input[type=email]{width:100%;padding:.4em;font:inherit}\
button{font:inherit;padding:.5em 1.2em;margin-right:.5em;border-radius:.5em;border:1px solid #000}\
.primary{background:#000;color:#fff}.note{color:#666;font-size:.9em}";

/// `GET /auth/authorize`: the sign-in page.
pub fn page(s: &Shared, req: &Request) -> Reply {
    let r = match check(s, |k| req.query_param(k)) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let mut fields = String::new();
    fields += &hidden("client_id", &r.client_id);
    fields += &hidden("redirect_uri", &r.redirect_uri);
    fields += &hidden("scope", &r.scopes.join(" "));
    fields += &hidden("response_mode", "form_post");
    fields += &hidden(
        "response_type",
        if r.id_token_in_response {
            "code id_token"
        } else {
            "code"
        },
    );
    if let Some(st) = &r.state {
        fields += &hidden("state", st);
    }
    if let Some(n) = &r.nonce {
        fields += &hidden("nonce", n);
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in with Apple (emulator)</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head><body>\
<h1>Sign in with Apple</h1><p class=\"note\">Apple emulator for <b>{client}</b>. No Apple account is used.</p>\
<form method=\"post\" action=\"/auth/authorize\">{fields}\
<label>Email <input type=\"email\" name=\"email\" value=\"jane.appleseed@example.com\" required></label>\
<label>First name <input type=\"text\" name=\"first_name\" value=\"Jane\"></label>\
<label>Last name <input type=\"text\" name=\"last_name\" value=\"Appleseed\"></label>\
<label><input type=\"checkbox\" name=\"hide_my_email\" value=\"1\"> Hide My Email (use a private relay address)</label>\
<button class=\"primary\" name=\"action\" value=\"continue\">Continue</button>\
<button name=\"action\" value=\"cancel\" formnovalidate>Cancel</button></form>\
<p class=\"note\"><a href=\"/admin\">Emulator admin</a>: revoke a signed-in user's consent.</p></body></html>",
        client = escape(&r.client_id),
    );
    Reply::html(200, html)
}

/// Apple's `sub`: stable per team and user, shaped like Apple's
/// (`001234.<32 hex>.1234`).
pub(super) fn sub_for(team_id: &str, email: &str) -> String {
    let d = Sha256::digest(format!("{team_id}\n{}", email.to_ascii_lowercase()).as_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    let a = u32::from_be_bytes([d[16], d[17], d[18], d[19]]) % 1_000_000;
    let b = u16::from_be_bytes([d[20], d[21]]) % 10_000;
    format!("{a:06}.{hex}.{b:04}")
}

/// A private relay address, stable per team and user.
fn relay_for(team_id: &str, email: &str) -> String {
    let d = Sha256::digest(format!("relay\n{team_id}\n{}", email.to_ascii_lowercase()).as_bytes());
    let local: String = d[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("{local}@privaterelay.appleid.com")
}

/// `POST /auth/authorize`: the person's choice, answered with the
/// auto-submitting `form_post` to the client's Return URL.
pub fn decide(s: &Shared, req: &Request) -> Reply {
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let r = match check(s, get) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let mut post: Vec<(&str, String)> = Vec::new();
    if let Some(st) = &r.state {
        post.push(("state", st.clone()));
    }
    if get("action").as_deref() == Some("cancel") {
        post.push(("error", "user_cancelled_authorize".into()));
        return form_post(&r.redirect_uri, &post);
    }
    let entered = get("email").unwrap_or_default().trim().to_string();
    if !entered.contains('@') {
        return error_page("Enter an email address.");
    }
    let is_private = get("hide_my_email").is_some();
    let user = User {
        sub: sub_for(&r.team_id, &entered),
        email: if is_private {
            relay_for(&r.team_id, &entered)
        } else {
            entered
        },
        is_private,
    };
    let now = s.opts.clock.now();
    let code = format!("c{}.0.mrqt.{}", random_token(16), random_token(12));
    let grant = Grant {
        client_id: r.client_id.clone(),
        redirect_uri: r.redirect_uri.clone(),
        user: user.clone(),
        nonce: r.nonce.clone(),
        issued_at: now,
        used: false,
    };
    let mut state = s.state();
    // Apple sends the user's name and email only on first consent.
    let first = state
        .consented
        .insert((r.client_id.clone(), user.sub.clone()));
    if first && !r.scopes.is_empty() {
        let mut u = serde_json::Map::new();
        if r.scopes.iter().any(|sc| sc == "name") {
            u.insert(
                "name".into(),
                serde_json::json!({
                    "firstName": get("first_name").unwrap_or_default(),
                    "lastName": get("last_name").unwrap_or_default(),
                }),
            );
        }
        if r.scopes.iter().any(|sc| sc == "email") {
            u.insert("email".into(), user.email.clone().into());
        }
        post.push(("user", serde_json::Value::Object(u).to_string()));
    }
    if r.id_token_in_response {
        let beside = super::token::Beside::Code(&code);
        post.push((
            "id_token",
            super::token::id_token(s, &state, &grant, beside),
        ));
    }
    post.push(("code", code.clone()));
    state.issued.push(code.clone());
    state.codes.insert(code, grant);
    drop(state);
    form_post(&r.redirect_uri, &post)
}

/// The page that POSTs `fields` to `action` as soon as it loads, as
/// Apple's does (with a button for browsers without script).
fn form_post(action: &str, fields: &[(&str, String)]) -> Reply {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                escape(v)
            )
        })
        .collect();
    Reply::html(
        200,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signing in…</title></head>\
<body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">{inputs}\
<noscript><button>Continue</button></noscript></form></body></html>",
            escape(action)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subs_are_stable_and_apple_shaped() {
        let a = sub_for("TEAM000001", "Jane@Example.com");
        assert_eq!(a, sub_for("TEAM000001", "jane@example.com"));
        assert_ne!(a, sub_for("TEAM000002", "jane@example.com"));
        let parts: Vec<&str> = a.split('.').collect();
        assert_eq!(
            (parts.len(), parts[0].len(), parts[1].len(), parts[2].len()),
            (3, 6, 32, 4)
        );
        assert!(relay_for("T", "j@e.com").ends_with("@privaterelay.appleid.com"));
    }

    /// A `code id_token` answer hashes its code into the id_token's
    /// `c_hash`, as Apple's does; checked with the gateway's own hash.
    #[test]
    fn code_id_token_answers_carry_the_codes_c_hash() {
        use base64::Engine;
        let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let client = super::super::Client::new(
            "c",
            "T",
            "K",
            *key.verifying_key(),
            "http://localhost/cb".into(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let emu =
            super::super::Emulator::start_local(listener, client, crate::clock::system()).unwrap();
        let body =
            "client_id=c&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&response_type=code+id_token\
                    &response_mode=form_post&email=j%40example.com&action=continue";
        let req = Request {
            method: http::Method::POST,
            path: "/auth/authorize".into(),
            query: None,
            headers: http::HeaderMap::new(),
            body: body.into(),
        };
        let page = String::from_utf8(decide(&emu.shared, &req).body.to_vec()).unwrap();
        let field = |name: &str| {
            let at = format!("name=\"{name}\" value=\"");
            let rest =
                &page[page.find(&at).unwrap_or_else(|| panic!("{name} in {page}")) + at.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        };
        let (code, id_token) = (field("code"), field("id_token"));
        let claims = id_token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["c_hash"], crate::apple::id_token::half_hash(&code));
        assert!(claims.get("at_hash").is_none());
    }
}
