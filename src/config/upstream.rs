//! A route's upstream: one URL or a pool of them (`upstream`, `balance`,
//! `upstream_fail_timeout`, `health_check`, `health_check_interval`).
//!
//! Every URL is resolved here, at load: a name that resolves to nothing
//! is a config problem (exit 2) rather than a gateway that starts with an
//! empty pool. Names are resolved again in the background while running
//! ([`crate::pool`]), never on the request path.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pingora::protocols::tls::CaType;
use pingora::utils::tls::WrappedX509;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use serde::Deserialize;

use super::duration::DurationText;
use super::validate::{http_url, Validator};

/// How a pool picks a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each backend in turn (the default).
    #[default]
    RoundRobin,
    /// The backend with the fewest requests in flight.
    LeastConn,
}

/// A route's upstream pool: one or more URLs of one scheme.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// As written (URLs joined by ", "), for messages.
    pub url: String,
    pub members: Vec<Upstream>,
    pub balance: Balance,
    /// How long an address that failed to connect is skipped.
    pub fail_timeout: Duration,
    /// The active health check, when asked for.
    pub health_check: Option<HealthCheck>,
    /// `upstream_ca_file`: the CA certificates an https upstream's
    /// certificate must chain to instead of the system's roots.
    pub ca: Option<UpstreamCa>,
}

/// `upstream_ca_file`, read: the file and its certificates, as pingora
/// takes them for a peer (`PeerOptions::ca`).
#[derive(Clone)]
pub struct UpstreamCa {
    pub file: PathBuf,
    pub certs: Arc<CaType>,
}

impl std::fmt::Debug for UpstreamCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCa")
            .field("file", &self.file)
            .field("certs", &self.certs.len())
            .finish()
    }
}

impl Upstreams {
    /// One plain-HTTP upstream at `addr`, with the defaults (for tests and
    /// benchmarks that build routes without a file).
    pub fn at(addr: SocketAddr) -> Upstreams {
        let url = format!("http://{addr}");
        Upstreams {
            url: url.clone(),
            members: vec![Upstream {
                url,
                addrs: vec![addr],
                tls: false,
                sni: addr.ip().to_string(),
                port: addr.port(),
                named: false,
            }],
            balance: Balance::RoundRobin,
            fail_timeout: FAIL_TIMEOUT,
            health_check: None,
            ca: None,
        }
    }
}

/// `health_check` and `health_check_interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path asked with GET; a 2xx answer is healthy.
    pub path: String,
    pub interval: Duration,
}

/// One URL of a pool, resolved.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// As written, for messages.
    pub url: String,
    /// Its addresses at load (all of them: a name with several addresses
    /// is several backends, as in nginx).
    pub addrs: Vec<SocketAddr>,
    pub tls: bool,
    /// The host as written (no brackets): SNI and certificate name for
    /// https upstreams, and what the background resolution looks up.
    pub sni: String,
    pub port: u16,
    /// Whether the host is a name (re-resolved in the background) rather
    /// than an IP literal.
    pub named: bool,
}

/// `upstream = "http://…"` or `upstream = ["http://…", …]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum UpstreamText {
    One(String),
    Many(Vec<String>),
}

/// A route's upstream keys as written.
#[derive(Debug, Default)]
pub(super) struct UpstreamKeys {
    pub upstream: Option<UpstreamText>,
    pub balance: Option<Balance>,
    pub upstream_fail_timeout: Option<DurationText>,
    pub health_check: Option<String>,
    pub health_check_interval: Option<DurationText>,
    pub upstream_ca_file: Option<String>,
}

