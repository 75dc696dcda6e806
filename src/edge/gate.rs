//! The gate: the listening service's app, in front of pingora's HTTP app.
//!
//! Once per connection it takes a permit (at most `max_connections` open
//! at once, well below the file-descriptor limit, so a flood of idle
//! connections cannot make `accept` fail for everyone or the process run
//! out of descriptors) and wraps the stream in a [`HeadGuard`]. Once per
//! request, [`Arming`] re-arms the guard before pingora reads the next
//! head. A connection over the cap is closed at once, and the refusal is
//! logged (at most once a second, however many there are).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Semaphore;

use super::head::{HeadGuard, HeadLimits};

/// The edge limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head_timeout: Duration,
    pub max_head_size: usize,
    pub max_connections: usize,
    /// Longest wait for the next request on a kept-alive connection.
    pub keepalive_timeout: Duration,
}

/// Refusals at the edge, counted for log lines that say how many.
#[derive(Default)]
pub struct Refusals {
    over_cap: AtomicU64,
    timeouts: AtomicU64,
    too_large: AtomicU64,
    malformed: AtomicU64,
    /// Seconds since the Unix epoch of the last log line.
    last_log: AtomicU64,
}

impl Refusals {
    /// Counts one refusal by its status.
    pub fn count(&self, status: u16) {
        let counter = match status {
            408 => &self.timeouts,
            431 => &self.too_large,
            _ => &self.malformed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.maybe_log();
    }

    fn over_cap(&self) {
        self.over_cap.fetch_add(1, Ordering::Relaxed);
        self.maybe_log();
    }

    /// One line a second at most, with the totals since start.
    fn maybe_log(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_log.load(Ordering::Relaxed);
        if now <= last
            || self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        tracing::warn!(
            over_connection_cap = self.over_cap.load(Ordering::Relaxed),
            head_timeouts = self.timeouts.load(Ordering::Relaxed),
            heads_too_large = self.too_large.load(Ordering::Relaxed),
            malformed = self.malformed.load(Ordering::Relaxed),
            "connections refused at the edge (totals since start)"
        );
    }
}

/// The listening service's app: pingora's HTTP app behind the edge.
pub struct Gate<A> {
    inner: Arc<Arming<A>>,
    permits: Arc<Semaphore>,
    head: HeadLimits,
    refusals: Arc<Refusals>,
}

impl<A> Gate<A> {
    /// `app` (pingora's HTTP proxy app) behind the edge `limits`.
    pub fn new(app: A, limits: Limits) -> Self {
        Gate {
            inner: Arc::new(Arming { app: Arc::new(app) }),
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            head: HeadLimits {
                deadline: limits.head_timeout,
                max_size: limits.max_head_size,
                idle: limits.keepalive_timeout,
            },
            refusals: Arc::new(Refusals::default()),
        }
    }
}

#[async_trait]
impl<A> ServerApp for Gate<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Held for the whole connection, released when it closes.
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.refusals.over_cap();
            return None;
        };
        let guarded: Stream = Box::new(HeadGuard::new(stream, self.head, self.refusals.clone()));
        ServerApp::process_new(&self.inner, guarded, shutdown).await
    }

    async fn cleanup(&self) {
        // Wakes keep-alive reads waiting at shutdown.
        ServerApp::cleanup(&*self.inner).await
    }
}

/// Re-arms a connection's [`HeadGuard`] before each request head; the rest
/// is pingora's HTTP app.
pub struct Arming<A> {
    app: Arc<A>,
}

#[async_trait]
impl<A> HttpServerApp for Arming<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    // Written out rather than `async fn`: arming is synchronous, so the
    // inner app's future is returned as it is, with no second future
    // wrapped around it (and the session moved once less) per request.
    fn process_new_http<'life0, 'life1, 'async_trait>(
        self: &'life0 Arc<Self>,
        session: ServerSession,
        shutdown: &'life1 ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        if let Some(guard) = session.stream().and_then(HeadGuard::of) {
            guard.arm();
        }
        self.app.process_new_http(session, shutdown)
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.app.server_options()
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        self.app.h2_options()
    }

    async fn http_cleanup(&self) {
        self.app.http_cleanup().await
    }
}
