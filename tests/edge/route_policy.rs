//! Per-route policy (issue #10, item 2), over real sockets: a route's
//! `allowed_*` keys replace `[policy]`'s of the same name, a signed-in user
//! outside a route's policy gets 403 there (page or JSON, never a sign-in
//! loop), forward auth answers the original request's route's policy, and
//! sign-in admits whom some route admits.

use super::common::raw::{self, Recorder};
use super::common::{Browser, Options, Person, Stack};

/// `[policy]` admits example.com; `/admin/` only the boss (its domain
/// list replaced by an empty one); `/support/` adds one partner address
/// (its own `allowed_emails`, the domains inherited).
fn stack(rec: &Recorder) -> Stack {
    Stack::with(Options {
        upstream: Some(rec.addr),
        server_toml: "trusted_proxies = [\"127.0.0.1\"]".into(),
        extra_toml: r#"
[policy]
allowed_email_domains = ["example.com"]

[[routes]]
path = "/admin/"
upstream = "http://{upstream}"
allowed_emails = ["boss@example.com"]
allowed_email_domains = []

[[routes]]
path = "/support/"
upstream = "http://{upstream}"
allowed_emails = ["guest@partner.org"]
"#
        .into(),
        ..Options::default()
    })
}

/// Signs `email` in, returning to `rd`; the cookie's value.
async fn session(stack: &Stack, email: &str, rd: &str) -> String {
    let mut b = Browser::new();
    let steps = b
        .sign_in_steps(
            &stack.at(&format!("/oauth2/start?rd={rd}")),
            &Person::new(email),
        )
        .await;
    assert_eq!(
        steps.callback_page.status, 303,
        "{email} signs in: {}",
        steps.callback_page.body
    );
    b.cookie(stack.session_cookie()).unwrap().value.clone()
}

fn get(stack: &Stack, path: &str, cookie: &str, accept: &str) -> raw::Reply {
    raw::send(
        stack.gateway.addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\nSec-Fetch-Mode: navigate\r\nCookie: applegate={cookie}"
        ),
    )
}

const PAGE: &str = "text/html";
const API: &str = "application/json";

/// A refusal by policy: 403, no redirect to sign in, the session kept.
fn assert_refused_no_loop(r: &raw::Reply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert_eq!(r.header("location"), None, "{what}: no redirect");
    assert!(
        r.headers_named("set-cookie").is_empty(),
        "{what}: the session cookie is not cleared: {:?}",
        r.headers_named("set-cookie")
    );
}

/// One user, two routes: jane (example.com) passes `/` on the global
/// policy, and `/admin/` refuses her with a 403 page for a browser and 403
/// JSON for an API call, never a redirect or a cleared cookie; the
/// upstream never sees the refused requests. The boss passes `/admin/`.
#[tokio::test]
async fn a_route_refuses_whom_the_global_policy_admits() {
    let rec = Recorder::start();
    let stack = stack(&rec);
    let jane = session(&stack, "jane@example.com", "/").await;
    rec.take();

    let ok = get(&stack, "/app", &jane, PAGE);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let page = get(&stack, "/admin/users", &jane, PAGE);
    assert_refused_no_loop(&page, "admin page");
    assert!(page.text().contains("Access denied"), "{}", page.text());
    assert!(page
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    let json = get(&stack, "/admin/users", &jane, API);
    assert_refused_no_loop(&json, "admin API");
    let body: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(body["error"], "forbidden", "{body}");
    let seen: Vec<String> = rec.take().into_iter().map(|s| s.target).collect();
    assert_eq!(seen, ["/app"], "refused requests never reach the app");

    let boss = session(&stack, "boss@example.com", "/admin/").await;
    let r = get(&stack, "/admin/users", &boss, PAGE);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = rec.take().pop().unwrap();
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("boss@example.com")
    );
}

