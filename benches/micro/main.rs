//! Micro-benchmarks of the gateway's hot paths, each beside a naive
//! baseline measured in the same run; the closing table prints the ratios.
//!
//!     cargo bench --bench micro
//!
//! Targets (issue #3): session open + check ≤ 2 µs; cached bearer check ≤ 2 µs.
//! Ratios are baseline time / applegate time: above 1, applegate is faster.
//!
//! One file per hot path (sessions, identity headers, routes and the
//! canonical request, Apple's tokens and client secret) and the report.

mod apple;
mod headers;
mod report;
mod routes;
mod session;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use applegate::identity::{Identity, Proof};
use criterion::Criterion;

use apple::{bench_client_secret, bench_tokens};
use headers::bench_headers;
use report::report;
use routes::{bench_canonical, bench_routes};
use session::bench_session;

const SECRET: &str = "b0f1c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5";

/// Polls a future that completes without waiting (a cache hit) once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected a cache hit that completes at once"),
    }
}

fn session() -> Identity {
    Identity {
        sub: "001234.0123456789abcdef0123456789abcdef.0042".into(),
        email: Some("jane.appleseed@example.com".into()),
        email_verified: true,
        is_private_email: false,
        name: Some("Jane Appleseed".into()),
        proof: Proof::Session {
            id: "Yq3x9Q2mS0aL8wPz1cV7bA".into(),
            issued_at: 1_700_000_000,
            expires_at: 1_700_604_800,
            seen_at: 1_700_000_000,
            checked_at: 1_700_000_000,
        },
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_session(&mut c);
    bench_headers(&mut c);
    bench_routes(&mut c);
    bench_canonical(&mut c);
    bench_tokens(&mut c);
    bench_client_secret(&mut c);
    c.final_summary();
    report();
}
