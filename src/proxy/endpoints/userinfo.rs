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
    let admitted = gw.identify(down, gw.bearer_enabled).await.and_then(|c| {
        match gw.admitted_anywhere(&c.identity) {
            Ok(()) => Ok(c),
            Err(denied) => Err(denied.into()),
        }
    });
    let caller = match admitted {
        Ok(caller) => caller,
        Err(f) => return f.answer(false, START),
    };
    let id = &caller.identity;
    Response::json(
        200,
        &json!({
            "user": id.sub,
            "email": id.email,
            "email_verified": id.email_verified,
            "is_private_email": id.is_private_email,
            "name": id.name,
            "expires_at": id.expires_at(),
        }),
    )
}
