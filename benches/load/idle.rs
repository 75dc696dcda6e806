//! Idle keep-alive connections: each opened, used for one authenticated
//! request, then held open doing nothing, as a browser's spare
//! connections are.

use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connections per source address at most. Why: one source address has
/// about 28,000 ephemeral ports (32768-60999) towards one server port, so
/// 50,000 connections need several; any 127.x.y.z is this machine's
/// loopback.
pub const PER_SOURCE: usize = 20_000;

/// Connections opened at once: enough to be quick, few enough for the
/// listen backlog (4,096).
const AT_ONCE: usize = 500;

/// Opens the connections numbered `range`, connection `i` from source
/// address `from[i / PER_SOURCE]`: each sends one GET of `/` with `cookie`
/// to `port` and reads the 200 answer with its 1 KiB body. Returns those
/// that did; a connection that failed is left out (the caller counts).
pub async fn open(
    port: u16,
    cookie: &str,
    range: Range<usize>,
    from: &[Ipv4Addr],
) -> Vec<TcpStream> {
    let req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n");
    let mut conns = Vec::with_capacity(range.len());
    let mut i = range.start;
    while i < range.end {
        let batch = i..(i + AT_ONCE).min(range.end);
        i = batch.end;
        let mut set = tokio::task::JoinSet::new();
        for k in batch {
            let source = from[(k / PER_SOURCE).min(from.len() - 1)];
            set.spawn(one(source, port, req.clone()));
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Some(s)) = r {
                conns.push(s);
            }
        }
    }
    conns
}

/// One connection from `source` after one request, or `None`.
async fn one(source: Ipv4Addr, port: u16, req: String) -> Option<TcpStream> {
    let to = (Ipv4Addr::LOCALHOST, port).into();
    // From 127.0.0.1, no bind: the kernel may then share a local port
    // between different servers, which wrk's and the earlier servers'
    // closed connections (in TIME_WAIT, from 127.0.0.1) need. Another
    // source address is bound first, its port chosen then.
    let mut s = if source == Ipv4Addr::LOCALHOST {
        TcpStream::connect(to).await.ok()?
    } else {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind((source, 0).into()).ok()?;
        socket.connect(to).await.ok()?
    };
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    // Read until the 1 KiB body has arrived.
    while got < 1024 + 100 {
        let k = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf[got..]))
            .await
            .ok()?
            .ok()?;
        if k == 0 {
            return None;
        }
        got += k;
    }
    buf[..12].starts_with(b"HTTP/1.1 200").then_some(s)
}

/// Whether `s` is still open: nothing to read and not closed (a peek
/// that would block), asked of the kernel now, not of tokio's readiness.
pub fn still_open(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    // SAFETY: recv on a socket we own into a buffer we own, not blocking.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
