//! A real browser across two sites: headless Chromium, driven through
//! chromedriver's W3C WebDriver HTTP API (with `reqwest` and `serde_json`,
//! no WebDriver crate), signs in with the emulator's page served from
//! `http://127.0.0.1:P` and the gateway at `http://localhost:Q`.
//!
//! Those are two sites, so the emulator's `form_post` to the callback is the
//! cross-site POST it is with Apple, and Chromium applies its real cookie
//! rules to it: only a `SameSite=None` cookie goes along, and `None`
//! needs `Secure`, which Chromium accepts from `http://localhost` (a
//! potentially trustworthy origin) without TLS or extra flags. The
//! negative control makes the login-state cookie `SameSite=Lax`
//! ([`applegate::kit::break_login_cookie`]) and the same run must fail.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{Options, Stack};
use crate::procs::{require, Proc, Scratch};

/// How long a page may take to reach the state a step waits for.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session under chromedriver, with a fresh profile.
/// Dropping it stops chromedriver and the browser (one process group;
/// Chromium's crash handler, which leaves the group, exits with the browser).
struct Chromium {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    _driver: Proc,
    _profile: Scratch,
}

impl Chromium {
    async fn start() -> Chromium {
        let driver = require("chromedriver", "chromium-driver");
        let browser = require("chromium", "chromium");
        let dir = Scratch::new("chromium");
        let port = crate::common::free_port();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"))
            .env("HOME", &dir.path)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_CACHE_HOME", dir.join("cache"));
        let mut proc = Proc::start("chromedriver", cmd, dir.join("chromedriver.log"));
        proc.wait_port(port);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let profile = dir.join("profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Containers often have a small /dev/shm.
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 15_000, "script": 5_000, "implicit": 0},
            "goog:chromeOptions": {"binary": browser, "args": args},
        }}});
        let base = format!("http://127.0.0.1:{port}");
        let value = command(
            &http,
            reqwest::Method::POST,
            &format!("{base}/session"),
            caps,
        )
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"));
        Chromium {
            http,
            session: format!("{base}/session/{id}"),
            _driver: proc,
            _profile: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        command(&self.http, method, &url, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, Value::Null).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body).await
    }

    /// Navigates to `url` (returns once the last page of the redirects loaded).
    async fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element `css` selects on the current page.
    async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        self.post(&format!("/element/{el}/clear"), json!({})).await;
        self.post(&format!("/element/{el}/value"), json!({ "text": text }))
            .await;
    }

    async fn click(&self, css: &str) {
        let el = self.element(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    /// The cookies the browser holds for the current page's site, as
    /// WebDriver reports them (HttpOnly ones included).
    async fn cookies(&self) -> Vec<Value> {
        self.get("/cookie")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every cookie the browser holds, for every site (DevTools'
    /// `Storage.getCookies`, through chromedriver).
    async fn all_cookies(&self) -> Vec<Value> {
        let v = self
            .post(
                "/goog/cdp/execute",
                json!({"cmd": "Storage.getCookies", "params": {}}),
            )
            .await;
        v["cookies"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the page's URL starts with `url` and the page contains
    /// `text`; the page's source. Panics with where the browser is after
    /// the step timeout.
    async fn wait_for(&self, url: &str, text: &str) -> String {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let (at, source) = (self.url().await, self.source().await);
            if at.starts_with(url) && source.contains(text) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "after {STEP_TIMEOUT:?} the browser is at {at}, not on {url}… showing {text:?}:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session: chromedriver closes the browser.
    async fn quit(self) {
        let _ = command(
            &self.http,
            reqwest::Method::DELETE,
            &self.session,
            Value::Null,
        )
        .await;
    }
}

/// One WebDriver command: its `value`, or the error WebDriver answered.
async fn command(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Value,
) -> Result<Value, String> {
    let mut req = http.request(method, url);
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if !status.is_success() || value.get("error").is_some() {
        return Err(format!("{status}: {value}"));
    }
    Ok(value)
}

/// The gateway at `http://localhost:Q`, the emulator at `http://127.0.0.1:P`.
fn stack(break_login_cookie: bool) -> Stack {
    let stack = Stack::with(Options {
        break_login_cookie,
        ..Options::default()
    });
    assert!(stack.url.starts_with("http://localhost:"), "{}", stack.url);
    assert!(
        stack.emulator.base_url().starts_with("http://127.0.0.1:"),
        "{}",
        stack.emulator.base_url()
    );
    stack
}

/// Opens a protected page, lands on the emulator's page (the other site),
/// enters an email and presses Continue: the emulator's page then posts the
/// callback across sites. Returns the gateway's login-state cookie as the
/// browser held it on the emulator's page.
async fn sign_in_with_the_emulator(b: &Chromium, stack: &Stack) -> Value {
    b.open(&stack.at("/reports")).await;
    let emulator = stack.emulator.base_url();
    b.wait_for(&format!("{emulator}/auth/authorize?"), "Sign in with Apple")
        .await;
    let cookies = b.all_cookies().await;
    let login = cookies
        .iter()
        .find(|c| {
            c["domain"] == "localhost" && c["name"].as_str().is_some_and(|n| n.contains("-login-"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("Chromium did not keep the login-state cookie: {cookies:?}"));
    b.type_into("input[name=email]", "jane@example.com").await;
    b.click("button[name=action][value=continue]").await;
    login
}

/// A real browser signs in across two sites: the gateway's login-state
/// cookie (`SameSite=None; Secure` on `http://localhost`) survives the
/// emulator's cross-site `form_post`, the callback signs the user in, and
/// the browser lands on the page it asked for, showing the identity.
#[tokio::test]
async fn chromium_signs_in_across_sites() {
    let stack = stack(false);
    let b = Chromium::start().await;
    let login = sign_in_with_the_emulator(&b, &stack).await;
    assert_eq!(
        (&login["sameSite"], &login["secure"], &login["httpOnly"]),
        (&json!("None"), &json!(true), &json!(true)),
        "{login}"
    );
    let page = b
        .wait_for(&stack.at("/reports"), "Hello, jane@example.com")
        .await;
    assert!(page.contains("x-auth-request-user"), "{page}");
    let cookies = b.cookies().await;
    let names: Vec<&str> = cookies.iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&stack.session_cookie()), "{cookies:?}");
    // The login state was single use: the callback deleted it.
    assert!(!names.iter().any(|n| n.contains("-login-")), "{cookies:?}");
    b.quit().await;
}

/// The negative control: the same run with the login-state cookie
/// `SameSite=Lax` fails. Chromium holds the cookie but does not send it
/// with the emulator's cross-site POST, so the callback refuses the
/// sign-in ("Sign-in expired") and no session is set.
#[tokio::test]
async fn chromium_sign_in_fails_with_a_lax_login_cookie() {
    let stack = stack(true);
    let b = Chromium::start().await;
    let login = sign_in_with_the_emulator(&b, &stack).await;
    assert_eq!(login["sameSite"], "Lax", "{login}");
    let page = b
        .wait_for(&stack.at("/oauth2/callback"), "Sign-in expired")
        .await;
    assert!(!page.contains("Hello,"), "{page}");
    let cookies = b.cookies().await;
    assert!(
        !cookies
            .iter()
            .any(|c| c["name"].as_str() == Some(stack.session_cookie())),
        "{cookies:?}"
    );
    b.quit().await;
}
