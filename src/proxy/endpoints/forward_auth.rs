//! `GET /oauth2/auth`: forward auth for nginx `auth_request`, Traefik
//! `forwardAuth`, Caddy `forward_auth`: 202 with the identity headers, or
//! 401 (403 when the original request's route's policy refuses).

use std::sync::Arc;

use pingora::proxy::Session as Downstream;

use super::paths::START;
use crate::canonical;
use crate::config::{AuthMode, EncodedSlashes};
use crate::policy::Policy;
use crate::proxy::ctx::Ctx;
use crate::proxy::error::Failure;
use crate::proxy::gateway::{Gateway, Identified};
use crate::proxy::respond::Response;

/// Forward auth: the ingress in front asks, for each request, whether it
/// may pass and who makes it. Any method is accepted (the ingress may
/// mirror the original one); the answer never has a body to forward.
pub async fn forward_auth(gw: &Gateway, down: &Downstream, ctx: &mut Ctx) -> Response {
    // The original request's route decides what may vouch for it, as it
    // would if the request came through the gateway. Without a report of
    // it (none sent, or not from a trusted proxy) any route's credentials
    // count: session cookies, and bearer tokens if some route takes them.
    // Its policy too; without a report, `[policy]` (fail closed: a
    // route's looser policy counts only for requests known to be its own).
    let (auth, policy) = match original_route(gw, down, ctx) {
        Ok(Some(route)) => route,
        Ok(None) if gw.bearer_enabled => (AuthMode::Bearer, &gw.policy),
        Ok(None) => (AuthMode::Required, &gw.policy),
        Err(f) => return f.answer(false, START),
    };
    if auth == AuthMode::Public {
        return Response::empty(202);
    }
    match gw
        .identify_admitted(down, auth == AuthMode::Bearer, policy)
        .await
    {
        Ok(Identified { caller, set_cookie }) => {
            let mut resp = Response::empty(202);
            for h in caller.headers.iter() {
                resp.push(h.title, h.value.clone());
            }
            if gw.disabled_emails.is_disabled(&caller.identity.sub) {
                let h = crate::identity::headers::email_disabled();
                resp.push(h.title, h.value);
            }
            // The ingress passes it to the browser when told to (nginx:
            // `auth_request_set` and `add_header Set-Cookie`; see README).
            resp.cookie_if(set_cookie)
        }
        Err(f) => f.answer(false, START),
    }
}

/// The route of the original request as the ingress in front reports it
/// (`X-Original-URI` from nginx, `X-Forwarded-Uri` from Traefik and Caddy,
/// `X-Forwarded-Host`), canonicalized like any request: a path or host
/// that could be read two ways is refused here too, so the ingress never
/// passes it on. Only a trusted proxy's report counts; from anyone else it
/// is ignored. An original request no route covers needs a session and
/// `[policy]`.
fn original_route<'g>(
    gw: &'g Gateway,
    down: &Downstream,
    ctx: &Ctx,
) -> Result<Option<(AuthMode, &'g Arc<Policy>)>, Failure> {
    let trusted = ctx.peer.is_some_and(|p| gw.trusted_proxies.contains(p));
    if !trusted {
        return Ok(None);
    }
    let req = down.req_header();
    let headers = &req.headers;
    let mut values = headers
        .get_all("x-original-uri")
        .iter()
        .chain(headers.get_all("x-forwarded-uri").iter());
    let Some(raw) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Failure::BadRequest("more than one original URI"));
    }
    let raw = raw
        .to_str()
        .map_err(|_| Failure::BadRequest("original URI is not text"))?;
    let path = raw.split_once('?').map_or(raw, |(p, _)| p);
    let path = canonical::path::canonicalize(path).map_err(|e| Failure::BadRequest(e.reason()))?;
    let forwarded_hosts: Vec<&[u8]> = headers
        .get_all("x-forwarded-host")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let host = match forwarded_hosts.as_slice() {
        [] => canonical::host::canonicalize(
            headers
                .get_all(http::header::HOST)
                .iter()
                .map(|v| v.as_bytes()),
            req.raw_path(),
        ),
        [one] => canonical::host::parse(one),
        _ => Err(canonical::HostRefused::Duplicate),
    }
    .map_err(|e| Failure::BadRequest(e.reason()))?;
    let route = gw.routes.find(&host, &path);
    if path.encoded_slash && route.is_none_or(|r| r.encoded_slashes == EncodedSlashes::Reject) {
        return Err(Failure::BadRequest(
            canonical::PathRefused::EncodedSlash.reason(),
        ));
    }
    Ok(Some(route.map_or((AuthMode::Required, &gw.policy), |r| {
        (r.auth, &r.policy)
    })))
}
