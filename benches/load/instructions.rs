//! Instructions per request, counted by callgrind: the paired comparisons
//! of the targets (access log on and off, bearer and cookie, applegate and
//! bare pingora) without the run-to-run spread of CPU time.
//!
//! On this benchmark's two shared cores, CPU µs per request of one server
//! moves by ±10% from run to run, and two processes doing the same work
//! differ by as much (their memory layouts differ): a 5% target cannot be
//! read from it. An instruction count is the same on every run. Each
//! server runs under `valgrind --tool=callgrind`; after a warm-up, its
//! counters are zeroed (`callgrind_control --zero`), `REQUESTS` requests
//! are sent over keep-alive connections, and the counters are dumped: all
//! of the process's threads (the access log's writer too) over exactly
//! those requests, divided by their number. What it leaves out is the
//! kernel (syscalls, the network stack), which CPU time includes; the
//! table says so.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use applegate::kit;

use super::bench::{Bench, Logging};
use super::procs::{spawn, Proc};
use super::{Sends, Server, APPLEGATE};

/// Requests counted per case, after `WARM` uncounted ones.
const REQUESTS: usize = 2_000;
const WARM: usize = 300;
/// Keep-alive connections the requests are spread over, one at a time.
const CONNECTIONS: usize = 4;

/// One counted case.
pub struct Count {
    pub name: &'static str,
    /// Instructions per request, all threads, user space.
    pub per_request: f64,
}

/// The cases, in the table's order.
pub const COOKIE: &str = "applegate, authenticated (warn level)";
pub const BEARER: &str = "applegate, bearer (cached, warn level)";
pub const BARE: &str = "bare pingora passthrough";
pub const INFO: &str = "applegate, authenticated, info log, access log off";
pub const ACCESS: &str = "applegate, authenticated, info log, access log on";

/// A counted case: its name, the path requested and what it sends.
type Case = (&'static str, &'static str, Sends);

/// What runs a case: a gateway logging so, or bare pingora.
enum Runs {
    Gateway(Logging),
    Bare,
}

/// Counts every case (valgrind is installed with the other tools, see
/// `procs::ensure_tools`).
pub fn measure(bench: &Bench) -> Vec<Count> {
    println!("\nload: instructions per request (callgrind, {REQUESTS} requests per case)");
    // (case, what runs it, path, what the requests send); cases on the
    // same server share one process.
    let plan: [(&str, Runs, &[Case]); 4] = [
        (
            "quiet",
            Runs::Gateway(Logging::Quiet),
            &[
                (COOKIE, "/", Sends::Cookie),
                (BEARER, "/api/items", Sends::Bearer),
            ],
        ),
        ("bare", Runs::Bare, &[(BARE, "/", Sends::Cookie)]),
        (
            "info",
            Runs::Gateway(Logging::Info),
            &[(INFO, "/", Sends::Cookie)],
        ),
        (
            "access",
            Runs::Gateway(Logging::Access),
            &[(ACCESS, "/", Sends::Cookie)],
        ),
    ];
    let mut out = Vec::new();
    for (tag, runs, cases) in plan {
        let port = kit::free_port();
        let counted = bench.dir.join(format!("callgrind-{tag}.out"));
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0", "valgrind", "--tool=callgrind"])
            .arg(format!("--callgrind-out-file={}", counted.display()));
        match runs {
            Runs::Gateway(logging) => {
                let file = bench.dir.join(format!("applegate-callgrind-{tag}.toml"));
                std::fs::write(&file, bench.gateway_toml(port, logging)).unwrap();
                cmd.args([APPLEGATE, "run", "--config", file.to_str().unwrap()]);
            }
            Runs::Bare => {
                let up = bench.target(Server::Upstream).port;
                cmd.arg(std::env::current_exe().unwrap()).args([
                    "--bare-proxy",
                    &format!("127.0.0.1:{port}"),
                    &format!("127.0.0.1:{up}"),
                ]);
            }
        }
        let proc = spawn(
            "callgrind",
            cmd,
            &bench.dir.join(format!("callgrind-{tag}.log")),
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // Start-up under valgrind is slow (tens of times).
        assert!(
            kit::wait_listening(addr, Duration::from_secs(120)),
            "{tag} under callgrind does not listen on {port}"
        );
        for (k, (name, path, sends)) in cases.iter().enumerate() {
            let header = bench.header(*sends);
            send(port, path, &header, WARM);
            control(&proc, "--zero");
            send(port, path, &header, REQUESTS);
            control(&proc, "--dump");
            let dump = Path::new(&format!("{}.{}", counted.display(), k + 1)).to_path_buf();
            let total = summary(&dump);
            let per_request = total as f64 / REQUESTS as f64;
            println!("  {name:<52} {per_request:>9.0} instructions/request");
            out.push(Count { name, per_request });
        }
        drop(proc);
    }
    out
}

/// `callgrind_control <what> <pid>`, which returns once callgrind did it.
fn control(proc: &Proc, what: &str) {
    let ok = Command::new("callgrind_control")
        .args([what, &proc.pid().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "callgrind_control {what} failed");
}

/// The dump's event total (`summary:` line), waiting for the file.
fn summary(dump: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(dump) {
            if let Some(n) = text
                .lines()
                .find_map(|l| l.strip_prefix("summary: "))
                .and_then(|n| n.trim().parse().ok())
            {
                return n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no callgrind dump at {}",
            dump.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` GETs of `path` carrying `header`, over `CONNECTIONS` keep-alive
/// connections in turn; each answer must be a 200 read to its end.
fn send(port: u16, path: &str, header: &str, n: usize) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{header}\r\n\r\n");
    for c in 0..CONNECTIONS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = Vec::new();
        let share = n / CONNECTIONS + usize::from(c < n % CONNECTIONS);
        for _ in 0..share {
            s.write_all(req.as_bytes()).unwrap();
            buf = answer(&mut s, buf);
        }
    }
}

/// Reads one response (its head and `Content-Length` body) from `s`;
/// what was read past it is returned for the next.
fn answer(s: &mut TcpStream, mut buf: Vec<u8>) -> Vec<u8> {
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            assert!(
                head.starts_with("http/1.1 200"),
                "expected a 200, got {:?}",
                head.lines().next()
            );
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            if buf.len() >= end + 4 + len {
                return buf.split_off(end + 4 + len);
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}
