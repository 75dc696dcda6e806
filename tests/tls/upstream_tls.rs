//! `upstream_ca_file`: an `https://` upstream whose certificate is signed
//! by a private CA. The upstream is a TLS front (tokio-rustls, as pingora
//! re-exports it) for a plain backend: the h2c upstream of
//! [`super::upstream`] (so h2 over TLS, by ALPN) or the WebSocket echo of
//! `tests/common/ws.rs` (HTTP/1.1 over TLS). Without the key the same
//! upstream is not trusted: 502, fail closed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use applegate::kit::pki::Pki;
use pingora::tls::{ServerConfig, TlsAcceptor};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::common::raw;
use super::common::ws::{assert_echoes, header, status, upgrade, Echo, ACCEPT};
use super::common::{Browser, Nav, Options, Stack};
use super::config::check_routes;
use super::upstream::h2c_upstream;
use super::TempDir;

/// A TLS server with `pki`'s certificate (ALPN `h2`, `http/1.1`) that
/// passes each connection's bytes to `backend`; it records the protocol
/// each completed handshake agreed on.
struct TlsFront {
    port: u16,
    alpn: Arc<Mutex<Vec<String>>>,
}

impl TlsFront {
    fn start(pki: &Pki, backend: SocketAddr) -> TlsFront {
        pingora::tls::install_default_crypto_provider();
        let chain = CertificateDer::pem_file_iter(&pki.crt)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
        let mut cfg = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(cfg));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let alpn = Arc::new(Mutex::new(Vec::new()));
        let seen = alpn.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((sock, _)) = listener.accept().await {
                    let (acceptor, seen) = (acceptor.clone(), seen.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(sock).await else {
                            return;
                        };
                        let proto = tls.get_ref().1.alpn_protocol().unwrap_or(b"-");
                        seen.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(proto).into_owned());
                        let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        TlsFront { port, alpn }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.alpn.lock().unwrap())
    }
}

/// `[[routes]]` at `path` to the front, with `upstream_ca_file` if `ca`.
fn route(path: &str, front: &TlsFront, ca: Option<&Path>, extra: &str) -> String {
    format!(
        "[[routes]]\npath = \"{path}\"\nupstream = \"https://localhost:{}\"\n{}{extra}\n",
        front.port,
        ca.map(|c| format!("upstream_ca_file = {:?}\n", c.display().to_string()))
            .unwrap_or_default(),
    )
}

/// With `upstream_ca_file` naming the CA that signed the upstream's
/// certificate, a signed-in request reaches it over TLS with h2 agreed by
/// ALPN: the upstream (h2 only) sees HTTP/2 and the identity header. The
/// same upstream without the key is not trusted (the system's roots do not
/// know the CA): 502, and no handshake completes.
#[tokio::test]
async fn an_upstream_signed_by_upstream_ca_file_gets_h2_over_tls() {
    let dir = TempDir::new("up-h2");
    let pki = Pki::make(&dir.0);
    let h2 = h2c_upstream();
    let front = TlsFront::start(&pki, h2);
    let stack = Stack::with(Options {
        upstream: Some(h2),
        extra_toml: route("/ca/", &front, Some(&pki.ca), "upstream_http2 = true")
            + &route("/no-ca/", &front, None, "upstream_http2 = true"),
        ..Options::default()
    });
    let mut b = Browser::new();
    // Up to the callback: `/` goes to the h2c upstream over HTTP/1.1.
    stack.sign_in_steps(&mut b, "jane@example.com").await;
    let page = b.get(&stack.at("/ca/x"), Nav::TopLevel).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.starts_with("HTTP/2.0 localhost:")
            && page.body.ends_with(" who=jane@example.com"),
        "{}",
        page.body
    );
    assert_eq!(front.take(), ["h2"]);
    let page = b.get(&stack.at("/no-ca/x"), Nav::TopLevel).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(front.take().is_empty(), "no handshake completed");
}

