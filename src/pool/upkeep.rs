//! The pools' background work: names resolved again, and the active
//! health checks. Nothing here runs on the request path; requests see
//! the results through the pool's atomics and its swapped backend list.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::{Backend, Pool};
use crate::config::HealthCheck;

/// How often names in `upstream` are looked up again: DNS changes (a
/// redeployed app, a failover) reach the pool within this, without a
/// lookup on any request.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// The background service for all pools that need one.
pub struct Upkeep {
    pools: Vec<Arc<Pool>>,
}

impl Upkeep {
    /// The upkeep of `pools`, or `None` if none names a host or has a
    /// health check.
    pub fn of(pools: Vec<Arc<Pool>>) -> Option<Upkeep> {
        let pools: Vec<_> = pools
            .into_iter()
            .filter(|p| p.health_check.is_some() || p.members.iter().any(|m| m.named))
            .collect();
        (!pools.is_empty()).then_some(Upkeep { pools })
    }
}

#[async_trait]
impl BackgroundService for Upkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tasks = tokio::task::JoinSet::new();
        for pool in &self.pools {
            if pool.members.iter().any(|m| m.named) {
                tasks.spawn(resolve(pool.clone()));
            }
            if let Some(check) = pool.health_check.clone() {
                tasks.spawn(check_health(pool.clone(), check));
            }
        }
        let _ = shutdown.changed().await;
        tasks.abort_all();
    }
}

/// Every [`RESOLVE_EVERY`], the pool's names looked up again; a changed
/// set of addresses replaces the backend list (backends that stay keep
/// their state). A failed lookup keeps that URL's addresses.
async fn resolve(pool: Arc<Pool>) {
    let mut tick = tokio::time::interval(RESOLVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now; the load just resolved
    loop {
        tick.tick().await;
        let old = pool.backends();
        let mut addrs: Vec<(usize, SocketAddr)> = Vec::new();
        for (m, u) in pool.members.iter().enumerate() {
            let found = if u.named {
                match tokio::net::lookup_host((u.sni.as_str(), u.port)).await {
                    Ok(a) => a.collect::<Vec<_>>(),
                    Err(e) => {
                        tracing::warn!(url = %u.url, error = %e, "cannot resolve upstream; keeping its addresses");
                        Vec::new()
                    }
                }
            } else {
                u.addrs.clone()
            };
            let found = if found.is_empty() {
                old.iter()
                    .filter(|b| b.member == m)
                    .map(|b| b.addr)
                    .collect()
            } else {
                found
            };
            for a in found {
                if !addrs.contains(&(m, a)) {
                    addrs.push((m, a));
                }
            }
        }
        let same = addrs.len() == old.len()
            && addrs
                .iter()
                .all(|&(m, a)| old.iter().any(|b| b.member == m && b.addr == a));
        if !same {
            tracing::info!(url = %pool.url, addresses = ?addrs.iter().map(|(_, a)| a).collect::<Vec<_>>(), "upstream addresses changed");
            pool.backends.store(Arc::new(pool.build(&addrs, &old)));
        }
    }
}

/// Every `check.interval`, a GET of `check.path` on each backend (by its
/// address, with its URL's host name); a 2xx marks it up, anything else
/// (another status, a refused connection, no answer in time) down.
async fn check_health(pool: Arc<Pool>, check: HealthCheck) {
    let mut tick = tokio::time::interval(check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One client per backend: each pins the name to the backend's address.
    let mut clients: HashMap<(usize, SocketAddr), reqwest::Client> = HashMap::new();
    let timeout = check.interval.min(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let list = pool.backends();
        clients.retain(|k, _| list.iter().any(|b| (b.member, b.addr) == *k));
        let mut round = tokio::task::JoinSet::new();
        for b in list.iter() {
            let u = &pool.members[b.member];
            let client = match clients.entry((b.member, b.addr)) {
                std::collections::hash_map::Entry::Occupied(c) => c.get().clone(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let mut builder = reqwest::Client::builder();
                    // `upstream_ca_file`: the check trusts what requests do.
                    if let Some(ca) = &pool.options.ca {
                        builder = builder.tls_built_in_root_certs(false);
                        for c in ca.iter() {
                            if let Ok(c) = reqwest::Certificate::from_der(c.borrow_raw_cert()) {
                                builder = builder.add_root_certificate(c);
                            }
                        }
                    }
                    let built = builder
                        .resolve(&u.sni, b.addr)
                        .timeout(timeout)
                        .redirect(reqwest::redirect::Policy::none())
                        .no_proxy()
                        .user_agent(concat!(
                            "applegate/",
                            env!("CARGO_PKG_VERSION"),
                            " health check"
                        ))
                        .build();
                    match built {
                        Ok(c) => slot.insert(c).clone(),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot build the health check client");
                            continue;
                        }
                    }
                }
            };
            let url = format!("{}{}", u.url.trim_end_matches('/'), check.path);
            round.spawn(probe(b.clone(), client, url, pool.url.clone()));
        }
        while round.join_next().await.is_some() {}
    }
}

/// One check of one backend; logs changes only.
async fn probe(b: Arc<Backend>, client: reqwest::Client, url: String, pool: String) {
    let status = client.get(&url).send().await.map(|r| r.status());
    let healthy = status.as_ref().is_ok_and(|s| s.is_success());
    if healthy {
        // A passing check also ends a passive skip: it is back.
        b.down_until.store(0, Relaxed);
    }
    let was_unhealthy = b.unhealthy.swap(!healthy, Relaxed);
    if was_unhealthy == healthy {
        match status {
            Ok(s) if healthy => {
                tracing::info!(upstream = %b.addr, url = %pool, status = s.as_u16(), "upstream passes its health check again")
            }
            Ok(s) => {
                tracing::warn!(upstream = %b.addr, url = %pool, status = s.as_u16(), "upstream fails its health check; skipping it")
            }
            Err(e) => {
                tracing::warn!(upstream = %b.addr, url = %pool, error = %e, "upstream fails its health check; skipping it")
            }
        }
    }
}
