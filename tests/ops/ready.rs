//! `/ready`, `/ping`, and the admin listener's place: never the public port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use applegate::clock::SystemClock;
use applegate::kit::{Builder, Upstream};
use applegate::server;

use crate::common::{free_port, Options};
use crate::{get, with_admin};

/// A stand-in for Apple's address: refuses every connection (closes it at
/// once) until opened, then relays each one to `to` (the emulator).
struct Switch {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
}

impl Switch {
    fn start(to: SocketAddr) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(false));
        let open2 = open.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                if !open2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(apple) = TcpStream::connect(to) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(client.try_clone().unwrap(), apple.try_clone().unwrap());
                pipe(apple, client);
            }
        });
        Switch { addr, open }
    }
}

/// `/ready` is 503 (with why) while Apple's keys were never loaded and
/// Apple cannot be reached; once Apple answers, `/ready` itself loads
/// them (the background retry is a minute away) and answers 200.
/// `/ping` is 200 throughout.
#[tokio::test]
async fn ready_waits_for_apple_keys() {
    let kit = Builder::new(std::sync::Arc::new(SystemClock))
        .upstream(Upstream::Demo)
        .start()
        .unwrap();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let toml = format!(
        "[server]\nthreads = 1\ngrace_period = \"0s\"\n[apple]\nkeys_refetch_interval = \"1s\"\n\
         [log]\nlevel = \"warn\"\n[admin]\nlisten = \"{admin}\"\n\
         [[routes]]\npath = \"/\"\nauth = \"required\"\nupstream = \"http://{{upstream}}\"\n"
    );
    let mut config = kit.config(&toml, &kit.secrets()).unwrap();
    let apple = Switch::start(kit.emulator.addr());
    config.apple.base_url = format!("http://{}", apple.addr);
    let _gateway = server::spawn(&config, std::sync::Arc::new(SystemClock)).unwrap();

    let (status, body) = get(admin, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("Apple's signing keys are not loaded"),
        "{body}"
    );
    assert!(body.contains("\"apple_keys\":0"), "{body}");
    assert_eq!(get(admin, "/ping").await, (200, "OK\n".to_string()));

    apple.open.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = get(admin, "/ready").await;
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "still not ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.contains("\"ready\":true"), "{body}");
    assert!(body.contains("\"store\":\"ok\""), "{body}");
    assert_eq!(get(admin, "/nothing").await.0, 404);
}

/// On the public listener `/metrics`, `/ready` and `/ping` are ordinary
/// paths: routed to the app (here a public route to the demo app, or a
/// sign-in for a protected one), never the admin's answer.
#[tokio::test]
async fn admin_paths_are_not_on_the_public_listener() {
    for root_auth in ["public", "required"] {
        let (stack, admin) = with_admin(Options {
            root_auth,
            ..Options::default()
        });
        assert_eq!(get(admin, "/ready").await.0, 200);
        for path in ["/metrics", "/ready", "/ping"] {
            let (status, body) = get(stack.gateway.addr, path).await;
            assert!(!body.contains("applegate_"), "{root_auth} {path}: {body}");
            assert!(!body.contains("\"ready\""), "{root_auth} {path}: {body}");
            assert_ne!(body, "OK\n", "{root_auth} {path}");
            if root_auth == "required" {
                assert_eq!(status, 401, "{path}");
            }
        }
    }
}

/// `admin.listen` on the public port (or on every address with its
/// port) is a config error naming the key.
#[test]
fn admin_listen_may_not_share_a_public_port() {
    let kit = Builder::new(std::sync::Arc::new(SystemClock))
        .upstream(Upstream::Demo)
        .start()
        .unwrap();
    for admin in [
        kit.listen.to_string(),
        format!("0.0.0.0:{}", kit.listen.port()),
    ] {
        let toml = format!(
            "[admin]\nlisten = \"{admin}\"\n[[routes]]\npath = \"/\"\nupstream = \"http://{{upstream}}\"\n"
        );
        let err = kit.config(&toml, &kit.secrets()).unwrap_err().to_string();
        assert!(
            err.contains("admin.listen:") && err.contains("server.listen's port"),
            "{err}"
        );
    }
}
