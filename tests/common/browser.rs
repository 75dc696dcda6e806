//! A scripted browser: follows the sign-in flow over real HTTP and keeps
//! cookies the way browsers do, including SameSite.
//!
//! The point is the cross-site `form_post`: Apple's page (another site)
//! POSTs to our callback, and a browser sends only `SameSite=None` cookies
//! with that request. This jar enforces it, so a login-state cookie with
//! the wrong attributes makes the flow fail here as it would in Chrome.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};

/// SameSite as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// A cookie in the jar.
#[derive(Debug, Clone)]
pub struct StoredCookie {
    pub name: String,
    pub value: String,
    pub host: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: SameSite,
    pub expires: Option<Instant>,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub url: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// `Location`, resolved against the request URL as a browser does.
    pub fn location(&self) -> Option<String> {
        let loc = self.headers.get("location")?.to_str().ok()?;
        url::Url::parse(&self.url)
            .ok()?
            .join(loc)
            .ok()
            .map(|u| u.to_string())
    }

    /// All `Set-Cookie` values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The first form on the page: its action (resolved) and fields.
    pub fn form(&self) -> (String, Vec<(String, String)>) {
        let start = self
            .body
            .find("<form")
            .unwrap_or_else(|| panic!("no form in: {}", self.body));
        let tag_end = start + self.body[start..].find('>').unwrap();
        let action = attr(&self.body[start..tag_end], "action").unwrap_or_default();
        let action = url::Url::parse(&self.url)
            .unwrap()
            .join(&action)
            .unwrap()
            .to_string();
        let end = self.body[start..]
            .find("</form>")
            .map_or(self.body.len(), |e| start + e);
        let mut fields = Vec::new();
        let mut rest = &self.body[start..end];
        while let Some(i) = rest.find("<input") {
            let tag_end = i + rest[i..].find('>').unwrap();
            let tag = &rest[i..tag_end];
            let kind = attr(tag, "type").unwrap_or_default();
            if let Some(name) = attr(tag, "name") {
                if kind != "checkbox" || tag.contains(" checked") {
                    fields.push((name, attr(tag, "value").unwrap_or_default()));
                }
            }
            rest = &rest[tag_end..];
        }
        (action, fields)
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = i + tag[i..].find('"')?;
    Some(unescape(&tag[i..j]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// RFC 6265 §5.1.4 path-match.
fn path_match(req: &str, cookie_path: &str) -> bool {
    req == cookie_path
        || (req.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || req[cookie_path.len()..].starts_with('/')))
}

/// Scheme and host: the "site" for our purposes (schemeful same-site;
/// `localhost` and `127.0.0.1` are different sites).
fn site(url: &url::Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
}

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

    fn cookies_for(&mut self, url: &url::Url, cross_site_post: bool) -> Option<String> {
        let now = Instant::now();
        self.jar.retain(|c| c.expires.is_none_or(|e| e > now));
        let host = url.host_str().unwrap_or_default();
        // Browsers treat http://localhost as a secure context.
        let secure_ok = url.scheme() == "https" || host == "localhost" || host == "127.0.0.1";
        let path = url.path();
        let sent: Vec<&StoredCookie> = self
            .jar
            .iter()
            .filter(|c| c.host == host)
            .filter(|c| path_match(path, &c.path))
            .filter(|c| !c.secure || secure_ok)
            .filter(|c| !cross_site_post || c.same_site == SameSite::None)
            .collect();
        self.last_sent = sent.iter().map(|c| c.name.clone()).collect();
        (!sent.is_empty()).then(|| {
            sent.iter()
                .map(|c| format!("{}={}", c.name, c.value))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store(&mut self, url: &url::Url, headers: &HeaderMap) {
        let host = url.host_str().unwrap_or_default().to_string();
        for v in headers.get_all("set-cookie") {
            let Ok(text) = v.to_str() else { continue };
            let c = cookie::Cookie::parse(text.to_string()).unwrap();
            // Browsers refuse SameSite=None without Secure.
            let same_site = match c.same_site() {
                Some(cookie::SameSite::None) if c.secure() != Some(true) => continue,
                Some(cookie::SameSite::None) => SameSite::None,
                Some(cookie::SameSite::Strict) => SameSite::Strict,
                _ => SameSite::Lax,
            };
            let expires = c
                .max_age()
                .map(|a| Instant::now() + Duration::from_secs(a.whole_seconds().max(0) as u64));
            let stored = StoredCookie {
                name: c.name().to_string(),
                value: c.value().to_string(),
                host: host.clone(),
                path: c.path().unwrap_or("/").to_string(),
                secure: c.secure() == Some(true),
                http_only: c.http_only() == Some(true),
                same_site,
                expires,
            };
            let deleted = c.max_age().is_some_and(|a| a.whole_seconds() <= 0);
            self.jar.retain(|o| {
                !(o.name == stored.name && o.host == stored.host && o.path == stored.path)
            });
            if !deleted {
                self.jar.push(stored);
            }
        }
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

/// What the person does on the emulator's page.
#[derive(Debug, Clone)]
pub struct Person {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub hide_my_email: bool,
    pub cancel: bool,
}

impl Person {
    pub fn new(email: &str) -> Self {
        Person {
            email: email.into(),
            first_name: "Jane".into(),
            last_name: "Appleseed".into(),
            hide_my_email: false,
            cancel: false,
        }
    }
}

/// A sign-in stopped just before Apple's page posts back to us.
pub struct AtApple {
    /// The emulator's auto-submitting form_post page.
    pub form_post: Page,
    /// The callback URL the page posts to.
    pub callback: String,
    /// The fields it posts.
    pub fields: Vec<(String, String)>,
    /// The emulator's page URL: the origin of the cross-site POST.
    pub origin: String,
}

/// The steps of one sign-in, for tests that look inside.
pub struct SignIn {
    /// The emulator's auto-submitting form_post page.
    pub form_post: Page,
    /// The callback's fields, as posted.
    pub fields: Vec<(String, String)>,
    /// The callback URL.
    pub callback: String,
    /// The callback's answer.
    pub callback_page: Page,
}

impl Browser {
    /// Goes from `start` (a page or `/oauth2/start` URL) through the
    /// emulator's page, as `person` fills it in, up to the form_post that
    /// would go back to the callback (not sent).
    pub async fn through_apple(&mut self, start: &str, person: &Person) -> AtApple {
        let mut page = self.get(start, Nav::TopLevel).await;
        // Follow our redirects until we land on Apple's (the emulator's) page.
        for _ in 0..5 {
            if page.status != 302 {
                break;
            }
            page = self.get(&page.location().unwrap(), Nav::TopLevel).await;
        }
        assert_eq!(
            page.status, 200,
            "expected the emulator's page, got {} {}: {}",
            page.status, page.url, page.body
        );
        let (action, mut fields) = page.form();
        fields.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "email" | "first_name" | "last_name" | "hide_my_email"
            )
        });
        fields.push(("email".into(), person.email.clone()));
        fields.push(("first_name".into(), person.first_name.clone()));
        fields.push(("last_name".into(), person.last_name.clone()));
        if person.hide_my_email {
            fields.push(("hide_my_email".into(), "1".into()));
        }
        fields.push((
            "action".into(),
            if person.cancel { "cancel" } else { "continue" }.into(),
        ));
        let origin = page.url.clone();
        let form_post = self.post_form(&action, &fields, &origin).await;
        assert_eq!(
            form_post.status, 200,
            "emulator refused: {}",
            form_post.body
        );
        let (callback, fields) = form_post.form();
        AtApple {
            form_post,
            callback,
            fields,
            origin,
        }
    }

    /// Posts the form_post back to the callback, cross-site as Apple's page does.
    pub async fn post_back(&mut self, at: &AtApple) -> Page {
        self.post_form(&at.callback, &at.fields, &at.origin).await
    }

    /// Goes from `start` through the emulator to the callback; returns the
    /// steps (does not follow the final redirect).
    pub async fn sign_in_steps(&mut self, start: &str, person: &Person) -> SignIn {
        let at = self.through_apple(start, person).await;
        let callback_page = self.post_back(&at).await;
        SignIn {
            form_post: at.form_post,
            fields: at.fields,
            callback: at.callback,
            callback_page,
        }
    }

    /// Signs in from `start` and follows to the final page.
    pub async fn sign_in(&mut self, start: &str, person: &Person) -> Page {
        let steps = self.sign_in_steps(start, person).await;
        self.follow(steps.callback_page).await
    }
}
