//! The load benchmark's charts, written by hand as SVG (no plotting
//! crate): the bar chart of the scenarios (`benches/results.svg`) and the
//! line charts of how cost grows (`benches/curve-*.svg`). One palette, so
//! a server has the same colour in every chart.

use std::fmt::Write as _;

use super::wrk::Run;

/// A server's colour, by the start of its name.
fn color(name: &str) -> &'static str {
    if name.starts_with("applegate") {
        "#0a84ff"
    } else if name.starts_with("nginx") {
        "#30a14e"
    } else {
        "#8e8e93"
    }
}

/// The opening tag and the white background.
fn open(w: f64, h: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    )
}

/// A horizontal bar chart of req/s and CPU µs per request.
pub fn bars(runs: &[Run], title: &str) -> String {
    let w = 900.0;
    let row = 26.0;
    let left = 300.0;
    let top = 60.0;
    let h = top + runs.len() as f64 * row * 2.0 + 110.0;
    let max_rps = runs.iter().map(|r| r.rps).fold(1.0, f64::max);
    let max_cpu = runs
        .iter()
        .filter_map(|r| r.cpu_us_per_req)
        .fold(1.0, f64::max);
    let mut s = open(w, h);
    let _ = writeln!(
        s,
        "<text x=\"20\" y=\"28\" font-size=\"17\" font-weight=\"bold\">{title}</text>\n\
         <text x=\"20\" y=\"48\" fill=\"#555\">requests per second (higher is better)</text>"
    );
    let bar = |s: &mut String, y: f64, frac: f64, color: &str, label: &str, value: &str| {
        let bw = (w - left - 110.0) * frac;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text><rect x=\"{left}\" y=\"{}\" width=\"{bw:.1}\" height=\"{}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{value}</text>",
            left - 8.0,
            y + row * 0.6,
            y + 4.0,
            row - 8.0,
            left + bw + 6.0,
            y + row * 0.6
        );
    };
    for (i, r) in runs.iter().enumerate() {
        bar(
            &mut s,
            top + i as f64 * row,
            r.rps / max_rps,
            color(&r.name),
            &r.name,
            &format!("{:.0}", r.rps),
        );
    }
    let top2 = top + runs.len() as f64 * row + 40.0;
    let _ = writeln!(s, "<text x=\"20\" y=\"{}\" fill=\"#555\">CPU µs per request of the server under test (lower is better)</text>", top2 - 12.0);
    for (i, r) in runs.iter().enumerate() {
        if let Some(c) = r.cpu_us_per_req {
            bar(
                &mut s,
                top2 + i as f64 * row,
                c / max_cpu,
                color(&r.name),
                &r.name,
                &format!("{c:.1} µs"),
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// One line of a line chart: a server's figure at each point of the
/// chart (`None` where it was not measured).
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// One panel of a line chart: a quantity (its axis label) and its lines.
pub struct Panel {
    pub y_label: String,
    pub series: Vec<Series>,
}

/// A line chart: `panels` stacked, over the same points `xs`. The points
/// are evenly spaced whatever their values (1, 16, 64, 256, 1,024 would
/// crowd at one end of a linear axis): the axis says so, and every point
/// carries its value.
pub fn lines(title: &str, x_label: &str, xs: &[String], panels: &[Panel]) -> String {
    let (w, left, right, top) = (900.0, 90.0, 190.0, 50.0);
    let (ph, gap) = (230.0, 80.0);
    let h = top + panels.len() as f64 * (ph + gap) + 10.0;
    let mut s = open(w, h);
    let _ = writeln!(
        s,
        "<text x=\"20\" y=\"28\" font-size=\"17\" font-weight=\"bold\">{title}</text>"
    );
    let plot_w = w - left - right;
    let x_at = |i: usize| {
        let n = xs.len().max(2) - 1;
        left + 20.0 + (plot_w - 40.0) * i as f64 / n as f64
    };
    for (k, panel) in panels.iter().enumerate() {
        let y0 = top + k as f64 * (ph + gap) + 20.0;
        let max = panel
            .series
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .fold(0.0, |m: f64, v| m.max(*v));
        let (step, ticks) = axis(max);
        let y_at = |v: f64| y0 + ph - ph * v / (step * ticks as f64);
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"{}\" fill=\"#555\">{}</text>",
            y0 - 8.0,
            panel.y_label
        );
        for t in 0..=ticks {
            let v = step * t as f64;
            let y = y_at(v);
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
                left + plot_w,
                left - 6.0,
                y + 4.0,
                short(v)
            );
        }
        for (i, x) in xs.iter().enumerate() {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x}</text>",
                x_at(i),
                y0 + ph + 18.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{x_label} (points evenly spaced)</text>",
            left + plot_w / 2.0,
            y0 + ph + 38.0
        );
        for (j, line) in panel.series.iter().enumerate() {
            let c = color(&line.name);
            let pts: Vec<(f64, f64, f64)> = line
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (x_at(i), y_at(v), v)))
                .collect();
            let path: Vec<String> = pts
                .iter()
                .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2.5\"/>",
                path.join(" ")
            );
            for (x, y, v) in &pts {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{c}\">{}</text>",
                    x + 6.0,
                    y - 6.0,
                    short(*v)
                );
            }
            let ly = y0 + 16.0 + j as f64 * 20.0;
            let lx = left + plot_w + 16.0;
            let _ = writeln!(
                s,
                "<rect x=\"{lx}\" y=\"{:.1}\" width=\"14\" height=\"4\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
                ly - 6.0,
                lx + 20.0,
                line.name
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A round step (1, 2 or 5 × 10ⁿ) and how many of them cover `max`.
fn axis(max: f64) -> (f64, u32) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil().max(1.0) as u32)
}

/// A figure in a few characters: 12.3k, 456, 7.8, 0.42, 0.
fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
