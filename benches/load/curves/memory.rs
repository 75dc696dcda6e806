//! The idle curve: memory against idle keep-alive connections, for
//! applegate, bare pingora and nginx, each freshly started with room for
//! the most connections.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use applegate::kit;

use super::super::bench::Bench;
use super::super::procs::{bare_proxy, nginx, nginx_proxy_conf, rss_kib, wait_for, Proc};
use super::super::wrk::wrk;
use super::super::Server;
use super::super::{idle, CONNECTIONS};
use super::{gateway, Plan, APPLEGATE, BARE, NGINX};

/// The idle curve: per server, (connections asked, RSS in KiB, open) at
/// each point, and how many were still open after the last.
pub struct Idle {
    pub servers: Vec<IdleServer>,
    /// The open-file limit, when it capped points.
    pub limited: Option<u64>,
    pub secs: f64,
}

pub struct IdleServer {
    pub name: &'static str,
    pub points: Vec<(usize, Option<(u64, usize)>)>,
    pub still_open: usize,
}

/// The idle curve: for each server in turn (freshly started, room for the
/// most connections, warmed up by one wrk run), connections opened up to
/// each point and held, RSS read 1 s after each.
pub fn curve(bench: &Bench, plan: &Plan, limit: u64, cookie: &str) -> Idle {
    let started = Instant::now();
    let most = plan.idle.iter().copied().max().unwrap_or(0);
    let room = most + 1_000;
    let up = bench.target(Server::Upstream).port;
    let mut servers = Vec::new();
    for (k, name) in [APPLEGATE, BARE, NGINX].into_iter().enumerate() {
        let (proc, port) = match name {
            APPLEGATE => {
                let (p, port, _, _) = gateway(bench, "idle", |t| {
                    let server = t
                        .entry("server")
                        .or_insert_with(|| toml::Table::new().into());
                    if let toml::Value::Table(s) = server {
                        s.insert("max_connections".into(), (room as i64).into());
                        // As long as nginx's (`keepalive_timeout 120s`).
                        s.insert("keepalive_timeout".into(), "120s".into());
                    }
                });
                (p, port)
            }
            BARE => {
                let port = kit::free_port();
                let log = bench.dir.join("bare-idle.log");
                (bare_proxy("bare pingora (idle)", &log, port, up), port)
            }
            _ => {
                let port = kit::free_port();
                let conf =
                    nginx_proxy_conf(&bench.dir, "nginx-idle", port, up, &["/".into()], room);
                let p = nginx("nginx (idle)", &bench.dir, &conf, 0);
                wait_for(port, "nginx (idle)");
                (p, port)
            }
        };
        let url = format!("http://127.0.0.1:{port}/");
        let headers = [cookie.to_string()];
        wrk(name, &url, &headers, CONNECTIONS, plan.warm, 0, None);
        // Each server its own source addresses: the connections closed
        // after the previous server's curve leave their ports in TIME_WAIT.
        let from: Vec<Ipv4Addr> = (1..=3)
            .map(|i| Ipv4Addr::new(127, 0, k as u8 + 1, i))
            .collect();
        servers.push(hold(
            name,
            &proc,
            port,
            &bench.cookie,
            &plan.idle,
            limit,
            &from,
        ));
        drop(proc);
    }
    Idle {
        servers,
        limited: plan.idle.iter().any(|n| !fits(*n, limit)).then_some(limit),
        secs: started.elapsed().as_secs_f64(),
    }
}

/// Whether `n` connections fit an open-file limit of `limit` at each end.
fn fits(n: usize, limit: u64) -> bool {
    n as u64 + 1_000 <= limit
}

/// Opens connections to `port` up to each of `points` (ascending), reading
/// `proc`'s RSS at each; a point beyond the open-file limit gets as many
/// as fit.
fn hold(
    name: &'static str,
    proc: &Proc,
    port: u16,
    cookie: &str,
    points: &[usize],
    limit: u64,
    from: &[Ipv4Addr],
) -> IdleServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conns = Vec::new();
        let mut asked = 0;
        let mut out = Vec::new();
        for &n in points {
            // A point beyond the open-file limit holds what fits, and says
            // so (the table shows how many were open).
            let upto = if fits(n, limit) {
                n
            } else {
                (limit as usize).saturating_sub(1_000)
            };
            // The first point is measured even with nothing to open (the
            // 0 point: the server's RSS after its warm-up); a later one
            // with no more to open than the last (a capped point) is not.
            if upto < asked || (upto == asked && !out.is_empty()) {
                out.push((n, None));
                continue;
            }
            let more = idle::open(port, cookie, asked..upto, from).await;
            asked = upto;
            conns.extend(more);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss = rss_kib(proc.pid());
            println!(
                "    {name}: {:.1} MiB with {} idle connections ({n} asked)",
                rss as f64 / 1024.0,
                conns.len()
            );
            out.push((n, Some((rss, conns.len()))));
        }
        let still_open = conns.iter().filter(|c| idle::still_open(c)).count();
        IdleServer {
            name,
            points: out,
            still_open,
        }
    })
}
