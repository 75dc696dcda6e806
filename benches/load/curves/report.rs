//! The curves in `benches/RESULTS.md` (tables, and the figures the reading
//! is written from) and as charts (`benches/curve-*.svg`).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::super::svg::{self, Panel, Series};
use super::super::wrk::Run;
use super::super::MANIFEST;
use super::{Curve, Curves, Idle, APPLEGATE, NGINX};

/// The charts' files, in `benches/`.
pub const CONNECTIONS_SVG: &str = "curve-connections.svg";
pub const ROUTES_SVG: &str = "curve-routes.svg";
pub const REVOKED_SVG: &str = "curve-revocations.svg";
pub const IDLE_SVG: &str = "curve-idle.svg";

/// 1,024 or 1,000,000.
fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The Markdown of the curves, for inside the load section.
pub fn section(c: &Curves, quick: bool) -> String {
    let p = &c.plan;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### How cost grows\n\n\
         Each wrk point runs {} time(s) for {} s (wrk, 1 thread), the points and servers of a curve interleaved \
         (after {} s of warm-up), and each figure is the median; servers on core 0, wrk on core 1, as above{}. \
         The curves took {:.0} s (connections), {:.0} s (routes), {:.0} s (revocations, of which {:.0} s writing \
         the state files) and {:.0} s (idle connections).\n",
        p.rounds,
        p.secs,
        p.warm,
        if quick { " (--quick: fewer, smaller points, single 1 s runs)" } else { "" },
        c.connections.secs,
        c.routes.secs,
        c.revoked.secs,
        c.filled.last().map_or(0.0, |f| f.1),
        c.idle.secs
    );
    let _ = writeln!(
        s,
        "#### Concurrent connections\n\nAuthenticated requests (the session cookie) to `/`, \
         applegate beside the nginx proxy.\n\n{}\n![connections]({CONNECTIONS_SVG})\n",
        wrk_table(&c.connections, "connections")
    );
    let _ = writeln!(
        s,
        "#### Routes\n\nN path-prefix routes (`/r00000/`, `/r00001/`, …, all to the upstream), each request \
         matching the last one declared; nginx with one `location` block per route. Each point has a gateway \
         (and an nginx) of its own.\n\n{}\n![routes]({ROUTES_SVG})\n",
        wrk_table(&c.routes, "routes")
    );
    let _ = writeln!(
        s,
        "#### Revocation set\n\nThe gateway started on a state file holding N revocations (half sessions, \
         half users, none the benchmark's; written through the store's API one committed write each, as \
         sign-outs and Apple's notifications write them); authenticated requests as above. nginx keeps no \
         revocation set, so applegate is compared with its own 0 point.\n\n{}\n![revocations]({REVOKED_SVG})\n",
        wrk_table(&c.revoked, "revocations")
    );
    let _ = writeln!(
        s,
        "#### Idle keep-alive connections\n\nRSS 1 s after opening connections up to each point, each having made \
         one authenticated request, then left idle (from several loopback source addresses); each server \
         freshly started with room for them (nginx: `worker_connections {}`, master and worker together; \
         applegate: `server.max_connections` as many, `keepalive_timeout = \"120s\"` as nginx's) and warmed \
         by {} s of wrk.\n\n{}\n![idle]({IDLE_SVG})\n",
        count(p.idle.iter().max().copied().unwrap_or(0) + 1_000),
        p.warm,
        idle_table(&c.idle)
    );
    let _ = writeln!(
        s,
        "**Figures for the reading** (computed by the run; the reading itself, below the generated \
         section, is written from a full run's figures):\n\n{}",
        figures(c)
    );
    s
}

/// The routes curve's table (what `--only routes` prints).
pub fn routes_table(c: &Curve) -> String {
    wrk_table(c, "routes")
}

