//! Certificate reload: `[server.tls]` files read again on SIGHUP, or when
//! either file's modification time changes (checked every few seconds, so
//! certbot or cert-manager renewals need no signal). Without `[server.tls]`
//! SIGHUP is still caught and logged: its default action would end the
//! process, and `kill -HUP` (or a unit's `ExecReload`) must never stop a
//! gateway.
//!
//! A reload swaps the pair behind [`crate::edge::Certificate`]: the next
//! handshake gets it, open connections keep the one they shook hands with
//! and are not dropped. A pair that does not load (bad PEM, a key that is
//! not the certificate's, a file half written) is logged as an error and
//! the pair in use is kept: a renewal gone wrong never takes TLS down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::tls::load_pair;
use crate::edge::Certificate;

/// How often the files' modification times are compared.
pub const POLL: Duration = Duration::from_secs(2);

/// The background service that reloads the listener's certificate, if
/// there is one, and catches SIGHUP either way.
pub struct Reload {
    pub tls: Option<TlsFiles>,
}

/// The listener's certificate and the files it is read from.
pub struct TlsFiles {
    pub certificate: Arc<Certificate>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Both files' modification times; `None` for one that cannot be read
/// (it is being replaced), which counts as a change when it comes back.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

impl TlsFiles {
    fn stamp(&self) -> Stamp {
        let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (mtime(&self.cert_file), mtime(&self.key_file))
    }

    /// Loads the files again; on success new handshakes use them.
    pub fn reload(&self, why: &str) {
        match load_pair(&self.cert_file, &self.key_file) {
            Ok(pair) => {
                self.certificate.replace(Arc::new(pair));
                tracing::info!(reason = why, cert_file = %self.cert_file.display(), "TLS certificate reloaded");
            }
            // The message names the file and the problem, never key bytes.
            Err(e) => tracing::error!(
                reason = why,
                error = %e,
                "TLS certificate reload failed; keeping the certificate in use"
            ),
        }
    }
}

#[async_trait]
impl BackgroundService for Reload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // SIGHUP would otherwise end the process (its default action).
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates reload on file change only");
                None
            }
        };
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.tls.as_ref().map(TlsFiles::stamp);
        loop {
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hangup => match &self.tls {
                    Some(tls) => {
                        seen = Some(tls.stamp());
                        tls.reload("SIGHUP");
                    }
                    None => tracing::info!("SIGHUP: nothing to reload (no [server.tls])"),
                },
                _ = poll.tick(), if self.tls.is_some() => {
                    if let Some(tls) = &self.tls {
                        let now = tls.stamp();
                        if Some(now) != seen {
                            seen = Some(now);
                            tls.reload("file changed");
                        }
                    }
                }
            }
        }
    }
}
