//! The state store through the real binary: what a sign-out leaves behind
//! survives a restart with no `[state]` configured, and a kill -9 in the
//! middle of a burst of sign-outs; `check` reports the store.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use applegate::kit::{self, Secrets};

use super::common::{Browser, Person};
use super::{check, key_pem, Proc, TempDir, BIN, SECRET};

/// A gateway config in a temporary directory (with no `[state]`: the
/// default store, a file beside the config), the emulator and the demo
/// app it names, and the binary started on it on demand.
struct Gateway {
    dir: TempDir,
    config: PathBuf,
    url: String,
    stack: kit::Stack,
}

impl Gateway {
    fn new(tag: &str) -> Gateway {
        let dir = TempDir::new(tag);
        let stack = kit::Builder::new(applegate::clock::system())
            .start()
            .unwrap();
        stack.secrets().write(&dir.0).unwrap();
        let config = dir.write(
            "applegate.toml",
            &stack.toml(&format!(
                "[server]\nthreads = 1\ngrace_period = \"0s\"\n\
                 [apple]\nprivate_key_file = \"{}\"\n[session]\nsecret_file = \"{}\"\n\
                 [rate_limit]\nsign_in_per_client = 100000\nsign_in_total = 100000\napple_token_calls = 100000\n\
                 [log]\nlevel = \"warn\"\n\
                 [[routes]]\npath = \"/\"\nupstream = \"http://{{upstream}}\"\n",
                Secrets::KEY_FILE,
                Secrets::SESSION_FILE,
            )),
        );
        let url = stack.public_url.clone();
        Gateway {
            dir,
            config,
            url,
            stack,
        }
    }

    /// Starts the binary and waits until it listens.
    fn start(&self) -> Proc {
        let mut p = super::run(&self.config, Stdio::null(), Stdio::piped());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !kit::wait_listening(self.stack.listen, Duration::from_millis(100)) {
            if let Some(status) = p.0.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut p.0.stderr.take().unwrap(), &mut err).unwrap();
                panic!("the gateway exited ({status}):\n{err}");
            }
            assert!(Instant::now() < deadline, "the gateway does not listen");
        }
        p
    }

    /// Signs a new browser in; its session cookie's value.
    async fn session(&self, email: &str) -> String {
        let mut b = Browser::new();
        let page = b
            .sign_in(
                &format!("{}/oauth2/start?rd=/", self.url),
                &Person::new(email),
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        b.cookie("applegate").unwrap().value.clone()
    }
}

/// A client that waits at most 10 s for any answer.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The status of `path` with `cookie` as the session; `None` without an answer.
async fn status(http: &reqwest::Client, url: &str, path: &str, cookie: &str) -> Option<u16> {
    http.get(format!("{url}{path}"))
        .header("Cookie", format!("applegate={cookie}"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// With no `[state]` in the config at all, a signed-out cookie is still
/// refused after the gateway restarts (the state file beside the config
/// holds it), while a session never signed out still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_cookie_stays_dead_across_a_restart_with_no_state_configured() {
    let gw = Gateway::new("state-restart");
    let http = client();
    let mut proc = gw.start();
    let (out, kept) = (
        gw.session("out@example.com").await,
        gw.session("kept@example.com").await,
    );
    assert_eq!(
        status(&http, &gw.url, "/oauth2/sign_out", &out).await,
        Some(200)
    );
    assert_eq!(
        status(&http, &gw.url, "/oauth2/userinfo", &out).await,
        Some(401)
    );
    Command::new("kill")
        .args(["-TERM", &proc.0.id().to_string()])
        .status()
        .unwrap();
    assert!(proc.0.wait().unwrap().success(), "clean exit on SIGTERM");
    assert!(
        gw.dir.0.join("applegate.state").is_file(),
        "the default state file is beside the config"
    );

    let _proc = gw.start();
    assert_eq!(
        status(&http, &gw.url, "/oauth2/userinfo", &out).await,
        Some(401),
        "the signed-out cookie stays dead"
    );
    assert_eq!(
        status(&http, &gw.url, "/oauth2/userinfo", &kept).await,
        Some(200),
        "a live session survives the restart too"
    );
}

/// Sign-outs fired together at 30 sessions, the gateway killed with
/// SIGKILL after the first few answers: restarted on the same state file,
/// every sign-out that was answered still refuses its cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_of_sign_outs_loses_none_that_were_answered() {
    const SESSIONS: usize = 30;
    const KILL_AFTER: usize = 5;
    let gw = Gateway::new("state-kill");
    let http = client();
    let mut proc = gw.start();
    let mut cookies = Vec::new();
    for i in 0..SESSIONS {
        cookies.push(gw.session(&format!("user{i}@example.com")).await);
    }
    let control = gw.session("control@example.com").await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, cookie) in cookies.iter().enumerate() {
        let (http, url, cookie, tx) = (http.clone(), gw.url.clone(), cookie.clone(), tx.clone());
        tokio::spawn(async move {
            let answer = status(&http, &url, "/oauth2/sign_out", &cookie).await;
            let _ = tx.send((i, answer));
        });
    }
    drop(tx);
    let mut answered = Vec::new();
    let mut unanswered = 0;
    while let Some((i, answer)) = rx.recv().await {
        match answer {
            Some(200) => answered.push(i),
            Some(other) => panic!("sign-out {i} answered {other}"),
            None => unanswered += 1,
        }
        if answered.len() == KILL_AFTER {
            proc.0.kill().unwrap();
            proc.0.wait().unwrap();
        }
    }
    eprintln!(
        "{} sign-outs answered, {unanswered} cut off by the kill",
        answered.len()
    );
    assert!(answered.len() >= KILL_AFTER);

    let _proc = gw.start();
    for i in &answered {
        assert_eq!(
            status(&http, &gw.url, "/oauth2/userinfo", &cookies[*i]).await,
            Some(401),
            "sign-out {i} was answered before the kill, so it holds after it"
        );
    }
    assert_eq!(
        status(&http, &gw.url, "/oauth2/userinfo", &control).await,
        Some(200),
        "a session never signed out still works"
    );
}

