//! Which route a request belongs to.
//!
//! Routes match on host and path prefix, most specific first: routes naming
//! a host before routes for any host, longer paths before shorter. A path
//! prefix matches whole segments (`/api` matches `/api` and `/api/x`, not
//! `/apiary`); a prefix ending in `/` matches anything under it and the
//! path without the slash (`/admin/` covers `/admin`, which an app mounted
//! there serves).
//!
//! Matching takes the request's canonical path and host
//! ([`crate::canonical`]), which is also what the upstream receives. The
//! rule it holds: a request is treated as public only if it is public
//! under every reading an upstream may give the forwarded path. The
//! readings left after canonicalization are `;` parameters kept or dropped
//! and ASCII case kept or folded (Express, ASP.NET and IIS route without
//! case); each is matched, and the strictest route any of them hits wins.

use std::sync::Arc;

use crate::canonical::{CanonicalHost, CanonicalPath};
use crate::config::{self, AuthMode, EncodedSlashes};
use crate::policy::Policy;
use crate::pool::Pool;

/// A compiled route.
pub struct Route {
    /// Position in the config, for logs.
    pub index: usize,
    pub path: String,
    /// The port the route's host names, if it names one.
    pub port: Option<u16>,
    pub auth: AuthMode,
    /// Whether paths with `%2F` or `%5C` may pass on this route.
    pub encoded_slashes: EncodedSlashes,
    /// Its upstream (one URL or several), built once at start.
    pub pool: Arc<Pool>,
    /// Who may pass: the route's own policy, or the global one shared
    /// (compiled once at start, so the request path only follows a
    /// pointer).
    pub policy: Arc<Policy>,
}

/// All routes, grouped by host.
pub struct Routes {
    all: Vec<Route>,
    /// host ▶ indices into `all`, longest path first.
    by_host: std::collections::HashMap<String, Vec<usize>>,
    /// Indices of routes for any host, longest path first.
    any_host: Vec<usize>,
    /// Whether any route prefix has an upper-case letter; if none does, a
    /// lower-case path needs no second, case-folded match.
    upper_in_prefixes: bool,
    /// Whether any route names a port; if none does, no port-blind match
    /// is needed.
    port_routes: bool,
}

/// How strict a route is: a request that some reading puts on a stricter
/// route goes there. Required accepts fewer credentials than bearer.
fn strictness(auth: AuthMode) -> u8 {
    match auth {
        AuthMode::Public => 0,
        AuthMode::Bearer => 1,
        AuthMode::Required => 2,
    }
}

impl Routes {
    /// Compiles the configured routes; `global` is the policy of routes
    /// without their own.
    pub fn new(routes: &[config::Route], global: &Arc<Policy>) -> Self {
        let mut by_host: std::collections::HashMap<String, Vec<usize>> = Default::default();
        let mut any_host = Vec::new();
        let mut all = Vec::new();
        for (index, r) in routes.iter().enumerate() {
            all.push(Route {
                index,
                path: r.path.clone(),
                port: r.port,
                auth: r.auth,
                encoded_slashes: r.encoded_slashes,
                pool: Arc::new(Pool::new(r)),
                policy: r
                    .policy
                    .as_ref()
                    .map_or_else(|| global.clone(), |p| Arc::new(Policy::new(p))),
            });
            match &r.host {
                Some(h) => by_host.entry(h.clone()).or_default().push(index),
                None => any_host.push(index),
            }
        }
        // Longest path first; among equal paths, a route naming a port first.
        let order = |v: &mut Vec<usize>| {
            v.sort_by_key(|i| {
                let r = &routes[*i];
                (std::cmp::Reverse(r.path.len()), r.port.is_none())
            })
        };
        by_host.values_mut().for_each(order);
        order(&mut any_host);
        let upper_in_prefixes = routes
            .iter()
            .any(|r| r.path.bytes().any(|b| b.is_ascii_uppercase()));
        Routes {
            all,
            by_host,
            any_host,
            upper_in_prefixes,
            port_routes: routes.iter().any(|r| r.port.is_some()),
        }
    }

