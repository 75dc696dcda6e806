//! The `applegate` binary itself, as a process: its usage, `check`, `run`
//! and `dev`, and its state across restarts. One test crate (`cargo test
//! --test cli`) in a few files, by what they run.

mod access_log;
#[path = "../common/mod.rs"]
mod common;
mod config;
mod health;
mod online;
mod serve;
mod state;
mod upgrade;
mod usage;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use applegate::emulator::{self, Emulator};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

/// The binary under test, built by cargo for this test crate.
pub const BIN: &str = env!("CARGO_BIN_EXE_applegate");
/// A session secret that passes the strength check.
pub const SECRET: &str = "q3J0bXk2c0FkZ2VGcGxhbnRzK2FyZS9nb29kLWZvci15b3U9PQxyzw";

/// A temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "applegate-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `applegate run --config FILE` with its output where asked and
/// no `APPLEGATE_LOG` from the environment (the config's level holds);
/// killed when dropped.
pub fn run(config: &Path, stdout: Stdio, stderr: Stdio) -> Proc {
    Proc(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env_remove("APPLEGATE_LOG")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}

/// Runs `applegate check --config FILE` with no secrets in the environment:
/// exit code, stdout, stderr.
pub fn check(config: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["check", "--config"])
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

/// A fresh P-256 key as the PEM of a `.p8` file.
pub fn key_pem() -> String {
    SigningKey::random(&mut rand::thread_rng())
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string()
}

/// An emulator on a free port whose one client is the tests' Services ID,
/// checking client secrets against `key` and redirecting to `callback`.
pub fn emulator_for(key: &SigningKey, callback: String) -> Emulator {
    Emulator::start_local(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        emulator::Client::new(
            common::SERVICES_ID,
            common::TEAM_ID,
            common::KEY_ID,
            *key.verifying_key(),
            callback,
        ),
        applegate::clock::system(),
    )
    .unwrap()
}
