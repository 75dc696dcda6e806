//! Config ▶ a running pingora server.
//!
//! Builds pingora's own settings from our config (no pingora YAML: users
//! edit one file), the proxy service on the configured listener (TLS with
//! HTTP/2 when `[server.tls]` is set; the gate does the handshake, see
//! [`crate::edge::tls`]), the plain-HTTP redirect listener if asked
//! ([`crate::redirect`]), and background services for periodic upkeep and
//! certificate reloads ([`crate::reload`]). The caller supplies the shutdown
//! signal, so the binary stops on SIGTERM/SIGINT (and hands over on
//! SIGQUIT: [`crate::drain`]) and tests stop the real server when they are
//! done. [`Start::Upgrade`] takes the listening sockets over from a running
//! gateway (pingora's graceful upgrade) instead of binding them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};

use crate::access_log::AccessLog;
use crate::admin::Draining;
use crate::assertion::Assertions;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::drain::{Drained, Exit, Signals};
use crate::edge::OpenConnections;
use crate::proxy::error::Chain;
use crate::proxy::Gateway;
use crate::session::{DisabledEmails, Revocations};
use crate::state::StoreError;
pub use crate::upgrade::Start;
use crate::upgrade::{open_store, probe_dir};

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// The state store could not be opened or read.
    State(StoreError),
    /// The Apple client could not be built.
    Apple(crate::apple::AppleError),
    /// The server thread could not be started.
    Thread(std::io::Error),
    /// The listen address cannot be bound.
    Listen(SocketAddr, std::io::Error),
    /// The redirect listener's address cannot be bound.
    Redirect(SocketAddr, std::io::Error),
    /// The admin listener's address cannot be bound.
    Admin(SocketAddr, std::io::Error),
    /// The access log's file cannot be opened (or its thread started).
    AccessLog(Option<PathBuf>, std::io::Error),
    /// The upgrade socket cannot be created in its directory.
    UpgradeSock(PathBuf, std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::State(e) => write!(f, "{}", Chain(e)),
            StartError::Apple(e) => write!(f, "{}", Chain(e)),
            StartError::Thread(e) => write!(f, "cannot start the server thread: {e}"),
            StartError::Listen(a, e) => write!(f, "server.listen: cannot listen on {a}: {e}"),
            StartError::Redirect(a, e) => {
                write!(f, "server.redirect_http: cannot listen on {a}: {e}")
            }
            StartError::Admin(a, e) => write!(f, "admin.listen: cannot listen on {a}: {e}"),
            StartError::AccessLog(Some(p), e) => {
                write!(f, "log.access_file: cannot open {}: {e}", p.display())
            }
            StartError::AccessLog(None, e) => {
                write!(f, "cannot start the access log's writer: {e}")
            }
            StartError::UpgradeSock(p, e) => {
                write!(f, "server.upgrade_sock: cannot create {}: {e}", p.display())
            }
        }
    }
}

impl std::error::Error for StartError {}

/// Periodic upkeep: drops expired state entries and keeps Apple's keys fresh.
struct Upkeep {
    revocations: Arc<Revocations>,
    apple: Arc<crate::apple::Client>,
    clock: SharedClock,
}

#[async_trait]
impl BackgroundService for Upkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut sweep = tokio::time::interval(Duration::from_secs(600));
        // Each second asks whether Apple's keys are due (a clock read; the
        // fetch itself follows Apple's max-age, see `apple::jwks`). The
        // first tick is at once: the gateway serves while the first fetch
        // runs, whether or not Apple answers.
        let mut keys = tokio::time::interval(Duration::from_secs(1));
        keys.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = sweep.tick() => self.revocations.sweep(self.clock.now()).await,
                _ = keys.tick() => {
                    if let Some(Err(e)) = self.apple.jwks.refresh_if_due().await {
                        tracing::warn!(error = %Chain(&e), "refresh of Apple's keys failed; keeping the keys we have");
                    }
                }
            }
        }
    }
}

/// Pingora's server settings for `threads` worker threads; shared with the
/// load benchmark's bare pingora proxy so both run the same engine.
/// (Single-threaded runtimes and other upstream pool sizes measured no
/// different here: benches/RESULTS.md.)
pub fn engine_conf(threads: usize, grace_secs: u64) -> ServerConf {
    ServerConf {
        threads,
        grace_period_seconds: Some(grace_secs),
        graceful_shutdown_timeout_seconds: Some(grace_secs.max(1)),
        ..Default::default()
    }
}

