//! The load benchmark: applegate against a plain nginx reverse proxy, on
//! this machine, in one run.
//!
//!     bash benches/load.sh                  # from a fresh clone: installs, builds, runs
//!     cargo bench --bench load              # about 3 minutes
//!     cargo bench --bench load -- --quick   # shorter runs, for a smoke test
//!     cargo bench --bench load -- --soak    # adds a 10-minute RSS soak
//!     cargo bench --bench load -- --curves  # only the curves of how cost grows
//!     cargo bench --bench load -- --no-curves  # everything but the curves
//!     cargo bench --bench load -- --only routes  # only the routes curve, printed (RESULTS.md kept)
//!     cargo bench --bench load -- --only instructions  # only the instruction counts, printed
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
//!
//! The benchmark is a list of named [`Scenario`]s over the servers it
//! starts; [`bench`] starts the servers, [`procs`] starts and measures
//! processes, [`wrk`] runs wrk, [`measure`] the sign-ins, idle connections
//! and soak, and [`report`] writes the results; [`curves`] measures how
//! cost grows (connections, routes, revocations, idle connections) and
//! [`svg`] draws the charts.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
#[path = "../../tests/common/browser.rs"]
mod browser;
mod curves;
mod idle;
mod instructions;
mod measure;
mod procs;
mod report;
mod svg;
mod wrk;

use std::time::{Duration, Instant};

use applegate::kit;

use bench::{Bench, Target};
use wrk::{expect_status, median, Run};

const CONNECTIONS: u32 = 64;
/// Interleaved rounds per scenario; figures are medians over them.
const ROUNDS: usize = 3;
const IDLE_CONNECTIONS: usize = 10_000;
const BUNDLE_ID: &str = "com.example.ios";
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const APPLEGATE: &str = env!("CARGO_BIN_EXE_applegate");
/// Clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The servers a scenario can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// The upstream app itself (nginx answering 1 KiB): the limit.
    Upstream,
    /// The baseline: a plain nginx reverse proxy.
    Nginx,
    /// A pingora passthrough with none of our code.
    Bare,
    /// applegate, signed in for real.
    Applegate,
    /// The same gateway at the default log level (info), access log off.
    ApplegateInfo,
    /// The same at info with its access log on (to a file).
    ApplegateAccessLog,
    /// The same gateway with the Redis state store (`redis-server` started
    /// by the bench).
    ApplegateRedis,
}

/// What a scenario's requests carry.
#[derive(Debug, Clone, Copy)]
enum Sends {
    /// The session cookie of a real sign-in. Every proxy gets it (nginx
    /// and bare pingora pass it through; applegate opens it).
    Cookie,
    /// A browser navigation without a session.
    Html,
    /// A native app's id_token as a bearer token.
    Bearer,
}

/// One named load: the server under test, the request, the answer it must
/// give (checked once before timing), and the server whose CPU is measured.
#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    server: Server,
    path: &'static str,
    sends: Sends,
    expect: u16,
}

/// The interleaved scenarios, in the order of the table.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: report::DIRECT,
        server: Server::Upstream,
        path: "/",
        sends: Sends::Cookie,
        expect: 200,
    },
    Scenario {
        name: report::NGINX,
        server: Server::Nginx,
        path: "/",
        sends: Sends::Cookie,
        expect: 200,
    },
    Scenario {
        name: report::BARE,
        server: Server::Bare,
        path: "/",
        sends: Sends::Cookie,
        expect: 200,
    },
    Scenario {
        name: report::AUTHENTICATED,
        server: Server::Applegate,
        path: "/",
        sends: Sends::Cookie,
        expect: 200,
    },
    Scenario {
        name: "applegate, sign-in redirect",
        server: Server::Applegate,
        path: "/",
        sends: Sends::Html,
        expect: 302,
    },
    Scenario {
        name: report::FORWARD_AUTH,
        server: Server::Applegate,
        path: "/oauth2/auth",
        sends: Sends::Cookie,
        expect: 202,
    },
    Scenario {
        name: report::BEARER,
        server: Server::Applegate,
        path: "/api/items",
        sends: Sends::Bearer,
        expect: 200,
    },
    Scenario {
        name: report::INFO_LOG,
        server: Server::ApplegateInfo,
        path: "/",
        sends: Sends::Cookie,
        expect: 200,
    },
    Scenario {
        name: report::ACCESS_LOG,
        server: Server::ApplegateAccessLog,
        path: "/",
        sends: Sends::Cookie,
        expect: 200,
    },
];

