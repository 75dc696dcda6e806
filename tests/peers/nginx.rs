//! nginx `auth_request` in front of `/oauth2/auth`, running the shipped
//! `conf/nginx-forward-auth.conf`.

use std::process::Command;

use crate::common::Stack;
use crate::procs::{require, Proc, Scratch};

/// nginx running the shipped site config in front of `stack`, on `port`.
struct Nginx {
    _proc: Proc,
    _dir: Scratch,
}

fn start(stack: &Stack, port: u16) -> Nginx {
    let nginx = require("nginx", "nginx");
    let dir = Scratch::new("nginx");
    let site = crate::shipped(
        "nginx-forward-auth.conf",
        &[
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            (
                "server_name app.example.com;",
                "server_name localhost;".into(),
            ),
            ("127.0.0.1:4180", stack.gateway.addr.to_string()),
            ("127.0.0.1:3000", crate::app(stack).to_string()),
        ],
    );
    let site = dir.write("site.conf", &site);
    // What nginx.conf around the site provides, kept in the scratch
    // directory: the pid file, temp paths, logs to stderr (our log file).
    let d = dir.path.display();
    let main = format!(
        "worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log stderr notice;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         access_log {d}/access.log;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         include {site};\n\
         }}\n",
        site = site.display()
    );
    let main = dir.write("nginx.conf", &main);
    let mut cmd = Command::new(nginx);
    cmd.arg("-e")
        .arg("stderr")
        .arg("-p")
        .arg(&dir.path)
        .arg("-c")
        .arg(&main)
        .args(["-g", "daemon off;"]);
    let mut proc = Proc::start("nginx", cmd, dir.join("nginx.log"));
    proc.wait_port(port);
    Nginx {
        _proc: proc,
        _dir: dir,
    }
}

/// Through nginx and the shipped config: a browser without a session is
/// sent to sign in and back, an API call gets 401, the route reported in
/// `X-Original-URI` decides (a public path passes), a sign-in through the
/// emulator lands on the app with the identity headers, and a client's
/// own identity headers never reach the app.
#[tokio::test]
async fn nginx_auth_request_with_the_shipped_config() {
    let (port, stack) = crate::gateway_behind();
    let front = format!("http://localhost:{port}");
    let _nginx = start(&stack, port);
    crate::forward_auth_through(&front).await;
    // The auth location is internal: nobody outside asks it directly.
    let mut b = crate::common::Browser::new();
    let page = b
        .get(&format!("{front}/oauth2/auth"), crate::common::Nav::Api)
        .await;
    assert_eq!(page.status, 404, "{}", page.body);
}
