//! `[server]`: where the gateway listens, its public origin, and the limits
//! that protect each connection.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::duration::DurationText;
use super::validate::{http_url, Validator};

/// Default per-connection read buffer (`server.read_buffer`): none. The
/// head guard keeps a request's first read itself, and pingora's reads
/// of a head, a body or a TLS record are as large as a 4 KiB buffer, which
/// they then bypass: the same syscalls and CPU per request without it, and
/// 4 KiB less for each idle connection (benches/RESULTS.md).
pub const DEFAULT_READ_BUFFER: usize = 0;

/// The upgrade socket's name when `server.upgrade_sock` is not set: in the
/// state file's directory (or, with the memory store, the config's).
pub const DEFAULT_UPGRADE_SOCK: &str = "applegate.upgrade.sock";

/// Longest path a unix socket can bind (`sun_path` is 108 bytes with its
/// NUL on Linux); pingora panics on a longer one, so it is refused here.
const MAX_SOCK_PATH: usize = 107;

/// `[server]`
#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub public_url: PublicUrl,
    pub threads: usize,
    pub grace_period: Duration,
    pub max_callback_body: usize,
    /// Per-connection read buffer in bytes; 0 reads straight into the
    /// request parser's buffer.
    pub read_buffer: usize,
    /// Paths with encoded slashes, unless a route says otherwise.
    pub encoded_slashes: EncodedSlashes,
    /// Peers whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are kept
    /// and extended; from anyone else they are replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Deadline for reading a whole request head (not reset per byte).
    pub head_timeout: Duration,
    /// Largest request head (request line and headers) in bytes.
    pub max_head_size: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// How long an idle keep-alive connection is kept open.
    pub keepalive_timeout: Duration,
    /// Most open client connections; one more is closed at once.
    pub max_connections: usize,
    /// `[server.tls]`: the listener speaks TLS (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls: Option<super::tls::Tls>,
    /// A plain-HTTP listener that redirects to the https public URL.
    pub redirect_http: Option<SocketAddr>,
    /// The unix socket over which a running gateway hands its listening
    /// sockets to its successor (`applegate run --upgrade`, `reload`).
    pub upgrade_sock: PathBuf,
}

/// What a route does with a path holding an encoded `/` or `\` (`%2F`,
/// `%5C`). Default reject: servers disagree on whether it separates
/// segments. `Keep` is for apps that need it (Matrix, ArgoCD): `%2F` is
/// then neither decoded for routing nor for forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodedSlashes {
    Reject,
    Keep,
}

/// The external origin of the gateway, e.g. `https://app.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, no trailing slash.
    pub origin: String,
    /// The host name (or IP literal), lowercase, without port.
    pub host: String,
    pub https: bool,
}

impl PublicUrl {
    /// The Return URL to register with Apple.
    pub fn callback_url(&self) -> String {
        format!("{}/oauth2/callback", self.origin)
    }
}

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    /// Socket address the gateway listens on.
    listen: Option<String>,
    /// The external origin browsers use, e.g. `https://app.example.com`.
    public_url: Option<String>,
    /// Worker threads for the proxy.
    threads: Option<i64>,
    /// How long in-flight requests get to finish on SIGTERM.
    grace_period: Option<DurationText>,
    /// Largest accepted callback body.
    max_callback_body: Option<i64>,
    /// Per-connection read buffer in bytes (0: none).
    read_buffer: Option<i64>,
    /// Paths with `%2F` / `%5C`.
    encoded_slashes: Option<EncodedSlashes>,
    /// CIDRs whose forwarding headers are believed.
    trusted_proxies: Option<Vec<String>>,
    /// Deadline for a whole request head.
    head_timeout: Option<DurationText>,
    /// Largest request head in bytes.
    max_head_size: Option<i64>,
    /// Most header fields in one request.
    max_headers: Option<i64>,
    /// How long an idle keep-alive connection is kept.
    keepalive_timeout: Option<DurationText>,
    /// Most open client connections.
    max_connections: Option<i64>,
    /// `[server.tls]`: certificate and key files.
    tls: Option<super::tls::TlsSection>,
    /// Address of the plain-HTTP listener that redirects to https.
    redirect_http: Option<String>,
    /// Path of the unix socket of graceful upgrades.
    upgrade_sock: Option<String>,
}

