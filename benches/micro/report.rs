//! The closing table: each hot path against its baseline, from criterion's
//! estimates of this run.

use std::path::Path;

/// Reads criterion's estimate (mean, ns) for `group/function`.
fn estimate(group: &str, function: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let path = Path::new(&dir)
        .join("criterion")
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

pub(crate) fn report() {
    let fmt = |ns: f64| {
        if ns >= 1000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.0} ns")
        }
    };
    println!(
        "\n{:<44} {:>10}   {:<36} {:>10} {:>8}",
        "hot path", "time", "baseline (same run)", "time", "ratio"
    );
    for (group, ours, base) in [
        ("session_check", "applegate", "naive"),
        ("session_check", "open_every_time", "naive"),
        ("session_seal", "applegate", "naive"),
        ("strip_and_inject_headers", "applegate", "naive"),
        ("route_match_100", "applegate", "naive"),
        ("id_token_verify_warm", "applegate", "jsonwebtoken_only"),
        ("bearer_check", "applegate_cached", "verify_every_time"),
        ("client_secret", "applegate_cached", "mint_every_time"),
    ] {
        let label = format!("{group}/{ours}");
        let (Some(a), Some(b)) = (estimate(group, ours), estimate(group, base)) else {
            println!("{label:<44} (not measured in this run)");
            continue;
        };
        println!(
            "{label:<44} {:>10}   {base:<36} {:>10} {:>7.2}×",
            fmt(a),
            fmt(b),
            b / a
        );
    }
    println!("(ratio = baseline time / applegate time; above 1 means applegate is faster)");
}
