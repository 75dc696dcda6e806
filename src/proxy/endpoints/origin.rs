//! Whether a request to a state-changing endpoint comes from another site:
//! the one check that sign-out and revoke share.

use pingora::proxy::Session as Downstream;

use crate::proxy::gateway::Gateway;

/// Whether a request comes from another site: `Sec-Fetch-Site:
/// cross-site` (every current browser sends it), or an `Origin` that is
/// not ours (older browsers; browsers send `Origin` with every POST, so a
/// sibling subdomain's form is caught here too). A request with neither
/// header is not a browser's, and cannot carry a victim's cookie.
pub(super) fn is_cross_site(gw: &Gateway, down: &Downstream) -> bool {
    let h = &down.req_header().headers;
    let fetch_cross = h
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    let foreign_origin = h
        .get_all(http::header::ORIGIN)
        .iter()
        .any(|o| o.as_bytes() != gw.public.origin.as_bytes());
    fetch_cross || foreign_origin
}
