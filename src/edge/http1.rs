//! An HTTP/1 connection's keep-alive loop, the gate's own.
//!
//! Pingora's loop (its `ServerApp` for every `HttpServerApp`) builds a
//! session and calls the app as soon as a connection is accepted or a
//! request done: the proxy's boxed request future (13,376 bytes on
//! pingora 0.9.1), the session and its 4 KiB header buffer then live for
//! as long as the client stays silent, up to `keepalive_timeout`. With
//! 10,000 idle keep-alive connections that was most of the gateway's
//! memory (benches/RESULTS.md).
//!
//! This loop waits first, in the [`HeadGuard`] (under the head deadline
//! for a connection's first request, the keep-alive idle time for the
//! next ones; closing when the gate closes at shutdown), and builds the session only once the
//! request's first bytes are in; after the request it takes the stream
//! back and waits again. A waiting connection holds its socket, the guard
//! and this loop's small future, nothing per request and no buffer
//! (benches/RESULTS.md: 2.7 KB in all). The guard reads
//! rather than peeks, so TLS connections wait the same way (rustls cannot
//! peek); what rustls itself keeps per connection is the rest.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;

use super::head::HeadGuard;

/// Serves requests on `guard`'s connection until it closes, is idle too
/// long, or the gate is `closing` (the server's shutdown, after any linger
/// of a drain; requests read after `shutdown` are answered with
/// `Connection: close`).
pub(super) async fn serve<A>(
    app: &Arc<A>,
    options: &HttpServerOptions,
    mut guard: Box<HeadGuard>,
    shutdown: &ShutdownWatch,
    mut closing: tokio::sync::watch::Receiver<bool>,
) where
    A: HttpServerApp + Send + Sync + 'static,
{
    let mut settings: Option<HttpPersistentSettings> = None;
    loop {
        guard.arm();
        // A pipelined request the last session read past its own is in
        // `settings`, not on the socket: waiting for the socket would
        // hold it until the client gave up.
        if !settings.as_ref().is_some_and(may_hold_request) {
            let ready = tokio::select! {
                // Bytes already here are served, as pingora's loop does.
                biased;
                ready = std::future::poll_fn(|cx| guard.poll_fill(cx)) => ready,
                _ = closing.wait_for(|closing| *closing) => false,
            };
            if !ready {
                return;
            }
        }
        let mut session = ServerSession::new_http1(guard);
        match settings.take() {
            Some(s) => s.apply_to_session(&mut session),
            // As pingora's loop starts a connection.
            None => {
                session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
                session.set_keepalive_reuses_remaining(options.keepalive_request_limit);
            }
        }
        let Some(reused) = app.process_new_http(session, shutdown).await else {
            return;
        };
        let (stream, kept) = reused.consume();
        settings = kept;
        guard = match stream.into_any().downcast::<HeadGuard>() {
            Ok(g) => g,
            // The session gives back the stream it was given.
            Err(_) => return,
        };
    }
}

/// Whether `settings` may carry bytes of a pipelined request.
///
/// Pingora keeps them in a private field with no getter; its derived
/// `Debug` is the only public view. Fails safe: anything but a plain
/// `pipelined_prefix: None` counts as bytes (a session then waits for the
/// socket itself, as in pingora's loop: memory, not a hang). The scan
/// stops at that field, with no allocation.
fn may_hold_request(settings: &HttpPersistentSettings) -> bool {
    let mut probe = Probe::default();
    let _ = write!(probe, "{settings:?}");
    probe.verdict != Some(false)
}

/// Reads a `Debug` text as it is written, up to `pipelined_prefix`'s value.
#[derive(Default)]
struct Probe {
    /// What of `FIELD` and the value's first letters was seen so far.
    seen: usize,
    /// `Some(true)`: the prefix is `Some(…)`; `Some(false)`: `None`.
    verdict: Option<bool>,
}

const FIELD: &[u8] = b"pipelined_prefix: ";

impl fmt::Write for Probe {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.seen < FIELD.len() {
                self.seen = if b == FIELD[self.seen] {
                    self.seen + 1
                } else {
                    usize::from(b == FIELD[0])
                };
            } else {
                self.verdict = Some(b != b'N');
                // Done: an error stops the formatting here.
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe reads pingora's `Debug` of the settings: `None` is told
    /// apart from bytes, and anything else counts as bytes.
    #[test]
    fn the_probe_reads_the_prefix_field() {
        let read = |text: &str| {
            let mut p = Probe::default();
            let _ = p.write_str(text);
            p.verdict
        };
        assert_eq!(
            read("HttpPersistentSettings { keepalive_timeout: Some(0), pipelined_prefix: None, pipelining_enabled: true }"),
            Some(false)
        );
        assert_eq!(
            read("HttpPersistentSettings { pipelined_prefix: Some(b\"GET\"), pipelining_enabled: true }"),
            Some(true)
        );
        assert_eq!(read("HttpPersistentSettings { other: None }"), None);
        assert_eq!(read("ppipelined_prefix: None"), Some(false));
    }

    /// The same on pingora's own settings, so a pingora upgrade that
    /// changes its `Debug` shows here.
    #[tokio::test]
    async fn the_probe_reads_pingoras_settings() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let stream: pingora::protocols::Stream =
            Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(Some(0));
        let mut settings = HttpPersistentSettings::for_session(&session);
        assert!(!may_hold_request(&settings));
        settings.set_pipelined_prefix(bytes::BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]));
        assert!(may_hold_request(&settings));
    }
}
