//! The access log as the binary writes it: one line per request, with the
//! id its response returned, in text (to stderr) and JSON (to a file), all
//! of them written by a graceful stop; and when its destination stalls,
//! requests answered all the same, every lost line counted on `/metrics`
//! and reported in the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use applegate::emulator::Emulator;
use p256::ecdsa::SigningKey;

use super::common;
use super::{Proc, TempDir, SECRET};

/// The gateway binary with the emulator and the demo app, stderr piped.
struct Running {
    proc: Proc,
    port: u16,
    admin: u16,
    _emulator: Emulator,
    _demo: applegate::httpd::Handle,
}

/// Starts the gateway in `dir` with `log` as its `[log]` section: a public
/// route `/public/` (route 0) to the demo app.
fn start(dir: &TempDir, log: &str) -> Running {
    let key = SigningKey::random(&mut rand::thread_rng());
    let port = common::free_port();
    let admin = common::free_port();
    let url = format!("http://localhost:{port}");
    let demo = applegate::demo::start(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let emu = super::emulator_for(&key, format!("{url}/oauth2/callback"));
    dir.write(
        "AuthKey.p8",
        &p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, p256::pkcs8::LineEnding::LF).unwrap(),
    );
    dir.write("session.key", SECRET);
    let cfg = dir.write(
        "applegate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{url}\"\nthreads = 1\ngrace_period = \"0s\"\n\
             [apple]\nteam_id = \"{}\"\nservices_id = \"{}\"\nkey_id = \"{}\"\nprivate_key_file = \"AuthKey.p8\"\nbase_url = \"{}\"\n\
             [session]\nsecret_file = \"session.key\"\n[state]\nbackend = \"memory\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\n{log}\n\
             [[routes]]\npath = \"/public/\"\nauth = \"public\"\nupstream = \"http://{}\"\n\
             [[routes]]\npath = \"/\"\nupstream = \"http://{}\"\n",
            common::TEAM_ID,
            common::SERVICES_ID,
            common::KEY_ID,
            emu.base_url(),
            demo.addr,
            demo.addr
        ),
    );
    let proc = super::run(&cfg, Stdio::null(), Stdio::piped());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        applegate::kit::wait_listening(addr, Duration::from_secs(20)),
        "nothing listens on {port}"
    );
    Running {
        proc,
        port,
        admin,
        _emulator: emu,
        _demo: demo,
    }
}

impl Running {
    fn stderr(&mut self) -> ChildStderr {
        self.proc.0.stderr.take().unwrap()
    }

    /// Stops it as systemd would (SIGTERM, a graceful stop) and waits.
    fn stop(mut self) {
        let pid = self.proc.0.id();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let status = self.proc.0.wait().unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    }

    /// `applegate_access_log_dropped_total` on the admin listener's
    /// `/metrics`, once it has stopped moving (a request's line is
    /// queued just after its response is sent).
    fn dropped(&self) -> u64 {
        let read = || {
            let mut s = TcpStream::connect(("127.0.0.1", self.admin)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("applegate_access_log_dropped_total "))
                .unwrap_or_else(|| panic!("no drop counter on /metrics:\n{text}"))
                .trim()
                .parse::<u64>()
                .unwrap()
        };
        let (mut last, mut same) = (read(), 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while same < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = read();
            same = if now == last { same + 1 } else { 0 };
            last = now;
        }
        last
    }
}

/// Reads `stderr` to its end on a thread.
fn drain(mut stderr: ChildStderr) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    })
}

/// `n` GETs of `/public/page` on one keep-alive connection, each answered
/// (200) within 5 s: the `X-Request-Id` of each.
fn requests(port: u16, n: usize) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut ids = Vec::with_capacity(n);
    let mut line = String::new();
    for i in 0..n {
        s.write_all(
            b"GET /public/page HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n",
        )
        .unwrap();
        line.clear();
        r.read_line(&mut line)
            .unwrap_or_else(|e| panic!("request {i} not answered within 5 s: {e}"));
        assert!(line.starts_with("HTTP/1.1 200 "), "request {i}: {line}");
        let (mut len, mut id) = (0, String::new());
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let Some((k, v)) = line.trim_end().split_once(':') else {
                break;
            };
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap(),
                "x-request-id" => id = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        assert_eq!(id.len(), 16, "request {i} has an id");
        ids.push(id);
    }
    ids
}

