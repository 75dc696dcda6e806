//! The emulator's admin page (`applegate dev`): act out what a user does
//! at Apple outside any sign-in. For now one thing: stop using Sign in
//! with Apple with the app, which ends that user's grants here and sends
//! the `consent-revoked` notification to the gateway, as Apple does.
//!
//! No CSRF token: the emulator is a loopback development tool that holds
//! nothing of value, and a page of its own is the only client.

use super::{notify, Emulator, Shared};
use crate::html::escape;
use crate::httpd::{Reply, Request};

const STYLE: &str = "body{font:16px/1.5 -apple-system,system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}\
td{padding:.3em .6em}button{font:inherit;padding:.3em 1em;border-radius:.5em;border:1px solid #000}.note{color:#666;font-size:.9em}";

fn html(status: u16, body: &str) -> Reply {
    Reply::html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Apple emulator: admin</title>\
<style>{STYLE}</style></head><body><h1>Apple emulator: admin</h1>{body}</body></html>"
        ),
    )
}

/// `GET /admin`: the users with a live grant, each with a button.
pub fn page(s: &Shared) -> Reply {
    let users = s.state().grants.users();
    let rows: String = users
        .iter()
        .map(|(sub, email)| {
            format!(
                "<tr><td>{}<br><span class=\"note\">{}</span></td><td><form method=\"post\" action=\"/admin/revoke-consent\">\
<input type=\"hidden\" name=\"sub\" value=\"{}\"><button>Revoke consent</button></form></td></tr>",
                escape(email),
                escape(sub),
                escape(sub)
            )
        })
        .collect();
    let target = match &s.opts.notify_url {
        Some(url) => format!(
            "Revoking sends <code>consent-revoked</code> to {}.",
            escape(url)
        ),
        None => "No gateway is set to notify: revoking only ends the grants here.".into(),
    };
    let list = if users.is_empty() {
        "<p>No one is signed in.</p>".to_string()
    } else {
        format!("<table>{rows}</table>")
    };
    html(
        200,
        &format!(
            "<p class=\"note\">A user who stops using Sign in with Apple with the app: their refresh tokens stop working. {target}</p>{list}"
        ),
    )
}

/// `POST /admin/revoke-consent` (form: `sub`): ends the user's grants,
/// then notifies the gateway.
pub fn revoke_consent(s: &Shared, req: &Request) -> Reply {
    let Some(sub) = form_urlencoded::parse(&req.body)
        .find(|(k, _)| k == "sub")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
    else {
        return html(400, "<p>Missing the user (<code>sub</code>).</p>");
    };
    let ended = super::revoke_consent(s, &sub);
    let sent = match &s.opts.notify_url {
        None => "No gateway was notified (none is set).".to_string(),
        Some(url) => {
            let body = notify::body(s, "consent-revoked", &sub);
            // The handler is synchronous on the emulator's multi-threaded
            // runtime: this worker waits for the gateway's answer while
            // the runtime goes on serving (the gateway may call back, for
            // the keys).
            let answer = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(Emulator::send_notification(url, body))
            });
            match answer {
                Ok(status) => format!(
                    "Sent <code>consent-revoked</code> to {}: the gateway answered {status}.",
                    escape(url)
                ),
                Err(e) => format!(
                    "Could not send <code>consent-revoked</code> to {}: {}",
                    escape(url),
                    escape(&e.without_url().to_string())
                ),
            }
        }
    };
    html(
        200,
        &format!(
            "<p>Consent revoked for {}: {ended} grant(s) ended.</p><p>{sent}</p><p><a href=\"/admin\">Back</a></p>",
            escape(&sub)
        ),
    )
}
