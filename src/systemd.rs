//! systemd's notification protocol (sd_notify(3)): one datagram to the
//! socket named by `$NOTIFY_SOCKET`, written here rather than through a
//! crate (a dozen lines, no C library).
//!
//! The shipped unit is `Type=notify` with `NotifyAccess=all`: a gateway
//! says `READY=1` once its services run, and a successor started by
//! `applegate reload` says `MAINPID=` as soon as it holds the listening
//! sockets, before its predecessor exits, so systemd follows the new
//! process instead of taking the old one's exit for the service's end.

use std::os::unix::net::UnixDatagram;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Sends `state` to systemd; `Ok(false)` when not run by systemd.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    // `@name` is a socket in Linux's abstract namespace.
    #[cfg(target_os = "linux")]
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
        return Ok(true);
    }
    socket.send_to(state.as_bytes(), &path)?;
    Ok(true)
}

/// This process is the service's main process (a successor says so the
/// moment it holds the sockets).
pub fn main_pid() {
    if let Err(e) = notify(&format!("MAINPID={}", std::process::id())) {
        tracing::warn!(error = %e, "cannot tell systemd the new main process");
    }
}

/// Says `READY=1` (and `MAINPID`) when the server's services start.
pub struct Ready;

#[async_trait]
impl BackgroundService for Ready {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let state = format!("READY=1\nMAINPID={}", std::process::id());
        if let Err(e) = notify(&state) {
            tracing::warn!(error = %e, "cannot tell systemd the gateway is ready");
        }
    }
}
