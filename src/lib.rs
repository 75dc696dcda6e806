//! applegate: Sign in with Apple in front of existing web apps.
//!
//! A reverse proxy on [pingora] that runs Apple's sign-in itself (the
//! redirect, the `form_post` callback, the code exchange, the id_token
//! checks) and forwards authenticated requests to the upstream app with
//! identity headers.
//!
//! # Layout
//!
//! - [`config`]: the TOML file ([`config::file`]) ▶ validation with every
//!   problem and its key path ([`config::validate`]) ▶ the typed [`config::Config`].
//! - [`canonical`]: the one canonical request path and host, parsed once;
//!   what cannot be read one way is refused. Knows nothing of serving.
//! - [`apple`]: the ES256 client secret, Apple's keys, id_token checks, the
//!   code exchange. Knows nothing of HTTP serving.
//! - [`session`]: the sealed session cookie, the login-state cookie of the
//!   round trip, the revocation set, the one cookie parser. Knows nothing
//!   of Apple.
//! - [`policy`]: who may pass (one strict email parser). [`identity`]:
//!   headers stripped and injected.
//! - [`proxy`]: the pingora `ProxyHttp` (dispatch only), the canonical
//!   target ([`proxy::target`]), routes, forwarding headers, sign-in rate
//!   limits, the `/oauth2/*` endpoints, responses and the error ▶ status
//!   mapping.
//! - [`edge`]: in front of pingora's HTTP app: the connection cap, the
//!   request-head deadline and size cap, our pages for pingora's errors.
//! - [`server`]: config ▶ a running pingora server.
//! - [`emulator`], [`demo`], [`dev`], [`httpd`]: the Apple emulator and the
//!   demo app that `applegate dev` and the tests run beside the gateway;
//!   [`kit`] assembles them with a gateway config on free ports, once for
//!   `dev`, the tests and the benchmarks.
//! - [`clock`], [`secret`], [`html`]: the injected clock, the redacted
//!   `Secret<T>`, the one HTML escape.
//!
//! Dependencies point one way: `server ▶ edge, proxy ▶ {policy, identity,
//! session, apple, canonical} ▶ config`.
//!
//! # Life of a request
//!
//! 0. [`edge::Gate`] admits the connection (under `max_connections`); its
//!    [`edge::HeadGuard`] bounds the head in time and size while pingora
//!    parses it.
//! 1. `request_filter` strips every client-sent identity header
//!    (`X-Auth-Request-*`, `X-Forwarded-User`, … in any case, `-` or `_`)
//!    and parses the target and host once into canonical values
//!    ([`proxy::target::Target`]); an ambiguous one is refused (400).
//! 2. `/oauth2/*` (by canonical path) is answered by the gateway, the
//!    sign-in endpoints under rate limits: `start` seals state, nonce and
//!    return path into a `SameSite=None` login cookie and redirects to
//!    Apple; `callback` checks that cookie against Apple's `form_post`,
//!    exchanges the code, verifies the id_token and sets the session cookie.
//! 3. Otherwise the route is matched on the canonical host and path, under
//!    every reading an upstream may give the path; the strictest wins.
//!    Public routes go straight on. Others need a session: the cookie is
//!    opened (AES-256-GCM), checked against the revocation set and the
//!    policy.
//! 4. Without a session a browser navigation is redirected to sign in; an
//!    API call gets 401 JSON.
//! 5. `upstream_request_filter` sets the canonical target and host, the
//!    forwarding headers, removes the gateway's cookies and sets the
//!    identity headers; pingora forwards to the route's prebuilt peer.
//! 6. `response_filter` drops any `Set-Cookie` for the gateway's cookies.
//! 7. `logging` writes one access event (never a query, cookie or token).
//!
//! The authenticated path does no network I/O and no public-key crypto.

pub mod apple;
pub mod canonical;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dev;
pub mod edge;
pub mod emulator;
pub mod html;
pub mod httpd;
pub mod identity;
pub mod kit;
pub mod policy;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod session;
