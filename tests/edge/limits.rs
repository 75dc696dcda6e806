//! Limits at the edge: head deadline and size, header count, idle
//! keep-alive, the connection cap, pipelining, connections that must close,
//! and our own error pages.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::common::raw::{self, Recorder};
use super::common::{Options, Stack};
use super::{get, stack};

/// Reads what `s` gets until the gateway closes it, and checks it was a
/// 408 within 4 s of `started`.
fn expect_408(mut s: TcpStream, started: Instant) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(raw::parse(&got).map(|r| r.status), Some(408), "{got:?}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

// ---- item 4: limits at the edge ----

/// One header line a second does not hold a connection open: the head has
/// one deadline, and the client gets 408.
#[test]
fn a_slow_head_is_cut_at_its_deadline() {
    let rec = Recorder::start();
    let stack = stack(&rec, "head_timeout = \"1s\"");
    let mut s = TcpStream::connect(stack.gateway.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    s.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.example.com\r\n")
        .unwrap();
    let mut got = Vec::new();
    // Trickle a header byte every 300 ms for at most 6 s.
    for i in 0..20 {
        if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .is_err()
        {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if got.ends_with(b"}") || started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let reply = raw::parse(&got).expect("an answer before the head was done");
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(rec.take().is_empty());
}

/// A parser skips blank lines before a request line; they must not switch
/// the head limits off (a guard that took the first blank line for the
/// end of the head would wave through a 900 KB or endless head).
#[test]
fn leading_blank_lines_do_not_lift_the_head_limits() {
    let rec = Recorder::start();
    let stack = stack(&rec, "head_timeout = \"1s\"");
    let big = "a".repeat(100 * 1024);
    let reply = raw::send_bytes(
        stack.gateway.addr,
        format!("\r\n\r\nGET /public/x HTTP/1.1\r\nHost: app.example.com\r\nX-Pad: {big}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(reply.status, 431);
    let mut s = TcpStream::connect(stack.gateway.addr).unwrap();
    let started = Instant::now();
    s.write_all(b"\r\n\r\nGET /public/x HTTP/1.1\r\n").unwrap();
    expect_408(s, started);
    assert!(rec.take().is_empty());
}

/// A connection that sends nothing holds its place for `head_timeout`,
/// not pingora's 60 s.
#[test]
fn a_silent_connection_is_closed_at_the_head_deadline() {
    let rec = Recorder::start();
    let stack = stack(&rec, "head_timeout = \"1s\"");
    let started = Instant::now();
    let s = TcpStream::connect(stack.gateway.addr).unwrap();
    expect_408(s, started);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "not before the deadline: {:?}",
        started.elapsed()
    );
}

/// `Transfer-Encoding` with `Content-Length` (a smuggling shape, RFC 9112
/// §6.1) closes the connection after the answer: what follows is never
/// read as a second request.
#[test]
fn a_request_that_must_close_the_connection_does() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let all = raw::exchange(
        stack.gateway.addr,
        b"POST /public/a HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: app.example.com\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&all);
    assert!(text.matches("HTTP/1.1 ").count() <= 1, "{text}");
    let targets: Vec<String> = rec.take().into_iter().map(|s| s.target).collect();
    assert!(
        !targets.contains(&"/public/smuggled".to_string()),
        "{targets:?}"
    );
}

/// A head over `max_head_size` gets 431 and never reaches the upstream.
#[test]
fn an_oversized_head_gets_431() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let big = "a".repeat(40 * 1024);
    let reply = raw::send_bytes(
        stack.gateway.addr,
        format!("GET /public/x HTTP/1.1\r\nHost: app.example.com\r\nX-Big: {big}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(reply.status, 431);
    assert!(reply.header("server").is_none());
    assert!(rec.take().is_empty());
    // Just under the cap passes.
    let fine = "a".repeat(30 * 1024);
    let reply = get(
        &stack,
        &format!("GET /public/x HTTP/1.1\r\nHost: app.example.com\r\nX-Big: {fine}"),
    );
    assert_eq!(reply.status, 200);
}

/// More header fields than `max_headers` get 431.
#[test]
fn too_many_header_fields_get_431() {
    let rec = Recorder::start();
    let stack = stack(&rec, "max_headers = 20");
    let many: String = (0..30).map(|i| format!("\r\nX-H{i}: v")).collect();
    let reply = get(
        &stack,
        &format!("GET /public/x HTTP/1.1\r\nHost: app.example.com{many}"),
    );
    assert_eq!(reply.status, 431, "{}", reply.text());
    assert!(rec.take().is_empty());
}

/// An idle keep-alive connection is closed after `keepalive_timeout`,
/// whatever the client asks for in `Keep-Alive` (pingora would take its
/// `timeout=`, and `0` there means no limit at all).
#[test]
fn idle_keep_alive_connections_are_closed() {
    let rec = Recorder::start();
    let stack = stack(&rec, "keepalive_timeout = \"1s\"");
    for asked in [
        "",
        "\r\nKeep-Alive: timeout=0",
        "\r\nKeep-Alive: timeout=3600",
    ] {
        let mut s = TcpStream::connect(stack.gateway.addr).unwrap();
        // Two requests: the second one's wait is the one after a request.
        for _ in 0..2 {
            s.write_all(
                format!("GET /public/x HTTP/1.1\r\nHost: app.example.com{asked}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(
                raw::parse(&buf[..n]).is_some_and(|r| r.status == 200),
                "{asked:?}"
            );
        }
        let idle = Instant::now();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed, not answered ({asked:?})");
        let waited = idle.elapsed();
        assert!(
            waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
            "{asked:?}: {waited:?}"
        );
    }
}

/// Connections over `max_connections` are closed at once; the others work.
#[test]
fn connections_over_the_cap_are_closed() {
    let rec = Recorder::start();
    let stack = stack(&rec, "max_connections = 3");
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(stack.gateway.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(stack.gateway.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET /public/x HTTP/1.1\r\nHost: app.example.com\r\n\r\n");
    let mut buf = [0u8; 64];
    assert_eq!(
        extra.read(&mut buf).unwrap_or(0),
        0,
        "closed without an answer"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let r = get(&stack, "GET /public/x HTTP/1.1\r\nHost: app.example.com");
    assert_eq!(r.status, 200, "served again once under the cap");
}

/// Pipelined requests are answered, in order.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let all = raw::exchange(
        stack.gateway.addr,
        b"GET /public/1 HTTP/1.1\r\nHost: app.example.com\r\n\r\nGET /public/2 HTTP/1.1\r\nHost: app.example.com\r\n\r\nGET /public/3 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    let targets: Vec<String> = rec.take().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/public/1", "/public/2", "/public/3"]);
}

/// Error pages are the gateway's: a malformed request and an upstream
/// that is down get our JSON, without `Server: Pingora`.
#[test]
fn error_pages_are_ours() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let r = raw::send_bytes(
        stack.gateway.addr,
        b"GET /public/x HTTP/1.1\r\nHost app.example.com\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.header("server").is_none(), "{:?}", r.headers);
    assert!(r.text().contains("bad_request"), "{}", r.text());
    let down = Stack::with(Options {
        upstream: Some("127.0.0.1:1".parse().unwrap()),
        routes: vec![("/public/", "public")],
        ..Options::default()
    });
    let r = get(&down, "GET /public/x HTTP/1.1\r\nHost: app.example.com");
    assert_eq!(r.status, 502);
    assert!(r.header("server").is_none(), "{:?}", r.headers);
    assert!(r.text().contains("bad_gateway"), "{}", r.text());
}
