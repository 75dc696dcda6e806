//! The request id in the log: every line a request logs carries its id
//! (the request span's `id`), its access line too, and that id is the
//! `X-Request-Id` the response returned. Its own test crate: it installs
//! the process's log subscriber and reads everything the gateway logged
//! (the access lines from `[log] access_file`: the access log has a
//! writer of its own).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Browser, Nav, Options, Person, Stack};

/// Where the log goes: a buffer the test reads.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn id_of(page: &common::browser::Page) -> String {
    page.headers
        .get("x-request-id")
        .expect("every response carries X-Request-Id")
        .to_str()
        .unwrap()
        .to_string()
}

/// A sign-in (start and callback), a proxied request, a refused one and
/// an Apple error: the gateway's log lines, at debug, each inside a
/// request span with the id that request's response returned (the access
/// lines too); the only lines outside one are the background key
/// refresh's.
#[tokio::test]
async fn every_line_of_a_request_carries_its_id() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("applegate=debug,applegate::emulator=off,applegate::demo=off")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let access_file = std::env::temp_dir().join(format!(
        "applegate-request-log-{}-{}.log",
        std::process::id(),
        rand::random::<u32>()
    ));
    let stack = Stack::with(Options {
        log_toml: format!("access_file = {:?}", access_file.to_str().unwrap()),
        ..Options::default()
    });
    let mut b = Browser::new();

    let start = b
        .get(&stack.at("/oauth2/start?rd=/app"), Nav::TopLevel)
        .await;
    assert_eq!(start.status, 302);
    let signed_in = b
        .sign_in_steps(&start.location().unwrap(), &Person::new("jane@example.com"))
        .await;
    let callback = signed_in.callback_page;
    assert_eq!(callback.status, 303, "{}", callback.body);
    let proxied = b.get(&stack.at("/app"), Nav::TopLevel).await;
    assert_eq!(proxied.status, 200);
    let refused = Browser::new().get(&stack.at("/app"), Nav::Api).await;
    assert_eq!(refused.status, 401);
    stack
        .emulator
        .tamper_next_token(applegate::emulator::Tamper::WrongNonce);
    let failed = Browser::new()
        .sign_in_steps(
            &stack.at("/oauth2/start?rd=/"),
            &Person::new("jane@example.com"),
        )
        .await
        .callback_page;
    assert_eq!(failed.status, 401, "{}", failed.body);
    // Stopped: every access line is written.
    drop(stack);

    let mut text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    text.push_str(&std::fs::read_to_string(&access_file).unwrap());
    let _ = std::fs::remove_file(&access_file);
    let mut outside = Vec::new();
    for line in text.lines() {
        if !line.contains("request{id=") && !line.contains("fetched Apple's signing keys") {
            outside.push(line);
        }
    }
    assert!(
        outside.is_empty(),
        "lines outside a request:\n{}",
        outside.join("\n")
    );
    for (what, page) in [
        ("start", &start),
        ("callback", &callback),
        ("proxied", &proxied),
        ("refused", &refused),
        ("apple error", &failed),
    ] {
        let span = format!("request{{id={}}}", id_of(page));
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&span)).collect();
        assert!(
            lines.iter().any(|l| l.contains("applegate::access")),
            "{what}: no access line with {span}\n{text}"
        );
        // Each line names one request: ids are never mixed up.
        assert!(lines.iter().all(|l| l.matches("request{").count() == 1));
    }
    // More than the access lines: the refusals' own lines carry the id.
    let refused_span = format!("request{{id={}}}", id_of(&refused));
    assert!(text
        .lines()
        .any(|l| l.contains(&refused_span) && l.contains("request refused")));
    let failed_span = format!("request{{id={}}}", id_of(&failed));
    assert!(text
        .lines()
        .any(|l| l.contains(&failed_span) && l.contains("sign-in refused")));
    let _ = std::io::stdout().flush();
}
