//! The gateway replaced under load: a graceful upgrade (`run --upgrade`,
//! then SIGQUIT to the old process) and a config reload (`applegate
//! reload`), with keep-alive clients looping requests throughout.
//!
//! What counts, as a client or a load balancer sees it: a request fails
//! if its connection cannot be opened, or it gets no complete response (a
//! reset, the connection closed, no answer within 10 s), or a status other
//! than 200. A connection the gateway closes after a complete response
//! that said `Connection: close` is HTTP/1.1's orderly close (RFC 9112
//! §9.6), not a failure: the client opens a new one for its next request.
//! The clients never leave a connection idle, so a request is never sent
//! on a connection the gateway is closing; a reset anywhere counts twice
//! (a failure and a reset).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use applegate::httpd::{self, Reply};
use applegate::upgrade::handover_bound;
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use super::common;
use super::{Proc, TempDir, BIN, SECRET};

/// Client connections looping requests.
const CLIENTS: usize = 12;
/// `server.grace_period` of the gateways under test.
const GRACE: Duration = Duration::from_secs(2);

/// What one client saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    /// Connections the gateway closed after a `Connection: close` answer.
    closed_in_order: u64,
    failures: Vec<String>,
    resets: u64,
    /// The body of each answer, in order ("A" or "B": which upstream).
    bodies: Vec<u8>,
    slowest: Duration,
}

/// One request on `conn` (opened first if need be); `Ok(true)` when the
/// answer said `Connection: close`.
fn request(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
) -> std::io::Result<(u16, bool, Vec<u8>)> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        *conn = Some(BufReader::new(s));
    }
    let r = conn.as_mut().expect("opened above");
    r.get_mut()
        .write_all(format!("GET /load HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().map_err(std::io::Error::other)?;
        }
        if l.strip_prefix("connection:")
            .is_some_and(|v| v.trim() == "close")
        {
            close = true;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok((status, close, body))
}

/// A client looping requests on one keep-alive connection at a time.
fn client(addr: SocketAddr, stop: Arc<AtomicBool>) -> Tally {
    let mut t = Tally::default();
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        match request(&mut conn, addr) {
            Ok((200, close, body)) => {
                t.ok += 1;
                t.bodies.extend_from_slice(&body);
                if close {
                    t.closed_in_order += 1;
                    conn = None;
                }
            }
            Ok((status, ..)) => {
                t.failures.push(format!("status {status}"));
                conn = None;
            }
            Err(e) => {
                if e.kind() == ErrorKind::ConnectionReset {
                    t.resets += 1;
                }
                t.failures.push(format!("{:?}: {e}", e.kind()));
                conn = None;
            }
        }
        t.slowest = t.slowest.max(began.elapsed());
    }
    t
}

/// An upstream that answers every request with `body`.
fn upstream(body: &'static str) -> httpd::Handle {
    httpd::spawn(
        body,
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Arc::new(move |_| Reply::new(200, "text/plain", body)),
    )
    .unwrap()
}

