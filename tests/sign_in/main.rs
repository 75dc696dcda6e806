//! The sign-in round trip through the real gateway, the Apple emulator and
//! the demo upstream, over real sockets. One test crate
//! (`cargo test --test sign_in`) in a few files, by topic.

mod assertion;
mod callback;
#[path = "../common/mod.rs"]
mod common;
mod lifetime;
mod names;
mod notifications;
mod replicas;
mod revoke;
mod round_trip;
mod session;

fn header<'a>(echo: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}
