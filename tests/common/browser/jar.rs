//! The cookie jar: what a browser stores from `Set-Cookie` and what it
//! sends back (RFC 6265 path-match, `Secure`, and `SameSite` on a
//! cross-site POST).

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::Browser;

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

/// RFC 6265 §5.1.4 path-match.
fn path_match(req: &str, cookie_path: &str) -> bool {
    req == cookie_path
        || (req.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || req[cookie_path.len()..].starts_with('/')))
}

/// Scheme and host: the "site" for our purposes (schemeful same-site;
/// `localhost` and `127.0.0.1` are different sites).
pub(super) fn site(url: &url::Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
}

impl Browser {
    pub(super) fn cookies_for(&mut self, url: &url::Url, cross_site_post: bool) -> Option<String> {
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

    pub(super) fn store(&mut self, url: &url::Url, headers: &HeaderMap) {
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
}
