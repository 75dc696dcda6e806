//! How cost grows (issue #11, item 5): four curves, each beside nginx doing
//! the same work where nginx can, in the same run.
//!
//! - **connections**: authenticated req/s, p99 and CPU per request at 1,
//!   16, 64, 256 and 1,024 concurrent connections (the run's applegate and
//!   nginx proxy);
//! - **routes**: the same with 1, 100 and 10,000 routes in the config (path
//!   prefixes `/r00000/`…, all to the upstream), each request matching the
//!   last route declared; beside nginx with as many `location` blocks;
//! - **revocations**: the same with 0, 100,000 and 1,000,000 revocations in
//!   the state store (half sessions, half users; none is the benchmark's);
//!   nginx keeps no such set, so applegate is shown against its own 0 point;
//! - **idle**: RSS with 0, 1,000, 10,000 and 50,000 idle keep-alive
//!   connections, each after one authenticated request: applegate, bare
//!   pingora and nginx, each freshly started with room for them.
//!
//! The wrk points run `rounds` times for `secs` each, points and servers
//! interleaved as the scenarios are, and each figure is the median.

mod memory;
mod report;
mod revoked;

use std::path::Path;
use std::time::Instant;

use applegate::kit;

pub use memory::{Idle, IdleServer};
pub use report::{routes_table, section, write_svgs};

use super::bench::Bench;
use super::procs::{nginx, nginx_proxy_conf, raise_fd_limit, rss_kib, wait_for, Proc};
use super::wrk::{median, wrk, Run};
use super::{Sends, Server, CONNECTIONS};

/// The points of each curve and how long each is run.
pub struct Plan {
    pub connections: Vec<u32>,
    pub routes: Vec<usize>,
    pub revoked: Vec<usize>,
    pub idle: Vec<usize>,
    pub rounds: usize,
    pub secs: u64,
    pub warm: u64,
}

impl Plan {
    /// The points, 3 s runs, the median of 3; `--quick` shrinks
    /// every curve (fewer and smaller points, one 1 s run) for a smoke test.
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                connections: vec![1, 64, 256],
                routes: vec![1, 1_000],
                revoked: vec![0, 10_000],
                idle: vec![0, 1_000, 5_000],
                rounds: 1,
                secs: 1,
                warm: 1,
            }
        } else {
            Plan {
                connections: vec![1, 16, 64, 256, 1_024],
                routes: vec![1, 100, 10_000],
                revoked: vec![0, 100_000, 1_000_000],
                idle: vec![0, 1_000, 10_000, 50_000],
                rounds: 3,
                secs: 3,
                warm: 1,
            }
        }
    }

    /// Open files each end needs: the most idle connections, and room.
    pub fn files(&self) -> u64 {
        self.idle.iter().max().map_or(0, |n| *n as u64) * 2 + 10_000
    }
}

/// One point of a wrk curve: the median run of each server there, and for
/// a point with its own gateway, how long it took to listen and its RSS then.
pub struct Point {
    pub x: usize,
    pub runs: Vec<Run>,
    pub start_secs: Option<f64>,
    pub rss_kib: Option<u64>,
}

/// A wrk curve: the servers (in the order of each point's runs) and points.
pub struct Curve {
    pub servers: Vec<&'static str>,
    pub points: Vec<Point>,
    /// Wall-clock seconds the curve took.
    pub secs: f64,
}

pub struct Curves {
    pub plan: Plan,
    pub connections: Curve,
    pub routes: Curve,
    pub revoked: Curve,
    pub idle: Idle,
    /// The state files' writing: (revocations, seconds so far).
    pub filled: Vec<(usize, f64)>,
}

pub const APPLEGATE: &str = "applegate";
pub const NGINX: &str = "nginx proxy";
pub const BARE: &str = "bare pingora";

/// One wrk load of a point.
struct Load {
    server: &'static str,
    url: String,
    pid: u32,
    connections: u32,
}

