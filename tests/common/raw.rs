//! Raw HTTP/1.1 over loopback, byte for byte: a client that sends exactly
//! the request it is given (a URL library would normalize the very paths
//! under test), and an upstream that records the request line and `Host`
//! it received, so tests check what the app would act on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A response as received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `head` (the request line and header lines, without the final
/// blank line; `Connection: close` is added) and reads the whole response.
pub fn send(addr: SocketAddr, head: &str) -> Reply {
    send_bytes(
        addr,
        format!("{head}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Sends `bytes` as they are and reads until the server closes.
pub fn send_bytes(addr: SocketAddr, bytes: &[u8]) -> Reply {
    let all = exchange(addr, bytes);
    parse(&all).unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&all)))
}

/// Sends `bytes` and returns everything the server wrote before closing.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    all
}

/// Parses one response from the start of `all`.
pub fn parse(all: &[u8]) -> Option<Reply> {
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&all[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &all[end + 4..];
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(rest.len());
    Some(Reply {
        status,
        headers,
        body: rest[..len.min(rest.len())].to_vec(),
    })
}

/// What the recording upstream received for one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request line, e.g. `GET /x HTTP/1.1`.
    pub line: String,
    /// The request target from the line.
    pub target: String,
    /// Every header line, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An upstream that answers every request `200 upstream` and records it.
/// Extra response header lines can be set (to try `Set-Cookie`).
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    extra: Arc<Mutex<String>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let extra = Arc::new(Mutex::new(String::new()));
        let (seen2, extra2) = (seen.clone(), extra.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (seen, extra) = (seen2.clone(), extra2.clone());
                std::thread::spawn(move || serve(conn, seen, extra));
            }
        });
        Recorder { addr, seen, extra }
    }

    /// Header lines (each ending in `\r\n`) added to every response.
    pub fn set_extra_headers(&self, lines: &str) {
        *self.extra.lock().unwrap() = lines.to_string();
    }

    /// Everything received so far, and forgets it.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn serve(conn: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, extra: Arc<Mutex<String>>) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let target = line.split(' ').nth(1).unwrap_or_default().to_string();
        seen.lock().unwrap().push(Seen {
            line,
            target,
            headers,
        });
        let extra = extra.lock().unwrap().clone();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{extra}Content-Length: 8\r\n\r\nupstream"
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
