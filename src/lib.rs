//! applegate: Sign in with Apple in front of existing web apps.
//!
//! A reverse proxy on [pingora] that runs Apple's sign-in itself (the
//! redirect, the `form_post` callback, the code exchange, the id_token
//! checks) and forwards authenticated requests to the upstream app with
//! identity headers.
//!
//! # Layout
//!
//! Leaves (they import nothing of the crate): [`es256`], [`identity`] (the one
//! `Identity`: `sub`, email, verified, private relay, name, and the proof,
//! session or bearer; the strict email parser; the identity headers built
//! once), [`canonical`] (the one canonical path and host, parsed once; what
//! cannot be read one way is refused), [`edge`] (in front of pingora's HTTP
//! app: the connection cap, the head deadline and size cap, keep-alive's
//! idle wait in its own HTTP/1 keep-alive loop, so a waiting connection holds
//! no request state and no buffer, in a task of its own; our pages for
//! pingora's errors), [`clock`], [`secret`],
//! [`html`], [`httpd`], [`metrics`] (every Prometheus family, its
//! handles resolved at start), [`access_log`] (each request's line
//! formatted in its task, written by a thread of its own through a
//! bounded queue: dropped and counted when full, never waited for).
//!
//! - [`config`]: one file per TOML section, read through serde with every
//!   problem and its key path ([`config::file`], [`config::validate`]),
//!   secrets from a file or the environment (one loader) ▶ the
//!   typed [`config::Config`].
//! - [`state`]: what the server keeps (revoked sessions and users,
//!   notification ids seen, relay email statuses, the name Apple sent once
//!   and each session's refresh token, both sealed by their owners) behind
//!   one seam, [`state::Store`], with one shared test suite: a crash-safe
//!   single-file database by default, memory when asked, or Redis shared
//!   by several replicas (one server, through Sentinel, or a Cluster;
//!   changes published to every replica's views, revocations queued while
//!   it is away). Never on the per-request path.
//! - [`session`]: the sealed session cookie and its lifetime (absolute,
//!   idle, due for re-issue or re-validation: [`session::Lifetime`]), the
//!   login-state cookie of the round trip, the revocation set and the users
//!   whose relay email is off (in-memory views of the store, written
//!   through), the remembered names and refresh tokens (sealed in the
//!   store), the single flight of re-validations, the session cache, the
//!   one cookie parser ([`session::cookie_pairs`]). Knows nothing of Apple.
//! - [`apple`]: the ES256 client secret, Apple's keys (refreshed in the
//!   background by their `max-age`, the last good set kept), id_token
//!   checks and the one conversion of verified claims into an `Identity`
//!   ([`apple::IdToken::identity`]), the token endpoint (code exchange,
//!   refresh-token checks, the `check --online` probe) and revocation,
//!   Apple's server-to-server notifications verified and decoded
//!   ([`apple::notification`]); [`apple::AppleError`] keeps the cause of a
//!   failed call. Knows nothing of HTTP serving.
//! - [`policy`]: who may pass, decided on an `Identity`, and only here.
//! - [`assertion`]: the signed identity assertion (`X-Applegate-Assertion`,
//!   ES256 by the one signer, [`es256`], a leaf shared with the client
//!   secret) a route may send upstream, cached per caller and route and
//!   re-signed at half-life; its keys (a file, or generated and kept sealed
//!   in the store) and the JWKS published at `/.well-known/applegate/jwks.json`.
//! - [`proxy`]: the pingora phases in `mod.rs`, top-down as a request's
//!   life; [`proxy::gateway`] the state and the decision (authenticate,
//!   identify, admit); [`proxy::endpoints`] one file per `/oauth2/*`
//!   endpoint; [`proxy::target`], [`proxy::route`] (an index of the prefixes,
//!   walked down the path's segments), [`proxy::forwarded`],
//!   [`proxy::upstream`] (the request the upstream gets, built in one map),
//!   [`proxy::rate_limit`]; [`proxy::error`] the one place an outcome
//!   becomes a response (HTML for browsers, JSON for APIs).
//! - [`pool`]: an upstream's backends (one URL or several; one pool per
//!   distinct upstream, shared by the routes to it): the backend each
//!   try goes to (round robin or least connections, lock-free), backends
//!   skipped after a failed connect or health check, names resolved again
//!   in the background ([`pool::upkeep`]).
//! - [`server`]: config ▶ a running pingora server; [`redirect`] the
//!   plain-HTTP listener that redirects to https (`server.redirect_http`),
//!   [`reload`] the `[server.tls]` certificate read again on SIGHUP or
//!   file change; [`admin`] the admin listener (`[admin] listen`:
//!   `/metrics`, `/ping`, `/ready`); [`drain`] how a process ends (the
//!   signals, idle connections closed after a linger, the exit once
//!   drained), [`upgrade`] how its successor takes over (the listening
//!   sockets, then the state file), [`systemd`] the `sd_notify` messages.
//! - [`kit`]: the one builder of "emulator + upstream + gateway config on
//!   free ports" behind `applegate dev`, the tests and the benchmarks
//!   (and a real `redis-server` for them, [`kit::redis`], and a test CA,
//!   [`kit::pki`]);
//!   [`emulator`] (a strict Apple), [`demo`] (the demo app), [`dev`].
//!
//! Dependencies point one way: `server ▶ {drain, upgrade, systemd} ▶
//! {edge, proxy, admin} ▶ {policy, pool, assertion, session, apple} ▶
//! {state ▶ config} ▶ {identity, canonical, secret, es256, metrics,
//! access_log}`; `kit ▶ {server, emulator, demo}`. Nothing below `proxy`
//! imports it.
//!
//! # Life of a request
//!
//! 0. [`edge::Gate`] admits the connection (under `max_connections`) and
//!    moves it to a task of its own, handshakes TLS if `[server.tls]` is set (ALPN: h2 or http/1.1); its
//!    [`edge::HeadGuard`] bounds the wait for each request, and each head in
//!    time and size, while pingora parses it. An HTTP/1 connection runs the
//!    gate's own keep-alive loop: pingora's session and request future
//!    exist only once a request's first bytes are in, never while the
//!    connection waits, and the guard's write buffer only until a flush.
//! 1. `request_filter` (inside the request's `tracing` span, which carries
//!    its id: a trusted proxy's `X-Request-Id`, or a random one; sent
//!    upstream, returned, shown on error pages: [`proxy::request_id`])
//!    strips every client-sent identity header (`X-Auth-Request-*`,
//!    `X-Forwarded-User`, … in any case, `-` or `_`) and parses the target
//!    and host once into canonical values ([`proxy::target::Target`]); an
//!    ambiguous one is refused (400).
//! 2. `/oauth2/*` (by canonical path) is answered by the gateway, the
//!    sign-in endpoints under rate limits: `start` seals state, nonce and
//!    return path into a `SameSite=None` login cookie and redirects to
//!    Apple; `callback` checks that cookie against Apple's `form_post`,
//!    exchanges the code, verifies the id_token and sets the session cookie;
//!    Apple's notifications (`apple.notifications_path`) revoke users or
//!    mark their relay email off.
//! 3. Otherwise [`proxy::gateway::Gateway::admit`] matches the route on the
//!    canonical host and path, under every reading an upstream may give the
//!    path; the strictest wins. Public routes go straight on. Others need an
//!    identity: the session cookie is opened (AES-256-GCM, cached), its
//!    lifetime and idle timeout checked ([`session::Lifetime`]), checked
//!    against the revocation set, then the route's policy (its own keys
//!    over `[policy]`, resolved at start). A session due for it gets its
//!    cookie re-issued (`response_filter`), or once per
//!    `session.revalidate` is checked with Apple ([`proxy::revalidate`]).
//! 4. Without one a browser navigation is redirected to sign in; an API
//!    call gets 401 JSON ([`proxy::error`]).
//! 5. `upstream_request_filter` builds the upstream's request
//!    ([`proxy::upstream`]): the canonical target and host, the forwarding
//!    headers, the gateway's cookies removed, the identity headers set (and
//!    the signed assertion, cached per caller and route, where a route asks
//!    for one: [`assertion`]); pingora forwards to a backend of the route's pool ([`pool::Pool::pick`]);
//!    one that cannot be connected to is skipped and the request tried on
//!    another (`fail_to_connect`).
//! 6. `response_filter` drops any `Set-Cookie` for the gateway's cookies,
//!    then adds the renewed session cookie, if any.
//! 7. `logging` counts the request for `/metrics` (atomic adds on handles
//!    resolved at start, a route's on its first request) and queues one
//!    access line (never a query, cookie or token) for the access log's
//!    writer ([`access_log`]).
//!
//! The authenticated path does no network I/O and no public-key crypto,
//! except the one request per session and re-validation interval that asks
//! Apple.

pub mod access_log;
pub mod admin;
pub mod apple;
pub mod assertion;
pub mod canonical;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dev;
pub mod drain;
pub mod edge;
pub mod emulator;
pub mod es256;
pub mod html;
pub mod httpd;
pub mod identity;
pub mod kit;
pub mod metrics;
pub mod policy;
pub mod pool;
pub mod proxy;
pub mod redirect;
pub mod reload;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
pub mod systemd;
pub mod upgrade;
