//! A client stream that bounds each request head in time and size.
//!
//! Armed before each request head is read, the guard starts a deadline (at
//! accept for a connection's first request, at the first byte for the
//! next ones; never reset per byte: one header line a second does not hold
//! a connection; before that first byte, the keep-alive idle timeout runs
//! on the same timer) and counts the bytes read, limiting each read to what is
//! left of the budget. It stands down only when the proxy reports the
//! request reached it, not at the first blank line it sees: a parser skips
//! leading blank lines, so a guard that trusted them could be switched off
//! by sending `\r\n\r\n` first. Over time it answers 408, over size 431,
//! and closes; the connection never reaches pingora's parser with more.
//!
//! Until the proxy has seen the request, anything written to the client
//! can only be pingora's own error page (a head it could not parse, a
//! refused method): the guard writes ours instead, without `Server:
//! Pingora`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::write_buffer::WriteBuffer;

/// No signal since the last read.
const SIGNAL_NONE: u8 = 0;
/// A new request head is about to be read.
const SIGNAL_ARM: u8 = 1;
/// The request reached the proxy: its head is done.
const SIGNAL_HEAD_DONE: u8 = 2;

/// What the guard is doing on the read side.
enum Phase {
    /// Between heads (a body, or after the request reached the proxy).
    Idle,
    /// Armed, waiting for the head's first byte.
    Waiting,
    /// Reading a head: `bytes` so far, under a running deadline.
    Reading { bytes: usize },
}

/// The limits of one request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub deadline: Duration,
    pub max_size: usize,
    /// Keep-alive: the longest wait for a later request's first byte.
    pub idle: Duration,
}

/// A client stream guarded while it carries a request head.
pub struct HeadGuard {
    inner: Stream,
    limits: HeadLimits,
    phase: Phase,
    /// The head deadline, reset (not reallocated) for each head.
    timer: Pin<Box<Sleep>>,
    /// Set from outside (through `&self`, after a downcast) and read by
    /// the next `poll_read`.
    signal: AtomicU8,
    /// Whether the current request reached the proxy; until it has,
    /// writes are pingora's own error pages and get replaced.
    reached_proxy: AtomicBool,
    /// The replacement for pingora's page was written: swallow the rest.
    replaced: bool,
    /// Whether the first request was armed: its deadline runs from accept.
    armed_once: AtomicBool,
    /// HTTP/2: guard only the client's connection preface, this many bytes
    /// (RFC 9113 §3.4), then stand down; never write an HTTP/1 page.
    preface: Option<usize>,
    /// Counts refusals, for the gate's log lines.
    refusals: Arc<super::gate::Refusals>,
    /// A request's first bytes, read while the connection had no session
    /// ([`Self::poll_fill`]) and already counted against the head limits;
    /// served to the parser before anything else, then freed.
    stash: Vec<u8>,
    /// How much of `stash` the parser has taken.
    stash_read: usize,
    /// The answer's bytes until a flush sends them: memory only while
    /// they wait (the listener has no write buffer).
    out: WriteBuffer,
}

impl std::fmt::Debug for HeadGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadGuard")
            .field("inner", &self.inner)
            .finish()
    }
}

impl HeadGuard {
    pub(super) fn new(
        inner: Stream,
        limits: HeadLimits,
        refusals: Arc<super::gate::Refusals>,
    ) -> Self {
        HeadGuard {
            inner,
            limits,
            // The first head's deadline runs from accept: a connection that
            // sends nothing holds its place for `head_timeout`, no longer.
            phase: Phase::Reading { bytes: 0 },
            timer: Box::pin(tokio::time::sleep(limits.deadline)),
            signal: AtomicU8::new(SIGNAL_NONE),
            reached_proxy: AtomicBool::new(false),
            replaced: false,
            armed_once: AtomicBool::new(false),
            preface: None,
            refusals,
            stash: Vec::new(),
            stash_read: 0,
            out: WriteBuffer::default(),
        }
    }

