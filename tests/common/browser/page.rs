//! A response as the browser read it, and the first form on it.

use reqwest::header::HeaderMap;

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
