//! The gate: the listening service's app, in front of pingora's HTTP app.
//!
//! Once per connection it takes a permit (at most `max_connections` open
//! at once, well below the file-descriptor limit, so a flood of idle
//! connections cannot make `accept` fail for everyone or the process run
//! out of descriptors), moves the connection to a task of its own (pingora's
//! is sized for a TLS handshake it does not do here, and would live as long
//! as the connection) and wraps the stream in a [`HeadGuard`]. An HTTP/1
//! connection then runs the gate's own keep-alive loop ([`super::http1`]:
//! it re-arms the guard and waits for each request's first bytes before
//! pingora builds a session for it); HTTP/2 runs pingora's. A connection
//! over the cap is closed at once, and the refusal is logged (at most
//! once a second, however many there are).
//!
//! On a TLS listener the gate also does the handshake ([`super::tls`]),
//! after taking the permit. HTTP/1.1 over TLS gets the same guard, on the
//! decrypted stream. HTTP/2 does not: its frames are binary and carry many
//! requests at once, so a per-head byte count and an HTTP/1 error page
//! make no sense there. An h2 connection gets a deadline for the client's
//! preface only; after that pingora's h2 server bounds it: the header
//! block (SETTINGS_MAX_HEADER_LIST_SIZE = `max_head_size`), 100 concurrent
//! streams, and the idle time (`keepalive_timeout`). What h2 lacks is a
//! per-request head deadline (a client may trickle one stream's headers
//! while others run); the connection cap still bounds what that holds.

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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::head::{HeadGuard, HeadLimits};
use super::tls::{self, HandshakeError, Tls};

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
    /// TLS handshakes that failed or ran out of time.
    handshakes: AtomicU64,
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

    fn handshake_failed(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
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
            tls_handshakes_failed = self.handshakes.load(Ordering::Relaxed),
            "connections refused at the edge (totals since start)"
        );
    }
}

/// The listening service's app: pingora's HTTP app behind the edge.
pub struct Gate<A> {
    inner: Arc<Inner<A>>,
    permits: Arc<Semaphore>,
    head: HeadLimits,
    refusals: Arc<Refusals>,
    /// Set on a TLS listener: the gate handshakes.
    tls: Option<Tls>,
    max_connections: usize,
    /// Turns true at [`ServerApp::cleanup`]: connections waiting for their
    /// next request close then. Not at the shutdown signal itself: a drain
    /// may keep them open a little longer (`crate::drain::Drained`), so a
    /// request already on its way is answered rather than met by a reset.
    closing: tokio::sync::watch::Sender<bool>,
}

/// The open connections of one gate, read from its permits (for
/// `/metrics`: nothing is counted per connection beyond the permit).
#[derive(Clone)]
pub struct OpenConnections {
    permits: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    /// Connections open now.
    pub fn get(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }
}

impl<A: HttpServerApp> Gate<A> {
    /// `app` (pingora's HTTP proxy app) behind the edge `limits`.
    pub fn new(app: A, limits: Limits) -> Self {
        // The app's own options, with h2's idle limit: pingora's HTTP/1
        // keep-alive wait is ours (the head guard), h2's is this one.
        let mut options = app.server_options().cloned().unwrap_or_default();
        options.h2_idle_timeout = Some(limits.keepalive_timeout);
        let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
        h2.max_header_list_size(u32::try_from(limits.max_head_size).unwrap_or(u32::MAX));
        Gate {
            inner: Arc::new(Inner {
                app: Arc::new(app),
                options,
                h2,
            }),
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            head: HeadLimits {
                deadline: limits.head_timeout,
                max_size: limits.max_head_size,
                idle: limits.keepalive_timeout,
            },
            refusals: Arc::new(Refusals::default()),
            tls: None,
            max_connections: limits.max_connections,
            closing: tokio::sync::watch::Sender::new(false),
        }
    }

    /// What reads this gate's open connections.
    pub fn open_connections(&self) -> OpenConnections {
        OpenConnections {
            permits: self.permits.clone(),
            max: self.max_connections,
        }
    }

    /// The listener speaks TLS: the gate handshakes each connection.
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }
}

