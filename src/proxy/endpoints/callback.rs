//! `POST /oauth2/callback`: Apple's `form_post`, where a sign-in ends.
//!
//! Apple posts `code`, `state`, maybe `user` (first consent only) or
//! `error`. The state must match the login-state cookie set at start; the
//! code is exchanged with Apple and the id_token from that exchange (over
//! TLS, straight from Apple) is the one verified. The name in `user` is
//! remembered for the user's later sign-ins ([`crate::session::Names`]).

use std::borrow::Cow;

use pingora::proxy::Session as Downstream;
use serde::Deserialize;

use super::body::read_body;
use super::paths::{location, START};
use crate::proxy::error::{Chain, Failure};
use crate::proxy::gateway::{cookie_headers, Gateway};
use crate::proxy::rate_limit::RETRY_AFTER;
use crate::proxy::respond::{escape, Response};
use crate::session::find_only_cookie;
use crate::session::refresh::Kept;

/// The fields Apple posts to the callback.
#[derive(Default)]
struct CallbackForm {
    code: Option<String>,
    state: Option<String>,
    user: Option<String>,
    error: Option<String>,
}

impl CallbackForm {
    /// Parses the body; a repeated field is refused, so no parameter
    /// pollution can pick which copy we read.
    fn parse(body: &[u8]) -> Result<Self, Failure> {
        let mut f = CallbackForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            let slot = match k.as_ref() {
                "code" => &mut f.code,
                "state" => &mut f.state,
                "user" => &mut f.user,
                "error" => &mut f.error,
                // id_token is ignored: the one from the code exchange comes
                // straight from Apple over TLS and is the one we verify.
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(Failure::BadRequest("repeated callback field"));
            }
        }
        Ok(f)
    }
}

/// The first-consent `user` field: `{"name":{"firstName","lastName"},"email"}`.
/// Unsigned, so used for display only, never for identity.
fn display_name(user_json: &str) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Name {
        first_name: Option<String>,
        last_name: Option<String>,
    }
    #[derive(Deserialize)]
    struct User {
        name: Option<Name>,
    }
    let user: User = serde_json::from_str(user_json).ok()?;
    let name = user.name?;
    let full = [name.first_name, name.last_name]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let full: String = full.chars().filter(|c| !c.is_control()).take(200).collect();
    (!full.is_empty()).then_some(full)
}

/// Finishes a sign-in: Apple's `form_post` checked against the
/// login-state cookie, the code exchanged, the session cookie set.
pub async fn callback(gw: &Gateway, down: &mut Downstream) -> Response {
    let (outcome, resp) = finish_callback(gw, down).await;
    gw.metrics.sign_in(&outcome);
    resp
}

/// A failed sign-in's outcome for `applegate_sign_ins_total` (of
/// [`crate::metrics::SIGN_IN_OUTCOMES`]).
fn outcome_of(f: &Failure) -> Cow<'static, str> {
    Cow::Borrowed(match f {
        Failure::Apple(e) => return Cow::Owned(format!("apple_{}", e.kind())),
        Failure::Denied(_) => "denied",
        Failure::Login(_) => "state_invalid",
        Failure::RateLimited(_) => "rate_limited",
        Failure::State(_) => "store_error",
        _ => "bad_request",
    })
}

/// [`callback`]'s work: how it ended and the answer.
async fn finish_callback(gw: &Gateway, down: &mut Downstream) -> (Cow<'static, str>, Response) {
    let refused = |f: Failure, again: &str| (outcome_of(&f), f.answer(true, again));
    let form_type = down
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return refused(Failure::BadRequest("expected a form post"), START);
    }
    let form = match read_body(down, gw.max_callback_body)
        .await
        .and_then(|b| CallbackForm::parse(&b))
    {
        Ok(f) => f,
        Err(f) => return refused(f, START),
    };
    let now = gw.clock.now();
    let state = form.state.clone().unwrap_or_default();
    let clear = gw.login.clear(&state);
    let cookie_value = gw
        .login
        .name_for(&state)
        // Two login cookies of one name: take neither (fails as missing).
        .and_then(|name| {
            find_only_cookie(cookie_headers(down), &name)
                .ok()
                .flatten()
                .map(str::to_string)
        });
    let login = gw.login.finish(&state, cookie_value.as_deref(), now);
    let return_to = login
        .as_ref()
        .map(|l| l.return_to.clone())
        .unwrap_or_else(|_| "/".into());
    let again = gw.start_url(&return_to);

    let cancelled = form.error.as_deref() == Some("user_cancelled_authorize");
    let result = match (&form.error, login) {
        (Some(_), _) if cancelled => Ok(Response::page(
            200,
            "Sign-in cancelled",
            &format!(
                "<p>You cancelled Sign in with Apple. Nothing was shared.</p><p><a class=\"button\" href=\"{}\">Try again</a></p>",
                escape(&again)
            ),
        )),
        (Some(_), _) => Err(Failure::BadRequest("Apple reported an error")),
        (None, Err(e)) => Err(Failure::Login(e)),
        (None, Ok(login)) => finish_sign_in(gw, &form, &login.nonce, now)
            .await
            .map(|set| Response::redirect(303, location(&gw.public.origin, &login.return_to)).cookie(set)),
    };
    let (outcome, resp) = match result {
        Ok(r) if cancelled => (Cow::Borrowed("cancelled"), r),
        Ok(r) => (Cow::Borrowed("ok"), r),
        Err(f) => refused(f, &again),
    };
    (outcome, resp.cookie_if(clear))
}

