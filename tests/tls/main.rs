//! TLS and HTTP/2 at the edge, over real sockets: the gateway's TLS
//! listener with curl as the client (HTTP/2 and HTTP/1.1), the edge guard
//! under TLS, certificate reloads, the plain-HTTP redirect listener, the
//! config checks, HTTP/2 to upstreams, and upstreams over TLS signed by a
//! private CA (`upstream_ca_file`). Certificates are made by each
//! test with `openssl req -x509`. One test crate (`cargo test --test
//! tls`) in a few files, by topic.

mod client;
#[path = "../common/mod.rs"]
mod common;
mod config;
mod listener;
mod redirect;
mod reload;
mod upstream;
mod upstream_tls;

use std::path::{Path, PathBuf};
use std::process::Command;

use applegate::clock::system;
use applegate::kit::{self, Builder, Upstream};
use applegate::server;

/// A temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "applegate-tls-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a self-signed P-256 certificate for `localhost` with subject
/// `CN=<cn>`, as `<name>.crt` and `<name>.key` in `dir`.
pub fn make_cert(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

/// A gateway with `[server.tls]` on `https://localhost:<port>`.
pub struct Gateway {
    pub running: server::Running,
    pub kit: kit::Stack,
    pub config: applegate::config::Config,
    pub port: u16,
    pub dir: TempDir,
}

impl Gateway {
    /// `server_toml` goes into `[server]`, `routes` after the catch-all's
    /// more specific routes; the certificate is `CN=applegate-one`.
    pub fn start(upstream: Upstream, server_toml: &str, routes: &str) -> Gateway {
        let dir = TempDir::new("gw");
        let (crt, key) = make_cert(&dir.0, "live", "applegate-one");
        let port = kit::free_port();
        let kit = Builder::new(system())
            .ports(port, 0, 0)
            .public_url(Some(format!("https://localhost:{port}")))
            .upstream(upstream)
            .start()
            .unwrap();
        let toml = format!(
            r#"
[server]
threads = 1
grace_period = "0s"
tls = {{ cert_file = {crt:?}, key_file = {key:?} }}
{server_toml}

[log]
level = "warn"

{routes}
[[routes]]
path = "/"
upstream = "http://{{upstream}}"
"#
        );
        let config = kit
            .config(&toml, &kit.secrets())
            .unwrap_or_else(|e| panic!("test config: {e}\n{}", kit.toml(&toml)));
        let running = server::spawn(&config, system()).unwrap();
        Gateway {
            running,
            kit,
            config,
            port,
            dir,
        }
    }

    /// `https://localhost:<port><path>`.
    pub fn at(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// curl against the gateway (certificate not checked: `-k`), verbose;
    /// `localhost` pinned to 127.0.0.1, where the gateway listens.
    pub fn curl(&self, args: &[&str]) -> Curl {
        curl(self.port, args)
    }
}

/// What curl printed.
pub struct Curl {
    pub stdout: String,
    /// `-v`'s trace: the handshake, the certificate, the heads.
    pub stderr: String,
}

impl Curl {
    /// The version and status curl received (`HTTP/2 200`, `HTTP/1.1 302`).
    pub fn status_line(&self) -> String {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("< "))
            .filter(|l| l.starts_with("HTTP/"))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }

    /// The server certificate's subject, as curl reports it.
    pub fn subject(&self) -> String {
        self.stderr
            .lines()
            .find_map(|l| l.trim_start_matches('*').trim().strip_prefix("subject:"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

pub fn curl(port: u16, args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "-k", "-v", "--max-time", "10", "--resolve"])
        .arg(format!("localhost:{port}:127.0.0.1"))
        .args(args)
        .output()
        .expect("curl runs");
    Curl {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
