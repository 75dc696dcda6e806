//! The edge, over real sockets: forwarding headers, head limits, the
//! connection cap, pipelining, our own error pages, cookies the upstream
//! may not set, sign-in rate limits, cross-site sign-out, the same
//! decision at `/oauth2/userinfo` as everywhere, per-route policy,
//! WebSocket upgrades decided like any request, upstream pools, and many
//! idle keep-alive connections. One test crate
//! (`cargo test --test edge`) in a few files, by topic.

#[path = "../common/mod.rs"]
mod common;
mod cookies;
mod decision;
mod forwarding;
mod idle;
mod limits;
mod pools;
mod rate_limits;
mod route_policy;
mod websocket;

use common::raw::{self, Recorder};
use common::{Options, Stack};

/// A stack with every route on a recording upstream, `/public/` public.
fn stack(rec: &Recorder, server_toml: &str) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/public/", "public")],
        server_toml: server_toml.into(),
        ..Options::default()
    })
}

fn get(stack: &Stack, head: &str) -> raw::Reply {
    raw::send(stack.gateway.addr, head)
}

/// An id_token from the app `com.example.ios`, as a native client sends it.
fn native_token(stack: &Stack) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    stack.emulator.sign(&serde_json::json!({
        "iss": stack.emulator.base_url(), "aud": "com.example.ios", "exp": now + 3600, "iat": now,
        "sub": "001234.0123456789abcdef0123456789abcdef.0042", "email": "a@example.com",
        "email_verified": "true",
    }))
}
