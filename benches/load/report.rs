//! The load benchmark's report: the table, the targets, the machine line,
//! and the files it rewrites (the section of `benches/RESULTS.md` between
//! its markers, and `benches/results.svg`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use std::time::Duration;

use super::curves;
use super::instructions::{self, Count};
use super::measure::{SignIns, Soak};
use super::svg;
use super::wrk::Run;
use super::{Mode, CONNECTIONS, IDLE_CONNECTIONS, MANIFEST, ROUNDS};

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or("?".into(), |k| format!("{:.0} GiB", k as f64 / 1048576.0));
    let cmd = |c: &str, a: &[&str]| {
        Command::new(c)
            .args(a)
            .output()
            .map(|o| {
                let t = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&t)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };
    format!(
        "{model}, {cores} cores, {mem} RAM; Linux {}; {}; {}; {}",
        cmd("uname", &["-r"]),
        cmd("rustc", &["-V"]),
        cmd("nginx", &["-v"]).replace("nginx version: ", ""),
        cmd("wrk", &["-v"]).split(" [").next().unwrap_or("wrk"),
    )
}

fn fmt_ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

const LOAD: (&str, &str) = ("<!-- load:begin -->", "<!-- load:end -->");
/// The curves' part, inside the load section: a run with `--curves` or
/// `--no-curves` rewrites or keeps only it.
const CURVES: (&str, &str) = ("<!-- curves:begin -->", "<!-- curves:end -->");

/// The text between `markers` in `text`, if both are there in order.
fn between<'a>(text: &'a str, (begin, end): (&str, &str)) -> Option<&'a str> {
    let b = text.find(begin)? + begin.len();
    let e = text.find(end)?;
    (b <= e).then(|| text[b..e].trim_start_matches('\n'))
}

/// `text` with `section` between `markers`; the markers are added at the
/// end (or, for the curves, before the load section's end) if missing.
fn replace(text: &str, (begin, end): (&str, &str), section: &str) -> String {
    match (text.find(begin), text.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{section}{}", &text[..b], &text[e..]),
        _ if begin == CURVES.0 && text.contains(LOAD.1) => {
            text.replacen(LOAD.1, &format!("{begin}\n{section}{end}\n\n{}", LOAD.1), 1)
        }
        _ => format!("{text}\n{begin}\n{section}{end}\n"),
    }
}

fn results_md() -> (PathBuf, String) {
    let path = PathBuf::from(MANIFEST).join("benches/RESULTS.md");
    let old = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| format!("# Benchmark results\n\n{}\n{}\n", LOAD.0, LOAD.1));
    (path, old)
}

/// Replaces the text between the markers of RESULTS.md, keeping the rest
/// (the hand-written tuning log), and `curves` (their Markdown) or, when
/// not measured, the curves' part of the last run that measured them.
pub fn write_results(section: &str, curves: Option<&str>) {
    let (path, old) = results_md();
    let curves = curves
        .map(str::to_string)
        .or_else(|| between(&old, CURVES).map(str::to_string));
    let section = match curves {
        Some(c) => format!("{section}{}\n{c}{}\n\n", CURVES.0, CURVES.1),
        None => section.to_string(),
    };
    std::fs::write(&path, replace(&old, LOAD, &section)).expect("write benches/RESULTS.md");
}

/// `--curves`: rewrites only the curves' part of RESULTS.md, and their charts.
pub fn write_curves(c: &curves::Curves, mode: &Mode) {
    let (path, old) = results_md();
    let md = curves_md(c, mode.quick);
    std::fs::write(&path, replace(&old, CURVES, &md)).expect("write benches/RESULTS.md");
    curves::write_svgs(c);
    println!("load: wrote the curves into benches/RESULTS.md and benches/curve-*.svg");
}

/// The curves' Markdown, dated (a `--curves` run may be later than the rest).
fn curves_md(c: &curves::Curves, quick: bool) -> String {
    format!(
        "Curves measured: {} ({}).\n\n{}",
        command_date(),
        if quick { "--quick" } else { "full" },
        curves::section(c, quick)
    )
}

