//! WebSockets through the gateway (issue #10, item 4), over real sockets:
//! an upgrade is one request, decided like any other (identity, policy,
//! revocation, identity headers stripped then set) before pingora opens
//! the tunnel. The upstream is a minimal RFC 6455 echo server
//! (`tests/common/ws.rs`, shared with the TLS upstream tests); the client
//! is raw bytes.

use super::common::ws::{
    assert_echoes, assert_not_upgraded, header, status, upgrade, Echo, ACCEPT, KEY,
};
use super::common::{Browser, Nav, Options, Stack};

fn stack(echo: &Echo) -> Stack {
    Stack::with(Options {
        upstream: Some(echo.addr),
        routes: vec![("/public/", "public")],
        ..Options::default()
    })
}

/// Signed in: the upgrade is proxied and echoes; the upstream got the
/// identity headers, not the client's spoofed ones, and the handshake's
/// own headers.
#[tokio::test]
async fn a_signed_in_upgrade_echoes_with_the_identity() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let mut b = Browser::new();
    let steps = stack.sign_in_steps(&mut b, "jane@example.com").await;
    assert_eq!(steps.callback_page.status, 303);
    let cookie = b.cookie(stack.session_cookie()).unwrap().value.clone();
    let spoof = "X-Auth-Request-Email: boss@example.com\r\nX-Auth-Request-User: 001.boss\r\n";
    let (line, headers, mut r) = upgrade(
        &stack,
        "/chat",
        &format!("Cookie: applegate={cookie}\r\n{spoof}"),
    );
    assert_eq!(status(&line), 101, "{line} {headers:?}");
    assert_eq!(header(&headers, "sec-websocket-accept"), [ACCEPT]);
    assert_echoes(&mut r, "hello");
    assert_echoes(&mut r, "again");
    let heads = echo.take();
    assert_eq!(heads.len(), 1);
    let head = &heads[0];
    assert_eq!(header(head, "x-auth-request-email"), ["jane@example.com"]);
    assert_ne!(header(head, "x-auth-request-user"), ["001.boss"]);
    assert_eq!(header(head, "x-auth-request-user").len(), 1);
    assert_eq!(header(head, "sec-websocket-key"), [KEY]);
    assert!(
        !header(head, "cookie")
            .iter()
            .any(|c| c.contains("applegate=")),
        "the session cookie stays with the gateway: {head:?}"
    );
}

/// Without an identity: 401 for an API-like upgrade (as browsers send
/// them: `Sec-Fetch-Mode: websocket`), 302 to sign in for a navigation;
/// never 101, and the upstream never sees a connection.
#[tokio::test]
async fn an_upgrade_without_identity_opens_no_tunnel() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let (line, _, mut r) = upgrade(
        &stack,
        "/chat",
        "Sec-Fetch-Mode: websocket\r\nX-Auth-Request-Email: boss@example.com\r\n",
    );
    assert_eq!(status(&line), 401, "{line}");
    assert_not_upgraded(&mut r, &line);
    let (line, headers, mut r) = upgrade(
        &stack,
        "/chat",
        "Accept: text/html\r\nSec-Fetch-Mode: navigate\r\n",
    );
    assert_eq!(status(&line), 302, "{line}");
    assert!(header(&headers, "location")[0].contains("/oauth2/start"));
    assert_not_upgraded(&mut r, &line);
    assert!(echo.take().is_empty(), "the upstream saw no connection");
}

/// A public route's upgrade needs no identity, and still carries none the
/// client made up.
#[tokio::test]
async fn a_public_route_upgrades_without_identity() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let (line, _, mut r) = upgrade(
        &stack,
        "/public/feed",
        "X-Auth-Request-Email: boss@example.com\r\n",
    );
    assert_eq!(status(&line), 101, "{line}");
    assert_echoes(&mut r, "public");
    let heads = echo.take();
    assert_eq!(heads.len(), 1);
    assert!(header(&heads[0], "x-auth-request-email").is_empty());
}

/// A signed-out (revoked) session's cookie, replayed on an upgrade, is
/// refused like on any request: 401, no tunnel, no upstream connection.
#[tokio::test]
async fn a_revoked_session_cannot_upgrade() {
    let echo = Echo::start();
    let stack = stack(&echo);
    let mut b = Browser::new();
    stack.sign_in_steps(&mut b, "jane@example.com").await;
    let cookie = b.cookie(stack.session_cookie()).unwrap().value.clone();
    let (line, _, r) = upgrade(&stack, "/chat", &format!("Cookie: applegate={cookie}\r\n"));
    assert_eq!(status(&line), 101, "before sign-out: {line}");
    drop(r);
    let out = b.get(&stack.at("/oauth2/sign_out"), Nav::TopLevel).await;
    assert_eq!(out.status, 200, "{}", out.body);
    echo.take();
    let (line, _, mut r) = upgrade(
        &stack,
        "/chat",
        &format!("Sec-Fetch-Mode: websocket\r\nCookie: applegate={cookie}\r\n"),
    );
    assert_eq!(status(&line), 401, "{line}");
    assert_not_upgraded(&mut r, &line);
    assert!(echo.take().is_empty());
}
