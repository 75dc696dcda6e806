//! The load benchmark: applegate against a plain nginx reverse proxy, on
//! this machine, in one run.
//!
//!     bash benches/load.sh                  # from a fresh clone: installs, builds, runs
//!     cargo bench --bench load              # about 3 minutes
//!     cargo bench --bench load -- --quick   # shorter runs, for a smoke test
//!     cargo bench --bench load -- --soak    # adds a 10-minute RSS soak
//!     cargo bench --bench load -- --hold    # start everything, sign in, print a wrk line, wait
//!
//! It installs what it needs when missing (nginx and wrk from Debian's
//! packages, through `.ci/setup`), then starts, all on 127.0.0.1:
//!
//! - an upstream app: nginx answering 1 KiB;
//! - the baseline: an nginx reverse proxy (1 worker, upstream keep-alive);
//! - a bare pingora passthrough built into this benchmark (no checks);
//! - applegate (1 worker thread) with the Apple emulator, signed in for real.
//!
//! Servers under test are pinned to core 0; wrk, the upstream and this
//! driver (with the emulator) to core 1. Each scenario runs wrk for a fixed
//! time (64 connections) after a warm-up; the CPU time of the server under
//! test is read from `/proc` before and after, because on two shared cores
//! requests per second can be capped by the client's core while CPU per
//! request is not. Results go to stdout, `benches/RESULTS.md` (between its
//! markers) and `benches/results.svg`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/browser.rs"]
mod browser;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use applegate::clock;
use applegate::emulator::{self, Emulator};
use p256::pkcs8::{EncodePrivateKey, LineEnding};

const CONNECTIONS: u32 = 64;
/// Interleaved rounds per scenario; figures are medians over them.
const ROUNDS: usize = 3;
const IDLE_CONNECTIONS: usize = 10_000;
const TEAM_ID: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const SERVICES_ID: &str = "com.example.web";
const BUNDLE_ID: &str = "com.example.ios";
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const APPLEGATE: &str = env!("CARGO_BIN_EXE_applegate");
/// Clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// A bare pingora passthrough: what pingora costs before any of our code.
mod bare {
    use async_trait::async_trait;
    use pingora::prelude::*;

    pub struct Bare(pub HttpPeer);

    #[async_trait]
    impl ProxyHttp for Bare {
        type CTX = ();
        fn new_ctx(&self) {}
        async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
            Ok(Box::new(self.0.clone()))
        }
    }

    pub fn run(listen: &str, upstream: &str) {
        // The same engine settings as applegate's.
        let mut server = Server::new_with_opt_and_conf(None, applegate::server::engine_conf(1, 0));
        server.bootstrap();
        let addr: std::net::SocketAddr = upstream.parse().expect("upstream address");
        let mut svc = pingora::proxy::http_proxy_service(
            &server.configuration,
            Bare(HttpPeer::new(addr, false, String::new())),
        );
        svc.add_listener(applegate::server::listener(
            listen,
            applegate::config::DEFAULT_READ_BUFFER,
        ));
        server.add_service(svc);
        server.run_forever();
    }
}

/// A server process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("load: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pinned(core: u32, program: &str) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", &core.to_string(), program]);
    c
}

fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = cmd
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc { name, child }
}

/// A free port below the kernel's ephemeral range.
fn free_port() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_for(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} does not listen on {port}");
}

/// `pid` and its direct children (nginx's master and worker).
fn tree(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let ppid = std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    s[s.rfind(')')? + 2..]
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                });
            if ppid == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

/// utime + stime of `pid` and its children, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    tree(pid)
        .iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // Fields after the parenthesised command name.
            let f: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Resident memory of `pid` and its children, in KiB.
