//! `[admin] listen`: the admin listener. `/metrics` (Prometheus's text
//! format, [`crate::metrics`]), `/ping` (liveness: the process answers)
//! and `/ready` (readiness: Apple's keys loaded or loadable, the state
//! store answering, not draining). Anything else is 404.
//!
//! A pingora service of its own beside the proxy, as the redirect
//! listener is ([`crate::redirect`]): the same runtime, started and
//! stopped with the server, no second HTTP stack; and a separate listener,
//! so nothing of it is reachable on the public port (the proxy never
//! answers these paths itself). It binds where the operator says (keep it
//! on loopback or a private network): it has no authentication.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::json;

use crate::apple;
use crate::edge::OpenConnections;
use crate::metrics::Metrics;
use crate::session::Revocations;
use crate::state::{self, Store};

/// The admin app.
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub revocations: Arc<Revocations>,
    pub apple: Arc<apple::Client>,
    pub store: Arc<dyn Store>,
    /// `state.fail_closed`: out of sync, this replica refuses sessions, so
    /// it is not ready either.
    pub fail_closed: bool,
    pub connections: OpenConnections,
    pub draining: Draining,
}

/// Set once the server is shutting down: `/ready` turns 503 so a load
/// balancer stops sending new requests while existing ones finish. Set by
/// the signal itself ([`crate::drain::Signals`]: on SIGQUIT the old
/// process still serves a few seconds before its drain), and by the
/// server's shutdown however it came.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl BackgroundService for Draining {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // An error means the sender is gone: the server is stopping too.
        let _ = shutdown.changed().await;
        self.set();
    }
}

/// The store answers a read (a lookup of an id no notification has), and
/// a shared one keeps this replica's views in sync.
async fn store_up(store: &Arc<dyn Store>) -> bool {
    if !store.in_sync() {
        return false;
    }
    let store = store.clone();
    state::blocking(move || store.notification_seen("applegate-readiness-probe"))
        .await
        .is_ok()
}

impl Admin {
    /// The exposition, with the gauges read now.
    async fn metrics(&self) -> (StatusCode, &'static str, Vec<u8>) {
        let m = &self.metrics;
        m.revocations.set(self.revocations.len() as i64);
        m.apple_keys.set(self.apple.jwks.len() as i64);
        m.store_up.set(i64::from(store_up(&self.store).await));
        m.open_connections.set(self.connections.get() as i64);
        let body = m.render().into_bytes();
        (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            body,
        )
    }

    /// 200 when the gateway can serve sign-ins, else 503, with why. A
    /// shared store out of reach is "degraded", and still ready (signed-in
    /// users are served from the last known view: taking every replica out
    /// of the load balancer would serve no one) unless `fail_closed`.
    async fn ready(&self) -> (StatusCode, &'static str, Vec<u8>) {
        let draining = self.draining.get();
        let keys = self.apple.jwks.loaded_or_loadable().await;
        let store = store_up(&self.store).await;
        let shared_away = !store && !self.store.in_sync();
        let store_ok = store || (shared_away && !self.fail_closed);
        let ready = !draining && keys && store_ok;
        let reason = match (draining, keys, store, store_ok) {
            (true, ..) => "draining",
            (_, false, ..) => "Apple's signing keys are not loaded and cannot be fetched",
            (_, _, false, true) => {
                "degraded: the state store (Redis) is out of reach; signed-in users are served from the last known view"
            }
            (_, _, false, false) if shared_away => {
                "the state store (Redis) is out of reach and state.fail_closed refuses sessions"
            }
            (_, _, false, false) => "the state store does not answer",
            _ => "ready",
        };
        let body = json!({
            "ready": ready,
            "reason": reason,
            "apple_keys": self.apple.jwks.len(),
            "store": match (store, shared_away) {
                (true, _) => "ok",
                (false, true) => "degraded",
                (false, false) => "unreachable",
            },
            "draining": draining,
        });
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, "application/json", format!("{body}\n").into_bytes())
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if let Some(guard) = session.stream().and_then(crate::edge::HeadGuard::of) {
            guard.reached_proxy();
        }
        let path = session.req_header().uri.path().to_string();
        let text = "text/plain; charset=utf-8";
        let (status, content_type, body) = match path.as_str() {
            "/metrics" => self.metrics().await,
            "/ping" => (StatusCode::OK, text, b"OK\n".to_vec()),
            "/ready" => self.ready().await,
            _ => (StatusCode::NOT_FOUND, text, b"not found\n".to_vec()),
        };
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body)
            .unwrap_or_else(|_| {
                let mut r = Response::new(Vec::new());
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            })
    }
}