/// One row per point: each server's req/s, p99 and CPU per request, where
/// measured the gateway's start, and the ratio to nginx (or, alone, to its
/// first point).
fn wrk_table(c: &Curve, x: &str) -> String {
    let mut t = format!("| {x} |");
    for s in &c.servers {
        let _ = write!(t, " {s} req/s | p99 | CPU µs/req |");
    }
    let starts = c.points.iter().any(|p| p.start_secs.is_some());
    if starts {
        t.push_str(" applegate listening after | its RSS then |");
    }
    let vs_nginx = c.servers.contains(&NGINX);
    t.push_str(if vs_nginx {
        " req/s vs nginx | CPU vs nginx |\n"
    } else {
        " req/s vs first point | CPU vs first point |\n"
    });
    let cols = c.servers.len() * 3 + if starts { 2 } else { 0 } + 2;
    let _ = writeln!(t, "|---|{}", "---:|".repeat(cols));
    let first = &c.points[0].runs[0];
    for p in &c.points {
        let _ = write!(t, "| {} |", count(p.x));
        for r in &p.runs {
            let _ = write!(
                t,
                " {:.0} | {:.2} ms | {} |",
                r.rps,
                r.p99_ms,
                r.cpu_us_per_req.map_or("–".into(), |c| format!("{c:.1}"))
            );
        }
        if starts {
            let _ = write!(
                t,
                " {} | {} |",
                p.start_secs.map_or("–".into(), |s| format!("{s:.2} s")),
                p.rss_kib
                    .map_or("–".into(), |k| format!("{:.1} MiB", mib(k)))
            );
        }
        let base = if vs_nginx { &p.runs[1] } else { first };
        let ag = &p.runs[0];
        let _ = writeln!(
            t,
            " {} | {} |",
            ratio(ag.rps, base.rps),
            match (ag.cpu_us_per_req, base.cpu_us_per_req) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "–".into(),
            }
        );
    }
    t
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// One row per point, one column per server; then each server's cost per
/// connection between the last two points measured.
fn idle_table(idle: &Idle) -> String {
    let mut t = String::from("| idle connections |");
    for s in &idle.servers {
        let _ = write!(t, " {} RSS |", s.name);
    }
    let _ = writeln!(t, "\n|---|{}", "---:|".repeat(idle.servers.len()));
    let xs: Vec<usize> = idle.servers[0].points.iter().map(|p| p.0).collect();
    for (i, x) in xs.iter().enumerate() {
        let _ = write!(t, "| {} |", count(*x));
        for s in &idle.servers {
            let _ = match s.points[i].1 {
                Some((rss, open)) if open == *x => write!(t, " {:.1} MiB |", mib(rss)),
                Some((rss, open)) => write!(t, " {:.1} MiB ({} open) |", mib(rss), count(open)),
                None => write!(t, " not measured |"),
            };
        }
        t.push('\n');
    }
    t.push_str("| per connection, last step |");
    for s in &idle.servers {
        let _ = write!(
            t,
            " {} |",
            per_connection(s).map_or("–".into(), |k| format!("{k:.1} KiB"))
        );
    }
    t.push('\n');
    let open: Vec<String> = idle
        .servers
        .iter()
        .map(|s| {
            let last = s.points.iter().rev().find_map(|p| p.1).map_or(0, |p| p.1);
            format!("{} {}/{}", s.name, count(s.still_open), count(last))
        })
        .collect();
    let _ = writeln!(t, "\nStill open after the last point: {}.", open.join(", "));
    if let Some(limit) = idle.limited {
        let _ = writeln!(
            t,
            "\n**Points capped**: this run's open-file limit is {limit} (the hard limit could not be \
             raised: that needs CAP_SYS_RESOURCE), so a point beyond it holds only the connections that \
             fit (shown as open); raise the hard limit (`ulimit -Hn 200000` as root, `LimitNOFILE=`, a \
             container's `--ulimit nofile=`) and run again."
        );
    }
    t
}

/// KiB per connection between the last two points measured.
fn per_connection(s: &super::IdleServer) -> Option<f64> {
    let got: Vec<(u64, usize)> = s.points.iter().filter_map(|p| p.1).collect();
    let [.., (r0, n0), (r1, n1)] = got[..] else {
        return None;
    };
    (n1 > n0).then(|| (r1 as f64 - r0 as f64) / (n1 - n0) as f64)
}

