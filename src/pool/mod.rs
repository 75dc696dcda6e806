//! An upstream pool: its backends (every address of every URL), which one
//! the next request tries, and which are skipped. Routes to the same
//! upstream share one ([`Same`]), so its health marks and checks are per
//! upstream, not per route.
//!
//! Picking is on the per-request path, so it takes no lock and allocates
//! nothing of its own: the backend list is read through an [`ArcSwap`]
//! (swapped only by the background resolution, [`upkeep`]), round robin
//! is one atomic counter, least connections reads one counter per backend,
//! and a backend's health is two atomics. The `Box<HttpPeer>` pingora asks
//! for is the one allocation, as with a single upstream.
//!
//! Health, passive: an address that fails to connect is skipped for
//! `upstream_fail_timeout` (nginx's `max_fails=1 fail_timeout`), and the
//! request that hit it is tried on another backend, which is safe because
//! nothing was sent ([`Pool::failed`], from pingora's `fail_to_connect`).
//! Active, when `health_check` is set: a GET of that path every interval,
//! in the background; anything but a 2xx marks the backend down until a
//! check passes. When every backend is marked down the pool tries them
//! anyway: a mark may be stale, and refusing outright helps no one.
//!
//! pingora-load-balancing was considered and not used: its `select` builds
//! a `HashSet` and SipHashes every candidate per call, clones the
//! `Backend`, has no least-connections selection (a TODO in its source)
//! and no passive health; what it would add (the background loop, an HTTP
//! check) is a few lines here ([`upkeep`]).

pub mod upkeep;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use pingora::upstreams::peer::{HttpPeer, PeerOptions};

use crate::config::{self, Balance, HealthCheck};

/// One upstream's pool.
pub struct Pool {
    /// The URLs as written, for logs.
    pub url: String,
    balance: Balance,
    fail_timeout: Duration,
    /// The zero of the `down_until` times (an `Instant` in an atomic).
    epoch: Instant,
    /// Round robin's counter; least connections' tie-breaker.
    next: AtomicUsize,
    backends: ArcSwap<Vec<Arc<Backend>>>,
    /// The URLs, for the background resolution.
    members: Vec<config::Upstream>,
    /// Timeouts and ALPN of the route, for every backend's peer.
    options: PeerOptions,
    /// Every peer's `group_key`: 0, or with `upstream_ca_file` a hash of
    /// the CA certificates (see [`ca_group`]).
    group_key: u64,
    health_check: Option<HealthCheck>,
}

/// One address of the pool.
pub struct Backend {
    /// Built once; cloned per request.
    pub peer: HttpPeer,
    pub addr: SocketAddr,
    /// Which URL of the pool it comes from.
    member: usize,
    /// Milliseconds after the pool's epoch until which it is skipped
    /// after a failed connect (0: never failed).
    down_until: AtomicU64,
    /// Whether the last active health check failed.
    unhealthy: AtomicBool,
    /// Requests in flight to it (counted for least connections only).
    active: AtomicUsize,
}

/// What one request has tried so far (kept in the request context).
#[derive(Default)]
pub struct Attempt {
    /// Bit `i`: backend `i` was tried (only the first 64 are tracked;
    /// pingora bounds the retries anyway).
    tried: u64,
    /// Counts the request as in flight on its backend (least connections).
    lease: Option<Lease>,
}