    /// The guard for an HTTP/2 connection: the client's preface (24
    /// bytes) must arrive within the head deadline from the handshake;
    /// later frames pass through, bounded by pingora's h2 server (see
    /// [`super::gate`]). Writes are never replaced.
    pub(super) fn preface(
        inner: Stream,
        limits: HeadLimits,
        refusals: Arc<super::gate::Refusals>,
    ) -> Self {
        let mut guard = HeadGuard::new(
            inner,
            HeadLimits {
                max_size: usize::MAX,
                ..limits
            },
            refusals,
        );
        guard.preface = Some(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".len());
        guard.reached_proxy = AtomicBool::new(true);
        guard
    }

    /// The guard around `stream`, if it is one.
    pub fn of(stream: &Stream) -> Option<&HeadGuard> {
        stream.as_any().downcast_ref::<HeadGuard>()
    }

    /// A new request head is about to be read on this connection.
    pub fn arm(&self) {
        self.reached_proxy.store(false, Ordering::Relaxed);
        // The first request is armed from accept on (see `new`); later ones
        // wait for their first byte, the idle time being keep-alive's.
        if self.armed_once.swap(true, Ordering::Relaxed) {
            self.signal.store(SIGNAL_ARM, Ordering::Release);
        }
    }

    /// The request reached the proxy: its head is complete, and what is
    /// written from now on is the proxy's.
    pub fn reached_proxy(&self) {
        self.reached_proxy.store(true, Ordering::Relaxed);
        self.signal.store(SIGNAL_HEAD_DONE, Ordering::Release);
    }

    /// Waits for the next request's first bytes, under the guard's limits
    /// (the head deadline for a connection's first request, keep-alive's
    /// idle wait after [`Self::arm`]), and keeps them for the parser.
    /// Ready with `false` when the connection is done: closed by the
    /// client, failed, idle too long, or refused (408).
    ///
    /// The read goes into a buffer on the stack of this poll, not of the
    /// task: a connection waiting here holds no read buffer, and the one
    /// read that ends the wait is the one the parser would have made. The
    /// buffer is left uninitialized (the reader writes before anything is
    /// read back): zeroing 4 KiB on each of a request's polls was a tenth
    /// of the instructions of a proxied request (callgrind).
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        // pingora's first read of a head asks for this much (its header
        // buffer's initial size).
        let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut buf = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut *self).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(false),
            Poll::Ready(Ok(())) => {
                self.stash = buf.filled().to_vec();
                self.stash_read = 0;
                Poll::Ready(true)
            }
        }
    }

    /// Serves the stashed bytes first (already counted), freeing them once
    /// all are taken.
    fn take_stash(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let Some(rest) = self.stash.get(self.stash_read..).filter(|r| !r.is_empty()) else {
            return false;
        };
        if buf.remaining() == 0 {
            return false;
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.stash_read += n;
        if self.stash_read == self.stash.len() {
            self.stash = Vec::new();
            self.stash_read = 0;
        }
        true
    }

    /// Writes a short error response, best effort (a fresh socket buffer
    /// takes it whole), and reports end of stream so pingora closes.
    fn refuse(&mut self, cx: &mut Context<'_>, status: u16, reason: &str) -> Poll<io::Result<()>> {
        if self.preface.is_some() {
            // An h2 client that never sent its preface: closed, counted.
            self.refusals.count(status);
            self.phase = Phase::Idle;
            self.replaced = true;
            return Poll::Ready(Ok(()));
        }
        let body = format!(
            "{{\"error\":\"{}\",\"message\":\"{reason}\"}}",
            status_word(status)
        );
        let resp = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            status_text(status),
            body.len()
        );
        let _ = Pin::new(&mut self.inner).poll_write(cx, resp.as_bytes());
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        self.refusals.count(status);
        self.phase = Phase::Idle;
        // Nothing more from this connection reaches the parser, and nothing
        // more pingora writes reaches the client.
        self.replaced = true;
        Poll::Ready(Ok(()))
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

fn status_word(status: u16) -> &'static str {
    match status {
        405 => "method_not_allowed",
        408 => "timeout",
        431 => "head_too_large",
        _ => "bad_request",
    }
}