/// Text to stderr (the default): N requests, N access lines by the time a
/// graceful stop has ended, one per request id, each the line `tracing`
/// printed before the log had a writer of its own; nothing dropped, and
/// the drop counter is on `/metrics` at zero.
#[test]
fn every_request_has_its_text_line_on_stderr() {
    let dir = TempDir::new("access-text");
    let mut gw = start(&dir, "level = \"info\"\nformat = \"text\"");
    let logs = drain(gw.stderr());
    let ids = requests(gw.port, 300);
    assert_eq!(gw.dropped(), 0);
    gw.stop();
    let logs = logs.join().unwrap();
    let access: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("applegate::access:"))
        .collect();
    assert_eq!(access.len(), ids.len(), "{logs}");
    for id in &ids {
        let want = format!(
            " INFO request{{id={id}}}: applegate::access: request_id={id} method=GET path=\"/public/page\" status=200 outcome=\"public\" route=0 duration_us="
        );
        assert_eq!(
            access.iter().filter(|l| l.contains(&want)).count(),
            1,
            "{id}:\n{logs}"
        );
    }
    assert!(!logs.contains("access lines dropped"), "{logs}");
}

/// JSON to `access_file`: N requests, N lines in the file (none on
/// stderr), each an object naming its request id as the event's field and
/// as its span's, as `tracing`'s JSON format did.
#[test]
fn every_request_has_its_json_line_in_the_file() {
    let dir = TempDir::new("access-json");
    let mut gw = start(
        &dir,
        "level = \"info\"\nformat = \"json\"\naccess_file = \"access.log\"",
    );
    let logs = drain(gw.stderr());
    let ids = requests(gw.port, 300);
    gw.stop();
    let logs = logs.join().unwrap();
    assert!(!logs.contains("applegate::access\""), "{logs}");
    let file = std::fs::read_to_string(dir.0.join("access.log")).unwrap();
    let lines: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), ids.len());
    let mut seen: Vec<&str> = lines
        .iter()
        .map(|v| {
            assert_eq!(v["target"], "applegate::access");
            assert_eq!(v["level"], "INFO");
            let f = &v["fields"];
            assert_eq!(
                (
                    &f["method"],
                    &f["path"],
                    &f["status"],
                    &f["outcome"],
                    &f["route"]
                ),
                (
                    &"GET".into(),
                    &"/public/page".into(),
                    &200.into(),
                    &"public".into(),
                    &0.into()
                ),
                "{v}"
            );
            assert!(f["duration_us"].is_u64(), "{v}");
            assert_eq!(v["span"]["id"], f["request_id"]);
            assert_eq!(v["spans"][0]["id"], f["request_id"]);
            f["request_id"].as_str().unwrap()
        })
        .collect();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want);
}

/// stderr is a pipe nobody reads (a stalled log shipper) and the queue
/// holds 16 lines: every request is still answered within 5 s; lines
/// written (once the pipe is read again) plus the drop counter on
/// `/metrics` is the number of requests, and the log reports the drops.
#[test]
fn a_stalled_log_drops_and_counts_lines_and_never_holds_up_a_request() {
    let dir = TempDir::new("access-stall");
    let mut gw = start(&dir, "level = \"info\"\naccess_queue = 16");
    // A pipe holds 64 KiB: about 330 lines. Nothing reads it yet.
    let n = 1500;
    let _ = requests(gw.port, n);
    let dropped = gw.dropped();
    assert!(dropped > 0, "1500 lines cannot fit a 64 KiB pipe");
    let logs = drain(gw.stderr());
    gw.stop();
    let logs = logs.join().unwrap();
    let written = logs
        .lines()
        .filter(|l| l.contains("applegate::access:"))
        .count() as u64;
    assert_eq!(written + dropped, n as u64, "{written} written");
    let reported: u64 = logs
        .lines()
        .filter_map(|l| {
            let head = &l[..l.find(" access lines dropped since ")?];
            head.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(reported, dropped, "{logs}");
}
