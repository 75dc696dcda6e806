//! `upstream_http2 = true`: the gateway speaks HTTP/2 to the upstream
//! (h2c with prior knowledge over http://).

use std::net::SocketAddr;

use applegate::kit::Upstream;

use super::Gateway;

/// An h2c-only upstream (the `h2` crate's server on plain TCP): it
/// answers every request with the HTTP version and `:authority` it got.
/// An HTTP/1.1 request is not HTTP/2's preface, so it fails. Behind
/// [`super::upstream_tls`]'s TLS front it is an h2 upstream over TLS.
pub fn h2c_upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(sock).await else {
                        return;
                    };
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        let body = format!(
                            "{:?} {} who={}",
                            req.version(),
                            req.uri().authority().map_or("", |a| a.as_str()),
                            req.headers()
                                .get("x-auth-request-email")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                        );
                        let resp = http::Response::new(());
                        if let Ok(mut send) = respond.send_response(resp, false) {
                            let _ = send.send_data(body.into(), true);
                        }
                    }
                });
            }
        });
    });
    addr
}

/// A route with `upstream_http2 = true` reaches an h2c upstream, which
/// sees HTTP/2 (whatever the client spoke to the gateway) and the
/// request's host; the same upstream on a route without it fails (502):
/// the flag is what makes the gateway speak HTTP/2.
#[test]
fn a_route_with_upstream_http2_speaks_h2_to_its_upstream() {
    let h2 = h2c_upstream();
    let gw = Gateway::start(
        Upstream::At(h2),
        "",
        "[[routes]]\npath = \"/h2/\"\nauth = \"public\"\nupstream = \"http://{upstream}\"\nupstream_http2 = true\n\
         [[routes]]\npath = \"/h1/\"\nauth = \"public\"\nupstream = \"http://{upstream}\"\n",
    );
    for flag in ["--http1.1", "--http2"] {
        let out = gw.curl(&[flag, &gw.at("/h2/x")]);
        assert!(out.status_line().ends_with(" 200"), "{}", out.stderr);
        assert_eq!(
            out.stdout,
            format!("HTTP/2.0 localhost:{} who=-", gw.port),
            "{}",
            out.stderr
        );
    }
    let out = gw.curl(&["--http1.1", &gw.at("/h1/x")]);
    assert_eq!(out.status_line(), "HTTP/1.1 502", "{}", out.stderr);
}
