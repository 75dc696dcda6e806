//! `GET /oauth2/userinfo`: the signed-in identity as JSON (or 401).

use pingora::proxy::Session as Downstream;
use serde_json::json;

use super::paths::START;
use crate::proxy::gateway::Gateway;
use crate::proxy::respond::Response;

/// The signed-in identity: the same decision as everywhere (bearer tokens
/// only where a route takes them), and the same policy as sign-in: it
/// names the user to anyone some route's policy (or `[policy]`) admits,
/// since it serves no route's content.
pub async fn userinfo(gw: &Gateway, down: &Downstream) -> Response {
    let admitted = gw.identify(down, gw.bearer_enabled).await.and_then(|i| {
        match gw.admitted_anywhere(&i.caller.identity) {
            Ok(()) => Ok(i),
            Err(denied) => Err(denied.into()),
        }
    });
    let (caller, set_cookie) = match admitted {
        Ok(i) => (i.caller, i.set_cookie),
        Err(f) => return f.answer(false, START),
    };
    let id = &caller.identity;
    let resp = Response::json(
        200,
        &json!({
            "user": id.sub,
            "email": id.email,
            "email_verified": id.email_verified,
            "is_private_email": id.is_private_email,
            "name": id.name,
            "expires_at": id.expires_at(),
        }),
    );
    resp.cookie_if(set_cookie)
}
