//! The graceful upgrade, from the successor's side: a gateway started with
//! `run --upgrade` takes the listening sockets of the one running now
//! (pingora's graceful upgrade: the old process, on SIGQUIT, sends them
//! over `server.upgrade_sock`), then the state file once the old one has
//! drained and let go of it. The old side is [`crate::drain`]; the
//! procedure that starts one and signals the other is `applegate reload`
//! (src/cli/reload.rs), documented in the README (Operations).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config;
use crate::state::{self, Store, StoreError};

/// How the process gets its listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Binds them.
    Fresh,
    /// Takes them over from the gateway running now, which hands them
    /// over `server.upgrade_sock` on SIGQUIT (pingora's graceful upgrade).
    Upgrade,
}

/// Pingora's fixed wait between handing the sockets over and draining
/// (`CLOSE_TIMEOUT` in pingora-core's `server/mod.rs`).
pub const HANDOVER_CLOSE: Duration = Duration::from_secs(5);

/// The longest a gateway takes to exit after SIGQUIT once its successor
/// holds the sockets: pingora's wait, the drain, the runtimes' stop.
pub fn handover_bound(grace: Duration) -> Duration {
    HANDOVER_CLOSE + grace + grace.max(Duration::from_secs(1))
}

/// Whether a file can be created in `path`'s directory.
pub fn probe_dir(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let probe = dir.join(format!(".applegate-probe-{}", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Opens the store. On an upgrade the embedded file is still held (redb
/// locks it) by the gateway handing over until that one exits: this waits
/// for it, for as long as its drain can last. Meanwhile the inherited
/// listeners queue new connections in the kernel; the old gateway still
/// answers them until its drain begins. Opening both at once is not
/// wanted either: each keeps its own view of revocations in memory, and a
/// sign-out written by one would go unseen by the other.
pub fn open_store(
    state: &config::State,
    start: Start,
    grace: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    let deadline = Instant::now() + handover_bound(grace) + Duration::from_secs(10);
    let mut logged = false;
    loop {
        match state::open(state) {
            Err(StoreError::Open { cause, .. })
                if start == Start::Upgrade
                    && matches!(*cause, redb::DatabaseError::DatabaseAlreadyOpen)
                    && Instant::now() < deadline =>
            {
                if !logged {
                    tracing::info!(
                        "waiting for the gateway handing over to release the state file"
                    );
                    logged = true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}
