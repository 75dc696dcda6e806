//! `GET /.well-known/applegate/jwks.json`: the keys that verify the
//! gateway's identity assertions (`crate::assertion`). Public: they are
//! public keys, and an upstream fetches them without a session. Sent
//! `no-store` like every response of the gateway's own: a verifier keeps
//! the keys itself and fetches again when it meets an unknown `kid`.

use crate::proxy::gateway::Gateway;
use crate::proxy::respond::Response;

/// The JWKS document.
pub fn jwks(gw: &Gateway) -> Response {
    Response::json(200, &gw.assertions.jwks())
}