/// Reads and checks `[server]`; `None` if it cannot be used. `state` is
/// where the upgrade socket goes by default.
pub(super) fn read(
    v: &mut Validator<'_>,
    top: &toml::Table,
    state: &super::State,
) -> Option<Server> {
    let s: ServerSection = v.section(top, "server");
    let listen_text = s.listen.as_deref().unwrap_or("0.0.0.0:8080");
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            v.problem(
                "server.listen",
                format!(
                    "expected an address and port such as \"0.0.0.0:8080\", found {listen_text:?}"
                ),
            );
            None
        }
    };
    let public_url = match s.public_url {
        None => {
            v.problem(
                "server.public_url",
                "missing; expected the external origin browsers use, e.g. \"https://app.example.com\"",
            );
            None
        }
        Some(u) => public_url(v, &u),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = v.bounded(
        s.threads,
        "server.threads",
        "a number of worker threads",
        (1, 1024),
        cores,
    );
    let max_callback_body = v.bounded(
        s.max_callback_body,
        "server.max_callback_body",
        "a size in bytes",
        (1024, 1024 * 1024),
        64 * 1024,
    );
    let read_buffer = v.bounded(
        s.read_buffer,
        "server.read_buffer",
        "a size in bytes",
        (0, 1024 * 1024),
        DEFAULT_READ_BUFFER,
    );
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in s.trusted_proxies.unwrap_or_default().iter().enumerate() {
        // A bare address is a one-address network.
        let parsed = cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net.trunc()),
            Err(_) => v.problem(
                format!("server.trusted_proxies[{i}]"),
                format!(
                    "expected an address or CIDR such as \"10.0.0.0/8\" or \"::1\", found {cidr:?}"
                ),
            ),
        }
    }
    let max_head_size = v.bounded(
        s.max_head_size,
        "server.max_head_size",
        "a size in bytes",
        (1024, 1024 * 1024),
        32 * 1024,
    );
    let max_headers = v.bounded(
        s.max_headers,
        "server.max_headers",
        "a number of header fields",
        (8, 256),
        100,
    );
    let fd_limit = super::fd_limit();
    let max_connections = v.bounded(
        s.max_connections,
        "server.max_connections",
        "a number of connections",
        (1, 1_000_000),
        (fd_limit / 2).clamp(64, 10_000) as usize,
    );
    if max_connections as u64 > fd_limit * 9 / 10 {
        v.warn(format!(
            "server.max_connections = {max_connections} is close to or above this process's file-descriptor limit ({fd_limit}); raise the limit (ulimit -n, LimitNOFILE=) or lower max_connections"
        ));
    }
    let tls = super::tls::read(v, s.tls);
    let redirect_http = redirect_http(v, s.redirect_http.as_deref(), listen, public_url.as_ref());
    let upgrade_sock = upgrade_sock(v, s.upgrade_sock.as_deref(), state);
    if tls.is_some() && public_url.as_ref().is_some_and(|u| !u.https) {
        v.warn("server.public_url: the listener speaks TLS ([server.tls]) but public_url is http; browsers are sent to http links and cookies are not Secure");
    }
    Some(Server {
        listen: listen?,
        public_url: public_url?,
        threads,
        grace_period: DurationText::or(s.grace_period, Duration::from_secs(10)),
        max_callback_body,
        read_buffer,
        encoded_slashes: s.encoded_slashes.unwrap_or(EncodedSlashes::Reject),
        trusted_proxies,
        head_timeout: DurationText::or(s.head_timeout, Duration::from_secs(10)),
        max_head_size,
        max_headers,
        keepalive_timeout: DurationText::or(s.keepalive_timeout, Duration::from_secs(60)),
        max_connections,
        tls,
        redirect_http,
        upgrade_sock: upgrade_sock?,
    })
}

/// `server.upgrade_sock`: as set (relative to the config's directory), or
/// [`DEFAULT_UPGRADE_SOCK`] beside the state file (or the config, for a
/// store with no file), a directory the gateway
/// already owns and writes (and, in the shipped unit, 0700: whoever can
/// connect to the socket while a successor waits could hand it sockets).
fn upgrade_sock(
    v: &mut Validator<'_>,
    text: Option<&str>,
    state: &super::State,
) -> Option<PathBuf> {
    let key = "server.upgrade_sock";
    let path = match (text, state) {
        (Some(t), _) => v.path(t),
        (None, super::State::Embedded { path }) => path
            .parent()
            .unwrap_or(Path::new("."))
            .join(DEFAULT_UPGRADE_SOCK),
        // No state file: beside the config.
        (None, super::State::Memory | super::State::Redis(_)) => v.path(DEFAULT_UPGRADE_SOCK),
    };
    // Pingora takes the path as text.
    let Some(text) = path.to_str() else {
        v.problem(
            key,
            format!(
                "{} is not UTF-8; set server.upgrade_sock to a UTF-8 path",
                path.display()
            ),
        );
        return None;
    };
    if text.len() > MAX_SOCK_PATH {
        v.problem(
            key,
            format!(
                "{text:?} is {} bytes; a unix socket path has at most {MAX_SOCK_PATH}: set a shorter one (e.g. \"/run/applegate/upgrade.sock\")",
                text.len()
            ),
        );
        return None;
    }
    Some(path)
}