pub fn command_date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The scenarios the targets are about, by name.
pub const DIRECT: &str = "direct to upstream (the limit)";
pub const NGINX: &str = "nginx reverse proxy (baseline)";
pub const BARE: &str = "bare pingora passthrough";
pub const AUTHENTICATED: &str = "applegate, authenticated";
pub const FORWARD_AUTH: &str = "applegate, forward auth";
pub const BEARER: &str = "applegate, bearer (cached)";
pub const INFO_LOG: &str = "applegate, authenticated, info log, access log off";
pub const ACCESS_LOG: &str = "applegate, authenticated, info log, access log on";

/// Memory with idle keep-alive connections: (RSS before, RSS with them in
/// KiB, connections open), for applegate and, for context, other proxies.
pub struct Idle {
    pub applegate: (u64, u64, usize),
    pub context: Vec<(&'static str, (u64, u64, usize))>,
}

impl Idle {
    /// "; bare pingora 10.0 → 20.0 MiB (10000 open)…"
    fn context(&self) -> String {
        let mut out = String::new();
        for (name, (b, a, n)) in &self.context {
            let _ = write!(
                out,
                "; {name} {:.1} → {:.1} MiB ({n} open)",
                *b as f64 / 1024.0,
                *a as f64 / 1024.0
            );
        }
        out
    }

    /// The line printed after the measurement.
    pub fn line(&self) -> String {
        let (rss0, rss1, open) = self.applegate;
        format!(
            "applegate RSS {:.1} MiB before, {:.1} MiB with {open} idle connections{}",
            rss0 as f64 / 1024.0,
            rss1 as f64 / 1024.0,
            self.context()
        )
    }
}

/// Everything one run measured.
pub struct Results {
    /// One per scenario, in the table's order.
    pub runs: Vec<Run>,
    /// The paired comparisons counted in instructions.
    pub instructions: Vec<Count>,
    pub sign_ins: SignIns,
    pub idle: Idle,
    pub soak: Option<Soak>,
}

impl Results {
    /// Instructions per request of the counted case `name`.
    fn counted(&self, name: &str) -> f64 {
        self.instructions
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("case {name:?} was counted"))
            .per_request
    }

    fn run(&self, name: &str) -> &Run {
        self.runs
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("scenario {name:?} was run"))
    }
}

/// Prints the table and targets and rewrites RESULTS.md and results.svg.
pub fn write(results: &Results, curves: Option<&curves::Curves>, mode: &Mode, elapsed: Duration) {
    let (secs, warm, quick) = (mode.secs, mode.warm, mode.quick);
    let runs = &results.runs;
    let si = &results.sign_ins;
    let (rss0, rss1, open) = results.idle.applegate;
    let idle_context = results.idle.context();
    let table = table(runs, results.run(NGINX));
    let counted = counted_table(results);
    let targets = targets(results);
    let title = format!(
        "applegate load benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    let section = format!(
        "Last run: {} ({}; {:.0} s).\n\nMachine: {}\n\n\
         Servers under test pinned to core 0; wrk (1 thread, {CONNECTIONS} connections), the upstream (nginx, 1 KiB answers) \
         and the benchmark driver with the Apple emulator on core 1. Each scenario runs {ROUNDS} times for {secs} s, the scenarios \
         interleaved (after {warm} s of warm-up); each figure is the median of its {ROUNDS} runs. \
         CPU µs/req is the server's utime+stime from /proc over the run divided by the requests served.\n\n{table}\n\
         Sign-ins: {:.0}/s with 16 concurrent browsers ({} done, {} failed), gateway CPU {:.0} µs per sign-in.\n\n\
         Idle connections: applegate RSS {:.1} MiB before, {:.1} MiB with {open} idle keep-alive connections{idle_context} \
         (nginx: master and worker together).\n\n{counted}\n{}\
         ### Targets\n\n| target | reached | |\n|---|---|---|\n{targets}\n![chart](results.svg)\n\n",
        command_date(),
        if quick { "--quick" } else { "full run" },
        elapsed.as_secs_f64(),
        machine(),
        si.per_sec,
        si.count,
        si.failures,
        si.cpu_us,
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        results.soak.as_ref().map(|s| format!("{}\n\n", s.line)).unwrap_or_default(),
    );
    println!("\n{table}\n| target | reached | |\n|---|---|---|\n{targets}");
    let curves_part = curves.map(|c| curves_md(c, quick));
    write_results(&section, curves_part.as_deref());
    if let Some(c) = curves {
        curves::write_svgs(c);
    }
    std::fs::write(
        PathBuf::from(MANIFEST).join("benches/results.svg"),
        svg::bars(runs, &title),
    )
    .unwrap();
    println!(
        "load: wrote benches/RESULTS.md and benches/results.svg in {:.0} s",
        elapsed.as_secs_f64()
    );
}

