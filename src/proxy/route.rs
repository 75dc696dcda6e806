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
//!
//! Each match is a walk down the path's segments in an index of the
//! host's prefixes (`route::index`), so its cost does not grow with the number
//! of routes; the linear scan it replaced is kept in the tests as the
//! reference the index is checked against.

use std::sync::Arc;

use crate::canonical::{CanonicalHost, CanonicalPath};
use crate::config::{self, AuthMode, EncodedSlashes};
use crate::policy::Policy;
use crate::pool::{Pool, Same};

mod index;
use index::Index;

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

/// All routes, indexed by host and prefix.
pub struct Routes {
    all: Vec<Route>,
    /// host ▶ the index of its routes.
    by_host: std::collections::HashMap<String, Index>,
    /// The index of routes for any host.
    any_host: Index,
    /// The distinct pools (routes to the same upstream share one).
    pools: Vec<Arc<Pool>>,
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
        let mut by_host: std::collections::HashMap<String, Index> = Default::default();
        let mut any_host = Index::default();
        let mut all = Vec::new();
        // Routes to the same upstream, alike, share its pool: one set of
        // backends, health and counters per upstream, not per route (10,000
        // routes to one app are one pool).
        let mut pools: std::collections::HashMap<Same, Arc<Pool>> = Default::default();
        let mut distinct = Vec::new();
        for (index, r) in routes.iter().enumerate() {
            let pool = pools
                .entry(Same::of(r))
                .or_insert_with(|| {
                    let p = Arc::new(Pool::new(r));
                    distinct.push(p.clone());
                    p
                })
                .clone();
            all.push(Route {
                index,
                path: r.path.clone(),
                port: r.port,
                auth: r.auth,
                encoded_slashes: r.encoded_slashes,
                pool,
                policy: r
                    .policy
                    .as_ref()
                    .map_or_else(|| global.clone(), |p| Arc::new(Policy::new(p))),
            });
        }
        // Among routes of one prefix, a route naming a port first, then the
        // config's order (longer prefixes first is the index's walk).
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| routes[i].port.is_none());
        for i in order {
            let r = &routes[i];
            match &r.host {
                Some(h) => by_host.entry(h.clone()).or_default().insert(&r.path, i),
                None => any_host.insert(&r.path, i),
            }
        }
        let upper_in_prefixes = routes
            .iter()
            .any(|r| r.path.bytes().any(|b| b.is_ascii_uppercase()));
        Routes {
            all,
            by_host,
            any_host,
            pools: distinct,
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

    /// Every distinct pool, for their background upkeep.
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools.clone()
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
        self.strictest(path, |reading, fold, any_port| {
            self.find_one(host, reading, fold, any_port)
        })
    }

    /// The strictest of `one`'s matches (reading, fold case, port-blind)
    /// over every reading of `path`; see [`Self::find`].
    fn strictest<'a>(
        &'a self,
        path: &CanonicalPath<'_>,
        one: impl Fn(&str, bool, bool) -> Option<&'a Route>,
    ) -> Option<&'a Route> {
        let mut best: Option<&Route> = None;
        let port_blind: &[bool] = if self.port_routes {
            &[false, true]
        } else {
            &[false]
        };
        for reading in path.readings() {
            let fold = self.upper_in_prefixes || reading.bytes().any(|b| b.is_ascii_uppercase());
            for &any_port in port_blind {
                let exact = one(reading, false, any_port);
                let folded = if fold {
                    one(reading, true, any_port)
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

    /// The most specific route matching one reading of the path: the
    /// host's longest matching prefix, else the longest for any host.
    /// A walk down the path's segments, whatever the number of routes.
    fn find_one(
        &self,
        host: &CanonicalHost<'_>,
        path: &str,
        fold: bool,
        any_port: bool,
    ) -> Option<&Route> {
        let matches = |i: usize| path_matches(&self.all[i].path, path, fold);
        self.by_host
            .get(host.name.as_ref())
            .and_then(|ix| {
                ix.longest(path, |i| {
                    let r = &self.all[i];
                    (any_port || r.port.is_none() || r.port == host.port) && matches(i)
                })
            })
            .or_else(|| self.any_host.longest(path, matches))
            .map(|i| &self.all[i])
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
mod tests;
