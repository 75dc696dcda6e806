//! A connection's write buffer, held only while it holds bytes.
//!
//! Pingora's listener gives each connection a 1,460-byte write buffer (one
//! MSS: a response's head and a small body leave in one `write`) for as
//! long as the connection is open; with 10,000 idle keep-alive connections
//! that is 14 MiB holding nothing. The listener's buffer is turned off
//! ([`crate::server::listener`]) and the [`super::HeadGuard`] buffers with
//! this instead: the same rule as tokio's `BufWriter` (pingora's), but the
//! memory is taken at the first small write and given back once a flush
//! has sent it all, so a connection waiting for its next request holds
//! none.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

/// Pingora's `DEFAULT_L4_WRITE_BUFFER_SIZE`: writes smaller than this are
/// gathered, larger ones go straight through.
pub(super) const CAPACITY: usize = 1460;

/// Bytes written but not yet sent.
#[derive(Default)]
pub(super) struct WriteBuffer {
    buf: Vec<u8>,
    /// How much of `buf` is already sent.
    sent: usize,
}

impl WriteBuffer {
    /// Whether bytes wait to be sent.
    pub(super) fn is_empty(&self) -> bool {
        self.sent == self.buf.len()
    }

    /// Writes `data` through this buffer to `inner`.
    pub(super) fn poll_write<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.buf.len() + data.len() > CAPACITY {
            ready!(self.poll_send(inner, cx))?;
        }
        if data.len() >= CAPACITY {
            return Pin::new(inner).poll_write(cx, data);
        }
        self.keep(data);
        Poll::Ready(Ok(data.len()))
    }

    /// Writes `bufs` through this buffer to `inner`, as [`Self::poll_write`].
    pub(super) fn poll_write_vectored<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.buf.len() + total > CAPACITY {
            ready!(self.poll_send(inner, cx))?;
        }
        if total >= CAPACITY {
            return Pin::new(inner).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            self.keep(b);
        }
        Poll::Ready(Ok(total))
    }

    /// Sends what is buffered, then flushes `inner`.
    pub(super) fn poll_flush<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_send(inner, cx))?;
        Pin::new(inner).poll_flush(cx)
    }

    /// Sends what is buffered, then shuts `inner` down.
    pub(super) fn poll_shutdown<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_send(inner, cx))?;
        Pin::new(inner).poll_shutdown(cx)
    }

    /// Writes what is buffered to `inner`, then frees the buffer.
    pub(super) fn poll_send<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            match ready!(Pin::new(&mut *inner).poll_write(cx, &self.buf[self.sent..])) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the buffered data",
                    )))
                }
                Ok(n) => self.sent += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        // Given back: an idle connection holds no buffer.
        self.buf = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    fn keep(&mut self, data: &[u8]) {
        if self.buf.capacity() == 0 && !data.is_empty() {
            self.buf.reserve_exact(CAPACITY);
        }
        self.buf.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that records each write it takes.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A head and a small body leave in one write at the flush, and the
    /// buffer's memory is given back then; a large write goes straight
    /// through, after what was buffered.
    #[test]
    fn small_writes_are_gathered_and_the_memory_given_back() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Recorder::default();
        let mut b = WriteBuffer::default();
        assert_eq!(b.buf.capacity(), 0);
        assert!(b
            .poll_write(&mut out, &mut cx, b"HTTP/1.1 200 OK\r\n\r\n")
            .is_ready());
        assert!(b.poll_write(&mut out, &mut cx, &[b'x'; 1024]).is_ready());
        assert!(out.writes.is_empty());
        assert!(b.poll_flush(&mut out, &mut cx).is_ready());
        assert_eq!(out.writes.len(), 1);
        assert_eq!(out.writes[0].len(), 19 + 1024);
        assert_eq!(b.buf.capacity(), 0, "freed once sent");

        assert!(b.poll_write(&mut out, &mut cx, b"head").is_ready());
        assert!(b
            .poll_write(&mut out, &mut cx, &[b'y'; CAPACITY])
            .is_ready());
        assert_eq!(out.writes[1], b"head");
        assert_eq!(out.writes[2].len(), CAPACITY);
        assert!(b.is_empty());
    }
}
