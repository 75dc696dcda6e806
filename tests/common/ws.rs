//! WebSocket test parts shared by test crates (`tests/edge/websocket.rs`,
//! `tests/tls/upstream_tls.rs`): a minimal RFC 6455 echo upstream, and a
//! raw client that upgrades through the gateway and exchanges frames.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};

use super::Stack;

/// RFC 6455 §1.3's example key and its accept value.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A head's headers, names lower-cased.
pub type Head = Vec<(String, String)>;
/// Every connection's head, shared with the server's threads.
pub type Heads = Arc<Mutex<Vec<Head>>>;

/// An upstream that completes the WebSocket handshake and echoes every
/// data frame; it records the head of each connection it accepts.
pub struct Echo {
    pub addr: SocketAddr,
    pub heads: Heads,
}

impl Echo {
    pub fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let seen = seen.clone();
                std::thread::spawn(move || echo(conn, seen));
            }
        });
        Echo { addr, heads }
    }

    pub fn take(&self) -> Vec<Head> {
        std::mem::take(&mut *self.heads.lock().unwrap())
    }
}

pub fn header<'a>(head: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    head.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Reads a head (request line or status line, then headers), names
/// lower-cased; `None` at end of stream.
pub fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some((first.trim_end().to_string(), headers));
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

pub fn echo(conn: TcpStream, seen: Heads) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let Some((_, head)) = read_head(&mut r) else {
        return;
    };
    seen.lock().unwrap().push(head.clone());
    let upgrade = header(&head, "upgrade")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = header(&head, "connection")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("upgrade"));
    let key = header(&head, "sec-websocket-key").first().copied();
    let Some(key) = key.filter(|_| upgrade && connection) else {
        let _ = w.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    };
    // RFC 6455 §4.2.2: base64(SHA-1(key + the protocol's GUID)).
    let digest = Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes());
    let accept = base64::engine::general_purpose::STANDARD.encode(digest);
    let resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
    if w.write_all(resp.as_bytes()).is_err() {
        return;
    }
    while let Some((opcode, payload)) = read_frame(&mut r) {
        // Server frames are not masked (§5.1); a close is answered and ends.
        if w.write_all(&frame(opcode, &payload, None)).is_err() || opcode == 8 {
            return;
        }
    }
}

/// One frame: FIN, `opcode`, the payload masked with `mask` if given.
pub fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let mut f = vec![0x80 | opcode, payload.len() as u8];
    match mask {
        Some(m) => {
            f[1] |= 0x80;
            f.extend_from_slice(&m);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// Reads one short frame, unmasked; `None` at end of stream.
pub fn read_frame(r: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).ok()?;
    let len = (h[1] & 0x7f) as usize;
    if len >= 126 {
        return None;
    }
    let mut mask = [0u8; 4];
    if h[1] & 0x80 != 0 {
        r.read_exact(&mut mask).ok()?;
    }
    let mut payload = vec![0; len];
    r.read_exact(&mut payload).ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((h[0] & 0x0f, payload))
}

/// A client connection after sending an upgrade for `path` with `extra`
/// header lines: the response's status line and headers, and the stream.
pub fn upgrade(
    stack: &Stack,
    path: &str,
    extra: &str,
) -> (String, Vec<(String, String)>, BufReader<TcpStream>) {
    let s = TcpStream::connect(stack.gateway.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    );
    w.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).expect("a response");
    (status, headers, r)
}

pub fn status(line: &str) -> u16 {
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Sends a text frame and expects it back.
pub fn assert_echoes(r: &mut BufReader<TcpStream>, text: &str) {
    let mut w = r.get_ref().try_clone().unwrap();
    w.write_all(&frame(1, text.as_bytes(), Some([7, 1, 9, 3])))
        .unwrap();
    let (opcode, payload) = read_frame(r).expect("an echoed frame");
    assert_eq!((opcode, payload.as_slice()), (1, text.as_bytes()));
}

/// The gateway refused the upgrade: no 101, no tunnel (a frame sent now is
/// not echoed: the connection is HTTP still, or closed).
pub fn assert_not_upgraded(r: &mut BufReader<TcpStream>, line: &str) {
    assert_ne!(status(line), 101, "{line}");
    let mut w = r.get_ref().try_clone().unwrap();
    let _ = w.write_all(&frame(1, b"tunnel?", Some([1, 2, 3, 4])));
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(
        !rest.windows(7).any(|w| w == b"tunnel?"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}
