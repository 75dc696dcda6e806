//! Caddy `forward_auth` in front of `/oauth2/auth`, running the shipped
//! `conf/Caddyfile.forward-auth`.

use std::process::Command;

use crate::common::Stack;
use crate::procs::{require, Proc, Scratch};

/// Caddy running the shipped site in front of `stack`, on `port`.
struct Caddy {
    _proc: Proc,
    _dir: Scratch,
}

fn start(stack: &Stack, port: u16) -> Caddy {
    let caddy = require("caddy", "caddy");
    let dir = Scratch::new("caddy");
    let site = crate::shipped(
        "Caddyfile.forward-auth",
        &[
            // A plain-http site address: no certificate to get.
            ("app.example.com {", format!("http://localhost:{port} {{")),
            ("127.0.0.1:4180", stack.gateway.addr.to_string()),
            ("127.0.0.1:3000", crate::app(stack).to_string()),
        ],
    );
    let site = dir.write("site.Caddyfile", &site);
    // Around the site, what a test needs: no admin endpoint (it would take
    // a fixed port), no automatic HTTPS, no state in $HOME.
    let main = format!(
        "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {d}/data\n}}\n\nimport {site}\n",
        d = dir.path.display(),
        site = site.display()
    );
    let main = dir.write("Caddyfile", &main);
    let mut cmd = Command::new(caddy);
    cmd.arg("run")
        .arg("--config")
        .arg(&main)
        .args(["--adapter", "caddyfile"])
        .env("HOME", &dir.path)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    let mut proc = Proc::start("caddy", cmd, dir.join("caddy.log"));
    proc.wait_port(port);
    Caddy {
        _proc: proc,
        _dir: dir,
    }
}

/// Through Caddy and the shipped Caddyfile, the same as through nginx: a
/// browser without a session is sent to sign in and back, an API call
/// gets 401, the route reported in `X-Forwarded-Uri` decides (a public
/// path passes), a sign-in through the emulator lands on the app with the
/// identity headers (`copy_headers`), and a client's own identity headers
/// never reach the app.
#[tokio::test]
async fn caddy_forward_auth_with_the_shipped_caddyfile() {
    let (port, stack) = crate::gateway_behind();
    let front = format!("http://localhost:{port}");
    let _caddy = start(&stack, port);
    crate::forward_auth_through(&front).await;
}
