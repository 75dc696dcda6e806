//! The gateway and `dev` running as processes: what they log and serve.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use super::common::{self, Browser, Nav, Person};
use super::{Proc, TempDir, BIN, SECRET};

fn wait_for_port(port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        applegate::kit::wait_listening(addr, Duration::from_secs(20)),
        "nothing listens on {port}"
    );
}

/// The gateway binary at trace log level (every line pingora would write)
/// through sign-ins, API calls with a bearer token, a malformed request
/// carrying the session cookie, a replayed callback and a sign-out: no
/// secret, code, token or cookie value appears in its logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_no_secrets() {
    let dir = TempDir::new("logs");
    let key = SigningKey::random(&mut rand::thread_rng());
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let port = common::free_port();
    let url = format!("http://localhost:{port}");
    let demo = applegate::demo::start(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let emu = super::emulator_for(&key, format!("{url}/oauth2/callback"));
    dir.write("AuthKey.p8", &pem);
    dir.write("session.key", SECRET);
    let cfg = dir.write(
        "applegate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{url}\"\nthreads = 1\ngrace_period = \"0s\"\n\
             [apple]\nteam_id = \"{}\"\nservices_id = \"{}\"\nkey_id = \"{}\"\nprivate_key_file = \"AuthKey.p8\"\nbase_url = \"{}\"\n\
             [session]\nsecret_file = \"session.key\"\n[log]\nlevel = \"trace\"\n\
             [[routes]]\npath = \"/\"\nupstream = \"http://{}\"\n",
            common::TEAM_ID,
            common::SERVICES_ID,
            common::KEY_ID,
            emu.base_url(),
            demo.addr
        ),
    );
    let mut child = super::run(&cfg, Stdio::piped(), Stdio::piped());
    wait_for_port(port);

    let mut secrets: Vec<String> = vec![SECRET.into()];
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_string),
    );
    let mut b = Browser::new();
    let start = b
        .get(
            &format!("{url}/private?code=QUERYCODE1234567&token=QUERYTOKEN7654321"),
            Nav::TopLevel,
        )
        .await;
    secrets.extend(["QUERYCODE1234567".into(), "QUERYTOKEN7654321".into()]);
    let steps = b
        .sign_in_steps(&start.location().unwrap(), &Person::new("jane@example.com"))
        .await;
    assert_eq!(steps.callback_page.status, 303);
    for (k, v) in &steps.fields {
        if k == "code" || k == "state" {
            secrets.push(v.clone());
        }
    }
    let session = b.cookie("applegate").unwrap().value.clone();
    secrets.push(session.clone());
    assert_eq!(b.get(&format!("{url}/private"), Nav::Api).await.status, 200);
    // A bearer token and the session cookie in raw requests, one of them
    // malformed (pingora logs a bad request's bytes at debug).
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let bearer = "BEARERTOKEN0123456789";
    secrets.push(bearer.into());
    let r = common::raw::send(
        addr,
        &format!("GET /private?code=QUERYCODE1234567 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {bearer}\r\nCookie: applegate={session}"),
    );
    assert_eq!(r.status, 200);
    let r = common::raw::send(
        addr,
        &format!("GET /private HTTP/1.1\r\nHost: localhost\r\nCookie: applegate={session}\r\nAuthorization: Bearer {bearer}\r\nthis is not a header"),
    );
    assert_eq!(r.status, 400);
    // A replay (fails), then a sign-out.
    let mut again = Browser::new();
    let replay = again
        .post_form(&steps.callback, &steps.fields, emu.base_url())
        .await;
    assert_eq!(replay.status, 400);
    let mut b2 = Browser::new();
    let start = b2
        .get(&format!("{url}/oauth2/start?rd=/"), Nav::TopLevel)
        .await;
    secrets.push(
        b2.cookie_starting("applegate-login-")
            .unwrap()
            .value
            .clone(),
    );
    let login_state = url::Url::parse(&start.location().unwrap()).unwrap();
    secrets.extend(
        login_state
            .query_pairs()
            .filter(|(k, _)| k == "nonce" || k == "state")
            .map(|(_, v)| v.into_owned()),
    );
    b.get(&format!("{url}/oauth2/sign_out"), Nav::TopLevel)
        .await;
    secrets.extend(emu.secrets_seen());

    // Stop the gateway (SIGTERM, grace period 0) and read everything it wrote.
    let pid = child.0.id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut logs = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    assert!(
        logs.contains("applegate::access"),
        "access events are logged:\n{logs}"
    );
    assert!(logs.contains("signed in"), "{logs}");
    assert!(
        logs.contains("sign-in refused"),
        "the replay is logged: {logs}"
    );
    assert!(secrets.len() > 15, "{secrets:?}");
    for s in &secrets {
        assert!(s.len() >= 8, "too short to search for: {s:?}");
        // Cookie values are base64: check a distinctive middle slice too.
        let probe = if s.len() > 40 { &s[10..40] } else { s.as_str() };
        assert!(
            !logs.contains(probe),
            "a secret ({}…) appears in the logs:\n{logs}",
            &s[..6.min(s.len())]
        );
    }
}

/// `applegate dev` starts everything; a scripted client signs in through
/// the emulator and sees its identity on the demo page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_serves_the_demo() {
    // Three consecutive free ports (free_port checks the two after it).
    let base = common::free_port();
    let mut child = Proc(
        Command::new(BIN)
            .args(["dev", "--port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let open_line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("Open"))
        .expect("dev prints the URL to open");
    // Keep reading, as a terminal would.
    std::thread::spawn(move || lines.for_each(drop));
    let url = format!("http://localhost:{base}/");
    assert!(open_line.contains(&url), "{open_line}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", base)).is_err() {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut err = String::new();
            child
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("dev exited ({status}) without listening:\n{err}");
        }
        assert!(Instant::now() < deadline, "dev does not listen on {base}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut b = Browser::new();
    let page = b.sign_in(&url, &Person::new("dev.user@example.com")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Hello, dev.user@example.com"),
        "{}",
        page.body
    );
    assert!(page.body.contains("x-auth-request-user"), "{}", page.body);
    let out = b.get(&format!("{url}oauth2/sign_out"), Nav::TopLevel).await;
    assert_eq!(out.status, 200);
    assert_eq!(b.get(&url, Nav::Api).await.status, 401);
    drop(child);
}
