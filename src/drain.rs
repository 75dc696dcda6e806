//! How a gateway process ends: the signals, the drain, the exit.
//!
//! - SIGQUIT: graceful upgrade. Pingora sends the listening sockets over
//!   `server.upgrade_sock` to the successor started with `run --upgrade`,
//!   keeps serving for its fixed 5 s (`CLOSE_TIMEOUT` in pingora's
//!   `server/mod.rs`, for the successor to get going), then drains.
//! - SIGTERM: graceful stop: drains at once.
//! - SIGINT: fast stop.
//!
//! Either graceful signal turns `/ready` to 503 at once ([`Draining`]).
//! The drain: pingora stops accepting and marks every request read from
//! then on `Connection: close`; in-flight requests get `server.grace_period`.
//! [`Drained`] keeps idle keep-alive connections open for [`linger`] before
//! pingora closes them, so a request already on its way is answered (with
//! `Connection: close`) rather than met by a closed socket, a reset the
//! client cannot tell from a failure. Pingora then sleeps out the whole
//! grace period even with nothing left to serve; [`Exit`] ends the process
//! as soon as its last connection has closed: with the embedded store the
//! successor can open the state file only then, and it accepts nothing
//! until it has (see README, Operations).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::Draining;
use crate::edge::OpenConnections;

/// Longest wait before idle keep-alive connections are closed in a drain:
/// one round trip on any real network, so a request sent just before the
/// drain began is read and answered.
pub const MAX_LINGER: Duration = Duration::from_secs(1);

/// How long idle connections stay open in a drain: [`MAX_LINGER`], or half
/// the grace period if that is shorter (the rest is for the answers).
pub fn linger(grace: Duration) -> Duration {
    MAX_LINGER.min(grace / 2)
}

/// The process's signals, for pingora's run loop; a graceful one marks the
/// gateway draining before pingora acts on it.
pub struct Signals {
    pub draining: Draining,
}

/// A signal stream, or one that never fires if it cannot be set up (the
/// signal then keeps its default action; logged once).
async fn next(kind: SignalKind, name: &str) {
    match signal(kind) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            tracing::error!(error = %e, signal = name, "cannot listen for the signal");
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let signal = tokio::select! {
            _ = next(SignalKind::quit(), "SIGQUIT") => ShutdownSignal::GracefulUpgrade,
            _ = next(SignalKind::terminate(), "SIGTERM") => ShutdownSignal::GracefulTerminate,
            _ = next(SignalKind::interrupt(), "SIGINT") => ShutdownSignal::FastShutdown,
        };
        match signal {
            ShutdownSignal::GracefulUpgrade => tracing::info!(
                "SIGQUIT: handing the listening sockets to the new process, then draining"
            ),
            ShutdownSignal::GracefulTerminate => tracing::info!("SIGTERM: draining, then exiting"),
            _ => tracing::info!("SIGINT: exiting now"),
        }
        if !matches!(signal, ShutdownSignal::FastShutdown) {
            self.draining.set();
        }
        signal
    }
}

/// A listening service's app whose idle connections are closed [`linger`]
/// after the drain starts rather than at once (pingora closes them when
/// the app's `cleanup` runs, right after the listener stops).
pub struct Drained<A> {
    inner: Arc<A>,
    linger: Duration,
}

impl<A> Drained<A> {
    pub fn new(inner: A, linger: Duration) -> Self {
        Drained {
            inner: Arc::new(inner),
            linger,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Drained<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(self.linger).await;
        self.inner.cleanup().await
    }
}

/// How long no connection may be open before [`Exit`] ends the process:
/// covers a connection accepted in the last instant before the listener
/// stopped, whose task has not yet taken its permit.
const QUIET: Duration = Duration::from_millis(100);

/// Ends the process once a drain has closed every connection of every
/// listener, instead of pingora's sleep for the whole grace period. Every
/// answer was committed to the store before it was sent, so nothing is
/// lost; a background write cut short is not committed, as in a crash,
/// which the store survives (src/state/embedded.rs).
pub struct Exit {
    pub connections: Vec<OpenConnections>,
    /// Written out before the exit, which skips the server's own end.
    pub access: Option<crate::access_log::AccessLog>,
}

impl Exit {
    fn open(&self) -> usize {
        self.connections.iter().map(OpenConnections::get).sum()
    }
}

#[async_trait]
impl BackgroundService for Exit {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let tick = Duration::from_millis(10);
        let mut quiet = Duration::ZERO;
        while quiet < QUIET {
            tokio::time::sleep(tick).await;
            quiet = if self.open() == 0 {
                quiet + tick
            } else {
                Duration::ZERO
            };
        }
        tracing::info!("drained: every connection is closed; exiting");
        crate::access_log::finish(self.access.as_ref());
        std::process::exit(0);
    }
}
