//! The demo upstream app for `dev` mode and tests: a page showing the
//! identity headers it received.
//!
//! It stands for "your existing app": it does no authentication itself and
//! trusts the gateway's headers. With `Accept: application/json` it answers
//! the method, path and every header it got, so tests can check exactly
//! what reached the upstream.

use std::net::TcpListener;
use std::sync::Arc;

use serde_json::json;

use crate::html::escape;
use crate::httpd::{self, Reply, Request};

/// Headers shown on the page, in order.
const SHOWN: &[&str] = &[
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-email-verified",
    "x-auth-request-private-email",
    "x-auth-request-name",
    "x-forwarded-user",
    "x-forwarded-email",
];

/// Starts the demo app on `listener`.
pub fn start(listener: TcpListener) -> std::io::Result<httpd::Handle> {
    httpd::spawn("demo-app", listener, Arc::new(answer))
}

fn answer(req: Request) -> Reply {
    let wants_json = req
        .header("accept")
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        let mut headers = serde_json::Map::new();
        for (k, v) in &req.headers {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            match headers.get_mut(k.as_str()) {
                Some(serde_json::Value::Array(a)) => a.push(v.into()),
                _ => {
                    headers.insert(k.as_str().to_string(), json!([v]));
                }
            }
        }
        return Reply::json(
            200,
            &json!({"method": req.method.as_str(), "path": req.path, "query": req.query, "headers": headers}),
        );
    }
    let rows: String = SHOWN
        .iter()
        .map(|h| {
            let v = req.header(h).unwrap_or("—");
            format!("<tr><th>{}</th><td>{}</td></tr>", escape(h), escape(v))
        })
        .collect();
    let who = req
        .header("x-auth-request-email")
        .or(req.header("x-auth-request-user"))
        .unwrap_or("nobody (this route is public)");
    Reply::html(
        200,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Demo app</title>\
<style>body{{font:16px/1.5 -apple-system,system-ui,sans-serif;max-width:44em;margin:3em auto;padding:0 1em}}\
th{{text-align:left;padding-right:1em;font-family:monospace}}</style></head><body>\
<h1>Hello, {}</h1><p>This is the demo upstream app. It trusts the identity headers applegate sent it:</p>\
<table>{rows}</table><p><a href=\"/oauth2/sign_out\">Sign out</a></p></body></html>",
            escape(who)
        ),
    )
}