    /// The policies of the routes that have their own (not public ones,
    /// which check no identity).
    pub fn own_policies<'a>(&'a self, global: &'a Arc<Policy>) -> impl Iterator<Item = &'a Policy> {
        self.all
            .iter()
            .filter(move |r| r.auth != AuthMode::Public && !Arc::ptr_eq(&r.policy, global))
            .map(|r| r.policy.as_ref())
    }

    /// Every route's pool, for their background upkeep.
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.all.iter().map(|r| r.pool.clone()).collect()
    }

    /// The route at `index` (as returned in [`Route::index`]).
    pub fn get(&self, index: usize) -> Option<&Route> {
        self.all.get(index)
    }

    /// The route for a request with canonical `host` and `path`: the
    /// strictest route that any reading of the path matches (ties go to
    /// the earlier reading, the path as forwarded first). Apps that route
    /// by host name ignore the port (Rails' `request.host`, Express'
    /// `req.hostname`), so a route naming a port is also tried port-blind:
    /// a port can make a request stricter, never looser.
    pub fn find(&self, host: &CanonicalHost<'_>, path: &CanonicalPath<'_>) -> Option<&Route> {
        let mut best: Option<&Route> = None;
        let port_blind: &[bool] = if self.port_routes {
            &[false, true]
        } else {
            &[false]
        };
        for reading in path.readings() {
            let fold = self.upper_in_prefixes || reading.bytes().any(|b| b.is_ascii_uppercase());
            for &any_port in port_blind {
                let exact = self.find_one(host, reading, false, any_port);
                let folded = if fold {
                    self.find_one(host, reading, true, any_port)
                } else {
                    None
                };
                for r in [exact, folded].into_iter().flatten() {
                    if best.is_none_or(|b| strictness(r.auth) > strictness(b.auth)) {
                        best = Some(r);
                    }
                }
            }
        }
        best
    }

    /// The most specific route matching one reading of the path.
    fn find_one(
        &self,
        host: &CanonicalHost<'_>,
        path: &str,
        fold: bool,
        any_port: bool,
    ) -> Option<&Route> {
        self.by_host
            .get(host.name.as_ref())
            .into_iter()
            .flatten()
            .map(|i| &self.all[*i])
            .filter(|r| any_port || r.port.is_none() || r.port == host.port)
            .chain(self.any_host.iter().map(|i| &self.all[*i]))
            .find(|r| path_matches(&r.path, path, fold))
    }
}

