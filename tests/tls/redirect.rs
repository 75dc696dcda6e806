//! `server.redirect_http`: the plain listener sends browsers to https.

use applegate::kit::{self, Upstream};

use super::common::raw;
use super::Gateway;

/// Every request on the plain listener is redirected to the https public
/// URL with its path and query, to the configured host whatever `Host`
/// says (no open redirect): 301 for GET, 308 for POST (which keeps the
/// method and body). `/ping` is answered there, 200.
#[test]
fn plain_http_is_redirected_to_the_public_url() {
    let plain = kit::free_port();
    let gw = Gateway::start(
        Upstream::Demo,
        &format!("redirect_http = \"127.0.0.1:{plain}\""),
        "",
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], plain));
    assert!(kit::wait_listening(
        addr,
        std::time::Duration::from_secs(10)
    ));
    let r = raw::send(
        addr,
        "GET /a/b?c=d&e=%2F HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    );
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(r.header("location"), Some(gw.at("/a/b?c=d&e=%2F").as_str()));
    let r = raw::send(
        addr,
        "POST http://evil.example/form HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 308, "{}", r.text());
    assert_eq!(r.header("location"), Some(gw.at("/form").as_str()));
    let r = raw::send(addr, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK\n");
    // curl: the redirect it is given leads to the TLS listener, which
    // answers it (over HTTP/2) with the sign-in redirect to Apple.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{redirect_url}"])
        .arg(format!("http://127.0.0.1:{plain}/oauth2/start?rd=/"))
        .output()
        .unwrap();
    let next = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(next, gw.at("/oauth2/start?rd=/"));
    let out = gw.curl(&["--http2", &next]);
    assert_eq!(out.status_line(), "HTTP/2 302", "{}", out.stderr);
}

/// The redirect listener has the edge's head limits too: a head over
/// `max_head_size` gets the guard's 431.
#[test]
fn the_redirect_listener_is_behind_the_edge() {
    let plain = kit::free_port();
    let _gw = Gateway::start(
        Upstream::Demo,
        &format!("redirect_http = \"127.0.0.1:{plain}\"\nmax_head_size = 1024"),
        "",
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], plain));
    assert!(kit::wait_listening(
        addr,
        std::time::Duration::from_secs(10)
    ));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let r = raw::send(addr, &big);
    assert_eq!(r.status, 431, "{}", r.text());
}
