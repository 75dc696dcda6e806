//! `[[routes]]`: which requests go to which upstream, and how each route
//! authenticates.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::policy::{self, Policy, RouteKeys};
use super::server::EncodedSlashes;
use super::upstream::{self, Balance, UpstreamKeys, UpstreamText, Upstreams};
use super::validate::Validator;

/// How a route authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A session is required; browsers are sent to sign in, APIs get 401.
    Required,
    /// No authentication; identity headers are still stripped.
    Public,
    /// An API: `Authorization: Bearer <Apple id_token>` (from a native app
    /// or the web) or a session cookie; never a redirect, 401 otherwise.
    Bearer,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// Lowercase host without port or trailing dot; `None` matches any host.
    pub host: Option<String>,
    /// The port the route's host names, if any; else any port matches.
    pub port: Option<u16>,
    pub path: String,
    pub encoded_slashes: EncodedSlashes,
    /// One URL or a pool ([`Upstreams`]).
    pub upstream: Upstreams,
    pub auth: AuthMode,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Speak HTTP/2 to the upstream: h2 by ALPN to an https upstream, h2c
    /// with prior knowledge (RFC 9113 §3.3) to an http one.
    pub upstream_http2: bool,
    /// The route's effective policy when it names policy keys of its own
    /// (each replaces `[policy]`'s key of that name); `None`: `[policy]`.
    pub policy: Option<Policy>,
    /// Whether the upstream gets a signed `X-Applegate-Assertion`.
    pub assertion: bool,
}

/// One `[[routes]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    host: Option<String>,
    path: Option<String>,
    upstream: Option<UpstreamText>,
    auth: Option<AuthMode>,
    connect_timeout: Option<DurationText>,
    read_timeout: Option<DurationText>,
    /// Overrides `server.encoded_slashes` for this route.
    encoded_slashes: Option<EncodedSlashes>,
    /// HTTP/2 to the upstream (default false: HTTP/1.1).
    upstream_http2: Option<bool>,
    /// The route's own policy keys (see [`RouteKeys`]).
    allowed_emails: Option<Vec<String>>,
    allowed_email_domains: Option<Vec<String>>,
    allowed_subs: Option<Vec<String>>,
    allow_private_relay: Option<bool>,
    assertion: Option<bool>,

    /// A pool's choice of backend (default round robin).
    balance: Option<Balance>,
    /// How long a backend that failed to connect is skipped.
    upstream_fail_timeout: Option<DurationText>,
    /// The active health check's path, and how often it runs.
    health_check: Option<String>,
    health_check_interval: Option<DurationText>,
    /// PEM CA certificates an https upstream's certificate is checked
    /// against, instead of the system's roots.
    upstream_ca_file: Option<String>,
}

/// Reads and checks every `[[routes]]` entry; `slashes` is the server's
/// default for routes that do not say, `global` the `[policy]` a route's
/// own policy keys are laid over.
pub(super) fn read(
    v: &mut Validator<'_>,
    top: &toml::Table,
    slashes: EncodedSlashes,
    global: &Policy,
) -> Vec<Route> {
    let items = match top.get("routes") {
        None => {
            v.problem(
                "routes",
                "missing; add at least one [[routes]] with path and upstream",
            );
            return Vec::new();
        }
        Some(toml::Value::Array(items)) => items,
        Some(other) => {
            v.problem(
                "routes",
                format!("expected [[routes]] tables, found {}", other.type_str()),
            );
            return Vec::new();
        }
    };
    if items.is_empty() {
        v.problem("routes", "empty; add at least one [[routes]]");
    }
    let mut routes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("routes[{i}]");
        let toml::Value::Table(t) = item else {
            v.problem(&key, "expected a table");
            continue;
        };
        let r: RouteSection = v.table(t.clone(), &key);
        if let Some(route) = route(v, r, &key, slashes, global) {
            routes.push(route);
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in routes.iter().enumerate() {
        if !seen.insert((r.host.clone(), r.port, r.path.clone())) {
            v.problem(
                format!("routes[{i}]"),
                format!(
                    "duplicate route for host {}{} and path {:?}",
                    r.host.as_deref().unwrap_or("*"),
                    r.port.map(|p| format!(":{p}")).unwrap_or_default(),
                    r.path
                ),
            );
        }
    }
    routes
}

fn route(
    v: &mut Validator<'_>,
    r: RouteSection,
    key: &str,
    slashes: EncodedSlashes,
    global: &Policy,
) -> Option<Route> {
    let problems_before = v.problem_count();
    let auth = r.auth.unwrap_or(AuthMode::Required);
    let keys = RouteKeys {
        allowed_emails: r.allowed_emails,
        allowed_email_domains: r.allowed_email_domains,
        allowed_subs: r.allowed_subs,
        allow_private_relay: r.allow_private_relay,
    };
    let policy = policy::for_route(v, key, keys, auth == AuthMode::Public, global);
    let path = r.path.unwrap_or_else(|| "/".to_string());
    // Prefixes are compared with canonical request paths, so they must be
    // canonical themselves, and made of characters that no reading of a
    // path decodes differently (letters, digits, `-._~` and `/`).
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~'));
    let canonical =
        crate::canonical::path::canonicalize(&path).is_ok_and(|c| c.path == path.as_str());
    if !path.starts_with('/') || !plain || !canonical {
        v.problem(
            format!("{key}.path"),
            format!("expected a plain path prefix starting with \"/\" (letters, digits, -._~ and single slashes, no dot segments), found {path:?}"),
        );
    }
    if path.starts_with("/oauth2/") || path == "/oauth2" {
        v.problem(
            format!("{key}.path"),
            "/oauth2/ is where the gateway's own endpoints live; choose another path",
        );
    }
    let (host, port) = match r.host.as_deref() {
        None => (None, None),
        Some(h) => match crate::canonical::host::parse(h.as_bytes()) {
            Ok(c) => (Some(c.name.into_owned()), c.port),
            Err(_) => {
                v.problem(
                    format!("{key}.host"),
                    format!("expected a host name, optionally with a port (\"app.example.com\", \"app.example.com:8443\"), without scheme or path, found {h:?}"),
                );
                (None, None)
            }
        },
    };
    let keys = UpstreamKeys {
        upstream: r.upstream,
        balance: r.balance,
        upstream_fail_timeout: r.upstream_fail_timeout,
        health_check: r.health_check,
        health_check_interval: r.health_check_interval,
        upstream_ca_file: r.upstream_ca_file,
    };
    let assertion = r.assertion.unwrap_or(false);
    if assertion && auth == AuthMode::Public {
        v.problem(
            format!("{key}.assertion"),
            "a public route has no signed-in user to assert; remove it or set auth = \"required\" or \"bearer\"",
        );
    }
    let upstream = upstream::read(v, keys, key)?;
    if v.problem_count() > problems_before {
        return None;
    }
    Some(Route {
        host,
        port,
        path,
        encoded_slashes: r.encoded_slashes.unwrap_or(slashes),
        upstream,
        auth,
        connect_timeout: DurationText::or(r.connect_timeout, Duration::from_secs(5)),
        read_timeout: DurationText::or(r.read_timeout, Duration::from_secs(60)),
        upstream_http2: r.upstream_http2.unwrap_or(false),
        policy,
        assertion,
    })
}
