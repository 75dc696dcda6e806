//! `server.redirect_http`: the plain-HTTP listener that sends browsers to
//! the https public URL.
//!
//! Every request is answered here, none is proxied: a redirect to the
//! configured public origin with the request's own path and query, or,
//! for the health path, `200 OK` so a load balancer can probe the port.
//! The target's host is always the public URL's, never the request's
//! `Host` (or an absolute-form target's): a redirect built from what the
//! client sent would be an open redirect.
//!
//! Status: `301 Moved Permanently` for GET and HEAD, which every client
//! follows; `308 Permanent Redirect` for other methods, because 301 lets a
//! client turn a POST into a GET and drop its body, and 308 does not
//! (RFC 9110 §15.4.2, §15.4.9).
//!
//! The listener sits behind the same edge as the main one ([`crate::edge`]):
//! the connection cap, and the head deadline and size cap.

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The path answered with `200 OK` instead of a redirect (oauth2-proxy's
/// name for its liveness probe).
pub const HEALTH_PATH: &str = "/ping";

/// The redirecting app.
pub struct Redirect {
    /// `https://host[:port]`, no trailing slash.
    origin: String,
}

impl Redirect {
    /// Redirects to `origin` (the public URL's origin).
    pub fn new(origin: &str) -> Redirect {
        Redirect {
            origin: origin.trim_end_matches('/').to_string(),
        }
    }

    /// Where a request with this method and URI is sent, and with which
    /// status; `None` for the health path.
    pub fn decide(&self, method: &Method, uri: &http::Uri) -> Option<(StatusCode, String)> {
        if uri.path() == HEALTH_PATH {
            return None;
        }
        // Only the path and query travel; an asterisk-form or
        // authority-form target has none and goes to the root.
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| p.starts_with('/'))
            .unwrap_or("/");
        let status = if matches!(*method, Method::GET | Method::HEAD) {
            StatusCode::MOVED_PERMANENTLY
        } else {
            StatusCode::PERMANENT_REDIRECT
        };
        Some((status, format!("{}{path_and_query}", self.origin)))
    }
}

#[async_trait]
impl ServeHttp for Redirect {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // The head is complete: what is written now is ours.
        if let Some(guard) = session.stream().and_then(crate::edge::HeadGuard::of) {
            guard.reached_proxy();
        }
        let req = session.req_header();
        let (status, location, body) = match self.decide(&req.method, &req.uri) {
            None => (StatusCode::OK, None, b"OK\n".to_vec()),
            Some((status, location)) => (status, Some(location), Vec::new()),
        };
        let mut resp = Response::builder()
            .status(status)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CACHE_CONTROL, "no-store");
        if let Some(l) = location {
            resp = resp.header(http::header::LOCATION, l);
        }
        // The parts are all valid (a checked origin and a path the
        // request parser accepted); an empty 500 if that ever changed.
        resp.body(body).unwrap_or_else(|_| {
            let mut r = Response::new(Vec::new());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(method: Method, target: &str) -> Option<(u16, String)> {
        Redirect::new("https://app.example.com")
            .decide(&method, &target.parse().unwrap())
            .map(|(s, l)| (s.as_u16(), l))
    }

    /// Path and query are kept; the host is the public URL's, even when
    /// the target is absolute-form and names another.
    #[test]
    fn redirects_to_the_public_origin_only() {
        assert_eq!(
            decide(Method::GET, "/a/b?c=d&e"),
            Some((301, "https://app.example.com/a/b?c=d&e".into()))
        );
        assert_eq!(
            decide(Method::POST, "http://evil.example/x?y"),
            Some((308, "https://app.example.com/x?y".into()))
        );
        assert_eq!(
            decide(Method::OPTIONS, "*"),
            Some((308, "https://app.example.com/".into()))
        );
        assert_eq!(decide(Method::GET, "/ping"), None);
        assert_eq!(
            decide(Method::GET, "/ping/x"),
            Some((301, "https://app.example.com/ping/x".into()))
        );
    }
}
