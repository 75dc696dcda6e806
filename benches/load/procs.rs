//! The load benchmark's processes: servers started pinned to a core and
//! stopped when dropped, the bare pingora passthrough, nginx, the tools,
//! and the CPU and memory of a process read from `/proc`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::MANIFEST;

/// A bare pingora passthrough: what pingora costs before any of our code.
pub mod bare {
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
        // applegate's read buffer; pingora's own write buffer, which
        // applegate's listener leaves to its gate (src/edge/write_buffer.rs)
        // and bare pingora has no gate to replace.
        svc.add_listener(
            pingora::listeners::ListenerConfig::tcp(listen).l4_buffer(
                pingora::protocols::l4::stream::L4BufferSettings::default()
                    .read(applegate::config::DEFAULT_READ_BUFFER),
            ),
        );
        server.add_service(svc);
        server.run_forever();
    }
}

/// A server process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
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

pub fn pinned(core: u32, program: &str) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", &core.to_string(), program]);
    c
}

pub fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = cmd
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc { name, child }
}

/// Waits until `what` listens on `port` of 127.0.0.1.
pub fn wait_for(port: u16, what: &str) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        applegate::kit::wait_listening(addr, Duration::from_secs(20)),
        "{what} does not listen on {port}"
    );
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
pub fn cpu_ticks(pid: u32) -> u64 {
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
pub fn rss_kib(pid: u32) -> u64 {
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

/// nginx with `conf` under `dir`, in the foreground, on `core`.
pub fn nginx(name: &'static str, dir: &Path, conf: &str, core: u32) -> Proc {
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

pub fn nginx_common(dir: &Path, name: &str) -> String {
    nginx_sized(dir, name, 16384)
}

/// [`nginx_common`] with room for `connections` (nginx allocates and
/// initialises its connection table for all of them when it starts).
pub fn nginx_sized(dir: &Path, name: &str, connections: usize) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\nerror_log {d}/{name}-error.log warn;\npid {d}/{name}.pid;\n\
         worker_rlimit_nofile {};\nevents {{ worker_connections {connections}; }}\n",
        connections * 2
    )
}

/// An nginx reverse proxy's config: one worker on `port` proxying to the
/// upstream on `up_port` over keep-alive connections, one `location` per
/// path prefix (`/` for the baseline), room for `connections`.
pub fn nginx_proxy_conf(
    dir: &Path,
    name: &str,
    port: u16,
    up_port: u16,
    prefixes: &[String],
    connections: usize,
) -> String {
    let mut locations = String::new();
    for p in prefixes {
        locations.push_str(&format!(
            "location {p} {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n"
        ));
    }
    format!(
        "{}http {{ {} upstream up {{ server 127.0.0.1:{up_port}; keepalive 64; keepalive_requests 1000000; }}\n\
         server {{ listen 127.0.0.1:{port} backlog=4096;\n{locations}}} }}\n",
        nginx_sized(dir, name, connections),
        nginx_http_common(dir, name)
    )
}

/// A bare pingora passthrough (this benchmark, re-executed) on `port` of
/// 127.0.0.1 to the upstream on `up_port`, on core 0, listening.
pub fn bare_proxy(name: &'static str, log: &Path, port: u16, up_port: u16) -> Proc {
    let mut cmd = pinned(0, std::env::current_exe().unwrap().to_str().unwrap());
    cmd.args([
        "--bare-proxy",
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{up_port}"),
    ]);
    let p = spawn(name, cmd, log);
    wait_for(port, name);
    p
}

/// Raises this process's open-file limit towards `want`, for itself and
/// every server and tool it starts (they inherit it): the idle-connection
/// curve holds 50,000 connections at each end, wrk 1,024. The soft limit
/// goes up to the hard one; the hard one only where allowed (root).
/// Returns the soft limit now in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the structs we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            let both = libc::rlimit {
                rlim_cur: want,
                rlim_max: want.max(lim.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &both) != 0 {
                let soft = libc::rlimit {
                    rlim_cur: want.min(lim.rlim_max),
                    rlim_max: lim.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
        }
    }
    applegate::config::fd_limit()
}

pub fn nginx_http_common(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "access_log off; keepalive_requests 1000000; keepalive_timeout 120s;\n\
         client_body_temp_path {d}/{name}-body; proxy_temp_path {d}/{name}-proxy;\n\
         fastcgi_temp_path {d}/{name}-fcgi; uwsgi_temp_path {d}/{name}-uwsgi; scgi_temp_path {d}/{name}-scgi;\n"
    )
}

/// Makes sure wrk, nginx and taskset are here, installing when missing.
pub fn ensure_tools() {
    let have = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !(have("wrk")
        && have("nginx")
        && have("taskset")
        && have("valgrind")
        && have("callgrind_control"))
    {
        println!("load: installing wrk, nginx and valgrind (Debian packages) via .ci/setup");
        let ok = Command::new("bash")
            .arg(format!("{MANIFEST}/.ci/setup"))
            .args(["wrk", "nginx-light", "util-linux", "valgrind"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && have("wrk") && have("nginx"),
            "could not install wrk and nginx; install them with `apt-get install wrk nginx-light`"
        );
    }
}

/// Re-runs this benchmark pinned to core 1 (the client side), once.
pub fn pin_self() {
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
