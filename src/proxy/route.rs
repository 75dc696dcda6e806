//! Which route a request belongs to.
//!
//! Routes match on host (exact, case-insensitive, port ignored; none means
//! any host) and path prefix, most specific first: routes naming a host
//! before routes for any host, longer paths before shorter. A path prefix
//! matches whole segments (`/api` matches `/api` and `/api/x`, not
//! `/apiary`); a prefix ending in `/` matches anything under it.
//!
//! Matching uses a normalized copy of the path (percent-decoded, dot
//! segments resolved, slashes merged), so `/public/..%2Fadmin` cannot reach
//! an authenticated route through a public one's prefix. The request itself
//! is forwarded unchanged.

use std::borrow::Cow;
use std::collections::HashMap;

use pingora::upstreams::peer::HttpPeer;

use crate::config::{self, AuthMode};

/// A compiled route.
pub struct Route {
    /// Position in the config, for logs.
    pub index: usize,
    pub path: String,
    pub auth: AuthMode,
    /// Built once at start from the resolved address; cloned per request.
    pub peer: HttpPeer,
}

/// All routes, grouped by host.
pub struct Routes {
    all: Vec<Route>,
    /// host ▶ indices into `all`, longest path first.
    by_host: HashMap<String, Vec<usize>>,
    /// Indices of routes for any host, longest path first.
    any_host: Vec<usize>,
}

impl Routes {
    /// Compiles the configured routes.
    pub fn new(routes: &[config::Route]) -> Self {
        let mut by_host: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_host = Vec::new();
        let mut all = Vec::new();
        for (index, r) in routes.iter().enumerate() {
            let mut peer = HttpPeer::new(r.upstream.addr, r.upstream.tls, r.upstream.sni.clone());
            peer.options.connection_timeout = Some(r.connect_timeout);
            peer.options.read_timeout = Some(r.read_timeout);
            peer.options.write_timeout = Some(r.read_timeout);
            let route = Route {
                index,
                path: r.path.clone(),
                auth: r.auth,
                peer,
            };
            all.push(route);
            match &r.host {
                Some(h) => by_host.entry(h.clone()).or_default().push(index),
                None => any_host.push(index),
            }
        }
        let longest_first =
            |v: &mut Vec<usize>| v.sort_by_key(|i| std::cmp::Reverse(routes[*i].path.len()));
        by_host.values_mut().for_each(longest_first);
        longest_first(&mut any_host);
        Routes {
            all,
            by_host,
            any_host,
        }
    }

    /// The route at `index` (as returned in [`Route::index`]).
    pub fn get(&self, index: usize) -> Option<&Route> {
        self.all.get(index)
    }

    /// The route for `host` (from the Host header, any case, maybe with a
    /// port) and `path` (without query).
    pub fn find(&self, host: Option<&[u8]>, path: &str) -> Option<&Route> {
        let path = normalize(path);
        let in_host = host
            .and_then(|h| std::str::from_utf8(strip_port(h)).ok())
            .and_then(|h| {
                if h.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.by_host.get(&h.to_ascii_lowercase())
                } else {
                    self.by_host.get(h)
                }
            });
        in_host
            .into_iter()
            .flatten()
            .chain(self.any_host.iter())
            .map(|i| &self.all[*i])
            .find(|r| path_matches(&r.path, &path))
    }
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.starts_with(b"[") {
        // IPv6 literal: keep through the closing bracket.
        let end = host
            .iter()
            .position(|b| *b == b']')
            .map_or(host.len(), |p| p + 1);
        return &host[..end];
    }
    match host.iter().rposition(|b| *b == b':') {
        Some(p) => &host[..p],
        None => host,
    }
}

/// Whether route prefix `prefix` covers `path`.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path as an upstream would most likely read it: percent-decoded,
/// `\` as `/`, dot segments resolved, empty segments dropped. Borrowed when
/// there is nothing to normalize (the common case).
pub fn normalize(path: &str) -> Cow<'_, str> {
    let plain = !path.contains(['%', '\\']) && !path.contains("/.") && !path.contains("//");
    if plain {
        return Cow::Borrowed(path);
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(decoded.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    if s.is_empty() || trailing {
        s.push('/');
    }
    Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Upstream;
    use std::time::Duration;

    fn route(host: Option<&str>, path: &str, auth: AuthMode) -> config::Route {
        config::Route {
            host: host.map(str::to_string),
            path: path.into(),
            upstream: Upstream {
                url: "http://127.0.0.1:1".into(),
                addr: "127.0.0.1:1".parse().unwrap(),
                tls: false,
                sni: String::new(),
            },
            auth,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let routes = Routes::new(&[
            route(None, "/", AuthMode::Required),
            route(None, "/public/", AuthMode::Public),
            route(None, "/api", AuthMode::Required),
            route(Some("admin.example.com"), "/", AuthMode::Required),
        ]);
        let idx = |h: Option<&str>, p: &str| routes.find(h.map(str::as_bytes), p).map(|r| r.index);
        assert_eq!(idx(None, "/public/x"), Some(1));
        assert_eq!(idx(None, "/public"), Some(0), "/public/ needs the slash");
        assert_eq!(idx(None, "/api"), Some(2));
        assert_eq!(idx(None, "/api/v1"), Some(2));
        assert_eq!(idx(None, "/apiary"), Some(0));
        assert_eq!(idx(Some("Admin.Example.com:443"), "/public/x"), Some(3));
        assert_eq!(idx(Some("other.example.com"), "/public/x"), Some(1));
    }

    #[test]
    fn traversal_cannot_borrow_a_public_prefix() {
        let routes = Routes::new(&[
            route(None, "/", AuthMode::Required),
            route(None, "/public/", AuthMode::Public),
        ]);
        for p in [
            "/public/../admin",
            "/public/..%2Fadmin",
            "/public/%2e%2e/admin",
            "/public\\..\\admin",
            "/public/./../admin",
        ] {
            let r = routes.find(None, p).unwrap();
            assert_eq!(r.auth, AuthMode::Required, "{p}");
        }
        assert_eq!(
            routes.find(None, "//public/x").unwrap().auth,
            AuthMode::Public
        );
    }

    #[test]
    fn normalize_examples() {
        assert_eq!(normalize("/a/b"), "/a/b");
        assert_eq!(normalize("/a/../../b/"), "/b/");
        assert_eq!(normalize("/a/%2e%2e"), "/");
        assert_eq!(normalize("//a//b"), "/a/b");
    }
}
