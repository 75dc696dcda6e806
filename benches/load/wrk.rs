//! One wrk run and its figures, the median over rounds, and the one-request
//! check that a scenario answers what it claims.

use std::io::{Read, Write};
use std::time::Duration;

use super::procs::{cpu_ticks, pinned};
use super::TICKS_PER_SEC;

/// One wrk run's figures.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub name: String,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub cpu_us_per_req: Option<f64>,
}

fn parse_latency(s: &str) -> f64 {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// Runs wrk against `url` for `secs` with `connections` (one thread: the
/// client has one core), measuring `server`'s CPU.
pub fn wrk(
    name: &str,
    url: &str,
    headers: &[String],
    connections: u32,
    secs: u64,
    warmup: u64,
    server: Option<u32>,
) -> Run {
    // wrk counts an answer slower than its timeout (2 s by default) as an
    // error, which fails the run; 1,024 connections queued on one core
    // can come near it on a slow machine: 10 s.
    let mut args: Vec<String> = vec![
        "-t1".into(),
        format!("-c{connections}"),
        "--latency".into(),
        "--timeout".into(),
        "10s".into(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push(h.clone());
    }
    let run = |d: u64| {
        let out = pinned(1, "wrk")
            .args(&args)
            .arg(format!("-d{d}s"))
            .arg(url)
            .output()
            .expect("wrk runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if warmup > 0 {
        run(warmup);
    }
    let before = server.map(cpu_ticks);
    let text = run(secs);
    let after = server.map(cpu_ticks);
    let mut r = Run {
        name: name.into(),
        ..Default::default()
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("50%") {
            r.p50_ms = parse_latency(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            r.p99_ms = parse_latency(v);
        } else if l.contains("requests in") {
            r.requests = l
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if l.starts_with("Non-2xx or 3xx responses") || l.starts_with("Socket errors") {
            panic!("{name}: wrk reports failures, the figures would be meaningless:\n{text}");
        }
    }
    assert!(r.requests > 0, "{name}: wrk measured nothing:\n{text}");
    if let (Some(b), Some(a)) = (before, after) {
        r.cpu_us_per_req = Some((a - b) as f64 / TICKS_PER_SEC * 1e6 / r.requests as f64);
    }
    println!(
        "  {:<38} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {}",
        r.name,
        r.rps,
        r.p50_ms,
        r.p99_ms,
        r.cpu_us_per_req
            .map_or("".into(), |c| format!("{c:.1} µs CPU/req"))
    );
    r
}

/// The median of each figure over runs of one scenario.
pub fn median(mut runs: Vec<Run>) -> Run {
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let pick = |f: fn(&Run) -> f64| mid(&mut runs.iter().map(f).collect());
    let rps = pick(|r| r.rps);
    let p50_ms = pick(|r| r.p50_ms);
    let p99_ms = pick(|r| r.p99_ms);
    let cpu = pick(|r| r.cpu_us_per_req.unwrap_or(f64::NAN));
    let requests = runs.iter().map(|r| r.requests).sum();
    Run {
        name: runs.remove(0).name,
        rps,
        p50_ms,
        p99_ms,
        requests,
        cpu_us_per_req: (!cpu.is_nan()).then_some(cpu),
    }
}

/// One request, to check a scenario answers what it claims before timing it.
pub fn expect_status(url: &str, headers: &[String], want: u16) {
    let mut req = raw_get(url, headers);
    let status = req.status();
    assert_eq!(
        status,
        want,
        "{url} answered {status}, expected {want}: {}",
        req.body()
    );
}

/// A minimal blocking GET over one TCP connection (no HTTP client crate
/// needed in the driver's synchronous parts).
struct Raw(String);

impl Raw {
    fn status(&mut self) -> u16 {
        self.0
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    fn body(&self) -> &str {
        self.0.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

fn raw_get(url: &str, headers: &[String]) -> Raw {
    let u = url::Url::parse(url).unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", u.port().unwrap())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
        &u[url::Position::BeforePath..]
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Raw(out)
}
