//! Certificate reloads: on file change and on SIGHUP, new handshakes get
//! the new certificate while connections opened before keep working; a
//! bad file keeps the certificate in use.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use applegate::kit::{self, Upstream};

use super::{curl, make_cert, Gateway, TempDir};

/// Replaces the live pair with `new` (rename: each file appears whole).
fn install(live: (&Path, &Path), new: (&Path, &Path)) {
    std::fs::rename(new.1, live.1).unwrap();
    std::fs::rename(new.0, live.0).unwrap();
}

/// Polls until curl's new handshake shows `subject` (true) or 10 s pass.
fn wait_for_subject(port: u16, path: &str, subject: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = curl(port, &[&format!("https://localhost:{port}{path}")]);
        if out.subject().contains(subject) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    false
}

/// The peer certificate of a response (DER), as reqwest saw it.
fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("tls info")
        .to_vec()
}

fn names(der: &[u8], cn: &str) -> bool {
    der.windows(cn.len()).any(|w| w == cn.as_bytes())
}

/// Replaced files are picked up without a signal: curl's next handshake
/// shows the new subject, while a keep-alive connection opened before
/// goes on (its next request succeeds on the old handshake's
/// certificate, so it is the same connection). Then a bad certificate
/// file is logged and ignored: new handshakes still get the last good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_handshakes_get_a_replaced_certificate_and_open_connections_stay() {
    let gw = Gateway::start(
        Upstream::Demo,
        "",
        "[[routes]]\npath = \"/public/\"\nauth = \"public\"\nupstream = \"http://{upstream}\"\n",
    );
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .resolve("localhost", ([127, 0, 0, 1], gw.port).into())
        .build()
        .unwrap();
    let first = client.get(gw.at("/public/a")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(names(&peer_cert(&first), "applegate-one"));
    let _ = first.bytes().await;

    let live = (gw.dir.path("live.crt"), gw.dir.path("live.key"));
    let (c, k) = make_cert(&gw.dir.0, "next", "applegate-two");
    install((&live.0, &live.1), (&c, &k));
    assert!(
        tokio::task::block_in_place(|| wait_for_subject(gw.port, "/public/a", "applegate-two")),
        "the new certificate was not served within 10 s"
    );

    let again = client.get(gw.at("/public/b")).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(
        names(&peer_cert(&again), "applegate-one"),
        "the kept-alive connection was not the one opened before the reload"
    );

    std::fs::write(&live.0, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    tokio::time::sleep(applegate::reload::POLL * 3).await;
    let out = tokio::task::block_in_place(|| gw.curl(&[&gw.at("/public/c")]));
    assert_eq!(out.status_line(), "HTTP/2 200", "{}", out.stderr);
    assert!(out.subject().contains("applegate-two"), "{}", out.stderr);
}

/// The binary reloads on SIGHUP: the files are replaced with their old
/// modification times kept (so only the signal can tell), the gateway is
/// sent SIGHUP, and the next handshake shows the new subject.
#[test]
fn the_binary_reloads_on_sighup() {
    let dir = TempDir::new("hup");
    let (crt, key) = make_cert(&dir.0, "live", "applegate-one");
    let port = kit::free_port();
    let session = "q3J0bXk2c0FkZ2VGcGxhbnRzK2FyZS9nb29kLWZvci15b3U9PQxyzw";
    std::fs::write(dir.path("session.key"), session).unwrap();
    let apple = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    use p256::pkcs8::EncodePrivateKey;
    let pem = apple
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    std::fs::write(dir.path("AuthKey.p8"), pem).unwrap();
    let cfg = dir.path("applegate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"https://localhost:{port}\"\nthreads = 1\ngrace_period = \"0s\"\n\
             [server.tls]\ncert_file = \"live.crt\"\nkey_file = \"live.key\"\n\
             [apple]\nteam_id = \"TEAM123456\"\nservices_id = \"com.example.web\"\nkey_id = \"KEY1234567\"\nprivate_key_file = \"AuthKey.p8\"\nbase_url = \"http://127.0.0.1:9\"\n\
             [session]\nsecret_file = \"session.key\"\n[state]\nbackend = \"memory\"\n[log]\nlevel = \"warn\"\n\
             [[routes]]\npath = \"/\"\nauth = \"public\"\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    )
    .unwrap();
    let mut child = Proc(
        Command::new(env!("CARGO_BIN_EXE_applegate"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let listening = kit::wait_listening(addr, Duration::from_secs(20));
    {
        assert!(listening, "the gateway did not start");
        // Let the background services start (SIGHUP's handler among them).
        assert!(wait_for_subject(port, "/", "applegate-one"));
        std::thread::sleep(Duration::from_millis(500));
        let mtimes = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        let (old_c, old_k) = (mtimes(&crt), mtimes(&key));
        let (c, k) = make_cert(&dir.0, "next", "applegate-two");
        install((&crt, &key), (&c, &k));
        for (p, t) in [(&crt, old_c), (&key, old_k)] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        std::thread::sleep(applegate::reload::POLL * 2);
        let out = curl(port, &[&format!("https://localhost:{port}/")]);
        assert!(
            out.subject().contains("applegate-one"),
            "reloaded without a signal: {}",
            out.stderr
        );
        // SAFETY: kill(2) on the child we started and still own.
        assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) }, 0);
        assert!(
            wait_for_subject(port, "/", "applegate-two"),
            "SIGHUP did not reload"
        );
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "SIGHUP ended the gateway"
        );
    }
}

/// A child process killed when dropped (also when an assertion fails).
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