/// `server.redirect_http`: an address unlike `listen`, and an https public
/// URL to send browsers to (redirecting to http would loop).
fn redirect_http(
    v: &mut Validator<'_>,
    text: Option<&str>,
    listen: Option<SocketAddr>,
    public_url: Option<&PublicUrl>,
) -> Option<SocketAddr> {
    let key = "server.redirect_http";
    let text = text?;
    let Ok(addr) = text.parse::<SocketAddr>() else {
        v.problem(
            key,
            format!("expected an address and port such as \"0.0.0.0:80\", found {text:?}"),
        );
        return None;
    };
    if listen == Some(addr) {
        v.problem(
            key,
            format!("{addr} is server.listen as well; choose another port"),
        );
        return None;
    }
    if public_url.is_some_and(|u| !u.https) {
        v.problem(
            key,
            "redirects to the https public URL, but server.public_url is http; set an https public_url",
        );
        return None;
    }
    Some(addr)
}

fn public_url(v: &mut Validator<'_>, text: &str) -> Option<PublicUrl> {
    let key = "server.public_url";
    let Some(url) = http_url(text) else {
        v.problem(
            key,
            format!(
                "expected an http(s) origin such as \"https://app.example.com\", found {text:?}"
            ),
        );
        return None;
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        v.problem(
            key,
            format!("expected an origin without path, query or fragment (the callback is /oauth2/callback under it), found {text:?}"),
        );
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        v.problem(key, "expected no user name or password in the URL");
        return None;
    }
    let https = url.scheme() == "https";
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let origin = url.origin().ascii_serialization();
    let bare = host.trim_matches(['[', ']']);
    let is_ip = bare.parse::<IpAddr>().is_ok();
    let is_local = bare == "localhost" || bare.ends_with(".localhost");
    if !https || is_ip || is_local {
        v.warn(format!(
            "server.public_url: Apple accepts only https Return URLs on a domain name (no http, localhost or IP address); {text:?} works with the emulator but not with Apple"
        ));
    }
    Some(PublicUrl {
        origin,
        host,
        https,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::State;

    fn sock(text: Option<&str>, state: &State) -> (Option<PathBuf>, Vec<String>) {
        let mut v = Validator::new(Path::new("/etc/applegate"), &|_| None);
        let path = upgrade_sock(&mut v, text, state);
        let problems = v.into_problems().iter().map(ToString::to_string).collect();
        (path, problems)
    }

    /// By default the socket is beside the state file (the gateway's own
    /// directory), or beside the config with the memory store; a set path
    /// is taken from the config's directory.
    #[test]
    fn upgrade_sock_defaults_beside_the_state_file() {
        let embedded = State::Embedded {
            path: "/var/lib/applegate/applegate.state".into(),
        };
        assert_eq!(
            sock(None, &embedded).0.unwrap(),
            Path::new("/var/lib/applegate/applegate.upgrade.sock")
        );
        assert_eq!(
            sock(None, &State::Memory).0.unwrap(),
            Path::new("/etc/applegate/applegate.upgrade.sock")
        );
        assert_eq!(
            sock(Some("run/up.sock"), &embedded).0.unwrap(),
            Path::new("/etc/applegate/run/up.sock")
        );
    }

    /// A path a unix socket cannot bind (pingora would panic on it) is a
    /// problem with its key path and the limit.
    #[test]
    fn upgrade_sock_longer_than_a_socket_path_is_refused() {
        let long = format!("/run/{}/upgrade.sock", "d".repeat(100));
        let (path, problems) = sock(Some(&long), &State::Memory);
        assert!(path.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!(
                "server.upgrade_sock: {long:?} is 118 bytes; a unix socket path has at most 107"
            )),
            "{problems:?}"
        );
    }
}