impl AsyncRead for HeadGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.signal.swap(SIGNAL_NONE, Ordering::Acquire) {
            SIGNAL_ARM => {
                // Keep-alive's idle wait, on the same timer: pingora's own
                // keep-alive timeout would start a timer for every read.
                this.timer.as_mut().reset(Instant::now() + this.limits.idle);
                this.phase = Phase::Waiting;
            }
            SIGNAL_HEAD_DONE => this.phase = Phase::Idle,
            _ => {}
        }
        if this.replaced {
            return Poll::Ready(Ok(()));
        }
        if this.take_stash(buf) {
            return Poll::Ready(Ok(()));
        }
        let budget = match &this.phase {
            Phase::Idle => return Pin::new(&mut this.inner).poll_read(cx, buf),
            Phase::Waiting => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    // Idle too long: closed without an answer, as no
                    // request was started.
                    this.phase = Phase::Idle;
                    this.replaced = true;
                    return Poll::Ready(Ok(()));
                }
                this.limits.max_size
            }
            Phase::Reading { bytes, .. } => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    return this.refuse(cx, 408, "request head took too long");
                }
                this.limits.max_size.saturating_sub(*bytes)
            }
        };
        if budget == 0 {
            return this.refuse(cx, 431, "request head too large");
        }
        let n = {
            let mut limited = buf.take(budget);
            match Pin::new(&mut this.inner).poll_read(cx, &mut limited) {
                Poll::Ready(Ok(())) => limited.filled().len(),
                other => return other,
            }
        };
        // SAFETY: `limited` is a view of `buf`'s unfilled part, and the
        // inner reader initialized and filled its first `n` bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        if n == 0 {
            return Poll::Ready(Ok(()));
        }
        let bytes = match this.phase {
            Phase::Reading { bytes } => bytes,
            _ => {
                this.timer
                    .as_mut()
                    .reset(Instant::now() + this.limits.deadline);
                0
            }
        };
        this.phase = match this.preface {
            Some(preface) if bytes + n >= preface => Phase::Idle,
            _ => Phase::Reading { bytes: bytes + n },
        };
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for HeadGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replaced {
            return Poll::Ready(Ok(data.len()));
        }
        if this.reached_proxy.load(Ordering::Relaxed) {
            return this.out.poll_write(&mut this.inner, cx, data);
        }
        // Before the proxy saw the request, this is pingora's own answer
        // (`HTTP/1.1 400 Bad Request`, …): keep its status, write ours.
        let status = data
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(400);
        let _ = this.refuse(cx, status, "malformed request");
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.replaced && self.reached_proxy.load(Ordering::Relaxed) {
            let this = &mut *self;
            return this.out.poll_write_vectored(&mut this.inner, cx, bufs);
        }
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        let total = bufs.iter().map(|b| b.len()).sum();
        match self.as_mut().poll_write(cx, first) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(total)),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.out.poll_flush(&mut this.inner, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.out.poll_shutdown(&mut this.inner, cx)
    }
}

#[async_trait]
impl Shutdown for HeadGuard {
    async fn shutdown(&mut self) {
        let _ = std::future::poll_fn(|cx| self.out.poll_send(&mut self.inner, cx)).await;
        self.inner.shutdown().await
    }
}

impl Drop for HeadGuard {
    /// What is still buffered is sent if the socket takes it now, as
    /// pingora's stream does with its own write buffer when dropped.
    fn drop(&mut self) {
        if !self.out.is_empty() {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = self.out.poll_send(&mut self.inner, &mut cx);
        }
    }
}

impl UniqueID for HeadGuard {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadGuard {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadGuard {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadGuard {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadGuard {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadGuard {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