/// The listener for `addr` with a `read_buffer`-byte read buffer and no
/// write buffer (the gate's [`crate::edge::HeadGuard`] buffers writes, and
/// frees that memory between requests).
pub fn listener(addr: &str, read_buffer: usize) -> ListenerConfig {
    // Pingora's default is a 64 KiB read buffer per connection: two thirds
    // of an idle keep-alive connection's memory, for no measured speed-up
    // over 4 KiB on HTTP/1 (benches/RESULTS.md).
    ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings::new(read_buffer, 0))
}

/// The access log, started if `[log] access` is on and the log filter lets
/// its events through (`level = "warn"` turned it off before it had a
/// writer of its own, and still does); the lines lost are counted in
/// `dropped`.
fn access_log(
    log: &crate::config::Log,
    dropped: prometheus::IntCounter,
) -> Result<Option<AccessLog>, StartError> {
    if !log.access || !tracing::enabled!(target: "applegate::access", tracing::Level::INFO) {
        return Ok(None);
    }
    let format = match log.format {
        crate::config::LogFormat::Text => crate::access_log::Format::Text,
        crate::config::LogFormat::Json => crate::access_log::Format::Json,
    };
    AccessLog::start(
        log.access_file.as_deref(),
        format,
        log.access_queue,
        dropped,
    )
    .map(Some)
    .map_err(|e| StartError::AccessLog(log.access_file.clone(), e))
}

/// A built server and what its drain needs.
pub struct Built {
    pub server: Server,
    pub draining: Draining,
    /// Every listener's open connections.
    pub connections: Vec<OpenConnections>,
    /// The access log, to be finished when the server has stopped.
    pub access: Option<AccessLog>,
}

