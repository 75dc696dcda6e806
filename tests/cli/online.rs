//! `check --online` against the Apple emulator: its token endpoint judges
//! the client secret as Apple's does.

use std::path::PathBuf;
use std::process::Command;

use applegate::kit::{self, Secrets};

use super::{TempDir, BIN};

/// A config for `stack` in `dir` (key and session secret in files),
/// `edit` applied to its TOML text.
fn config(dir: &TempDir, stack: &kit::Stack, edit: impl Fn(String) -> String) -> PathBuf {
    stack.secrets().write(&dir.0).unwrap();
    let toml = stack.toml(&format!(
        "[apple]\nprivate_key_file = \"{}\"\n[session]\nsecret_file = \"{}\"\n\
         [state]\nbackend = \"memory\"\n\
         [[routes]]\npath = \"/\"\nupstream = \"http://{{upstream}}\"\n",
        Secrets::KEY_FILE,
        Secrets::SESSION_FILE,
    ));
    dir.write("applegate.toml", &edit(toml))
}

/// `applegate check --online --config FILE`: exit code, stdout, stderr.
fn check_online(config: &PathBuf) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["check", "--online", "--config"])
        .arg(config)
        .env_remove("APPLEGATE_APPLE_PRIVATE_KEY")
        .env_remove("APPLEGATE_SESSION_SECRET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The credentials the emulator registered: Apple answers `invalid_grant`
/// to the made-up code, so the secret passed: exit 0, said so. Without
/// `--online` the emulator is not asked.
#[test]
fn check_online_reports_accepted_credentials() {
    let stack = kit::Builder::new(applegate::clock::system())
        .start()
        .unwrap();
    let dir = TempDir::new("online-good");
    let cfg = config(&dir, &stack, |t| t);
    let (code, stdout, stderr) = super::check(&cfg);
    assert_eq!((code, stack.emulator.hits().token), (0, 0), "{stderr}");
    assert!(!stdout.contains("accepted"), "{stdout}");
    let (code, stdout, stderr) = check_online(&cfg);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("Apple accepted the client secret (Team ID TEAM123456, Services ID com.example.web, Key ID KEY1234567)"),
        "{stdout}"
    );
    assert_eq!(stack.emulator.hits().token, 1);
}

/// A change to a config's TOML text.
type Edit = fn(String) -> String;

/// A Key ID, Team ID or key the emulator does not know for the Services
/// ID: `invalid_client`, exit 1 with the likely causes.
#[test]
fn check_online_lists_causes_when_apple_refuses_the_secret() {
    let stack = kit::Builder::new(applegate::clock::system())
        .start()
        .unwrap();
    let edits: [(&str, Edit); 3] = [
        ("key id", |t| t.replace("KEY1234567", "KEY7654321")),
        ("team id", |t| t.replace("TEAM123456", "TEAM654321")),
        ("key", |t| t),
    ];
    for (what, edit) in edits {
        let dir = TempDir::new("online-bad");
        let cfg = config(&dir, &stack, edit);
        if what == "key" {
            // A key of its own, not the one registered for the Key ID.
            Secrets::new(p256::ecdsa::SigningKey::random(&mut rand::thread_rng()))
                .write(&dir.0)
                .unwrap();
        }
        let (code, stdout, stderr) = check_online(&cfg);
        assert_eq!(code, 1, "{what}: stdout: {stdout}\nstderr: {stderr}");
        for cause in [
            "Apple refused the client secret (invalid_client)",
            "Likely causes:",
            "does not belong to the team of the key",
            "is not the Key ID of this .p8 key",
            "the key was revoked",
            "this machine's clock is off",
            "apple.team_id",
        ] {
            assert!(
                stderr.contains(cause),
                "{what}: {cause:?} missing in:\n{stderr}"
            );
        }
    }
}

/// Apple out of reach: a clear message and exit 1 (2 is for configs).
#[test]
fn check_online_without_a_network_exits_1() {
    let stack = kit::Builder::new(applegate::clock::system())
        .start()
        .unwrap();
    let dir = TempDir::new("online-down");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let base = stack.emulator.base_url().to_string();
    let cfg = config(&dir, &stack, |t| {
        t.replace(&base, &format!("http://{closed}"))
    });
    let (code, _, stderr) = check_online(&cfg);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "applegate check --online: no answer from Apple's token endpoint: Apple could not be reached: POST http://{closed}/auth/token"
        )),
        "{stderr}"
    );
}
