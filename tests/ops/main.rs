//! Operations, over real sockets: the admin listener's `/metrics` (every
//! counter a sign-in, a proxied request, a refusal and an Apple error
//! move; the exposition parsed by a Prometheus parser), `/ready` and
//! `/ping`, the admin paths absent from the public listener, and the
//! request id (trusted or generated, upstream, on the response, on error
//! pages; `traceparent` untouched). One test crate (`cargo test --test
//! ops`); the log capture is its own crate (`tests/request_log.rs`), since
//! it owns the process's log output.

#[path = "../common/mod.rs"]
mod common;
mod metrics;
mod ready;
mod request_id;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::{free_port, Options, Stack};

/// A stack with an admin listener; its address.
fn with_admin(mut opts: Options) -> (Stack, SocketAddr) {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    opts.extra_toml = format!("{}\n[admin]\nlisten = \"{admin}\"\n", opts.extra_toml);
    (Stack::with(opts), admin)
}

/// GET `path` on `addr`: status and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// One scrape: each sample by `name{labels sorted}`; histograms by their
/// count, as `name_count{…}`.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Scrapes `/metrics` on `admin` and parses it with
    /// `prometheus-parse`; every sample line must be one it understood.
    async fn of(admin: SocketAddr) -> Scrape {
        let (status, text) = get(admin, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("the exposition parses");
        let mut samples = HashMap::new();
        for s in &parsed.samples {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let (name, value) = match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => (s.metric.clone(), *v),
                prometheus_parse::Value::Histogram(buckets) => (
                    format!("{}_count", s.metric),
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                ),
                prometheus_parse::Value::Summary(_) => panic!("no summaries expected"),
            };
            samples.insert(format!("{name}{{{}}}", labels.join(",")), value);
        }
        // Strict where the parser is lenient: every sample line is an
        // `applegate_` metric with a number, and every family is typed.
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("applegate_"), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        for family in text.lines().filter_map(|l| l.strip_prefix("# HELP ")) {
            let name = family.split(' ').next().unwrap();
            assert!(parsed.docs.contains_key(name), "{name}");
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
        Scrape(samples)
    }

    /// The value of `key` (`name{a=b,c=d}`, labels sorted); 0 if absent.
    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// How much `key` grew since `before`.
    fn delta(&self, before: &Scrape, key: &str) -> f64 {
        self.get(key) - before.get(key)
    }
}
