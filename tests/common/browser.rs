//! A scripted browser: follows the sign-in flow over real HTTP and keeps
//! cookies the way browsers do, including SameSite.
//!
//! The point is the cross-site `form_post`: Apple's page (another site)
//! POSTs to our callback, and a browser sends only `SameSite=None` cookies
//! with that request. This jar enforces it, so a login-state cookie with
//! the wrong attributes makes the flow fail here as it would in Chrome.
//!
//! Here the browser and its requests; in `browser/` the cookie jar, the
//! pages it reads and the sign-in flow through Apple's page.

#![allow(dead_code)]

// Children by path, not by name: benches/load includes this file with
// `#[path]`, and there a plain `mod jar;` would look for tests/common/jar.rs.
#[path = "browser/jar.rs"]
mod jar;
#[path = "browser/page.rs"]
mod page;
#[path = "browser/sign_in.rs"]
mod sign_in;

use std::time::Duration;

use reqwest::header::HeaderValue;

use jar::site;
// The types the tests name as `browser::…`; not every test crate uses each.
#[allow(unused_imports)]
pub use jar::{SameSite, StoredCookie};
pub use page::Page;
#[allow(unused_imports)]
pub use sign_in::{AtApple, Person, SignIn};

/// The browser.
pub struct Browser {
    http: reqwest::Client,
    pub jar: Vec<StoredCookie>,
    /// Cookie names sent with the last request.
    pub last_sent: Vec<String>,
}

/// The context a request is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Typed in the address bar or followed a same-site redirect.
    TopLevel,
    /// An XHR/fetch from the page: JSON expected.
    Api,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            jar: Vec::new(),
            last_sent: Vec::new(),
        }
    }

    /// A browser that accepts any server certificate: for a gateway
    /// serving the self-signed certificate a test made (tests/tls).
    pub fn accepting_any_certificate() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
            jar: Vec::new(),
            last_sent: Vec::new(),
        }
    }

    /// The value of cookie `name`, if held.
    pub fn cookie(&self, name: &str) -> Option<&StoredCookie> {
        self.jar.iter().find(|c| c.name == name)
    }

    /// The cookie whose name starts with `prefix`.
    pub fn cookie_starting(&self, prefix: &str) -> Option<&StoredCookie> {
        self.jar.iter().find(|c| c.name.starts_with(prefix))
    }

    /// Sets a cookie by hand (to replay or tamper).
    pub fn set(&mut self, c: StoredCookie) {
        self.jar
            .retain(|o| !(o.name == c.name && o.host == c.host && o.path == c.path));
        self.jar.push(c);
    }

    /// GET `url` (no redirects followed).
    pub async fn get(&mut self, url: &str, nav: Nav) -> Page {
        self.get_with(url, nav, &[]).await
    }

    /// GET with extra headers.
    pub async fn get_with(&mut self, url: &str, nav: Nav, extra: &[(&str, &str)]) -> Page {
        let u = url::Url::parse(url).unwrap();
        let mut req = self.http.get(url);
        req = match nav {
            Nav::TopLevel => req
                .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
                .header("Sec-Fetch-Mode", "navigate"),
            Nav::Api => req.header("Accept", "application/json"),
        };
        if let Some(c) = self.cookies_for(&u, false) {
            req = req.header("Cookie", c);
        }
        for (k, v) in extra {
            req = req.header(*k, HeaderValue::from_str(v).unwrap());
        }
        self.send(u, req).await
    }

    /// POST a form to `url` from a page on `from_origin`.
    pub async fn post_form(
        &mut self,
        url: &str,
        fields: &[(String, String)],
        from_origin: &str,
    ) -> Page {
        let u = url::Url::parse(url).unwrap();
        let from = url::Url::parse(from_origin).unwrap();
        let cross = site(&u) != site(&from);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = self
            .http
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "text/html")
            .header("Origin", from.origin().ascii_serialization())
            .body(body);
        if let Some(c) = self.cookies_for(&u, cross) {
            req = req.header("Cookie", c);
        }
        self.send(u, req).await
    }

    async fn send(&mut self, u: url::Url, req: reqwest::RequestBuilder) -> Page {
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {u} failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.store(&u, &headers);
        let body = resp.text().await.unwrap_or_default();
        Page {
            status,
            url: u.to_string(),
            headers,
            body,
        }
    }

    /// Follows redirects (GET, top level) from `page` until a non-redirect.
    pub async fn follow(&mut self, mut page: Page) -> Page {
        for _ in 0..10 {
            if !(300..400).contains(&page.status) {
                return page;
            }
            let next = page.location().expect("redirect without Location");
            page = self.get(&next, Nav::TopLevel).await;
        }
        panic!("too many redirects");
    }
}