impl<A> Gate<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    /// Serves one client connection to its end: the TLS handshake if the
    /// listener has one, then HTTP/1 through the gate's loop or HTTP/2
    /// through pingora's. `_permit` is the connection's place under the cap.
    async fn connection(
        self: Arc<Self>,
        stream: Stream,
        shutdown: ShutdownWatch,
        _permit: OwnedSemaphorePermit,
    ) {
        let stream = match &self.tls {
            None => stream,
            // Boxed: this future lives as long as the connection, and would
            // otherwise be as large as the handshake's for all of it.
            Some(t) => match Box::pin(t.handshake(stream)).await {
                Ok(s) => s,
                Err(HandshakeError::NotTcp) => {
                    tracing::error!("a TLS listener got a stream that is not TCP");
                    return;
                }
                Err(HandshakeError::Timeout | HandshakeError::Failed) => {
                    self.refusals.handshake_failed();
                    return;
                }
            },
        };
        if tls::is_h2(&stream) {
            let guarded: Stream =
                Box::new(HeadGuard::preface(stream, self.head, self.refusals.clone()));
            // Pingora's h2 loop (boxed by async_trait) hands no stream back.
            let _ = ServerApp::process_new(&self.inner, guarded, &shutdown).await;
            return;
        }
        let guard = Box::new(HeadGuard::new(stream, self.head, self.refusals.clone()));
        let closing = self.closing.subscribe();
        super::http1::serve(
            &self.inner.app,
            &self.inner.options,
            guard,
            &shutdown,
            closing,
        )
        .await;
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
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.refusals.over_cap();
            return None;
        };
        // The connection moves to a task of its own and pingora's ends
        // here. Pingora's task is sized for its listener's TLS handshake,
        // used or not (8.8 KB a connection on pingora 0.9.1, heaptrack:
        // half of an idle connection's memory); ours holds only what the
        // connection needs. One spawn per connection, not per request.
        tokio::spawn(self.clone().connection(stream, shutdown.clone(), permit));
        None
    }

    async fn cleanup(&self) {
        // Closes HTTP/1 connections waiting for a request (ours), and wakes
        // keep-alive reads waiting in pingora's loop (h2's).
        self.closing.send_replace(true);
        ServerApp::cleanup(&*self.inner).await
    }
}

/// Pingora's HTTP app with our options: what HTTP/2 connections run
/// through pingora's own loop, and what the HTTP/1 loop calls.
pub struct Inner<A> {
    app: Arc<A>,
    /// The app's server options with h2's idle timeout set.
    options: pingora::apps::HttpServerOptions,
    /// h2's settings: pingora's bounded defaults, our head size.
    h2: pingora::protocols::http::v2::server::H2Options,
}

#[async_trait]
impl<A> HttpServerApp for Inner<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    // Written out rather than `async fn`: the inner app's future is
    // returned as it is, with no second future wrapped around it.
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
        self.app.process_new_http(session, shutdown)
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        Some(self.h2.clone())
    }

    async fn http_cleanup(&self) {
        self.app.http_cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::apps::http_app::{HttpServer, ServeHttp};

    struct Empty;

    #[async_trait]
    impl ServeHttp for Empty {
        async fn response(&self, _: &mut ServerSession) -> http::Response<Vec<u8>> {
            http::Response::new(Vec::new())
        }
    }

    /// What an idle connection's task holds is this future (plus tokio's
    /// task header): pingora's own task for a connection was 8.8 KB on
    /// 0.9.1 (heaptrack), sized for its listener's TLS handshake. The
    /// handshake and pingora's h2 loop are boxed, so they do not count.
    #[tokio::test]
    async fn a_connection_task_is_small() {
        let gate = Arc::new(Gate::new(
            HttpServer::new_app(Empty),
            Limits {
                head_timeout: Duration::from_secs(1),
                max_head_size: 1024,
                max_connections: 1,
                keepalive_timeout: Duration::from_secs(1),
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let permit = gate.permits.clone().try_acquire_owned().unwrap();
        let task = gate.clone().connection(stream, shutdown, permit);
        let size = std::mem::size_of_val(&task);
        eprintln!("a connection's future: {size} bytes");
        assert!(size <= 2048, "a connection's future is {size} bytes");
    }
}