/// The admin listener's `/ready` on a new connection: status and body.
fn ready(port: u16) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Polls `done` every 10 ms for up to `limit`; how long it took, if it did.
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let began = Instant::now();
    while began.elapsed() < limit {
        if done() {
            return Some(began.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A process the test did not start itself (the one `reload` left
/// running), killed when dropped.
struct Pid(i32);

impl Drop for Pid {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a pid this test got from `reload`.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

fn write_config(path: &Path, port: u16, admin: u16, apple: &str, upstream: SocketAddr) {
    std::fs::write(
        path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://localhost:{port}\"\nthreads = 2\ngrace_period = \"{}s\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [apple]\nteam_id = \"{}\"\nservices_id = \"{}\"\nkey_id = \"{}\"\nprivate_key_file = \"AuthKey.p8\"\nbase_url = \"{apple}\"\n\
             [session]\nsecret_file = \"session.key\"\n\
             [[routes]]\npath = \"/\"\nauth = \"public\"\nupstream = \"http://{upstream}\"\n",
            GRACE.as_secs(),
            common::TEAM_ID,
            common::SERVICES_ID,
            common::KEY_ID,
        ),
    )
    .unwrap();
}

/// 12 keep-alive clients loop requests through a gateway (the default
/// embedded state store) that is replaced twice: by a graceful upgrade to
/// a new process, then by `applegate reload` with a config that sends the
/// route to another upstream. No request fails and no connection is
/// reset; `/ready` says draining as soon as the old process is signalled;
/// each old process exits within pingora's 5 s hand-over wait plus the
/// grace period and the runtimes' stop; after the reload every client gets
/// the new upstream's answer.
#[test]
fn upgrade_and_reload_under_load_fail_no_request() {
    let dir = TempDir::new("upgrade");
    let key = SigningKey::random(&mut rand::thread_rng());
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let port = common::free_port();
    let admin = common::free_port();
    let emu = super::emulator_for(&key, format!("http://localhost:{port}/oauth2/callback"));
    let (a, b) = (upstream("A"), upstream("B"));
    dir.write("AuthKey.p8", &pem);
    dir.write("session.key", SECRET);
    let cfg = dir.0.join("applegate.toml");
    write_config(&cfg, port, admin, emu.base_url(), a.addr);
    let sock = dir.0.join(applegate::config::DEFAULT_UPGRADE_SOCK);
    let gateway = |upgrade: bool| {
        let mut c = Command::new(BIN);
        c.arg("run");
        if upgrade {
            c.arg("--upgrade");
        }
        let log = std::fs::File::create(dir.0.join(format!("gateway-{upgrade}.log"))).unwrap();
        Proc(
            c.arg("--config")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    let mut old = gateway(false);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(applegate::kit::wait_listening(
        addr,
        Duration::from_secs(20)
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || client(addr, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));

    // (a) The graceful upgrade, by hand: the new process first, SIGQUIT
    // once it listens on the upgrade socket.
    let mut new = gateway(true);
    assert!(
        within(Duration::from_secs(10), || sock.exists()).is_some(),
        "the new process never listened on {}",
        sock.display()
    );
    let quit = Instant::now();
    let status = Command::new("kill")
        .args(["-QUIT", &old.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // kill(1) returns before the signal is handled: a bounded wait.
    let mut body = String::new();
    let draining = within(Duration::from_secs(1), || {
        let (code, text) = ready(admin);
        body = text;
        code == 503
    });
    assert!(
        draining.is_some(),
        "/ready while the old process hands over: {body}"
    );
    assert!(body.contains("\"draining\":true"), "{body}");
    let bound = handover_bound(GRACE) + Duration::from_secs(1);
    let exited = within(bound, || old.0.try_wait().unwrap().is_some());
    assert!(
        exited.is_some(),
        "the old process still runs {bound:?} after SIGQUIT"
    );
    assert!(old.0.wait().unwrap().success());
    let upgrade_took = quit.elapsed();
    assert!(
        within(Duration::from_secs(5), || ready(admin).0 == 200).is_some(),
        "the new process is ready"
    );

    // (b) A config reload: the route now goes to upstream B.
    write_config(&cfg, port, admin, emu.base_url(), b.addr);
    let out_path = dir.0.join("reload.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let err = std::fs::File::create(dir.0.join("gateway-reloaded.log")).unwrap();
    let began = Instant::now();
    let status = Command::new(BIN)
        .args(["reload", "--config"])
        .arg(&cfg)
        .args(["--pid", &new.0.id().to_string()])
        // The new gateway inherits these and outlives the command: files,
        // not pipes, which would stay open as long as it runs.
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap();
    let reload_took = began.elapsed();
    let said = std::fs::read_to_string(&out_path).unwrap();
    let newest = said
        .split_whitespace()
        .nth(3)
        .and_then(|p| p.parse().ok())
        .map(Pid);
    assert!(status.success(), "reload failed: {said}");
    assert!(newest.is_some(), "reload names the new process: {said}");
    assert!(
        new.0.try_wait().unwrap().is_some_and(|s| s.success()),
        "the replaced process has exited, cleanly"
    );
    assert!(reload_took < handover_bound(GRACE) + Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);

    let tallies: Vec<Tally> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    let closed: u64 = tallies.iter().map(|t| t.closed_in_order).sum();
    let resets: u64 = tallies.iter().map(|t| t.resets).sum();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    let slowest = tallies.iter().map(|t| t.slowest).max().unwrap_or_default();
    eprintln!(
        "{ok} requests answered, {closed} connections closed in order, {} failed, {resets} reset; \
         slowest answer {slowest:?}; old process gone {upgrade_took:?} after SIGQUIT; reload took {reload_took:?}",
        failures.len()
    );
    assert_eq!(resets, 0, "connections reset");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(ok > 1000, "the load ran: {ok} requests");
    assert!(
        closed >= 2 * CLIENTS as u64,
        "each client was moved twice: {closed}"
    );
    for t in &tallies {
        assert_eq!(
            t.bodies.first(),
            Some(&b'A'),
            "before the reload: upstream A"
        );
        assert_eq!(t.bodies.last(), Some(&b'B'), "after the reload: upstream B");
    }
}
