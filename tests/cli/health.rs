//! `applegate health`: the container HEALTHCHECK, against a running
//! gateway's admin listener.

use std::process::{Command, Stdio};
use std::time::Duration;

use applegate::kit::{self, free_port, Secrets};

use super::{TempDir, BIN};

/// `health --url URL`: exit code and stderr.
fn health(url: &str) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["health", "--url", url])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 0 for the admin `/ping`; 1, with the reason, for a 404, a port with
/// nothing on it and a scheme it does not speak.
#[test]
fn health_is_0_only_when_the_admin_ping_answers_200() {
    let dir = TempDir::new("health");
    let stack = kit::Builder::new(applegate::clock::system())
        .start()
        .unwrap();
    stack.secrets().write(&dir.0).unwrap();
    let admin = free_port();
    let config = dir.write(
        "applegate.toml",
        &stack.toml(&format!(
            "[server]\nthreads = 1\ngrace_period = \"0s\"\n\
             [apple]\nprivate_key_file = \"{}\"\n[session]\nsecret_file = \"{}\"\n\
             [state]\nbackend = \"memory\"\n[log]\nlevel = \"warn\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [[routes]]\npath = \"/\"\nupstream = \"http://{{upstream}}\"\n",
            Secrets::KEY_FILE,
            Secrets::SESSION_FILE,
        )),
    );
    let _gateway = super::run(&config, Stdio::null(), Stdio::null());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    assert!(
        kit::wait_listening(addr, Duration::from_secs(20)),
        "the admin listener never listened"
    );

    let (code, err) = health(&format!("http://127.0.0.1:{admin}/ping"));
    assert_eq!((code, err.as_str()), (0, ""));

    let (code, err) = health(&format!("http://127.0.0.1:{admin}/nothing-here"));
    assert_eq!(code, 1);
    assert!(err.contains("answered 404"), "{err}");

    let (code, err) = health(&format!("http://127.0.0.1:{}/ping", free_port()));
    assert_eq!(code, 1);
    assert!(err.contains("refused"), "{err}");

    let (code, err) = health(&format!("https://127.0.0.1:{admin}/ping"));
    assert_eq!(code, 1);
    assert!(err.contains("only http://"), "{err}");
}
