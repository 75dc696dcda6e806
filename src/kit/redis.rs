//! A real `redis-server` for the tests and the benchmark of the Redis
//! store: on a free loopback port, its files in a fresh directory, stopped
//! and started again at will (an outage), killed and removed when dropped;
//! also as a replica of another, or as a Sentinel watching one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What to say when the program is missing: the tests never skip.
pub const INSTALL: &str = "install redis-server: sudo apt-get install redis-server";

/// A running (or stopped) `redis-server`.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// A config file to read first (a Sentinel's: it rewrites it).
    config: Option<PathBuf>,
    /// After the usual arguments (later ones win).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one; the error says how to install it when it is missing.
    pub fn start() -> Result<RedisServer, String> {
        Self::start_with(None, |_| vec![])
    }

    /// A replica of `master`.
    pub fn replica_of(master: &RedisServer) -> Result<RedisServer, String> {
        let port = master.port.to_string();
        Self::start_with(None, |_| {
            vec!["--replicaof".into(), "127.0.0.1".into(), port.clone()]
        })
    }

    /// A Sentinel (Debian's `redis-server` runs as one with `--sentinel`)
    /// watching `master` as `name`, alone (quorum 1), calling it down after
    /// a second.
    pub fn sentinel(master: &RedisServer, name: &str) -> Result<RedisServer, String> {
        let conf = format!(
            "sentinel monitor {name} 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 5000\n",
            master.port
        );
        let dir = fresh_dir()?;
        let file = dir.join("sentinel.conf");
        std::fs::write(&file, conf).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut server = RedisServer {
            port: super::free_port(),
            dir,
            child: None,
            config: Some(file),
            extra: vec!["--sentinel".into()],
        };
        server.restart()?;
        Ok(server)
    }

    /// With `extra(port)` after the usual arguments (e.g. `--port 0
    /// --tls-port <port>` for TLS only), reading `config` first.
    pub fn start_with(
        config: Option<PathBuf>,
        extra: impl Fn(u16) -> Vec<String>,
    ) -> Result<RedisServer, String> {
        let port = super::free_port();
        let mut server = RedisServer {
            port,
            dir: fresh_dir()?,
            child: None,
            config,
            extra: extra(port),
        };
        server.restart()?;
        Ok(server)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory (files a test hands it, e.g. certificates, go there).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// A fresh directory for one server's files.
fn fresh_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "applegate-redis-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

impl RedisServer {
    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops it as an operator would (SIGTERM: what was written is kept),
    /// and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: a plain kill(2) of our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same files (what it kept
    /// on disk, append-only, is back).
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(&self.config)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => INSTALL.to_string(),
                _ => format!("redis-server: {e}"),
            })?;
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        if !super::wait_listening(addr, Duration::from_secs(10)) {
            return Err(format!("redis-server did not listen on {addr} within 10 s"));
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of masters only (no replicas), each a [`RedisServer`],
/// its slots spread by `redis-cli --cluster create`, ready (`cluster_state:ok`
/// on every node) when started.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` (at least 3, as `redis-cli` wants) nodes and joins them.
    pub fn start(n: usize) -> Result<RedisCluster, String> {
        let nodes = (0..n)
            .map(|_| {
                RedisServer::start_with(None, |_| {
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ]
                    .map(String::from)
                    .to_vec()
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => INSTALL.replace("redis-server", "redis-tools"),
                _ => format!("redis-cli: {e}"),
            })?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        for s in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &s.port.to_string(), "cluster", "info"])
                    .output()
                    .map_err(|e| format!("redis-cli: {e}"))?;
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "the Cluster's node {} is not ok within 20 s",
                        s.port
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(RedisCluster { nodes })
    }
}
