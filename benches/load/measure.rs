//! What the load benchmark measures besides wrk's runs: full sign-ins,
//! memory with idle connections, and the RSS soak.

use std::time::{Duration, Instant};

use applegate::emulator::Emulator;

use super::browser;
use super::idle;
use super::procs::{cpu_ticks, rss_kib};
use super::wrk::Run;
use super::TICKS_PER_SEC;

pub struct SignIns {
    pub per_sec: f64,
    pub cpu_us: f64,
    pub count: u64,
    pub failures: u64,
    pub keys_fetched: u64,
    pub client_secrets: usize,
}

/// Full sign-ins (start, Apple's page, form_post, code exchange, id_token
/// check, session) from `workers` concurrent browsers for `secs`.
pub fn sign_ins(
    base: &str,
    emu: &Emulator,
    gateway_pid: u32,
    secs: u64,
    workers: usize,
) -> SignIns {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let before_hits = emu.hits();
    let before = cpu_ticks(gateway_pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let (ok, failed) = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..workers {
            let start = format!("{base}/oauth2/start?rd=/");
            tasks.spawn(async move {
                let mut b = browser::Browser::new();
                let person = browser::Person::new(&format!("user{w}@example.com"));
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let steps = b.sign_in_steps(&start, &person).await;
                    if steps.callback_page.status == 303 {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed)
            });
        }
        let (mut ok, mut failed) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            let (o, f) = r.unwrap();
            ok += o;
            failed += f;
        }
        (ok, failed)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let ticks = cpu_ticks(gateway_pid) - before;
    let hits = emu.hits();
    SignIns {
        per_sec: ok as f64 / elapsed,
        cpu_us: ticks as f64 / TICKS_PER_SEC * 1e6 / ok.max(1) as f64,
        count: ok,
        failures: failed,
        keys_fetched: hits.keys - before_hits.keys,
        client_secrets: hits.client_secrets,
    }
}

/// RSS of `pid` with `n` idle keep-alive connections, each after one
/// authenticated request. Returns (RSS before, RSS with them) in KiB.
pub fn idle_connections(port: u16, pid: u32, cookie: &str, n: usize) -> (u64, u64, usize) {
    let before = rss_kib(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (open, after) = rt.block_on(async {
        let conns = idle::open(port, cookie, 0..n, &[std::net::Ipv4Addr::LOCALHOST]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(pid);
        let open = conns.len();
        drop(conns);
        (open, after)
    });
    (before, after, open)
}

/// RSS over a long run.
pub struct Soak {
    /// The sentence for the report.
    pub line: String,
    /// RSS at the end minus after 10 s, MiB.
    pub drift_mib: f64,
}

/// Samples `pid`'s RSS every 10 s while `load` runs.
pub fn soak(pid: u32, load: impl FnOnce() -> Run) -> Soak {
    let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = samples.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            s2.lock().unwrap().push(rss_kib(pid));
            std::thread::sleep(Duration::from_secs(10));
        }
    });
    let r = load();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    // The first sample is taken as the load starts, while the idle
    // connections of the previous test may still be closing: skip it.
    let all = samples.lock().unwrap().clone();
    let s = &all[1.min(all.len() - 1)..];
    let (first, last) = (s[0], *s.last().unwrap());
    let (min, max) = (*s.iter().min().unwrap(), *s.iter().max().unwrap());
    let line = format!(
            "Soak (10 min, {:.0} req/s, authenticated): RSS after 10 s {:.1} MiB, at the end {:.1} MiB, min {:.1}, max {:.1} MiB over {} samples.",
            r.rps,
            first as f64 / 1024.0,
            last as f64 / 1024.0,
            min as f64 / 1024.0,
            max as f64 / 1024.0,
            s.len()
        );
    println!("  {line}");
    Soak {
        line,
        drift_mib: (last as f64 - first as f64) / 1024.0,
    }
}
