//! WebSockets through the gateway (issue #10, item 4), over real sockets:
//! an upgrade is one request, decided like any other (identity, policy,
//! revocation, identity headers stripped then set) before pingora opens
//! the tunnel. The upstream is a minimal RFC 6455 echo server written
//! here; the client is raw bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};

use super::common::{Browser, Nav, Options, Stack};

/// RFC 6455 §1.3's example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A head's headers, names lower-cased.
type Head = Vec<(String, String)>;
/// Every connection's head, shared with the server's threads.
type Heads = Arc<Mutex<Vec<Head>>>;

/// An upstream that completes the WebSocket handshake and echoes every
/// data frame; it records the head of each connection it accepts.
struct Echo {
    addr: SocketAddr,
    heads: Heads,
}

impl Echo {
    fn start() -> Echo {
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

    fn take(&self) -> Vec<Head> {
        std::mem::take(&mut *self.heads.lock().unwrap())
    }
}

fn header<'a>(head: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    head.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Reads a head (request line or status line, then headers), names
/// lower-cased; `None` at end of stream.
fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
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

fn echo(conn: TcpStream, seen: Heads) {
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
fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
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
fn read_frame(r: &mut impl Read) -> Option<(u8, Vec<u8>)> {
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
fn upgrade(
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

fn status(line: &str) -> u16 {
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Sends a text frame and expects it back.
fn assert_echoes(r: &mut BufReader<TcpStream>, text: &str) {
    let mut w = r.get_ref().try_clone().unwrap();
    w.write_all(&frame(1, text.as_bytes(), Some([7, 1, 9, 3])))
        .unwrap();
    let (opcode, payload) = read_frame(r).expect("an echoed frame");
    assert_eq!((opcode, payload.as_slice()), (1, text.as_bytes()));
}

/// The gateway refused the upgrade: no 101, no tunnel (a frame sent now is
/// not echoed: the connection is HTTP still, or closed).
fn assert_not_upgraded(r: &mut BufReader<TcpStream>, line: &str) {
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

fn stack(echo: &Echo) -> Stack {
    Stack::with(Options {
        upstream: Some(echo.addr),
        routes: vec![("/public/", "public")],
        ..Options::default()
    })
}

/// Signed in: the upgrade is proxied and echoes; the upstream got the
/// identity headers, not the client's spoofed ones, and the handshake's
/// own headers.
#[tokio::test]
async fn a_signed_in_upgrade_echoes_with_the_identity() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let mut b = Browser::new();
    let steps = stack.sign_in_steps(&mut b, "jane@example.com").await;
    assert_eq!(steps.callback_page.status, 303);
    let cookie = b.cookie(stack.session_cookie()).unwrap().value.clone();
    let spoof = "X-Auth-Request-Email: boss@example.com\r\nX-Auth-Request-User: 001.boss\r\n";
    let (line, headers, mut r) = upgrade(
        &stack,
        "/chat",
        &format!("Cookie: applegate={cookie}\r\n{spoof}"),
    );
    assert_eq!(status(&line), 101, "{line} {headers:?}");
    assert_eq!(header(&headers, "sec-websocket-accept"), [ACCEPT]);
    assert_echoes(&mut r, "hello");
    assert_echoes(&mut r, "again");
    let heads = echo.take();
    assert_eq!(heads.len(), 1);
    let head = &heads[0];
    assert_eq!(header(head, "x-auth-request-email"), ["jane@example.com"]);
    assert_ne!(header(head, "x-auth-request-user"), ["001.boss"]);
    assert_eq!(header(head, "x-auth-request-user").len(), 1);
    assert_eq!(header(head, "sec-websocket-key"), [KEY]);
    assert!(
        !header(head, "cookie")
            .iter()
            .any(|c| c.contains("applegate=")),
        "the session cookie stays with the gateway: {head:?}"
    );
}

/// Without an identity: 401 for an API-like upgrade (as browsers send
/// them: `Sec-Fetch-Mode: websocket`), 302 to sign in for a navigation;
/// never 101, and the upstream never sees a connection.
#[tokio::test]
async fn an_upgrade_without_identity_opens_no_tunnel() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let (line, _, mut r) = upgrade(
        &stack,
        "/chat",
        "Sec-Fetch-Mode: websocket\r\nX-Auth-Request-Email: boss@example.com\r\n",
    );
    assert_eq!(status(&line), 401, "{line}");
    assert_not_upgraded(&mut r, &line);
    let (line, headers, mut r) = upgrade(
        &stack,
        "/chat",
        "Accept: text/html\r\nSec-Fetch-Mode: navigate\r\n",
    );
    assert_eq!(status(&line), 302, "{line}");
    assert!(header(&headers, "location")[0].contains("/oauth2/start"));
    assert_not_upgraded(&mut r, &line);
    assert!(echo.take().is_empty(), "the upstream saw no connection");
}

/// A public route's upgrade needs no identity, and still carries none the
/// client made up.
#[tokio::test]
async fn a_public_route_upgrades_without_identity() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let (line, _, mut r) = upgrade(
        &stack,
        "/public/feed",
        "X-Auth-Request-Email: boss@example.com\r\n",
    );
    assert_eq!(status(&line), 101, "{line}");
    assert_echoes(&mut r, "public");
    let heads = echo.take();
    assert_eq!(heads.len(), 1);
    assert!(header(&heads[0], "x-auth-request-email").is_empty());
}

/// A signed-out (revoked) session's cookie, replayed on an upgrade, is
/// refused like on any request: 401, no tunnel, no upstream connection.
#[tokio::test]
async fn a_revoked_session_cannot_upgrade() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let mut b = Browser::new();
    stack.sign_in_steps(&mut b, "jane@example.com").await;
    let cookie = b.cookie(stack.session_cookie()).unwrap().value.clone();
    let (line, _, r) = upgrade(&stack, "/chat", &format!("Cookie: applegate={cookie}\r\n"));
    assert_eq!(status(&line), 101, "before sign-out: {line}");
    drop(r);
    let out = b.get(&stack.at("/oauth2/sign_out"), Nav::TopLevel).await;
    assert_eq!(out.status, 200, "{}", out.body);
    echo.take();
    let (line, _, mut r) = upgrade(
        &stack,
        "/chat",
        &format!("Sec-Fetch-Mode: websocket\r\nCookie: applegate={cookie}\r\n"),
    );
    assert_eq!(status(&line), 401, "{line}");
    assert_not_upgraded(&mut r, &line);
    assert!(echo.take().is_empty());
}