/// The Markdown table of the runs, with ratios against the nginx proxy.
fn table(runs: &[Run], nginx_run: &Run) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | req/s | p50 | p99 | CPU µs/req | req/s vs nginx proxy | CPU vs nginx proxy |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} | {} |",
            r.name,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.cpu_us_per_req.map_or("–".into(), |c| format!("{c:.1}")),
            fmt_ratio(r.rps, nginx_run.rps),
            match (r.cpu_us_per_req, nginx_run.cpu_us_per_req) {
                (Some(a), Some(b)) => fmt_ratio(a, b),
                _ => "–".into(),
            }
        );
    }
    table
}

/// The instruction counts, as a table with the pairs' differences.
fn counted_table(results: &Results) -> String {
    let mut t = String::from(
        "Instructions per request (callgrind: the server's user-space instructions, all its threads, \
         over 2,000 requests on 4 keep-alive connections after 300 uncounted; the same on every run, \
         unlike CPU time, but without the kernel's share):\n\n| case | instructions/request |\n|---|---:|\n",
    );
    for c in &results.instructions {
        let _ = writeln!(t, "| {} | {:.0} |", c.name, c.per_request);
    }
    t
}

/// The issue's targets, each met or missed.
fn targets(results: &Results) -> String {
    let (auth, fwd) = (results.run(AUTHENTICATED), results.run(FORWARD_AUTH));
    let (nginx_run, bare_run, direct) =
        (results.run(NGINX), results.run(BARE), results.run(DIRECT));
    let si = &results.sign_ins;
    let (_, rss1, open) = results.idle.applegate;
    let mut targets = String::new();
    let mut t = |name: &str, got: String, ok: bool| {
        let _ = writeln!(
            targets,
            "| {name} | {got} | {} |",
            if ok { "met" } else { "**missed**" }
        );
    };
    let auth_vs_nginx = auth.rps / nginx_run.rps;
    t(
        "authenticated ≥ 1.0× nginx proxy req/s",
        format!("{auth_vs_nginx:.2}×"),
        auth_vs_nginx >= 1.0,
    );
    if let (Some(a), Some(n)) = (auth.cpu_us_per_req, nginx_run.cpu_us_per_req) {
        t(
            "authenticated CPU/req ≤ nginx proxy's (stretch)",
            format!("{a:.1} vs {n:.1} µs ({:.2}×)", a / n),
            a <= n,
        );
    }
    let auth_vs_bare = auth.rps / bare_run.rps;
    t(
        "authenticated ≥ 0.95× bare pingora req/s",
        format!("{auth_vs_bare:.2}×"),
        auth_vs_bare >= 0.95,
    );
    if let (Some(a), Some(b)) = (auth.cpu_us_per_req, bare_run.cpu_us_per_req) {
        t(
            "authentication CPU cost over bare pingora ≤ 5%",
            format!("{:+.1}%", (a / b - 1.0) * 100.0),
            a / b <= 1.05,
        );
    }
    // Issue #11's lines.
    if let (Some(a), Some(n)) = (auth.cpu_us_per_req, nginx_run.cpu_us_per_req) {
        t(
            "authenticated CPU/req ≤ 1.5× nginx proxy's",
            format!("{:.2}×", a / n),
            a / n <= 1.5,
        );
    }
    t(
        "authenticated ≥ 0.7× nginx proxy req/s",
        format!("{auth_vs_nginx:.2}×"),
        auth_vs_nginx >= 0.7,
    );
    if let (Some(b), Some(c)) = (results.run(BEARER).cpu_us_per_req, auth.cpu_us_per_req) {
        t(
            "cached bearer CPU/req ≤ the cookie path's (CPU time)",
            format!("{b:.1} vs {c:.1} µs"),
            b <= c,
        );
    }
    let (b, c) = (
        results.counted(instructions::BEARER),
        results.counted(instructions::COOKIE),
    );
    t(
        "cached bearer ≤ the cookie path (instructions)",
        format!("{b:.0} vs {c:.0} ({:+.1}%)", (b / c - 1.0) * 100.0),
        b <= c,
    );
    let (on, off) = (
        results.counted(instructions::ACCESS),
        results.counted(instructions::INFO),
    );
    t(
        "access log on ≤ 5% over off (instructions, both at info)",
        format!("{:+.1}% ({on:.0} vs {off:.0})", (on / off - 1.0) * 100.0),
        on / off <= 1.05,
    );
    let (a, bare) = (
        results.counted(instructions::COOKIE),
        results.counted(instructions::BARE),
    );
    t(
        "authentication over bare pingora ≤ 5% (instructions)",
        format!("{:+.1}% ({a:.0} vs {bare:.0})", (a / bare - 1.0) * 100.0),
        a / bare <= 1.05,
    );
    if let (Some(on), Some(off)) = (
        results.run(ACCESS_LOG).cpu_us_per_req,
        results.run(INFO_LOG).cpu_us_per_req,
    ) {
        t(
            "access log on ≤ 5% CPU/req over off (CPU time, both at info)",
            format!("{:+.1}% ({on:.1} vs {off:.1} µs)", (on / off - 1.0) * 100.0),
            on / off <= 1.05,
        );
    }
    t(
        "RSS ≤ 128 MiB with 10,000 idle connections",
        format!("{:.1} MiB ({open} open)", rss1 as f64 / 1024.0),
        rss1 <= 128 * 1024 && open == IDLE_CONNECTIONS,
    );
    let fwd_vs_nginx = fwd.rps / nginx_run.rps;
    t(
        "forward auth ≥ 2× nginx proxy req/s",
        format!("{fwd_vs_nginx:.2}×"),
        fwd_vs_nginx >= 2.0,
    );
    let added = auth.p99_ms - direct.p99_ms;
    t(
        "p99 added over direct ≤ 1 ms (64 connections)",
        format!("{added:.2} ms"),
        added <= 1.0,
    );
    t(
        "≥ 1,000 sign-ins/s",
        format!(
            "{:.0}/s measured; gateway CPU {:.0} µs each ⇒ {:.0}/s per core",
            si.per_sec,
            si.cpu_us,
            1e6 / si.cpu_us
        ),
        si.per_sec >= 1000.0,
    );
    t(
        "keys fetched once, client secret minted once",
        format!(
            "{} fetch(es) during sign-ins, {} secret(s) in all",
            si.keys_fetched, si.client_secrets
        ),
        si.keys_fetched == 0 && si.client_secrets == 1,
    );
    if let Some(drift) = results.soak.as_ref().map(|s| s.drift_mib) {
        t(
            "RSS flat over a 10-minute soak",
            format!("{drift:+.1} MiB from 10 s to 10 min"),
            drift.abs() <= 8.0,
        );
    }
    t(
        "RSS ≤ 64 MiB with 10,000 idle connections",
        format!("{:.1} MiB ({open} open)", rss1 as f64 / 1024.0),
        rss1 <= 64 * 1024 && open == IDLE_CONNECTIONS,
    );

    targets
}
