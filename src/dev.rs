//! `applegate dev`: the gateway, the Apple emulator and the demo app on one
//! machine, with no Apple account.
//!
//! Keys are generated at start. The emulator listens on `127.0.0.1` and the
//! gateway is reached as `localhost`: two different sites, so a browser
//! treats Apple's `form_post` as the cross-site POST it is in production
//! (only `SameSite=None` cookies travel with it).

use std::net::TcpListener;
use std::path::Path;

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use crate::clock;
use crate::config::{self, Config, ConfigError};
use crate::emulator::{self, Emulator};

/// Dev-mode identifiers (shaped like Apple's).
pub const TEAM_ID: &str = "DEVTEAM001";
/// The dev Key ID.
pub const KEY_ID: &str = "DEVKEY0001";
/// The dev Services ID.
pub const SERVICES_ID: &str = "dev.applegate.web";

/// Ports for the three parts.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gateway: u16,
    pub emulator: u16,
    pub demo: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            gateway: 4180,
            emulator: 4181,
            demo: 4182,
        }
    }
}

/// Everything `dev` runs, up.
pub struct Dev {
    pub config: Config,
    pub emulator: Emulator,
    pub demo: crate::httpd::Handle,
}

/// Why dev mode could not start.
#[derive(Debug)]
pub enum DevError {
    Bind(u16, std::io::Error),
    Emulator(emulator::SetupError),
    Config(ConfigError),
}

impl std::fmt::Display for DevError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DevError::Bind(port, e) => write!(
                f,
                "cannot listen on 127.0.0.1:{port}: {e} (choose other ports with --port)"
            ),
            DevError::Emulator(e) => write!(f, "Apple emulator: {e}"),
            DevError::Config(e) => write!(f, "dev config: {e}"),
        }
    }
}

impl std::error::Error for DevError {}

fn bind(port: u16) -> Result<TcpListener, DevError> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|e| DevError::Bind(port, e))
}

/// `conf/dev.toml` (built in), with the ports and addresses of this run.
fn dev_toml(ports: Ports, public_url: &str, emulator_url: &str) -> String {
    let mut t: toml::Table = include_str!("../conf/dev.toml")
        .parse()
        .expect("conf/dev.toml is valid TOML (a unit test checks)");
    let set = |t: &mut toml::Table, section: &str, key: &str, value: String| {
        if let Some(toml::Value::Table(s)) = t.get_mut(section) {
            s.insert(key.into(), value.into());
        }
    };
    set(
        &mut t,
        "server",
        "listen",
        format!("127.0.0.1:{}", ports.gateway),
    );
    set(&mut t, "server", "public_url", public_url.to_string());
    set(&mut t, "apple", "base_url", emulator_url.to_string());
    if let Some(toml::Value::Array(routes)) = t.get_mut("routes") {
        if let Some(toml::Value::Table(r)) = routes.first_mut() {
            r.insert(
                "upstream".into(),
                format!("http://127.0.0.1:{}", ports.demo).into(),
            );
        }
    }
    t.to_string()
}

/// Starts the emulator and the demo app and builds the gateway's config.
pub fn prepare(ports: Ports) -> Result<Dev, DevError> {
    let key = SigningKey::random(&mut rand::thread_rng());
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .unwrap_or_default();
    let public_url = format!("http://localhost:{}", ports.gateway);
    let demo = crate::demo::start(bind(ports.demo)?).map_err(|e| DevError::Bind(ports.demo, e))?;
    let emulator = Emulator::start_local(
        bind(ports.emulator)?,
        emulator::Client::new(
            SERVICES_ID,
            TEAM_ID,
            KEY_ID,
            *key.verifying_key(),
            format!("{public_url}/oauth2/callback"),
        ),
        clock::system(),
    )
    .map_err(DevError::Emulator)?;
    let toml = dev_toml(ports, &public_url, emulator.base_url());
    let secret = crate::session::random_token(48);
    let env = move |name: &str| match name {
        config::ENV_APPLE_PRIVATE_KEY => Some(pem.clone()),
        config::ENV_SESSION_SECRET => Some(secret.clone()),
        _ => None,
    };
    let config = Config::from_toml(&toml, Path::new("."), &env).map_err(DevError::Config)?;
    Ok(Dev {
        config,
        emulator,
        demo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_toml_takes_this_runs_ports() {
        let ports = Ports {
            gateway: 1,
            emulator: 2,
            demo: 3,
        };
        let t = dev_toml(ports, "http://localhost:1", "http://127.0.0.1:2");
        for want in [
            "listen = \"127.0.0.1:1\"",
            "public_url = \"http://localhost:1\"",
            "base_url = \"http://127.0.0.1:2\"",
            "upstream = \"http://127.0.0.1:3\"",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
    }
}