/// Whether route prefix `prefix` covers `path`, optionally ignoring ASCII
/// case.
pub fn path_matches(prefix: &str, path: &str, fold: bool) -> bool {
    let (p, q) = (prefix.as_bytes(), path.as_bytes());
    let eq = |a: &[u8], b: &[u8]| {
        if fold {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    if let Some(dir) = p.strip_suffix(b"/") {
        // `/admin/` covers `/admin/…` and `/admin` itself.
        return (q.len() >= p.len() && eq(&q[..p.len()], p)) || eq(q, dir);
    }
    q.len() >= p.len() && eq(&q[..p.len()], p) && matches!(q.get(p.len()), None | Some(b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{host, path};
    use crate::config::Upstreams;
    use std::time::Duration;

    fn route(host: Option<&str>, path: &str, auth: AuthMode) -> config::Route {
        let (host, port) = match host {
            Some(h) => {
                let c = host::parse(h.as_bytes()).unwrap();
                (Some(c.name.into_owned()), c.port)
            }
            None => (None, None),
        };
        config::Route {
            host,
            port,
            path: path.into(),
            encoded_slashes: EncodedSlashes::Reject,
            upstream: Upstreams::at("127.0.0.1:1".parse().unwrap()),
            auth,
            connect_timeout: Duration::from_secs(1),
            upstream_http2: false,
            read_timeout: Duration::from_secs(1),
            assertion: false,
            policy: None,
        }
    }

    fn compile(routes: &[config::Route]) -> Routes {
        Routes::new(routes, &Arc::new(Policy::new(&open_policy())))
    }

    fn open_policy() -> config::Policy {
        config::Policy {
            allowed_emails: vec![],
            allowed_email_domains: vec![],
            allowed_subs: vec![],
            allow_private_relay: true,
            require_verified_email: true,
        }
    }

    fn find(routes: &Routes, h: &str, p: &str) -> Option<usize> {
        let h = host::canonicalize(std::iter::once(h.as_bytes()), b"/").unwrap();
        let p = path::canonicalize(p).unwrap();
        routes.find(&h, &p).map(|r| r.index)
    }

    #[test]
    fn most_specific_route_wins() {
        let routes = compile(&[
            route(None, "/", AuthMode::Required),
            route(None, "/public/", AuthMode::Public),
            route(None, "/api", AuthMode::Required),
            route(Some("admin.example.com"), "/", AuthMode::Required),
            route(Some("admin.example.com:8443"), "/", AuthMode::Bearer),
        ]);
        let any = "app.example.com";
        assert_eq!(find(&routes, any, "/public/x"), Some(1));
        assert_eq!(
            find(&routes, any, "/public"),
            Some(1),
            "/public/ covers /public"
        );
        assert_eq!(find(&routes, any, "/publicity"), Some(0));
        assert_eq!(find(&routes, any, "/api"), Some(2));
        assert_eq!(find(&routes, any, "/api/v1"), Some(2));
        assert_eq!(find(&routes, any, "/apiary"), Some(0));
        assert_eq!(find(&routes, "Admin.Example.com:443", "/public/x"), Some(3));
        assert_eq!(find(&routes, "admin.example.com.", "/public/x"), Some(3));
        assert_eq!(find(&routes, "admin.example.com:8443", "/x"), Some(4));
        // Another port or none: the port-blind reading finds the stricter
        // required route of the same name, never a looser one.
        assert_eq!(find(&routes, "admin.example.com:1", "/x"), Some(3));
        assert_eq!(find(&routes, "other.example.com", "/public/x"), Some(1));
        let routes = compile(&[
            route(None, "/", AuthMode::Public),
            route(Some("admin.example.com:8443"), "/", AuthMode::Required),
        ]);
        for h in [
            "admin.example.com",
            "admin.example.com:1",
            "admin.example.com:",
        ] {
            assert_eq!(find(&routes, h, "/secret"), Some(1), "{h}");
        }
        assert_eq!(find(&routes, "app.example.com:8443", "/secret"), Some(0));
    }

    #[test]
    fn the_strictest_reading_wins() {
        // Required root, public prefix.
        let routes = compile(&[
            route(None, "/", AuthMode::Required),
            route(None, "/public/", AuthMode::Public),
        ]);
        let h = "a.example";
        assert_eq!(find(&routes, h, "/public/x"), Some(1));
        assert_eq!(
            find(&routes, h, "/PUBLIC/x"),
            Some(0),
            "case-sensitive apps see another path"
        );
        assert_eq!(
            find(&routes, h, "/public;x/y"),
            Some(0),
            "`/public;x` is not `/public` to most apps"
        );
        assert_eq!(find(&routes, h, "/public/../admin"), Some(0));
        assert_eq!(find(&routes, h, "/public/%2e%2e/admin"), Some(0));
        assert_eq!(find(&routes, h, "//public/x"), Some(1));
        // Public root, required prefix.
        let routes = compile(&[
            route(None, "/", AuthMode::Public),
            route(None, "/admin", AuthMode::Required),
        ]);
        assert_eq!(find(&routes, h, "/ADMIN/users"), Some(1));
        assert_eq!(find(&routes, h, "/Admin"), Some(1));
        assert_eq!(
            find(&routes, h, "/admin;x/users"),
            Some(1),
            "Tomcat reads /admin/users"
        );
        assert_eq!(find(&routes, h, "/admin%3Bx/users"), Some(1));
        assert_eq!(find(&routes, h, "/x/../admin"), Some(1));
        assert_eq!(find(&routes, h, "/administrator"), Some(0));
    }
}