/// Runs the four curves against `bench`'s servers and its own.
pub fn run(bench: &Bench, plan: Plan) -> Curves {
    let limit = raise_fd_limit(plan.files());
    let cookie = bench.header(Sends::Cookie);
    println!(
        "\nload: curves, {} interleaved round(s) of {} s per point (after {} s warm-up)",
        plan.rounds, plan.secs, plan.warm
    );

    println!("  connections: {:?}", plan.connections);
    let started = Instant::now();
    let (ag, ngx) = (bench.target(Server::Applegate), bench.target(Server::Nginx));
    let loads = plan
        .connections
        .iter()
        .map(|&c| {
            [(APPLEGATE, ag), (NGINX, ngx)]
                .map(|(server, t)| Load {
                    server,
                    url: format!("http://127.0.0.1:{}/", t.port),
                    pid: t.pid.expect("a server under test runs as a process"),
                    connections: c,
                })
                .into()
        })
        .collect::<Vec<Vec<Load>>>();
    let runs = interleave(&plan, &loads, &cookie);
    let connections = Curve {
        servers: vec![APPLEGATE, NGINX],
        points: plan
            .connections
            .iter()
            .zip(runs)
            .map(|(&c, runs)| Point {
                x: c as usize,
                runs,
                start_secs: None,
                rss_kib: None,
            })
            .collect(),
        secs: started.elapsed().as_secs_f64(),
    };

    let routes = routes(bench, &plan, &cookie);

    println!("  revocations: {:?}", plan.revoked);
    let started = Instant::now();
    // On a memory file system where there is one: the files are written
    // one committed (fsync'd) revocation at a time, as the gateway writes
    // them, and a million fsyncs to disk would take a quarter of an hour.
    let shm = Path::new("/dev/shm");
    let store_dir = if shm.is_dir() {
        shm
    } else {
        bench.dir.as_path()
    }
    .join(format!("applegate-load-{}", std::process::id()));
    std::fs::create_dir_all(&store_dir).unwrap();
    let now = applegate::clock::system().now();
    let filled = revoked::fill(&store_dir, &plan.revoked, now);
    let mut procs = Vec::new();
    let mut loads = Vec::new();
    let mut starts = Vec::new();
    for f in &filled {
        let state = f.path.to_str().expect("a UTF-8 path").to_string();
        let (gw, port, secs, rss) = gateway(bench, &format!("revoked-{}", f.size), |t| {
            kit::set(t, "state", "path", state.clone());
        });
        loads.push(vec![Load {
            server: APPLEGATE,
            url: format!("http://127.0.0.1:{port}/"),
            pid: gw.pid(),
            connections: CONNECTIONS,
        }]);
        starts.push((secs, rss));
        procs.push(gw);
    }
    let runs = interleave(&plan, &loads, &cookie);
    drop(procs);
    let _ = std::fs::remove_dir_all(&store_dir);
    let revoked = Curve {
        servers: vec![APPLEGATE],
        points: points(&plan.revoked, runs, starts),
        secs: started.elapsed().as_secs_f64(),
    };

    println!(
        "  idle connections: {:?} (open-file limit {limit})",
        plan.idle
    );
    let idle = memory::curve(bench, &plan, limit, &cookie);
    Curves {
        plan,
        connections,
        routes,
        revoked,
        idle,
        filled: filled.iter().map(|f| (f.size, f.secs)).collect(),
    }
}

