//! `[server.tls]` and `redirect_http` problems: `applegate check` names
//! the key and exits 2, as for every config problem.

use std::process::Command;

use super::{make_cert, TempDir};

fn check(dir: &TempDir, tls: &str) -> (i32, String) {
    check_routes(
        dir,
        tls,
        "[[routes]]\npath = \"/\"\nupstream = \"http://127.0.0.1:3000\"\n",
    )
}

/// `applegate check` of a config with `tls` in `[server]` and `routes`:
/// the exit code and what it printed.
pub fn check_routes(dir: &TempDir, tls: &str, routes: &str) -> (i32, String) {
    std::fs::write(
        dir.path("session.key"),
        "q3J0bXk2c0FkZ2VGcGxhbnRzK2FyZS9nb29kLWZvci15b3U9PQxyzw",
    )
    .unwrap();
    let cfg = dir.path("applegate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\npublic_url = \"https://app.example.com\"\n{tls}\n\
             [apple]\nteam_id = \"TEAM123456\"\nservices_id = \"com.example.web\"\nkey_id = \"KEY1234567\"\n\
             [session]\nsecret_file = \"session.key\"\n\
             {routes}"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_applegate"))
        .args(["check", "--config"])
        .arg(&cfg)
        .env("APPLEGATE_APPLE_PRIVATE_KEY", applegate_key())
        .env_remove("APPLEGATE_SESSION_SECRET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn applegate_key() -> String {
    use p256::pkcs8::EncodePrivateKey;
    p256::ecdsa::SigningKey::random(&mut rand::thread_rng())
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

/// A good pair passes `check` (exit 0): the failures below are the files.
#[test]
fn a_good_pair_passes() {
    let dir = TempDir::new("cfg-ok");
    make_cert(&dir.0, "a", "applegate-a");
    let (code, out) = check(
        &dir,
        "[server.tls]\ncert_file = \"a.crt\"\nkey_file = \"a.key\"",
    );
    assert_eq!(code, 0, "{out}");
}

/// A missing certificate file, a key that is not the certificate's, a
/// file with no PEM, a section without its key file, and a redirect
/// listener on the main port: each named by its key path, exit 2.
#[test]
fn tls_problems_are_reported_with_key_paths() {
    let dir = TempDir::new("cfg-bad");
    make_cert(&dir.0, "a", "applegate-a");
    make_cert(&dir.0, "b", "applegate-b");
    std::fs::write(dir.path("junk.pem"), "hello\n").unwrap();
    for (tls, expected) in [
        (
            "[server.tls]\ncert_file = \"missing.crt\"\nkey_file = \"a.key\"",
            "server.tls.cert_file: cannot read",
        ),
        (
            "[server.tls]\ncert_file = \"a.crt\"\nkey_file = \"b.key\"",
            "server.tls.key_file: ",
        ),
        (
            "[server.tls]\ncert_file = \"junk.pem\"\nkey_file = \"a.key\"",
            "server.tls.cert_file: ",
        ),
        (
            "[server.tls]\ncert_file = \"a.crt\"",
            "server.tls.key_file: missing",
        ),
        (
            "listen = \"0.0.0.0:8443\"\nredirect_http = \"0.0.0.0:8443\"",
            "server.redirect_http: 0.0.0.0:8443 is server.listen as well",
        ),
    ] {
        let (code, out) = check(&dir, tls);
        assert_eq!(code, 2, "{tls}: {out}");
        assert!(
            out.contains(expected),
            "{tls}: expected {expected:?} in {out}"
        );
    }
    let (_, out) = check(
        &dir,
        "[server.tls]\ncert_file = \"a.crt\"\nkey_file = \"b.key\"",
    );
    assert!(
        out.contains("is not the private key of the certificate"),
        "{out}"
    );
    assert!(
        !out.contains("PRIVATE KEY-----"),
        "key material in a message: {out}"
    );
}