/// Run once after the rounds, against a gateway on the Redis store: the
/// revocation check stays a memory lookup, so no cost over the embedded
/// store is expected.
const REDIS: Scenario = Scenario {
    name: "applegate, authenticated, Redis store",
    server: Server::ApplegateRedis,
    path: "/",
    sends: Sends::Cookie,
    expect: 200,
};

/// Whether a run measures the curves of how cost grows ([`curves`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curves {
    /// After the scenarios (the default).
    Also,
    /// Only the curves (`--curves`): their part of RESULTS.md is rewritten,
    /// the rest kept.
    Only,
    /// Not at all (`--no-curves`): their part of RESULTS.md is kept.
    Off,
}

/// How the benchmark was asked to run.
pub struct Mode {
    quick: bool,
    soak: bool,
    hold: bool,
    curves: Curves,
    /// Seconds per wrk run, and of warm-up before a scenario's first.
    secs: u64,
    warm: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--bare-proxy") {
        procs::bare::run(&args[1], &args[2]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (secs, warm) = if quick { (2, 1) } else { (6, 2) };
    let mode = Mode {
        quick,
        soak: args.iter().any(|a| a == "--soak"),
        hold: args.iter().any(|a| a == "--hold"),
        curves: if args.iter().any(|a| a == "--curves") {
            Curves::Only
        } else if args.iter().any(|a| a == "--no-curves") {
            Curves::Off
        } else {
            Curves::Also
        },
        secs,
        warm,
    };
    procs::ensure_tools();
    procs::pin_self();
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("applegate-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("load: {} (logs in {})", report::machine(), dir.display());

    let mut bench = bench::start(&dir);
    for sc in SCENARIOS.iter().filter(|s| {
        matches!(
            s.server,
            Server::Applegate | Server::ApplegateInfo | Server::ApplegateAccessLog
        )
    }) {
        bench.check(sc);
    }
    expect_status(&bench.url(Server::Applegate, "/api/items"), &[], 401);
    if mode.hold {
        hold(&bench);
        return;
    }
    if args
        .windows(2)
        .any(|w| w[0] == "--only" && w[1] == "routes")
    {
        // One curve, to see a change to route matching or per-route memory
        // without the rest: printed only, as the other curves' part of
        // RESULTS.md would have nothing to replace it with.
        let plan = curves::Plan::new(mode.quick);
        let routes = curves::routes(&bench, &plan, &bench.header(Sends::Cookie));
        println!("\n{}", curves::routes_table(&routes));
        drop(bench);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if args
        .windows(2)
        .any(|w| w[0] == "--only" && w[1] == "instructions")
    {
        // The instruction counts alone (about a minute), printed.
        instructions::measure(&bench);
        drop(bench);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let results = (mode.curves != Curves::Only).then(|| measure(&mut bench, &mode));
    let curves =
        (mode.curves != Curves::Off).then(|| curves::run(&bench, curves::Plan::new(mode.quick)));
    match results {
        Some(results) => report::write(&results, curves.as_ref(), &mode, started.elapsed()),
        None => report::write_curves(curves.as_ref().expect("asked for"), &mode),
    }
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything is up and signed in: try your own load, or profile.
fn hold(bench: &Bench) {
    println!(
        "\nload: holding for 10 minutes (Ctrl-C to stop). applegate pid {} on core 0:\n  \
         taskset -c 1 wrk -t1 -c64 -d10s -H '{}' {}\n  \
         bearer: taskset -c 1 wrk -t1 -c64 -d10s -H '{}' {}\n  \
         nginx proxy: {}   bare pingora: {}",
        bench.target(Server::Applegate).pid.unwrap_or(0),
        bench.header(Sends::Cookie),
        bench.url(Server::Applegate, "/"),
        bench.header(Sends::Bearer),
        bench.url(Server::Applegate, "/api/"),
        bench.url(Server::Nginx, "/"),
        bench.url(Server::Bare, "/")
    );
    std::thread::sleep(Duration::from_secs(600));
}

/// The scenarios in interleaved rounds, the access log, sign-ins, idle
/// connections and the soak.
fn measure(bench: &mut Bench, mode: &Mode) -> report::Results {
    let (secs, warm) = (mode.secs, mode.warm);
    println!(
        "\nload: wrk, {CONNECTIONS} connections, {ROUNDS} interleaved rounds of {secs} s per scenario (after {warm} s warm-up); servers on core 0, clients on core 1"
    );
    // The scenarios are run in ROUNDS interleaved rounds and each figure is
    // the median over them: on a shared 2-core VM a single run of a server
    // can land in a noisy second, and interleaving spreads that over all.
    let mut all: Vec<Vec<Run>> = vec![Vec::new(); SCENARIOS.len()];
    for round in 0..ROUNDS {
        println!("  round {}/{ROUNDS}", round + 1);
        for (i, sc) in SCENARIOS.iter().enumerate() {
            all[i].push(bench.run(sc, secs, if round == 0 { warm } else { 0 }));
        }
    }
    let mut runs: Vec<Run> = all.into_iter().map(median).collect();

    // The Redis store: the same gateway, its state shared through Redis.
    let redis = kit::redis::RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let port = kit::free_port();
    let mut t: toml::Table = bench
        .gateway_toml(port, bench::Logging::Quiet)
        .parse()
        .unwrap();
    t.remove("state");
    kit::set(&mut t, "state", "backend", "redis".into());
    kit::set(&mut t, "state", "redis_url", redis.url());
    let shared = bench.start_gateway(
        "applegate (Redis store)",
        "applegate-redis.toml",
        &t.to_string(),
        port,
    );
    let pid = Some(shared.pid());
    bench
        .targets
        .push((Server::ApplegateRedis, Target { port, pid }));
    bench.check(&REDIS);
    runs.push(bench.run(&REDIS, secs, warm));
    drop(shared);
    drop(redis);

    // The paired comparisons again, by instruction count (no spread).
    let instructions = instructions::measure(bench);

    let ag = bench.target(Server::Applegate);
    let ag_pid = ag.pid.expect("applegate runs as a process");
    println!("\nload: sign-ins (start, Apple's page, form_post, code exchange, id_token check) for {secs} s");
    let sign_ins = measure::sign_ins(&bench.kit.public_url, &bench.kit.emulator, ag_pid, secs, 16);
    let si = &sign_ins;
    println!(
        "  {:.0} sign-ins/s ({} done, {} failed); gateway CPU {:.0} µs per sign-in; keys fetched {} time(s), {} client secret(s) minted in all",
        si.per_sec, si.count, si.failures, si.cpu_us, si.keys_fetched, si.client_secrets
    );

    println!("\nload: {IDLE_CONNECTIONS} idle keep-alive connections");
    let idle = measure::idle_connections(ag.port, ag_pid, &bench.cookie, IDLE_CONNECTIONS);
    // The same for the bare pingora proxy and nginx, for context.
    let context = [
        ("bare pingora", Server::Bare),
        ("nginx proxy", Server::Nginx),
    ]
    .map(|(name, s)| {
        let t = bench.target(s);
        let pid = t.pid.expect("a proxy under test runs as a process");
        (
            name,
            measure::idle_connections(t.port, pid, &bench.cookie, IDLE_CONNECTIONS),
        )
    });
    let idle = report::Idle {
        applegate: idle,
        context: context.to_vec(),
    };
    println!("  {}", idle.line());

    let soak = mode.soak.then(|| {
        println!("\nload: soak, 10 minutes of authenticated load, RSS sampled every 10 s");
        let sc = SCENARIOS
            .iter()
            .find(|s| s.name == report::AUTHENTICATED)
            .expect("listed");
        let soak = Scenario {
            name: "applegate, authenticated, 10-minute soak",
            ..*sc
        };
        measure::soak(ag_pid, || bench.run(&soak, 600, 0))
    });
    report::Results {
        runs,
        instructions,
        sign_ins,
        idle,
        soak,
    }
}
