//! The request id: generated or a trusted proxy's, sent upstream,
//! returned, quoted on error answers; `traceparent` passes untouched.

use crate::common::raw::Recorder;
use crate::common::{Browser, Nav, Options, Stack};

fn stack(rec: &Recorder, server_toml: &str) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/public/", "public")],
        server_toml: server_toml.into(),
        ..Options::default()
    })
}

fn returned(page: &crate::common::browser::Page) -> String {
    page.headers
        .get("x-request-id")
        .expect("every response carries X-Request-Id")
        .to_str()
        .unwrap()
        .to_string()
}

/// Without trusted proxies the gateway makes each id (16 hex digits, a
/// new one per request), ignores the client's, sends it upstream and
/// returns it.
#[tokio::test]
async fn ids_are_generated_sent_upstream_and_returned() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let mut b = Browser::new();
    let a = b
        .get_with(
            &stack.at("/public/a"),
            Nav::Api,
            &[("X-Request-Id", "chosen-by-client")],
        )
        .await;
    let id = returned(&a);
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
    let seen = rec.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].all("x-request-id"), vec![id.as_str()]);
    let again = returned(&b.get(&stack.at("/public/a"), Nav::Api).await);
    assert_ne!(again, id);
}

/// From a trusted proxy a sane id is kept (upstream and response); one
/// too long, or sent twice, is replaced by the gateway's own.
#[tokio::test]
async fn a_trusted_proxys_sane_id_is_kept() {
    let rec = Recorder::start();
    let stack = stack(&rec, "trusted_proxies = [\"127.0.0.1/32\"]");
    let mut b = Browser::new();
    let lb = "lb-1a2b3c/req:42";
    let page = b
        .get_with(&stack.at("/public/a"), Nav::Api, &[("X-Request-Id", lb)])
        .await;
    assert_eq!(returned(&page), lb);
    assert_eq!(rec.take()[0].all("x-request-id"), vec![lb]);

    let long = "x".repeat(129);
    let page = b
        .get_with(&stack.at("/public/a"), Nav::Api, &[("X-Request-Id", &long)])
        .await;
    let id = returned(&page);
    assert_eq!(id.len(), 16, "{id}");
    assert_eq!(rec.take()[0].all("x-request-id"), vec![id.as_str()]);
    let page = b
        .get_with(
            &stack.at("/public/a"),
            Nav::Api,
            &[("X-Request-Id", "one"), ("X-Request-Id", "two")],
        )
        .await;
    assert_eq!(returned(&page).len(), 16);
}

/// Error answers quote the id of their response: JSON as `request_id`,
/// HTML pages in the text.
#[tokio::test]
async fn error_answers_show_the_request_id() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let mut b = Browser::new();
    let api = b.get(&stack.at("/private"), Nav::Api).await;
    assert_eq!(api.status, 401);
    let body: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(body["request_id"], returned(&api).as_str(), "{}", api.body);
    assert_eq!(body["error"], "unauthorized");

    let page = b.get(&stack.at("/oauth2/nothing"), Nav::TopLevel).await;
    assert_eq!(page.status, 404);
    let quoted = format!("Request id: <code>{}</code>", returned(&page));
    assert!(page.body.contains(&quoted), "{}", page.body);
}

/// W3C trace context passes through to the upstream untouched.
#[tokio::test]
async fn traceparent_passes_through_untouched() {
    let rec = Recorder::start();
    let stack = stack(&rec, "");
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let page = Browser::new()
        .get_with(
            &stack.at("/public/t"),
            Nav::Api,
            &[("traceparent", parent), ("tracestate", state)],
        )
        .await;
    assert_eq!(page.status, 200);
    let seen = rec.take();
    assert_eq!(seen[0].all("traceparent"), vec![parent]);
    assert_eq!(seen[0].all("tracestate"), vec![state]);
}
