//! Upstream pools over real sockets (issue #10 item 3): a route's
//! `upstream` as a list, requests spread over it, a stopped upstream
//! skipped without failing a request and taken back once it answers, the
//! active health check, and names resolved.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use applegate::httpd::{self, Reply};

use super::common::raw;
use super::common::{Options, Stack};

/// An upstream that counts the requests it serves (its health check path
/// apart) and can be stopped and started again on its port.
struct App {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    /// What `/healthz` answers.
    health: Arc<AtomicU16>,
    handle: Option<httpd::Handle>,
}

impl App {
    fn start() -> App {
        let mut app = App {
            addr: "127.0.0.1:0".parse().unwrap(),
            served: Arc::default(),
            health: Arc::new(AtomicU16::new(200)),
            handle: None,
        };
        app.restart();
        app
    }

    /// Listens again (on the same port after the first time).
    fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        self.addr = listener.local_addr().unwrap();
        let (served, health) = (self.served.clone(), self.health.clone());
        let handler: httpd::Handler = Arc::new(move |req| {
            if req.path == "/healthz" {
                return Reply::new(health.load(Ordering::SeqCst), "text/plain", "health");
            }
            served.fetch_add(1, Ordering::SeqCst);
            Reply::new(200, "text/plain", "app")
        });
        self.handle = Some(httpd::spawn("pool-app", listener, handler).unwrap());
    }

    fn stop(&mut self) {
        self.handle = None;
    }

    /// Requests served since the last call.
    fn take(&self) -> usize {
        self.served.swap(0, Ordering::SeqCst)
    }
}

/// A gateway whose `/pool/` route (public) goes to `upstream` (TOML value)
/// with `keys` added to the route.
fn gateway(upstream: &str, keys: &str) -> Stack {
    Stack::with(Options {
        extra_toml: format!(
            "[[routes]]\npath = \"/pool/\"\nauth = \"public\"\nupstream = {upstream}\n{keys}\n"
        ),
        ..Options::default()
    })
}

fn list(apps: &[&App]) -> String {
    let urls: Vec<String> = apps
        .iter()
        .map(|a| format!("\"http://{}\"", a.addr))
        .collect();
    format!("[{}]", urls.join(", "))
}

/// `n` requests to the pool; the statuses that were not 200.
fn requests(stack: &Stack, n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| {
            raw::send(
                stack.gateway.addr,
                &format!("GET /pool/{i} HTTP/1.1\r\nHost: localhost"),
            )
            .status
        })
        .filter(|s| *s != 200)
        .collect()
}

/// Round robin: twenty requests, ten to each of two upstreams.
#[test]
fn round_robin_spreads_requests_evenly() {
    let (a, b) = (App::start(), App::start());
    let stack = gateway(&list(&[&a, &b]), "");
    assert_eq!(requests(&stack, 20), Vec::<u16>::new());
    assert_eq!((a.take(), b.take()), (10, 10));
}

/// One upstream stopped: no request fails (the one that finds it gone is
/// retried on the other, as nothing was sent), traffic goes to the other;
/// started again, it gets requests once `upstream_fail_timeout` is over.
#[test]
fn a_stopped_upstream_is_skipped_without_a_failed_request_and_taken_back() {
    let (a, mut b) = (App::start(), App::start());
    let stack = gateway(&list(&[&a, &b]), "upstream_fail_timeout = \"1s\"");
    assert_eq!(requests(&stack, 4), Vec::<u16>::new());
    assert_eq!((a.take(), b.take()), (2, 2));
    b.stop();
    assert_eq!(requests(&stack, 20), Vec::<u16>::new(), "no request fails");
    assert_eq!(a.take(), 20, "all went to the one left");
    b.restart();
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(requests(&stack, 10), Vec::<u16>::new());
    assert!(b.take() >= 4, "the restarted upstream is used again");
    a.take();
}

/// The active health check: an upstream answering 500 on `/healthz` gets
/// no traffic; once it answers 200, it gets its share again.
#[test]
fn the_health_check_takes_an_upstream_answering_500_out() {
    let (a, b) = (App::start(), App::start());
    b.health.store(500, Ordering::SeqCst);
    let stack = gateway(
        &list(&[&a, &b]),
        "health_check = \"/healthz\"\nhealth_check_interval = \"1s\"",
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(requests(&stack, 10), Vec::<u16>::new());
    assert_eq!((a.take(), b.take()), (10, 0));
    b.health.store(200, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(requests(&stack, 10), Vec::<u16>::new());
    assert_eq!((a.take(), b.take()), (5, 5));
}

/// Hosts given as names work: `localhost:PORT` in a pool (every address
/// it resolves to is a backend; one the app does not listen on, `::1`
/// here, is skipped after its first refused connect, and no request
/// fails).
#[test]
fn a_pool_of_names_works() {
    let (a, b) = (App::start(), App::start());
    let upstream = format!(
        "[\"http://localhost:{}\", \"http://localhost:{}\"]",
        a.addr.port(),
        b.addr.port()
    );
    let stack = gateway(&upstream, "balance = \"least_conn\"");
    assert_eq!(requests(&stack, 20), Vec::<u16>::new());
    let (ha, hb) = (a.take(), b.take());
    assert_eq!(ha + hb, 20);
    assert!(ha > 0 && hb > 0, "both used: {ha} and {hb}");
}
