//! Responses the gateway writes itself: pages, JSON, redirects.
//!
//! Every such response is `Cache-Control: no-store` (it carries cookies or
//! depends on them), `nosniff`, and `Referrer-Policy: no-referrer` (so the
//! return path in a query never leaks to Apple or elsewhere). Pages have a
//! CSP that allows no script at all.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::request_id::{self, RequestId};

/// A response to write downstream.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    headers: Vec<(&'static str, http::HeaderValue)>,
    body: Bytes,
    /// Whether [`send`] adds the request id to the body, so a user can
    /// quote it (error pages and JSON errors: see [`Self::quoting_id`]).
    quote: Option<Quote>,
}

/// How the request id goes into a body.
#[derive(Debug, Clone, Copy)]
enum Quote {
    /// A paragraph at the end of a [`Response::page`].
    Page,
    /// A `request_id` member of a [`Response::json`] object.
    Json,
}

/// How every [`Response::page`] ends; the request id goes before it.
const PAGE_END: &str = "\n</body></html>\n";

impl Response {
    /// A bodiless response.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            quote: None,
        }
    }

    /// An HTML page with `title` and `body_html` (already escaped).
    pub fn page(status: u16, title: &str, body_html: &str) -> Self {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>body{{font:16px/1.5 -apple-system,system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#1d1d1f}}\
a.button{{display:inline-block;background:#000;color:#fff;padding:.6em 1.2em;border-radius:.5em;text-decoration:none}}</style>\
</head><body><h1>{t}</h1>\n{body_html}{PAGE_END}",
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
            quote: None,
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
            quote: None,
        }
    }

    /// This page or JSON object with the request id added when sent (what
    /// an error answer does: a user can quote it to whoever reads the log).
    pub fn quoting_id(mut self) -> Self {
        let is_page = self.body.ends_with(PAGE_END.as_bytes());
        let is_object = self.body.starts_with(b"{") && self.body.ends_with(b"}");
        self.quote = match (is_page, is_object) {
            (true, _) => Some(Quote::Page),
            (_, true) => Some(Quote::Json),
            _ => None,
        };
        self
    }

    /// The body, with `id` in it if it quotes the id.
    fn body_with(body: Bytes, quote: Option<Quote>, id: &RequestId) -> Bytes {
        match quote {
            None => body,
            Some(Quote::Page) => {
                let head = &body[..body.len() - PAGE_END.len()];
                let mut b = Vec::with_capacity(body.len() + 80);
                b.extend_from_slice(head);
                b.extend_from_slice(
                    format!(
                        "<p><small>Request id: <code>{}</code></small></p>",
                        escape(id.as_str())
                    )
                    .as_bytes(),
                );
                b.extend_from_slice(PAGE_END.as_bytes());
                Bytes::from(b)
            }
            Some(Quote::Json) => {
                let head = &body[..body.len() - 1];
                let mut b = Vec::with_capacity(body.len() + 40);
                b.extend_from_slice(head);
                if head.len() > 1 {
                    b.push(b',');
                }
                b.extend_from_slice(b"\"request_id\":");
                b.extend_from_slice(serde_json::Value::from(id.as_str()).to_string().as_bytes());
                b.push(b'}');
                Bytes::from(b)
            }
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

/// Writes `resp` to the client (no body for HEAD), with the request's
/// `X-Request-Id`.
pub async fn send(session: &mut Session, resp: Response, id: &RequestId) -> pingora::Result<()> {
    let head = session.req_header().method == http::Method::HEAD;
    let mut h = ResponseHeader::build(resp.status, Some(resp.headers.len() + 6))?;
    h.insert_header("Cache-Control", "no-store")?;
    h.insert_header("X-Content-Type-Options", "nosniff")?;
    h.insert_header("Referrer-Policy", "no-referrer")?;
    h.insert_header(request_id::HEADER, id.header_value())?;
    for (name, value) in resp.headers {
        h.append_header(name, value)?;
    }
    let body = Response::body_with(resp.body, resp.quote, id);
    h.insert_header("Content-Length", body.len().to_string())?;
    let empty = head || body.is_empty();
    session.write_response_header(Box::new(h), empty).await?;
    if !empty {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// The one HTML escape (a leaf module, shared with the emulator's pages).
pub use crate::html::escape;

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(r: Response, id: &str) -> String {
        let id = RequestId::from_trusted(&http::HeaderMap::from_iter([(
            request_id::HEADER,
            http::HeaderValue::from_str(id).unwrap(),
        )]))
        .unwrap();
        String::from_utf8(Response::body_with(r.body, r.quote, &id).to_vec()).unwrap()
    }

    /// Error answers carry the id, escaped for where it goes; other
    /// answers are sent as built.
    #[test]
    fn error_answers_quote_the_request_id() {
        let page = quoted(Response::page(403, "No", "<p>x</p>").quoting_id(), "a<b\"c");
        assert!(page.contains("<code>a&lt;b&quot;c</code>"), "{page}");
        assert!(page.ends_with(PAGE_END));
        let json = quoted(
            Response::json(401, &serde_json::json!({"error": "e"})).quoting_id(),
            "a\"b",
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["request_id"], "a\"b");
        assert_eq!(v["error"], "e");
        let plain = quoted(Response::page(200, "Hi", "<p>x</p>"), "abc");
        assert!(!plain.contains("abc"));
    }
}
