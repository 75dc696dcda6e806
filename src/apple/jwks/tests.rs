//! The key set's life against a keys endpoint on a real socket: when it is
//! fetched, what replaces it, and what never does.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;
use crate::clock::ManualClock;
use crate::httpd::{self, Reply};

/// Apple's real keys document (twelve keys), from the shared test data.
fn apple_keys() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/apple/apple_jwks.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("../shared/apple/apple_jwks.json"))
        .expect("a JSON document")
}

/// What the keys endpoint answers next: status, body, Cache-Control.
type Answer = Arc<Mutex<(u16, String, Option<String>)>>;

/// A keys endpoint answering whatever `answer` holds.
fn endpoint(answer: Answer) -> httpd::Handle {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    httpd::spawn(
        "keys",
        listener,
        Arc::new(move |_| {
            let (status, body, cc) = answer.lock().unwrap().clone();
            let reply = Reply::new(status, "application/json", body);
            match cc {
                Some(cc) => reply.header("Cache-Control", &cc),
                None => reply,
            }
        }),
    )
    .unwrap()
}

#[test]
fn max_age_is_clamped_with_a_default() {
    for (header, want) in [
        (None, DEFAULT_MAX_AGE),
        (Some("no-store"), DEFAULT_MAX_AGE),
        (Some("max-age=soon"), DEFAULT_MAX_AGE),
        (Some("max-age=-5"), DEFAULT_MAX_AGE),
        (Some("public, max-age=600"), 600),
        (Some("Max-Age=\"900\", must-revalidate"), 900),
        (Some("max-age=0"), MIN_MAX_AGE),
        (Some("max-age=31536000"), MAX_MAX_AGE),
    ] {
        assert_eq!(max_age(header), want, "{header:?}");
    }
}

/// The set is fetched when due and not before (the answer's max-age); a
/// garbage body, an empty key list or an error status keep the set we
/// have (and retry a minute later); a good answer replaces the set whole,
/// so a key the endpoint dropped is gone.
#[tokio::test]
async fn refresh_follows_max_age_and_never_loses_a_good_set() {
    let doc = apple_keys();
    let first_two = serde_json::json!({"keys": doc["keys"].as_array().unwrap()[..2]});
    let second_only = serde_json::json!({"keys": [doc["keys"][1].clone()]});
    let (a, b) = ("86D88Kf", "eXaunmL");
    let answer: Answer = Arc::new(Mutex::new((
        200,
        first_two.to_string(),
        Some("max-age=600".into()),
    )));
    let server = endpoint(answer.clone());
    let clock = ManualClock::at(1_000_000);
    let jwks = Jwks::new(
        format!("http://{}/auth/keys", server.addr),
        reqwest::Client::new(),
        Duration::from_secs(1),
        clock.clone(),
    );
    let set = |status: u16, body: &str, cc: Option<&str>| {
        *answer.lock().unwrap() = (status, body.into(), cc.map(str::to_string));
    };

    assert_eq!(
        jwks.refresh_if_due().await.unwrap().unwrap(),
        2,
        "due at start"
    );
    assert!(
        jwks.refresh_if_due().await.is_none(),
        "then not before max-age"
    );
    clock.advance(599);
    assert!(jwks.refresh_if_due().await.is_none());

    for (status, body) in [
        (200, "<html>not keys</html>"),
        (200, "{\"keys\": []}"),
        (503, "{}"),
    ] {
        clock.advance(60);
        set(status, body, None);
        let result = jwks.refresh_if_due().await.expect("due");
        assert!(result.is_err(), "{status} {body}");
        assert_eq!(jwks.len(), 2, "kept after {status} {body}");
        clock.advance(59);
        assert!(
            jwks.refresh_if_due().await.is_none(),
            "retry after a minute"
        );
    }

    clock.advance(60);
    set(200, &second_only.to_string(), None);
    assert_eq!(jwks.refresh_if_due().await.unwrap().unwrap(), 1);
    assert!(jwks.get(a).is_none(), "a dropped key leaves");
    assert!(jwks.get(b).is_some());
    clock.advance(DEFAULT_MAX_AGE - 1);
    assert!(
        jwks.refresh_if_due().await.is_none(),
        "no max-age: the default"
    );
    clock.advance(1);
    assert!(jwks.refresh_if_due().await.is_some());
}