/// A WebSocket through the gateway to an upstream over TLS (HTTP/1.1,
/// upgraded) signed by `upstream_ca_file`'s CA: 101, frames echo, the
/// upstream got the identity. Without the key: 502, no tunnel.
#[tokio::test]
async fn a_websocket_reaches_an_upstream_over_tls() {
    let dir = TempDir::new("up-ws");
    let pki = Pki::make(&dir.0);
    let echo = Echo::start();
    let front = TlsFront::start(&pki, echo.addr);
    let stack = Stack::with(Options {
        upstream: Some(echo.addr),
        extra_toml: route("/ws/", &front, Some(&pki.ca), "") + &route("/no-ca/", &front, None, ""),
        ..Options::default()
    });
    let mut b = Browser::new();
    stack.sign_in_steps(&mut b, "jane@example.com").await;
    let cookie = format!(
        "Cookie: {}={}\r\n",
        stack.session_cookie(),
        b.cookie(stack.session_cookie()).unwrap().value
    );
    let (line, headers, mut r) = upgrade(&stack, "/ws/chat", &cookie);
    assert_eq!(status(&line), 101, "{line} {headers:?}");
    assert_eq!(header(&headers, "sec-websocket-accept"), [ACCEPT]);
    assert_echoes(&mut r, "over tls");
    assert_echoes(&mut r, "again");
    assert_eq!(front.take(), ["http/1.1"]);
    let heads = echo.take();
    assert_eq!(heads.len(), 1);
    assert_eq!(
        header(&heads[0], "x-auth-request-email"),
        ["jane@example.com"]
    );
    let (line, _, _) = upgrade(&stack, "/no-ca/chat", &cookie);
    assert_eq!(status(&line), 502, "{line}");
    assert!(front.take().is_empty() && echo.take().is_empty());
}

/// `upstream_ca_file` problems are named by key path, exit 2: a missing
/// file, one with no certificate, and the key on an http:// upstream. A
/// good CA file passes.
#[test]
fn upstream_ca_file_problems_are_reported_with_key_paths() {
    let dir = TempDir::new("up-cfg");
    let pki = Pki::make(&dir.0);
    std::fs::write(dir.path("junk.pem"), "hello\n").unwrap();
    let https = "upstream = \"https://localhost:8443\"";
    let ca = pki.ca.display().to_string();
    for (routes, expected) in [
        (
            format!("{https}\nupstream_ca_file = \"missing.pem\""),
            "routes[0].upstream_ca_file: cannot read",
        ),
        (
            format!("{https}\nupstream_ca_file = \"junk.pem\""),
            "routes[0].upstream_ca_file: ",
        ),
        (
            format!("upstream = \"http://127.0.0.1:3000\"\nupstream_ca_file = {ca:?}"),
            "routes[0].upstream_ca_file: only for https://",
        ),
    ] {
        let (code, out) = check_routes(&dir, "", &format!("[[routes]]\npath = \"/\"\n{routes}\n"));
        assert_eq!(code, 2, "{routes}: {out}");
        assert!(
            out.contains(expected),
            "{routes}: expected {expected:?} in {out}"
        );
    }
    let (code, out) = check_routes(
        &dir,
        "",
        &format!("[[routes]]\npath = \"/\"\n{https}\nupstream_ca_file = {ca:?}\n"),
    );
    assert_eq!(code, 0, "{out}");
}

/// An app answering `/healthz` with `health` and counting other requests.
fn counting_app(health: u16) -> (SocketAddr, Arc<AtomicUsize>, applegate::httpd::Handle) {
    use applegate::httpd::{self, Reply};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let handler: httpd::Handler = Arc::new(move |req| {
        if req.path == "/healthz" {
            return Reply::new(health, "text/plain", "health");
        }
        count.fetch_add(1, Ordering::SeqCst);
        Reply::new(200, "text/plain", "app")
    });
    let handle = httpd::spawn("ca-app", listener, handler).unwrap();
    (addr, served, handle)
}

/// The active health check trusts `upstream_ca_file` as requests do: of a
/// pool of two https upstreams, the one answering 500 on `/healthz` gets
/// no traffic. (Were the check to distrust both, both would be down, and
/// a pool with every backend down tries them all.)
#[test]
fn the_health_check_trusts_upstream_ca_file() {
    let dir = TempDir::new("up-hc");
    let pki = Pki::make(&dir.0);
    let (a, a_served, _ha) = counting_app(200);
    let (b, b_served, _hb) = counting_app(500);
    let (fa, fb) = (TlsFront::start(&pki, a), TlsFront::start(&pki, b));
    let stack = Stack::with(Options {
        upstream: Some(a),
        extra_toml: format!(
            "[[routes]]\npath = \"/pool/\"\nauth = \"public\"\n\
             upstream = [\"https://localhost:{}\", \"https://127.0.0.1:{}\"]\n\
             upstream_ca_file = {:?}\nhealth_check = \"/healthz\"\nhealth_check_interval = \"1s\"\n",
            fa.port,
            fb.port,
            pki.ca.display().to_string()
        ),
        ..Options::default()
    });
    std::thread::sleep(Duration::from_millis(700));
    for _ in 0..10 {
        let r = raw::send(
            stack.gateway.addr,
            "GET /pool/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        (
            a_served.load(Ordering::SeqCst),
            b_served.load(Ordering::SeqCst)
        ),
        (10, 0)
    );
}
