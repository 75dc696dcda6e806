//! Many idle keep-alive connections: every one of them still works.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::common::raw::Recorder;
use super::{raw, stack};

/// Set in the process that runs the test alone.
const ALONE: &str = "APPLEGATE_IDLE_TEST_ALONE";

/// Keep-alive connections opened; each holds two descriptors here (the
/// client's end and the gateway's), plus the upstream's.
const CONNECTIONS: usize = 1_000;

/// A thousand keep-alive connections each make one request, wait, then
/// each makes a second one: every answer is 200. The memory the waiting
/// connections added is printed (measured alone, in a debug build; the
/// release figure at 10,000 connections is the load benchmark's).
#[test]
fn idle_keep_alive_connections_all_still_work() {
    // Measured alone: the other tests of this crate run in the same
    // process, in parallel, and their memory would count as the gateway's.
    if std::env::var_os(ALONE).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "idle::idle_keep_alive_connections_all_still_work",
                "--exact",
                "--nocapture",
            ])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "the test ran: {text}");
        if let Some(line) = text.lines().find(|l| l.starts_with("RSS grew")) {
            eprintln!("{line}");
        }
        return;
    }
    raise_fd_limit(2 * CONNECTIONS as u64 + 512);
    let rec = Recorder::start();
    let stack = stack(
        &rec,
        &format!(
            "max_connections = {}\nkeepalive_timeout = \"60s\"",
            CONNECTIONS + 16
        ),
    );
    // Warm up (threads, pools, the upstream connection) before measuring.
    let mut warm = connect(&stack);
    for _ in 0..3 {
        request(&mut warm, 0);
    }
    let before = rss_bytes();
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(&stack)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        request(c, i);
    }
    std::thread::sleep(Duration::from_millis(300));
    let grown = rss_bytes().saturating_sub(before);
    for (i, c) in conns.iter_mut().enumerate() {
        request(c, i);
    }
    let per = grown / CONNECTIONS as u64;
    eprintln!("RSS grew {grown} bytes with {CONNECTIONS} idle connections: {per} per connection");
    assert_eq!(
        rec.take().len(),
        3 + 2 * CONNECTIONS,
        "every request reached the upstream"
    );
}

fn connect(stack: &crate::common::Stack) -> TcpStream {
    let s = TcpStream::connect(stack.gateway.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One request on `s`, its whole answer read; the answer must be 200.
fn request(s: &mut TcpStream, i: usize) {
    s.write_all(b"GET /public/idle HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
        .unwrap_or_else(|e| panic!("connection {i}: write: {e}"));
    let mut all = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        if let Some(r) = raw::parse(&all) {
            let len: usize = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if r.body.len() >= len {
                assert_eq!(r.status, 200, "connection {i}: {}", r.text());
                return;
            }
        }
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("connection {i}: read: {e}"));
        assert!(n > 0, "connection {i} closed before its answer");
        all.extend_from_slice(&buf[..n]);
    }
}

/// This process's resident memory (the gateway runs in it).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// Raises the soft limit on open files to `need`, or fails saying how.
fn raise_fd_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < need {
            assert!(
                lim.rlim_max >= need,
                "this test opens {need} files; the hard limit is {}: raise it (ulimit -Hn {need})",
                lim.rlim_max
            );
            lim.rlim_cur = need;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}
