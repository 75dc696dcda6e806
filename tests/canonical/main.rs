//! The one canonical request, held over real sockets: a request admitted
//! without authentication is public under every reading an upstream may
//! give the path and host it received. The upstream here records the raw
//! request line and `Host`, so each test checks what an app would act on.
//! One test crate (`cargo test --test canonical`) in a few files: paths,
//! hosts, and the readings rule over generated ones.

#[path = "../common/mod.rs"]
mod common;
mod hosts;
mod paths;
mod readings;

use common::raw::{self, Recorder};
use common::{Options, Stack};

/// Routes `/` (sign-in required) and `/public/` (public) on one upstream.
fn required_root(rec: &Recorder) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/public/", "public")],
        extra_toml: "[[routes]]\npath = \"/repo/\"\nauth = \"public\"\nencoded_slashes = \"keep\"\nupstream = \"http://{upstream}\"\n".into(),
        ..Options::default()
    })
}

/// Routes `/` (public) and `/admin` (sign-in required), and a host route
/// `admin.example.com` (required).
fn public_root(rec: &Recorder) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        root_auth: "public",
        routes: vec![("/admin", "required")],
        extra_toml: "[[routes]]\nhost = \"admin.example.com\"\npath = \"/\"\nupstream = \"http://{upstream}\"\n".into(),
        ..Options::default()
    })
}

/// `GET <target>` with `Host: <host>`, no credentials, as an API client.
fn get(stack: &Stack, target: &str, host: &str) -> raw::Reply {
    raw::send(
        stack.gateway.addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json"),
    )
}

/// The single request the upstream saw, if any.
fn forwarded(rec: &Recorder) -> Option<raw::Seen> {
    let mut seen = rec.take();
    assert!(seen.len() <= 1, "one request forwarded at most: {seen:?}");
    seen.pop()
}

fn assert_refused(stack: &Stack, rec: &Recorder, target: &str, status: u16) {
    let r = get(stack, target, "app.example.com");
    assert_eq!(r.status, status, "{target}: {}", r.text());
    assert!(
        forwarded(rec).is_none(),
        "{target} must not reach the upstream"
    );
}

fn assert_forwarded_as(stack: &Stack, rec: &Recorder, target: &str, upstream_target: &str) {
    let r = get(stack, target, "app.example.com");
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    let seen = forwarded(rec).expect("forwarded");
    assert_eq!(
        seen.line,
        format!("GET {upstream_target} HTTP/1.1"),
        "{target}"
    );
}
