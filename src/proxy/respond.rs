//! Responses the gateway writes itself: pages, JSON, redirects.
//!
//! Every such response is `Cache-Control: no-store` (it carries cookies or
//! depends on them), `nosniff`, and `Referrer-Policy: no-referrer` (so the
//! return path in a query never leaks to Apple or elsewhere). Pages have a
//! CSP that allows no script at all.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// A response to write downstream.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    headers: Vec<(&'static str, http::HeaderValue)>,
    body: Bytes,
}

impl Response {
    /// A bodiless response.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// An HTML page with `title` and `body_html` (already escaped).
    pub fn page(status: u16, title: &str, body_html: &str) -> Self {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>body{{font:16px/1.5 -apple-system,system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#1d1d1f}}\
a.button{{display:inline-block;background:#000;color:#fff;padding:.6em 1.2em;border-radius:.5em;text-decoration:none}}</style>\
</head><body><h1>{t}</h1>\n{body_html}\n</body></html>\n",
            t = escape(title)
        );
        Response {
            status,
            headers: vec![
                ("Content-Type", http::HeaderValue::from_static("text/html; charset=utf-8")),
                (
                    "Content-Security-Policy",
                    http::HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
                    ),
                ),
            ],
            body: Bytes::from(html),
        }
    }

    /// A JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Response {
            status,
            headers: vec![(
                "Content-Type",
                http::HeaderValue::from_static("application/json"),
            )],
            body: Bytes::from(value.to_string()),
        }
    }

    /// A redirect with `status` (302 or 303) to `location`.
    pub fn redirect(status: u16, location: String) -> Self {
        Response::empty(status).header("Location", location)
    }

    /// Adds a header. Values we build are valid header text; one that is
    /// not (it cannot come from a client: paths are ASCII-checked) is dropped.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        if let Ok(v) = http::HeaderValue::try_from(value.into()) {
            self.headers.push((name, v));
        }
        self
    }

    /// Adds a header value as is.
    pub fn push(&mut self, name: &'static str, value: http::HeaderValue) {
        self.headers.push((name, value));
    }

    /// Adds a `Set-Cookie`.
    pub fn cookie(self, set_cookie: String) -> Self {
        self.header("Set-Cookie", set_cookie)
    }

    /// Adds a `Set-Cookie` when there is one.
    pub fn cookie_if(self, set_cookie: Option<String>) -> Self {
        match set_cookie {
            Some(c) => self.cookie(c),
            None => self,
        }
    }
}

/// Writes `resp` to the client (no body for HEAD).
pub async fn send(session: &mut Session, resp: Response) -> pingora::Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let mut h = ResponseHeader::build(resp.status, Some(resp.headers.len() + 5))?;
    h.insert_header("Cache-Control", "no-store")?;
    h.insert_header("X-Content-Type-Options", "nosniff")?;
    h.insert_header("Referrer-Policy", "no-referrer")?;
    for (name, value) in resp.headers {
        h.append_header(name, value)?;
    }
    h.insert_header("Content-Length", resp.body.len().to_string())?;
    let empty = head || resp.body.is_empty();
    session.write_response_header(Box::new(h), empty).await?;
    if !empty {
        session.write_response_body(Some(resp.body), true).await?;
    }
    Ok(())
}

/// The one HTML escape (a leaf module, shared with the emulator's pages).
pub use crate::html::escape;
