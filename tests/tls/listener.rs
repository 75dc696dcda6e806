//! The TLS listener: HTTP/2 and HTTP/1.1 by ALPN, the same decision for
//! both, and the edge guard on TLS connections.

use std::time::{Duration, Instant};

use applegate::kit::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::raw::Recorder;
use super::common::{Browser, Person};
use super::{client, Gateway};

/// Signed in over HTTPS, curl reaches the app with the session cookie over
/// HTTP/2 (`curl --http2`: ALPN picked h2) and over HTTP/1.1, and the app
/// sees the identity; without the cookie, the same h2 request is sent to
/// sign in: the gateway decided, not just passed bytes along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_the_app_signed_in_over_h2_and_http1() {
    let gw = Gateway::start(Upstream::Demo, "", "");
    let mut b = Browser::accepting_any_certificate();
    let page = b
        .sign_in(
            &gw.at("/oauth2/start?rd=/"),
            &Person::new("alice@example.com"),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let name = &gw.config.session.cookie_name;
    let value = b.cookie(name).expect("session cookie").value.clone();
    let cookie = format!("{name}={value}");
    let url = gw.at("/");
    for (flag, version) in [("--http2", "HTTP/2 200"), ("--http1.1", "HTTP/1.1 200")] {
        let out = gw.curl(&[flag, "-H", &format!("Cookie: {cookie}"), &url]);
        assert_eq!(out.status_line(), version, "{}", out.stderr);
        assert!(
            out.stdout.contains("alice@example.com"),
            "the app sees the identity over {flag}: {}",
            out.stdout
        );
    }
    let out = gw.curl(&["--http2", "-H", "Accept: text/html", &url]);
    assert_eq!(out.status_line(), "HTTP/2 302", "{}", out.stderr);
    assert!(
        out.stderr.contains("location: /oauth2/start?rd=%2F")
            || out.stderr.contains("location: https://localhost"),
        "{}",
        out.stderr
    );
}

/// Identity headers a client sends over HTTP/2 (lower-case names, as h2
/// has them) are removed like HTTP/1's, and the upstream gets the host
/// decided from `:authority` in `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_sent_over_h2_are_stripped() {
    let rec = Recorder::start();
    let gw = Gateway::start(
        Upstream::At(rec.addr),
        "",
        "[[routes]]\npath = \"/public/\"\nauth = \"public\"\nupstream = \"http://{upstream}\"\n",
    );
    let out = gw.curl(&[
        "--http2",
        "-H",
        "x-auth-request-email: evil@example.com",
        "-H",
        "X-Forwarded-User: evil",
        "-H",
        "x_auth_request_user: evil",
        &gw.at("/public/x?q=1"),
    ]);
    assert_eq!(out.status_line(), "HTTP/2 200", "{}", out.stderr);
    let seen = rec.take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let evil = seen[0].headers.iter().find(|(_, v)| v.contains("evil"));
    assert!(evil.is_none(), "an identity header got through: {seen:?}");
    assert_eq!(seen[0].target, "/public/x?q=1");
    assert_eq!(
        seen[0].header("host"),
        Some(format!("localhost:{}", gw.port).as_str())
    );
}

/// An HTTP/2 request whose `:authority` and `Host` disagree is refused
/// (400), never routed on one and forwarded with the other; the same
/// request with one host passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_authority_and_host_that_disagree_are_refused() {
    let rec = Recorder::start();
    let gw = Gateway::start(
        Upstream::At(rec.addr),
        "",
        "[[routes]]\npath = \"/public/\"\nauth = \"public\"\nupstream = \"http://{upstream}\"\n",
    );
    let uri = gw.at("/public/x");
    let req = |host: Option<&str>| {
        let mut r = http::Request::get(&uri);
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r.body(()).unwrap()
    };
    assert_eq!(client::h2_status(gw.port, req(None)).await, 200);
    assert_eq!(
        client::h2_status(gw.port, req(Some("admin.example.com"))).await,
        400
    );
    assert_eq!(
        rec.take().len(),
        1,
        "only the agreeing request went upstream"
    );
}

/// The edge guard under TLS, HTTP/1.1: a client that completes no
/// handshake is closed at `head_timeout`, and one that handshakes and then
/// sends half a head gets the guard's 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_deadline_holds_on_tls_connections() {
    let gw = Gateway::start(Upstream::Demo, "head_timeout = \"1s\"", "");
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("closed by the gateway, not by the test's timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut tls = client::connect(gw.port, &[b"http/1.1"]).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
}