/// `check` names the state file (beside the config by default) and fails
/// when it cannot be written; memory is reported as such; the old
/// `[revocation]` section is a config problem that points to `[state]`.
#[test]
fn check_reports_the_state_store_and_fails_when_it_cannot_be_written() {
    let dir = TempDir::new("state-check");
    dir.write("AuthKey.p8", &key_pem());
    dir.write("session.key", &format!("{SECRET}\n"));
    let base = "[server]\npublic_url = \"https://app.example.com\"\n\
                [apple]\nteam_id = \"ABCDE12345\"\nservices_id = \"com.example.web\"\nkey_id = \"XYZ9876543\"\nprivate_key_file = \"AuthKey.p8\"\n\
                [session]\nsecret_file = \"session.key\"\n\
                [[routes]]\npath = \"/\"\nupstream = \"http://127.0.0.1:3000\"\n";
    // `check` on the base config with `extra` appended.
    let check_with = |name: &str, extra: &str| check(&dir.write(name, &format!("{base}{extra}")));
    let (code, stdout, stderr) = check_with("default.toml", "");
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let expected = format!(
        "  state        embedded, {}",
        dir.0.join("applegate.state").display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        !dir.0.join("applegate.state").exists(),
        "check creates no state file"
    );

    let (code, stdout, _) = check_with("memory.toml", "[state]\nbackend = \"memory\"\n");
    assert_eq!(code, 0);
    assert!(
        stdout.contains("  state        memory only (lost at exit"),
        "{stdout}"
    );

    let (code, _, stderr) = check_with(
        "unwritable.toml",
        "[state]\npath = \"no/such/dir/gate.state\"\n",
    );
    assert_eq!(code, 1, "{stderr}");
    let expected = format!(
        "applegate check: state.path: cannot write {}: No such file or directory",
        dir.0.join("no/such/dir/gate.state").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");

    let (code, _, stderr) = check_with("old.toml", "[revocation]\nfile = \"revoked.log\"\n");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "  revocation: replaced by [state]: revocations are now kept in the state store"
        ),
        "{stderr}"
    );
}

/// SIGHUP without `[server.tls]` is logged and nothing more: its default
/// action would end the process, and operators (and a unit's
/// `ExecReload`) send it by reflex. The gateway keeps serving, and a
/// session still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_tls_does_not_stop_the_gateway() {
    let gw = Gateway::new("sighup");
    let http = client();
    let mut proc = gw.start();
    let cookie = gw.session("hup@example.com").await;
    // The signal handler is a background service: let it start.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        Command::new("kill")
            .args(["-HUP", &proc.0.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            proc.0.try_wait().unwrap().is_none(),
            "SIGHUP ended the gateway"
        );
    }
    assert_eq!(
        status(&http, &gw.url, "/oauth2/userinfo", &cookie).await,
        Some(200)
    );
}

/// A Redis that cannot be reached at start stops the start (exit 1),
/// saying where by host and port only: the password in `redis_url` is in
/// no line the gateway writes, at any log level, whether Redis is one
/// server or the master Sentinels name; `check` never repeats it either.
#[test]
fn redis_down_at_start_stops_it_without_the_password() {
    let dir = TempDir::new("state-redis-down");
    dir.write("AuthKey.p8", &key_pem());
    dir.write("session.key", &format!("{SECRET}\n"));
    let closed = kit::free_port();
    let base = format!(
        "[server]\npublic_url = \"https://app.example.com\"\nlisten = \"127.0.0.1:{}\"\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n\
         [apple]\nteam_id = \"ABCDE12345\"\nservices_id = \"com.example.web\"\nkey_id = \"XYZ9876543\"\nprivate_key_file = \"AuthKey.p8\"\n\
         [session]\nsecret_file = \"session.key\"\n[log]\nlevel = \"trace\"\n\
         [[routes]]\npath = \"/\"\nupstream = \"http://127.0.0.1:3000\"\n\
         [state]\nbackend = \"redis\"\nredis_timeout = \"1s\"\n",
        kit::free_port(),
        kit::free_port(),
    );
    for (name, state, at) in [
        (
            "server.toml",
            format!("redis_url = \"redis://gate:hunter2@127.0.0.1:{closed}/0\"\n"),
            format!("cannot connect to Redis at 127.0.0.1:{closed} (state.redis_url)"),
        ),
        (
            "sentinel.toml",
            format!("redis_url = \"redis://gate:hunter2@mymaster/0\"\nredis_sentinels = [\"127.0.0.1:{closed}\"]\n"),
            format!("cannot connect to the master \"mymaster\" of the Sentinels 127.0.0.1:{closed} (state.redis_sentinels)"),
        ),
    ] {
        let config = dir.write(name, &format!("{base}{state}"));
        let out = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(&at), "{name}: {stderr}");
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{name}: {stdout}\n{stderr}"
        );
        let (code, stdout, stderr) = check(&config);
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "check {name} ({code}): {stdout}\n{stderr}"
        );
    }
}