/// Exchanges the code, checks the id_token and the policy, and returns the
/// session's `Set-Cookie`. The identity comes from the verified id_token
/// alone; the unsigned `user` field only adds a display name.
async fn finish_sign_in(
    gw: &Gateway,
    form: &CallbackForm,
    nonce: &str,
    now: u64,
) -> Result<String, Failure> {
    let code = form
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 512)
        .ok_or(Failure::BadRequest("missing code"))?;
    if !gw.limits.admit_apple_call() {
        tracing::warn!("cap on token calls to Apple reached");
        return Err(Failure::RateLimited(RETRY_AFTER));
    }
    let (tokens, claims) = gw.apple.sign_in(code, nonce).await?;
    let mut identity = claims.identity(gw.session_cookie.new_proof(now));
    // Not the return path's route alone: a user some route admits signs
    // in, and each request is decided on its own route's policy.
    gw.admitted_anywhere(&identity)?;
    // After the policy: no name is kept for a user the gateway refuses.
    // Before the refresh token: if keeping that fails, the retry finds
    // the name Apple will not send again.
    let sent = form.user.as_deref().and_then(display_name);
    identity.name = session_name(gw, &identity.sub, sent).await;
    // Kept before the session is given: a session whose token was lost
    // could be neither re-validated nor revoked at Apple.
    if let (Some(token), Some(id)) = (tokens.refresh_token, identity.session_id()) {
        let kept = Kept {
            sub: identity.sub.clone(),
            token,
            checked_at: now,
            until: identity.expires_at(),
        };
        gw.refresh_tokens
            .keep(id, &kept)
            .await
            .map_err(Failure::State)?;
    }
    tracing::info!(sub = %identity.sub, "signed in");
    Ok(gw
        .session_cookie
        .set_cookie(&identity, now)
        .expect("a session proof, made just above, always seals"))
}

/// The session's display name: the one this form sent (remembered for
/// the user's later sign-ins, which come without it, replacing an older
/// one), else the one remembered. A store failure does not fail the
/// sign-in (fail open, on purpose): the name is display only, never
/// identity or access, and refusing the sign-in would not save it either
/// (Apple will not send it again). So the session goes on with the name at
/// hand, and the log says what was lost (by `sub`, never the name).
async fn session_name(gw: &Gateway, sub: &str, sent: Option<String>) -> Option<String> {
    match sent {
        Some(name) => {
            if let Err(e) = gw.names.remember(sub, &name).await {
                tracing::warn!(sub = %sub, error = %Chain(&e), "cannot remember the name Apple sent: this session has it, later ones will not");
            }
            Some(name)
        }
        None => gw.names.get(sub).await.unwrap_or_else(|e| {
            tracing::warn!(sub = %sub, error = %Chain(&e), "cannot read the remembered name: this session has none");
            None
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_field_gives_a_display_name_only() {
        let u = r#"{"name":{"firstName":"Jane","lastName":"Appleseed"},"email":"j@example.com"}"#;
        assert_eq!(display_name(u).as_deref(), Some("Jane Appleseed"));
        assert_eq!(display_name("not json"), None);
        assert_eq!(display_name(r#"{"email":"x@y"}"#), None);
    }

    #[test]
    fn repeated_fields_are_refused() {
        assert!(CallbackForm::parse(b"state=a&state=b&code=c").is_err());
        let f = CallbackForm::parse(b"state=a&code=c&id_token=x&extra=1").unwrap();
        assert_eq!(
            (f.state.as_deref(), f.code.as_deref()),
            (Some("a"), Some("c"))
        );
    }
}