/// A request in flight on a backend; dropping it (the next try, or the
/// end of the request with its context) counts it out.
struct Lease(Arc<Backend>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

impl Pool {
    /// The pool of `route`, with the addresses resolved at load.
    pub fn new(route: &config::Route) -> Pool {
        let mut options = PeerOptions::new();
        options.connection_timeout = Some(route.connect_timeout);
        options.read_timeout = Some(route.read_timeout);
        options.write_timeout = Some(route.read_timeout);
        if route.upstream_http2 {
            // h2 only: offered by ALPN over TLS; over plain TCP pingora
            // speaks h2c with prior knowledge, as no ALPN can ask.
            options.alpn = pingora::protocols::ALPN::H2;
        }
        // `upstream_ca_file`: the peer's certificate must chain to these
        // instead of the system's roots; still verified, host name too.
        options.ca = route.upstream.ca.as_ref().map(|ca| ca.certs.clone());
        Pool::with_options(&route.upstream, options)
    }

    /// The pool of `u` with peer `options`.
    pub fn with_options(u: &config::Upstreams, options: PeerOptions) -> Pool {
        let pool = Pool {
            url: u.url.clone(),
            balance: u.balance,
            fail_timeout: u.fail_timeout,
            epoch: Instant::now(),
            next: AtomicUsize::new(0),
            backends: ArcSwap::from_pointee(Vec::new()),
            members: u.members.clone(),
            group_key: ca_group(&options),
            options,
            health_check: u.health_check.clone(),
        };
        let addrs: Vec<(usize, SocketAddr)> = u
            .members
            .iter()
            .enumerate()
            .flat_map(|(m, u)| u.addrs.iter().map(move |a| (m, *a)))
            .collect();
        pool.backends.store(Arc::new(pool.build(&addrs, &[])));
        pool
    }

    /// The peer for this request's next try, or `None` when every backend
    /// has been tried. Skips backends marked down unless all are.
    pub fn pick(&self, attempt: &mut Attempt) -> Option<Box<HttpPeer>> {
        let list = self.backends.load();
        let n = list.len();
        let tried = |i: usize| i < 64 && attempt.tried & (1 << i) != 0;
        let i = if n == 1 {
            // One backend: nothing to balance or skip to.
            (!tried(0)).then_some(0)?
        } else {
            let start = self.next.fetch_add(1, Relaxed);
            let mut now = None;
            let mut choose = |healthy_only: bool| {
                let mut candidates = (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| !tried(i) && (!healthy_only || self.up(&list[i], &mut now)));
                match self.balance {
                    Balance::RoundRobin => candidates.next(),
                    Balance::LeastConn => candidates.min_by_key(|&i| list[i].active.load(Relaxed)),
                }
            };
            choose(true).or_else(|| choose(false))?
        };
        if i < 64 {
            attempt.tried |= 1 << i;
        }
        let b = &list[i];
        if self.balance == Balance::LeastConn {
            b.active.fetch_add(1, Relaxed);
            attempt.lease = Some(Lease(b.clone()));
        }
        Some(Box::new(b.peer.clone()))
    }

    /// A connect to `peer` failed (nothing was sent): its address is
    /// skipped for `upstream_fail_timeout`. Returns whether the request
    /// has another backend to try.
    pub fn failed(&self, peer: &HttpPeer, attempt: &Attempt) -> bool {
        let list = self.backends.load();
        let addr = peer._address.as_inet();
        if let Some(b) = list.iter().find(|b| Some(&b.addr) == addr) {
            let now = self.now_ms();
            let was = b
                .down_until
                .swap(now + self.fail_timeout.as_millis() as u64, Relaxed);
            if was <= now {
                tracing::warn!(upstream = %b.addr, url = %self.members[b.member].url,
                    skip_s = self.fail_timeout.as_secs(), "cannot connect to upstream; skipping it");
            }
        }
        (0..list.len().min(64)).any(|i| attempt.tried & (1 << i) == 0)
    }

    /// The backends now.
    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends.load_full()
    }

    /// Whether `b` is up: not failed within `upstream_fail_timeout` and not
    /// failing its health check. `now` is read once per pick, if needed.
    fn up(&self, b: &Backend, now: &mut Option<u64>) -> bool {
        if b.unhealthy.load(Relaxed) {
            return false;
        }
        let until = b.down_until.load(Relaxed);
        until == 0 || until <= *now.get_or_insert_with(|| self.now_ms())
    }

    /// Milliseconds since the epoch, at least 1 (0 means "never failed").
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Backends for `addrs` (URL index, address), keeping the state of
    /// those already in `old`.
    fn build(&self, addrs: &[(usize, SocketAddr)], old: &[Arc<Backend>]) -> Vec<Arc<Backend>> {
        addrs
            .iter()
            .map(|&(member, addr)| {
                if let Some(b) = old.iter().find(|b| b.member == member && b.addr == addr) {
                    return b.clone();
                }
                let u = &self.members[member];
                let mut peer = HttpPeer::new(addr, u.tls, u.sni.clone());
                peer.options = self.options.clone();
                peer.group_key = self.group_key;
                Arc::new(Backend {
                    peer,
                    addr,
                    member,
                    down_until: AtomicU64::new(0),
                    unhealthy: AtomicBool::new(false),
                    active: AtomicUsize::new(0),
                })
            })
            .collect()
    }
}

/// What makes two routes' pools the same: the URLs (and the addresses
/// they had at load), how they are balanced and checked, the CA, and the
/// route's timeouts and HTTP version, which go into every peer. Routes
/// equal in all of it share one [`Pool`] ([`crate::proxy::route::Routes`]):
/// one backend list, one set of health marks and checks per upstream,
/// however many routes lead there.
#[derive(PartialEq, Eq, Hash)]
pub struct Same {
    members: Vec<(String, Vec<SocketAddr>)>,
    least_conn: bool,
    fail_timeout: Duration,
    health_check: Option<(String, Duration)>,
    /// The CA file and a hash of its certificates ([`ca_group`]).
    ca: Option<(std::path::PathBuf, u64)>,
    connect_timeout: Duration,
    read_timeout: Duration,
    http2: bool,
}

impl Same {
    /// What the pool of `route` is built from.
    pub fn of(route: &config::Route) -> Same {
        let u = &route.upstream;
        Same {
            members: u
                .members
                .iter()
                .map(|m| (m.url.clone(), m.addrs.clone()))
                .collect(),
            least_conn: u.balance == Balance::LeastConn,
            fail_timeout: u.fail_timeout,
            health_check: u
                .health_check
                .as_ref()
                .map(|c| (c.path.clone(), c.interval)),
            ca: u.ca.as_ref().map(|ca| {
                let mut options = PeerOptions::new();
                options.ca = Some(ca.certs.clone());
                (ca.file.clone(), ca_group(&options))
            }),
            connect_timeout: route.connect_timeout,
            read_timeout: route.read_timeout,
            http2: route.upstream_http2,
        }
    }
}

/// pingora reuses an upstream connection for any peer of the same address,
/// SNI and verification flags: its reuse hash leaves out the peer's CA. A
/// route without `upstream_ca_file` could then be handed a connection that
/// only another route's CA made trusted (and the other way round). The
/// CA's certificates go into `group_key`, which the hash does include, so
/// connections are shared only under the same trust.
fn ca_group(options: &PeerOptions) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(ca) = &options.ca else { return 0 };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in ca.iter() {
        c.borrow_raw_cert().hash(&mut h);
    }
    h.finish().max(1)
}

impl Backend {
    /// Whether its last active health check failed.
    pub fn unhealthy(&self) -> bool {
        self.unhealthy.load(Relaxed)
    }
}

#[cfg(test)]
mod tests;
