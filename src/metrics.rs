//! The gateway's Prometheus metrics: every family, its name and labels, in
//! one place, served by the admin listener ([`crate::admin`]).
//!
//! A leaf: it imports nothing of the crate; the parts that count hold the
//! handles they need. Labels are bounded by construction: route indexes
//! from the config, outcome and status-class names from fixed lists, Apple
//! endpoints and error kinds from fixed lists. Never a user, path or token.
//!
//! Per-request cost: every handle a request touches is resolved once (a
//! route × outcome × status-class table of counters, two histograms, cache
//! counters), so the request path does atomic adds and a histogram observe
//! (a bucket search over a dozen floats and a few atomics): no label
//! lookup, no hashing, no formatting, no allocation. A route's row of the
//! table is resolved on its first request, not at start: each labelled
//! counter costs the registry most of a kilobyte (its labels and a copy of
//! the family's description), so 54 per route made 10,000 routes hold
//! ~380 MiB at start (benches/RESULTS.md) for routes that may never be
//! asked for. A route shows in `/metrics` from its first request, with its
//! whole row (every outcome and status class) as before.
//! Gauges that describe state (revocations held, keys held, open
//! connections, the store's health) are read when scraped, not kept up to
//! date per request.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds: 100 µs (the gateway's own work) to 10 s
/// (a slow upstream or Apple).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Status classes, by the status's hundreds digit; `none` when no response
/// was written (the client went away).
const STATUS_CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// How a sign-in (the callback) ended: `ok`, or why not. Apple's failures
/// are `apple_<kind>` with the kinds of [`APPLE_ERRORS`].
pub const SIGN_IN_OUTCOMES: &[&str] = &[
    "ok",
    "cancelled",
    "denied",
    "state_invalid",
    "bad_request",
    "rate_limited",
    "store_error",
    "apple_invalid_client",
    "apple_invalid_grant",
    "apple_rejected",
    "apple_unreachable",
    "apple_status",
    "apple_bad_response",
    "apple_no_keys",
    "apple_invalid_token",
    "apple_unknown_key",
    "apple_signing",
];

/// Apple's endpoints the gateway calls.
pub const APPLE_ENDPOINTS: &[&str] = &["token", "refresh", "revoke", "keys"];

/// The kinds of a failed call to Apple (one per `AppleError` variant).
pub const APPLE_ERRORS: &[&str] = &[
    "invalid_client",
    "invalid_grant",
    "rejected",
    "unreachable",
    "status",
    "bad_response",
    "no_keys",
    "invalid_token",
    "unknown_key",
    "signing",
];

/// Every metric of one gateway, registered in its own registry (no
/// global one: two gateways in one test process keep their own counts).
pub struct Metrics {
    registry: Registry,
    /// `applegate_requests_total`, whose rows are resolved from it.
    requests_vec: IntCounterVec,
    /// The outcomes' names, by index.
    outcomes: Vec<String>,
    /// `[route][outcome][status class]`, each route's row resolved on its
    /// first request.
    requests: Vec<OnceLock<Row>>,
    /// The row of requests no route matched (resolved at start).
    no_route: Row,
    /// Time the gateway itself added to a request (total less the upstream's).
    pub gateway_seconds: Histogram,
    /// Time from sending the request upstream to its response head.
    pub upstream_seconds: Histogram,
    sign_ins: IntCounterVec,
    pub rate_limited: RateLimited,
    pub session_cache: Lookups,
    pub bearer_cache: Lookups,
    /// Set when scraped, from the parts that hold the state.
    pub revocations: IntGauge,
    pub apple_keys: IntGauge,
    pub store_up: IntGauge,
    pub open_connections: IntGauge,
    /// Access lines lost: the queue was full, or the destination failed.
    pub access_log_dropped: IntCounter,
}

/// One route's counters: `[outcome][status class]`.
type Row = Box<[[IntCounter; STATUS_CLASSES.len()]]>;

/// Hits and misses of one cache.
#[derive(Clone)]
pub struct Lookups {
    pub hit: IntCounter,
    pub miss: IntCounter,
}

impl Default for Lookups {
    /// Counters registered nowhere (a cache built outside a gateway).
    fn default() -> Self {
        let c = || IntCounter::new("unregistered", "unregistered").expect("a valid name");
        Lookups {
            hit: c(),
            miss: c(),
        }
    }
}

/// Requests refused by a rate limit, by limit.
#[derive(Clone)]
pub struct RateLimited {
    pub per_client: IntCounter,
    pub total: IntCounter,
    pub apple: IntCounter,
}