fn rss_kib(pid: u32) -> u64 {
    tree(pid)
        .iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// One wrk run's figures.
#[derive(Debug, Clone, Default)]
struct Run {
    name: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    cpu_us_per_req: Option<f64>,
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

/// Runs wrk against `url` for `secs`, measuring `server`'s CPU.
fn wrk(
    name: &str,
    url: &str,
    headers: &[String],
    secs: u64,
    warmup: u64,
    server: Option<u32>,
) -> Run {
    let mut args: Vec<String> = vec!["-t1".into(), format!("-c{CONNECTIONS}"), "--latency".into()];
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
fn median(mut runs: Vec<Run>) -> Run {
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
fn expect_status(url: &str, headers: &[String], want: u16) {
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

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or("?".into(), |k| format!("{:.0} GiB", k as f64 / 1048576.0));
    let cmd = |c: &str, a: &[&str]| {
        Command::new(c)
            .args(a)
            .output()
            .map(|o| {
                let t = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&t)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    format!(
        "{model}, {cores} cores, {mem} RAM; Linux {}; {}; {}; {}",
        cmd("uname", &["-r"]),
        cmd("rustc", &["-V"]),
        cmd("nginx", &["-v"]).replace("nginx version: ", ""),
        cmd("wrk", &["-v"]).split(" [").next().unwrap_or("wrk"),
    )
}

/// nginx with `conf` under `dir`, in the foreground, on `core`.
fn nginx(name: &'static str, dir: &Path, conf: &str, core: u32) -> Proc {
    let file = dir.join(format!("{name}.conf"));
    std::fs::write(&file, conf).unwrap();
    let mut cmd = pinned(core, "nginx");
    cmd.args([
        "-p",
        dir.to_str().unwrap(),
        "-c",
        file.to_str().unwrap(),
        "-g",
        "daemon off;",
    ]);
    spawn(name, cmd, &dir.join(format!("{name}.log")))
}

fn nginx_common(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\nerror_log {d}/{name}-error.log warn;\npid {d}/{name}.pid;\n\
         events {{ worker_connections 16384; }}\n"
    )
}

fn nginx_http_common(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "access_log off; keepalive_requests 1000000; keepalive_timeout 120s;\n\
         client_body_temp_path {d}/{name}-body; proxy_temp_path {d}/{name}-proxy;\n\
         fastcgi_temp_path {d}/{name}-fcgi; uwsgi_temp_path {d}/{name}-uwsgi; scgi_temp_path {d}/{name}-scgi;\n"
    )
}

/// Makes sure wrk, nginx and taskset are here, installing when missing.
fn ensure_tools() {
    let have = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !(have("wrk") && have("nginx") && have("taskset")) {
        println!("load: installing wrk and nginx (Debian packages) via .ci/setup");
        let ok = Command::new("bash")
            .arg(format!("{MANIFEST}/.ci/setup"))
            .args(["wrk", "nginx-light", "util-linux"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && have("wrk") && have("nginx"),
            "could not install wrk and nginx; install them with `apt-get install wrk nginx-light`"
        );
    }
}

/// Re-runs this benchmark pinned to core 1 (the client side), once.
fn pin_self() {
    if std::env::var_os("APPLEGATE_LOAD_PINNED").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("taskset")
        .args(["-c", "1"])
        .arg(exe)
        .args(std::env::args().skip(1))
        .env("APPLEGATE_LOAD_PINNED", "1")
        .status()
        .expect("taskset");
    std::process::exit(status.code().unwrap_or(1));
}

struct SignIns {
    per_sec: f64,
    cpu_us: f64,
    count: u64,
    failures: u64,
    keys_fetched: u64,
    client_secrets: usize,
}

/// Full sign-ins (start, Apple's page, form_post, code exchange, id_token
/// check, session) from `workers` concurrent browsers for `secs`.
fn sign_ins(base: &str, emu: &Emulator, gateway_pid: u32, secs: u64, workers: usize) -> SignIns {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let before_hits = emu.hits();
    let before = cpu_ticks(gateway_pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let (ok, failed) = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..workers {
            let start = format!("{base}/oauth2/start?rd=/");
            tasks.spawn(async move {
                let mut b = browser::Browser::new();
                let person = browser::Person::new(&format!("user{w}@example.com"));
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let steps = b.sign_in_steps(&start, &person).await;
                    if steps.callback_page.status == 303 {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed)
            });
        }
        let (mut ok, mut failed) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            let (o, f) = r.unwrap();
            ok += o;
            failed += f;
        }
        (ok, failed)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(gateway_pid) - before;
    let hits = emu.hits();
    SignIns {
        per_sec: ok as f64 / elapsed,
        cpu_us: ticks as f64 / TICKS_PER_SEC * 1e6 / ok.max(1) as f64,
        count: ok,
        failures: failed,
        keys_fetched: hits.keys - before_hits.keys,
        client_secrets: hits.client_secrets,
    }
}

/// RSS of `pid` with `n` idle keep-alive connections, each after one
/// authenticated request. Returns (RSS before, RSS with them) in KiB.
fn idle_connections(port: u16, pid: u32, cookie: &str, n: usize) -> (u64, u64, usize) {
    let before = rss_kib(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (open, after) = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n");
        let mut conns = Vec::with_capacity(n);
        for chunk in 0..n.div_ceil(500) {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..500.min(n - chunk * 500) {
                let req = req.clone();
                set.spawn(async move {
                    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()?;
                    s.write_all(req.as_bytes()).await.ok()?;
                    let mut buf = vec![0u8; 4096];
                    let mut got = 0;
                    // Read until the 1 KiB body has arrived.
                    while got < 1024 + 100 {
                        let k =
                            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf[got..]))
                                .await
                                .ok()?
                                .ok()?;
                        if k == 0 {
                            return None;
                        }
                        got += k;
                    }
                    buf[..12].starts_with(b"HTTP/1.1 200").then_some(s)
                });
            }
            while let Some(r) = set.join_next().await {
                if let Ok(Some(s)) = r {
                    conns.push(s);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(pid);
        let open = conns.len();
        drop(conns);
        (open, after)
    });
    (before, after, open)
}

fn fmt_ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// A horizontal bar chart of req/s and CPU µs per request.
fn svg(runs: &[Run], title: &str) -> String {
    let w = 900.0;
    let row = 26.0;
    let left = 300.0;
    let top = 60.0;
    let h = top + runs.len() as f64 * row * 2.0 + 110.0;
    let max_rps = runs.iter().map(|r| r.rps).fold(1.0, f64::max);
    let max_cpu = runs
        .iter()
        .filter_map(|r| r.cpu_us_per_req)
        .fold(1.0, f64::max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"20\" y=\"28\" font-size=\"17\" font-weight=\"bold\">{title}</text>\n\
         <text x=\"20\" y=\"48\" fill=\"#555\">requests per second (higher is better)</text>\n"
    );
    let bar = |s: &mut String, y: f64, frac: f64, color: &str, label: &str, value: &str| {
        let bw = (w - left - 110.0) * frac;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text><rect x=\"{left}\" y=\"{}\" width=\"{bw:.1}\" height=\"{}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{value}</text>",
            left - 8.0,
            y + row * 0.6,
            y + 4.0,
            row - 8.0,
            left + bw + 6.0,
            y + row * 0.6
        );
    };
    let color = |n: &str| {
        if n.starts_with("applegate") {
            "#0a84ff"
        } else if n.starts_with("nginx") {
            "#30a14e"
        } else {
            "#8e8e93"
        }
    };
    for (i, r) in runs.iter().enumerate() {
        bar(
            &mut s,
            top + i as f64 * row,
            r.rps / max_rps,
            color(&r.name),
            &r.name,
            &format!("{:.0}", r.rps),
        );
    }
    let top2 = top + runs.len() as f64 * row + 40.0;
    let _ = writeln!(s, "<text x=\"20\" y=\"{}\" fill=\"#555\">CPU µs per request of the server under test (lower is better)</text>", top2 - 12.0);
    for (i, r) in runs.iter().enumerate() {
        if let Some(c) = r.cpu_us_per_req {
            bar(
                &mut s,
                top2 + i as f64 * row,
                c / max_cpu,
                color(&r.name),
                &r.name,
                &format!("{c:.1} µs"),
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Replaces the text between the markers of RESULTS.md, keeping the rest
/// (the hand-written tuning log).
fn write_results(section: &str) {
    let path = PathBuf::from(MANIFEST).join("benches/RESULTS.md");
    let begin = "<!-- load:begin -->";
    let end = "<!-- load:end -->";
    let old = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| format!("# Benchmark results\n\n{begin}\n{end}\n"));
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{section}{}", &old[..b], &old[e..]),
        _ => format!("{old}\n{begin}\n{section}{end}\n"),
    };
    std::fs::write(&path, new).expect("write benches/RESULTS.md");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--bare-proxy") {
        bare::run(&args[1], &args[2]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let soak = args.iter().any(|a| a == "--soak");
    let hold = args.iter().any(|a| a == "--hold");
    ensure_tools();
    pin_self();
    let (secs, warm) = if quick { (2, 1) } else { (6, 2) };
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("applegate-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("load: {} (logs in {})", machine(), dir.display());

    // The upstream app: nginx answering 1 KiB, on the client core.
    let up_port = free_port();
    let body = "x".repeat(1024);
    let _upstream = nginx(
        "upstream",
        &dir,
        &format!(
            "{}http {{ {} server {{ listen 127.0.0.1:{up_port} backlog=4096; location / {{ default_type text/plain; return 200 \"{body}\"; }} }} }}\n",
            nginx_common(&dir, "upstream"),
            nginx_http_common(&dir, "upstream")
        ),
        1,
    );
    wait_for(up_port, "upstream nginx");
    let upstream_pid = std::fs::read_to_string(dir.join("upstream.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());

    // The baseline: a plain nginx reverse proxy, one worker, keep-alive to the upstream.
    let ngx_port = free_port();
    let ngx = nginx(
        "nginx-proxy",
        &dir,
        &format!(
            "{}http {{ {} upstream up {{ server 127.0.0.1:{up_port}; keepalive 64; keepalive_requests 1000000; }}\n\
             server {{ listen 127.0.0.1:{ngx_port} backlog=4096; location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
            nginx_common(&dir, "nginx-proxy"),
            nginx_http_common(&dir, "nginx-proxy")
        ),
        0,
    );
    wait_for(ngx_port, "nginx proxy");

    // A bare pingora passthrough (this benchmark, re-executed).
    let bare_port = free_port();
    let mut cmd = pinned(0, std::env::current_exe().unwrap().to_str().unwrap());
    cmd.args([
        "--bare-proxy",
        &format!("127.0.0.1:{bare_port}"),
        &format!("127.0.0.1:{up_port}"),
    ]);
    let bare = spawn("bare pingora", cmd, &dir.join("bare.log"));
    wait_for(bare_port, "bare pingora");

    // applegate, with the Apple emulator in this process (client core).
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let ag_port = free_port();
    let public = format!("http://localhost:{ag_port}");
    let emu = Emulator::start_local(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        emulator::Client::new(
            SERVICES_ID,
            TEAM_ID,
            KEY_ID,
            *key.verifying_key(),
            format!("{public}/oauth2/callback"),
        ),
        clock::system(),
    )
    .unwrap();
    std::fs::write(
        dir.join("AuthKey.p8"),
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        dir.join("session.key"),
        applegate::session::random_token(48),
    )
    .unwrap();
    let config = |port: u16, public: &str, access: bool| {
        // The sign-in benchmark measures capacity, not the limiter, and the
        // idle-connection test opens 10,000 connections: both limits raised.
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{public}\"\nthreads = 1\ngrace_period = \"0s\"\n\
             max_connections = 15000\n\
             [rate_limit]\nsign_in_per_client = 1000000\nsign_in_total = 1000000\napple_token_calls = 1000000\n\
             [apple]\nteam_id = \"{TEAM_ID}\"\nservices_id = \"{SERVICES_ID}\"\nkey_id = \"{KEY_ID}\"\nprivate_key_file = \"AuthKey.p8\"\n\
             base_url = \"{}\"\nbundle_ids = [\"{BUNDLE_ID}\"]\n[session]\nsecret_file = \"session.key\"\n\
             [log]\nlevel = \"{}\"\naccess = {access}\n\
             [[routes]]\npath = \"/api/\"\nauth = \"bearer\"\nupstream = \"http://127.0.0.1:{up_port}\"\n\
             [[routes]]\npath = \"/\"\nupstream = \"http://127.0.0.1:{up_port}\"\n",
            emu.base_url(),
            if access { "info" } else { "warn" },
        )
    };
    std::fs::write(dir.join("applegate.toml"), config(ag_port, &public, false)).unwrap();
    let mut cmd = pinned(0, APPLEGATE);
    cmd.args([
        "run",
        "--config",
        dir.join("applegate.toml").to_str().unwrap(),
    ]);
    let ag = spawn("applegate", cmd, &dir.join("applegate.log"));
    wait_for(ag_port, "applegate");

    // A real sign-in for the session cookie; a native token for bearer.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cookie = rt.block_on(async {
        let mut b = browser::Browser::new();
        let page = b
            .sign_in(
                &format!("{public}/oauth2/start?rd=/"),
                &browser::Person::new("bench@example.com"),
            )
            .await;
        assert_eq!(
            page.status, 200,
            "sign-in for the benchmark failed: {}",
            page.body
        );
        format!(
            "applegate={}",
            b.cookie("applegate").expect("session cookie").value
        )
    });
    let now = clock::system().now();
    let native = emu.sign(&serde_json::json!({
        "iss": emu.base_url(), "aud": BUNDLE_ID, "iat": now, "exp": now + 86_400,
        "sub": "001234.0123456789abcdef0123456789abcdef.0042", "email": "x7k2@privaterelay.appleid.com",
        "email_verified": "true", "is_private_email": "true", "real_user_status": 2,
    }));

    let cookie_h = format!("Cookie: {cookie}");
    let html_h = "Accept: text/html".to_string();
    let bearer_h = format!("Authorization: Bearer {native}");
    let at = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");

    expect_status(&at(ag_port, "/"), std::slice::from_ref(&cookie_h), 200);
    expect_status(&at(ag_port, "/"), std::slice::from_ref(&html_h), 302);
    expect_status(
        &at(ag_port, "/oauth2/auth"),
        std::slice::from_ref(&cookie_h),
        202,
    );
    expect_status(
        &at(ag_port, "/api/items"),
        std::slice::from_ref(&bearer_h),
        200,
    );
    expect_status(&at(ag_port, "/api/items"), &[], 401);

    if hold {
        // Everything is up and signed in: try your own load, or profile.
        println!(
            "\nload: holding for 10 minutes (Ctrl-C to stop). applegate pid {} on core 0:\n  \
             taskset -c 1 wrk -t1 -c64 -d10s -H '{cookie_h}' {}\n  \
             nginx proxy: {}   bare pingora: {}",
            ag.pid(),
            at(ag_port, "/"),
            at(ngx_port, "/"),
            at(bare_port, "/")
        );
        std::thread::sleep(Duration::from_secs(600));
        return;
    }

    println!(
        "\nload: wrk, {CONNECTIONS} connections, {ROUNDS} interleaved rounds of {secs} s per scenario (after {warm} s warm-up); servers on core 0, clients on core 1"
    );
    // Every proxy gets the same request, session cookie included (nginx
    // and bare pingora pass it through; applegate opens it).
    let same = std::slice::from_ref(&cookie_h);
    let scenarios: [(&str, String, &[String], Option<u32>); 7] = [
        (
            "direct to upstream (the limit)",
            at(up_port, "/"),
            same,
            upstream_pid,
        ),
        (
            "nginx reverse proxy (baseline)",
            at(ngx_port, "/"),
            same,
            Some(ngx.pid()),
        ),
        (
            "bare pingora passthrough",
            at(bare_port, "/"),
            same,
            Some(bare.pid()),
        ),
        (
            "applegate, authenticated",
            at(ag_port, "/"),
            same,
            Some(ag.pid()),
        ),
        (
            "applegate, sign-in redirect",
            at(ag_port, "/"),
            std::slice::from_ref(&html_h),
            Some(ag.pid()),
        ),
        (
            "applegate, forward auth",
            at(ag_port, "/oauth2/auth"),
            same,
            Some(ag.pid()),
        ),
        (
            "applegate, bearer (cached)",
            at(ag_port, "/api/items"),
            std::slice::from_ref(&bearer_h),
            Some(ag.pid()),
        ),
    ];
    // The scenarios are run in ROUNDS interleaved rounds and each figure is
    // the median over them: on a shared 2-core VM a single run of a server
    // can land in a noisy second, and interleaving spreads that over all.
    let mut all: Vec<Vec<Run>> = vec![Vec::new(); scenarios.len()];
    for round in 0..ROUNDS {
        println!("  round {}/{ROUNDS}", round + 1);
        for (i, (name, url, headers, pid)) in scenarios.iter().enumerate() {
            all[i].push(wrk(
                name,
                url,
                headers,
                secs,
                if round == 0 { warm } else { 0 },
                *pid,
            ));
        }
    }
    let mut runs: Vec<Run> = all.into_iter().map(median).collect();

    // The cost of the access log: the same gateway with it on (to a file).
    {
        let port = free_port();
        let public = format!("http://localhost:{port}");
        std::fs::write(
            dir.join("applegate-access.toml"),
            config(port, &public, true),
        )
        .unwrap();
        let mut cmd = pinned(0, APPLEGATE);
        cmd.args([
            "run",
            "--config",
            dir.join("applegate-access.toml").to_str().unwrap(),
        ]);
        let logged = spawn(
            "applegate (access log)",
            cmd,
            &dir.join("applegate-access.log"),
        );
        wait_for(port, "applegate with access log");
        // Same secret file, so the session cookie opens here too.
        expect_status(&at(port, "/"), std::slice::from_ref(&cookie_h), 200);
        runs.push(wrk(
            "applegate, authenticated, access log on",
            &at(port, "/"),
            std::slice::from_ref(&cookie_h),
            secs,
            warm,
            Some(logged.pid()),
        ));
    }

    println!("\nload: sign-ins (start, Apple's page, form_post, code exchange, id_token check) for {secs} s");
    let si = sign_ins(&public, &emu, ag.pid(), secs, 16);
    println!(
        "  {:.0} sign-ins/s ({} done, {} failed); gateway CPU {:.0} µs per sign-in; keys fetched {} time(s), {} client secret(s) minted in all",
        si.per_sec, si.count, si.failures, si.cpu_us, si.keys_fetched, si.client_secrets
    );

    println!("\nload: {IDLE_CONNECTIONS} idle keep-alive connections");
    let (rss0, rss1, open) = idle_connections(ag_port, ag.pid(), &cookie, IDLE_CONNECTIONS);
    // The same for the bare pingora proxy and nginx, for context.
    let mut idle_context = String::new();
    for (name, port, pid) in [
        ("bare pingora", bare_port, bare.pid()),
        ("nginx proxy", ngx_port, ngx.pid()),
    ] {
        let (b, a, n) = idle_connections(port, pid, &cookie, IDLE_CONNECTIONS);
        let _ = write!(
            idle_context,
            "; {name} {:.1} → {:.1} MiB ({n} open)",
            b as f64 / 1024.0,
            a as f64 / 1024.0
        );
    }
    println!(
        "  applegate RSS {:.1} MiB before, {:.1} MiB with {open} idle connections{idle_context}",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0
    );

    let mut soak_flat: Option<f64> = None;
    let soak_line = soak.then(|| {
        println!("\nload: soak, 10 minutes of authenticated load, RSS sampled every 10 s");
        let pid = ag.pid();
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = samples.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let sampler = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                s2.lock().unwrap().push(rss_kib(pid));
                std::thread::sleep(Duration::from_secs(10));
            }
        });
        let r = wrk("applegate, authenticated, 10-minute soak", &at(ag_port, "/"), std::slice::from_ref(&cookie_h), 600, 0, Some(pid));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap();
        // The first sample is taken as the load starts, while the idle
        // connections of the previous test may still be closing: skip it.
        let all = samples.lock().unwrap().clone();
        let s = &all[1.min(all.len() - 1)..];
        let (first, last) = (s[0], *s.last().unwrap());
        let (min, max) = (*s.iter().min().unwrap(), *s.iter().max().unwrap());
        let line = format!(
            "Soak (10 min, {:.0} req/s, authenticated): RSS after 10 s {:.1} MiB, at the end {:.1} MiB, min {:.1}, max {:.1} MiB over {} samples.",
            r.rps,
            first as f64 / 1024.0,
            last as f64 / 1024.0,
            min as f64 / 1024.0,
            max as f64 / 1024.0,
            s.len()
        );
        soak_flat = Some((last as f64 - first as f64) / 1024.0);
        println!("  {line}");
        line
    });

    // The table.
    let nginx_run = runs[1].clone();
    let direct = runs[0].clone();
    let bare_run = runs[2].clone();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | req/s | p50 | p99 | CPU µs/req | req/s vs nginx proxy | CPU vs nginx proxy |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {} |",
            r.name,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.cpu_us_per_req.map_or("–".into(), |c| format!("{c:.1}")),
            fmt_ratio(r.rps, nginx_run.rps),
            match (r.cpu_us_per_req, nginx_run.cpu_us_per_req) {
                (Some(a), Some(b)) => fmt_ratio(a, b),
                _ => "–".into(),
            }
        );
    }
    let auth = &runs[3];
    let fwd = &runs[5];
    let mut targets = String::new();
    let mut t = |name: &str, got: String, ok: bool| {
        let _ = writeln!(
            targets,
            "| {name} | {got} | {} |",
            if ok { "met" } else { "**missed**" }
        );
    };
    let auth_vs_nginx = auth.rps / nginx_run.rps;
    t(
        "authenticated ≥ 1.0× nginx proxy req/s",
        format!("{auth_vs_nginx:.2}×"),
        auth_vs_nginx >= 1.0,
    );
    if let (Some(a), Some(n)) = (auth.cpu_us_per_req, nginx_run.cpu_us_per_req) {
        t(
            "authenticated CPU/req ≤ nginx proxy's (stretch)",
            format!("{a:.1} vs {n:.1} µs ({:.2}×)", a / n),
            a <= n,
        );
    }
    let auth_vs_bare = auth.rps / bare_run.rps;
    t(
        "authenticated ≥ 0.95× bare pingora req/s",
        format!("{auth_vs_bare:.2}×"),
        auth_vs_bare >= 0.95,
    );
    if let (Some(a), Some(b)) = (auth.cpu_us_per_req, bare_run.cpu_us_per_req) {
        t(
            "authentication CPU cost over bare pingora ≤ 5%",
            format!("{:+.1}%", (a / b - 1.0) * 100.0),
            a / b <= 1.05,
        );
    }
    let fwd_vs_nginx = fwd.rps / nginx_run.rps;
    t(
        "forward auth ≥ 2× nginx proxy req/s",
        format!("{fwd_vs_nginx:.2}×"),
        fwd_vs_nginx >= 2.0,
    );
    let added = auth.p99_ms - direct.p99_ms;
    t(
        "p99 added over direct ≤ 1 ms (64 connections)",
        format!("{added:.2} ms"),
        added <= 1.0,
    );
    t(
        "≥ 1,000 sign-ins/s",
        format!(
            "{:.0}/s measured; gateway CPU {:.0} µs each ⇒ {:.0}/s per core",
            si.per_sec,
            si.cpu_us,
            1e6 / si.cpu_us
        ),
        si.per_sec >= 1000.0,
    );
    t(
        "keys fetched once, client secret minted once",
        format!(
            "{} fetch(es) during sign-ins, {} secret(s) in all",
            si.keys_fetched, si.client_secrets
        ),
        si.keys_fetched == 0 && si.client_secrets == 1,
    );
    if let Some(drift) = soak_flat {
        t(
            "RSS flat over a 10-minute soak",
            format!("{drift:+.1} MiB from 10 s to 10 min"),
            drift.abs() <= 8.0,
        );
    }
    t(
        "RSS ≤ 64 MiB with 10,000 idle connections",
        format!("{:.1} MiB ({open} open)", rss1 as f64 / 1024.0),
        rss1 <= 64 * 1024 && open == IDLE_CONNECTIONS,
    );

    let title = format!(
        "applegate load benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    let section = format!(
        "Last run: {} ({}; {:.0} s).\n\nMachine: {}\n\n\
         Servers under test pinned to core 0; wrk (1 thread, {CONNECTIONS} connections), the upstream (nginx, 1 KiB answers) \
         and the benchmark driver with the Apple emulator on core 1. Each scenario runs {ROUNDS} times for {secs} s, the scenarios \
         interleaved (after {warm} s of warm-up); each figure is the median of its {ROUNDS} runs. \
         CPU µs/req is the server's utime+stime from /proc over the run divided by the requests served.\n\n{table}\n\
         Sign-ins: {:.0}/s with 16 concurrent browsers ({} done, {} failed), gateway CPU {:.0} µs per sign-in.\n\n\
         Idle connections: applegate RSS {:.1} MiB before, {:.1} MiB with {open} idle keep-alive connections{idle_context} \
         (nginx: master and worker together).\n\n{}\
         ### Targets\n\n| target | reached | |\n|---|---|---|\n{targets}\n![chart](results.svg)\n\n",
        command_date(),
        if quick { "--quick" } else { "full run" },
        started.elapsed().as_secs_f64(),
        machine(),
        si.per_sec,
        si.count,
        si.failures,
        si.cpu_us,
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        soak_line.map(|l| format!("{l}\n\n")).unwrap_or_default(),
    );
    println!("\n{table}\n| target | reached | |\n|---|---|---|\n{targets}");
    write_results(&section);
    std::fs::write(
        PathBuf::from(MANIFEST).join("benches/results.svg"),
        svg(&runs, &title),
    )
    .unwrap();
    println!(
        "load: wrote benches/RESULTS.md and benches/results.svg in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    drop(ag);
    drop(bare);
    drop(ngx);
    let _ = std::fs::remove_dir_all(&dir);
}

fn command_date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