/// A route's key replaces only that key: `/support/` names its own
/// `allowed_emails` and inherits `[policy]`'s domains, so both the partner
/// and jane pass there. The partner, whom only `/support/` admits, can
/// sign in (even returning to `/`), gets 403 (not a loop) on `/`, and
/// passes `/support/`. Someone no route admits cannot sign in at all.
#[tokio::test]
async fn sign_in_admits_whom_some_route_admits() {
    let rec = Recorder::start();
    let stack = stack(&rec);
    let guest = session(&stack, "guest@partner.org", "/").await;
    assert_refused_no_loop(&get(&stack, "/", &guest, PAGE), "root for the guest");
    let r = get(&stack, "/support/ticket", &guest, PAGE);
    assert_eq!(r.status, 200, "{}", r.text());
    let jane = session(&stack, "jane@example.com", "/").await;
    let r = get(&stack, "/support/ticket", &jane, API);
    assert_eq!(r.status, 200, "inherited domains: {}", r.text());

    let mut b = Browser::new();
    let steps = b
        .sign_in_steps(
            &stack.at("/oauth2/start?rd=/support/"),
            &Person::new("mallory@elsewhere.org"),
        )
        .await;
    assert_eq!(steps.callback_page.status, 403, "no route admits mallory");
    assert!(b.cookie(stack.session_cookie()).is_none());
    // userinfo names whom some policy admits (it serves no route).
    let r = get(&stack, "/oauth2/userinfo", &guest, API);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Forward auth decides on the original request's route (from a trusted
/// proxy's `X-Forwarded-Uri`): 403 where that route's policy refuses, 202
/// where it admits; without a report, `[policy]`.
#[tokio::test]
async fn forward_auth_answers_the_route_policy() {
    let rec = Recorder::start();
    let stack = stack(&rec);
    let jane = session(&stack, "jane@example.com", "/").await;
    let guest = session(&stack, "guest@partner.org", "/").await;
    let ask = |cookie: &str, uri: Option<&str>| {
        let uri = uri
            .map(|u| format!("\r\nX-Forwarded-Uri: {u}"))
            .unwrap_or_default();
        raw::send(
            stack.gateway.addr,
            &format!(
                "GET /oauth2/auth HTTP/1.1\r\nHost: localhost\r\nCookie: applegate={cookie}{uri}"
            ),
        )
    };
    let r = ask(&jane, Some("/admin/users"));
    assert_refused_no_loop(&r, "forward auth, jane on /admin/");
    assert_eq!(ask(&jane, Some("/app")).status, 202);
    assert_eq!(ask(&guest, Some("/support/x?q=1")).status, 202);
    assert_eq!(ask(&guest, Some("/app")).status, 403);
    // No report: the global policy.
    assert_eq!(ask(&jane, None).status, 202);
    assert_eq!(ask(&guest, None).status, 403);
}

/// A route without policy keys keeps `[policy]`, including
/// `allow_private_relay`; a route may switch the relay rule alone.
#[tokio::test]
async fn routes_without_keys_fall_back_to_the_global_policy() {
    let rec = Recorder::start();
    let stack = Stack::with(Options {
        upstream: Some(rec.addr),
        routes: vec![("/plain/", "required")],
        extra_toml: r#"
[policy]
allow_private_relay = false

[[routes]]
path = "/relay-ok/"
upstream = "http://{upstream}"
allow_private_relay = true
"#
        .into(),
        ..Options::default()
    });
    let relay = "x7k2@privaterelay.appleid.com";
    let cookie = session(&stack, relay, "/relay-ok/").await;
    let r = get(&stack, "/relay-ok/x", &cookie, API);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_refused_no_loop(&get(&stack, "/plain/x", &cookie, API), "plain route");
    assert_refused_no_loop(&get(&stack, "/", &cookie, PAGE), "root");
    let jane = session(&stack, "jane@example.com", "/").await;
    assert_eq!(get(&stack, "/plain/x", &jane, API).status, 200);
}