/// Default `upstream_fail_timeout`: nginx's `fail_timeout`.
const FAIL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `health_check_interval`.
const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Reads and checks a route's upstream keys; `key` is the route's key path
/// (`routes[N]`).
pub(super) fn read(v: &mut Validator<'_>, k: UpstreamKeys, key: &str) -> Option<Upstreams> {
    let at = format!("{key}.upstream");
    let texts = match k.upstream {
        None => {
            v.problem(
                &at,
                "missing; expected the app's URL, e.g. \"http://127.0.0.1:3000\", or a list of them",
            );
            return None;
        }
        Some(UpstreamText::One(t)) => vec![t],
        Some(UpstreamText::Many(ts)) if ts.is_empty() => {
            v.problem(&at, "empty list; expected at least one URL");
            return None;
        }
        Some(UpstreamText::Many(ts)) => ts,
    };
    let many = texts.len() > 1;
    let members: Vec<Upstream> = texts
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let at = if many {
                format!("{at}[{i}]")
            } else {
                at.clone()
            };
            upstream(v, t, &at)
        })
        .collect();
    if members.len() != texts.len() {
        return None;
    }
    if members.iter().any(|m| m.tls != members[0].tls) {
        v.problem(
            &at,
            "mixes http:// and https://; a pool's URLs must share one scheme (the requests are the same)",
        );
        return None;
    }
    let health_check = k.health_check.map(|path| {
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            v.problem(
                format!("{key}.health_check"),
                format!("expected a path such as \"/healthz\", found {path:?}"),
            );
        }
        let interval = DurationText::or(k.health_check_interval, CHECK_INTERVAL);
        if interval < Duration::from_secs(1) {
            v.problem(
                format!("{key}.health_check_interval"),
                "expected at least \"1s\"",
            );
        }
        HealthCheck { path, interval }
    });
    if health_check.is_none() && k.health_check_interval.is_some() {
        v.problem(
            format!("{key}.health_check_interval"),
            "has no effect without health_check; set both or neither",
        );
    }
    let fail_timeout = DurationText::or(k.upstream_fail_timeout, FAIL_TIMEOUT);
    if fail_timeout < Duration::from_secs(1) {
        v.problem(
            format!("{key}.upstream_fail_timeout"),
            "expected at least \"1s\"",
        );
    }
    let ca = k.upstream_ca_file.and_then(|f| {
        let at = format!("{key}.upstream_ca_file");
        if !members[0].tls {
            v.problem(
                &at,
                "only for https:// upstreams (it names the CA their certificate is checked against); remove it or use https://",
            );
            return None;
        }
        let file = v.path(&f);
        match read_ca(&file) {
            Ok(certs) => Some(UpstreamCa { file, certs }),
            Err(e) => {
                v.problem(&at, e);
                None
            }
        }
    });
    Some(Upstreams {
        url: texts.join(", "),
        members,
        balance: k.balance.unwrap_or_default(),
        fail_timeout,
        health_check,
        ca,
    })
}

/// Reads `upstream_ca_file`: PEM, one or more CA certificates, each one
/// rustls takes as a trust anchor (what pingora does with it per connect).
pub fn read_ca(file: &Path) -> Result<Arc<CaType>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {file:?}: {e}"))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{file:?} is not valid PEM: {e}"))?;
    if ders.is_empty() {
        return Err(format!(
            "{file:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    let mut roots = pingora::tls::RootCertStore::empty();
    let mut certs = Vec::with_capacity(ders.len());
    for (i, der) in ders.into_iter().enumerate() {
        let bad = |e: &dyn std::fmt::Display| {
            format!("{file:?}: certificate {} is not usable as a CA: {e}", i + 1)
        };
        roots.add(der.clone()).map_err(|e| bad(&e))?;
        // pingora's own builder (`parse_x509`) panics on a certificate it
        // cannot parse; parsing here first makes that a config problem.
        let cert = WrappedX509::try_new(der.to_vec(), |raw| {
            x509_parser::parse_x509_certificate(raw).map(|(_, c)| c)
        })
        .map_err(|e| bad(&e))?;
        certs.push(cert);
    }
    Ok(certs.into())
}

fn upstream(v: &mut Validator<'_>, text: &str, key: &str) -> Option<Upstream> {
    let Some(url) = http_url(text) else {
        v.problem(
            key,
            format!("expected an http:// or https:// URL such as \"http://127.0.0.1:3000\", found {text:?}"),
        );
        return None;
    };
    if url.path() != "/" || url.query().is_some() {
        v.problem(
            key,
            format!("expected scheme, host and port only (requests keep their own path), found {text:?}"),
        );
        return None;
    }
    let tls = url.scheme() == "https";
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    // Resolved here: pingora's HttpPeer::new does a blocking lookup and
    // panics on failure, so peers are built from addresses.
    match (host.as_str(), port).to_socket_addrs() {
        Ok(addrs) => {
            let mut addrs: Vec<SocketAddr> = addrs.collect();
            addrs.dedup();
            if addrs.is_empty() {
                v.problem(key, format!("{host:?} resolves to no address"));
                return None;
            }
            Some(Upstream {
                url: text.to_string(),
                named: host.parse::<IpAddr>().is_err(),
                addrs,
                tls,
                sni: host,
                port,
            })
        }
        Err(e) => {
            v.problem(key, format!("cannot resolve {host:?}: {e}"));
            None
        }
    }
}