impl Default for RateLimited {
    /// Counters registered nowhere (limits built outside a gateway).
    fn default() -> Self {
        let c = || IntCounter::new("unregistered", "unregistered").expect("a valid name");
        RateLimited {
            per_client: c(),
            total: c(),
            apple: c(),
        }
    }
}

/// Calls to Apple by endpoint: their latency and how they ended. Not on
/// the request path's hot part (each is a network round trip), so labels
/// are looked up per call.
#[derive(Clone)]
pub struct AppleCalls {
    calls: IntCounterVec,
    seconds: HistogramVec,
}

impl Default for AppleCalls {
    fn default() -> Self {
        AppleCalls {
            calls: IntCounterVec::new(
                Opts::new(
                    "applegate_apple_requests_total",
                    "Calls to Apple by endpoint and result (ok or the error kind).",
                ),
                &["endpoint", "result"],
            )
            .expect("valid metric options"),
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "applegate_apple_request_duration_seconds",
                    "Latency of calls to Apple by endpoint.",
                )
                .buckets(BUCKETS.to_vec()),
                &["endpoint"],
            )
            .expect("valid metric options"),
        }
    }
}

impl AppleCalls {
    /// One call to `endpoint` (of [`APPLE_ENDPOINTS`]) that took `seconds`
    /// and ended `Ok` or with an error of `kind` (of [`APPLE_ERRORS`]).
    pub fn observe(&self, endpoint: &'static str, seconds: f64, result: Result<(), &'static str>) {
        self.seconds.with_label_values(&[endpoint]).observe(seconds);
        self.calls
            .with_label_values(&[endpoint, result.err().unwrap_or("ok")])
            .inc();
    }
}

/// The counters of one `route` label: every outcome and status class
/// (registered at zero, so a row shows whole once it exists).
fn row(requests: &IntCounterVec, outcomes: &[String], route: &str) -> Row {
    outcomes
        .iter()
        .map(|o| STATUS_CLASSES.map(|s| requests.with_label_values(&[route, o.as_str(), s])))
        .collect()
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric options");
    registry
        .register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
        .expect("valid metric options");
    registry
        .register(Box::new(h.clone()))
        .expect("each metric is registered once");
    h
}