/// The figures the reading is written from, one line per curve.
fn figures(c: &Curves) -> String {
    let mut f = String::new();
    /// A server's first and last point: (x, x, run, run).
    fn ends(cv: &Curve, server: usize) -> (usize, usize, &Run, &Run) {
        let (a, b) = (&cv.points[0], cv.points.last().expect("a curve has points"));
        (a.x, b.x, &a.runs[server], &b.runs[server])
    }
    let cpu = |r: &Run| r.cpu_us_per_req.unwrap_or(f64::NAN);
    let cv = &c.connections;
    for (i, name) in cv.servers.iter().enumerate() {
        let (x0, x1, a, b) = ends(cv, i);
        let _ = writeln!(
            f,
            "- connections {} → {}: {name} {:.0} → {:.0} req/s ({}), p99 {:.2} → {:.2} ms, CPU {:.1} → {:.1} µs/req;",
            count(x0), count(x1), a.rps, b.rps, ratio(b.rps, a.rps), a.p99_ms, b.p99_ms, cpu(a), cpu(b)
        );
    }
    for (cv, what) in [(&c.routes, "routes"), (&c.revoked, "revocations")] {
        for (i, name) in cv.servers.iter().enumerate() {
            let (x0, x1, a, b) = ends(cv, i);
            let mut line = format!(
                "- {what} {} → {}: {name} {:.0} → {:.0} req/s ({}), CPU {:.1} → {:.1} µs/req ({:+.1} µs)",
                count(x0), count(x1), a.rps, b.rps, ratio(b.rps, a.rps), cpu(a), cpu(b), cpu(b) - cpu(a)
            );
            let (p0, p1) = (&cv.points[0], cv.points.last().expect("points"));
            if let (APPLEGATE, Some(s0), Some(s1), Some(r0), Some(r1)) =
                (*name, p0.start_secs, p1.start_secs, p0.rss_kib, p1.rss_kib)
            {
                let _ = write!(
                    line,
                    ", listening after {s0:.2} → {s1:.2} s, RSS {:.1} → {:.1} MiB ({:.0} bytes per {})",
                    mib(r0),
                    mib(r1),
                    (r1 as f64 - r0 as f64) * 1024.0 / (x1 - x0).max(1) as f64,
                    what.trim_end_matches('s')
                );
            }
            let _ = writeln!(f, "{line};");
        }
    }
    let per: Vec<String> = c
        .idle
        .servers
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s.name,
                per_connection(s).map_or("–".into(), |k| format!("{k:.1} KiB"))
            )
        })
        .collect();
    let _ = writeln!(
        f,
        "- memory per idle connection (between the last two points): {}.",
        per.join(", ")
    );
    let _ = writeln!(
        f,
        "\n<!-- reading: see \"How cost grows: the reading\" below the generated section -->"
    );
    f
}

/// Writes the four charts into `benches/`.
pub fn write_svgs(c: &Curves) {
    let dir = PathBuf::from(MANIFEST).join("benches");
    let write = |file: &str, text: String| {
        std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("write benches/{file}: {e}"))
    };
    write(
        CONNECTIONS_SVG,
        wrk_chart(
            &c.connections,
            "Authenticated requests against concurrent connections",
            "concurrent connections",
        ),
    );
    write(
        ROUTES_SVG,
        wrk_chart(
            &c.routes,
            "Authenticated requests against the number of routes",
            "routes (request matches the last)",
        ),
    );
    write(
        REVOKED_SVG,
        wrk_chart(
            &c.revoked,
            "Authenticated requests against the size of the revocation set",
            "revocations held",
        ),
    );
    let idle = &c.idle;
    let xs: Vec<String> = idle.servers[0].points.iter().map(|p| count(p.0)).collect();
    let series = idle
        .servers
        .iter()
        .map(|s| Series {
            name: s.name.into(),
            values: s
                .points
                .iter()
                .map(|p| p.1.map(|(rss, _)| mib(rss)))
                .collect(),
        })
        .collect();
    write(
        IDLE_SVG,
        svg::lines(
            "Memory against idle keep-alive connections",
            "idle connections (each after one request)",
            &xs,
            &[Panel {
                y_label: "RSS, MiB (lower is better)".into(),
                series,
            }],
        ),
    );
}

/// req/s, p99 and CPU per request of each server over a wrk curve.
fn wrk_chart(c: &Curve, title: &str, x_label: &str) -> String {
    let xs: Vec<String> = c.points.iter().map(|p| count(p.x)).collect();
    let panel = |y_label: &str, f: fn(&Run) -> Option<f64>| Panel {
        y_label: y_label.into(),
        series: c
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| Series {
                name: (*s).into(),
                values: c.points.iter().map(|p| f(&p.runs[i])).collect(),
            })
            .collect(),
    };
    svg::lines(
        title,
        x_label,
        &xs,
        &[
            panel("requests per second (higher is better)", |r| Some(r.rps)),
            panel("p99 latency, ms (lower is better)", |r| Some(r.p99_ms)),
            panel("CPU µs per request of the server (lower is better)", |r| {
                r.cpu_us_per_req
            }),
        ],
    )
}