/// The routes curve alone (also `--only routes`): a gateway and an nginx
/// of its own per point, `cookie` the run's session.
pub fn routes(bench: &Bench, plan: &Plan, cookie: &str) -> Curve {
    println!("  routes: {:?}", plan.routes);
    let started = Instant::now();
    let up = bench.target(Server::Upstream).port;
    let mut procs = Vec::new();
    let mut loads = Vec::new();
    let mut starts = Vec::new();
    for &n in &plan.routes {
        let prefixes: Vec<String> = (0..n).map(|i| format!("/r{i:05}/")).collect();
        let path = format!("{}item", prefixes[n - 1]);
        let (gw, port, secs, rss) = gateway(bench, &format!("routes-{n}"), |t| {
            let routes = prefixes
                .iter()
                .map(|p| {
                    let mut r = toml::Table::new();
                    r.insert("path".into(), p.clone().into());
                    r.insert("upstream".into(), format!("http://127.0.0.1:{up}").into());
                    toml::Value::Table(r)
                })
                .collect();
            t.insert("routes".into(), toml::Value::Array(routes));
        });
        let ngx_port = kit::free_port();
        let name = format!("nginx-routes-{n}");
        let conf = nginx_proxy_conf(&bench.dir, &name, ngx_port, up, &prefixes, 16384);
        let ngx = nginx("nginx (routes)", &bench.dir, &conf, 0);
        wait_for(ngx_port, "nginx (routes)");
        loads.push(vec![
            Load {
                server: APPLEGATE,
                url: format!("http://127.0.0.1:{port}{path}"),
                pid: gw.pid(),
                connections: CONNECTIONS,
            },
            Load {
                server: NGINX,
                url: format!("http://127.0.0.1:{ngx_port}{path}"),
                pid: ngx.pid(),
                connections: CONNECTIONS,
            },
        ]);
        starts.push((secs, rss));
        procs.push(gw);
        procs.push(ngx);
    }
    let runs = interleave(plan, &loads, cookie);
    drop(procs);
    Curve {
        servers: vec![APPLEGATE, NGINX],
        points: points(&plan.routes, runs, starts),
        secs: started.elapsed().as_secs_f64(),
    }
}

/// Each point's loads in `plan.rounds` interleaved rounds; the median run
/// of each server at each point.
fn interleave(plan: &Plan, loads: &[Vec<Load>], cookie: &str) -> Vec<Vec<Run>> {
    let mut all: Vec<Vec<Vec<Run>>> = loads.iter().map(|p| vec![Vec::new(); p.len()]).collect();
    for round in 0..plan.rounds {
        for (p, point) in loads.iter().enumerate() {
            for (s, l) in point.iter().enumerate() {
                let warm = if round == 0 { plan.warm } else { 0 };
                let name = format!("{}, {}", l.server, l.url);
                let headers = [cookie.to_string()];
                let r = wrk(
                    &name,
                    &l.url,
                    &headers,
                    l.connections,
                    plan.secs,
                    warm,
                    Some(l.pid),
                );
                all[p][s].push(r);
            }
        }
    }
    all.into_iter()
        .map(|p| p.into_iter().map(median).collect())
        .collect()
}

fn points(xs: &[usize], runs: Vec<Vec<Run>>, starts: Vec<(f64, u64)>) -> Vec<Point> {
    xs.iter()
        .zip(runs)
        .zip(starts)
        .map(|((&x, runs), (secs, rss))| Point {
            x,
            runs,
            start_secs: Some(secs),
            rss_kib: Some(rss),
        })
        .collect()
}

/// A gateway of its own: the run's config changed by `edit`, started,
/// checked to answer the benchmark's session; with its port, the seconds
/// it took to listen and its RSS then.
fn gateway(
    bench: &Bench,
    name: &str,
    edit: impl FnOnce(&mut toml::Table),
) -> (Proc, u16, f64, u64) {
    let port = kit::free_port();
    let mut t: toml::Table = bench
        .gateway_toml(port, super::bench::Logging::Quiet)
        .parse()
        .expect("the bench writes TOML");
    edit(&mut t);
    let started = Instant::now();
    let p = bench.start_gateway(
        "applegate (curve)",
        &format!("{name}.toml"),
        &t.to_string(),
        port,
    );
    let secs = started.elapsed().as_secs_f64();
    let rss = rss_kib(p.pid());
    println!(
        "    {name}: listening after {secs:.2} s, RSS {:.1} MiB",
        rss as f64 / 1024.0
    );
    (p, port, secs, rss)
}