/// Builds the pingora server for `config`.
pub fn build(config: &Config, clock: SharedClock, start: Start) -> Result<Built, StartError> {
    if start == Start::Fresh {
        // Pingora retries a busy address in the background; an operator is
        // better served by failing now with the reason. (An upgrade takes
        // the addresses from the running gateway, which holds them.)
        drop(
            std::net::TcpListener::bind(config.server.listen)
                .map_err(|e| StartError::Listen(config.server.listen, e))?,
        );
        if let Some(addr) = config.server.redirect_http {
            drop(std::net::TcpListener::bind(addr).map_err(|e| StartError::Redirect(addr, e))?);
        }
        if let Some(addr) = config.admin.listen {
            drop(std::net::TcpListener::bind(addr).map_err(|e| StartError::Admin(addr, e))?);
        }
    } else {
        // Pingora binds the socket with `unwrap`: a directory it cannot
        // write is reported here instead of as a panic.
        probe_dir(&config.server.upgrade_sock)
            .map_err(|e| StartError::UpgradeSock(config.server.upgrade_sock.clone(), e))?;
    }
    let grace = config.server.grace_period;
    let mut conf = engine_conf(config.server.threads, grace.as_secs());
    // UTF-8 and short enough: checked in config::server.
    conf.upgrade_sock = config.server.upgrade_sock.to_string_lossy().into_owned();
    let opt = Opt {
        upgrade: start == Start::Upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    // On an upgrade this waits (a few seconds at most) for the running
    // gateway's sockets; pingora exits the process if none come.
    server.bootstrap();
    if start == Start::Upgrade {
        tracing::info!(upgrade_sock = %config.server.upgrade_sock.display(), "took over the listening sockets");
        crate::systemd::main_pid();
    }
    // Fails closed: a store that cannot be opened stops the start.
    let store = open_store(&config.state, start, grace).map_err(StartError::State)?;
    let assertions = Assertions::load(config, &*store, clock.clone()).map_err(StartError::State)?;
    let disabled_emails = Arc::new(DisabledEmails::load(store.clone()).map_err(StartError::State)?);
    let revocations = Arc::new(Revocations::load(store, clock.now()).map_err(StartError::State)?);
    let mut gateway = Gateway::new(
        config,
        clock.clone(),
        revocations.clone(),
        disabled_emails,
        assertions,
    )
    .map_err(StartError::Apple)?;
    let access = access_log(&config.log, gateway.metrics.access_log_dropped.clone())?;
    gateway.access_log = access.clone();
    let metrics = gateway.metrics.clone();
    let apple = gateway.apple.clone();
    let upkeep = Upkeep {
        revocations: revocations.clone(),
        apple: gateway.apple.clone(),
        clock,
    };
    let pools = crate::pool::upkeep::Upkeep::of(gateway.routes.pools());
    let proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    let limits = crate::edge::Limits {
        keepalive_timeout: config.server.keepalive_timeout,
        head_timeout: config.server.head_timeout,
        max_head_size: config.server.max_head_size,
        max_connections: config.server.max_connections,
    };
    let mut gate = crate::edge::Gate::new(proxy, limits);
    let connections = gate.open_connections();
    let mut all_connections = vec![connections.clone()];
    let linger = crate::drain::linger(grace);
    let draining = Draining::default();
    let mut reload = crate::reload::Reload { tls: None };
    if let Some(tls) = &config.server.tls {
        let certificate = crate::edge::Certificate::new(tls.key.clone());
        gate = gate.with_tls(crate::edge::Tls::new(
            certificate.clone(),
            config.server.head_timeout,
        ));
        reload.tls = Some(crate::reload::TlsFiles {
            certificate,
            cert_file: tls.cert_file.clone(),
            key_file: tls.key_file.clone(),
        });
    }
    // Always: it also keeps SIGHUP from ending the process.
    server.add_service(background_service("certificate reload", reload));
    let mut proxy = pingora::services::listening::Service::new(
        "applegate".to_string(),
        Drained::new(gate, linger),
    );
    // A plain TCP listener even with TLS: the gate handshakes, after the
    // connection cap and under the head deadline.
    proxy.add_listener(listener(
        &config.server.listen.to_string(),
        config.server.read_buffer,
    ));
    server.add_service(proxy);
    if let Some(addr) = config.server.redirect_http {
        let app = pingora::apps::http_app::HttpServer::new_app(crate::redirect::Redirect::new(
            &config.server.public_url.origin,
        ));
        let gate = crate::edge::Gate::new(app, limits);
        all_connections.push(gate.open_connections());
        let mut redirect = pingora::services::listening::Service::new(
            "redirect to https".to_string(),
            Drained::new(gate, linger),
        );
        redirect.add_listener(listener(&addr.to_string(), config.server.read_buffer));
        server.add_service(redirect);
    }
    if let Some(addr) = config.admin.listen {
        let app = crate::admin::Admin {
            metrics,
            store: revocations.store(),
            fail_closed: config.state.fail_closed(),
            revocations,
            apple,
            connections,
            draining: draining.clone(),
        };
        let app = pingora::apps::http_app::HttpServer::new_app(app);
        let gate = crate::edge::Gate::new(app, limits);
        all_connections.push(gate.open_connections());
        let mut admin = pingora::services::listening::Service::new(
            "admin".to_string(),
            Drained::new(gate, linger),
        );
        admin.add_listener(listener(&addr.to_string(), config.server.read_buffer));
        server.add_service(admin);
    }
    server.add_service(background_service("draining", draining.clone()));
    server.add_service(background_service("upkeep", upkeep));
    if let Some(pools) = pools {
        server.add_service(background_service("upstream pools", pools));
    }
    Ok(Built {
        server,
        draining,
        connections: all_connections,
        access,
    })
}

/// Runs the gateway until SIGTERM (graceful), SIGQUIT (graceful upgrade)
/// or SIGINT (fast); `start` says whether it takes over from a running one.
pub fn run(config: &Config, clock: SharedClock, start: Start) -> Result<(), StartError> {
    let Built {
        mut server,
        draining,
        connections,
        access,
    } = build(config, clock, start)?;
    server.add_service(background_service(
        "exit when drained",
        Exit {
            connections,
            access: access.clone(),
        },
    ));
    server.add_service(background_service("systemd", crate::systemd::Ready));
    tracing::info!(
        listen = %config.server.listen,
        tls = config.server.tls.is_some(),
        redirect_http = config.server.redirect_http.map(|a| a.to_string()),
        admin = config.admin.listen.map(|a| a.to_string()),
        public_url = %config.server.public_url.origin,
        upgrade = start == Start::Upgrade,
        "applegate started"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { draining }),
    });
    crate::access_log::finish(access.as_ref());
    Ok(())
}

/// A shutdown signal the caller triggers.
struct Trigger(tokio::sync::watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for Trigger {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        // An error means the sender is gone: stop as well.
        let _ = rx.wait_for(|stop| *stop).await;
        ShutdownSignal::FastShutdown
    }
}

/// A gateway running on its own thread, stopped when dropped.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the gateway and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Starts the gateway on a thread and waits until it accepts connections
/// (for `dev` and tests; the binary uses [`run`]).
pub fn spawn(config: &Config, clock: SharedClock) -> Result<Running, StartError> {
    let Built { server, access, .. } = build(config, clock, Start::Fresh)?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("applegate".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(Trigger(rx)),
            });
            crate::access_log::finish(access.as_ref());
        })
        .map_err(StartError::Thread)?;
    let addr = config.server.listen;
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    // Pingora binds inside its runtime; wait (bounded) until it listens.
    for _ in 0..500 {
        if std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(50)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Running {
        addr,
        stop,
        thread: Some(thread),
    })
}
