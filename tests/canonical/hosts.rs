//! Hosts: absolute-form targets, spellings, malformed hosts and ports
//! cannot skip a host route; the upstream gets the canonical host.

use super::common::raw::{self, Recorder};
use super::common::{Options, Stack};
use super::{assert_forwarded_as, forwarded, get, public_root};

/// `GET http://admin.example.com/x` with no `Host`, or another `Host`,
/// cannot skip the host route.
#[test]
fn absolute_form_targets_cannot_skip_a_host_route() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    let addr = stack.gateway.addr;
    let r = raw::send(
        addr,
        "GET http://admin.example.com/x HTTP/1.1\r\nAccept: application/json",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let r = raw::send(
        addr,
        "GET http://admin.example.com/x HTTP/1.1\r\nHost: app.example.com\r\nAccept: application/json",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Spelled differently from `Host`: refused before anything else (the
    // edge wants the two byte for byte), so never public either.
    let r = raw::send(
        addr,
        "GET http://ADMIN.example.com./x HTTP/1.1\r\nHost: admin.example.com\r\nAccept: application/json",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.header("server").is_none(), "our page, not pingora's");
    let r = raw::send(
        addr,
        "GET http://ADMIN.example.com./x HTTP/1.1\r\nHost: ADMIN.example.com.\r\nAccept: application/json",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(forwarded(&rec).is_none());
    // A public host in absolute form reaches the upstream in origin form.
    let r = raw::send(
        addr,
        "GET http://App.Example.com/x?y=1 HTTP/1.1\r\nAccept: application/json",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = forwarded(&rec).unwrap();
    assert_eq!(seen.line, "GET /x?y=1 HTTP/1.1");
    assert_eq!(seen.header("host"), Some("app.example.com"));
}

/// `Host: admin.example.com.` (trailing dot), other case or a port: the
/// same host.
#[test]
fn host_spellings_cannot_skip_a_host_route() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    for h in [
        "admin.example.com.",
        "ADMIN.Example.Com",
        "admin.example.com:8080",
        "admin.example.com.:80",
    ] {
        let r = get(&stack, "/x", h);
        assert_eq!(r.status, 401, "Host: {h}");
    }
    assert!(forwarded(&rec).is_none());
}

/// Duplicate `Host`, userinfo, spaces and junk are refused; the upstream
/// gets the canonical host.
#[test]
fn malformed_hosts_are_refused_and_good_ones_canonicalized() {
    let rec = Recorder::start();
    let stack = public_root(&rec);
    let addr = stack.gateway.addr;
    for head in [
        "GET /x HTTP/1.1\r\nHost: app.example.com\r\nHost: admin.example.com",
        "GET /x HTTP/1.1\r\nHost: user@admin.example.com",
        "GET /x HTTP/1.1\r\nHost: admin.example.com..",
        "GET /x HTTP/1.1\r\nHost: admin_example.com:99999",
        "GET /x HTTP/1.1\r\nHost: a%2eb",
        "GET /x HTTP/1.1",
    ] {
        let r = raw::send(addr, head);
        assert_eq!(r.status, 400, "{head:?}: {}", r.text());
    }
    assert!(forwarded(&rec).is_none());
    let r = get(&stack, "/x", "App.Example.COM.:8080");
    assert_eq!(r.status, 200);
    assert_eq!(
        forwarded(&rec).unwrap().header("host"),
        Some("app.example.com:8080")
    );
}

/// A route naming a port is not skipped by another port or none: apps
/// routing by host name ignore the port.
#[test]
fn a_port_scoped_host_route_is_not_skipped_by_the_port() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        root_auth: "public",
        extra_toml: "[[routes]]\nhost = \"admin.example.com:8443\"\npath = \"/\"\nupstream = \"http://{upstream}\"\n".into(),
        ..Options::default()
    });
    for h in [
        "admin.example.com:8443",
        "admin.example.com:1",
        "admin.example.com",
        "admin.example.com:",
    ] {
        let r = get(&stack, "/secret", h);
        assert_eq!(r.status, 401, "Host: {h}");
    }
    assert!(forwarded(&rec).is_none());
    assert_forwarded_as(&stack, &rec, "/secret", "/secret");
}
