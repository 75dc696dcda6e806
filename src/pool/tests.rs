//! Picking, skipping and retrying, without sockets (the real-socket tests
//! are in `tests/edge/pools.rs`).

use super::*;
use crate::config::Upstreams;

fn pool(ports: &[u16], balance: Balance) -> Pool {
    let mut u = Upstreams::at(SocketAddr::from(([127, 0, 0, 1], ports[0])));
    for p in &ports[1..] {
        let more = Upstreams::at(SocketAddr::from(([127, 0, 0, 1], *p)));
        u.members.extend(more.members);
    }
    u.balance = balance;
    Pool::with_options(&u, PeerOptions::new())
}

fn port(peer: &HttpPeer) -> u16 {
    peer._address.as_inet().unwrap().port()
}

#[test]
fn round_robin_takes_each_in_turn() {
    let p = pool(&[1, 2, 3], Balance::RoundRobin);
    let got: Vec<u16> = (0..6)
        .map(|_| port(&p.pick(&mut Attempt::default()).unwrap()))
        .collect();
    assert_eq!(got, [1, 2, 3, 1, 2, 3]);
}

#[test]
fn a_failed_backend_is_skipped_and_the_request_tries_another() {
    let p = pool(&[1, 2], Balance::RoundRobin);
    let mut a = Attempt::default();
    let first = p.pick(&mut a).unwrap();
    assert_eq!(port(&first), 1);
    assert!(p.failed(&first, &a), "another backend is left");
    assert_eq!(port(&p.pick(&mut a).unwrap()), 2);
    let second = p.pick(&mut Attempt::default()).unwrap();
    assert!(
        !p.failed(&first, &a),
        "both tried: nothing left for this request"
    );
    // Backend 1 is skipped by new requests for the fail timeout.
    for _ in 0..4 {
        assert_eq!(port(&p.pick(&mut Attempt::default()).unwrap()), 2);
    }
    drop(second);
    // With every backend down, they are tried anyway; each once.
    let mut a = Attempt::default();
    p.failed(&p.pick(&mut a).unwrap(), &a);
    let mut a = Attempt::default();
    assert!(p.pick(&mut a).is_some());
    assert!(p.pick(&mut a).is_some());
    assert!(p.pick(&mut a).is_none(), "each backend once per request");
}

#[test]
fn least_conn_prefers_the_idle_backend() {
    let p = pool(&[1, 2], Balance::LeastConn);
    let mut busy = Attempt::default();
    let held = port(&p.pick(&mut busy).unwrap());
    for _ in 0..4 {
        assert_ne!(port(&p.pick(&mut Attempt::default()).unwrap()), held);
    }
    drop(busy);
    let ports: std::collections::HashSet<u16> = (0..4)
        .map(|_| port(&p.pick(&mut Attempt::default()).unwrap()))
        .collect();
    assert_eq!(ports.len(), 2, "once it is free, both are used again");
}