impl Metrics {
    /// The metrics of a gateway with `routes` routes whose request
    /// outcomes are named `outcomes` (in the order their indexes follow),
    /// counting Apple's calls in `apple`.
    pub fn new(routes: usize, outcomes: &[&str], apple: &AppleCalls) -> Metrics {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .expect("each metric is registered once")
        };
        let requests_vec = IntCounterVec::new(
            Opts::new(
                "applegate_requests_total",
                "Requests by route (index in the config, or none), outcome and status class.",
            ),
            &["route", "outcome", "status"],
        )
        .expect("valid metric options");
        reg(Box::new(requests_vec.clone()));
        let outcomes: Vec<String> = outcomes.iter().map(|o| o.to_string()).collect();
        let no_route = row(&requests_vec, &outcomes, "none");
        let sign_ins = IntCounterVec::new(
            Opts::new(
                "applegate_sign_ins_total",
                "Sign-ins (callbacks) by outcome: ok, or why not.",
            ),
            &["outcome"],
        )
        .expect("valid metric options");
        reg(Box::new(sign_ins.clone()));
        // Every outcome shows from the start, at zero.
        for o in SIGN_IN_OUTCOMES {
            sign_ins.with_label_values(&[o]);
        }
        let limited = IntCounterVec::new(
            Opts::new(
                "applegate_rate_limited_total",
                "Requests refused by a rate limit, by limit.",
            ),
            &["limit"],
        )
        .expect("valid metric options");
        reg(Box::new(limited.clone()));
        let lookups = IntCounterVec::new(
            Opts::new(
                "applegate_cache_lookups_total",
                "Lookups in the session and bearer-token caches, by result.",
            ),
            &["cache", "result"],
        )
        .expect("valid metric options");
        reg(Box::new(lookups.clone()));
        let cache = |name: &str| Lookups {
            hit: lookups.with_label_values(&[name, "hit"]),
            miss: lookups.with_label_values(&[name, "miss"]),
        };
        reg(Box::new(apple.calls.clone()));
        reg(Box::new(apple.seconds.clone()));
        for e in APPLE_ENDPOINTS {
            apple.calls.with_label_values(&[e, "ok"]);
            apple.seconds.with_label_values(&[e]);
        }
        Metrics {
            requests: (0..routes).map(|_| OnceLock::new()).collect(),
            requests_vec,
            outcomes,
            no_route,
            gateway_seconds: histogram(
                &registry,
                "applegate_gateway_duration_seconds",
                "Time the gateway added to a request: the whole request less the upstream's part.",
            ),
            upstream_seconds: histogram(
                &registry,
                "applegate_upstream_duration_seconds",
                "Time from sending a request upstream to the upstream's response head.",
            ),
            sign_ins,
            rate_limited: RateLimited {
                per_client: limited.with_label_values(&["sign_in_per_client"]),
                total: limited.with_label_values(&["sign_in_total"]),
                apple: limited.with_label_values(&["apple_token_calls"]),
            },
            session_cache: cache("session"),
            bearer_cache: cache("bearer"),
            revocations: gauge(
                &registry,
                "applegate_revocations",
                "Revoked sessions and users held in memory.",
            ),
            apple_keys: gauge(
                &registry,
                "applegate_apple_keys",
                "Apple signing keys held (0: never loaded).",
            ),
            store_up: gauge(
                &registry,
                "applegate_store_up",
                "Whether the state store answered a read when scraped (1) or not (0).",
            ),
            open_connections: gauge(
                &registry,
                "applegate_open_connections",
                "Client connections open on the public listener.",
            ),
            access_log_dropped: {
                let c = IntCounter::new(
                    "applegate_access_log_dropped_total",
                    "Access log lines dropped: the queue (log.access_queue) was full, or the destination failed.",
                )
                .expect("valid metric options");
                reg(Box::new(c.clone()));
                c
            },
            registry,
        }
    }

    /// Counts one request: route index (`None`: no route), outcome index
    /// (into the `outcomes` given at start) and status (0: none written).
    pub fn request(&self, route: Option<usize>, outcome: usize, status: u16) {
        let row = match route.and_then(|r| Some((r, self.requests.get(r)?))) {
            // After the first request of the route, one atomic load.
            Some((r, lazy)) => {
                lazy.get_or_init(|| row(&self.requests_vec, &self.outcomes, &r.to_string()))
            }
            None => &self.no_route,
        };
        let class = match status {
            100..=599 => usize::from(status / 100),
            _ => 0,
        };
        if let Some(by_class) = row.get(outcome) {
            by_class[class].inc();
        }
    }

    /// Counts one sign-in ending `outcome` (of [`SIGN_IN_OUTCOMES`]).
    pub fn sign_in(&self, outcome: &str) {
        // Once per sign-in, beside a round trip to Apple: a label lookup
        // is nothing here.
        self.sign_ins.with_label_values(&[outcome]).inc();
    }

    /// The exposition in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail; the encoder only errs on I/O.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests land in their route, outcome and class; an unknown route
    /// index counts as no route rather than panicking.
    #[test]
    fn requests_are_counted_by_route_outcome_and_class() {
        let m = Metrics::new(2, &["a", "b"], &AppleCalls::default());
        m.request(Some(1), 1, 503);
        m.request(None, 0, 0);
        m.request(Some(9), 0, 200);
        let text = m.render();
        assert!(text.contains(r#"applegate_requests_total{outcome="b",route="1",status="5xx"} 1"#));
        assert!(
            text.contains(r#"applegate_requests_total{outcome="a",route="none",status="none"} 1"#)
        );
        assert!(
            text.contains(r#"applegate_requests_total{outcome="a",route="none",status="2xx"} 1"#)
        );
        assert!(text.contains(r#"applegate_sign_ins_total{outcome="apple_unreachable"} 0"#));
    }

    /// A route's row exists from its first request, whole (every outcome
    /// and status class, at zero but the one counted); a route never
    /// asked for shows nothing and holds no counters.
    #[test]
    fn a_routes_row_is_made_on_its_first_request() {
        let m = Metrics::new(10_000, &["a", "b"], &AppleCalls::default());
        let text = m.render();
        assert!(!text.contains(r#"route="0""#), "no row before a request");
        assert!(
            text.contains(r#"applegate_requests_total{outcome="b",route="none",status="5xx"} 0"#)
        );
        m.request(Some(9_999), 1, 200);
        m.request(Some(9_999), 1, 201);
        let text = m.render();
        assert!(
            text.contains(r#"applegate_requests_total{outcome="b",route="9999",status="2xx"} 2"#)
        );
        assert!(
            text.contains(r#"applegate_requests_total{outcome="a",route="9999",status="none"} 0"#)
        );
        let rows = text
            .lines()
            .filter(|l| l.starts_with("applegate_requests_total{"))
            .count();
        assert_eq!(
            rows,
            2 * 2 * STATUS_CLASSES.len(),
            "none and route 9999, whole"
        );
        assert_eq!(m.requests.iter().filter(|r| r.get().is_some()).count(), 1);
    }
}
